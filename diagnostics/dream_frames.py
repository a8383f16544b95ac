"""What a controller sees in M's dream: V's decoding of the dreamed z, as a grid of frames.

One row per (controller, start), one column every ``--every`` dream steps. The starts are real
frames of ``--latents`` (h warmed up on the ``--warmup`` real steps before, as evolve's dreams
start) and every controller is dreamed from the same starts with the same keys, so rows of two
controllers differ only by what they do. It shows what ``dream_rank.py``'s numbers summarise:
whether the dreamed road bends away from a car that holds its line (RESULTS.md, session 29).

python diagnostics/dream_frames.py --rnn models/r0/mdrnn.eqx --vae models/vae.eqx \
    --latents data/latents/r0.zarr --agent NAME=DIR/r0/controller.eqx [--constant 0,1,0 ...] \
    --out dream.png [--starts 3] [--every 15] [--columns 12] [--temperature 1.25] [--seed 3]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import jax
import numpy as np
from jaxtyping import Array, Float

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from dream_rank import constant_controller  # noqa: E402

from wm_core.checkpoint import load_model  # noqa: E402
from wm_core.controller import Controller  # noqa: E402
from wm_core.data import concat, read_dataset  # noqa: E402
from wm_core.dream import sample_starts  # noqa: E402
from wm_core.mdrnn import MDNRNN, sample_next  # noqa: E402
from wm_core.vae import VAE  # noqa: E402


def dream_latents(
    ctrl: Controller,
    rnn: MDNRNN,
    z_warm: Float[Array, "W z"],
    a_warm: Float[Array, "W 3"],
    z0: Float[Array, " z"],
    key: Array,
    temperature: float,
    steps: int,
) -> Float[Array, "T z"]:
    """The pipeline's dream dynamics (C reads the sampled z and M's h; its own keys, and no done
    cut-off, so the film runs on): the sampled z of every step."""
    carry = rnn.warm(z_warm, a_warm)

    def step(state, k):
        z, carry = state
        carry = rnn.step(z, ctrl(z, carry[0]), carry)
        logits, mu, log_sigma, _, _ = rnn.heads(carry[0])
        z = sample_next(logits, mu, log_sigma, temperature, k)
        return (z, carry), z

    _, zs = jax.lax.scan(step, (z0, carry), jax.random.split(key, steps))
    return zs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rnn", required=True)
    ap.add_argument("--vae", required=True)
    ap.add_argument("--latents", nargs="+", required=True, help="dream starts")
    ap.add_argument("--agent", action="append", default=[], help="NAME=CONTROLLER.eqx")
    ap.add_argument("--constant", action="append", default=[], help="steer,gas,brake")
    ap.add_argument("--out", required=True, help="a .png")
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--every", type=int, default=15)
    ap.add_argument("--columns", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--temperature", type=float, default=1.25)
    ap.add_argument("--seed", type=int, default=3)
    args = ap.parse_args(argv)

    rnn = load_model(args.rnn, "mdrnn", MDNRNN)[0]
    vae = load_model(args.vae, "vae", VAE)[0]
    data = concat([read_dataset(p) for p in args.latents])
    # reset_starts 0: every start is a real frame with its warm-up, none the all-zero frame 0
    starts = sample_starts(data, args.starts, args.warmup, np.random.default_rng(args.seed), 0.0)
    agents = [
        (name, load_model(path, "controller", Controller)[0])
        for name, _, path in (spec.partition("=") for spec in args.agent)
    ] + [
        (f"const({spec})", constant_controller(
            tuple(float(x) for x in spec.split(",")), rnn.z_dim, rnn.hidden))
        for spec in args.constant
    ]  # fmt: skip
    if not agents:
        raise SystemExit("nothing to film: give --agent and/or --constant")
    steps = args.every * args.columns
    rows = []
    for name, ctrl in agents:
        for s in range(args.starts):
            key = jax.random.fold_in(jax.random.key(args.seed), s)
            zs = dream_latents(
                ctrl, rnn, starts.z_warm[s], starts.a_warm[s], starts.z0[s], key,
                args.temperature, steps,
            )  # fmt: skip
            frames = np.asarray(vae.decode(zs[:: args.every]))
            rows.append(np.concatenate(list((np.clip(frames, 0, 1) * 255).astype(np.uint8)), 1))
        print(f"{name}: rows {len(rows) - args.starts + 1}-{len(rows)}")
    grid = np.concatenate(rows, axis=0)
    if not cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR)):
        raise SystemExit(f"--out {args.out}: could not write the image")


if __name__ == "__main__":
    main()
