"""round_start: the C that round K's CMA-ES starts from, the last agent's or the best so far.

python -m stages.round_start OUT.json [--out-eqx OUT.eqx
    --agent PREV PREV_CTRL.eqx PREV_RETURN.json --before BEFORE.json]

Agent PREV (round K's ``prev``) has just driven round K's training tracks: PREV_RETURN.json is
collect_onpolicy@K's metrics. BEFORE.json is round PREV's own record: the mean return of every
agent before PREV on the chain of rounds (round 0's record, written without ``--agent``, is
empty). ``evolve.round_start: last`` starts round K from PREV's C, Ha's iterative procedure;
``best`` from the agent with the highest mean so far, select's rule inside the loop (tie: the
later round). Why: the agents' returns drift 100-200 points between neighbouring rounds, and a
drift down would otherwise be the next round's start (RESULTS.md, session 46). OUT.eqx is a
byte copy of that agent's C, so ``evolve --prev OUT.eqx`` is the same command either way;
OUT.json carries the chain on. Only training tracks enter the choice.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from stages.common import run_stage
from wm_core.config import Params
from wm_core.data import atomic_path
from wm_core.metrics import write_json
from wm_core.select import pick, read_key


def choose(rule: str, prev: str, returns: dict[str, float]) -> str:
    """The agent round K starts from: ``prev`` (last) or the best of ``returns`` (best)."""
    return prev if rule == "last" else pick(returns)


def start_round(rule: str, prev: str, ctrl: Path, ret: Path, before: Path, out_eqx: Path) -> dict:
    """Copy the chosen agent's C to ``out_eqx``; -> this round's record."""
    returns = read_key(before, "returns", dict)
    if prev in returns:
        raise RuntimeError(f"{before}: already holds agent {prev}; the chain of rounds loops")
    returns[prev] = read_key(ret, "return_mean", float)
    start = choose(rule, prev, returns)
    # an earlier agent's C lies beside PREV's (models/r{k}/controller.eqx), upstream of it
    src = ctrl if start == prev else ctrl.parent.parent / f"r{start}" / ctrl.name
    if not src.exists():
        raise FileNotFoundError(f"{src}: round {start}'s C, the start, is missing")
    with atomic_path(out_eqx) as tmp:
        shutil.copyfile(src, tmp)
    return {
        "rule": rule,
        "start": int(start),
        "start_return": returns[start],
        "returns": dict(sorted(returns.items(), key=lambda kv: int(kv[0]))),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out_json", type=Path)
    ap.add_argument("--out-eqx", type=Path)
    ap.add_argument("--agent", nargs=3, metavar=("PREV", "CTRL", "RETURN_JSON"))
    ap.add_argument("--before", type=Path)
    args = ap.parse_args(argv)
    if args.agent is not None and not (args.out_eqx and args.before):
        ap.error("--agent needs --out-eqx and --before")

    def body(p: Params) -> None:
        if args.agent is None:  # round 0's record: no agent has driven a training track yet
            write_json(args.out_json, {"returns": {}})
            return
        prev, ctrl, ret = args.agent
        rule = p.evolve.round_start
        out = start_round(rule, prev, Path(ctrl), Path(ret), args.before, args.out_eqx)
        write_json(args.out_json, out)
        print(
            f"round_start: from round {out['start']}'s C ({rule}; mean return "
            f"{out['start_return']:.1f} on its training tracks)"
        )

    run_stage("round_start", body)


if __name__ == "__main__":
    main()
