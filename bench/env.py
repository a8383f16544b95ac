"""CarRacing-v3 frames/s: stock Gymnasium vs our pixel-identical fast renderer, same run.

    python bench/env.py [--steps 500] [--repeats 3] [--workers 2]

Single process: the same Brownian driver on the same seeds, ``steps`` frames per episode,
median over ``repeats`` seeds, stock and fast interleaved so machine noise hits both alike.
Parallel: ``workers`` processes collecting ``2 * workers`` episodes through the pipeline's own
``run_episodes`` (spawn, watchdog, seed order), fast renderer; its efficiency is
aggregate / (workers * single-process fast rate). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np

from wm_core.config import EnvConfig
from wm_core.env import make_env
from wm_core.policies import BrownianPolicy
from wm_core.rollout import run_episodes


def frames_per_s(fast: bool, seed: int, steps: int) -> float:
    env = make_env(fast=fast)
    obs, _ = env.reset(seed=seed)
    policy = BrownianPolicy(dt=0.02)
    policy.reset(seed, env)
    t0, n = time.perf_counter(), 0
    for _ in range(steps):
        obs, _, term, trunc, _ = env.step(policy.act(obs, env))
        n += 1
        if term or trunc:
            break
    rate = n / (time.perf_counter() - t0)
    env.close()
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()

    stock, fast = [], []
    for seed in range(90000, 90000 + args.repeats):
        stock.append(frames_per_s(False, seed, args.steps))
        fast.append(frames_per_s(True, seed, args.steps))
    stock_fps, fast_fps = float(np.median(stock)), float(np.median(fast))
    print(f"single process: stock {stock_fps:.0f} frames/s, fast {fast_fps:.0f} frames/s")

    env = EnvConfig(max_steps=args.steps, episode_timeout_s=600, fast=True, crop_hud=True)
    seeds = list(range(91000, 91000 + 2 * args.workers))
    t0 = time.perf_counter()
    eps = run_episodes(("random", 0.02), seeds, env, args.workers, "bench")
    agg = sum(len(e["reward"]) for e in eps) / (time.perf_counter() - t0)
    eff = agg / (args.workers * fast_fps)
    print(f"{args.workers} workers: {agg:.0f} frames/s aggregate ({eff:.2f} of ideal)")
    print(
        json.dumps(
            {
                "stock_fps": round(stock_fps, 1),
                "fast_fps": round(fast_fps, 1),
                "ratio": round(fast_fps / stock_fps, 2),
                "workers": args.workers,
                "aggregate_fps": round(agg, 1),
                "parallel_efficiency": round(eff, 2),
                "steps": args.steps,
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
