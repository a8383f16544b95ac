"""VAE training throughput: our JAX/Equinox V vs the same architecture in PyTorch, same run.

    pip install -e '.[bench]' && python bench/vae.py [--batch 100] [--steps 20] [--repeats 5]
        [--autodiff-deconv]

Both train Ha's VAE (4,348,547 parameters) with Adam on the same uint8 batch; the median of
``repeats`` timings of ``steps`` steps each is reported. The last line is one JSON object.
``--autodiff-deconv`` also times our step with XLA's autodiff of the transposed convolutions
in place of their hand-written backward (``wm_core.conv._conv_transpose2d_bwd``, CPU path).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from harness import (  # also puts the repo root on sys.path (wm_core)
    add_torch_args,
    machine_info,
    set_torch_threads,
    time_it,
    torch_device,
    torch_sync,
)


def bench_jax(obs: np.ndarray, steps: int, repeats: int, autodiff_deconv: bool = False) -> float:
    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import wm_core.vae
    from wm_core.conv import _conv_transpose2d, conv_transpose2d
    from wm_core.train import make_train_step
    from wm_core.vae import VAE, vae_loss

    # the same forward, differentiated by XLA instead of by our backward (for the comparison)
    wm_core.vae.conv_transpose2d = _conv_transpose2d.fun if autodiff_deconv else conv_transpose2d

    model = VAE(32, key=jax.random.key(0))
    optim = optax.adam(1e-4)
    step_fn = make_train_step(lambda m, b, k: vae_loss(m, b, k, 0.5), optim)
    state = {"m": model, "o": optim.init(eqx.filter(model, eqx.is_array)), "i": 0}
    batch = jnp.asarray(obs)

    def step():
        state["m"], state["o"], state["metrics"] = step_fn(
            state["m"], state["o"], batch, jax.random.key(state["i"])
        )
        state["i"] += 1

    return time_it(step, steps, repeats, lambda: state["metrics"]["loss"].block_until_ready())


def bench_torch(obs: np.ndarray, steps: int, repeats: int, device: str) -> float:
    import torch
    from torch_models import TorchVAE

    torch.manual_seed(0)
    model = TorchVAE().to(device)
    assert sum(p.numel() for p in model.parameters()) == 4_348_547
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.from_numpy(obs).to(device).permute(0, 3, 1, 2).float() / 255.0
    state = {}

    def step():
        opt.zero_grad()
        loss = model(x)
        loss.backward()
        opt.step()
        state["loss"] = loss

    return time_it(step, steps, repeats, torch_sync(device))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--autodiff-deconv", action="store_true", help="also time autodiff's backward")
    add_torch_args(ap, repeats=5)
    args = ap.parse_args()
    set_torch_threads(args.torch_threads)
    device = torch_device(args.torch_device)
    obs = np.random.default_rng(0).integers(0, 256, (args.batch, 64, 64, 3), dtype=np.uint8)
    n = args.batch * args.steps
    jax_ips = n / bench_jax(obs, args.steps, args.repeats)
    torch_ips = n / bench_torch(obs, args.steps, args.repeats, device)
    extra = {}
    if args.autodiff_deconv:
        extra["jax_autodiff_deconv_img_per_s"] = round(
            n / bench_jax(obs, args.steps, args.repeats, autodiff_deconv=True), 1
        )
        print(f"JAX with autodiff's transposed-conv backward {extra[next(iter(extra))]:.0f} img/s")

    print(
        f"JAX {jax_ips:.0f} img/s, PyTorch {torch_ips:.0f} img/s, ratio {jax_ips / torch_ips:.2f}"
    )
    print(
        json.dumps(
            {
                "jax_img_per_s": round(jax_ips, 1),
                "torch_img_per_s": round(torch_ips, 1),
                "ratio": round(jax_ips / torch_ips, 3),
                "batch": args.batch,
                "torch_device": device,
                **extra,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
