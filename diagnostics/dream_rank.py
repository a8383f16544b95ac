"""Does M's dream rank controllers the way the real car does? Dream return against real score.

Every controller is dreamed from the same starts with the same keys (common random numbers, as
in evolution). For each it prints the mean dream return, how often its dreams look off the road
(the off-road probe, as ``dream_offroad_frac``), its mean actions in the dream, and the real
score you give it (measured on validation tracks with ``wm play``); then the rank and linear
correlations of dream return with real score over the controllers that have one. A dream that
CMA-ES can climb towards better driving needs a positive rank correlation.

``--see`` sets what C reads in the dream (M is always fed the sampled z_{t+1}, as in training):
``sample`` is the pipeline's dream (its returns equal ``wm_core.dream``'s, checked in
tests/test_diagnostics.py); ``mode`` is the mean of the mixture component drawn for each
dimension (the sample without its Gaussian noise); ``mean`` the mixture's mean. The real agent
reads V's posterior mean, and V's posterior sigma (~0.7) is larger than the spread of the means
(~0.4, RESULTS.md session 7), so a C fitted on means sees mostly noise in the pipeline's dream.

python diagnostics/dream_rank.py --rnn models/r0/mdrnn.eqx --latents data/latents/r0.zarr \
    --agent NAME=DIR/r0/controller.eqx:REAL [--agent ...] [--constant 0,1,0 ...] \
    [--see sample|mode|mean] [--temperature 1.25] [--horizon 600] [--dreams 256] [--seed 7]
    [--memory THE_CS_OWN_M.eqx]

``--memory``: the controllers read the h of this M (theirs), fed their view and actions, while
``--rnn`` (another M on the same V's latents, e.g. trained on more data) dreams the world, as a
judge does in ``stages/evolve.py``. With ``see='sample'`` this is the judge's dream.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wm_core.checkpoint import load_model  # noqa: E402
from wm_core.controller import Controller  # noqa: E402
from wm_core.data import concat, read_dataset  # noqa: E402
from wm_core.dream import DreamStarts, sample_starts  # noqa: E402
from wm_core.mdrnn import MDNRNN, pick_component  # noqa: E402
from wm_core.road import fit_probe  # noqa: E402

SEES = ("sample", "mode", "mean")


def _one_dream(
    ctrl, rnn, memory, z_warm, a_warm, z0, fresh, key, probe, temperature, horizon, see,
    replay=None,
):  # fmt: skip
    """wm_core.dream.dream_return without dropout, with C's view chosen by ``see``; the keys
    are split exactly as there, so ``see='sample'`` is the pipeline's dream. With ``memory``
    (another M), C reads that M's h, fed C's view and C's actions, while ``rnn`` dreams.
    ``replay`` (horizon, 3): M is fed these actions instead of C's (open loop)."""
    _, key = jax.random.split(key)  # dream_return's dropout-mask key (unused without dropout)

    def start(m):
        carry = m.warm(z_warm, a_warm)
        return jax.tree.map(lambda x: jnp.where(fresh, jnp.zeros_like(x), x), carry)

    carry = start(rnn)
    mem = start(memory) if memory is not None else None

    def step(state, xs):
        k, a_replay = xs
        z, view, carry, mem, alive, ret, off, act = state
        a = ctrl(view, carry[0] if memory is None else mem[0])
        if a_replay is not None:
            a = a_replay
        carry = rnn.step(z, a, carry)
        if memory is not None:
            mem = memory.step(view, a, mem)
        logits, mu, log_sigma, r, d_logit = rnn.heads(carry[0])
        mu_k, sigma_k = pick_component(logits, mu, log_sigma, temperature, k)
        nkey = jax.random.split(k)[1]  # as wm_core.mdrnn.sample_next
        z_next = mu_k + sigma_k * jnp.sqrt(temperature) * jax.random.normal(nkey, mu_k.shape)
        if see == "sample":
            view = z_next
        elif see == "mode":
            view = mu_k
        else:
            view = (jax.nn.softmax(logits / temperature, axis=-1) * mu).sum(-1)
        ret = ret + alive * r
        off = off + alive * jax.nn.sigmoid(view @ probe[0] + probe[1])
        act = act + alive * a.at[0].set(jnp.abs(a[0]))  # |steer|, gas, brake
        alive = alive * (d_logit <= 0.0)
        return (z_next, view, carry, mem, alive, ret, off, act), alive

    zero = jnp.array(0.0)
    init = (z0, z0, carry, mem, jnp.array(1.0), zero, zero, jnp.zeros(3))
    xs = (jax.random.split(key, horizon), replay)
    (_, _, _, _, _, ret, off, act), alive = jax.lax.scan(step, init, xs)
    steps = 1.0 + alive[:-1].sum()  # live steps (the terminal one counts)
    return ret, off / horizon, act / steps


