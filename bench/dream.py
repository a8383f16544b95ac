"""One CMA-ES generation in M's dream: our JAX rollout vs the same batched rollout in PyTorch.

    pip install -e '.[bench]' && python bench/dream.py [--popsize 64] [--horizon 1000]

JAX runs the pipeline's own ``wm_core.dream.make_population_returns`` (population x rollouts
x horizon as one jitted, vmapped call) on starts from ``sample_starts``, with a randomly
initialised MDNRNN and controller on real-shaped synthetic latents. PyTorch runs the same
dream under ``torch.no_grad`` as a Python loop over ``horizon`` steps on a (popsize *
rollouts)-row batch: LSTM cell, MDN sampling at Ha's temperature (logits / tau, sigma *
sqrt(tau)), and each member's linear controller on [z, h] through one ``baddbmm``. Both use
the same weights and starts (warm-up and fresh starts included); temperature, warm-up and
the fraction of fresh starts come from params.yaml ``dream``. The defaults are the paper's
budget (64 x 16 x 1000). The median of ``repeats`` generations is reported; the last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
from harness import (  # + repo root on sys.path
    REPO,
    add_torch_args,
    machine_info,
    set_torch_threads,
    synthetic_latents,
    time_it,
    torch_device,
    torch_sync,
)


def torch_generation(tm, ctrl_w, ctrl_b, starts, temperature: float, horizon: int, gen):
    """Returns (P, R) of one generation. ``ctrl_w`` (P, 3, z + h), ``ctrl_b`` (P, 3) torch;
    ``starts`` a DreamStarts. Rows are member-major (row = p * R + r), as our vmap nests."""
    import torch
    from torch import nn

    p, r, dev = ctrl_w.shape[0], starts.z0.shape[0], ctrl_w.device
    cell = nn.LSTMCell(tm.lstm.input_size, tm.lstm.hidden_size)  # shares tm's LSTM weights
    cell.weight_ih, cell.weight_hh = tm.lstm.weight_ih_l0, tm.lstm.weight_hh_l0
    cell.bias_ih, cell.bias_hh = tm.lstm.bias_ih_l0, tm.lstm.bias_hh_l0
    rows = lambda x: torch.from_numpy(np.array(x)).to(dev).repeat(p, *([1] * (x.ndim - 1)))  # noqa: E731
    z_warm, a_warm, z, fresh = (
        rows(x) for x in (starts.z_warm, starts.a_warm, starts.z0, starts.fresh)
    )
    h = c = torch.zeros(p * r, cell.hidden_size, device=dev)
    for t in range(z_warm.shape[1]):  # real (z, a) warm the state up, as in dream_return
        h, c = cell(torch.cat([z_warm[:, t], a_warm[:, t]], -1), (h, c))
    keep = (~fresh).float()[:, None]  # fresh starts: zero state
    h, c = h * keep, c * keep
    alive, ret = torch.ones(p * r, device=dev), torch.zeros(p * r, device=dev)
    sqrt_tau, w_t = math.sqrt(temperature), ctrl_w.transpose(1, 2)
    for _ in range(horizon):
        x = torch.cat([z, h], -1).view(p, r, -1)
        steer, gas, brake = (
            torch.tanh(torch.baddbmm(ctrl_b[:, None], x, w_t)).view(-1, 3).unbind(-1)
        )
        a = torch.stack([steer, (gas + 1) / 2, brake.clamp(0.0, 1.0)], -1)
        h, c = cell(torch.cat([z, a], -1), (h, c))
        logits, mu, ls, rew, d_logit = tm.heads(h)
        ret += alive * rew
        alive = alive * (d_logit <= 0.0).float()
        # a component per dimension from softmax(logits / tau), by Gumbel-max (as jax does)
        gumbel = -torch.log(-torch.log(torch.rand(logits.shape, generator=gen, device=dev)))
        k = (logits / temperature + gumbel).argmax(-1, keepdim=True)
        mu_k, ls_k = mu.gather(-1, k)[..., 0], ls.gather(-1, k)[..., 0]
        z = mu_k + ls_k.exp() * sqrt_tau * torch.randn(mu_k.shape, generator=gen, device=dev)
    return ret.view(p, r)


def one_step_diff(rnn, ctrl, tm, z0) -> float:
    """Max |JAX - torch| over one dream step's action, h and head outputs from a zero state."""
    import jax
    import jax.numpy as jnp
    import torch

    def jax_step(z):
        carry = rnn.init_carry()
        a = ctrl(z, carry[0])
        h = rnn.step(z, a, carry)[0]
        return jnp.concatenate([a, h, *(x.ravel() for x in rnn.heads(h))])

    ref = np.asarray(jax.vmap(jax_step)(z0))
    w, b = np.asarray(ctrl.linear.weight), np.asarray(ctrl.linear.bias)
    with torch.no_grad():
        z = torch.from_numpy(np.array(z0))
        h0 = torch.zeros(z.shape[0], tm.lstm.hidden_size)
        steer, gas, brake = torch.tanh(
            torch.cat([z, h0], -1) @ torch.from_numpy(w).T + torch.from_numpy(b)
        ).unbind(-1)
        a = torch.stack([steer, (gas + 1) / 2, brake.clamp(0.0, 1.0)], -1)
        h = tm.lstm(torch.cat([z, a], -1)[:, None])[0][:, 0]
        heads = tm.heads(h)
        got = torch.cat([a, h, *(x.reshape(z.shape[0], -1) for x in heads)], -1).numpy()
    return float(np.abs(got - ref).max())


