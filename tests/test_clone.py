"""evolve.init: clone: C fitted to the expert's logged actions on the agent's own [z, h]."""

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from conftest import make_episodes

from stages import evolve, train_rnn
from wm_core.checkpoint import load_model, save_model
from wm_core.clone import agent_inputs, cloned_episodes, fit_controller, keyframe_weights
from wm_core.controller import Controller
from wm_core.data import DataError, read_dataset, write_dataset
from wm_core.mdrnn import MDNRNN

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["random", "heuristic/plain", "random/mirrored", "heuristic/plain/mirrored"]


def labelled(labels=LABELS, lengths=(9, 14, 9, 14)):
    data = make_episodes(lengths=lengths, z_dim=8, frames=False)
    data.attrs["episode_policy"] = list(labels)
    return data


def test_cloned_episodes_are_chosen_by_label_prefix_mirrors_included():
    data = labelled()
    assert cloned_episodes(data, ["heuristic"]) == [1, 3]
    assert cloned_episodes(data, ["random", "heuristic/plain"]) == [0, 1, 2, 3]
    with pytest.raises(DataError, match="no episode of \\['heuristic/recovery'\\]"):
        cloned_episodes(data, ["heuristic/recovery"])
    data.attrs["episode_policy"] = LABELS[:3]
    with pytest.raises(DataError, match="3 episode_policy labels for 4 episodes"):
        cloned_episodes(data, ["heuristic"])


def test_inputs_are_the_real_agents_z_and_h(key):
    """h_t is M's state after the episode's first t (mu, action) steps from zero, the state
    wm_core.agent hands C before it acts on frame t."""
    rnn = MDNRNN(8, 16, 2, key=key)
    data = labelled()
    x, a = agent_inputs(rnn, data, [1, 2])
    assert x.shape == (14 + 9, 8 + 16)
    s = data.episode_starts[1]
    np.testing.assert_array_equal(a[:14], data.action[s : s + 14])
    np.testing.assert_array_equal(x[:14, :8], data.mu[s : s + 14])
    np.testing.assert_array_equal(x[0, 8:], 0.0)
    for t in (1, 5, 13):
        want = rnn.warm(jnp.asarray(data.mu[s : s + t]), jnp.asarray(data.action[s : s + t]))[0]
        np.testing.assert_allclose(x[t, 8:], want, atol=1e-6)
    s2 = data.episode_starts[2]  # the second episode starts from zero again, not from the first
    np.testing.assert_array_equal(x[14, 8:], 0.0)
    np.testing.assert_array_equal(x[14:, :8], data.mu[s2 : s2 + 9])


def test_fit_recovers_a_linear_controllers_actions(key):
    truth = Controller(4, 12, key=key)
    x = np.random.default_rng(0).normal(size=(3000, 16)).astype(np.float32)
    actions = np.asarray(jax.vmap(lambda v: truth(v[:4], v[4:]))(jnp.asarray(x)))
    ctrl, mse = fit_controller(x, actions, 4, 12)
    got = np.asarray(jax.vmap(lambda v: ctrl(v[:4], v[4:]))(jnp.asarray(x)))
    assert mse < 1e-3 and np.abs(got - actions).mean() < 0.02
    with pytest.raises(ValueError, match="expected \\(3000, 17\\)"):
        fit_controller(x, actions, 5, 12)
    bad = x.copy()
    bad[0, 0] = np.nan
    with pytest.raises(FloatingPointError, match="non-finite"):
        fit_controller(bad, actions, 4, 12)


def test_keyframe_weights_favour_the_frames_where_the_expert_changed_its_action():
    """Frame t weighs 1 + k |a_t - a_{t-1}|_1 / mean, a_{-1} = 0 at each episode's start, in
    agent_inputs' frame order; k = 0 weighs every frame 1."""
    data = labelled(lengths=(3, 4, 3, 4))
    data.action[:] = 0.5
    s = data.episode_starts[3]
    data.action[s + 2] = [0.5, 0.5, 1.5]  # one change of 1 and back, in the last episode
    w = keyframe_weights(data, [1, 3], k=2.0)
    change = np.array([1.5, 0, 0, 0, 1.5, 0, 1, 1])  # |a_0 - 0|_1 = 1.5 at both starts
    np.testing.assert_allclose(w, 1 + 2.0 * change / change.mean(), rtol=1e-6)
    np.testing.assert_array_equal(keyframe_weights(data, [1, 3], k=0.0), np.ones(8))


