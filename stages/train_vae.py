"""train_vae: fit V on every frame of the given datasets.

python -m stages.train_vae MODEL.eqx METRICS.json CURVE.tsv DATA.zarr [DATA.zarr ...]
"""

from __future__ import annotations

import argparse
import dataclasses

import jax
import numpy as np

from stages.common import run_stage
from wm_core.checkpoint import save_model
from wm_core.data import read_dataset
from wm_core.metrics import write_json, write_tsv
from wm_core.resume import Snapshots, fingerprint
from wm_core.train import fit_vae


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("metrics")
    ap.add_argument("curve")
    ap.add_argument("data", nargs="+")
    args = ap.parse_args(argv)

    def body(p) -> None:
        obs = np.concatenate([read_dataset(path).obs for path in args.data])
        key = jax.random.fold_in(jax.random.key(p.seed), 1)
        snaps = Snapshots.for_output(
            args.model, fingerprint(p.vae, args.data, [p.seed, args.model]), p.vae.snapshot_every
        )
        model, curve = fit_vae(p.vae, obs, key=key, snapshots=snaps)
        save_model(
            args.model,
            model,
            "vae",
            {"z_dim": p.vae.z_dim},
            {"config": dataclasses.asdict(p.vae), "frames": int(len(obs))},
        )
        last = curve[-1]
        write_json(
            args.metrics,
            {
                "loss": last["loss"],
                "recon": last["recon"],
                "kl": last["kl"],
                "frames": int(len(obs)),
                "steps": p.vae.steps,
            },
        )
        write_tsv(args.curve, curve)
        snaps.clear()

    run_stage("train_vae", body)


if __name__ == "__main__":
    main()
