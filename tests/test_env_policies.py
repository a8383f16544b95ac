"""Real CarRacing-v3 episodes: preprocessing, the collection policies, seed-ordered workers."""

import numpy as np
import pytest

from wm_core.config import EnvConfig
from wm_core.env import make_env, preprocess
from wm_core.policies import HIGH, LOW, BrownianPolicy, HeuristicPolicy
from wm_core.rollout import run_episode, run_episodes
from wm_core.workers import WorkerError


@pytest.fixture(scope="module")
def env():
    e = make_env()
    yield e
    e.close()


def test_preprocess_crops_hud_and_resizes(env):
    obs, _ = env.reset(seed=0)
    small = preprocess(obs)
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    hud = obs.copy()
    hud[84:] = 0  # changing only the HUD rows does not change the model's input
    np.testing.assert_array_equal(preprocess(hud), small)
    # with the HUD kept, the bottom rows of the 64x64 frame are the HUD and react to it
    full = preprocess(obs, crop_hud=False)
    assert full.shape == (64, 64, 3) and not np.array_equal(full, small)
    assert not np.array_equal(preprocess(hud, crop_hud=False)[-8:], full[-8:])


def test_brownian_stays_in_bounds_and_is_seeded(env):
    p = BrownianPolicy(dt=0.02)
    ep1 = run_episode(env, p, seed=3, max_steps=40)
    ep2 = run_episode(env, p, seed=3, max_steps=40)
    assert np.all(ep1["action"] >= LOW) and np.all(ep1["action"] <= HIGH)
    np.testing.assert_array_equal(ep1["action"], ep2["action"])
    np.testing.assert_array_equal(ep1["obs"], ep2["obs"])
    assert ep1["obs"].shape == (40, 64, 64, 3)
    assert ep1["truncated"][-1] and not ep1["truncated"][:-1].any()
    # smooth: consecutive actions differ by about sqrt(dt), far less than white noise would
    assert np.abs(np.diff(ep1["action"], axis=0)).mean() < 0.3


def test_heuristic_drives_and_recovery_leaves_the_road(env):
    plain = run_episode(env, HeuristicPolicy("plain"), seed=20000, max_steps=300)
    assert plain["reward"].sum() > 150  # > 45 tiles in 300 frames
    assert plain["off_road"].mean() < 0.05
    rec = run_episode(env, HeuristicPolicy("recovery"), seed=20001, max_steps=1000)
    assert rec["excursions"] >= 1 and rec["recoveries"] >= 1
    assert rec["reward"].sum() > 150  # and it comes back to keep collecting tiles
    # aggressive corner entry slides: far more frames with a wheel past its friction limit
    agg = run_episode(env, HeuristicPolicy("aggressive"), seed=20000, max_steps=300)
    assert agg["skid"].sum() > 1.5 * plain["skid"].sum()
    assert agg["speed"].max() > plain["speed"].max()


def test_commit_holds_its_line_at_full_throttle_and_leaves_the_road(env):
    """The failure a dream-trained C drifts to (a fixed steering at full throttle while the road
    bends) is in the data: held actions, off the road at speed, where the plain driver never is."""
    com = run_episode(env, HeuristicPolicy("commit"), seed=20000, max_steps=600)
    a = com["action"]
    held = np.all(np.diff(a, axis=0) == 0, axis=1) & (a[1:, 1] == 1.0)  # the same action, gas 1
    assert held.sum() >= 40
    assert np.sum(com["off_road"] & (com["speed"] > 30)) >= 10
    assert com["excursions"] >= 1 and com["recoveries"] >= 1
    plain = run_episode(env, HeuristicPolicy("plain"), seed=20000, max_steps=600)
    assert np.sum(plain["off_road"] & (plain["speed"] > 30)) == 0


@pytest.fixture
def tiny_world(tmp_path) -> list[str]:
    """Paths of a small random V, M and C, as the pipeline saves them."""
    import jax

    from wm_core.checkpoint import save_model
    from wm_core.controller import Controller
    from wm_core.mdrnn import MDNRNN
    from wm_core.vae import VAE

    key = jax.random.key(0)
    save_model(tmp_path / "v.eqx", VAE(8, key=key), "vae", {"z_dim": 8})
    save_model(tmp_path / "m.eqx", MDNRNN(8, 16, 2, key=key), "mdrnn",
               {"z_dim": 8, "hidden": 16, "mixtures": 2})  # fmt: skip
    save_model(tmp_path / "c.eqx", Controller(8, 16, key=key), "controller",
               {"z_dim": 8, "hidden": 16})  # fmt: skip
    return [str(tmp_path / f) for f in ("v.eqx", "m.eqx", "c.eqx")]


