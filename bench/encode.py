"""VAE encoding throughput (the encode_latents stage): our JAX V.encode vs PyTorch's encoder.

    pip install -e '.[bench]' && python bench/encode.py [--batch 1000] [--steps 3] [--repeats 3]

Both encode the same uint8 frames ``batch`` at a time to (mu, log sigma): JAX as the
encode_latents stage's ``wm_core.encode.encode_batch`` does (one jitted call per batch, V's
native convolutions run over ``chunk`` frames at a time inside it, compiled with
``wm_core.encode.CONV_OPTIONS``; ``--chunk`` equal to ``--batch`` is one plain call; traced
once), PyTorch through the encoder of bench/torch_models.py's
TorchVAE (Ha's: 4 convs 32-64-128-256, 4x4 stride 2, ReLU, then linear to mu and log sigma)
under ``torch.no_grad``, with the JAX weights copied in, so both output the same numbers;
PyTorch is timed on the whole batch and in the same chunks, and the faster is the baseline.
The uint8 -> [0, 1] conversion is inside the timed call for both. The median of ``repeats``
timings of ``steps`` calls each is reported; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from harness import (  # also puts the repo root on sys.path (wm_core)
    add_torch_args,
    machine_info,
    time_it,
    torch_device,
    torch_sync,
)


def main() -> None:
    import equinox as eqx
    import jax
    import torch
    from torch_models import TorchVAE, load_vae_encoder

    from wm_core.encode import encode_chunks, jit_native_convs
    from wm_core.vae import VAE, to_float

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--batch", type=int, default=1000, help="frames per call")
    ap.add_argument("--chunk", type=int, default=50, help="frames per lax.map step in a call")
    ap.add_argument("--steps", type=int, default=3, help="calls per timing")
    add_torch_args(ap)
    args = ap.parse_args()
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    device = torch_device(args.torch_device)
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (args.batch, 64, 64, 3), dtype=np.uint8) for _ in range(2)]
    vae = VAE(32, key=jax.random.key(0))

    @eqx.debug.assert_max_traces(max_traces=1)  # one compile for every batch of this shape
    def traced(model: VAE, obs):
        return encode_chunks(model, obs, args.chunk)  # encode_batch's body, counted here

    encode = jit_native_convs(traced)  # compiled as encode_batch is

    tv = TorchVAE(32)
    load_vae_encoder(tv, vae)
    tv = tv.to(device)
    state = {"i": 0}

    def jax_step():  # alternate two batches: same shape, different content
        state["out"] = encode(vae, frames[state["i"] % 2])
        state["i"] += 1

    def torch_encode(obs: np.ndarray):
        with torch.no_grad():
            x = torch.from_numpy(obs).to(device)  # the upload is timed, as JAX's is
            return tv.encode(x.permute(0, 3, 1, 2).float() / 255.0)

    def torch_step(chunk: int):
        obs = frames[state["i"] % 2]
        state["out_t"] = [torch_encode(obs[j : j + chunk]) for j in range(0, len(obs), chunk)]
        state["i"] += 1

    jax_s = time_it(jax_step, args.steps, args.repeats, lambda: state["out"][0].block_until_ready())
    # PyTorch both ways, whole batch and in JAX's chunks; the baseline is the faster of the two
    torch_times = {
        c: time_it(lambda c=c: torch_step(c), args.steps, args.repeats, torch_sync(device))
        for c in sorted({args.batch, args.chunk})
    }
    torch_s = min(torch_times.values())
    traces = eqx.debug.get_num_traces(traced)
    probe = frames[0][:64]  # same weights, same frames: the same (mu, log sigma)
    diff = max(
        float(np.abs(np.asarray(j) - t.cpu().numpy()).max())
        for j, t in zip(vae.encode(to_float(probe), native=True), torch_encode(probe))  # eager
    )
    jax_fps = args.batch * args.steps / jax_s
    torch_fps = args.batch * args.steps / torch_s
    print(f"JAX {jax_fps:.0f} frames/s, PyTorch {torch_fps:.0f} frames/s", flush=True)
    print(
        json.dumps(
            {
                "jax_frames_per_s": round(jax_fps, 1),
                "torch_frames_per_s": round(torch_fps, 1),
                "torch_frames_per_s_by_chunk": {
                    c: round(args.batch * args.steps / t, 1) for c, t in torch_times.items()
                },
                "ratio": round(jax_fps / torch_fps, 3),
                "jax_traces": traces,  # over 1 + steps * repeats calls on two batches
                "max_abs_diff": diff,
                "batch": args.batch,
                "chunk": args.chunk,
                "torch_device": device,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
