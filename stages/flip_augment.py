"""flip_augment: mirror every frame left-right and negate steering, for all input datasets.

python -m stages.flip_augment OUT.zarr IN.zarr [IN.zarr ...]
"""

from __future__ import annotations

import argparse

from stages.common import run_stage
from wm_core.data import concat, flip, read_dataset, write_dataset


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args(argv)

    def body(p) -> None:
        parts = [flip(read_dataset(path)) for path in args.inputs]
        labels = [lab for part in parts for lab in part.attrs.get("episode_policy", [])]
        merged = concat(
            parts,
            attrs={
                "policy": "mirrored",
                "sources": args.inputs,
                "episode_policy": [f"{lab}/mirrored" for lab in labels],
                "mirrored": True,
            },
        )
        write_dataset(args.out, merged)

    run_stage("flip_augment", body)


if __name__ == "__main__":
    main()