def test_agent_noise_perturbs_its_actions_the_same_way_on_the_same_seed(env, tiny_world):
    """evaluate.noise / wm play --noise: Gaussian noise on C's actions, within the action box,
    drawn from the episode's seed, so a replay (evaluate's videos) drives the same episode."""
    from wm_core.agent import AgentPolicy

    def drive(noise):
        policy = AgentPolicy(*tiny_world, noise=noise)
        return run_episode(env, policy, seed=3, max_steps=40)["action"]

    plain, noisy = drive(0.0), drive(0.3)
    assert np.all(noisy >= LOW) and np.all(noisy <= HIGH)
    assert np.abs(noisy - plain).mean() > 0.05
    np.testing.assert_array_equal(drive(0.3), noisy)


def test_the_agents_one_call_per_frame_drives_as_two_calls_bit_for_bit(env, tiny_world):
    """AgentPolicy runs M's step for frame t with V and C on frame t + 1 in one jitted call; the
    textbook order (V and C, then M, two calls per frame) gives the same actions and reward
    predictions, bit for bit, and one prediction per executed action."""
    import jax.numpy as jnp

    from wm_core.agent import AgentPolicy, _encode_act

    class TwoCalls(AgentPolicy):
        def encode_act(self, frame):
            self.advance()
            return _encode_act(self.vae, self.ctrl, jnp.asarray(frame), self.carry[0])

    one, two = (
        run_episode(env, cls(*tiny_world, noise=0.2), seed=5, max_steps=60)
        for cls in (AgentPolicy, TwoCalls)
    )
    assert len(one["pred_reward"]) == len(one["action"]) == 60
    np.testing.assert_array_equal(one["action"], two["action"])
    np.testing.assert_array_equal(one["pred_reward"], two["pred_reward"])


def test_the_plain_expert_labels_every_frame_without_changing_the_drive(env):
    """expert_action[t] is the plain heuristic's action in the state of frame t: equal to the
    driven action when the plain heuristic drives, different where the recovery driver swerves
    or the Brownian one wanders, and labelling never changes what was driven."""
    plain = run_episode(env, HeuristicPolicy("plain"), 20000, 200, expert=HeuristicPolicy("plain"))
    np.testing.assert_array_equal(plain["expert_action"], plain["action"])
    for policy in (HeuristicPolicy("recovery"), BrownianPolicy(dt=0.02)):
        alone = run_episode(env, policy, 20001, 200)
        ep = run_episode(env, policy, 20001, 200, expert=HeuristicPolicy("plain"))
        assert "expert_action" not in alone and ep["expert_action"].shape == (200, 3)
        np.testing.assert_array_equal(ep["action"], alone["action"])
        np.testing.assert_array_equal(ep["obs"], alone["obs"])
        assert np.abs(ep["expert_action"] - ep["action"]).max() > 0.3
        assert np.all(ep["expert_action"] >= LOW) and np.all(ep["expert_action"] <= HIGH)


ENV30 = EnvConfig(max_steps=30, episode_timeout_s=120, fast=True, crop_hud=True)


def test_parallel_results_do_not_depend_on_workers():
    seeds = [5, 6, 7]
    one = run_episodes(("random", 0.02), seeds, ENV30, workers=1, desc="w1")
    two = run_episodes(("random", 0.02), seeds, ENV30, workers=2, desc="w2")
    for a, b in zip(one, two):
        assert a["seed"] == b["seed"]
        np.testing.assert_array_equal(a["obs"], b["obs"])
        np.testing.assert_array_equal(a["reward"], b["reward"])


def test_unknown_policy_is_refused():
    with pytest.raises(WorkerError, match="seed 1 failed: ValueError: unknown policy kind"):
        run_episodes(("drunk",), [1], ENV30, workers=1, desc="x")
