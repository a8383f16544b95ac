"""Worker processes with a watchdog: a crashed or hung episode is an error naming its seed.

``concurrent.futures`` cannot say which task a dead worker was running, and its shutdown waits
forever on a hung one (the classic silent hang of World Models reproductions). Here each worker
writes the index of the job it starts to a shared integer, synchronously, before the episode; the
parent reads these slots, so it knows at every moment which seed each process is on and, from
when it first saw the slot change (at most one poll late), since when. Queue messages would not
do: one is sent by a feeder thread after ``put`` returns, so a worker killed or stopped just after
announcing a seed can take the message with it (seen in CI). An episode that runs past
``timeout_s``, a worker that dies (segfault, OOM kill, SIGKILL) and an exception inside an
episode all end the run with one message naming the seed; every worker is then killed and
reaped, so no process outlives the call.

Results (an episode is ~12 MB of frames) travel through a private temporary directory, and
the queue carries only short messages. A worker killed while writing a long message to the
pipe would leave half of it there, and the parent's read would then block forever on the
rest (seen once in CI); a write of at most PIPE_BUF (4096) bytes to a pipe is atomic, so a
short message arrives whole or not at all, and a half-written result file is never named.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import pickle
import queue
import shutil
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from wm_core.errors import WMError


class WorkerError(WMError):
    """An episode failed, hung, or took its worker process down."""


# A worker's slot: the index of the job it runs, or one of these.
STARTING, BETWEEN, FINISHED = -3, -2, -1


def _worker(fn: Callable, tasks, results, outdir: str, current) -> None:
    current.value = BETWEEN  # imports done (spawn): from here on the slot is timed
    while (task := tasks.get()) is not None:
        index, (seed, args) = task
        current.value = index  # before the episode, synchronously: read if this process dies
        try:
            out = os.path.join(outdir, f"{seed}.pkl")
            with open(out + ".part", "wb") as f:
                pickle.dump(fn(*args), f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(out + ".part", out)  # named only once complete
            results.put(("done", seed, out))
        except BaseException as e:  # reported to the parent, which owns the error message
            tb = traceback.format_exception_only(type(e), e)[-1].strip()
            results.put(("error", seed, tb[:1000]))  # short: one atomic pipe write
        current.value = BETWEEN
    current.value = FINISHED


def run_jobs(
    fn: Callable[..., Any],
    jobs: list[tuple[int, tuple]],
    workers: int,
    desc: str,
    timeout_s: float,
    poll_s: float = 0.5,
) -> Iterator[tuple[int, Any]]:
    """Yield (seed, fn(*args)) for each (seed, args) in ``jobs`` as workers finish them.

    Raises WorkerError naming the seed when an episode raises, runs longer than ``timeout_s``
    seconds, or its worker dies. Workers are spawned (no forked JAX/pygame state).
    """
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    outdir = tempfile.mkdtemp(prefix="wm-jobs-")
    for index, job in enumerate(jobs):
        tasks.put((index, job))
    n_procs = max(1, min(workers, len(jobs)))
    for _ in range(n_procs):
        tasks.put(None)
    currents = [ctx.Value("q", STARTING, lock=False) for _ in range(n_procs)]
    procs = [
        ctx.Process(target=_worker, args=(fn, tasks, results, outdir, cur), daemon=True)
        for cur in currents
    ]
    for p in procs:
        p.start()
    seen = [(STARTING, time.monotonic()) for _ in procs]  # each slot's value, since when
    left = {seed for seed, _ in jobs}
    try:
        while left:
            try:
                kind, seed, payload = results.get(timeout=poll_s)
            except queue.Empty:
                _check_workers(procs, currents, seen, jobs, left, desc, timeout_s)
                continue
            _check_workers(procs, currents, seen, jobs, left, desc, timeout_s, idle=False)
            if kind == "error":
                raise WorkerError(f"{desc}: episode with seed {seed} failed: {payload}")
            else:
                left.discard(seed)
                with open(payload, "rb") as f:  # written by our own worker, this call
                    result = pickle.load(f)
                os.unlink(payload)
                yield seed, result
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
            p.join()
        for q in (tasks, results):
            q.cancel_join_thread()
            q.close()
        shutil.rmtree(outdir, ignore_errors=True)


def _check_workers(
    procs, currents, seen, jobs, left, desc: str, timeout_s: float, idle: bool = True
) -> None:
    now = time.monotonic()
    for w, (p, current) in enumerate(zip(procs, currents)):
        i = current.value
        if i != seen[w][0]:
            seen[w] = (i, now)
        seed = jobs[i][0] if i >= 0 else None
        if not p.is_alive() and p.exitcode != 0:
            what = f"seed {seed}" if seed is not None else f"one of seeds {sorted(left)[:5]}"
            raise WorkerError(
                f"{desc}: worker process died (exit code {p.exitcode}) while running the "
                f"episode with {what}"
            )
        if p.is_alive() and i not in (STARTING, FINISHED) and now - seen[w][1] > timeout_s:
            what = (
                f"episode with seed {seed}"
                if seed is not None
                else f"a worker between episodes (seeds {sorted(left)[:5]} unfinished)"
            )
            raise WorkerError(
                f"{desc}: {what} did not finish within {timeout_s:.0f} s (worker hung); "
                "all workers stopped"
            )
    if idle and not any(p.is_alive() for p in procs):  # nothing left that could report
        raise WorkerError(f"{desc}: all workers exited with seeds {sorted(left)[:5]} unfinished")
