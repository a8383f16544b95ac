"""Episodes in the real CarRacing-v3, one policy per episode, run in parallel by seed.

A job is ``(policy_spec, seed, max_steps, keep_raw, ...)``; ``policy_spec`` is a small tuple
(``("random", dt)``, ``("heuristic", mode)``, ``("agent", vae, rnn, ctrl, noise)``) so that
worker processes can rebuild the policy. Results come back in seed order, so a dataset does
not depend on the number of workers.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import Float
from tqdm import tqdm

from wm_core.config import EnvConfig
from wm_core.env import make_env, on_road, preprocess
from wm_core.workers import run_jobs

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


def run_episode(
    env,
    policy,
    seed: int,
    max_steps: int,
    keep_raw: bool = False,
    crop_hud: bool = True,
    expert=None,
) -> dict:
    """Drive one episode; obs[t] is the frame before action[t], reward[t] is paid for it.

    obs[t] is the preprocessed 64x64 frame, which is also what the policy is given. Per frame
    it also records, after the action: off_road, new_tile, the car's speed and skid (some
    wheel's tyre force past twice its friction limit: Box2D's own skid-mark condition).
    ``expert`` (a policy, e.g. the plain heuristic) labels every frame with the action it
    would take there, ``expert_action[t]``, whoever drives: the labels the clone learns from
    (DAgger's relabelling, Ross et al. 2011; wm_core/clone.py).
    """
    obs, _ = env.reset(seed=seed)
    policy.reset(seed, env)
    if expert is not None:
        expert.reset(seed, env)
    rec = {
        k: []
        for k in ("obs", "action", "reward", "terminated", "truncated", "off_road", "new_tile")
        + ("speed", "skid", "expert_action")
    }
    raw = []
    for t in range(max_steps):
        frame = preprocess(obs, crop_hud)
        if expert is not None:  # before the driver acts: both see the same state
            rec["expert_action"].append(expert.act(obs, env, frame))
        a = policy.act(obs, env, frame)
        rec["obs"].append(frame)
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
        car = env.unwrapped.car
        rec["speed"].append(float(np.linalg.norm(car.hull.linearVelocity)))
        rec["skid"].append(any(w.skid_start is not None or w.skid_particle for w in car.wheels))
        if term or trunc:
            break
    out = {k: np.asarray(v) for k, v in rec.items()}
    out["obs"] = out["obs"].astype(np.uint8)
    out["action"] = out["action"].astype(np.float32)
    out["speed"] = out["speed"].astype(np.float32)
    if expert is None:
        del out["expert_action"]
    else:
        out["expert_action"] = out["expert_action"].astype(np.float32)
    out["reward"] = out["reward"].astype(np.float32)
    out["seed"] = seed
    out["pred_reward"] = np.asarray(getattr(policy, "pred_reward", []), np.float32)
    out["excursions"] = getattr(policy, "excursions", 0)
    out["recoveries"] = getattr(policy, "recoveries", 0)
    if keep_raw:
        out["raw"] = np.stack(raw)
    return out


def episode_job(
    spec: tuple,
    seed: int,
    max_steps: int,
    keep_raw: bool = False,
    fast: bool = True,
    crop_hud: bool = True,
    keep_obs: bool = True,
    label: bool = False,
) -> dict:
    if ("env", fast) not in _CACHE:
        _CACHE["env", fast] = make_env(fast=fast)
    if label and ("expert", "plain") not in _CACHE:
        from wm_core.policies import HeuristicPolicy

        _CACHE["expert", "plain"] = HeuristicPolicy("plain")
    if spec not in _CACHE:
        policies = [k for k in _CACHE if k[0] not in ("env", "expert")]
        for old in policies[: max(0, len(policies) - 3)]:  # a population: one C per candidate
            del _CACHE[old]
        _CACHE[spec] = make_policy(spec)
    expert = _CACHE["expert", "plain"] if label else None
    env = _CACHE["env", fast]
    ep = run_episode(env, _CACHE[spec], seed, max_steps, keep_raw, crop_hud, expert)
    if not keep_obs:  # scoring only: do not ship ~12 MB of frames per episode back
        del ep["obs"]
    return ep


def run_episodes(
    spec: tuple,
    seeds: list[int],
    env: EnvConfig,
    workers: int,
    desc: str,
    keep_raw: bool = False,
    keep_obs: bool = True,
    label: bool = False,
) -> list[dict]:
    """Run one episode per seed, on ``workers`` processes; results in the order of ``seeds``.

    Episodes last at most ``env.max_steps`` frames, on the fast or the stock renderer
    (``env.fast``). An episode that fails, hangs past ``env.episode_timeout_s`` or kills its
    worker raises WorkerError naming its seed (:mod:`wm_core.workers`). ``keep_raw`` also
    returns the 96x96 frames (for videos); ``keep_obs=False`` drops the 64x64 ones (scoring);
    ``label`` adds the plain heuristic expert's action on every frame (``expert_action``).
    """
    bar = tqdm(total=len(seeds), desc=desc, mininterval=2.0)
    results: dict[int, dict] = {}

    def done(seed, ep):
        results[seed] = ep
        bar.update(1)
        rets = [float(e["reward"].sum()) for e in results.values()]
        bar.set_postfix(mean_return=f"{np.mean(rets):.1f}")

    jobs = [
        (s, (spec, s, env.max_steps, keep_raw, env.fast, env.crop_hud, keep_obs, label))
        for s in seeds
    ]
    for seed, ep in run_jobs(episode_job, jobs, workers, desc, env.episode_timeout_s):
        done(seed, ep)
    bar.close()
    return [results[s] for s in seeds]


def run_population(
    specs: list[tuple], seeds: list[int], env: EnvConfig, workers: int, desc: str
) -> Float[np.ndarray, "P E"]:
    """Every policy of ``specs`` on every track of ``seeds`` (scoring only): returns (P, E).

    Jobs are named ``<seed>-c<i>`` (track, candidate), so an error names both.
    """
    jobs = [
        (f"{s}-c{i}", (spec, s, env.max_steps, False, env.fast, env.crop_hud, False))
        for i, spec in enumerate(specs)
        for s in seeds
    ]
    returns = {}
    bar = tqdm(total=len(jobs), desc=desc, mininterval=2.0)
    for name, ep in run_jobs(episode_job, jobs, workers, desc, env.episode_timeout_s):
        returns[name] = float(ep["reward"].sum())
        bar.update(1)
    bar.close()
    return np.array([[returns[f"{s}-c{i}"] for s in seeds] for i in range(len(specs))])
