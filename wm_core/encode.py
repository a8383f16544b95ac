"""Encoding a dataset's frames with V: (mu, log sigma) for every frame, batched and jitted once.

One jitted call takes ``batch`` frames and runs V's encoder over them ``chunk`` at a time
(``lax.map``). The chunks are for XLA:CPU: the encoder's im2col patches of 50 frames (~9 MB for
the first layer) stay in cache, those of 1,000 (~185 MB) do not. The per-frame output is the
same up to float32 rounding (tests/test_vae.py): the same bits on the AMD EPYC of sessions
10-13, last bits apart on session 14's AVX-512 Xeon, where XLA:CPU picks kernels by batch
shape. The last batch is padded, so every call has one shape and one compile.

``wm_core.train.encode_frames`` (batch 256, no chunks, the same values) is this function's
predecessor. It goes when train.py next changes for another reason: removing it now would
change train.py's hash and rerun train_vae and train_rnn to recompute the same models.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, UInt8
from tqdm import tqdm

from wm_core.vae import VAE, to_float


@eqx.filter_jit
def encode_batch(
    model: VAE, obs: UInt8[Array, "B 64 64 3"], chunk: int
) -> tuple[Float[Array, "B z"], Float[Array, "B z"]]:
    """V's (mu, log sigma) of ``obs``, ``chunk`` frames at a time; B must be a multiple of it."""
    if obs.shape[0] % chunk:
        raise ValueError(f"batch {obs.shape[0]} is not a multiple of chunk {chunk}")
    chunks = obs.reshape(-1, chunk, *obs.shape[1:])
    mu, log_sigma = jax.lax.map(lambda x: model.encode(to_float(x)), chunks)
    return mu.reshape(obs.shape[0], -1), log_sigma.reshape(obs.shape[0], -1)


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
