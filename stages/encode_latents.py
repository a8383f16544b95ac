"""encode_latents: mu and log sigma of every frame of the given datasets, in one latents group,
with each frame's off-road label (wm_core/road.py) for the dream's off-road probe.

With ``--pool PREV.zarr`` (an earlier round's latents) the output holds PREV's episodes first,
then the new ones: round k's latents are every episode of rounds 0..k, the aggregate that DAgger
and Ha's iterative procedure train on, without a list of earlier rounds in dvc.yaml (DVC cannot
interpolate one into a stage's deps).

python -m stages.encode_latents VAE.eqx OUT.zarr DATA.zarr [DATA.zarr ...] [--pool PREV.zarr]
"""

from __future__ import annotations

import argparse

from stages.common import run_stage
from wm_core.checkpoint import load_model
from wm_core.data import DataError, concat, read_dataset, write_dataset
from wm_core.encode import encode_frames
from wm_core.road import offroad_label
from wm_core.vae import VAE


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("vae")
    ap.add_argument("out")
    ap.add_argument("data", nargs="+")
    ap.add_argument("--pool", help="earlier latents to keep in front of the new ones")
    args = ap.parse_args(argv)

    def body(p) -> None:
        vae, _ = load_model(args.vae, "vae", VAE)
        pool = read_dataset(args.pool, obs=False) if args.pool else None  # fail before encoding
        if pool is not None and (pool.mu is None or pool.mu.shape[1] != vae.z_dim):
            found = "no mu" if pool.mu is None else f"z of size {pool.mu.shape[1]}"
            raise DataError(
                f"--pool {args.pool}: {found}, but this V encodes z of size {vae.z_dim} "
                "(the pool must be an earlier round's latents from the same V: dvc repro)"
            )
        parts = [read_dataset(path) for path in args.data]
        for path, part in zip(args.data, parts):
            if part.attrs.get("crop_hud", p.env.crop_hud) != p.env.crop_hud:
                raise DataError(
                    f"dataset {path}: collected with crop_hud={part.attrs['crop_hud']}, but "
                    f"env.crop_hud is {p.env.crop_hud} (recollect: dvc repro)"
                )
            part.off_road = offroad_label(part.obs, p.env.crop_hud)  # where the car sits
        merged = concat(parts)
        merged.mu, merged.log_sigma = encode_frames(vae, merged.obs)
        merged.obs = None
        sources = list(args.data)
        if pool is not None:
            parts = [pool, *parts]
            merged = concat([pool, merged])
            sources = pool.attrs.get("sources", [args.pool]) + sources
        labels = [lab for part in parts for lab in part.attrs.get("episode_policy", [])]
        merged.attrs = {"policy": "latents", "sources": sources, "episode_policy": labels}
        write_dataset(args.out, merged)

    run_stage("encode_latents", body)


if __name__ == "__main__":
    main()
