"""Run a stage with glibc's transparent-huge-page malloc: XLA:CPU's buffers cost page faults.

XLA:CPU allocates each call's output and scratch buffers afresh with malloc, and glibc serves
large ones with a new mmap, so every call touches hundreds of MB of new 4 KiB pages: V's train
step at batch 100 took ~60k minor page faults (about a quarter of its time). With the glibc
tunable ``glibc.malloc.hugetlb=1`` those mappings are advised to use 2 MiB transparent huge
pages (0.19 M against 2.04 M faults over the same 31 steps): V trained at 397 against 304
images/s, M at 26.7k against 21.0k steps/s (BENCHMARKS.md, session 24). glibc reads tunables
only at process start, hence the re-exec. It changes where memory comes from, not what is computed.
"""

from __future__ import annotations

import os
import sys

TUNABLE = "glibc.malloc.hugetlb=1"
_RESTARTED = "_WM_HUGE_PAGES_RESTARTED"  # one restart at most, whatever the loader does


def reexec_with_huge_pages() -> None:
    """Restart this process (same interpreter and argv) with the tunable set, once.

    Called by stages/__init__.py (``python -m stages.X``) and bench/harness.py before their
    imports; never from library code, which tests import. A no-op off Linux,
    when the tunable is already set (so the restarted process goes on), or with
    ``WM_HUGE_PAGES=0``. Where the kernel's THP mode is ``never`` or the libc is not glibc
    the restarted process runs exactly as before.
    """
    if (
        sys.platform != "linux"
        or huge_pages_on()
        or os.environ.get("WM_HUGE_PAGES") == "0"
        or _RESTARTED in os.environ
    ):
        return
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    env = dict(os.environ, GLIBC_TUNABLES=":".join(filter(None, (tunables, TUNABLE))))
    env[_RESTARTED] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, sys.orig_argv, env)


def huge_pages_on() -> bool:
    """Whether this process started with the tunable (for benchmark records)."""
    return TUNABLE in os.environ.get("GLIBC_TUNABLES", "")
