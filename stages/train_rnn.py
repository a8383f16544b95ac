"""train_rnn: fit M on latent episodes (round 0 from scratch, later rounds warm-started).

python -m stages.train_rnn MODEL.eqx METRICS.json CURVE.tsv LATENTS.zarr [...] [--init PREV.eqx]
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
    args = ap.parse_args(argv)

    def body(p) -> None:
        data = concat([read_dataset(path) for path in args.latents])
        # rnn.round_scratch: a round's M learns its whole mix afresh, as round 0's did
        warm = args.init and not p.rnn.round_scratch
        init = load_model(args.init, "mdrnn", MDNRNN)[0] if warm else None
        steps = p.rnn.steps if init is None else p.rnn.round_steps
        key = jax.random.fold_in(jax.random.fold_in(jax.random.key(p.seed), 2), int(args.round))
        inputs = args.latents + ([args.init] if warm else [])
        snaps = Snapshots.for_output(
            args.model,
            fingerprint(p.rnn, inputs, [p.seed, args.round, args.model]),
            p.rnn.snapshot_every,
        )
        if steps > 0:
            model, curve = fit_mdrnn(p.rnn, data, steps, key=key, init=init, snapshots=snaps)
        else:
            model, curve = init, [{"step": 0, "loss": float("nan")}]
        hp = {"z_dim": model.z_dim, "hidden": model.hidden, "mixtures": model.mixtures}
        save_model(args.model, model, "mdrnn", hp, {"config": dataclasses.asdict(p.rnn)})
        write_json(
            args.metrics,
            {k: v for k, v in curve[-1].items() if k != "step"}
            | {"steps": steps, "frames": data.n_frames},
        )
        write_tsv(args.curve, curve)
        snaps.clear()

    run_stage("train_rnn", body)


if __name__ == "__main__":
    main()
