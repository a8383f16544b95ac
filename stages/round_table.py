"""round_table: one row per round's agent, its dream against what the real car did with it.

python -m stages.round_table OUT.tsv METRICS_DIR

Row r is agent r (V, M_r, C_r): ``dream_return`` and ``dream_offroad_frac`` of C_r in M_r's dream
(metrics/evolve/r{r}.json), and, where an on-policy round k drove it (``rounds.k.prev == r``),
its real return on round k's training tracks with collection's exploration noise and how often
M_r's reward head was deluded there (metrics/collect_onpolicy/r{k}.json). The agents no round
drove (the last one) drove the next tracks in the select stage (metrics/select.json, ``measured``);
without that file their real columns are blank. ``dvc plots`` draws the table round by round.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from stages.common import run_stage
from wm_core.config import Params
from wm_core.data import atomic_path
from wm_core.select import agents, drivers

REAL = {  # column: key in metrics/collect_onpolicy/r{k}.json
    "real_return": "return_mean",
    "real_return_std": "return_std",
    "real_off_road_frac": "off_road_frac",
    "delusion_rate": "delusion_rate",
    "delusion_rate_no_progress": "delusion_rate_no_progress",
}


def _read(path: Path, keys: list[str]) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (did its stage run?)") from None
    except json.JSONDecodeError as e:
        raise RuntimeError(f"{path}: not JSON ({e})") from None
    missing = [k for k in keys if not isinstance(data.get(k), (int, float))]
    if missing:
        raise RuntimeError(f"{path}: no number for {missing} (written by an older stage?)")
    return data


def round_rows(p: Params, metrics: Path) -> list[dict]:
    """Agents 0 and every id in ``rounds``, in round order; real columns None where none drove."""
    drove = drivers(p)
    selected = metrics / "select.json"
    measured = _read(selected, ["return_mean"]).get("measured", {}) if selected.exists() else {}
    rows = []
    for r in agents(p):
        ev = _read(metrics / "evolve" / f"r{r}.json", ["dream_return", "dream_offroad_frac"])
        row = {"round": int(r), "dream_return": ev["dream_return"]}
        row["dream_offroad_frac"] = ev["dream_offroad_frac"]
        if r in drove:
            real = _read(metrics / "collect_onpolicy" / f"r{drove[r]}.json", list(REAL.values()))
            row |= {col: float(real[key]) for col, key in REAL.items()}
        elif r in measured:
            row |= {col: float(measured[r][key]) for col, key in REAL.items()}
        else:
            row |= dict.fromkeys(REAL)
        rows.append(row)
    return rows


def write_rows(path: str | Path, rows: list[dict]) -> None:
    """TSV; a missing value is an empty cell (vega-lite skips it), never a fake number."""

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return ""
        return f"{v:.6g}" if isinstance(v, float) else str(v)

    cols = list(rows[0])
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write("\t".join(cols) + "\n")
        f.writelines("\t".join(cell(r[c]) for c in cols) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out")
    ap.add_argument("metrics", type=Path)
    args = ap.parse_args(argv)
    run_stage("round_table", lambda p: write_rows(args.out, round_rows(p, args.metrics)))


if __name__ == "__main__":
    main()
