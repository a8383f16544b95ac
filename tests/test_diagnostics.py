"""diagnostics/: the excursion replay follows the real actions, not C; cross_dream's own world is
the dream C was evolved in."""

import importlib.util
import json
from pathlib import Path

import cv2
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_episodes
from jax.flatten_util import ravel_pytree

from wm_core.controller import Controller
from wm_core.dream import make_population_returns, sample_starts
from wm_core.mdrnn import MDNRNN


def _load(name: str):
    """A script of diagnostics/ as a module (the folder is not a package)."""
    path = Path(__file__).resolve().parents[1] / "diagnostics" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


replay_mod = _load("excursion_replay")
cross_mod = _load("cross_dream")
rank_mod = _load("dream_rank")
reward_mod = _load("reward_calibration")
fidelity_mod = _load("dream_fidelity")
frames_mod = _load("dream_frames")


def test_replay_is_blind_to_c_and_the_closed_loop_is_not(key):
    rnn = MDNRNN(4, 8, 2, key=key)
    c1, c2 = (Controller(4, 8, key=jax.random.fold_in(key, i)) for i in (1, 2))
    probe = (jnp.ones(4), jnp.array(0.0, jnp.float32))
    hist = (jnp.zeros((5, 4)), jnp.full((5, 3), 0.3))
    actions = jnp.tile(jnp.array([0.5, 1.0, 0.0]), (12, 1))
    keys = jax.random.split(key, 3)

    def run(ctrl, replay):
        p_off, gas = replay_mod.dreams(rnn, ctrl, probe, *hist, jnp.ones(4), actions, keys, 1.0,
                                       replay)  # fmt: skip
        return np.asarray(p_off), np.asarray(gas)

    (p1, g1), (p2, g2) = run(c1, True), run(c2, True)
    assert p1.shape == g1.shape == (3, 12)
    np.testing.assert_array_equal(p1, p2)  # the dream follows the real actions only
    assert not np.array_equal(g1, g2)  # while each C's would-be gas is still recorded
    (q1, _), (q2, _) = run(c1, False), run(c2, False)
    assert not np.allclose(q1, q2)  # closed loop: C's actions drive the dream
    assert ((0 <= p1) & (p1 <= 1)).all()


def test_cross_dream_own_world_is_the_evolution_dream_and_others_differ(key):
    own = MDNRNN(4, 8, 2, key=key)
    other = MDNRNN(4, 8, 2, key=jax.random.fold_in(key, 5))
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    starts = sample_starts(data, 6, 5, np.random.default_rng(0), 0.5)
    r = cross_mod.cross_returns(ctrl, own, [own, other], starts, key, 1.25, 15)
    assert r.shape == (2,)
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    evo = make_population_returns(ctrl, 1.25, 15)(own, flat[None], starts, key)
    assert r[0] == np.asarray(evo).mean()  # C in its own M: the dream evolve scores it in
    assert r[1] != r[0]


