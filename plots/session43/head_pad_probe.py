"""Session 43: is M's head matmul (6400 x 256 @ 256 x 482, forward + both gradients) faster padded
to 488 / 496 / 512 columns? Jitted, 15 interleaved rounds, medians. It was not (90.2 / 92.6 /
92.1 / 102.5 ms on the AMD EPYC model 1 VM, run 22 sharing the cores)."""

import time, jax, jax.numpy as jnp, numpy as np

k = jax.random.split(jax.random.key(0), 3)
h = jax.random.normal(k[0], (6400, 256))


def f(w, h, g):
    out, vjp = jax.vjp(lambda w, h: h @ w.T, w, h)
    dw, dh = vjp(g)
    return out.sum() + dw.sum() + dh.sum()


fs = {}
for n in (482, 488, 496, 512):
    w = jax.random.normal(k[1], (n, 256))
    g = jax.random.normal(k[2], (6400, n))
    fs[n] = (jax.jit(f), (w, h, g))
    fs[n][0](*fs[n][1]).block_until_ready()
res = {n: [] for n in fs}
for r in range(15):
    for n, (fn, a) in fs.items():
        t = time.perf_counter()
        fn(*a).block_until_ready()
        res[n].append(time.perf_counter() - t)
for n in res:
    print(n, f"{np.median(res[n]) * 1e3:.1f} ms  per-col {np.median(res[n]) * 1e3 / n * 482:.1f}")
