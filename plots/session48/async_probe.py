"""Two half batches (B 16) of the LSTM's forward + backward: one after the other, dispatched
asynchronously, or from two Python threads. python plots/session48/async_probe.py"""
import sys, time, threading
import numpy as np, jax, jax.numpy as jnp
from wm_core.lstm import lstm_sequence as one
T, B, I, H = 200, 16, 35, 256
k = jax.random.split(jax.random.key(0), 6)
w_ih = jax.random.normal(k[0], (4 * H, I)) * 0.1; w_hh = jax.random.normal(k[1], (4 * H, H)) * 0.06
bias = jax.random.normal(k[2], (4 * H,)) * 0.1
xa = jax.random.normal(k[3], (T, B, I)); xb = jax.random.normal(k[4], (T, B, I))
f = jax.jit(jax.grad(lambda w_ih, w_hh, xs: jnp.sum(one(w_ih, w_hh, bias, xs) ** 2), argnums=(0, 1)))
jax.block_until_ready(f(w_ih, w_hh, xa))
def seq():
    jax.block_until_ready(f(w_ih, w_hh, xa)); jax.block_until_ready(f(w_ih, w_hh, xb))
def asy():
    ra = f(w_ih, w_hh, xa); rb = f(w_ih, w_hh, xb); jax.block_until_ready((ra, rb))
def thr():
    out = [None, None]
    def run(i, x): out[i] = jax.block_until_ready(f(w_ih, w_hh, x))
    ts = [threading.Thread(target=run, args=(i, x)) for i, x in enumerate((xa, xb))]
    [t.start() for t in ts]; [t.join() for t in ts]
times = {n: [] for n in ("seq", "async", "threads")}
for r in range(5):
    for n, fn in (("seq", seq), ("async", asy), ("threads", thr)):
        t0 = time.perf_counter(); [fn() for _ in range(3)]; times[n].append((time.perf_counter() - t0) / 3 * 1e3)
for n, v in times.items(): print(n, "ms for two half batches, median", round(float(np.median(v)), 1), [round(x) for x in v])
