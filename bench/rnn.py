"""MDN-RNN training throughput: our JAX/Equinox M vs the same architecture in PyTorch, same run.

    pip install -e '.[bench]' && python bench/rnn.py [--batch 32] [--seq-len 200] [--steps 5]

JAX runs the pipeline's own train step (``wm_core.train.make_train_step`` over
``sample_windows`` + ``mdrnn_loss``, as ``fit_mdrnn`` builds it: windows are drawn inside the
jitted step from latent episodes on the device). PyTorch runs nn.LSTM(35, 256) + nn.Linear(256,
482) with the same loss on windows drawn beforehand by the same sampler. Both use Adam after a
global-norm clip, and start from the same weights (copied), so their first losses must agree.
A "step" is one time step of one window: batch * seq_len per train step. Defaults come from
params.yaml ``rnn``. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import TYPE_CHECKING

import numpy as np
from harness import (  # + repo root on sys.path
    REPO,
    add_torch_args,
    machine_info,
    set_torch_threads,
    synthetic_latents,
    time_it,
    torch_device,
)

if TYPE_CHECKING:
    import torch
    from torch_models import TorchMDNRNN

    from wm_core.config import RNNConfig
    from wm_core.data import Episodes
    from wm_core.mdrnn import MDNRNN


def build_jax(cfg: RNNConfig, z_dim: int):
    """-> (model, step function, its initial optimiser state), exactly as fit_mdrnn builds them."""
    import equinox as eqx
    import jax
    import optax

    from wm_core.mdrnn import MDNRNN
    from wm_core.train import make_train_step, mdrnn_loss, sample_windows

    model = MDNRNN(z_dim, cfg.hidden, cfg.mixtures, key=jax.random.key(0))
    optim = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr))

    def loss(m, batch, k):  # fit_mdrnn's closure: windows sampled inside the jitted step
        seq_data, batch_key = batch
        windows = sample_windows(seq_data, cfg.batch_size, cfg.seq_len, batch_key)
        return mdrnn_loss(m, windows, cfg, k)

    return model, make_train_step(loss, optim), optim.init(eqx.filter(model, eqx.is_array))


def bench_jax(
    data: Episodes, model: MDNRNN, step_fn, opt_state, steps: int, repeats: int
) -> tuple[float, int]:
    """-> (median seconds for ``steps`` train steps, number of traces of the step)."""
    import equinox as eqx
    import jax

    from wm_core.train import SeqData

    seq = SeqData.from_episodes(data)
    state = {"m": model, "o": opt_state, "i": 0}

    def step():  # a new batch key each call: different windows, same shapes
        key = jax.random.fold_in(jax.random.key(1), state["i"])
        state["m"], state["o"], state["metrics"] = step_fn(state["m"], state["o"], (seq, key), key)
        state["i"] += 1

    secs = time_it(step, steps, repeats, lambda: state["metrics"]["loss"].block_until_ready())
    return secs, eqx.debug.get_num_traces(step_fn)


def torch_loss(tm: TorchMDNRNN, b: dict, cfg: RNNConfig) -> torch.Tensor:
    """mdrnn_loss in PyTorch: masked mixture NLL + asymmetric reward error + weighted done BCE."""
    import torch
    import torch.nn.functional as F

    logits, mu, ls, r_pred, d_logit = tm(b["z"], b["a"])
    log_n = -0.5 * ((b["z_next"][..., None] - mu) / ls.exp()) ** 2 - ls - 0.5 * np.log(2 * np.pi)
    logp = torch.logsumexp(F.log_softmax(logits, -1) + log_n, -1).mean(-1)  # (B, T)
    valid, has_next = b["valid"], b["has_next"]
    nll = -(logp * has_next).sum() / has_next.sum().clamp(min=1.0)
    err = r_pred - b["r"]
    r_err = torch.where(err > 0, cfg.reward_optimism_weight, 1.0) * err**2
    r_loss = (r_err * valid).sum() / valid.sum()
    d = b["done"]
    bce = -(cfg.done_pos_weight * d * F.logsigmoid(d_logit) + (1 - d) * F.logsigmoid(-d_logit))
    return nll + r_loss + (bce * valid).sum() / valid.sum()


def bench_torch(
    cfg: RNNConfig, data: Episodes, model: MDNRNN, steps: int, repeats: int, device: str
) -> tuple[float, float]:
    """-> (median seconds for ``steps`` train steps, |loss_torch - loss_jax| on one batch)."""
    import jax
    import torch
    from torch_models import TorchMDNRNN, load_mdrnn

    from wm_core.train import SeqData, mdrnn_loss, sample_windows

    seq = SeqData.from_episodes(data)
    keys = [jax.random.fold_in(jax.random.key(2), i) for i in range(4)]
    windows = [sample_windows(seq, cfg.batch_size, cfg.seq_len, k) for k in keys]
    batches = [
        {k: torch.from_numpy(np.asarray(v)).to(device) for k, v in w.items()} for w in windows
    ]
    tm = TorchMDNRNN(model.z_dim, cfg.hidden, cfg.mixtures)
    load_mdrnn(tm, model)
    tm = tm.to(device)
    with torch.no_grad():  # same weights, same windows: the same loss up to float rounding
        diff = abs(
            float(torch_loss(tm, batches[0], cfg))
            - float(mdrnn_loss(model, windows[0], cfg, keys[0])[0])
        )
    opt = torch.optim.Adam(tm.parameters(), lr=cfg.lr)
    state = {"i": 0}

    def step():
        opt.zero_grad()
        loss = torch_loss(tm, batches[state["i"] % len(batches)], cfg)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(tm.parameters(), cfg.grad_clip)
        opt.step()
        state["loss"], state["i"] = loss.detach(), state["i"] + 1

    return time_it(step, steps, repeats, lambda: float(state["loss"])), diff


def main() -> None:

    from wm_core.config import load_params

    rnn_cfg = load_params(REPO / "params.yaml").rnn
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=rnn_cfg.batch_size)
    ap.add_argument("--seq-len", type=int, default=rnn_cfg.seq_len)
    ap.add_argument("--steps", type=int, default=5, help="train steps per timing")
    add_torch_args(ap)
    args = ap.parse_args()
    set_torch_threads(args.torch_threads)
    # dropout off: the benchmark is the default pipeline's step (params.yaml has rnn.dropout 0)
    cfg = dataclasses.replace(rnn_cfg, batch_size=args.batch, seq_len=args.seq_len, dropout=0.0)
    data = synthetic_latents(n_episodes=20, length=1000, z_dim=32)
    model, step_fn, opt_state = build_jax(cfg, z_dim=32)
    jax_s, traces = bench_jax(data, model, step_fn, opt_state, args.steps, args.repeats)
    device = torch_device(args.torch_device)
    torch_s, loss_diff = bench_torch(cfg, data, model, args.steps, args.repeats, device)
    per_train_step = args.batch * args.seq_len
    jax_sps = args.steps * per_train_step / jax_s
    torch_sps = args.steps * per_train_step / torch_s
    print(f"JAX {jax_sps:.0f} steps/s, PyTorch {torch_sps:.0f} steps/s", flush=True)
    print(
        json.dumps(
            {
                "jax_steps_per_s": round(jax_sps, 1),
                "torch_steps_per_s": round(torch_sps, 1),
                "ratio": round(jax_sps / torch_sps, 3),
                "jax_train_steps_per_s": round(args.steps / jax_s, 3),
                "torch_train_steps_per_s": round(args.steps / torch_s, 3),
                "jax_traces": traces,  # over 1 + steps * repeats calls, each on new windows
                "jax_train_calls": 1 + args.steps * args.repeats,
                "loss_abs_diff": round(loss_diff, 7),  # same weights and batch, before training
                "batch": args.batch,
                "seq_len": args.seq_len,
                "torch_device": device,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
