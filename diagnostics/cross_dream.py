"""Does a controller drive in a dream it was not evolved in? Each C in several Ms' dreams.

Every C is dreamed in every world M from the same starts with the same keys (common random
numbers, as in evolution), reading **its own M's h** fed the dreamed z and its actions (as in
the real env, where C only ever sees its own M's h; a judge in ``stages/evolve.py`` does the
same). In its own M this is exactly the dream C was evolved in. The printout is one row per C:
its mean dream return in each world, and the ratio of its mean in the other worlds to its
return in its own (when its own M is one of the worlds).

The Ms must share one V (the same latent space): train them on the same latents with
different seeds (``WM_PARAMS=<params with seed: K> python -m stages.train_rnn ...``).

python diagnostics/cross_dream.py --latents data/latents/r0.zarr \
    --agent models/r0/controller.eqx:models/r0/mdrnn.eqx [--agent C2.eqx:M2.eqx ...] \
    --worlds models/r0/mdrnn.eqx M2.eqx [--dreams 256] [--temperature 1.25] [--horizon 600]

``--agent CANDS.npy:ITS_M.eqx`` scores every candidate an evolution chose its C from (saved by
``diagnostics/candidates.py record``), one printed row per candidate.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Float

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wm_core.checkpoint import load_model  # noqa: E402
from wm_core.controller import Controller  # noqa: E402
from wm_core.data import read_dataset  # noqa: E402
from wm_core.dream import DreamStarts, make_population_returns, sample_starts  # noqa: E402
from wm_core.mdrnn import MDNRNN  # noqa: E402


def controller_from_row(row: np.ndarray, rnn: MDNRNN) -> Controller:
    """A flat candidate as the Controller it encodes (the layout of ravel_pytree)."""
    template = Controller(rnn.z_dim, rnn.hidden, key=jax.random.key(0))
    params, static = eqx.partition(template, eqx.is_array)
    flat, unravel = ravel_pytree(params)
    if row.shape != flat.shape:
        raise SystemExit(
            f"a candidate of {row.shape[0]} numbers; a C for z {rnn.z_dim}, h {rnn.hidden} has "
            f"{flat.shape[0]}"
        )
    return eqx.combine(unravel(jnp.asarray(row, jnp.float32)), static)


def cross_returns(
    ctrl: Controller,
    own: MDNRNN,
    worlds: list[MDNRNN],
    starts: DreamStarts,
    key: jax.Array,
    temperature: float,
    horizon: int,
    pop: Float[np.ndarray, "P n"] | None = None,
    chunk: int = 8,
) -> np.ndarray:
    """-> (len(worlds),) mean dream return of ``ctrl`` in each world, reading ``own``'s h.

    With ``pop`` (flat controllers of ``ctrl``'s shape, as ``stages.evolve`` keeps its
    candidates) -> (len(worlds), P): every row scored alike, ``chunk`` rows per call (the last
    chunk padded to the same shape, so there is one compile per world size).
    """
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    rows = np.asarray(flat)[None] if pop is None else np.asarray(pop, np.float32)
    returns = make_population_returns(ctrl, temperature, horizon)
    size = min(chunk, len(rows))
    out = np.zeros((len(worlds), len(rows)))
    for i in range(0, len(rows), size):
        part = rows[i : i + size]
        padded = np.concatenate([part, np.repeat(part[-1:], size - len(part), axis=0)])
        for w, world in enumerate(worlds):
            r = returns(world, jnp.asarray(padded), starts, key, None, own)
            out[w, i : i + len(part)] = np.asarray(r).mean(axis=1)[: len(part)]
    return out[:, 0] if pop is None else out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--latents", required=True)
    ap.add_argument("--agent", action="append", required=True, help="CTRL.eqx:ITS_M.eqx")
    ap.add_argument("--worlds", nargs="+", required=True)
    ap.add_argument("--dreams", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=1.25)
    ap.add_argument("--horizon", type=int, default=600)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--reset-starts", type=float, default=0.25)
    ap.add_argument("--seed", type=int, default=12345)
    args = ap.parse_args(argv)

    data = read_dataset(args.latents, obs=False)
    rng = np.random.default_rng(args.seed)
    starts = sample_starts(data, args.dreams, args.warmup, rng, args.reset_starts)
    worlds = [load_model(w, "mdrnn", MDNRNN)[0] for w in args.worlds]
    for spec in args.agent:
        ctrl_path, _, own_path = spec.partition(":")
        if not own_path:
            raise SystemExit(f"--agent {spec}: expected CTRL.eqx:ITS_M.eqx or CANDS.npy:ITS_M.eqx")
        own = load_model(own_path, "mdrnn", MDNRNN)[0]
        pop = None
        if ctrl_path.endswith(".npy"):  # an evolution's candidates (diagnostics/candidates.py)
            pop = np.load(ctrl_path)
            if pop.ndim != 2 or len(pop) == 0:
                raise SystemExit(f"{ctrl_path}: {pop.shape}, not rows of flat controllers")
            ctrl = controller_from_row(pop[0], own)
        else:
            ctrl = load_model(ctrl_path, "controller", Controller)[0]
        for path, m in [(own_path, own)] + list(zip(args.worlds, worlds)):
            if (m.z_dim, m.hidden) != (ctrl.z_dim, ctrl.hidden) or m.z_dim != data.mu.shape[1]:
                raise SystemExit(
                    f"{path}: an M with z {m.z_dim}, h {m.hidden}; {ctrl_path} reads z "
                    f"{ctrl.z_dim}, h {ctrl.hidden} and {args.latents} has z {data.mu.shape[1]}"
                    " (the Ms must share C's V and size)"
                )
        r = cross_returns(
            ctrl, own, worlds, starts, jax.random.key(args.seed), args.temperature, args.horizon,
            pop,
        )  # fmt: skip
        paths = [Path(w).resolve() for w in args.worlds]
        is_own = np.array([p == Path(own_path).resolve() for p in paths])
        columns = [(ctrl_path, r)] if pop is None else [
            (f"{ctrl_path}[{i}]", r[:, i]) for i in range(len(pop))
        ]  # fmt: skip
        for name, x in columns:
            row = {w: round(float(v), 1) for w, v in zip(args.worlds, x)}
            ratio = None
            if 0 < is_own.sum() < len(x):
                ratio = round(float(x[~is_own].mean() / x[is_own][0]), 3)
            print(json.dumps({"agent": name, "returns": row, "other_over_own": ratio}))


if __name__ == "__main__":
    main()
