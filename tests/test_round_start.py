"""Which C a round's CMA-ES starts from, the last agent's or the best so far (round_start).

The stage runs as DVC runs it (a process reading params.yaml) on a chain of rounds whose
training-track returns are written as collect_onpolicy writes them."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def run(cwd: Path, *args: str, rule: str = "best") -> subprocess.CompletedProcess:
    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["evolve"]["round_start"] = rule
    (cwd / "params.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "stages.round_start", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)


def chain(tmp_path: Path, returns: list[float], rule: str = "best") -> list[dict]:
    """Agents 0..n-1 with distinct C files; agent k-1's return as collect_onpolicy@k records
    it; round_start for rounds 1..n, each reading the record of the round before."""
    for k, r in enumerate(returns):
        (tmp_path / f"models/r{k}").mkdir(parents=True)
        (tmp_path / f"models/r{k}/controller.eqx").write_bytes(f"C_{k}".encode())
        (tmp_path / "metrics/collect_onpolicy").mkdir(parents=True, exist_ok=True)
        (tmp_path / f"metrics/collect_onpolicy/r{k + 1}.json").write_text(
            json.dumps({"return_mean": r, "episodes": 20})
        )
    assert run(tmp_path, "metrics/round_start/r0.json").returncode == 0
    records = []
    for k in range(1, len(returns) + 1):
        out = run(
            tmp_path,
            f"metrics/round_start/r{k}.json",
            "--out-eqx", f"models/r{k}/start.eqx",
            "--agent", str(k - 1), f"models/r{k - 1}/controller.eqx",
            f"metrics/collect_onpolicy/r{k}.json",
            "--before", f"metrics/round_start/r{k - 1}.json",
            rule=rule,
        )  # fmt: skip
        assert out.returncode == 0, out.stderr
        record = json.loads((tmp_path / f"metrics/round_start/r{k}.json").read_text())
        start = (tmp_path / f"models/r{k}/start.eqx").read_bytes()
        assert start == f"C_{record['start']}".encode()  # a byte copy of the chosen agent's C
        records.append(record)
    return records


def test_best_starts_each_round_from_the_best_agent_so_far(tmp_path):
    # run 22's agents 0-4 on their training tracks: round 3 starts from agent 1, not 2
    records = chain(tmp_path, [280.1, 556.7, 463.5, 634.9, 435.0])
    assert [r["start"] for r in records] == [0, 1, 1, 3, 3]
    assert records[-1]["returns"] == {"0": 280.1, "1": 556.7, "2": 463.5, "3": 634.9, "4": 435.0}
    assert records[2]["start_return"] == 556.7


def test_last_is_ha_s_chain_and_a_tie_goes_to_the_later_round(tmp_path):
    records = chain(tmp_path / "last", [280.1, 556.7, 463.5], rule="last")
    assert [r["start"] for r in records] == [0, 1, 2]
    records = chain(tmp_path / "tie", [500.0, 500.0, 400.0])
    assert [r["start"] for r in records] == [0, 1, 1]


@pytest.mark.parametrize(
    "ret,match",
    [
        (None, r"r1\.json: missing"),
        ({"episodes": 20}, r"r1\.json: no valid 'return_mean'"),
        ({"return_mean": "fast"}, r"r1\.json: no valid 'return_mean'"),
        ({"return_mean": float("nan")}, r"non-finite mean return for agent\(s\) \['0'\]"),
    ],
)
def test_a_missing_or_bad_return_stops_with_one_line_and_writes_nothing(tmp_path, ret, match):
    (tmp_path / "models/r0").mkdir(parents=True)
    (tmp_path / "models/r0/controller.eqx").write_bytes(b"C_0")
    assert run(tmp_path, "r0.json").returncode == 0
    if ret is not None:
        (tmp_path / "r1.json").write_text(json.dumps(ret))
    args = ["out.json", "--out-eqx", "start.eqx", "--agent", "0", "models/r0/controller.eqx"]
    out = run(tmp_path, *args, "r1.json", "--before", "r0.json")
    assert out.returncode == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("round_start: error:") and re.search(match, out.stderr)
    assert not (tmp_path / "start.eqx").exists() and not (tmp_path / "out.json").exists()


def test_a_bad_rule_is_named_before_any_work(tmp_path):
    out = run(tmp_path, "r0.json", rule="first")
    assert out.returncode == 1 and "evolve.round_start" in out.stderr and "last, best" in out.stderr
    assert not (tmp_path / "r0.json").exists()
