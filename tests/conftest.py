import atexit
import os
import shutil
import tempfile

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
# The pipeline tests start every stage as a new process (dvc repro, dvc exp run), which would
# compile the same jitted functions again each time: JAX's persistent cache, private to this
# test session, lets the stages share compiled code. It stores XLA's output for the same
# program, so results do not change (the byte-identical test runs with it too).
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = cache = tempfile.mkdtemp(prefix="wm-jax-cache-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
# The tests' shapes are tiny, so XLA's compiles are most of their time: LLVM at -O0 compiles the
# same programs with less machine-code optimization (~40 % less time for test_vae and
# test_mdrnn, BENCHMARKS.md, session 46). Inherited by the stages the pipeline tests start;
# speed is measured by bench/ with the default flags. A user's own XLA_FLAGS win.
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import jax
import numpy as np
import pytest

from wm_core.data import Episodes


@pytest.fixture
def key():
    return jax.random.key(0)


def make_episodes(lengths=(30, 12, 45), z_dim=None, seed=0, frames=True) -> Episodes:
    """Small ragged episodes with random content (for schema and sampling tests)."""
    rng = np.random.default_rng(seed)
    n = sum(lengths)
    term = np.zeros(n, bool)
    term[np.cumsum(lengths)[0] - 1] = True  # the first episode ends in a crash/lap end
    return Episodes(
        obs=rng.integers(0, 256, (n, 64, 64, 3), dtype=np.uint8) if frames else None,
        action=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        reward=rng.normal(size=n).astype(np.float32),
        terminated=term,
        truncated=np.zeros(n, bool),
        episode_ends=np.cumsum(lengths).astype(np.int64),
        seeds=np.arange(len(lengths), dtype=np.int64),
        mu=rng.normal(size=(n, z_dim)).astype(np.float32) if z_dim else None,
        log_sigma=np.full((n, z_dim), -1.0, np.float32) if z_dim else None,
        attrs={"policy": "test"},
    )


@pytest.fixture
def episodes():
    return make_episodes()
