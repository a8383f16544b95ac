"""XLA's compiled programs kept on disk, so that each stage process does not compile them again.

DVC runs every stage as its own process, and a process compiles its jitted functions afresh:
the dream's population loop takes 1-2 s to compile per shape, four shapes per evolve stage, and
the rounds procedure runs nine evolve stages with the same shapes. JAX's persistent compilation
cache stores each executable that took over a second to compile; a later process with the same
program loads it (~0.04 s) instead. A small gain, measured: 29.4 of the 62.3 compile seconds of
an eight-round run (BENCHMARKS.md, "Session 36"). It changes how long compiling takes, never
what runs: the same executable, so the same outputs (checked on evolve's controller, byte for
byte), and no stage in dvc.yaml lists it as a dependency.

XLA:CPU compiles for the host's instruction set, so the directory is keyed by the CPU's model
and feature flags and by the jax and jaxlib versions: a home directory shared by two machines,
or a jaxlib reinstalled in place, never serves an executable built for the other one.
``WM_JAX_CACHE=0`` turns the cache off; a ``JAX_COMPILATION_CACHE_DIR`` set by the user wins.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

ENV = "JAX_COMPILATION_CACHE_DIR"  # read by JAX when it is imported, inherited by workers
MAX_BYTES = 2 << 30  # JAX evicts least recently used entries past this


def _machine() -> str:
    """The CPU model and feature flags, and the JAX build: what an executable depends on."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        # the first processor's model and flags ("Features" on arm64) describe every core
        keep = ("model name", "flags", "Features", "cpu family", "model\t")
        first = info.split("\n\n")[0].splitlines()
        cpu = "\n".join(line for line in first if line.startswith(keep))
    except OSError:
        pass
    versions = []
    for dist in ("jax", "jaxlib"):
        try:
            versions.append(f"{dist}={version(dist)}")
        except PackageNotFoundError:
            versions.append(f"{dist}=?")
    return "\n".join([cpu, sys.version, *versions])


def cache_dir() -> Path | None:
    """Where this machine's compiled programs go; None when ``WM_JAX_CACHE=0``."""
    if os.environ.get("WM_JAX_CACHE") == "0":
        return None
    try:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    except RuntimeError:  # no home directory to be found: no cache
        return None
    key = hashlib.sha256(_machine().encode()).hexdigest()[:16]
    return base / "world-models" / "jax" / key


def use_compilation_cache() -> None:
    """Point JAX at :func:`cache_dir` for this process and the workers it spawns.

    Called by stages/__init__.py and the ``wm`` command before they import JAX; a no-op when
    the user chose a directory (``JAX_COMPILATION_CACHE_DIR``), turned it off, or the
    directory cannot be made.
    """
    path = cache_dir()
    if path is None or os.environ.get(ENV):
        return
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # a read-only home: compile as before, rather than warn on every program
        return
    os.environ[ENV] = str(path)
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", str(MAX_BYTES))
    if "jax" in sys.modules:  # JAX read its environment at import: tell it directly
        import jax

        jax.config.update("jax_compilation_cache_dir", str(path))
        jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
