"""Probe: M's loss gradient on B=32 in one call vs two B=16 calls from two Python threads."""

# GLIBC_TUNABLES=glibc.malloc.hugetlb=1 python plots/session52/dp_probe.py   (repo root; synthetic latents)
import statistics
import threading
import time

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wm_core.config import load_params
from wm_core.mdrnn import MDNRNN
from wm_core.train import SeqData, mdrnn_loss, sample_windows

cfg = load_params("params.yaml").rnn

rng = np.random.default_rng(0)
N = 20000
seq = SeqData(
    mu=jnp.asarray(rng.standard_normal((N, 32)), jnp.float32),
    log_sigma=jnp.full((N, 32), -1.0),
    action=jnp.asarray(rng.uniform(-1, 1, (N, 3)), jnp.float32),
    reward=jnp.zeros(N),
    done=jnp.zeros(N),
    starts=jnp.arange(0, N, 1000),
    lengths=jnp.full(N // 1000, 1000),
)
model = MDNRNN(32, cfg.hidden, cfg.mixtures, key=jax.random.key(0))


def make(b):
    @eqx.filter_jit
    def g(m, key):
        w = sample_windows(seq, b, cfg.seq_len, key)
        return eqx.filter_grad(lambda m: mdrnn_loss(m, w, cfg, key)[0])(m)

    return g


g32, g16a, g16b = make(32), make(16), make(16)
k = jax.random.key(1)


def block(t):
    jax.tree.map(lambda x: x.block_until_ready(), eqx.filter(t, eqx.is_array))


for f in (g32, g16a):
    block(f(model, k))


def one():
    block(g32(model, k))


def seq2():
    block(g16a(model, k))
    block(g16a(model, k))


def thr():
    out = [None, None]

    def run(i):
        out[i] = g16a(model, jax.random.fold_in(k, i))
        block(out[i])

    ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    [t.start() for t in ts]
    [t.join() for t in ts]


res = {n: [] for n in ("B32 one call", "2 x B16 in turn", "2 x B16, two threads")}
for _ in range(9):
    for n, f in zip(res, (one, seq2, thr)):
        t = time.perf_counter()
        [f() for _ in range(5)]
        res[n].append((time.perf_counter() - t) / 5 * 1e3)
for n, v in res.items():
    print(f"{n:24s} median {statistics.median(v):6.1f} ms  {[round(x) for x in v]}")
