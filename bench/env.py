"""CarRacing-v3 frames/s: stock Gymnasium vs our pixel-identical fast renderer, same run.

    python bench/env.py [--steps 1000] [--repeats 3] [--workers 2] [--per-worker 3]

Single process: the same Brownian driver on the same seeds, ``steps`` frames per episode,
median over ``repeats`` seeds, stock and fast interleaved so machine noise hits both alike.
Parallel: for n = 1..workers, n processes collect ``per_worker`` episodes each through the
pipeline's own ``run_episodes`` (spawn, watchdog, results shipped back, seed order), fast
renderer. Efficiency is aggregate(n) / (n * aggregate(1)): the same code path on both sides,
worker start-up and the transfer of frames included. The last line is one JSON object.
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
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--per-worker", type=int, default=3, help="episodes per worker")
    args = ap.parse_args()

    stock, fast = [], []
    for seed in range(90000, 90000 + args.repeats):
        stock.append(frames_per_s(False, seed, args.steps))
        fast.append(frames_per_s(True, seed, args.steps))
    stock_fps, fast_fps = float(np.median(stock)), float(np.median(fast))
    print(f"single process: stock {stock_fps:.0f} frames/s, fast {fast_fps:.0f} frames/s")

    env = EnvConfig(max_steps=args.steps, episode_timeout_s=600, fast=True, crop_hud=True)
    agg = {}
    for n in range(1, args.workers + 1):
        seeds = list(range(91000, 91000 + n * args.per_worker))
        t0 = time.perf_counter()
        eps = run_episodes(("random", 0.02), seeds, env, n, f"bench {n} workers")
        agg[n] = sum(len(e["reward"]) for e in eps) / (time.perf_counter() - t0)
    eff = {n: agg[n] / (n * agg[1]) for n in agg}
    for n in agg:
        print(f"{n} workers: {agg[n]:.0f} frames/s aggregate ({eff[n]:.2f} of {n} x 1 worker)")
    print(
        json.dumps(
            {
                "stock_fps": round(stock_fps, 1),
                "fast_fps": round(fast_fps, 1),
                "ratio": round(fast_fps / stock_fps, 2),
                "workers": {n: round(v, 1) for n, v in agg.items()},
                "parallel_efficiency": {n: round(v, 3) for n, v in eff.items()},
                "efficiency_vs_bare_process": {
                    n: round(v / (n * fast_fps), 3) for n, v in agg.items()
                },
                "per_worker_episodes": args.per_worker,
                "steps": args.steps,
                "cpu": platform.processor() or platform.machine(),
                "cores": os.cpu_count(),
            }
        )
    )


if __name__ == "__main__":
    main()