def test_the_clone_fits_the_experts_labels_where_the_data_has_them(key):
    """With expert_action in the data, the targets and the keyframe weights come from it, not
    from the driven actions; h is still teacher-forced on the driven actions."""
    rnn = MDNRNN(8, 16, 2, key=key)
    data = labelled()
    x0, a0 = agent_inputs(rnn, data, [1, 3])
    data.expert_action = np.random.default_rng(2).uniform(-1, 1, data.action.shape)
    data.expert_action = data.expert_action.astype(np.float32)
    x, y = agent_inputs(rnn, data, [1, 3])
    np.testing.assert_array_equal(x, x0)
    s = data.episode_starts[1]
    np.testing.assert_array_equal(y[:14], data.expert_action[s : s + 14])
    change = np.abs(np.diff(y[:14], axis=0, prepend=np.zeros((1, 3)))).sum(1)
    w = keyframe_weights(data, [1, 3], k=3.0)
    all_change = np.r_[change, np.abs(np.diff(y[14:], axis=0, prepend=np.zeros((1, 3)))).sum(1)]
    np.testing.assert_allclose(w[:14], 1 + 3.0 * change / all_change.mean(), rtol=1e-5)
    assert not np.allclose(y, a0)


def test_weighted_fit_follows_the_weighted_frames(key):
    """Frames of weight 0 do not move the fit: a controller is recovered from the frames that
    count even when the others carry wrong actions."""
    truth = Controller(4, 12, key=key)
    x = np.random.default_rng(1).normal(size=(4000, 16)).astype(np.float32)
    actions = np.asarray(jax.vmap(lambda v: truth(v[:4], v[4:]))(jnp.asarray(x)))
    wrong = actions.copy()
    wrong[2000:, 0] = -wrong[2000:, 0]  # steering flipped on the second half
    w = np.r_[np.ones(2000), np.zeros(2000)].astype(np.float32)
    ctrl, mse = fit_controller(x, wrong, 4, 12, weights=w)
    got = np.asarray(jax.vmap(lambda v: ctrl(v[:4], v[4:]))(jnp.asarray(x)))
    assert mse < 1e-3 and np.abs(got - actions).mean() < 0.02
    unweighted, _ = fit_controller(x, wrong, 4, 12)
    got = np.asarray(jax.vmap(lambda v: unweighted(v[:4], v[4:]))(jnp.asarray(x)))
    assert np.abs(got - actions).mean() > 0.1  # the flipped half does pull a plain fit away
    for bad in (np.ones(3, np.float32), -w, np.zeros(4000, np.float32)):
        with pytest.raises(ValueError, match="weights must be 4000 values >= 0"):
            fit_controller(x, actions, 4, 12, weights=bad)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["evolve"] |= {"members": 1, "real_check_every": 0}  # dream only: no V needed
    params["evolve"] |= {"init": "clone", "clone_from": ["heuristic"], "sigma0": 1e-9}
    params["hybrid"] |= {"real_generations": 0}
    params["dream"] |= {"offroad_penalty": 0.0, "round_offroad_penalty": 0.0}  # no off-road labels
    write_dataset(tmp_path / "lat.zarr", labelled(lengths=(40, 25, 40, 25)))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WM_PARAMS", str(tmp_path / "params.yaml"))
    return tmp_path