@eqx.filter_jit
def dream_stats(
    ctrl: Controller,
    rnn: MDNRNN,
    starts: DreamStarts,
    key: Array,
    probe: tuple[Float[Array, " z"], Float[Array, ""]],
    temperature: float,
    horizon: int,
    see: str = "sample",
    memory: MDNRNN | None = None,
) -> tuple[Float[Array, " R"], Float[Array, " R"], Float[Array, "R 3"]]:
    """Per dream: return, off-road fraction (probe on C's view, per horizon step) and mean
    (|steer|, gas, brake) over its live steps."""
    keys = jax.random.split(key, starts.z0.shape[0])  # as make_population_returns

    def one(zw, aw, z0, fresh, k):
        return _one_dream(ctrl, rnn, memory, zw, aw, z0, fresh, k, probe, temperature, horizon, see)

    return jax.vmap(one)(starts.z_warm, starts.a_warm, starts.z0, starts.fresh, keys)


def constant_controller(action: tuple[float, float, float], z_dim: int, hidden: int) -> Controller:
    """A C that ignores its input and always outputs ``action`` (steer, gas, brake)."""
    steer, gas, brake = (float(a) for a in action)
    if not (-1 < steer < 1 and 0 <= gas <= 1 and 0 <= brake <= 1):
        raise SystemExit(f"--constant {action}: steer in (-1, 1), gas and brake in [0, 1]")
    eps = 1e-6  # tanh never reaches +-1; the squashed output is then within 1e-6 of the action
    bias = [
        np.arctanh(steer),
        np.arctanh(np.clip(2 * gas - 1, -1 + eps, 1 - eps)),
        np.arctanh(min(brake, 1 - eps)) if brake > 0 else -1.0,  # clip(tanh(-1), 0, 1) = 0
    ]
    ctrl = Controller(z_dim, hidden, key=jax.random.key(0))
    return eqx.tree_at(
        lambda c: (c.linear.weight, c.linear.bias),
        ctrl,
        (jnp.zeros_like(ctrl.linear.weight), jnp.asarray(bias, jnp.float32)),
    )


def rank_corr(a, b) -> float:
    """Spearman's rho (no ties expected among real-valued scores)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rnn", required=True, help="the M that dreams")
    ap.add_argument("--memory", help="the Cs' own M, whose h they read (default: --rnn)")
    ap.add_argument("--latents", nargs="+", required=True, help="dream starts (as evolve's)")
    ap.add_argument("--agent", action="append", default=[], help="NAME=CONTROLLER.eqx[:REAL]")
    ap.add_argument("--constant", action="append", default=[], help="steer,gas,brake")
    ap.add_argument("--see", choices=SEES, default="sample")
    ap.add_argument("--temperature", type=float, default=1.25)
    ap.add_argument("--horizon", type=int, default=600)
    ap.add_argument("--dreams", type=int, default=256)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--reset-starts", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    rnn, _ = load_model(args.rnn, "mdrnn", MDNRNN)
    memory = load_model(args.memory, "mdrnn", MDNRNN)[0] if args.memory else None
    data = concat([read_dataset(p) for p in args.latents])
    if data.off_road is None or not 0 < data.off_road.sum() < len(data.off_road):
        raise SystemExit("--latents need 'off_road' labels of both kinds for the probe")
    w, b = fit_probe(data.mu, data.off_road)
    probe = (jnp.asarray(w), jnp.asarray(b, jnp.float32))
    starts = sample_starts(
        data, args.dreams, args.warmup, np.random.default_rng(args.seed), args.reset_starts
    )
    agents: list[tuple[str, Controller, float | None]] = []
    for spec in args.agent:
        name, _, rest = spec.partition("=")
        path, _, real = rest.partition(":")
        ctrl = load_model(path, "controller", Controller)[0]
        agents.append((name, ctrl, float(real) if real else None))
    for spec in args.constant:
        action = tuple(float(x) for x in spec.split(","))
        agents.append((f"const({spec})", constant_controller(action, rnn.z_dim, rnn.hidden), None))
    if not agents:
        raise SystemExit("nothing to score: give --agent and/or --constant")

    print(f"see={args.see} temperature={args.temperature} horizon={args.horizon} "
          f"dreams={args.dreams}")  # fmt: skip
    key = jax.random.key(args.seed)
    rows = []
    for name, ctrl, real in agents:
        ret, off, act = map(np.asarray, dream_stats(
            ctrl, rnn, starts, key, probe, args.temperature, args.horizon, args.see, memory
        ))  # fmt: skip
        rows.append((name, real, ret.mean(), off.mean(), act.mean(0)))
        real_s = f"{real:7.1f}" if real is not None else "      -"
        se = ret.std() / np.sqrt(len(ret))
        steer, gas, brake = act.mean(0)
        print(
            f"{name:24s} real {real_s}  dream {ret.mean():7.1f} ± {se:4.1f}  off-road "
            f"{off.mean():.2f}  |steer| {steer:.2f} gas {gas:.2f} brake {brake:.2f}"
        )
    scored = [(r[1], r[2]) for r in rows if r[1] is not None]
    if len(scored) >= 3:
        real, dream = np.array(scored).T
        lin = np.corrcoef(dream, real)[0, 1]
        print(
            f"over {len(scored)} controllers with a real score: rank correlation "
            f"{rank_corr(dream, real):+.2f}, linear {lin:+.2f}"
        )


if __name__ == "__main__":
    main()
