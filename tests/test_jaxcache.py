"""Stage processes share XLA's compiled programs through an on-disk cache keyed by the machine."""

import os
import subprocess
import sys

import pytest

from wm_core import jaxcache

# What a stage process does: the cache first, then JAX; the jitted function is compiled or loaded.
PROGRAM = (
    "from wm_core.jaxcache import use_compilation_cache; use_compilation_cache(); "
    "import os, jax, jax.numpy as jnp; "
    "f = jax.jit(lambda x: jnp.tanh(x @ x.T).sum()); "
    "print(os.environ.get('JAX_COMPILATION_CACHE_DIR')); print(float(f(jnp.ones((64, 64)))))"
)


def run(cache_home, **env) -> subprocess.CompletedProcess:
    ours = ("JAX_COMPILATION_CACHE_DIR", "JAX_COMPILATION_CACHE_MAX_SIZE", "WM_JAX_CACHE")
    base = {k: v for k, v in os.environ.items() if k not in ours}
    # cache even this small program (JAX's default: only those that took > 1 s to compile)
    base |= {"XDG_CACHE_HOME": str(cache_home), "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}
    out = subprocess.run(
        [sys.executable, "-c", PROGRAM], env={**base, **env}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out


def test_a_second_process_finds_the_first_ones_programs_and_computes_the_same(tmp_path):
    first = run(tmp_path).stdout.splitlines()
    where = first[0]
    assert where.startswith(str(tmp_path / "world-models" / "jax"))
    assert os.listdir(where), "no compiled program was written to the cache"
    second = run(tmp_path, JAX_LOG_COMPILES="1")
    assert second.stdout.splitlines() == first
    if "doesn't match the machine type" in second.stderr:  # jax-ml/jax#38445, some Intel CPUs
        pytest.skip("XLA:CPU rejects its own cached programs on this CPU (they are recompiled)")
    assert "Persistent compilation cache hit" in second.stderr, second.stderr[-2000:]


def test_off_switch_the_users_own_directory_and_an_unwritable_home(tmp_path):
    assert run(tmp_path, WM_JAX_CACHE="0").stdout.splitlines()[0] == "None"
    assert not (tmp_path / "world-models").exists()
    mine = tmp_path / "mine"
    assert run(tmp_path, JAX_COMPILATION_CACHE_DIR=str(mine)).stdout.splitlines()[0] == str(mine)
    assert os.listdir(mine) and not (tmp_path / "world-models").exists()
    (tmp_path / "a-file").write_text("")  # no directory can be made under it: no cache, no noise
    out = run(tmp_path / "a-file")
    assert out.stdout.splitlines()[0] == "None" and "Warning" not in out.stderr


def test_the_directory_names_the_machine_and_the_jax_build(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("WM_JAX_CACHE", raising=False)
    here = jaxcache.cache_dir()
    assert here == jaxcache.cache_dir()  # stable from one process to the next
    monkeypatch.setattr(jaxcache, "_machine", lambda: "another CPU\njax=0.0")
    assert jaxcache.cache_dir() != here and jaxcache.cache_dir().parent == here.parent


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/cpuinfo")
def test_the_key_holds_the_cpu_flags_and_versions():
    machine = jaxcache._machine()
    assert "flags" in machine or "Features" in machine
    assert "jax=" in machine and "jaxlib=" in machine
