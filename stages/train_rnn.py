"""train_rnn: fit M on latent episodes (round 0 from scratch, later rounds warm-started).

python -m stages.train_rnn MODEL.eqx METRICS.json CURVE.tsv LATENTS.zarr [...] [--init PREV.eqx]
python -m stages.train_rnn JUDGES.eqx METRICS.json CURVE.tsv LATENTS.zarr [...] --judges

With ``--judges`` it trains ``rnn.judges`` more Ms instead, judge j exactly as M would be
trained with ``seed: seed + j`` (j = 1 ..), into one file: evolve scores C in each of them too.
"""

from __future__ import annotations

import argparse
import dataclasses

import jax

from stages.common import run_stage
from wm_core.checkpoint import load_model, save_model
from wm_core.data import concat, read_dataset
from wm_core.mdrnn import MDNRNN
from wm_core.metrics import write_json, write_tsv
from wm_core.resume import Snapshots, fingerprint
from wm_core.train import fit_mdrnn


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("metrics")
    ap.add_argument("curve")
    ap.add_argument("latents", nargs="+")
    ap.add_argument("--init", help="previous round's M to continue from")
    ap.add_argument("--round", default="0")
    ap.add_argument("--judges", action="store_true", help="train the rnn.judges extra Ms")
    args = ap.parse_args(argv)
    if args.judges and (args.init or args.round != "0"):
        ap.error("--judges trains round 0's judges from scratch (no --init, no --round)")

    def body(p) -> None:
        data = concat([read_dataset(path) for path in args.latents])
        # rnn.round_scratch: a round's M learns its whole mix afresh, as round 0's did
        warm = args.init and not p.rnn.round_scratch
        init = load_model(args.init, "mdrnn", MDNRNN)[0] if warm else None
        steps = p.rnn.steps if init is None else p.rnn.round_steps
        inputs = args.latents + ([args.init] if warm else [])

        def fit(seed: int, out: str):
            key = jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 2), int(args.round))
            snaps = Snapshots.for_output(
                out, fingerprint(p.rnn, inputs, [seed, args.round, out]), p.rnn.snapshot_every
            )
            if steps > 0:
                model, curve = fit_mdrnn(p.rnn, data, steps, key=key, init=init, snapshots=snaps)
            else:
                model, curve = init, [{"step": 0, "loss": float("nan")}]
            return model, curve, snaps

        def final(curve: list[dict]) -> dict:
            return {k: v for k, v in curve[-1].items() if k != "step"}

        config = {"config": dataclasses.asdict(p.rnn)}
        if args.judges:
            runs = [fit(p.seed + j, f"{args.model}.j{j}") for j in range(1, p.rnn.judges + 1)]
            z_dim = data.mu.shape[1]
            hp = {"z_dim": z_dim, "hidden": p.rnn.hidden, "mixtures": p.rnn.mixtures}
            hp |= {"count": len(runs)} | ({"joint": True} if p.rnn.mixture == "joint" else {})
            save_model(args.model, tuple(m for m, _, _ in runs), "mdrnn_judges", hp, config)
            write_json(
                args.metrics,
                {"judges": len(runs), "steps": steps, "frames": data.n_frames}
                | ({"final": [final(c) for _, c, _ in runs]} if runs else {}),
            )
            rows = [row | {"judge": j} for j, (_, c, _) in enumerate(runs, 1) for row in c]
            write_tsv(args.curve, rows or [{"step": 0, "loss": float("nan"), "judge": 0}])
            for _, _, snaps in runs:
                snaps.clear()
            return
        model, curve, snaps = fit(p.seed, args.model)
        save_model(args.model, model, "mdrnn", model.hparams, config)
        write_json(args.metrics, final(curve) | {"steps": steps, "frames": data.n_frames})
        write_tsv(args.curve, curve)
        snaps.clear()

    run_stage("train_rnn", body)


if __name__ == "__main__":
    main()
