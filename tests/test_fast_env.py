"""The fast renderer is CarRacing-v3, bit for bit: frames, rewards, terminations and infos."""

import numpy as np
import pytest

from wm_core.env import make_env
from wm_core.policies import BrownianPolicy, HeuristicPolicy


def drive(fast: bool, seed: int, policy, steps: int):
    env = make_env(fast=fast)
    obs, info = env.reset(seed=seed)
    policy.reset(seed, env)
    frames, rest = [obs], [info]
    for _ in range(steps):
        obs, r, term, trunc, info = env.step(policy.act(obs, env))
        frames.append(obs)
        rest.append((r, term, trunc, info))
        if term or trunc:
            break
    env.close()
    return np.stack(frames), rest


@pytest.mark.parametrize(
    "seed, make_policy, steps",
    [
        (3, lambda: BrownianPolicy(0.02), 250),  # zoom-in, spins, grass from every angle
        (77, lambda: HeuristicPolicy("aggressive"), 250),  # fast corners, slides off the road
        (5, lambda: HeuristicPolicy("recovery"), 150),
    ],
)
def test_fast_env_is_stock_bit_for_bit(seed, make_policy, steps):
    stock_frames, stock_rest = drive(False, seed, make_policy(), steps)
    fast_frames, fast_rest = drive(True, seed, make_policy(), steps)
    assert fast_frames.dtype == np.uint8 and fast_frames.shape == stock_frames.shape
    differ = np.flatnonzero((fast_frames != stock_frames).reshape(len(fast_frames), -1).any(1))
    assert differ.size == 0, f"frames {differ[:5]} differ"
    assert fast_rest == stock_rest


def test_fast_env_keeps_the_stock_time_limit():
    env = make_env(fast=True)
    assert env.spec.max_episode_steps == 1000 and env.spec.reward_threshold == 900
