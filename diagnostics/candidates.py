"""The candidates one evolution chooses its C from, kept for scoring and driving one by one.

`stages.evolve` re-scores each generation's best member and CMA-ES's final mean on fresh
dreams and keeps the top one (the kept C is always one of them). ``record`` runs the stage
exactly as given and also saves those candidates, row g = generation g's best, the last row
the final mean; ``extract`` writes one row as a controller file that ``wm play`` can drive.
Score every row in several Ms with ``diagnostics/cross_dream.py --agent CANDS.npy:ITS_M.eqx``.

python diagnostics/candidates.py record CANDS.npy -- CTRL.eqx METRICS.json CURVE.tsv M.eqx LAT.zarr
python diagnostics/candidates.py extract CANDS.npy INDEX ITS_M.eqx OUT_CTRL.eqx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from cross_dream import controller_from_row  # noqa: E402

import stages.evolve as evolve_stage  # noqa: E402
from wm_core.checkpoint import load_model, save_model  # noqa: E402
from wm_core.data import atomic_path  # noqa: E402
from wm_core.mdrnn import MDNRNN  # noqa: E402


def record(out: str, evolve_argv: list[str]) -> np.ndarray:
    """Run ``stages.evolve`` on ``evolve_argv`` unchanged; save the dream evolution's candidates
    (G + 1, n) of its first member to ``out`` and return them."""
    seen: list[np.ndarray] = []
    es_evolve = evolve_stage.evolve

    def recording(*args, **kwargs):
        result = es_evolve(*args, **kwargs)
        seen.append(np.asarray(result[3]))
        return result

    evolve_stage.evolve = recording  # the stage's own call, observed, not replaced
    try:
        evolve_stage.main(evolve_argv)
    finally:
        evolve_stage.evolve = es_evolve
    if not seen:
        raise SystemExit("record: the evolution ran no generation (evolve.generations: 0?)")
    with atomic_path(out) as tmp, open(tmp, "wb") as f:
        np.save(f, seen[0])
    return seen[0]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    rec = sub.add_parser("record", help="run stages.evolve and save its candidates")
    rec.add_argument("out")
    rec.add_argument("evolve_argv", nargs=argparse.REMAINDER)
    ext = sub.add_parser("extract", help="one candidate as a controller file")
    ext.add_argument("candidates")
    ext.add_argument("index", type=int)
    ext.add_argument("rnn", help="the M the candidate was evolved in (its size)")
    ext.add_argument("out")
    args = ap.parse_args(argv)
    if args.cmd == "record":
        rest = args.evolve_argv[1:] if args.evolve_argv[:1] == ["--"] else args.evolve_argv
        cands = record(args.out, rest)
        print(f"{args.out}: {cands.shape[0]} candidates of {cands.shape[1]} parameters")
        return
    cands = np.load(args.candidates)
    if not -len(cands) <= args.index < len(cands):
        raise SystemExit(f"{args.candidates}: {len(cands)} candidates, no index {args.index}")
    rnn = load_model(args.rnn, "mdrnn", MDNRNN)[0]
    ctrl = controller_from_row(cands[args.index], rnn)
    info = {"candidate": args.index, "of": args.candidates}
    save_model(args.out, ctrl, "controller", {"z_dim": rnn.z_dim, "hidden": rnn.hidden}, info)


if __name__ == "__main__":
    main()
