"""The full agent in the real env: V encodes the frame, C acts on [z, h], M advances h.

Used by collect_onpolicy (with exploration noise), evaluate and ``wm play``. z is the
posterior mean of the frame (deterministic driving); M is fed the action actually executed.
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


def load_world(vae_path, rnn_path, ctrl_path):
    vae, _ = load_model(vae_path, "vae", VAE)
    rnn, _ = load_model(rnn_path, "mdrnn", MDNRNN)
    ctrl, header = load_model(ctrl_path, "controller", Controller)
    return vae, rnn, ctrl, header


class AgentPolicy:
    """Policy interface (reset/act) around V, M, C; records M's reward predictions."""

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
        self.pred_reward: list[float] = []

    def encode_act(self, frame) -> tuple:
        """(z that C and M read, C's action) for the 64x64 ``frame``: V's posterior mean here;
        diagnostics override it (diagnostics/posterior_play.py reads a posterior sample)."""
        return _encode_act(self.vae, self.ctrl, jnp.asarray(frame), self.carry[0])

    def act(self, obs, env, frame) -> Float[np.ndarray, " 3"]:
        """``frame``: the preprocessed 64x64 view of ``obs`` (as V was trained on)."""
        z, a = self.encode_act(frame)
        a = np.asarray(a, np.float32)
        if self.noise > 0:
            a = np.clip(a + self.noise * self.rng.standard_normal(3), LOW, HIGH).astype(np.float32)
        self.carry, r_pred, _ = _advance(self.rnn, z, jnp.asarray(a), self.carry)
        self.pred_reward.append(float(r_pred))
        return a
