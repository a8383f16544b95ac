"""Is M's dream of a controller faithful to what that controller really did? Same tracks, same C.

Given real episodes driven by a controller C (e.g. ``stages.collect onpolicy`` with its
models), each dream starts where the real episode did: its first frame, zero LSTM state. Over
the first ``--horizon`` steps it compares:

- ``real``: the real reward (to the episode's end if it ended sooner: leaving the playfield
  costs 100 and ends it);
- ``teacher-forced``: the reward head summed along the real frames (V's means) and actions:
  what M says the real trajectory was worth;
- ``open loop``: a dream fed the real actions, blind to C (padded with the last action if the
  episode ended sooner);
- ``closed loop``: the dream evolution scores, C acting on what it reads in the dream
  (``--see`` as in ``dream_rank.py``; ``sample`` is the pipeline's dream).

A faithful dream has closed loop ~ teacher-forced for every C; for a C whose closed-loop dream
pays much more than its teacher-forced real trajectory, the dream hides that C's failures.

python diagnostics/dream_fidelity.py --rnn M.eqx --controller C.eqx --latents C_EPISODES.zarr \
    --probe-latents data/latents/r0.zarr [--horizon 300] [--temperature 1.25] [--see sample]
    [--dreams-per-episode 8]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dream_rank import SEES, _one_dream  # noqa: E402
from reward_calibration import reward_head  # noqa: E402

from wm_core.checkpoint import load_model  # noqa: E402
from wm_core.controller import Controller  # noqa: E402
from wm_core.data import Episodes, concat, read_dataset  # noqa: E402
from wm_core.mdrnn import MDNRNN  # noqa: E402
from wm_core.road import fit_probe  # noqa: E402


def first_steps(data: Episodes, horizon: int):
    """Per episode, its first ``horizon`` (mu, action) padded with the last frame and action,
    the real reward and off-road flags over those steps (to the end if sooner), and lengths."""

    def pad(x, s, m):
        return np.concatenate([x[s : s + m], np.repeat(x[s + m - 1 : s + m], horizon - m, 0)])

    z, a, r, off = [], [], [], []
    for s, n in zip(data.episode_starts, data.lengths):
        m = min(int(n), horizon)
        z.append(pad(data.mu, s, m)), a.append(pad(data.action, s, m))
        r.append(data.reward[s : s + m].sum())
        off.append(data.off_road[s : s + m].mean() if data.off_road is not None else np.nan)
    return np.stack(z), np.stack(a), np.array(r), np.array(off)


@eqx.filter_jit
def fidelity(ctrl, rnn, z, a, keys, probe, temperature: float, horizon: int, see: str):
    """-> teacher-forced reward (E,), and per (episode, key): open-loop and closed-loop
    (return, off-road fraction, mean |steer|/gas/brake)."""
    r_hat = reward_head(rnn, z, a)  # (E, H)

    def dream(z_seq, a_seq, key, replay):
        no_warm = jnp.zeros((1,) + z_seq.shape[1:]), jnp.zeros((1, 3))
        return _one_dream(
            ctrl, rnn, None, *no_warm, z_seq[0], jnp.array(True), key, probe, temperature,
            horizon, see, a_seq if replay else None,
        )  # fmt: skip

    per_key = lambda replay: jax.vmap(  # noqa: E731
        jax.vmap(lambda zs, as_, k: dream(zs, as_, k, replay), in_axes=(None, None, 0)),
        in_axes=(0, 0, None),
    )(z, a, keys)
    return r_hat, per_key(True), per_key(False)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rnn", required=True)
    ap.add_argument("--controller", required=True, help="the C that drove --latents' episodes")
    ap.add_argument("--latents", nargs="+", required=True, help="C's real episodes, encoded")
    ap.add_argument("--probe-latents", nargs="+", required=True, help="off-road probe's data")
    ap.add_argument("--horizon", type=int, default=300)
    ap.add_argument("--temperature", type=float, default=1.25)
    ap.add_argument("--see", choices=SEES, default="sample")
    ap.add_argument("--dreams-per-episode", type=int, default=8)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    rnn, _ = load_model(args.rnn, "mdrnn", MDNRNN)
    ctrl, _ = load_model(args.controller, "controller", Controller)
    pdata = concat([read_dataset(p) for p in args.probe_latents])
    w, b = fit_probe(pdata.mu, pdata.off_road)
    probe = (jnp.asarray(w), jnp.asarray(b, jnp.float32))
    data = concat([read_dataset(p) for p in args.latents])
    z, a, real, real_off = first_steps(data, args.horizon)
    keys = jax.random.split(jax.random.key(args.seed), args.dreams_per_episode)
    r_hat, (o_ret, o_off, _), (c_ret, c_off, c_act) = fidelity(
        ctrl, rnn, jnp.asarray(z), jnp.asarray(a), keys, probe, args.temperature, args.horizon,
        args.see,
    )  # fmt: skip
    steps = np.minimum(data.lengths, args.horizon)
    valid = np.arange(args.horizon)[None, :] < steps[:, None]
    tf = (np.asarray(r_hat) * valid).sum(1)
    gas = np.mean([data.action[s : s + n, 1].mean() for s, n in zip(data.episode_starts, steps)])
    print(f"{len(steps)} episodes, horizon {args.horizon}, see={args.see}, tau={args.temperature}")
    c_gas = np.asarray(c_act)[..., 1].mean()
    rows = [
        ("real", "reward", real.mean(), np.nanmean(real_off), gas),
        ("teacher-forced", "r_hat", tf.mean(), None, None),
        ("open loop", "r_hat", np.mean(o_ret), np.mean(o_off), None),
        ("closed loop", "r_hat", np.mean(c_ret), np.mean(c_off), c_gas),
    ]
    for name, what, ret, off, g in rows:
        line = f"{name:15s} {what:6s} {ret:8.1f}"
        line += f"  off-road {off:.2f}" if off is not None else ""
        line += f"  gas {g:.2f}" if g is not None else ""
        print(line)


if __name__ == "__main__":
    main()
