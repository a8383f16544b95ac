"""Stages restart once with glibc's huge-page malloc tunable and then run as usual."""

import os
import subprocess
import sys

import pytest

from wm_core.hugepages import TUNABLE

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="a glibc tunable")

SHOW = (
    "import os; from wm_core.hugepages import reexec_with_huge_pages as r; r(); "
    "print(os.environ.get('GLIBC_TUNABLES'))"
)


def run(code_or_args: list[str], **env) -> subprocess.CompletedProcess:
    ours = ("GLIBC_TUNABLES", "WM_HUGE_PAGES", "_WM_HUGE_PAGES_RESTARTED")
    base = {k: v for k, v in os.environ.items() if k not in ours}
    return subprocess.run(
        [sys.executable, *code_or_args], env={**base, **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_restarts_once_with_the_tunable_and_keeps_the_users_own():
    out = run(["-c", SHOW])
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [TUNABLE]  # one line: the restarted process ran once
    out = run(["-c", SHOW], GLIBC_TUNABLES="glibc.malloc.arena_max=2")
    assert out.stdout.splitlines() == [f"glibc.malloc.arena_max=2:{TUNABLE}"]


def test_opt_out_leaves_the_environment_alone():
    out = run(["-c", SHOW], WM_HUGE_PAGES="0")
    assert out.returncode == 0 and out.stdout.splitlines() == ["None"]
    # restarted once already (should the loader have dropped the tunable): no second restart
    out = run(["-c", SHOW], _WM_HUGE_PAGES_RESTARTED="1")
    assert out.returncode == 0 and out.stdout.splitlines() == ["None"]


def test_a_stage_run_as_a_module_restarts_before_its_imports(tmp_path):
    """``python -m stages.X`` restarts as itself (stages/__init__.py; sys.orig_argv keeps the
    -m) with the tunable; a sitecustomize logs each interpreter start and its tunables."""
    log = tmp_path / "starts.txt"
    (tmp_path / "sitecustomize.py").write_text(
        "import os\n"
        f"with open({str(log)!r}, 'a') as f:\n"
        "    f.write(str(os.environ.get('GLIBC_TUNABLES')) + '\\n')\n"
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    out = run(["-m", "stages.encode_latents", "--help"], PYTHONPATH=path)
    assert out.returncode == 0, out.stderr
    assert "usage" in out.stdout
    assert log.read_text().splitlines() == ["None", TUNABLE]
    # imported rather than run, a stage leaves the process alone
    out = run(["-c", "import os, stages.encode_latents; print(os.environ.get('GLIBC_TUNABLES'))"])
    assert out.returncode == 0 and out.stdout.splitlines() == ["None"], out.stderr
