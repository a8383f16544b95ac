"""Small writers for DVC metrics (JSON) and plots (TSV with a ``step`` column), atomically."""

from __future__ import annotations

import json
import math
import os

from wm_core.data import atomic_path


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None  # JSON has no NaN; DVC reads null as missing
    return v


def write_json(path: str | os.PathLike, data: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(_clean(data), f, indent=2, sort_keys=True)
        f.write("\n")


def write_tsv(path: str | os.PathLike, rows: list[dict]) -> None:
    if not rows:
        raise ValueError(f"no rows for {path}")
    cols = list(rows[0])
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in rows:
            f.write(
                "\t".join(f"{r[c]:.6g}" if isinstance(r[c], float) else str(r[c]) for c in cols)
                + "\n"
            )
