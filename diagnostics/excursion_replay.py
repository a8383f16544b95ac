"""Does the dream show the car leaving the road when reality does?

Drives an agent on validation tracks, finds each episode's first excursion (the env's
"no wheel on a tile" flag, after the zoom-in), and from ``--lead`` frames before it dreams on
in M with the LSTM state warmed up on the episode's real history:

* replay: M is fed the actions the agent actually took, so any difference from reality is M's;
* closed loop: C acts on the dreamed frames, as in evolution.

For each, the off-road probe's P(off road) on the dreamed frames over the ``--after`` frames
from the excursion onwards, against the same frames in reality, and C's gas over the approach.

python diagnostics/excursion_replay.py --models models --round 0 --latents data/latents/r0.zarr \
    --seeds 70000-70007        # validation tracks only, never the evaluation seeds
    [--dream-rnn OTHER_M.eqx]  # the same episodes, dreamed in another M (same V)
"""

from __future__ import annotations

import argparse
import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wm_core.checkpoint import load_model
from wm_core.cli import parse_seeds
from wm_core.config import load_params
from wm_core.controller import Controller
from wm_core.data import read_dataset
from wm_core.encode import encode_frames
from wm_core.mdrnn import MDNRNN, sample_next
from wm_core.road import fit_probe, offroad_prob
from wm_core.rollout import run_episodes
from wm_core.vae import VAE


def dreams(rnn, ctrl, probe, z_hist, a_hist, z0, actions, keys, temperature, replay: bool):
    """(D, T) P(off road) of the dreamed frames and (D, T) C's gas, D dreams of T steps."""
    carry0 = rnn.warm(z_hist, a_hist)

    def one(key):
        def step(state, xs):
            a_real, k = xs
            z, carry = state
            a_ctrl = ctrl(z, carry[0])
            carry = rnn.step(z, a_real if replay else a_ctrl, carry)
            logits, mu, log_sigma, _, _ = rnn.heads(carry[0])
            z_next = sample_next(logits, mu, log_sigma, temperature, k)
            return (z_next, carry), (offroad_prob(z_next, *probe), a_ctrl[1])

        ks = jax.random.split(key, actions.shape[0])
        return jax.lax.scan(step, (z0, carry0), (actions, ks))[1]

    return jax.vmap(one)(keys)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--models", default="models")
    ap.add_argument("--round", default="0")
    ap.add_argument("--latents", nargs="+", default=["data/latents/r0.zarr"])
    ap.add_argument("--seeds", default="70000-70007")
    ap.add_argument("--lead", type=int, default=30)
    ap.add_argument("--after", type=int, default=40)
    ap.add_argument("--dreams", type=int, default=64)
    ap.add_argument("--dream-rnn", help="dream in this M instead of the agent's own (same V)")
    ap.add_argument("--temperature", type=float, default=None, help="default: dream.temperature")
    args = ap.parse_args()
    p = load_params(None)
    tau = args.temperature or p.dream.temperature
    vae_path, rnn_path = f"{args.models}/vae.eqx", f"{args.models}/r{args.round}/mdrnn.eqx"
    ctrl_path = f"{args.models}/r{args.round}/controller.eqx"
    vae = load_model(vae_path, "vae", VAE)[0]
    rnn = load_model(args.dream_rnn or rnn_path, "mdrnn", MDNRNN)[0]
    ctrl = load_model(ctrl_path, "controller", Controller)[0]
    lat = [read_dataset(x) for x in args.latents]
    mu_all = np.concatenate([d.mu for d in lat])
    w, b = fit_probe(mu_all, np.concatenate([d.off_road for d in lat]))
    probe = (jnp.asarray(w), jnp.asarray(b, jnp.float32))
    run = eqx.filter_jit(dreams)  # tau and the mode are static: one compile per mode

    seeds = parse_seeds(args.seeds)
    held_out = range(p.evaluate.seed0, p.evaluate.seed0 + p.evaluate.episodes)
    if any(s in held_out for s in seeds):
        raise SystemExit(f"--seeds {args.seeds}: overlaps the evaluation tracks; use 70000+")
    spec = ("agent", vae_path, rnn_path, ctrl_path, 0.0)
    eps = run_episodes(spec, seeds, p.env, p.collect.workers, "drive",
                       keep_obs=True)  # fmt: skip
    rows = []
    for ep in eps:
        off, act = ep["off_road"], ep["action"]
        onsets = np.flatnonzero(off[50:]) + 50
        if len(onsets) == 0 or onsets[0] < args.lead:
            print(f"seed {ep['seed']}: return {ep['reward'].sum():.1f}, no excursion to replay")
            continue
        tx = int(onsets[0])
        s, end = tx - args.lead, min(tx + args.after, len(off))
        mu = encode_frames(vae, ep["obs"][: end + 1])[0]
        keys = jax.random.split(jax.random.key(int(ep["seed"])), args.dreams)
        row = {"seed": int(ep["seed"]), "return": float(ep["reward"].sum()), "onset": tx,
               "speed": float(ep["speed"][tx]), "real_off": float(off[tx:end].mean()),
               "real_gas": float(act[s:tx, 1].mean())}  # fmt: skip
        for mode in ("replay", "closed"):
            p_off, gas = run(rnn, ctrl, probe, jnp.asarray(mu[:s]), jnp.asarray(act[:s]),
                             jnp.asarray(mu[s]), jnp.asarray(act[s:end]), keys, tau,
                             mode == "replay")  # fmt: skip
            row[f"{mode}_off"] = float(np.asarray(p_off)[:, args.lead :].mean())
            row[f"{mode}_gas"] = float(np.asarray(gas)[:, : args.lead].mean())
        rows.append(row)
        print(
            f"seed {row['seed']}: return {row['return']:.1f}, off the road at frame {tx} "
            f"(speed {row['speed']:.0f}); frames off the road in the {end - tx} after: real "
            f"{row['real_off']:.2f}, dream replaying the real actions {row['replay_off']:.2f}, "
            f"dream with C acting {row['closed_off']:.2f}; C's gas before: real "
            f"{row['real_gas']:.2f}, dream {row['closed_gas']:.2f}"
        )
    keys = ("real_off", "replay_off", "closed_off", "real_gas", "closed_gas")
    summary = {k: float(np.mean([r[k] for r in rows])) for k in keys} | {"episodes": len(rows)}
    print(json.dumps(summary | {"temperature": tau, "lead": args.lead, "after": args.after}))


if __name__ == "__main__":
    main()
