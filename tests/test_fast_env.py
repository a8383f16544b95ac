"""The fast renderer is CarRacing-v3, bit for bit: frames, rewards, terminations and infos."""

import numpy as np
import pytest
from gymnasium.envs.box2d import car_racing as cr

from wm_core import fast_env
from wm_core.env import make_env
from wm_core.fast_env import _covers_window
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


def test_fast_env_is_stock_at_the_playfields_edge(monkeypatch):
    """Past the zoom-in the playfield is a plain fill unless its edge is in view; place the car
    at the centre, near each edge and a corner, at several headings: same pixels as stock."""
    covered = []

    def recorded(*args):
        covered.append(_covers_window(*args))
        return covered[-1]

    monkeypatch.setattr(fast_env, "_covers_window", recorded)
    stock, fast = make_env(fast=False).unwrapped, make_env(fast=True).unwrapped
    for env in (stock, fast):
        env.reset(seed=8)
        env.t = 2.0  # fully zoomed in
    b = cr.PLAYFIELD
    places = [(0.0, 0.0), (b - 10, 0.0), (-b + 25, 5.0), (3.0, b - 40), (-b + 30, -b + 30)]
    covered.clear()  # reset rendered a zoomed-out frame
    for x, y in places:
        for angle in (0.0, 0.7, 2.5, -2.0):
            for env in (stock, fast):
                env.car.hull.position = (x, y)
                env.car.hull.angle = angle
            got, want = fast._render("state_pixels"), stock._render("state_pixels")
            assert np.array_equal(got, want), f"car at {(x, y)}, angle {angle}"
    assert len(covered) == 20 and any(covered) and not all(covered)  # fill and polygon both ran
