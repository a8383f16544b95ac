"""End to end: the real DVC pipeline on the tiny configuration, in a temporary git repo."""

import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EVAL_KEYS = {
    "score_mean",
    "score_std",
    "score_min",
    "score_max",
    "episodes",
    "delusion_rate",
    "delusion_rate_no_progress",
    "dream_return",
    "frac_ge_900",
}


def sh(*cmd, cwd):
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATE_CHECK": "1"}
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env)
    assert out.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """The project as a user clones it, with the tiny params as params.yaml, after `dvc repro`."""
    path = tmp_path_factory.mktemp("wm") / "repo"
    skip = shutil.ignore_patterns(
        ".git",
        "data",
        "models",
        "videos",
        "__pycache__",
        "*.egg-info",
        ".pytest_cache",
        "dvc.lock",
        "metrics",
        "plots",
    )

    def ignore(directory, names):  # also leave out a developer's DVC cache and temp files
        extra = {"cache", "tmp"} & set(names) if Path(directory).name == ".dvc" else set()
        return set(skip(directory, names)) | extra

    shutil.copytree(ROOT, path, ignore=ignore)
    shutil.copy(ROOT / "tests" / "tiny_params.yaml", path / "params.yaml")
    sh("git", "init", "-q", cwd=path)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A", cwd=path)
    sh("git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init", cwd=path)
    log = sh("dvc", "repro", cwd=path)
    return path, log


@pytest.mark.slow
def test_repro_runs_every_stage_and_writes_finite_metrics(repo):
    path, log = repo
    for stage in (
        "collect_random",
        "collect_heuristic",
        "flip_augment",
        "train_vae",
        "encode_latents",
        "train_rnn",
        "evolve",
        "collect_onpolicy@1",
        "flip_augment_round@1",
        "encode_latents_round@1",
        "train_rnn_round@1",
        "evolve_round@1",
        "evaluate",
    ):
        assert f"Running stage '{stage}'" in log
    metrics = json.loads((path / "metrics" / "evaluate.json").read_text())
    assert EVAL_KEYS <= set(metrics)
    assert all(math.isfinite(metrics[k]) for k in EVAL_KEYS)
    assert metrics["episodes"] == 2
    assert sorted(p.name.split("_")[0] for p in (path / "videos").glob("*.mp4")) == [
        "best",
        "worst",
    ]


@pytest.mark.slow
def test_second_repro_does_nothing_and_nothing_stray_is_written(repo):
    path, _ = repo
    log = sh("dvc", "repro", cwd=path)
    assert "Running stage" not in log and "up to date" in log
    assert "up to date" in sh("dvc", "status", cwd=path)
    # Everything a stage wrote is a declared out: git sees only DVC's bookkeeping,
    # git-tracked metrics/plots, and nothing else.
    untracked = sh("git", "status", "--porcelain", "--untracked-files=all", cwd=path).split("\n")
    stray = [
        line[3:]
        for line in untracked
        if line.strip()
        and not (
            line[3:] == "dvc.lock"
            or line[3:].endswith(".gitignore")
            or line[3:].startswith(("metrics/", "plots/"))
        )
    ]
    assert stray == []


@pytest.mark.slow
def test_wm_play_drives_the_trained_agent(repo):
    path, _ = repo
    out = sh("wm", "play", "--seeds", "1000-1001", "--video", "tmp/play.mp4", cwd=path)
    lines = [ln for ln in out.splitlines() if ln.startswith(("seed ", "mean "))]
    assert lines[0].startswith("seed 1000:") and lines[1].startswith("seed 1001:")
    assert lines[2].startswith("mean ") and "over 2 episodes" in lines[2]
    assert (path / "tmp" / "play.mp4").stat().st_size > 1000
    # the same agent on the same seeds scores what evaluate recorded (driving is deterministic)
    scores = (path / "plots" / "evaluate" / "scores.tsv").read_text().splitlines()[1:]
    first = float(scores[0].split("\t")[2])
    assert abs(float(lines[0].split(":")[1].split()[0]) - first) < 0.1
    shutil.rmtree(path / "tmp")


@pytest.mark.slow
def test_push_then_fresh_clone_pull_needs_no_rerun(repo):
    path, _ = repo
    git = ("git", "-c", "user.name=t", "-c", "user.email=t@t")
    sh(*git, "add", "-A", cwd=path)
    sh(*git, "commit", "-qm", "tiny run", cwd=path)
    sh("dvc", "push", cwd=path)  # the shipped default remote: a directory beside the repo
    clone = path.parent / "clone"
    sh("git", "clone", "-q", str(path), str(clone), cwd=path.parent)
    assert not (clone / "models" / "vae.eqx").exists()
    sh("dvc", "pull", cwd=clone)
    assert (clone / "models" / "vae.eqx").exists()
    assert "up to date" in sh("dvc", "status", cwd=clone)
    assert "Running stage" not in sh("dvc", "repro", cwd=clone)


@pytest.mark.slow
@pytest.mark.parametrize(
    "key,value,expected",
    [
        ("dream.temperature", 1.5, {"evolve", "evolve_round@1"}),
        ("evaluate.episodes", 3, {"evaluate"}),
        ("collect.random.episodes", 3, {"collect_random"}),
        ("rnn.round_steps", 4, {"train_rnn_round@1"}),
    ],
)
def test_a_param_change_flags_only_the_stages_that_read_it(repo, key, value, expected):
    import yaml

    path, _ = repo
    params = path / "params.yaml"
    original = params.read_text()
    raw = yaml.safe_load(original)
    section, *rest = key.split(".")
    node = raw[section]
    for part in rest[:-1]:
        node = node[part]
    node[rest[-1]] = value
    params.write_text(yaml.safe_dump(raw))
    try:
        status = json.loads(sh("dvc", "status", "--json", cwd=path).strip().splitlines()[-1])
        assert set(status) == expected
    finally:
        params.write_text(original)
    assert "up to date" in sh("dvc", "status", cwd=path)
