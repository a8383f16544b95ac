"""select: the final agent, the round whose C drove best on its training tracks.

python -m stages.select OUT.json MODELS_DIR ONPOLICY_METRICS_DIR

Agents that an on-policy round drove are read from that round's metrics
(ONPOLICY_METRICS_DIR/r{k}.json); the others (the last round's) drive the tracks the next
rounds would, with collection's noise, here. OUT.json: the chosen ``round``, every agent's
mean return, and the full metrics of the agents driven here (the round table's last row).
Held-out evaluation tracks are never used (wm_core/select.py).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from stages.collect import summary
from stages.common import run_stage
from wm_core.config import Params
from wm_core.evaluate import delusion_rates
from wm_core.metrics import write_json
from wm_core.rollout import run_episodes
from wm_core.select import agent_paths, drivers, pick, read_key, select_seeds


def select(p: Params, models: Path, onpolicy: Path) -> dict:
    returns = {a: read_key(onpolicy / f"r{k}.json", "return_mean") for a, k in drivers(p).items()}
    o = p.collect.onpolicy
    measured = {}
    for a, seeds in select_seeds(p).items():
        spec = ("agent", *agent_paths(models, a), o.noise)
        eps = run_episodes(
            spec, list(seeds), p.env, p.collect.workers, f"select@{a}", keep_obs=False
        )
        measured[a] = summary(eps) | delusion_rates(eps) | {"seed0": seeds.start}
        returns[a] = measured[a]["return_mean"]
    chosen = pick(returns)
    return {
        "round": int(chosen),
        "return_mean": returns[chosen],
        "returns": dict(sorted(returns.items(), key=lambda kv: int(kv[0]))),
        "measured": measured,
        "noise": o.noise,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("out")
    ap.add_argument("models", type=Path)
    ap.add_argument("onpolicy", type=Path)
    args = ap.parse_args(argv)

    def body(p: Params) -> None:
        out = select(p, args.models, args.onpolicy)
        write_json(args.out, out)
        print(f"select: round {out['round']}'s agent (mean return {out['return_mean']:.1f})")

    run_stage("select", body)


if __name__ == "__main__":
    main()
