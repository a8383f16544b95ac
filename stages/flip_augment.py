"""flip_augment: mirror every frame left-right and negate steering, for all input datasets.

With ``augment.flip: false`` it writes an empty dataset (no mirrored episodes), so the
data-mix ablation runs the same DAG.

python -m stages.flip_augment OUT.zarr IN.zarr [IN.zarr ...]
"""

from __future__ import annotations

import argparse

from stages.common import run_stage
from wm_core.data import concat, empty, flip, read_dataset, write_dataset


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("out")
    ap.add_argument("inputs", nargs="+")
    args = ap.parse_args(argv)

    def body(p) -> None:
        parts = [flip(read_dataset(path)) for path in args.inputs] if p.augment.flip else []
        labels = [lab for part in parts for lab in part.attrs.get("episode_policy", [])]
        attrs = {
            "policy": "mirrored",
            "sources": args.inputs,
            "episode_policy": [f"{lab}/mirrored" for lab in labels],
            "mirrored": True,
        }
        write_dataset(args.out, concat(parts, attrs=attrs) if parts else empty(attrs))

    run_stage("flip_augment", body)


if __name__ == "__main__":
    main()
