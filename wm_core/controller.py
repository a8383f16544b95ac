"""C: the linear controller a = f(W [z, h] + b), 867 parameters at z=32, h=256 (Ha's).

With ``members`` > 1, C is an ensemble of independently evolved linear controllers whose
squashed actions are averaged: one CMA-ES run in a dream is a high-variance draw, and averaging
draws is the cheapest variance reduction there is. members = 1 is exactly Ha's controller.
"""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray


def _squash(out: Float[Array, "... 3"]) -> Float[Array, "... 3"]:
    """steer = tanh in [-1, 1]; gas = (tanh + 1) / 2; brake = clip(tanh, 0, 1) (Ha's)."""
    steer, gas, brake = jnp.moveaxis(jnp.tanh(out), -1, 0)
    return jnp.stack([steer, (gas + 1) / 2, jnp.clip(brake, 0.0, 1.0)], axis=-1)


class Controller(eqx.Module):
    linear: eqx.nn.Linear  # weight (3, n), bias (3,); stacked (K, 3, n), (K, 3) for K members
    z_dim: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)
    members: int = eqx.field(static=True, default=1)

    def __init__(self, z_dim: int, hidden: int, members: int = 1, *, key: PRNGKeyArray):
        self.z_dim, self.hidden, self.members = z_dim, hidden, members
        make = lambda k: eqx.nn.Linear(z_dim + hidden, 3, key=k)  # noqa: E731
        self.linear = (
            make(key) if members == 1 else eqx.filter_vmap(make)(jax.random.split(key, members))
        )

    def __call__(self, z: Float[Array, " z"], h: Float[Array, " h"]) -> Float[Array, " 3"]:
        x = jnp.concatenate([z, h])
        if self.members == 1:
            return _squash(self.linear(x))
        w, b = self.linear.weight, self.linear.bias  # (K, 3, n), (K, 3)
        return _squash(w @ x + b).mean(axis=0)

    @staticmethod
    def ensemble(members: Sequence[Controller]) -> Controller:
        """Stack single controllers (same z_dim, hidden) into one that averages their actions."""
        if len(members) == 1:
            return members[0]
        first = members[0]
        out = Controller(first.z_dim, first.hidden, len(members), key=jax.random.key(0))
        stack = lambda *xs: jnp.stack(xs)  # noqa: E731
        return eqx.tree_at(
            lambda c: c.linear, out, jax.tree.map(stack, *[m.linear for m in members])
        )
