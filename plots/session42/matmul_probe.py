"""Session 42 probe: the dream's matmul shapes, jitted JAX against torch (2 threads), medians in ms."""
import time, numpy as np, jax, jax.numpy as jnp, torch
torch.set_num_threads(2)
def t(f, n=50):
    f(); ts=[]
    for _ in range(5):
        s=time.perf_counter()
        for _ in range(n): f()
        ts.append((time.perf_counter()-s)/n)
    return np.median(ts)*1e3
for (m,k,n) in [(1024,291,1024),(1024,256,1024),(1024,256,482),(6400,291,1024)]:
    a=np.random.randn(m,k).astype(np.float32); b=np.random.randn(k,n).astype(np.float32)
    ja,jb=jnp.asarray(a),jnp.asarray(b); f=jax.jit(lambda x,y: x@y)
    jt=t(lambda: f(ja,jb).block_until_ready())
    ta,tb=torch.from_numpy(a),torch.from_numpy(b)
    tt=t(lambda: ta@tb)
    print(f"{m}x{k}x{n}: jax {jt:.3f} ms torch {tt:.3f} ms ratio(jax/torch time) {jt/tt:.2f}  GFLOP/s jax {2*m*k*n/jt/1e6:.1f} torch {2*m*k*n/tt/1e6:.1f}")
