"""Encoding a dataset's frames with V: (mu, log sigma) for every frame, batched and jitted once.

One jitted call takes ``batch`` frames and runs V's encoder over them ``chunk`` at a time
(``lax.map``), with XLA's own strided convolutions (``VAE.encode(native=True)``) compiled with
:data:`CONV_OPTIONS` (below). Chunks of 50 frames keep each layer's activations in cache: 5,350
frames/s against 4,950 for 1,000 frames at once (session 27). The per-frame output is the
same up to float32 rounding whatever the batch and chunk, and the same as the training
path's im2col encoder to ~1e-6 (tests/test_vae.py). The last batch is padded, so every call
has one shape and one compile. The agent's per-frame encode uses the same form and option
(wm_core/agent.py), so C reads in the real env what M and the clone were fitted on.

``wm_core.train.encode_frames`` (batch 256, no chunks, the same values) is this function's
predecessor. It goes when train.py next changes for another reason: removing it now would
change train.py's hash and rerun train_vae and train_rnn to recompute the same models.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, UInt8
from tqdm import tqdm

from wm_core.vae import VAE, to_float

# XLA:CPU (jaxlib 0.10) hands dots and stride-1 convolutions to YNNPACK by default, and runs
# V's strided convolutions slowly there (~2,000 frames/s). With YNNPACK limited to dots the
# convolutions go to XLA's own (Eigen) kernels: ~5,300 frames/s against ~3,500-4,000 for the
# im2col form (BENCHMARKS.md, session 27). A per-compilation option, not XLA_FLAGS: nothing
# else in the process (V's and M's training, the dream) changes. It is a DebugOptions field,
# which every backend parses and only XLA:CPU reads.
CONV_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT"}


def _unknown_option(err: Exception) -> bool:
    msg = str(err)
    return "compile option" in msg or "enum value" in msg or "compiler_options" in msg


def jit_native_convs(fn: Callable, options: dict[str, str] = CONV_OPTIONS) -> Callable:
    """``eqx.filter_jit(fn)`` compiled with ``options``; a plain ``filter_jit`` (and one
    warning) where the installed XLA does not know them (this one is marked experimental): the
    same values, only slower. Errors of any other kind propagate."""
    fast, plain = eqx.filter_jit(fn, compiler_options=options), eqx.filter_jit(fn)
    use_fast = [True]

    @functools.wraps(fn)
    def call(*args, **kwargs):
        if use_fast[0]:
            try:
                return fast(*args, **kwargs)
            except (jax.errors.JaxRuntimeError, TypeError) as err:
                if not _unknown_option(err):
                    raise
                use_fast[0] = False
                warnings.warn(
                    f"this XLA rejects {options}; compiling without them (slower): {err}",
                    stacklevel=2,
                )
        return plain(*args, **kwargs)

    return call


def encode_chunks(
    model: VAE, obs: UInt8[Array, "B 64 64 3"], chunk: int
) -> tuple[Float[Array, "B z"], Float[Array, "B z"]]:
    """V's (mu, log sigma) of ``obs``, ``chunk`` frames at a time; B must be a multiple of it.
    Unjitted: :func:`encode_batch` is this, compiled with :data:`CONV_OPTIONS`."""
    if obs.shape[0] % chunk:
        raise ValueError(f"batch {obs.shape[0]} is not a multiple of chunk {chunk}")
    chunks = obs.reshape(-1, chunk, *obs.shape[1:])
    mu, log_sigma = jax.lax.map(lambda x: model.encode(to_float(x), native=True), chunks)
    return mu.reshape(obs.shape[0], -1), log_sigma.reshape(obs.shape[0], -1)


encode_batch = jit_native_convs(encode_chunks)


def encode_frames(
    model: VAE, obs: UInt8[np.ndarray, "N 64 64 3"], batch: int = 1000, chunk: int = 50
) -> tuple[Float[np.ndarray, "N z"], Float[np.ndarray, "N z"]]:
    """(mu, log sigma) for every frame, ``batch`` frames per call (one compile)."""
    mus, sigmas = [], []
    n = obs.shape[0]
    batch = min(batch, -(-n // chunk) * chunk)  # a small dataset: one short call
    for i in tqdm(range(0, n, batch), desc="encode", mininterval=2.0):
        part = obs[i : i + batch]
        pad = batch - part.shape[0]
        padded = np.pad(part, ((0, pad), (0, 0), (0, 0), (0, 0)))
        mu, ls = encode_batch(model, jnp.asarray(padded), chunk)
        mus.append(np.asarray(mu)[: batch - pad])
        sigmas.append(np.asarray(ls)[: batch - pad])
    return np.concatenate(mus), np.concatenate(sigmas)
