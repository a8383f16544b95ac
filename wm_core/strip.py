"""A picture of what the world model sees: real frames, V's reconstructions, M's open-loop dream.

Row 1: real frames; row 2: V's reconstruction of each; row 3: M's dream from the same start,
fed the actions the agent actually took but never the real frames again (z sampled at the dream
temperature, decoded by V). Where rows 1 and 3 part ways is where the dream stops being true.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float, PRNGKeyArray, UInt8

from wm_core.encode import encode_frames
from wm_core.mdrnn import MDNRNN, sample_next
from wm_core.vae import VAE


@eqx.filter_jit
def _open_loop(rnn: MDNRNN, z_warm, a_warm, z0, actions, temperature: float, key):
    carry = rnn.warm(z_warm, a_warm)

    def step(state, xs):
        z, carry = state
        a, k = xs
        carry = rnn.step(z, a, carry)
        logits, mu, log_sigma, _, _ = rnn.heads(carry[0])
        z_next = sample_next(logits, mu, log_sigma, temperature, k)
        return (z_next, carry), z_next

    keys = jax.random.split(key, actions.shape[0])
    _, zs = jax.lax.scan(step, (z0, carry), (actions, keys))
    return jnp.concatenate([z0[None], zs[:-1]])  # z_start, z_start+1, ...


def dream_strip(
    vae: VAE,
    rnn: MDNRNN,
    obs: UInt8[np.ndarray, "T 64 64 3"],
    actions: Float[np.ndarray, "T 3"],
    start: int,
    panels: int,
    every: int,
    temperature: float,
    key: PRNGKeyArray,
) -> UInt8[np.ndarray, "H W 3"]:
    """-> one RGB image, 3 rows x ``panels`` columns, frames start, start+every, ..."""
    n = panels * every
    if start < 1 or start + n > len(obs):
        raise ValueError(f"strip needs frames {start}..{start + n} of a {len(obs)}-frame episode")
    x = jnp.asarray(obs[: start + n], jnp.float32) / 255.0
    mu = jnp.asarray(encode_frames(vae, obs[: start + n])[0])  # the z that M and C were fed
    zs = _open_loop(
        rnn, mu[:start], jnp.asarray(actions[:start]), mu[start],
        jnp.asarray(actions[start : start + n]), temperature, key,
    )  # fmt: skip
    cols = np.arange(panels) * every
    recon = vae.decode(mu[start + cols])
    dream = vae.decode(zs[cols])
    rows = [x[start + cols], recon, dream]
    img = np.concatenate([np.concatenate(list(np.asarray(r)), axis=1) for r in rows], axis=0)
    return (np.clip(img, 0.0, 1.0) * 255).round().astype(np.uint8)
