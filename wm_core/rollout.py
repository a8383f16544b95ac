"""Episodes in the real CarRacing-v3, one policy per episode, run in parallel by seed.

A job is ``(policy_spec, seed, max_steps, keep_raw)``; ``policy_spec`` is a small tuple
(``("random", dt)``, ``("heuristic", mode)``, ``("agent", vae, rnn, ctrl, noise)``) so that
worker processes can rebuild the policy. Results come back in seed order, so a dataset does
not depend on the number of workers.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp

import numpy as np
from tqdm import tqdm

from wm_core.env import make_env, on_road, preprocess

_CACHE: dict = {}  # per process: env and policies, built once


def make_policy(spec: tuple):
    kind = spec[0]
    if kind == "random":
        from wm_core.policies import BrownianPolicy

        return BrownianPolicy(dt=spec[1])
    if kind == "heuristic":
        from wm_core.policies import HeuristicPolicy

        return HeuristicPolicy(mode=spec[1])
    if kind == "agent":
        from wm_core.agent import AgentPolicy

        return AgentPolicy(*spec[1:4], noise=spec[4])
    raise ValueError(f"unknown policy kind {kind!r} (expected random, heuristic or agent)")


def run_episode(env, policy, seed: int, max_steps: int, keep_raw: bool = False) -> dict:
    """Drive one episode; obs[t] is the frame before action[t], reward[t] is paid for it."""
    obs, _ = env.reset(seed=seed)
    policy.reset(seed, env)
    rec = {
        k: []
        for k in ("obs", "action", "reward", "terminated", "truncated", "off_road", "new_tile")
    }
    raw = []
    for t in range(max_steps):
        a = policy.act(obs, env)
        rec["obs"].append(preprocess(obs))
        if keep_raw:
            raw.append(obs)
        tiles_before = env.unwrapped.tile_visited_count
        obs, r, term, trunc, _ = env.step(a)
        rec["action"].append(a)
        rec["reward"].append(r)
        rec["terminated"].append(term)
        rec["truncated"].append(trunc or (t == max_steps - 1 and not term))
        rec["off_road"].append(not on_road(env))
        rec["new_tile"].append(env.unwrapped.tile_visited_count > tiles_before)
        if term or trunc:
            break
    out = {k: np.asarray(v) for k, v in rec.items()}
    out["obs"] = out["obs"].astype(np.uint8)
    out["action"] = out["action"].astype(np.float32)
    out["reward"] = out["reward"].astype(np.float32)
    out["seed"] = seed
    out["pred_reward"] = np.asarray(getattr(policy, "pred_reward", []), np.float32)
    out["excursions"] = getattr(policy, "excursions", 0)
    out["recoveries"] = getattr(policy, "recoveries", 0)
    if keep_raw:
        out["raw"] = np.stack(raw)
    return out


def episode_job(spec: tuple, seed: int, max_steps: int, keep_raw: bool = False) -> dict:
    if "env" not in _CACHE:
        _CACHE["env"] = make_env()
    if spec not in _CACHE:
        _CACHE[spec] = make_policy(spec)
    return run_episode(_CACHE["env"], _CACHE[spec], seed, max_steps, keep_raw)


def run_episodes(
    spec: tuple,
    seeds: list[int],
    max_steps: int,
    workers: int,
    desc: str,
    keep_raw: bool = False,
    timeout_s: float = 1800.0,
) -> list[dict]:
    """Run one episode per seed, on ``workers`` processes; results in the order of ``seeds``."""
    bar = tqdm(total=len(seeds), desc=desc, mininterval=2.0)
    results: dict[int, dict] = {}

    def done(seed, ep):
        results[seed] = ep
        bar.update(1)
        rets = [float(e["reward"].sum()) for e in results.values()]
        bar.set_postfix(mean_return=f"{np.mean(rets):.1f}")

    if workers == 1:
        for s in seeds:
            done(s, episode_job(spec, s, max_steps, keep_raw))
    else:
        ctx = mp.get_context("spawn")  # no forked JAX/pygame state
        with cf.ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            futures = {pool.submit(episode_job, spec, s, max_steps, keep_raw): s for s in seeds}
            try:
                for fut in cf.as_completed(futures, timeout=timeout_s):
                    seed = futures[fut]
                    try:
                        done(seed, fut.result())
                    except Exception as e:
                        raise RuntimeError(
                            f"{desc}: episode with seed {seed} failed: {type(e).__name__}: {e}"
                        ) from e
            except cf.TimeoutError:
                missing = sorted(set(seeds) - set(results))
                raise RuntimeError(
                    f"{desc}: episodes with seeds {missing[:5]} did not finish "
                    f"within {timeout_s:.0f} s"
                ) from None
            finally:
                for f in futures:
                    f.cancel()
    bar.close()
    return [results[s] for s in seeds]
