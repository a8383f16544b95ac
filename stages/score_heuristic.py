"""score_heuristic: the heuristic expert's score, per mode, on its own tracks (no frames kept).

python -m stages.score_heuristic METRICS.json

An anchor for what driving well looks like on these tracks: mean ± std return per mode, frames
off the road (and at speed), skid frames, excursions and recoveries. Collection trains on
fewer episodes; this stage only measures, so its size does not change the data mix.
"""

from __future__ import annotations

import argparse

from stages.collect import heuristic
from stages.common import run_stage
from wm_core.metrics import write_json


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("metrics")
    args = ap.parse_args(argv)

    def body(p) -> None:
        _, metrics, _ = heuristic(p.score_heuristic, p, keep_obs=False)
        write_json(args.metrics, metrics)

    run_stage("score_heuristic", body)


if __name__ == "__main__":
    main()
