"""One workload under several per-compilation XLA option sets: which routing XLA:CPU runs fastest.

    python bench/xla_options.py vae|rnn|dream|encode [--rounds 5] [--sets default,ynn_dots,...]

``jax.jit(f, compiler_options=...)`` sets XLA debug options for one compilation (unlike
``XLA_FLAGS``, which sets them for the whole process and aborts it on an unknown one). Here
every ``eqx.filter_jit`` that the workload's own code builds (``wm_core.train.make_train_step``,
``wm_core.dream.make_population_returns``) gets the set's options, so the stage code is timed
unchanged. The sets are timed in one process, alternating round by round, and the median of
each is reported; the last line is one JSON object (``vs_default``: each median over the
default's, so above 1 is faster except for the dream's seconds per generation).
Workloads, at the default params' sizes:
V's train step (batch 100, img/s), M's train step (B 32, T 200, steps/s), one dream
generation (64 x 16 x 1,000 steps, s/generation: lower is faster) and encoding (1,000 frames in
chunks of 50, frames/s).
A set this XLA rejects is reported as such and skipped. BENCHMARKS.md, session 27, has the
figures that made ``wm_core.encode.CONV_OPTIONS`` the encoder's only option.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from harness import REPO, machine_info, synthetic_latents  # + repo root on sys.path

_L = "LIBRARY_FUSION_TYPE_"
_YNN, _XNN = "xla_cpu_experimental_ynn_fusion_type", "xla_cpu_experimental_xnn_fusion_type"
SETS: dict[str, dict] = {
    "default": {},
    "ynn_off": {_YNN: ""},  # XLA's own (Eigen) dots and convolutions
    "ynn_dots": {_YNN: _L + "INDIVIDUAL_DOT"},  # wm_core.encode.CONV_OPTIONS
    "xnn_dots": {_YNN: "", _XNN: _L + "INDIVIDUAL_DOT"},
    "onednn_dots": {_YNN: "", "xla_cpu_experimental_onednn_fusion_type": _L + "INDIVIDUAL_DOT"},
    "concurrency_scheduler": {"xla_cpu_enable_concurrency_optimized_scheduler": True},
}


def build(workload: str):
    """-> (run one timed unit, its result to wait on; units per call; unit name). Built under
    whatever ``eqx.filter_jit`` is at call time."""
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    from wm_core.config import load_params

    p = load_params(REPO / "params.yaml")
    if workload == "vae":
        from wm_core.train import make_train_step
        from wm_core.vae import VAE, vae_loss

        optim = optax.adam(1e-4)
        step = make_train_step(lambda m, b, k: vae_loss(m, b, k, p.vae.kl_tolerance), optim)
        model = VAE(p.vae.z_dim, key=jax.random.key(0))
        st = [model, optim.init(eqx.filter(model, eqx.is_array)), 0]
        obs = jnp.asarray(np.random.default_rng(0).integers(0, 256, (100, 64, 64, 3), np.uint8))

        def run():
            st[0], st[1], m = step(st[0], st[1], obs, jax.random.key(st[2]))
            st[2] += 1
            return m["loss"]

        return run, 100, "img/s"
    if workload == "rnn":
        from rnn import build_jax

        from wm_core.train import SeqData

        model, step, opt_state = build_jax(p.rnn, 32)
        seq = SeqData.from_episodes(synthetic_latents(n_episodes=20, length=1000, z_dim=32))
        st = [model, opt_state, 0]

        def run():
            k = jax.random.fold_in(jax.random.key(1), st[2])
            st[0], st[1], m = step(st[0], st[1], (seq, k), k)
            st[2] += 1
            return m["loss"]

        return run, p.rnn.batch_size * p.rnn.seq_len, "steps/s"
    if workload == "dream":
        from jax.flatten_util import ravel_pytree

        from wm_core.controller import Controller
        from wm_core.dream import make_population_returns, sample_starts
        from wm_core.mdrnn import MDNRNN

        rnn = MDNRNN(32, p.rnn.hidden, p.rnn.mixtures, key=jax.random.key(0))
        ctrl = Controller(32, p.rnn.hidden, key=jax.random.key(1))
        flat0, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
        pop = flat0 + p.evolve.sigma0 * jax.random.normal(
            jax.random.key(2), (p.evolve.popsize, flat0.size)
        )
        data = synthetic_latents(n_episodes=20, length=1000, z_dim=32)
        returns = make_population_returns(ctrl, p.dream.temperature, 1000, p.dream.dropout)
        st = [0]

        def run():
            rng = np.random.default_rng([0, st[0]])
            d = p.dream
            starts = sample_starts(data, p.evolve.rollouts, d.warmup, rng, d.reset_starts)
            st[0] += 1
            return returns(rnn, pop, starts, jax.random.key(st[0]))

        return run, 1, "s/generation"
    if workload == "encode":
        from wm_core.encode import encode_chunks
        from wm_core.vae import VAE

        enc = eqx.filter_jit(encode_chunks)
        model = VAE(p.vae.z_dim, key=jax.random.key(0))
        obs = jnp.asarray(np.random.default_rng(0).integers(0, 256, (1000, 64, 64, 3), np.uint8))
        return (lambda: enc(model, obs, 50)[0]), 1000, "frames/s"
    raise ValueError(f"unknown workload {workload!r}")


def main() -> None:
    import equinox as eqx
    import jax

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("workload", choices=["vae", "rnn", "dream", "encode"])
    ap.add_argument("--rounds", type=int, default=5, help="alternating timings per set")
    ap.add_argument("--calls", type=int, default=0, help="calls per timing (0: per workload)")
    ap.add_argument("--sets", default=",".join(SETS), help=f"comma-separated, of {list(SETS)}")
    args = ap.parse_args()
    if unknown := set(args.sets.split(",")) - set(SETS):
        ap.error(f"unknown option sets {sorted(unknown)}; known: {list(SETS)}")
    calls = args.calls or {"vae": 5, "rnn": 5, "dream": 1, "encode": 3}[args.workload]
    plain_jit, runs, rejected, unit = eqx.filter_jit, {}, {}, ""
    for name in args.sets.split(","):
        opts = SETS[name]

        def with_options(fun=None, opts=opts, **kw):  # what the workload's code calls
            if fun is None:
                return lambda f: with_options(f, opts, **kw)
            return plain_jit(fun, compiler_options=opts, **kw) if opts else plain_jit(fun, **kw)

        eqx.filter_jit = with_options
        try:
            run, units, unit = build(args.workload)
            jax.block_until_ready(run())  # compile
            runs[name] = run
        except jax.errors.JaxRuntimeError as err:
            rejected[name] = str(err).splitlines()[0]
            print(f"{name}: rejected by this XLA: {rejected[name]}", flush=True)
        finally:
            eqx.filter_jit = plain_jit
    rates: dict[str, list[float]] = {n: [] for n in runs}
    for _ in range(args.rounds):
        for name, run in runs.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                out = run()
            jax.block_until_ready(out)
            secs = time.perf_counter() - t0
            per = unit.startswith("s/")  # a time per unit (the dream), else units per second
            rates[name].append(secs / (units * calls) if per else units * calls / secs)
    medians = {n: float(np.median(v)) for n, v in rates.items()}
    for name, med in medians.items():
        print(f"{name:22s} {med:10.2f} {unit}  ({', '.join(f'{x:.2f}' for x in rates[name])})")
    print(
        json.dumps(
            {
                "workload": args.workload,
                "unit": unit,
                "median": {n: round(m, 3) for n, m in medians.items()},
                "vs_default": {n: round(m / medians["default"], 3) for n, m in medians.items()}
                if "default" in medians
                else {},
                "rejected": rejected,
                "rounds": args.rounds,
                "calls": calls,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
