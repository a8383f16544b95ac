"""The off-road label read off frames, against the env's own flag, and the probe on z."""

from pathlib import Path

import numpy as np
import pytest

from wm_core.env import make_env
from wm_core.policies import HeuristicPolicy
from wm_core.road import fit_probe, offroad_label, probe_accuracy
from wm_core.rollout import run_episode


@pytest.mark.parametrize("crop_hud", [False, True])
def test_label_agrees_with_the_envs_off_road_flag(crop_hud):
    env = make_env()
    # recovery leaves the road on purpose and comes back: both classes, many transitions
    ep = run_episode(env, HeuristicPolicy("recovery"), 20001, 500, crop_hud=crop_hud)
    env.close()
    label = offroad_label(ep["obs"], crop_hud)
    flag = ep["off_road"]  # after action t, i.e. what frame t + 1 shows
    assert 0.1 < flag.mean() < 0.9
    assert np.mean(label[1:] == flag[:-1]) > 0.95
    assert np.mean(label[1:] == flag[:-1]) > np.mean(~label[1:] == flag[:-1]) + 0.9


def test_probe_recovers_a_linear_rule_and_refuses_one_class():
    rng = np.random.default_rng(0)
    mu = rng.normal(size=(4000, 6)).astype(np.float32)
    label = mu[:, 2] - 0.5 * mu[:, 4] > 0.3
    w, b = fit_probe(mu, label)
    assert probe_accuracy(mu, label, w, b) > 0.98
    assert w[2] > 0 and w[4] < 0 and abs(w[0]) < 0.2 * w[2]
    with pytest.raises(ValueError, match="frames on and off the road"):
        fit_probe(mu, np.zeros(4000, bool))


def test_evolve_refuses_a_penalty_without_labels(tmp_path, monkeypatch, capsys, key):
    """Latents without off_road labels (encoded before the labels existed): one line, no work."""
    from conftest import make_episodes

    from stages import evolve
    from wm_core.checkpoint import save_model
    from wm_core.data import write_dataset
    from wm_core.mdrnn import MDNRNN

    root = Path(__file__).resolve().parent
    monkeypatch.setenv("WM_PARAMS", str(root / "tiny_params.yaml"))  # offroad_penalty 0.5
    save_model(tmp_path / "m.eqx", MDNRNN(8, 16, 2, key=key), "mdrnn", {
        "z_dim": 8, "hidden": 16, "mixtures": 2})  # fmt: skip
    write_dataset(tmp_path / "lat.zarr", make_episodes((20, 20), z_dim=8, frames=False))
    outs = [str(tmp_path / n) for n in ("c.eqx", "m.json", "c.tsv")]
    with pytest.raises(SystemExit):
        evolve.main([*outs, str(tmp_path / "m.eqx"), str(tmp_path / "lat.zarr")])
    err = capsys.readouterr().err.strip()
    assert "needs latents with 'off_road' labels" in err and "\n" not in err
    assert not any((tmp_path / n).exists() for n in ("c.eqx", "m.json", "c.tsv"))


def test_round_0_and_the_rounds_read_their_own_charge(tmp_path, monkeypatch, capsys, key):
    """dream.offroad_penalty is round 0's, dream.round_offroad_penalty the later rounds': with
    only the rounds charged, round 0 evolves on unlabelled latents and records no charge, and
    round 1 refuses them, naming its own key."""
    import yaml
    from conftest import make_episodes

    from stages import evolve
    from wm_core.checkpoint import read_header, save_model
    from wm_core.data import write_dataset
    from wm_core.mdrnn import MDNRNN

    params = yaml.safe_load((Path(__file__).resolve().parent / "tiny_params.yaml").read_text())
    params["dream"] |= {"offroad_penalty": 0.0, "round_offroad_penalty": 0.5}
    params["evolve"] |= {"members": 1, "real_check_every": 0}  # dream only: no V needed
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.setenv("WM_PARAMS", str(tmp_path / "params.yaml"))
    save_model(tmp_path / "m.eqx", MDNRNN(8, 16, 2, key=key), "mdrnn", {
        "z_dim": 8, "hidden": 16, "mixtures": 2})  # fmt: skip
    write_dataset(tmp_path / "lat.zarr", make_episodes((20, 20), z_dim=8, frames=False))
    inputs = [str(tmp_path / "m.eqx"), str(tmp_path / "lat.zarr")]

    def outs(r: int) -> list[str]:  # round r's model, metrics and curve
        return [str(tmp_path / name.format(r)) for name in ("c{}.eqx", "m{}.json", "c{}.tsv")]

    evolve.main([*outs(0), *inputs])
    assert read_header(tmp_path / "c0.eqx")["info"]["dream"]["offroad_penalty"] == 0.0
    assert "round_offroad_penalty" not in read_header(tmp_path / "c0.eqx")["info"]["dream"]
    capsys.readouterr()  # round 0's progress bars
    with pytest.raises(SystemExit):
        evolve.main([*outs(1), *inputs, "--round", "1"])
    err = capsys.readouterr().err.strip()
    assert "dream.round_offroad_penalty > 0 needs latents" in err and "\n" not in err
    assert not any(Path(f).exists() for f in outs(1))
