"""Forward + backward of the LSTM (B 32, T 200, H 256): main's one recurrence against the batch split
in two, either as two chains in one loop body (lstm_chains.py) or as two loops (lstm_scans.py);
bitwise comparison, then alternating timing rounds.

    python plots/session48/lstm_split_probe.py chains|scans [rounds] [reps]
"""
import sys, time
import numpy as np
import jax, jax.numpy as jnp
import importlib, os
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from wm_core.lstm import lstm_sequence as one
split = importlib.import_module("lstm_" + sys.argv[1]).lstm_sequence
T, B, I, H = 200, 32, 35, 256
k = jax.random.split(jax.random.key(0), 6)
w_ih = jax.random.normal(k[0], (4 * H, I)) * 0.1
w_hh = jax.random.normal(k[1], (4 * H, H)) * 0.06
bias = jax.random.normal(k[2], (4 * H,)) * 0.1
xs = jax.random.normal(k[3], (T, B, I))
ct = jax.random.normal(k[4], (T, B, H))
mask = (jax.random.uniform(k[5], (B, H)) > 0.05).astype(jnp.float32) / 0.95
def make(f, use_mask, **kw):
    def loss(w_ih, w_hh, bias, xs):
        return jnp.sum(f(w_ih, w_hh, bias, xs, mask if use_mask else None, **kw) * ct)
    return jax.jit(jax.value_and_grad(loss, argnums=(0, 1, 2, 3)))
for use_mask in (False, True):
    a = make(one, use_mask)(w_ih, w_hh, bias, xs); b = make(split, use_mask, chains=2)(w_ih, w_hh, bias, xs)
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    print("mask" if use_mask else "no mask", "bitwise equal:", all(bool((x == y).all()) for x, y in zip(la, lb)),
          "max abs diff:", max(float(jnp.abs(x - y).max()) for x, y in zip(la, lb)))
fs = {"one": make(one, False), "split2": make(split, False, chains=2)}
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5; reps = int(sys.argv[3]) if len(sys.argv) > 3 else 5
times = {n: [] for n in fs}
for f in fs.values(): jax.block_until_ready(f(w_ih, w_hh, bias, xs))
for r in range(rounds):
    for n, f in fs.items():
        t0 = time.perf_counter()
        for _ in range(reps): jax.block_until_ready(f(w_ih, w_hh, bias, xs))
        times[n].append((time.perf_counter() - t0) / reps * 1e3)
for n, v in times.items(): print(n, "ms per fwd+bwd: median", round(float(np.median(v)), 1), [round(x, 1) for x in v])
print("ratio one/split2 (medians):", round(float(np.median(times["one"]) / np.median(times["split2"])), 3))
