"""The per-round table (stages/round_table.py) and the delusion rates it reports."""

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from stages.round_table import round_rows, write_rows
from wm_core.config import load_params
from wm_core.evaluate import delusion_rates

ROOT = Path(__file__).resolve().parents[1]


def params(tmp_path, rounds):
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["rounds"] = rounds
    raw["evaluate"]["round"] = max(rounds, key=int, default="0")
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return load_params(path)


def write_metrics(root, evolve: dict, collect: dict):
    for sub, rows in (("evolve", evolve), ("collect_onpolicy", collect)):
        (root / sub).mkdir(parents=True, exist_ok=True)
        for rid, data in rows.items():
            (root / sub / f"r{rid}.json").write_text(json.dumps(data))


def collected(ret):
    return {
        "return_mean": ret,
        "return_std": 10.0,
        "off_road_frac": 0.25,
        "delusion_rate": 0.5,
        "delusion_rate_no_progress": 0.125,
    }


def test_rows_pair_each_agent_with_the_round_that_drove_it(tmp_path):
    p = params(tmp_path, {"1": {"prev": "0"}, "2": {"prev": "1"}})
    dream = {r: {"dream_return": 100.0 * r, "dream_offroad_frac": 0.1} for r in (0, 1, 2)}
    write_metrics(tmp_path / "m", dream, {"1": collected(300.0), "2": collected(450.0)})
    rows = round_rows(p, tmp_path / "m")
    assert [r["round"] for r in rows] == [0, 1, 2]
    assert [r["dream_return"] for r in rows] == [0.0, 100.0, 200.0]
    # agent 0 drove round 1's tracks, agent 1 round 2's; agent 2 is evaluate's to score
    assert [r["real_return"] for r in rows] == [300.0, 450.0, None]
    assert rows[0]["delusion_rate"] == 0.5 and rows[2]["delusion_rate"] is None
    write_rows(tmp_path / "rounds.tsv", rows)
    lines = (tmp_path / "rounds.tsv").read_text().splitlines()
    head = ["round", "dream_return", "dream_offroad_frac", "real_return"]
    assert lines[0].split("\t")[:4] == head
    assert lines[1].split("\t")[3] == "300" and lines[3].split("\t")[3] == ""  # blank, not 0
    # the select stage drove agent 2 on the tracks a round 3 would: its row is filled from there
    chose = {"round": 2, "return_mean": 500.0, "measured": {"2": collected(500.0)}}
    (tmp_path / "m" / "select.json").write_text(json.dumps(chose))
    rows = round_rows(p, tmp_path / "m")
    assert [r["real_return"] for r in rows] == [300.0, 450.0, 500.0]
    assert rows[2]["delusion_rate"] == 0.5


def test_missing_or_old_metrics_are_named(tmp_path):
    p = params(tmp_path, {"1": {"prev": "0"}})
    dream = {r: {"dream_return": 1.0, "dream_offroad_frac": 0.1} for r in (0, 1)}
    old = collected(300.0)
    del old["delusion_rate"]  # collect_onpolicy before it reported M's delusion
    write_metrics(tmp_path / "m", dream, {"1": old})
    with pytest.raises(RuntimeError, match=r"r1.json: no number for \['delusion_rate'\]"):
        round_rows(p, tmp_path / "m")
    write_metrics(tmp_path / "m", {}, {"1": collected(300.0)})
    (tmp_path / "m" / "evolve" / "r1.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"evolve/r1.json: missing"):
        round_rows(p, tmp_path / "m")


def test_delusion_rates_count_promised_reward_off_road():
    ep = {
        "pred_reward": np.array([1.0, -0.1, 2.0, 3.0], np.float32),
        "off_road": np.array([True, True, False, False]),
        "new_tile": np.array([False, False, False, True]),
    }
    rates = delusion_rates([ep])
    assert rates["delusion_rate"] == 0.5  # off road: promised 1.0, then -0.1
    assert rates["delusion_rate_no_progress"] == pytest.approx(2 / 3)  # 1.0, -0.1, 2.0
    ep["pred_reward"] = ep["pred_reward"][:3]
    with pytest.raises(ValueError, match="pred_reward has 3 frames"):
        delusion_rates([ep])
