"""C: the linear controller a = f(W [z, h] + b), 867 parameters at z=32, h=256 (Ha's)."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


class Controller(eqx.Module):
    linear: eqx.nn.Linear
    z_dim: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(self, z_dim: int, hidden: int, *, key: PRNGKeyArray):
        self.z_dim, self.hidden = z_dim, hidden
        self.linear = eqx.nn.Linear(z_dim + hidden, 3, key=key)

    def __call__(self, z: Float[Array, " z"], h: Float[Array, " h"]) -> Float[Array, " 3"]:
        """steer = tanh in [-1, 1]; gas = (tanh + 1) / 2; brake = clip(tanh, 0, 1) (Ha's)."""
        steer, gas, brake = jnp.tanh(self.linear(jnp.concatenate([z, h])))
        return jnp.stack([steer, (gas + 1) / 2, jnp.clip(brake, 0.0, 1.0)])
