"""V's layers one at a time: where JAX loses to PyTorch on V's train step, same run.

    pip install -e '.[bench]' && python bench/vae_layers.py [--batch 100] [--steps 5]
        [--autodiff-deconv]

Each of Ha's eight conv layers alone on random input of its real shape: the forward pass and
forward + backward of sum(relu(layer(x))), our ``wm_core.conv`` against ``nn.Conv2d`` /
``nn.ConvTranspose2d`` (the first layer takes no input gradient: its input is data). Medians
of ``repeats`` timings of ``steps`` calls. The last line is one JSON object.
``--autodiff-deconv`` also times each transposed convolution's forward + backward with XLA's
autodiff of the same forward in place of its hand-written backward (the CPU path).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from harness import add_torch_args, machine_info, set_torch_threads, time_it

# (kind, input size, c_in, c_out, kernel): wm_core.vae's layers, stride 2
LAYERS = [("conv", 64, 3, 32, 4), ("conv", 31, 32, 64, 4), ("conv", 14, 64, 128, 4),
          ("conv", 6, 128, 256, 4), ("deconv", 1, 1024, 128, 5), ("deconv", 5, 128, 64, 5),
          ("deconv", 13, 64, 32, 6), ("deconv", 30, 32, 3, 6)]  # fmt: skip


def bench_layer(kind, size, ci, co, k, batch, steps, repeats, autodiff=False) -> dict:
    import jax
    import jax.numpy as jnp
    import torch

    from wm_core.conv import _conv_transpose2d, conv2d, conv_transpose2d

    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, ci)).astype(np.float32)
    w = (rng.normal(size=(k, k, ci, co)) * 0.05).astype(np.float32)
    first = kind == "conv" and size == 64  # V's input layer: no gradient for the frames

    def layer(x, w, b):
        return conv2d(x, w, b, stride=2) if kind == "conv" else conv_transpose2d(x, w, b)

    args = (jnp.asarray(x), jnp.asarray(w), jnp.zeros(co))
    fwd = jax.jit(layer)
    grad = jax.jit(
        jax.grad(lambda *a: jnp.sum(jax.nn.relu(layer(*a))), (1, 2) if first else (0, 1, 2))
    )
    out = {}

    def run(fn, key):
        out[key] = jax.block_until_ready(fn(*args))

    jax_fwd = time_it(lambda: run(fwd, "f"), steps, repeats, lambda: None)
    jax_bwd = time_it(lambda: run(grad, "g"), steps, repeats, lambda: None)
    extra = {}
    if autodiff and kind == "deconv":
        auto = jax.jit(
            jax.grad(lambda *a: jnp.sum(jax.nn.relu(_conv_transpose2d.fun(*a))), (0, 1, 2))
        )
        t_auto = time_it(lambda: run(auto, "a"), steps, repeats, lambda: None)
        extra["jax_autodiff_fwd_bwd_ms"] = round(t_auto * 1e3 / steps, 1)

    module = (torch.nn.Conv2d if kind == "conv" else torch.nn.ConvTranspose2d)(ci, co, k, 2)
    tx = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous().requires_grad_(not first)

    def torch_fwd():
        with torch.no_grad():
            module(tx)

    def torch_bwd():
        module.zero_grad()
        tx.grad = None
        torch.relu(module(tx)).sum().backward()

    t_fwd = time_it(torch_fwd, steps, repeats, lambda: None)
    t_bwd = time_it(torch_bwd, steps, repeats, lambda: None)
    ms = 1e3 / steps
    return {
        "layer": f"{kind} {size}px {ci}->{co} k{k}",
        "jax_fwd_ms": round(jax_fwd * ms, 1),
        "jax_fwd_bwd_ms": round(jax_bwd * ms, 1),
        "torch_fwd_ms": round(t_fwd * ms, 1),
        "torch_fwd_bwd_ms": round(t_bwd * ms, 1),
        "ratio_fwd_bwd": round(t_bwd / jax_bwd, 3),  # JAX speed / PyTorch speed
        **extra,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--autodiff-deconv", action="store_true", help="also time autodiff's backward")
    add_torch_args(ap)
    args = ap.parse_args()
    set_torch_threads(args.torch_threads)
    rows = []
    for spec in LAYERS:
        rows.append(bench_layer(*spec, args.batch, args.steps, args.repeats, args.autodiff_deconv))
        r = rows[-1]
        auto = r.get("jax_autodiff_fwd_bwd_ms")
        print(
            f"{r['layer']:26s} JAX {r['jax_fwd_ms']:6.1f} / {r['jax_fwd_bwd_ms']:6.1f} ms, "
            f"PyTorch {r['torch_fwd_ms']:6.1f} / {r['torch_fwd_bwd_ms']:6.1f} ms "
            f"(fwd / fwd+bwd), ratio {r['ratio_fwd_bwd']:.2f}"
            + (f"; JAX fwd+bwd with autodiff's backward {auto:.1f} ms" if auto else ""),
            flush=True,
        )
    jax_total = sum(r["jax_fwd_bwd_ms"] for r in rows)
    torch_total = sum(r["torch_fwd_bwd_ms"] for r in rows)
    print(
        json.dumps(
            {
                "layers": rows,
                "jax_fwd_bwd_ms": round(jax_total, 1),
                "torch_fwd_bwd_ms": round(torch_total, 1),
                "ratio": round(torch_total / jax_total, 3),
                "batch": args.batch,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
