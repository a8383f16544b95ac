"""Rollouts inside M's dream: population x rollouts x horizon as one jitted, vmapped call.

A dream starts from real data, in one of two ways: (a) like a real episode, at an episode's
first frame (the zoom-in) with a zero LSTM state, or (b) at a random later frame, after
``warmup`` real (z, a) steps warmed the LSTM state up. The controller acts on z sampled from
that frame's posterior and M takes over: z_{t+1} is sampled at the dream temperature, the
reward head pays r_t, and the done head (sigmoid > 0.5) ends the dream after paying that
step's reward. With ``dropout`` > 0 each dream runs M under its own dropout mask (DDL), the
warm-up included. With an off-road probe (wm_core/road.py) and ``offroad_penalty`` > 0, each
step also costs ``offroad_penalty`` times the probability that the dreamed next frame shows the
car off the road. With ``action_noise`` > 0 every dreamed action gets Gaussian noise (clipped to
the action box) before M sees it, as ``evaluate.noise`` does to the real car: CMA-ES then selects
the stochastic controller that will be deployed.
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
from wm_core.policies import HIGH, LOW
from wm_core.road import offroad_prob


def perturb(a: Float[Array, " 3"], noise: float, key: PRNGKeyArray) -> Float[Array, " 3"]:
    """``a`` plus N(0, noise^2) on each component, clipped to the action box (as the real
    agent's ``noise``)."""
    return jnp.clip(a + noise * jax.random.normal(key, a.shape), LOW, HIGH)


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
    fresh: Array | None = None,
    probe: tuple[Float[Array, " z"], Float[Array, ""]] | None = None,
    offroad_penalty: float = 0.0,
    memory: MDNRNN | None = None,
    action_noise: float = 0.0,
    with_offroad: bool = False,
) -> Float[Array, ""] | tuple[Float[Array, ""], Float[Array, ""]]:
    """Total predicted reward of one dream of ``horizon`` steps (masked after done).

    ``fresh`` (bool scalar): start from a zero LSTM state (an episode's first frame).
    ``probe`` (w, b): the off-road probe on z; each step pays ``offroad_penalty`` x
    P(off road | z_{t+1}) on top of the reward head's r_t.
    ``memory``: another M whose h the controller reads (fed the same z and actions), while
    ``rnn`` dreams the world. An ensemble's members dream with the agent's own M as memory,
    as in the real env, where C only ever sees that M's h.
    ``action_noise``: std of the Gaussian noise on each action component (0: none; the dream's
    keys are then exactly those of a noiseless dream).
    ``with_offroad``: also return the probe's P(off road | z_{t+1}) summed over the live steps
    (needs ``probe``; the dream itself is unchanged).
    """
    mask_key, key = jax.random.split(key)
    masks = dropout_masks(rnn, dropout, mask_key)

    def start(m, masks):
        carry = m.warm(z_warm, a_warm, masks)
        if fresh is not None:  # an episode start: h = c = 0, exactly as the real agent begins
            carry = jax.tree.map(lambda x: jnp.where(fresh, jnp.zeros_like(x), x), carry)
        return carry

    carry = start(rnn, masks)
    mem = start(memory, None) if memory is not None else None  # the agent's M: no dropout

    def step(state, k):
        z, carry, mem, alive, ret, off = state
        a = ctrl(z, carry[0] if memory is None else mem[0])
        if action_noise > 0:  # M is fed the executed action, as in the real agent
            k, k_a = jax.random.split(k)
            a = perturb(a, action_noise, k_a)
        carry = rnn.step(z, a, carry, masks)
        if memory is not None:
            mem = memory.step(z, a, mem)
        logits, mu, log_sigma, r, d_logit = rnn.heads(carry[0])
        z_next = sample_next(logits, mu, log_sigma, temperature, k)
        if probe is not None and (offroad_penalty > 0 or with_offroad):
            p_off = offroad_prob(z_next, *probe)
            r = r - offroad_penalty * p_off if offroad_penalty > 0 else r
            off = off + alive * p_off if with_offroad else off
        ret = ret + alive * r  # the terminal step's reward counts
        alive = alive * (d_logit <= 0.0)  # sigmoid(d) > 0.5 ends the dream
        return (z_next, carry, mem, alive, ret, off), None

    init = (z0, carry, mem, jnp.array(1.0), jnp.array(0.0), jnp.array(0.0))
    (*_, ret, off), _ = jax.lax.scan(step, init, jax.random.split(key, horizon))
    return (ret, off) if with_offroad else ret


class DreamStarts(eqx.Module):
    """R start states: warm-up windows of real latents/actions, the first dream z, and
    whether the dream starts fresh (an episode's first frame, zero LSTM state)."""

    z_warm: Float[Array, "R W z"]
    a_warm: Float[Array, "R W 3"]
    z0: Float[Array, "R z"]
    fresh: Array  # (R,) bool


