"""``wm``: the user's handle on the pipeline's results.

wm play [--seeds 1000-1004] [--round K] [--models models] [--select SELECT.json] [--video out.mp4]
wm check-params [FILE]
"""

from __future__ import annotations

import argparse
import sys

from wm_core.errors import WMError
from wm_core.jaxcache import use_compilation_cache


def parse_seeds(text: str) -> list[int]:
    """'1000-1004' -> [1000..1004]; '3,7,9' -> [3, 7, 9]; ranges and lists may mix."""
    seeds: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad seed range {part!r} (e.g. 1000-1004 or 3,7)"
            ) from None
        if a < 0 or b < a:
            raise argparse.ArgumentTypeError(f"bad seed range {part!r}: need 0 <= start <= end")
        seeds += range(a, b + 1)
    return seeds


def play(args) -> None:
    import numpy as np

    from wm_core.config import load_params
    from wm_core.rollout import run_episodes
    from wm_core.select import agent_paths, final_round
    from wm_core.video import write_mp4

    p = load_params(args.params)
    noise = p.evaluate.noise if args.noise is None else args.noise
    if not noise >= 0:
        raise WMError(f"--noise {noise}: must be >= 0")
    rnd = final_round(p, args.select, args.round)
    eps = run_episodes(
        ("agent", *agent_paths(args.models, rnd), noise),
        args.seeds,
        p.env,
        args.workers,
        "play",
        keep_raw=bool(args.video),
        keep_obs=False,
    )
    scores = np.array([float(e["reward"].sum()) for e in eps])
    for e, s in zip(eps, scores):
        print(f"seed {e['seed']}: {s:.1f} ({len(e['reward'])} frames)")
    print(
        f"mean {scores.mean():.1f} ± {scores.std():.1f} over {len(scores)} episodes (round {rnd})"
        + (f", action noise {noise}" if noise else "")
    )
    if args.video:
        write_mp4(args.video, np.concatenate([e["raw"] for e in eps]))
        print(f"video: {args.video}")


def check_params(args) -> None:
    from wm_core.config import load_params, params_path

    load_params(args.file)
    print(f"{params_path(args.file)}: ok")


def main(argv: list[str] | None = None) -> None:
    use_compilation_cache()  # before anything imports JAX (wm_core/jaxcache.py)
    ap = argparse.ArgumentParser(prog="wm", description="World Models on CarRacing-v3")
    sub = ap.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("play", help="drive a trained agent in the real env, print each score")
    pp.add_argument("--seeds", type=parse_seeds, default=parse_seeds("1000-1004"))
    pp.add_argument(
        "--round", help="which round's agent (default: evaluate.round; 'best': select's choice)"
    )
    pp.add_argument("--models", default="models", help="models directory (default: models)")
    pp.add_argument(
        "--select",
        default="metrics/select.json",
        help="the select stage's choice, read where the round is 'best' "
        "(default: metrics/select.json)",
    )
    pp.add_argument("--video", help="write all episodes to this mp4")
    pp.add_argument("--workers", type=int, default=1)
    pp.add_argument(
        "--noise", type=float, help="std of Gaussian noise on each action (default: evaluate.noise)"
    )
    pp.add_argument("--params", help="params file (default: params.yaml)")
    pp.set_defaults(func=play)
    cp = sub.add_parser("check-params", help="validate a params file; exit 1 with one line if bad")
    cp.add_argument("file", nargs="?")
    cp.set_defaults(func=check_params)
    args = ap.parse_args(argv)
    try:
        args.func(args)
    except (WMError, RuntimeError) as e:
        print(f"wm {args.command}: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
