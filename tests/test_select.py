"""Choosing the final agent from training-track returns (wm_core/select.py, stages/select.py)."""

import json
from pathlib import Path

import pytest
import yaml

from wm_core.config import load_params
from wm_core.errors import WMError
from wm_core.select import agent_paths, final_round, pick, read_key, select_seeds, undriven

ROOT = Path(__file__).resolve().parents[1]


def params(tmp_path, rounds=None, round_="best"):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    if rounds is not None:
        raw["rounds"] = rounds
    raw["evaluate"]["round"] = round_
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


def test_pick_takes_the_best_mean_and_a_tie_goes_to_the_later_round():
    assert pick({"0": 593.1, "7": 785.6, "8": 796.2}) == "8"
    assert pick({"0": 53.8, "5": 464.2, "8": 396.6}) == "5"
    assert pick({"3": 500.0, "10": 500.0, "4": 500.0}) == "10"  # by round number, not text


@pytest.mark.parametrize(
    "returns,match",
    [({}, "no agent to choose from"), ({"0": 1.0, "1": float("nan")}, r"agent\(s\) \['1'\]")],
)
def test_pick_refuses_nothing_or_a_nan(returns, match):
    with pytest.raises(WMError, match=match):
        pick(returns)


def test_the_undriven_agents_drive_the_tracks_the_next_rounds_would(tmp_path):
    p = params(tmp_path)  # main's ten rounds, 20 episodes from 30000 + 1000 k
    assert undriven(p) == ["10"]
    assert select_seeds(p) == {"10": range(41000, 41020)}
    assert select_seeds(params(tmp_path, rounds={})) == {"0": range(31000, 31020)}
    fork = params(tmp_path, rounds={"1": {"prev": "0"}, "2": {"prev": "0"}})  # two leaves
    assert select_seeds(fork) == {"1": range(33000, 33020), "2": range(34000, 34020)}


def test_final_round_reads_select_only_for_best(tmp_path):
    chose = tmp_path / "select.json"
    assert final_round(params(tmp_path, round_="8"), chose) == "8"  # no file needed
    p = params(tmp_path)
    with pytest.raises(WMError, match="select.json: missing .*run the select stage"):
        final_round(p, chose)
    chose.write_text(json.dumps({"round": 5, "returns": {}}))
    assert final_round(p, chose) == "5"
    assert final_round(p, chose, "3") == "3"  # wm play --round 3
    chose.write_text(json.dumps({"round": 11}))
    with pytest.raises(WMError, match="round 11 is not an agent"):
        final_round(p, chose)
    chose.write_text("{")
    with pytest.raises(WMError, match="no 'round' in it"):
        final_round(p, chose)


def test_a_missing_or_broken_round_metric_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"r3.json: missing \(did the stage"):
        read_key(tmp_path / "r3.json", "return_mean")
    (tmp_path / "r3.json").write_text(json.dumps({"episodes": 20}))
    with pytest.raises(RuntimeError, match="r3.json: no valid 'return_mean'"):
        read_key(tmp_path / "r3.json", "return_mean")


def test_a_missing_model_of_the_agent_is_named(tmp_path):
    (tmp_path / "r2").mkdir()
    for name in ("vae.eqx", "r2/mdrnn.eqx"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(WMError, match=r"r2/controller.eqx not found \(round 2\): run `dvc repro`"):
        agent_paths(tmp_path, "2")
    (tmp_path / "r2" / "controller.eqx").write_bytes(b"x")
    assert agent_paths(tmp_path, "2")[2] == str(tmp_path / "r2" / "controller.eqx")
