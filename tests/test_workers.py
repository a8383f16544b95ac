"""Workers: a hung or killed episode process is an error naming its seed, in bounded time."""

import multiprocessing as mp
import os
import re
import signal
import threading
import time

import pytest

from wm_core.config import EnvConfig
from wm_core.rollout import run_episodes
from wm_core.workers import WorkerError, run_jobs

SEEDS = list(range(41, 53))  # enough work that no worker is ever idle when it is hit


def cpu_seconds(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def hit_a_worker(sig: int, after_cpu_s: float = 4.0) -> threading.Thread:
    """Send ``sig`` to one worker once it has run long enough to be inside an episode
    (imports and env creation take ~2 s of CPU; a 1000-frame episode ~5 s)."""

    def go():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            for child in mp.active_children():
                try:
                    if cpu_seconds(child.pid) >= after_cpu_s:
                        os.kill(child.pid, sig)
                        return
                except (FileNotFoundError, ProcessLookupError):
                    pass
            time.sleep(0.05)

    t = threading.Thread(target=go, daemon=True)
    t.start()
    return t


@pytest.mark.parametrize(
    "sig, timeout_s, message",
    [
        (signal.SIGSTOP, 8, r"seed (4[1-9]|5[0-2]) did not finish within 8 s \(worker hung\)"),
        (  # a generous watchdog: on a loaded machine an episode can take > 8 s by itself
            signal.SIGKILL,
            60,
            r"worker process died \(exit code -9\) while running the episode with seed "
            r"(4[1-9]|5[0-2])",
        ),
    ],
)
def test_a_hung_or_dead_worker_names_its_seed_and_leaves_no_process(sig, timeout_s, message):
    t0 = time.monotonic()
    hit_a_worker(sig)
    with pytest.raises(WorkerError, match=message):
        env = EnvConfig(max_steps=1000, episode_timeout_s=timeout_s, fast=True, crop_hud=True)
        run_episodes(("random", 0.02), SEEDS, env, workers=2, desc="w")
    assert time.monotonic() - t0 < 90
    assert mp.active_children() == []  # every worker killed and reaped


def _die_at_once(seed: int) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_as_it_starts_an_episode_names_that_seed():
    """The worker dies right after announcing its seed, before the queue's feeder thread has sent
    the message: the seed is still named (the worker wrote it to shared memory first)."""
    jobs = [(seed, (seed,)) for seed in (7, 8, 9)]
    for _ in range(3):
        with pytest.raises(
            WorkerError, match=r"exit code -9\) while running the episode with seed \d"
        ):
            list(run_jobs(_die_at_once, jobs, workers=2, desc="w", timeout_s=30))
    assert mp.active_children() == []


def _stop_at_once(seed: int) -> None:
    os.kill(os.getpid(), signal.SIGSTOP)


def test_a_worker_stopped_as_it_starts_an_episode_is_timed_out_naming_that_seed():
    """Workers stop (SIGSTOP) as soon as they take a job: the watchdog times each worker's shared
    slot, so the run ends in bounded time naming the seed. (Before, it timed the queue's "start"
    messages, which a worker stopped before its feeder thread sent one would never deliver: a
    hang. That race is not reproducible on demand; the old code passed this test here.)"""
    jobs = [(seed, (seed,)) for seed in (7, 8, 9)]
    outcome: list[BaseException] = []

    def go():
        try:
            list(run_jobs(_stop_at_once, jobs, workers=2, desc="w", timeout_s=2, poll_s=0.1))
        except BaseException as e:
            outcome.append(e)

    for _ in range(3):
        outcome.clear()
        t = threading.Thread(target=go, daemon=True)
        t.start()
        t.join(60)
        hung = t.is_alive()
        for child in mp.active_children():  # a hang leaves stopped workers: end them here
            child.kill()
            child.join()
        assert not hung, "run_jobs hung on a stopped worker"
        assert len(outcome) == 1 and isinstance(outcome[0], WorkerError)
        assert re.search(r"episode with seed \d did not finish within 2 s", str(outcome[0]))
    assert mp.active_children() == []
