"""End to end: the real DVC pipeline on the tiny configuration, in a temporary git repo."""

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
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


def sh(*cmd, cwd, timeout: float = 1800, detached: bool = False):
    """Run a command, assert it succeeded, return its output. ``detached``: the command leaves
    daemons behind (``dvc queue start``'s workers), which would hold a captured pipe open after
    the command exits and hang the read; their output goes to a file instead."""
    env = {**os.environ, "DVC_NO_ANALYTICS": "1", "DVC_NO_UPDATE_CHECK": "1"}
    if detached:
        log = Path(cwd) / ".dvc" / "tmp" / "sh-detached.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "w") as f:
            code = subprocess.run(cmd, cwd=cwd, stdout=f, stderr=f, env=env, timeout=timeout)
        text = log.read_text()
        assert code.returncode == 0, f"{' '.join(cmd)} failed:\n{text[-3000:]}"
        return text
    out = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=env, timeout=timeout)
    assert out.returncode == 0, (
        f"{' '.join(cmd)} failed:\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    )
    return out.stdout + out.stderr


def make_repo(path: Path, overrides: dict | None = None) -> tuple[Path, str]:
    """The project as a user clones it, with the tiny params (plus ``overrides``, dotted keys)
    as params.yaml, committed, after `dvc repro`."""
    import yaml

    skip = shutil.ignore_patterns(
        ".git",
        "data",
        "models",
        "videos",
        "__pycache__",
        "*.egg-info",
        ".pytest_cache",
        ".wm_resume",
        "dvc.lock",
        "metrics",
        "plots",
    )

    def ignore(directory, names):  # also leave out a developer's DVC cache, temp files and
        # local config (a `dvc cache dir --local` elsewhere would bring that cache's run cache)
        local = {"cache", "tmp", "config.local"}
        extra = local & set(names) if Path(directory).name == ".dvc" else set()
        return set(skip(directory, names)) | extra

    shutil.copytree(ROOT, path, ignore=ignore)
    params = yaml.safe_load((ROOT / "tests" / "tiny_params.yaml").read_text())
    for key, value in (overrides or {}).items():
        *parents, leaf = key.split(".")
        node = params
        for part in parents:
            node = node[part]
        node[leaf] = value
    (path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh("git", "init", "-q", cwd=path)
    sh(*GIT, "add", "-A", cwd=path)
    sh(*GIT, "commit", "-qm", "init", cwd=path)
    return path, sh("dvc", "repro", cwd=path)


GIT = ("git", "-c", "user.name=t", "-c", "user.email=t@t")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_repo(tmp_path_factory.mktemp("wm") / "repo")


@pytest.mark.slow
def test_repro_runs_every_stage_and_writes_finite_metrics(repo):
    path, log = repo
    for stage in (
        "collect_random",
        "collect_heuristic",
        "score_heuristic",
        "flip_augment",
        "train_vae",
        "encode_latents",
        "train_rnn",
        "train_judges",
        "evolve",
        "collect_onpolicy@1",
        "flip_augment_round@1",
        "encode_latents_round@1",
        "train_rnn_round@1",
        "round_start_base",
        "round_start@1",
        "evolve_round@1",
        "select",
        "evaluate",
        "round_table",
    ):
        assert f"Running stage '{stage}'" in log
    metrics = json.loads((path / "metrics" / "evaluate.json").read_text())
    assert EVAL_KEYS <= set(metrics)
    assert all(math.isfinite(metrics[k]) for k in EVAL_KEYS)
    assert metrics["episodes"] == 2
    expert = json.loads((path / "metrics" / "score_heuristic.json").read_text())
    assert set(expert) == {"plain", "aggressive"}  # recovery: 0 episodes in tiny params
    assert all(expert[m]["episodes"] == 1 and "skid_frames" in expert[m] for m in expert)
    evolved = json.loads((path / "metrics" / "evolve" / "r0.json").read_text())
    assert evolved["members"] == 2 and len(evolved["member_dream_returns"]) == 2
    assert evolved["judges"] == 1 and len(evolved["dream_return_by_m"]) == 2  # M + 1 judge
    # tiny params charge off-road dreams: the probe is fitted on the latents' frame labels
    from wm_core.data import read_dataset

    latents = read_dataset(path / "data" / "latents" / "r0.zarr", obs=False)
    assert latents.off_road is not None and 0 < latents.off_road.mean() < 1
    # every collected frame carries the plain expert's label, the clone's target
    assert latents.expert_action is not None
    assert latents.expert_action.shape == latents.action.shape  # finite: read_dataset checks
    assert 0.5 <= evolved["offroad_probe_accuracy"] <= 1
    assert 0 <= evolved["dream_offroad_frac"] <= 1
    # the per-round table: agent 0 drove round 1's tracks; agent 1 drove the tracks a round 2
    # would, in select, which chose the agent with the higher mean return for evaluate
    drove = json.loads((path / "metrics" / "collect_onpolicy" / "r1.json").read_text())
    assert 0 <= drove["delusion_rate"] <= 1 and 0 <= drove["delusion_rate_no_progress"] <= 1
    started = json.loads((path / "metrics" / "round_start" / "r1.json").read_text())
    assert started["start"] == 0 and started["returns"] == {"0": drove["return_mean"]}
    chose = json.loads((path / "metrics" / "select.json").read_text())
    last = chose["measured"]["1"]
    assert last["seed0"] == 32000 and last["episodes"] == 2
    assert chose["returns"] == {"0": drove["return_mean"], "1": last["return_mean"]}
    best = 1 if last["return_mean"] >= drove["return_mean"] else 0
    assert chose["round"] == metrics["round"] == best
    head, *rows = (path / "plots" / "rounds.tsv").read_text().splitlines()
    table = [dict(zip(head.split("\t"), r.split("\t"), strict=True)) for r in rows]
    assert [r["round"] for r in table] == ["0", "1"]
    assert float(table[0]["real_return"]) == pytest.approx(drove["return_mean"], abs=1e-3)
    assert float(table[1]["real_return"]) == pytest.approx(last["return_mean"], abs=1e-3)
    evaluated = json.loads((path / "metrics" / "evolve" / f"r{best}.json").read_text())
    assert float(table[best]["dream_return"]) == pytest.approx(evaluated["dream_return"], abs=1e-3)
    assert metrics["dream_offroad_frac"] == evaluated["dream_offroad_frac"]
    assert 0 <= metrics["off_road_frac"] <= 1
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
def test_dag_is_valid_and_lists_every_stage(repo):
    path, _ = repo
    dag = sh("dvc", "dag", "--md", cwd=path)
    for stage in ("collect_random", "train_vae", "evolve_round@1", "evaluate"):
        assert stage in dag


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
    # a stochastic C: noise on the actions, seeded per episode, so a rerun drives the same
    noisy = [
        [ln for ln in sh("wm", "play", "--seeds", "1000", "--noise", "0.3", cwd=path).splitlines()
         if ln.startswith(("seed ", "mean "))]
        for _ in range(2)
    ]  # fmt: skip
    assert noisy[0] == noisy[1] and "action noise 0.3" in noisy[0][-1]
    bad = subprocess.run(["wm", "play", "--noise", "-1"], cwd=path, capture_output=True, text=True)
    assert bad.returncode != 0 and "--noise -1.0: must be >= 0" in bad.stderr


@pytest.mark.slow
def test_push_then_fresh_clone_pull_needs_no_rerun(repo):
    path, _ = repo
    sh(*GIT, "add", "-A", cwd=path)
    sh(*GIT, "commit", "-qm", "tiny run", cwd=path)
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
        ("dream.temperature", 1.5, {"evolve", "evolve_round@1", "evaluate"}),
        ("dream.offroad_penalty", 0.0, {"evolve"}),  # round 0's charge
        ("dream.round_offroad_penalty", 0.0, {"evolve_round@1"}),  # the rounds'
        ("evaluate.episodes", 3, {"evaluate"}),
        ("evaluate.round", "0", {"evaluate"}),
        ("collect.onpolicy.noise", 0.2, {"collect_onpolicy@1", "select"}),
        ("collect.random.episodes", 3, {"collect_random"}),
        ("rnn.round_steps", 4, {"train_rnn_round@1"}),
        ("rnn.round_scratch", True, {"train_rnn_round@1"}),
        ("rnn.judges", 0, {"train_judges"}),  # evolve follows once judges.eqx changes
        ("augment.flip", False, {"flip_augment", "flip_augment_round@1"}),
        ("evolve.members", 1, {"evolve", "evolve_round@1"}),
        ("hybrid.popsize", 4, {"evolve", "evolve_round@1"}),
        ("evolve.round_start", "last", {"round_start@1"}),  # agent 0 either way: C_1 stays
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


def commit_all(path: Path, message: str) -> None:
    sh(*GIT, "add", "-A", cwd=path)
    sh(*GIT, "commit", "-qm", message, "--allow-empty", cwd=path)


def restore_workspace(path: Path) -> None:
    """Back to the committed params and outputs after an experiment was applied."""
    sh("git", "checkout", "-q", "--", ".", cwd=path)
    sh("dvc", "checkout", "-q", cwd=path)
    assert "up to date" in sh("dvc", "status", cwd=path)


def ran_stages(log: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", log))


def exp_table(path: Path) -> list[dict]:
    import csv
    import io

    keep = "Experiment|score_mean|score_std|delusion_rate$|dream.temperature|evaluate.noise"
    out = sh("dvc", "exp", "show", "--csv", "--keep", keep, "--drop", ".*", cwd=path)
    return list(csv.DictReader(io.StringIO(out[out.index("Experiment") :])))


UPSTREAM = {"collect_random", "collect_heuristic", "flip_augment", "train_vae", "encode_latents"}


@pytest.mark.slow
def test_exp_run_reruns_downstream_only_and_shows_in_exp_show_and_metrics_diff(repo):
    path, _ = repo
    commit_all(path, "baseline")
    log = sh("dvc", "exp", "run", "-n", "hot", "-S", "dream.temperature=1.5", cwd=path)
    ran = ran_stages(log)
    assert {"evolve", "evaluate"} <= ran and not ran & (UPSTREAM | {"train_rnn"})
    hot = [r for r in exp_table(path) if r["Experiment"] == "hot"]
    assert len(hot) == 1 and float(hot[0]["dream.temperature"]) == 1.5
    assert all(math.isfinite(float(hot[0][k])) for k in ("score_mean", "score_std"))
    # the experiment's results are in the workspace: metrics diff against the commit shows them
    diff = json.loads(sh("dvc", "metrics", "diff", "--all", "--json", cwd=path))
    assert {"score_mean", "delusion_rate"} <= set(diff["metrics/evaluate.json"])
    restore_workspace(path)


@pytest.mark.slow
def test_data_mix_ablation_is_one_exp_run_and_trains_on_random_driving_only(repo):
    """No heuristic episodes and no mirroring: V and M see only the Brownian episodes."""
    import yaml

    from wm_core.data import read_dataset

    path, _ = repo
    commit_all(path, "before data mix")
    zero = [f"collect.heuristic.episodes.{m}=0" for m in ("plain", "recovery", "aggressive")]
    flags = [arg for kv in (*zero, "augment.flip=false") for arg in ("-S", kv)]
    log = sh("dvc", "exp", "run", "-n", "random-only", *flags, cwd=path)
    ran = ran_stages(log)
    assert {"collect_heuristic", "flip_augment", "train_vae", "train_rnn", "evaluate"} <= ran
    assert "collect_random" not in ran
    latents = read_dataset(path / "data" / "latents" / "r0.zarr", obs=False)
    assert set(latents.attrs["episode_policy"]) == {"random"}
    assert latents.n_frames == read_dataset(path / "data" / "random.zarr", obs=False).n_frames
    metrics = json.loads((path / "metrics" / "evaluate.json").read_text())
    assert all(math.isfinite(metrics[k]) for k in EVAL_KEYS)
    params = yaml.safe_load((path / "params.yaml").read_text())
    assert params["augment"]["flip"] is False
    restore_workspace(path)


@pytest.mark.slow
def test_real_checks_and_hybrid_generations_show_in_the_evolve_curve(repo):
    """evolve.real_check_every > 0: the best C so far drives real tracks during the dream's
    generations (the tiny DAG leaves it off: each check starts a worker). hybrid.real_generations
    > 0: real-env generations after the dream's, marked as such."""
    import yaml

    path, _ = repo
    raw = yaml.safe_load((path / "params.yaml").read_text())
    raw["evolve"] |= {"members": 1, "real_check_every": 1}
    raw["hybrid"] |= {"real_generations": 2, "popsize": 3, "episodes": 1}
    (path / "tmp").mkdir(exist_ok=True)
    params = path / "tmp" / "hybrid.yaml"
    params.write_text(yaml.safe_dump(raw))
    outs = ["tmp/c.eqx", "tmp/m.json", "tmp/c.tsv"]
    inputs = ["models/r0/mdrnn.eqx", "data/latents/r0.zarr", "--vae", "models/vae.eqx"]
    env = {**os.environ, "WM_PARAMS": str(params)}
    run = [sys.executable, "-m", "stages.evolve", *outs, *inputs]
    ok = subprocess.run(run, cwd=path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    metrics = json.loads((path / "tmp" / "m.json").read_text())
    assert metrics["real_generations"] == 2 and math.isfinite(metrics["real_mean_last"])
    rows = (path / "tmp" / "c.tsv").read_text().splitlines()
    head = rows[0].split("\t")
    env_col, check_col = head.index("env"), head.index("real_check")
    assert [r.split("\t")[env_col] for r in rows[1:]] == ["dream"] * 2 + ["real"] * 2
    checks = [float(r.split("\t")[check_col]) for r in rows[1:3]]  # one per dream generation
    assert all(math.isfinite(c) for c in checks)
    raw["evolve"]["members"] = 2  # an ensemble cannot be continued as one C
    params.write_text(yaml.safe_dump(raw))
    bad = subprocess.run(run, cwd=path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "needs evolve.members: 1" in bad.stderr
    assert not (path / ".wm_resume").exists() or not any((path / ".wm_resume").iterdir())
    shutil.rmtree(path / "tmp")


@pytest.mark.slow
def test_queued_sweep_runs_every_value(repo):
    path, _ = repo
    commit_all(path, "before sweep")
    # evaluate.noise, which only evaluate reads: the queue is what is tested here, and a
    # temperature (README's sweep) reruns the whole of C's training, as the exp run test does
    sh("dvc", "exp", "run", "--queue", "-S", "evaluate.noise=0.1,0.3", cwd=path)
    sh("dvc", "queue", "start", "-j", "2", cwd=path, detached=True)  # both values at once
    deadline = time.monotonic() + 900
    while re.search(r"\b(Queued|Running)\b", sh("dvc", "queue", "status", cwd=path)):
        assert time.monotonic() < deadline, "queued experiments did not finish"
        time.sleep(2)
    assert "Failed" not in sh("dvc", "queue", "status", cwd=path)
    rows = {float(r["evaluate.noise"]): r for r in exp_table(path) if r["Experiment"]}
    assert {0.1, 0.3} <= set(rows)
    assert all(math.isfinite(float(rows[n]["score_mean"])) for n in (0.1, 0.3))
    assert "up to date" in sh("dvc", "status", cwd=path)  # the workspace is untouched


@pytest.mark.slow
def test_plots_render_every_declared_curve(repo):
    path, _ = repo
    data = json.loads(sh("dvc", "plots", "show", "--json", cwd=path))["data"]
    for name in (
        "plots/train_vae.tsv",
        "plots/train_rnn/r0.tsv",
        "plots/evolve/r1.tsv",
        "plots/evaluate/scores.tsv",
        "round_return",
        "round_delusion",
    ):
        assert any(k.endswith(name) for k in data), name
    assert data["round_return"][0]["content"]["data"]["values"], "no round in the plot"


@pytest.mark.slow
def test_outputs_are_byte_identical_across_runs_and_worker_counts(repo, tmp_path_factory):
    """Same params and seed, 2 workers instead of 1: every output DVC tracks has the same hash."""
    import yaml

    path, _ = repo
    other, _ = make_repo(
        tmp_path_factory.mktemp("wm2") / "repo",
        {"collect.workers": 2, "evaluate.workers": 2},
    )

    def out_hashes(p: Path) -> dict:
        lock = yaml.safe_load((p / "dvc.lock").read_text())["stages"]
        return {(s, o["path"]): o["md5"] for s, v in lock.items() for o in v.get("outs", [])}

    sh("git", "checkout", "-q", "--", ".", cwd=path)
    sh("dvc", "checkout", "-q", cwd=path)
    mine, theirs = out_hashes(path), out_hashes(other)
    assert mine.keys() == theirs.keys()
    differ = sorted(k for k in mine if mine[k] != theirs[k])
    assert differ == []


def test_shipped_params_dag_has_ten_rounds_and_more_are_one_edit_away(tmp_path):
    """Main's params.yaml runs round 0 and ten on-policy rounds, each from the one before, and
    evaluates select's choice; an eleventh round is one edit away, and `rounds: {}` leaves
    round 0 alone."""
    import yaml

    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(ROOT / name, tmp_path / name)
    sh("git", "init", "-q", cwd=tmp_path)
    sh("dvc", "init", "-q", cwd=tmp_path)
    stages = set(sh("dvc", "stage", "list", "--name-only", cwd=tmp_path).split())
    assert {"train_rnn", "evolve", "score_heuristic", "select", "evaluate"} <= stages
    for k in range(1, 11):
        assert {f"collect_onpolicy@{k}", f"train_rnn_round@{k}", f"evolve_round@{k}"} <= stages
    assert not any(s.endswith("@11") for s in stages)
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    assert raw["rounds"] == {str(k): {"prev": str(k - 1)} for k in range(1, 11)}
    assert raw["evaluate"]["round"] == "best"  # select's choice among agents 0-10

    def with_rounds(rounds: dict) -> set[str]:
        (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw | {"rounds": rounds}))
        return set(sh("dvc", "stage", "list", "--name-only", cwd=tmp_path).split())

    stages = with_rounds(raw["rounds"] | {"11": {"prev": "10"}})
    assert {"collect_onpolicy@11", "train_rnn_round@11", "evolve_round@11"} <= stages
    stages = with_rounds({})
    assert {"evolve", "select"} <= stages and not any("@" in s for s in stages)


def test_each_evolve_stage_lists_every_dream_key_it_reads():
    """The evolve stages list dream keys one by one (round 0 skips the rounds' charge, the
    rounds skip round 0's), so a new dream key must be listed or DVC would not rerun on it."""
    import dataclasses

    import yaml

    from wm_core.config import DreamConfig

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    keys = {f"dream.{f.name}" for f in dataclasses.fields(DreamConfig)}
    listed = {
        name: {k for k in spec.get("do", spec)["params"] if k.startswith("dream")}
        for name, spec in stages.items()
        if name in ("evolve", "evolve_round")
    }
    assert listed["evolve"] == keys - {"dream.round_offroad_penalty"}
    assert listed["evolve_round"] == keys - {"dream.offroad_penalty"}


def test_each_evolve_stage_lists_the_evolve_keys_it_reads():
    """The controller's header records exactly the evolve keys its stage lists in dvc.yaml."""
    import yaml

    from stages.evolve import evolve_keys_read

    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for name, round_ in (("evolve", 0), ("evolve_round", 1)):
        params = stages[name].get("do", stages[name])["params"]
        listed = {k.removeprefix("evolve.") for k in params if k.startswith("evolve.")}
        assert listed == evolve_keys_read(round_), name
