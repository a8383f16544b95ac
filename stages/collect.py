"""collect_random / collect_heuristic / collect_onpolicy: drive the real env, write a dataset.

python -m stages.collect random    OUT.zarr METRICS.json
python -m stages.collect heuristic OUT.zarr METRICS.json
python -m stages.collect onpolicy  OUT.zarr METRICS.json --round K --models VAE RNN CTRL
"""

from __future__ import annotations

import argparse

import numpy as np

from stages.common import run_stage
from wm_core.config import HeuristicConfig, Params, onpolicy_seed0
from wm_core.data import from_episodes, write_dataset
from wm_core.env import ENV_ID, gym_version
from wm_core.evaluate import delusion_rates
from wm_core.metrics import write_json
from wm_core.rollout import run_episodes

FAST = 30.0  # |hull velocity| above which leaving the road counts as "at speed": the plain
# heuristic driver averages ~50-55 and peaks at ~85-100 on straights


def summary(episodes: list[dict]) -> dict:
    ret = np.array([e["reward"].sum() for e in episodes], np.float64)
    cat = lambda k: np.concatenate([e[k] for e in episodes])  # noqa: E731
    off, speed = cat("off_road"), cat("speed")
    return {
        "episodes": len(episodes),
        "frames": int(sum(len(e["reward"]) for e in episodes)),
        "return_mean": float(ret.mean()),
        "return_std": float(ret.std()),
        "return_min": float(ret.min()),
        "return_max": float(ret.max()),
        "off_road_frac": float(off.mean()),
        "off_road_fast_frames": int(np.sum(off & (speed > FAST))),
        "skid_frames": int(cat("skid").sum()),
        "speed_mean": float(speed.mean()),
    }


def heuristic(
    cfg: HeuristicConfig, p: Params, keep_obs: bool = True
) -> tuple[list[dict], dict, list[str]]:
    """The heuristic driver, mode by mode on consecutive seeds from ``cfg.seed0``: episodes,
    per-mode metrics (with excursions off the road and recoveries), per-episode labels."""
    eps, metrics, labels, seed = [], {}, [], cfg.seed0
    for mode, n in cfg.episodes.items():
        if n == 0:
            continue
        seeds = list(range(seed, seed + n))
        seed += n
        part = run_episodes(
            ("heuristic", mode),
            seeds,
            p.env,
            p.collect.workers,
            f"heuristic/{mode}",
            keep_obs=keep_obs,
            label=keep_obs,  # a dataset's frames carry the expert's labels; scoring needs none
        )
        metrics[mode] = summary(part) | {
            "excursions": int(sum(e["excursions"] for e in part)),
            "recoveries": int(sum(e["recoveries"] for e in part)),
        }
        eps += part
        labels += [f"heuristic/{mode}"] * n
    return eps, metrics, labels


def collect(policy: str, p: Params, args) -> tuple[list[dict], dict, list[str]]:
    c = p.collect
    if policy == "random":
        seeds = list(range(c.random.seed0, c.random.seed0 + c.random.episodes))
        spec = ("random", c.random.dt)
        eps = run_episodes(spec, seeds, p.env, c.workers, "collect_random", label=True)
        return eps, summary(eps), ["random"] * len(eps)
    if policy == "heuristic":
        return heuristic(c.heuristic, p)
    if policy == "onpolicy":
        if not args.round or len(args.models) != 3:
            raise RuntimeError("onpolicy needs --round K and the VAE, RNN and controller paths")
        s0 = onpolicy_seed0(c.onpolicy, args.round)
        seeds = list(range(s0, s0 + c.onpolicy.episodes))
        spec = ("agent", *args.models, c.onpolicy.noise)
        desc = f"collect_onpolicy@{args.round}"
        eps = run_episodes(spec, seeds, p.env, c.workers, desc, label=True)
        # the previous round's M judged these frames as it drove: its delusion, round by round
        return eps, summary(eps) | delusion_rates(eps), [f"onpolicy/r{args.round}"] * len(eps)
    raise RuntimeError(f"unknown policy {policy!r} (expected random, heuristic or onpolicy)")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("policy", choices=["random", "heuristic", "onpolicy"])
    ap.add_argument("out")
    ap.add_argument("metrics")
    ap.add_argument("--round")
    ap.add_argument("--models", nargs=3, default=[], metavar=("VAE", "RNN", "CTRL"))
    args = ap.parse_args(argv)

    def body(p: Params) -> None:
        eps, metrics, labels = collect(args.policy, p, args)
        attrs = {
            "policy": args.policy,
            "episode_policy": labels,
            "env_id": ENV_ID,
            "gymnasium_version": gym_version(),
            "max_steps": p.env.max_steps,
            "crop_hud": p.env.crop_hud,  # frames are what V and the agent see
        }
        write_dataset(args.out, from_episodes(eps, attrs))
        write_json(args.metrics, metrics)

    run_stage(f"collect_{args.policy}", body)


if __name__ == "__main__":
    main()
