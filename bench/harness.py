"""Shared by the bench/*.py scripts: the repo root on sys.path, huge-page malloc, timing and
machine info.

``python bench/X.py`` puts bench/ (not the repo root) on sys.path, so ``wm_core`` only imports
when the package is pip-installed; inserting the root makes the scripts work from a plain
checkout too (and always measure this checkout's wm_core, not an older installed one).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from wm_core.data import Episodes

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from wm_core.hugepages import huge_pages_on, reexec_with_huge_pages  # noqa: E402

# Measure what the stages run: both frameworks in one process under glibc's huge-page malloc
# (wm_core/hugepages.py); WM_HUGE_PAGES=0 measures plain malloc.
reexec_with_huge_pages()


def time_it(
    step: Callable[[], None], steps: int, repeats: int, sync: Callable[[], object]
) -> float:
    """Median wall time of ``repeats`` runs of ``steps`` calls, after one warm-up call (compile)."""
    step()
    sync()  # compile / warm up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(steps):
            step()
        sync()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def add_torch_args(ap: argparse.ArgumentParser, repeats: int = 3) -> None:
    """--repeats, --torch-threads and --torch-device, shared by the JAX-vs-PyTorch scripts."""
    ap.add_argument("--repeats", type=int, default=repeats)
    ap.add_argument("--torch-threads", type=int, default=0, help="0: torch's default")
    ap.add_argument(
        "--torch-device", default="auto", help="auto: cuda when torch sees a GPU, else cpu"
    )


def torch_device(name: str = "auto") -> str:
    """The baseline runs where JAX runs: on the GPU when there is one."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def torch_sync(device: str) -> Callable[[], None]:
    """Wait for queued GPU work, so a timing covers it (CPU work is already done)."""
    import torch

    return torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)


def set_torch_threads(n: int) -> None:
    if n:  # on a busy machine, fewer threads than cores avoid OpenMP stalls
        import torch

        torch.set_num_threads(n)


def synthetic_latents(n_episodes: int, length: int, z_dim: int, seed: int = 0) -> Episodes:
    """Real-shaped latent episodes (random content; the cost does not depend on the values)."""
    from wm_core.data import Episodes

    rng = np.random.default_rng(seed)
    n = n_episodes * length
    done = np.zeros(n, bool)
    done[length - 1 :: length * 3] = True  # some episodes end in a crash/lap end
    return Episodes(
        action=rng.uniform(-1, 1, (n, 3)).astype(np.float32),
        reward=rng.normal(size=n).astype(np.float32),
        terminated=done,
        truncated=np.zeros(n, bool),
        episode_ends=np.arange(1, n_episodes + 1, dtype=np.int64) * length,
        seeds=np.arange(n_episodes, dtype=np.int64),
        mu=rng.normal(size=(n, z_dim)).astype(np.float32),
        log_sigma=np.full((n, z_dim), -1.0, np.float32),
    )


def machine_info() -> dict:
    """Where the numbers come from; the load average flags a busy machine (noisy numbers)."""
    import jax
    import torch

    dev = jax.devices()[0]
    return {
        "device": dev.platform,
        "device_kind": dev.device_kind,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_1m": round(os.getloadavg()[0], 2),
        "huge_pages": huge_pages_on(),
        "machine": platform.processor() or platform.machine(),
    }
