"""Resume: an interrupted long stage continues from its snapshot and ends with the same bytes."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import numpy as np
import yaml
from conftest import make_episodes
from test_mdrnn import CFG

from wm_core.data import write_dataset
from wm_core.es import evolve
from wm_core.resume import Snapshots, fingerprint
from wm_core.train import fit_mdrnn

ROOT = Path(__file__).resolve().parents[1]


def test_training_resumes_to_the_identical_model(tmp_path, key):
    data = make_episodes(lengths=(30, 12), z_dim=4, frames=False)
    cfg = dataclasses.replace(CFG, dropout=0.1)
    plain, plain_curve = fit_mdrnn(cfg, data, 6, key=key)
    snaps = Snapshots(tmp_path / "m.snap", "k", every=2)
    first, _ = fit_mdrnn(cfg, data, 6, key=key, snapshots=snaps)
    assert snaps.path.exists()  # snapshots after steps 1 and 3; step 5 is the last
    resumed, curve = fit_mdrnn(cfg, data, 6, key=key, snapshots=snaps)  # starts at step 4
    assert eqx.tree_equal(plain, first, resumed)
    assert curve == plain_curve


def test_a_stale_snapshot_is_ignored(tmp_path, key):
    data = make_episodes(lengths=(30, 12), z_dim=4, frames=False)
    Snapshots(tmp_path / "m.snap", "old", every=2).save(3, {"curve": []})
    snaps = Snapshots(tmp_path / "m.snap", "new", every=2)
    assert snaps.load() is None
    model, curve = fit_mdrnn(CFG, data, 3, key=key, snapshots=snaps)
    assert [r["step"] for r in curve] == [0, 1, 2]


def test_fingerprint_tracks_config_and_inputs_but_not_the_snapshot_interval(tmp_path):
    f = tmp_path / "x.bin"
    f.write_bytes(b"abc")
    a = fingerprint(CFG, [f])
    assert a == fingerprint(dataclasses.replace(CFG, log_every=1), [f])
    assert a != fingerprint(dataclasses.replace(CFG, lr=0.5), [f])
    f.write_bytes(b"abcd")
    assert a != fingerprint(CFG, [f])


def test_cma_es_resumes_by_replaying_fitnesses(tmp_path):
    calls = []

    def fitness(pop, gen):
        calls.append(gen)
        return -((pop - 1.0) ** 2).sum(1)

    kw = dict(sigma0=0.5, popsize=6, generations=5, seed=3)
    x0 = np.zeros(4)
    ref = evolve(x0, fitness, **kw)
    snaps = Snapshots(tmp_path / "c.snap", "k", every=2)
    evolve(x0, fitness, **kw, snapshots=snaps)  # snapshots after generations 1 and 3
    calls.clear()
    resumed = evolve(x0, fitness, **kw, snapshots=snaps)
    assert calls == [4]  # generations 0-3 replayed from the snapshot, not re-evaluated
    np.testing.assert_array_equal(ref[0], resumed[0])
    assert ref[1] == resumed[1] and ref[2] == resumed[2]
    np.testing.assert_array_equal(ref[3], resumed[3])  # the candidates for re-scoring too
    assert ref[3].shape == (6, 4)  # each generation's best + the final mean
    assert any(np.array_equal(ref[0], c) for c in ref[3])  # the best-ever is a candidate


def _run_train_rnn(workdir: Path, out: str, env: dict) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stages.train_rnn", out, f"{out}.json", f"{out}.tsv", "lat.zarr"]
    return subprocess.Popen(cmd, cwd=workdir, env=env, stderr=subprocess.PIPE, text=True)


def test_sigkilled_stage_leaves_no_output_and_resumes_to_the_same_bytes(tmp_path):
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    params["rnn"] |= {"steps": 3000, "snapshot_every": 100, "log_every": 500}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    write_dataset(tmp_path / "lat.zarr", make_episodes(lengths=(40, 25), z_dim=8, frames=False))
    env = os.environ | {"PYTHONPATH": str(ROOT), "WM_PARAMS": str(tmp_path / "params.yaml")}

    ref = _run_train_rnn(tmp_path, "ref.eqx", env)
    assert ref.wait(timeout=300) == 0, ref.stderr.read()
    assert not any((tmp_path / ".wm_resume").iterdir())  # success clears the snapshot

    proc = _run_train_rnn(tmp_path, "m.eqx", env)
    snap = tmp_path / ".wm_resume" / "m.eqx.snap"
    deadline = time.monotonic() + 120
    while not snap.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the stage finished before it could be killed"
    assert snap.exists() and not (tmp_path / "m.eqx").exists()
    assert not list(tmp_path.glob("m.eqx*"))  # nothing that looks like an output

    again = _run_train_rnn(tmp_path, "m.eqx", env)
    _, err = again.communicate(timeout=300)
    assert again.returncode == 0, err
    assert "resume: continuing from" in err
    assert (tmp_path / "m.eqx").read_bytes() == (tmp_path / "ref.eqx").read_bytes()
    assert (tmp_path / "m.eqx.tsv").read_text() == (tmp_path / "ref.eqx.tsv").read_text()
    assert not snap.exists()


def test_round_scratch_trains_a_round_m_afresh_instead_of_from_the_previous(tmp_path):
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    write_dataset(tmp_path / "lat.zarr", make_episodes(lengths=(40, 25), z_dim=8, frames=False))

    def train(out: str, *extra: str, scratch: bool) -> dict:
        params["rnn"]["round_scratch"] = scratch
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
        env = os.environ | {"PYTHONPATH": str(ROOT), "WM_PARAMS": str(tmp_path / "params.yaml")}
        cmd = [sys.executable, "-m", "stages.train_rnn", out, f"{out}.json", f"{out}.tsv"]
        run = subprocess.run([*cmd, "lat.zarr", *extra], cwd=tmp_path, env=env, text=True,
                             capture_output=True, timeout=300)  # fmt: skip
        assert run.returncode == 0, run.stderr
        return yaml.safe_load((tmp_path / f"{out}.json").read_text())

    train("m0.eqx", scratch=False)
    warm = train("warm.eqx", "--init", "m0.eqx", "--round", "1", scratch=False)
    fresh = train("fresh.eqx", "--init", "m0.eqx", "--round", "1", scratch=True)
    alone = train("alone.eqx", "--round", "1", scratch=True)
    rnn = params["rnn"]
    assert warm["steps"] == rnn["round_steps"] and fresh["steps"] == rnn["steps"]
    # from scratch, --init is not read: the same bytes as a round-1 M trained without it
    assert (tmp_path / "fresh.eqx").read_bytes() == (tmp_path / "alone.eqx").read_bytes()
    assert fresh == alone
    assert (tmp_path / "warm.eqx").read_bytes() != (tmp_path / "fresh.eqx").read_bytes()
