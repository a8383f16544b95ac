"""Where a workload's time goes, by XLA op: the per-thunk trace of ``jax.profiler``, summed.

    python bench/xla_profile.py dream|rnn [--horizon 200] [--steps 5] [--top 15]

``dream`` times the pipeline's ``make_population_returns`` (params.yaml's population x
rollouts, ``--horizon`` steps, one call); ``rnn`` times ``--steps`` of M's train step as
``fit_mdrnn`` builds it (``bench/rnn.py``'s ``build_jax``). Both run once to compile, then once
under ``jax.profiler.trace``; XLA:CPU records every thunk it runs (a fusion, a library matmul,
a loop; a loop's time includes its body's thunks), and the ``--top`` thunks by total time are
printed with their call count, their share of the traced wall time and the source op that
XLA's metadata names for them (from the same program's optimised HLO). Session 43 found the
dream's gate transpose this way (BENCHMARKS.md). No baseline: this is a diagnosis, not a
figure; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import collections
import gzip
import json
import re
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import REPO, machine_info, synthetic_latents  # + repo root on sys.path


def op_names(hlo_text: str) -> dict[str, str]:
    """Instruction name -> the op_name of its metadata (the JAX source op), from HLO text."""
    pat = re.compile(r"^\s*(?:ROOT )?%([\w.\-]+) = .*?metadata=\{op_name=\"([^\"]*)\"", re.M)
    return {m[1]: m[2] for m in pat.finditer(hlo_text)}


def thunk_times(run, trace_dir: Path) -> tuple[dict[str, float], dict[str, int], float]:
    """Run ``run()`` under the profiler -> (ms per thunk name, calls per name, wall s)."""
    import jax

    jax.profiler.start_trace(str(trace_dir), create_perfetto_trace=True)
    t0 = time.perf_counter()
    run()
    wall = time.perf_counter() - t0
    jax.profiler.stop_trace()
    trace = sorted(trace_dir.rglob("*.json.gz"))[-1]
    events = json.loads(gzip.decompress(trace.read_bytes()))
    events = events["traceEvents"] if isinstance(events, dict) else events
    ms, calls = collections.Counter(), collections.Counter()
    for e in events:
        # complete events of the executor's thunks; skip its umbrella and Python frames
        if e.get("ph") == "X" and not e["name"].startswith(("$", "ThunkExecutor", "Pjit")):
            ms[e["name"]] += e.get("dur", 0) / 1e3
            calls[e["name"]] += 1
    return dict(ms), dict(calls), wall


def dream_workload(p, horizon: int):
    """-> (run, hlo): one generation of the pipeline's dream at params.yaml's sizes."""
    import equinox as eqx
    import jax
    from jax.flatten_util import ravel_pytree

    from wm_core.controller import Controller
    from wm_core.dream import make_population_returns, sample_starts
    from wm_core.mdrnn import MDNRNN

    rnn_key, ctrl_key, pop_key = jax.random.split(jax.random.key(0), 3)
    rnn = MDNRNN(32, p.rnn.hidden, p.rnn.mixtures, key=rnn_key)
    ctrl = Controller(32, p.rnn.hidden, key=ctrl_key)
    flat0, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    pop = flat0 + p.evolve.sigma0 * jax.random.normal(pop_key, (p.evolve.popsize, flat0.size))
    data = synthetic_latents(n_episodes=20, length=1000, z_dim=32)
    starts = sample_starts(
        data, p.evolve.rollouts, p.dream.warmup, np.random.default_rng(0), p.dream.reset_starts
    )
    f = make_population_returns(ctrl, p.dream.temperature, horizon, p.dream.dropout)
    args = (rnn, pop, starts, jax.random.key(1))
    hlo = f.lower(*args).compile().compiled.as_text()
    return lambda: f(*args).block_until_ready(), hlo


def rnn_workload(p, steps: int):
    """-> (run, hlo): ``steps`` of M's train step, as bench/rnn.py times it."""
    import jax
    from rnn import build_jax

    from wm_core.train import SeqData

    model, step_fn, opt_state = build_jax(p.rnn, 32)
    seq = SeqData.from_episodes(synthetic_latents(n_episodes=20, length=1000, z_dim=32))
    key = jax.random.key(1)
    hlo = step_fn.lower(model, opt_state, (seq, key), key).compile().compiled.as_text()
    state = {"m": model, "o": opt_state}

    def run():
        for i in range(steps):
            k = jax.random.fold_in(key, i)
            state["m"], state["o"], out = step_fn(state["m"], state["o"], (seq, k), k)
        out["loss"].block_until_ready()

    return run, hlo


def main() -> None:
    from wm_core.config import load_params

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("workload", choices=("dream", "rnn"))
    ap.add_argument("--horizon", type=int, default=200, help="dream steps per rollout")
    ap.add_argument("--steps", type=int, default=5, help="M train steps")
    ap.add_argument("--top", type=int, default=15)
    args = ap.parse_args()
    p = load_params(REPO / "params.yaml")
    run, hlo = (
        dream_workload(p, args.horizon) if args.workload == "dream" else rnn_workload(p, args.steps)
    )
    run()  # compile and warm up outside the trace
    with tempfile.TemporaryDirectory() as d:
        ms, calls, wall = thunk_times(run, Path(d))
    names = op_names(hlo)
    top = sorted(ms, key=ms.get, reverse=True)[: args.top]
    print(f"{args.workload}: {wall:.3f} s traced; thunks by total time:")
    for name in top:
        share = ms[name] / (wall * 1e3)
        source = names.get(name, "").removeprefix("jit(")
        print(f"{ms[name]:9.1f} ms {calls[name]:6d}x {share:6.1%}  {name:28s} {source[-90:]}")
    summary = {"workload": args.workload, "wall_s": round(wall, 3)}
    summary["top"] = [
        {"thunk": n, "ms": round(ms[n], 1), "calls": calls[n], "op": names.get(n, "")} for n in top
    ]
    print(json.dumps(summary | machine_info()))


if __name__ == "__main__":
    main()