def test_candidates_hold_the_kept_c_and_score_like_it(tmp_path, monkeypatch, capsys, key):
    """record runs the stage unchanged (its C is one of the saved rows); a row extracted and
    a row scored in the batch give what the kept C gives."""
    import yaml

    from wm_core.checkpoint import load_model, save_model
    from wm_core.data import write_dataset

    root = Path(__file__).resolve().parents[1]
    params = yaml.safe_load((root / "tests" / "tiny_params.yaml").read_text())
    params["dream"] |= {"dropout": 0.0, "offroad_penalty": 0.0, "round_offroad_penalty": 0.0}
    params["evolve"] |= {"members": 1, "real_check_every": 0}  # dream only: no V needed
    params["hybrid"] |= {"real_generations": 0}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("WM_PARAMS", str(tmp_path / "params.yaml"))
    monkeypatch.chdir(tmp_path)
    data = make_episodes(lengths=(40, 25), z_dim=8, frames=False)
    write_dataset("lat.zarr", data)
    rnn = MDNRNN(8, 16, 2, key=key)
    save_model("m.eqx", rnn, "mdrnn", {"z_dim": 8, "hidden": 16, "mixtures": 2})
    cand_mod = _load("candidates")
    cands = cand_mod.record("c.npy", ["c.eqx", "c.json", "c.tsv", "m.eqx", "lat.zarr"])
    assert cands.shape[0] == params["evolve"]["generations"] + 1
    np.testing.assert_array_equal(np.load("c.npy"), cands)
    kept = load_model("c.eqx", "controller", Controller)[0]
    flat = np.asarray(ravel_pytree(eqx.filter(kept, eqx.is_array))[0])
    i = int(np.flatnonzero((cands.astype(np.float32) == flat).all(axis=1))[0])  # raises if absent
    cand_mod.main(["extract", "c.npy", str(i), "m.eqx", "row.eqx"])
    row = load_model("row.eqx", "controller", Controller)[0]
    assert eqx.tree_equal(row, kept)
    other = MDNRNN(8, 16, 2, key=jax.random.fold_in(key, 5))
    starts = sample_starts(data, 4, 3, np.random.default_rng(0), 0.5)
    one = cross_mod.cross_returns(kept, rnn, [rnn, other], starts, key, 1.25, 12)
    batch = cross_mod.cross_returns(kept, rnn, [rnn, other], starts, key, 1.25, 12, cands, 2)
    assert batch.shape == (2, len(cands))
    np.testing.assert_allclose(batch[:, i], one, rtol=1e-5)
    assert not np.allclose(batch[0], batch[0, i])  # the rows are different controllers
    save_model("other.eqx", other, "mdrnn", {"z_dim": 8, "hidden": 16, "mixtures": 2})
    capsys.readouterr()
    cross_mod.main(["--latents", "lat.zarr", "--agent", "c.npy:m.eqx", "--worlds", "m.eqx",
                    "other.eqx", "--dreams", "4", "--horizon", "12", "--warmup", "3"])  # fmt: skip
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["agent"] for r in rows] == [f"c.npy[{k}]" for k in range(len(cands))]
    assert all(r["other_over_own"] is not None for r in rows)
    with pytest.raises(SystemExit, match="parameters|numbers"):
        cand_mod.controller_from_row(cands[0][:-1], rnn)


def test_clone_variants_kf_matches_the_stage_and_nosw_drops_the_swerves(key):
    """clone_variants' kfK is evolve's clone with clone_keyframe K; nosw drops gas-0.5 frames."""
    from wm_core.clone import clone_controller

    variants = _load("clone_variants")
    rnn = MDNRNN(8, 16, 2, key=key)
    data = make_episodes(lengths=(20, 30, 20, 30), z_dim=8, frames=False)
    data.attrs["episode_policy"] = ["random", "heuristic/recovery"] * 2
    s = data.episode_starts[1]
    data.action[s + 3 : s + 8, 1] = variants.SWERVE_GAS
    got, info = variants.variant_fit(rnn, data, "kf64")
    want, _ = clone_controller(rnn, data, ["heuristic"], keyframe=64.0)
    np.testing.assert_allclose(got.linear.weight, want.linear.weight, atol=1e-6)
    assert info["frames"] == 60
    assert variants.variant_fit(rnn, data, "nosw_kf64")[1]["frames"] == 55


def test_dream_rank_sample_view_is_the_pipeline_dream_and_mode_is_not(key):
    rnn = MDNRNN(4, 8, 2, key=key)
    rnn = eqx.tree_at(lambda m: m.head.bias, rnn, rnn.head.bias.at[-1].set(-20.0))  # no done
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    starts = sample_starts(data, 6, 5, np.random.default_rng(0), 0.5)
    probe = (jnp.ones(4), jnp.array(0.0, jnp.float32))
    ret, off, act = rank_mod.dream_stats(ctrl, rnn, starts, key, probe, 1.25, 15, "sample")
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    evo = make_population_returns(ctrl, 1.25, 15)(rnn, flat[None], starts, key)[0]
    np.testing.assert_allclose(np.asarray(ret), np.asarray(evo), rtol=1e-6, atol=1e-6)
    assert ret.shape == off.shape == (6,) and act.shape == (6, 3)
    assert ((0 <= np.asarray(off)) & (np.asarray(off) <= 1)).all()
    mode, _, _ = rank_mod.dream_stats(ctrl, rnn, starts, key, probe, 1.25, 15, "mode")
    assert not np.allclose(np.asarray(mode), np.asarray(ret))  # C reads another z
    # C reading another M's h: the judge's dream of the pipeline (evolve's ``memory``)
    own = MDNRNN(4, 8, 2, key=jax.random.fold_in(key, 9))
    judged, _, _ = rank_mod.dream_stats(ctrl, rnn, starts, key, probe, 1.25, 15, "sample", own)
    evo = make_population_returns(ctrl, 1.25, 15)(rnn, flat[None], starts, key, None, own)[0]
    np.testing.assert_allclose(np.asarray(judged), np.asarray(evo), rtol=1e-6, atol=1e-6)
    assert not np.allclose(np.asarray(judged), np.asarray(ret))