def main() -> None:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import torch
    from jax.flatten_util import ravel_pytree
    from torch_models import TorchMDNRNN, load_mdrnn

    from wm_core.config import load_params
    from wm_core.controller import Controller
    from wm_core.dream import make_population_returns, sample_starts
    from wm_core.mdrnn import MDNRNN

    p = load_params(REPO / "params.yaml")
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--popsize", type=int, default=p.evolve.popsize)
    ap.add_argument("--rollouts", type=int, default=p.evolve.rollouts)
    ap.add_argument("--horizon", type=int, default=1000, help="the paper's; params.yaml has 600")
    add_torch_args(ap)
    args = ap.parse_args()
    set_torch_threads(args.torch_threads)
    tau, warmup, reset = p.dream.temperature, p.dream.warmup, p.dream.reset_starts

    rnn_key, ctrl_key, pop_key = jax.random.split(jax.random.key(0), 3)
    rnn = MDNRNN(32, p.rnn.hidden, p.rnn.mixtures, key=rnn_key)
    ctrl = Controller(32, p.rnn.hidden, key=ctrl_key)
    flat0, unravel = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    pop = flat0 + p.evolve.sigma0 * jax.random.normal(pop_key, (args.popsize, flat0.size))
    members = jax.vmap(unravel)(pop)  # the same P controllers as (P, 3, z + h), (P, 3) for torch
    data = synthetic_latents(n_episodes=20, length=1000, z_dim=32)
    returns = make_population_returns(ctrl, tau, args.horizon, p.dream.dropout)
    state = {"gen": 0}

    def starts():  # new starts each generation, as stages/evolve.py draws them
        rng = np.random.default_rng([0, state["gen"]])
        return sample_starts(data, args.rollouts, warmup, rng, reset)

    def jax_gen():
        state["out"] = returns(
            rnn, pop, starts(), jax.random.fold_in(jax.random.key(1), state["gen"])
        )
        state["gen"] += 1

    jax_s = time_it(jax_gen, 1, args.repeats, lambda: state["out"].block_until_ready())

    tm = TorchMDNRNN(32, p.rnn.hidden, p.rnn.mixtures)
    load_mdrnn(tm, rnn)
    step_diff = one_step_diff(rnn, ctrl, tm, starts().z0)  # on the CPU, before the move
    device = torch_device(args.torch_device)
    tm = tm.to(device)
    w, b = (
        torch.from_numpy(np.asarray(x)).to(device)
        for x in (members.linear.weight, members.linear.bias)
    )
    gen = torch.Generator(device=device).manual_seed(0)

    def torch_gen():
        with torch.no_grad():
            state["out_t"] = torch_generation(tm, w, b, starts(), tau, args.horizon, gen)

    torch_s = time_it(torch_gen, 1, args.repeats, torch_sync(device))
    n = args.popsize * args.rollouts * args.horizon
    print(f"JAX {jax_s:.2f} s/gen, PyTorch {torch_s:.2f} s/gen, ratio {torch_s / jax_s:.2f}")
    print(
        json.dumps(
            {
                "jax_s_per_gen": round(jax_s, 3),
                "torch_s_per_gen": round(torch_s, 3),
                "jax_dream_steps_per_s": round(n / jax_s, 1),
                "torch_dream_steps_per_s": round(n / torch_s, 1),
                "ratio": round(torch_s / jax_s, 3),  # > 1: JAX is faster
                "one_step_abs_diff": step_diff,  # same weights: action, h, heads agree
                "jax_returns_finite": bool(jnp.all(jnp.isfinite(state["out"]))),
                "popsize": args.popsize,
                "rollouts": args.rollouts,
                "horizon": args.horizon,
                "torch_device": device,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
