"""encode_latents: mu and log sigma of every frame of the given datasets, in one latents group,
with each frame's off-road label (wm_core/road.py) for the dream's off-road probe.

python -m stages.encode_latents VAE.eqx OUT.zarr DATA.zarr [DATA.zarr ...]
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
    args = ap.parse_args(argv)

    def body(p) -> None:
        vae, _ = load_model(args.vae, "vae", VAE)
        parts = [read_dataset(path) for path in args.data]
        for path, part in zip(args.data, parts):
            if part.attrs.get("crop_hud", p.env.crop_hud) != p.env.crop_hud:
                raise DataError(
                    f"dataset {path}: collected with crop_hud={part.attrs['crop_hud']}, but "
                    f"env.crop_hud is {p.env.crop_hud} (recollect: dvc repro)"
                )
            part.off_road = offroad_label(part.obs, p.env.crop_hud)  # where the car sits
        labels = [lab for part in parts for lab in part.attrs.get("episode_policy", [])]
        merged = concat(
            parts, attrs={"policy": "latents", "sources": args.data, "episode_policy": labels}
        )
        merged.mu, merged.log_sigma = encode_frames(vae, merged.obs)
        merged.obs = None
        write_dataset(args.out, merged)

    run_stage("encode_latents", body)


if __name__ == "__main__":
    main()
