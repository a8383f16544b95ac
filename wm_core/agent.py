"""The full agent in the real env: V encodes the frame, C acts on [z, h], M advances h.

Used by collect_onpolicy (with exploration noise), evaluate and ``wm play``. z is the
posterior mean of the frame (deterministic driving); M is fed the action actually executed.
M's step for frame t runs in the same jitted call as V and C on frame t + 1: one dispatch per
frame instead of two (~20 % less of the agent's own time per frame: bench/agent.py,
BENCHMARKS.md), with the same values bit for bit (tests/test_env_policies.py).
"""

from __future__ import annotations

import os

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Float

from wm_core.checkpoint import load_model
from wm_core.controller import Controller
from wm_core.encode import jit_native_convs
from wm_core.mdrnn import MDNRNN
from wm_core.policies import HIGH, LOW
from wm_core.vae import VAE


@jit_native_convs  # V's encoder as encode_latents runs it: the same z for the same frame
def _encode_act(vae: VAE, ctrl: Controller, obs, h):
    mu, _ = vae.encode(obs[None].astype(jnp.float32) / 255.0, native=True)
    return mu[0], ctrl(mu[0], h)


@eqx.filter_jit
def _advance(rnn: MDNRNN, z, a, carry):
    carry = rnn.step(z, a, carry)
    _, _, _, r_pred, d_logit = rnn.heads(carry[0])
    return carry, r_pred, d_logit


@jit_native_convs
def _advance_encode_act(vae: VAE, rnn: MDNRNN, ctrl: Controller, z_prev, a_prev, carry, obs):
    """M's step on the previous frame's (z, executed action), then V and C on the new frame."""
    carry = rnn.step(z_prev, a_prev, carry)
    r_pred = rnn.heads(carry[0])[3]
    mu, _ = vae.encode(obs[None].astype(jnp.float32) / 255.0, native=True)
    return carry, r_pred, mu[0], ctrl(mu[0], carry[0])


def load_world(vae_path, rnn_path, ctrl_path):
    vae, _ = load_model(vae_path, "vae", VAE)
    rnn, _ = load_model(rnn_path, "mdrnn", MDNRNN)
    ctrl, header = load_model(ctrl_path, "controller", Controller)
    return vae, rnn, ctrl, header


class AgentPolicy:
    """Policy interface (reset/act) around V, M, C; records M's reward predictions.

    M's step for the action just returned is pending until the next frame (or until
    ``pred_reward`` is read): ``carry`` is h before that step."""

    def __init__(
        self,
        vae_path: str | os.PathLike,
        rnn_path: str | os.PathLike,
        ctrl_path: str | os.PathLike,
        noise: float = 0.0,
    ):
        self.vae, self.rnn, self.ctrl, self.header = load_world(vae_path, rnn_path, ctrl_path)
        self.noise = noise

    def reset(self, seed: int, env) -> None:
        self.carry = self.rnn.init_carry()
        self.rng = np.random.default_rng([seed, 3])
        self._pending: tuple | None = None  # (z, executed action) M has not stepped on yet
        self._pred_reward: list[float] = []

    @property
    def pred_reward(self) -> list[float]:
        """M's reward prediction after each executed action."""
        self.advance()
        return self._pred_reward

    def advance(self) -> None:
        """Runs M's pending step on its own (an override of ``encode_act`` calls this first)."""
        if self._pending is not None:
            self.carry, r_pred, _ = _advance(self.rnn, *self._pending, self.carry)
            self._pred_reward.append(float(r_pred))
            self._pending = None

    def encode_act(self, frame) -> tuple:
        """(z that C and M read, C's action) for the 64x64 ``frame`` after M's pending step: V's
        posterior mean here; diagnostics override it (diagnostics/posterior_play.py reads a
        posterior sample)."""
        frame = jnp.asarray(frame)
        if self._pending is None:
            return _encode_act(self.vae, self.ctrl, frame, self.carry[0])
        z_prev, a_prev = self._pending
        self.carry, r_pred, z, a = _advance_encode_act(
            self.vae, self.rnn, self.ctrl, z_prev, a_prev, self.carry, frame
        )
        self._pred_reward.append(float(r_pred))
        self._pending = None
        return z, a

    def act(self, obs, env, frame) -> Float[np.ndarray, " 3"]:
        """``frame``: the preprocessed 64x64 view of ``obs`` (as V was trained on)."""
        z, a = self.encode_act(frame)
        a = np.asarray(a, np.float32)
        if self.noise > 0:
            a = np.clip(a + self.noise * self.rng.standard_normal(3), LOW, HIGH).astype(np.float32)
        self._pending = (z, jnp.asarray(a))
        return a