def sample_starts(
    data: Episodes,
    n: int,
    warmup: int,
    rng: np.random.Generator,
    reset_frac: float = 0.0,
    z_noise: float = 1.0,
) -> DreamStarts:
    """round(n * reset_frac) dreams start at a random episode's first frame (as the real agent
    does); the others at a random frame with at least ``warmup`` earlier frames."""
    lengths, starts = data.lengths, data.episode_starts
    ok = lengths > warmup
    if not ok.any():
        raise ValueError(f"no episode is longer than dream.warmup={warmup} frames")
    n_fresh = int(round(n * reset_frac))
    weights = np.where(ok, lengths - warmup, 0).astype(np.float64)
    e = rng.choice(len(lengths), size=n, p=weights / weights.sum())
    t = starts[e] + warmup + (rng.random(n) * (lengths[e] - warmup)).astype(np.int64)
    t[:n_fresh] = starts[rng.choice(len(lengths), size=n_fresh)]
    fresh = np.arange(n) < n_fresh
    lo = np.where(fresh, t, t - warmup)  # fresh starts take no warm-up (window is ignored)
    idx = lo[:, None] + np.arange(warmup)[None, :]
    eps = rng.standard_normal((n, data.mu.shape[1])).astype(np.float32)
    z0 = data.mu[t] + z_noise * np.exp(data.log_sigma[t]) * eps
    return DreamStarts(
        z_warm=jnp.asarray(data.mu[idx]),
        a_warm=jnp.asarray(data.action[idx]),
        z0=jnp.asarray(z0),
        fresh=jnp.asarray(fresh),
    )


def make_population_returns(
    template: Controller,
    temperature: float,
    horizon: int,
    dropout: float = 0.0,
    offroad_penalty: float = 0.0,
    action_noise: float = 0.0,
):
    """-> f(rnn, flat (P, n), starts, key, probe=None, memory=None) -> returns (P, R), one jit.

    Every member sees the same starts and the same dream keys (common random numbers), so
    fitness differences come from the controllers, not from luck. ``probe`` (w, b) is the
    off-road probe, required when ``offroad_penalty`` > 0.
    """
    _, unravel = ravel_pytree(eqx.filter(template, eqx.is_array))
    static = eqx.filter(template, eqx.is_array, inverse=True)

    def one(rnn, flat, z_warm, a_warm, z0, fresh, key, probe, memory):
        ctrl = eqx.combine(unravel(flat), static)
        return dream_return(
            ctrl, rnn, z_warm, a_warm, z0, key, temperature, horizon, dropout, fresh,
            probe, offroad_penalty, memory, action_noise,
        )  # fmt: skip

    per_start = jax.vmap(one, in_axes=(None, None, 0, 0, 0, 0, 0, None, None))
    per_member = jax.vmap(per_start, in_axes=(None, 0) + (None,) * 7)

    @eqx.filter_jit
    def population_returns(rnn, pop, starts: DreamStarts, key, probe=None, memory=None):
        if offroad_penalty > 0 and probe is None:
            raise ValueError("offroad_penalty > 0 needs the off-road probe (w, b)")
        keys = jax.random.split(key, starts.z0.shape[0])
        return per_member(
            rnn, pop, starts.z_warm, starts.a_warm, starts.z0, starts.fresh, keys, probe, memory
        )

    return population_returns


def dream_offroad_frac(
    ctrl: Controller,
    rnn: MDNRNN,
    starts: DreamStarts,
    key: PRNGKeyArray,
    probe: tuple[Float[Array, " z"], Float[Array, ""]],
    temperature: float,
    horizon: int,
    dropout: float = 0.0,
    action_noise: float = 0.0,
) -> float:
    """How often ``ctrl``'s dreams show the car off the road: the probe's P(off road) summed
    over each dream's live steps, per step of the horizon, averaged over the starts.

    Comparable with the real off-road fraction of the same controller (evaluate's
    ``off_road_frames``): a dream kinder than reality shows it far less often.

    Read off one dream per start. Until session 52 it was the return of a plain dream minus that
    of a dream charged 1 per unit of P(off road), the same keys: two programs whose float
    rounding differs, so their sampled trajectories part after ~100 steps (on run 24's M_10, 58
    of 64 600-step dreams differed by more than 1e-3, up to 188) and the difference mixed two
    dreams' rewards into the figure.
    """
    # one dream per start, the keys a one-member population's dream would use
    off = _offroad_sums(ctrl, rnn, starts, key, probe, temperature, horizon, dropout, action_noise)
    return float(np.asarray(off).mean()) / horizon


@eqx.filter_jit
def _offroad_sums(ctrl, rnn, starts, key, probe, temperature, horizon, dropout, action_noise):
    def one(z_warm, a_warm, z0, fresh, k):
        _, off = dream_return(
            ctrl, rnn, z_warm, a_warm, z0, k, temperature, horizon, dropout, fresh,
            probe, 0.0, None, action_noise, with_offroad=True,
        )  # fmt: skip
        return off

    keys = jax.random.split(key, starts.z0.shape[0])
    return jax.vmap(one)(starts.z_warm, starts.a_warm, starts.z0, starts.fresh, keys)
