import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from wm_core.config import ParamsError, load_params

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path, mutate):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    mutate(raw)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.mark.parametrize(
    "params",
    [
        "params.yaml",
        "tests/tiny_params.yaml",
        "configs/dream_rounds.yaml",
        "configs/dagger.yaml",
    ],
)
def test_shipped_params_are_valid(params):
    p = load_params(ROOT / params)
    assert p.evaluate.round in ("best", "0") or p.evaluate.round in p.rounds


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda r: r["dream"].update(temprature=1.0), "unknown key dream.temprature"),
        (lambda r: r["vae"].pop("lr"), "missing key vae.lr"),
        (lambda r: r["evolve"].update(popsize="64"), "evolve.popsize must be int"),
        (
            lambda r: r["collect"]["random"].update(episodes=-3),
            "collect.random.episodes must be >= 1",
        ),
        (lambda r: r["dream"].update(temperature=0.0), "dream.temperature must be > 0"),
        (lambda r: r["evolve"].update(popsize=1), "evolve.popsize must be >= 2"),
        (
            lambda r: r["evaluate"].update(seed0=r["collect"]["random"]["seed0"]),
            "avoid collect.random",
        ),
        (lambda r: r["rounds"].update({"3": {"prev": "7"}}), "rounds.3.prev"),
        (
            lambda r: r["collect"]["heuristic"]["episodes"].update(reckless=3),
            "heuristic.episodes.reckless",
        ),
        (
            lambda r: r["score_heuristic"]["episodes"].update(plain=-1),
            "score_heuristic.episodes.plain must be an int >= 0",
        ),
        (lambda r: r["evolve"].update(members=0), "evolve.members must be >= 1"),
        (lambda r: r["dream"].update(offroad_penalty=-1.0), "dream.offroad_penalty must be >= 0"),
        (
            lambda r: r["dream"].update(round_offroad_penalty=-1.0),
            "dream.round_offroad_penalty must be >= 0",
        ),
        (lambda r: r["dream"].update(action_noise=-0.1), "dream.action_noise must be >= 0"),
        (lambda r: r["rnn"].update(z_noise=-0.5), "rnn.z_noise must be >= 0"),
        (lambda r: r["rnn"].update(round_scratch="yes"), "rnn.round_scratch must be bool"),
        (lambda r: r["rnn"].update(judges=-1), "rnn.judges must be an int >= 0"),
        (lambda r: r.update(rounds={}, evaluate=r["evaluate"] | {"round": "2"}), "evaluate.round"),
        (lambda r: r["evaluate"].update(round="last"), "evaluate.round must be 'best', '0' or an"),
        (lambda r: r["evaluate"].update(seed0=41010), r"avoid select@10 seeds \[41000, 41020\)"),
        (lambda r: r["evolve"].update(init="expert"), "evolve.init must be one of random, clone"),
        (lambda r: r["evolve"].update(round_init="last"), "evolve.round_init must be one of fresh"),
        (
            lambda r: r["evolve"].update(round_init="prev", members=2),
            "evolve.round_init must be fresh when evolve.members > 1",
        ),
        (lambda r: r["rnn"].update(mixture="full"), "rnn.mixture must be one of factored, joint"),
        (lambda r: r["evolve"].update(clone_from="heuristic"), "evolve.clone_from must be a list"),
        (lambda r: r["evolve"].update(clone_from=[None]), r"evolve.clone_from\[0\] must be str"),
        (lambda r: r["evolve"].update(clone_keyframe=-1.0), "evolve.clone_keyframe must be >= 0"),
        (lambda r: r["evolve"].update(generations=-1), "evolve.generations must be >= 0"),
        (
            lambda r: r["evolve"].update(init="clone", clone_from=[]),
            "evolve.clone_from must be a non-empty list when evolve.init is clone",
        ),
    ],
)
def test_bad_params_fail_with_one_line_naming_the_key(tmp_path, mutate, match):
    path = write(tmp_path, mutate)
    with pytest.raises(ParamsError, match=match) as err:
        load_params(path)
    assert "\n" not in str(err.value)


def test_check_params_command(tmp_path):
    good = subprocess.run(
        [sys.executable, "-m", "wm_core.cli", "check-params", str(ROOT / "params.yaml")],
        capture_output=True,
        text=True,
    )
    assert good.returncode == 0, good.stderr
    bad = write(tmp_path, lambda r: r["dream"].update(temperature=-1))
    out = subprocess.run(
        [sys.executable, "-m", "wm_core.cli", "check-params", str(bad)],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "wm check-params: error: params: dream.temperature must be > 0"
    ]
