"""V: Ha & Schmidhuber's convolutional VAE (64x64x3 -> z, 4,348,547 parameters at z=32).

Encoder: 4 convs, 4x4 stride 2, ReLU, 32-64-128-256 channels -> 2x2x256 = 1024 -> mu, log sigma.
Decoder: dense 1024 -> 1x1x1024 -> transposed convs 128 (5x5), 64 (5x5), 32 (6x6), 3 (6x6),
stride 2, ReLU between, sigmoid output. Layers use wm_core.conv (same functions, faster on CPU);
inference encodes with native convolutions instead (``native=True``, wm_core/encode.py).
Loss: per-image summed squared error + KL floored at kl_tolerance * z_dim (free bits).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray, UInt8

from wm_core.conv import conv2d, conv2d_inference, conv_transpose2d

ENC_CHANNELS = (3, 32, 64, 128, 256)
DEC_LAYERS = ((1024, 128, 5), (128, 64, 5), (64, 32, 6), (32, 3, 6))


def _uniform(key, shape, fan_in):  # PyTorch's default init, so both frameworks start alike
    bound = 1.0 / math.sqrt(fan_in)
    return jax.random.uniform(key, shape, minval=-bound, maxval=bound)


class VAE(eqx.Module):
    enc_w: list[Array]
    enc_b: list[Array]
    mu_w: Array
    mu_b: Array
    ls_w: Array
    ls_b: Array
    dec_in_w: Array
    dec_in_b: Array
    dec_w: list[Array]
    dec_b: list[Array]
    z_dim: int = eqx.field(static=True)

    def __init__(self, z_dim: int = 32, *, key: PRNGKeyArray):
        keys = iter(jax.random.split(key, 24))
        self.z_dim = z_dim
        self.enc_w, self.enc_b = [], []
        for ci, co in zip(ENC_CHANNELS[:-1], ENC_CHANNELS[1:]):
            self.enc_w.append(_uniform(next(keys), (4, 4, ci, co), 16 * ci))
            self.enc_b.append(_uniform(next(keys), (co,), 16 * ci))
        self.mu_w, self.mu_b = (
            _uniform(next(keys), (1024, z_dim), 1024),
            _uniform(next(keys), (z_dim,), 1024),
        )
        self.ls_w, self.ls_b = (
            _uniform(next(keys), (1024, z_dim), 1024),
            _uniform(next(keys), (z_dim,), 1024),
        )
        self.dec_in_w = _uniform(next(keys), (z_dim, 1024), z_dim)
        self.dec_in_b = _uniform(next(keys), (1024,), z_dim)
        self.dec_w, self.dec_b = [], []
        for ci, co, k in DEC_LAYERS:  # torch's fan-in for ConvTranspose2d is c_out * k * k
            self.dec_w.append(_uniform(next(keys), (k, k, ci, co), co * k * k))
            self.dec_b.append(_uniform(next(keys), (co,), co * k * k))

    def encode(
        self, x: Float[Array, "B 64 64 3"], *, native: bool = False
    ) -> tuple[Float[Array, "B z"], Float[Array, "B z"]]:
        """Frames in [0, 1] -> (mu, log sigma).

        ``native``: the same function through XLA's own convolutions (``conv2d_inference``),
        for inference under wm_core.encode's compiler option (XLA:CPU differentiates them
        slowly, so training keeps the default im2col form, which has a hand-written backward).
        """
        conv = conv2d_inference if native else conv2d
        for w, b in zip(self.enc_w, self.enc_b):
            x = jax.nn.relu(conv(x, w, b, stride=2))
        h = x.reshape(x.shape[0], -1)  # (B, 2*2*256)
        return h @ self.mu_w + self.mu_b, h @ self.ls_w + self.ls_b

    def decode(self, z: Float[Array, "B z"]) -> Float[Array, "B 64 64 3"]:
        x = (z @ self.dec_in_w + self.dec_in_b)[:, None, None, :]  # (B, 1, 1, 1024)
        for i, (w, b) in enumerate(zip(self.dec_w, self.dec_b)):
            x = conv_transpose2d(x, w, b)
            x = jax.nn.sigmoid(x) if i == len(self.dec_w) - 1 else jax.nn.relu(x)
        return x


def to_float(obs: UInt8[Array, "B 64 64 3"]) -> Float[Array, "B 64 64 3"]:
    return obs.astype(jnp.float32) / 255.0


def vae_loss(
    model: VAE, obs: UInt8[Array, "B 64 64 3"], key: PRNGKeyArray, kl_tolerance: float
) -> tuple[Float[Array, ""], dict[str, Array]]:
    """Mean over the batch of (summed squared error + max(KL, kl_tolerance * z_dim))."""
    x = to_float(obs)
    mu, log_sigma = model.encode(x)
    z = mu + jnp.exp(log_sigma) * jax.random.normal(key, mu.shape)
    recon = jnp.sum((model.decode(z) - x) ** 2, axis=(1, 2, 3))
    kl = -0.5 * jnp.sum(1 + 2 * log_sigma - mu**2 - jnp.exp(2 * log_sigma), axis=-1)
    kl_floored = jnp.maximum(kl, kl_tolerance * model.z_dim)
    loss = jnp.mean(recon + kl_floored)
    return loss, {"recon": recon.mean(), "kl": kl.mean()}