def test_evolve_starts_from_the_clone(workdir):
    """With a vanishing step size every candidate is the clone: the kept C is the clone, fitted
    on the heuristic episodes and their mirror images only, with evolve.clone_keyframe's
    weights."""
    train_rnn.main(["m.eqx", "m.json", "m.tsv", "lat.zarr"])
    evolve.main(["c.eqx", "c.json", "c.tsv", "m.eqx", "lat.zarr"])
    metrics = json.loads(Path("c.json").read_text())
    assert metrics["clone_episodes"] == 2 and metrics["clone_frames"] == 50
    assert metrics["clone_expert_labels"] == 0  # synthetic latents: no labels, driven actions
    rnn, _ = load_model("m.eqx", "mdrnn", MDNRNN)
    x, a = agent_inputs(rnn, read_dataset("lat.zarr"), [1, 3])
    k = yaml.safe_load(Path("params.yaml").read_text())["evolve"]["clone_keyframe"]
    assert k > 0
    want, _ = fit_controller(
        x, a, 8, rnn.hidden, keyframe_weights(read_dataset("lat.zarr"), [1, 3], k)
    )
    got, _ = load_model("c.eqx", "controller", Controller)
    np.testing.assert_allclose(got.linear.weight, want.linear.weight, atol=1e-6)
    np.testing.assert_allclose(got.linear.bias, want.linear.bias, atol=1e-6)


def test_zero_generations_keep_the_clone_of_the_experts_labels(workdir):
    """evolve.generations: 0 (the default since session 17): no search, C is the clone, here
    fitted to the expert's labels the latents carry; the curve has the one point it can have."""
    data = read_dataset("lat.zarr")
    rng = np.random.default_rng(3)
    data.expert_action = rng.uniform(-1, 1, data.action.shape).astype(np.float32)
    write_dataset("lat.zarr", data)
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["evolve"] |= {"generations": 0, "sigma0": 0.1}
    Path("params.yaml").write_text(yaml.safe_dump(params))
    train_rnn.main(["m.eqx", "m.json", "m.tsv", "lat.zarr"])
    evolve.main(["c.eqx", "c.json", "c.tsv", "m.eqx", "lat.zarr"])
    metrics = json.loads(Path("c.json").read_text())
    assert metrics["generations"] == 0 and metrics["clone_expert_labels"] == 1
    assert np.isfinite(metrics["dream_return"])
    rnn, _ = load_model("m.eqx", "mdrnn", MDNRNN)
    x, y = agent_inputs(rnn, data, [1, 3])
    np.testing.assert_array_equal(y[:25], data.expert_action[data.episode_starts[1] :][:25])
    w = keyframe_weights(data, [1, 3], params["evolve"]["clone_keyframe"])
    want, _ = fit_controller(x, y, 8, rnn.hidden, w)
    got, _ = load_model("c.eqx", "controller", Controller)
    np.testing.assert_allclose(got.linear.weight, want.linear.weight, atol=1e-6)
    assert len(Path("c.tsv").read_text().splitlines()) == 2  # header and generation 0


def test_round_init_prev_continues_from_the_previous_rounds_controller(workdir, capsys):
    """evolve.round_init: prev (Ha's iterative procedure): a round's CMA-ES starts from --prev,
    so with a vanishing step size the round keeps that C; fresh starts from the round's clone;
    round 0 ignores --prev; prev without --prev is one clear error."""
    train_rnn.main(["m.eqx", "m.json", "m.tsv", "lat.zarr"])
    rnn, _ = load_model("m.eqx", "mdrnn", MDNRNN)
    prev = Controller(rnn.z_dim, rnn.hidden, key=jax.random.key(11))
    save_model("prev.eqx", prev, "controller", {"z_dim": rnn.z_dim, "hidden": rnn.hidden})
    params = yaml.safe_load(Path("params.yaml").read_text())

    def run(round_init: str, rnd: str, *extra: str) -> Controller:
        params["evolve"]["round_init"] = round_init
        Path("params.yaml").write_text(yaml.safe_dump(params))
        evolve.main(["c.eqx", "c.json", "c.tsv", "m.eqx", "lat.zarr", "--round", rnd, *extra])
        return load_model("c.eqx", "controller", Controller)[0]

    kept = run("prev", "1", "--prev", "prev.eqx")
    np.testing.assert_allclose(kept.linear.weight, prev.linear.weight, atol=1e-6)
    for fresh in (run("fresh", "1", "--prev", "prev.eqx"), run("prev", "0", "--prev", "prev.eqx")):
        assert np.abs(np.asarray(fresh.linear.weight - prev.linear.weight)).max() > 0.01
    with pytest.raises(SystemExit):
        run("prev", "1")
    err = capsys.readouterr().err
    assert "evolve.round_init is prev, but no --prev controller was given" in err