def test_dream_rank_constant_controller_and_rank_correlation(key):
    ctrl = rank_mod.constant_controller((0.25, 1.0, 0.0), 4, 8)
    a = np.asarray(ctrl(jax.random.normal(key, (4,)), jnp.ones(8)))
    np.testing.assert_allclose(a, [0.25, 1.0, 0.0], atol=1e-5)
    with pytest.raises(SystemExit, match="steer in"):
        rank_mod.constant_controller((1.0, 0.5, 0.0), 4, 8)
    assert rank_mod.rank_corr([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert rank_mod.rank_corr([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)


def test_reward_calibration_sums_the_head_over_each_real_episode(tmp_path, capsys, key):
    """The padded, batched pass equals stepping M through each episode alone; the CLI groups
    mirror images with their originals and prints the correlation over all episodes."""
    from wm_core.checkpoint import save_model
    from wm_core.data import write_dataset

    rnn = MDNRNN(4, 8, 2, key=key)
    data = make_episodes(lengths=(7, 3, 5), z_dim=4, frames=False)
    real, pred = reward_mod.episode_reward_sums(rnn, data)
    np.testing.assert_allclose(real, data.episode_returns())
    for e, (s, n) in enumerate(zip(data.episode_starts, data.lengths)):
        carry, total = rnn.init_carry(), 0.0
        for t in range(s, s + n):
            carry = rnn.step(jnp.asarray(data.mu[t]), jnp.asarray(data.action[t]), carry)
            total += float(rnn.heads(carry[0])[3])
        assert abs(pred[e] - total) < 1e-4

    data.attrs["episode_policy"] = ["random", "heuristic/plain", "heuristic/plain/mirrored"]
    write_dataset(tmp_path / "l.zarr", data)
    save_model(tmp_path / "m.eqx", rnn, "mdrnn", {"z_dim": 4, "hidden": 8, "mixtures": 2})
    reward_mod.main(["--rnn", str(tmp_path / "m.eqx"), "--latents", str(tmp_path / "l.zarr")])
    out = capsys.readouterr().out
    assert "heuristic/plain" in out and "mirrored" not in out
    assert "over 3 episodes: rank correlation" in out


def test_dream_fidelity_replay_of_c_own_actions_is_its_closed_loop(tmp_path, capsys, key):
    """Replaying a constant C's own action is its closed-loop dream (same keys, same returns);
    replaying other actions is not; the teacher-forced sums are reward_calibration's."""
    from wm_core.checkpoint import save_model
    from wm_core.data import write_dataset

    rnn = MDNRNN(4, 8, 2, key=key)
    data = make_episodes(lengths=(9, 6), z_dim=4, frames=False)
    data.off_road = np.arange(data.n_frames) % 3 == 0
    horizon, keys = 9, jax.random.split(key, 2)
    probe = (jnp.ones(4), jnp.array(0.0, jnp.float32))
    const = rank_mod.constant_controller((0.2, 0.7, 0.0), 4, 8)
    z, a, real, _ = fidelity_mod.first_steps(data, horizon)
    np.testing.assert_allclose(real, data.episode_returns(), rtol=1e-6)  # both end by 9
    own = jnp.broadcast_to(const(jnp.zeros(4), jnp.zeros(8)), a.shape)
    args = (keys, probe, 1.25, horizon, "sample")
    _, (o_ret, _, _), (c_ret, _, _) = fidelity_mod.fidelity(const, rnn, jnp.asarray(z), own, *args)
    np.testing.assert_allclose(np.asarray(o_ret), np.asarray(c_ret), rtol=1e-5, atol=1e-5)
    r_hat, (o2, _, _), _ = fidelity_mod.fidelity(const, rnn, jnp.asarray(z), jnp.asarray(a), *args)
    assert not np.allclose(np.asarray(o2), np.asarray(c_ret))
    valid = np.arange(horizon)[None, :] < data.lengths[:, None]
    tf = (np.asarray(r_hat) * valid).sum(1)
    np.testing.assert_allclose(tf, reward_mod.episode_reward_sums(rnn, data)[1], atol=1e-4)

    write_dataset(tmp_path / "l.zarr", data)
    save_model(tmp_path / "m.eqx", rnn, "mdrnn", {"z_dim": 4, "hidden": 8, "mixtures": 2})
    save_model(tmp_path / "c.eqx", const, "controller", {"z_dim": 4, "hidden": 8})
    m, c, lat = (str(tmp_path / f) for f in ("m.eqx", "c.eqx", "l.zarr"))
    fidelity_mod.main(["--rnn", m, "--controller", c, "--latents", lat, "--probe-latents", lat,
                       "--horizon", "5"])  # fmt: skip
    out = capsys.readouterr().out
    for row in ("real", "teacher-forced", "open loop", "closed loop"):
        assert row in out


def test_dream_frames_films_each_controller_from_the_same_starts(tmp_path, capsys, key):
    """One row of decoded dream frames per (controller, start), one column per --every steps;
    the same keys for every controller, so two runs agree and only the actions tell rows apart."""
    from wm_core.checkpoint import save_model
    from wm_core.data import write_dataset
    from wm_core.vae import VAE

    rnn = MDNRNN(8, 16, 2, key=key)
    save_model(tmp_path / "m.eqx", rnn, "mdrnn", {"z_dim": 8, "hidden": 16, "mixtures": 2})
    save_model(tmp_path / "v.eqx", VAE(8, key=key), "vae", {"z_dim": 8})
    write_dataset(tmp_path / "l.zarr", make_episodes(lengths=(30, 20), z_dim=8, frames=False))
    ctrl = Controller(8, 16, key=jax.random.fold_in(key, 1))
    zs = frames_mod.dream_latents(ctrl, rnn, jnp.zeros((5, 8)), jnp.zeros((5, 3)), jnp.ones(8),
                                  key, 1.25, 7)  # fmt: skip
    assert zs.shape == (7, 8) and np.isfinite(np.asarray(zs)).all()

    def film(name, *consts):
        args = ["--rnn", str(tmp_path / "m.eqx"), "--vae", str(tmp_path / "v.eqx"), "--latents",
                str(tmp_path / "l.zarr"), "--out", str(tmp_path / name), "--starts", "2",
                "--every", "2", "--columns", "3"]  # fmt: skip
        for c in consts:
            args += ["--constant", c]
        frames_mod.main(args)
        img = cv2.imread(str(tmp_path / name))
        return img.reshape(-1, 2, 64, 3 * 64, 3)  # (controllers, starts, 64, columns x 64, BGR)

    both = film("a.png", "0,1,0", "0.5,0,0.8")
    assert both.shape[0] == 2
    np.testing.assert_array_equal(film("b.png", "0,1,0")[0], both[0])  # same starts and keys
    assert not np.array_equal(both[0], both[1])  # the dream answers the actions
    with pytest.raises(SystemExit, match="nothing to film"):
        frames_mod.main(["--rnn", str(tmp_path / "m.eqx"), "--vae", str(tmp_path / "v.eqx"),
                         "--latents", str(tmp_path / "l.zarr"), "--out", str(tmp_path / "c.png")
                         ])  # fmt: skip


def test_posterior_play_at_scale_zero_is_the_pipelines_agent(tmp_path, key):
    """z = mu + 0 * sigma * eps: the same actions as wm_core.agent on a real track; scale 1
    changes them (C reads the sample)."""
    from wm_core.agent import AgentPolicy
    from wm_core.checkpoint import save_model
    from wm_core.env import make_env
    from wm_core.rollout import run_episode
    from wm_core.vae import VAE

    play_mod = _load("posterior_play")
    paths = [tmp_path / n for n in ("v.eqx", "m.eqx", "c.eqx")]
    save_model(paths[0], VAE(8, key=key), "vae", {"z_dim": 8})
    rnn_header = {"z_dim": 8, "hidden": 16, "mixtures": 2}
    save_model(paths[1], MDNRNN(8, 16, 2, key=key), "mdrnn", rnn_header)
    save_model(paths[2], Controller(8, 16, key=jax.random.fold_in(key, 1)), "controller",
               {"z_dim": 8, "hidden": 16})  # fmt: skip
    env = make_env(True)

    def actions(policy):
        return run_episode(env, policy, 70000, 40, crop_hud=False)["action"]

    pipeline = actions(AgentPolicy(*paths))
    np.testing.assert_allclose(actions(play_mod.PosteriorSamplePolicy(*paths, scale=0.0)),
                               pipeline, atol=1e-6)  # fmt: skip
    assert not np.allclose(actions(play_mod.PosteriorSamplePolicy(*paths, scale=1.0)), pipeline)
