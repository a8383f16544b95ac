"""Rollouts inside M's dream: population x rollouts x horizon as one jitted, vmapped call.

A dream starts from real data: ``warmup`` real (z, a) steps of an encoded episode warm the
LSTM state up, then the controller acts on z sampled from the next real frame's posterior
and M takes over: z_{t+1} is sampled at the dream temperature, the reward head pays r_t,
and the done head (sigmoid > 0.5) ends the dream after paying that step's reward. With
``dropout`` > 0 each dream runs M under its own dropout mask (DDL), the warm-up included.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from jaxtyping import Array, Float, PRNGKeyArray

from wm_core.controller import Controller
from wm_core.data import Episodes
from wm_core.mdrnn import MDNRNN, dropout_masks, sample_next


def dream_return(
    ctrl: Controller,
    rnn: MDNRNN,
    z_warm: Float[Array, "W z"],
    a_warm: Float[Array, "W 3"],
    z0: Float[Array, " z"],
    key: PRNGKeyArray,
    temperature: float,
    horizon: int,
    dropout: float = 0.0,
) -> Float[Array, ""]:
    """Total predicted reward of one dream of ``horizon`` steps (masked after done)."""
    mask_key, key = jax.random.split(key)
    masks = dropout_masks(rnn, dropout, mask_key)

    def warm(carry, za):
        return rnn.step(*za, carry, masks), None

    carry, _ = jax.lax.scan(warm, rnn.init_carry(), (z_warm, a_warm))

    def step(state, k):
        z, carry, alive, ret = state
        a = ctrl(z, carry[0])
        carry = rnn.step(z, a, carry, masks)
        logits, mu, log_sigma, r, d_logit = rnn.heads(carry[0])
        ret = ret + alive * r  # the terminal step's reward counts
        alive = alive * (d_logit <= 0.0)  # sigmoid(d) > 0.5 ends the dream
        return (sample_next(logits, mu, log_sigma, temperature, k), carry, alive, ret), None

    init = (z0, carry, jnp.array(1.0), jnp.array(0.0))
    (_, _, _, ret), _ = jax.lax.scan(step, init, jax.random.split(key, horizon))
    return ret


class DreamStarts(eqx.Module):
    """R start states: warm-up windows of real latents/actions and the first dream z."""

    z_warm: Float[Array, "R W z"]
    a_warm: Float[Array, "R W 3"]
    z0: Float[Array, "R z"]


def sample_starts(data: Episodes, n: int, warmup: int, rng: np.random.Generator) -> DreamStarts:
    """Pick n random frames with at least ``warmup`` earlier frames in the same episode."""
    lengths, starts = data.lengths, data.episode_starts
    ok = lengths > warmup
    if not ok.any():
        raise ValueError(f"no episode is longer than dream.warmup={warmup} frames")
    weights = np.where(ok, lengths - warmup, 0).astype(np.float64)
    e = rng.choice(len(lengths), size=n, p=weights / weights.sum())
    t = starts[e] + warmup + (rng.random(n) * (lengths[e] - warmup)).astype(np.int64)
    idx = t[:, None] - warmup + np.arange(warmup + 1)[None, :]  # (R, W + 1)
    eps = rng.standard_normal((n, data.mu.shape[1])).astype(np.float32)
    z0 = data.mu[t] + np.exp(data.log_sigma[t]) * eps
    return DreamStarts(
        z_warm=jnp.asarray(data.mu[idx[:, :-1]]),
        a_warm=jnp.asarray(data.action[idx[:, :-1]]),
        z0=jnp.asarray(z0),
    )


def make_population_returns(
    template: Controller, temperature: float, horizon: int, dropout: float = 0.0
):
    """-> f(rnn, flat_params (P, n), starts, key) -> returns (P, R), one jitted call.

    Every member sees the same starts and the same dream keys (common random numbers), so
    fitness differences come from the controllers, not from luck.
    """
    _, unravel = ravel_pytree(eqx.filter(template, eqx.is_array))
    static = eqx.filter(template, eqx.is_array, inverse=True)

    def one(rnn, flat, z_warm, a_warm, z0, key):
        ctrl = eqx.combine(unravel(flat), static)
        return dream_return(ctrl, rnn, z_warm, a_warm, z0, key, temperature, horizon, dropout)

    per_start = jax.vmap(one, in_axes=(None, None, 0, 0, 0, 0))
    per_member = jax.vmap(per_start, in_axes=(None, 0, None, None, None, None))

    @eqx.filter_jit
    def population_returns(rnn, pop, starts: DreamStarts, key):
        keys = jax.random.split(key, starts.z0.shape[0])
        return per_member(rnn, pop, starts.z_warm, starts.a_warm, starts.z0, keys)

    return population_returns
