"""M: an MDN-RNN. LSTM over [z_t, a_t]; from h_{t+1} it predicts z_{t+1}, r_t and done_t.

* z_{t+1}: a K-component Gaussian mixture **per latent dimension** (Ha's factored form,
  output z*K*3), so each dimension has its own mixture weights.
* r_t: the reward the env pays for a_t (a scalar regression head, trained with an asymmetric
  squared error that punishes over-prediction: the design's anti-"delusion" loss).
* done_t: a logit for "the episode terminated after a_t" (lap end, left the playfield).

Dropout (Wellmer & Kwok's "Dropout's Dream Land"): masks on the LSTM input [z, a] and on the
recurrent h, sampled once per sequence (variational dropout), inverted so that no mask is the
expected model. Training samples a mask per window; each dream samples its own mask, so every
rollout runs in a slightly different world and the controller cannot overfit one of them.
The real-env agent uses no mask.

Temperature follows Ha (carracing/rnn/rnn.py ``sample_sequence``): mixture logits are divided
by tau and the Gaussian's sigma is multiplied by sqrt(tau).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from wm_core.lstm import lstm_sequence

LOG_SIGMA_MIN, LOG_SIGMA_MAX = -7.0, 2.0  # bounded: the NLL cannot run away to -1e22


class MDNRNN(eqx.Module):
    cell: eqx.nn.LSTMCell
    head: eqx.nn.Linear
    z_dim: int = eqx.field(static=True)
    mixtures: int = eqx.field(static=True)
    hidden: int = eqx.field(static=True)

    def __init__(self, z_dim: int, hidden: int, mixtures: int, *, key: PRNGKeyArray):
        ckey, hkey = jax.random.split(key)
        self.z_dim, self.hidden, self.mixtures = z_dim, hidden, mixtures
        self.cell = eqx.nn.LSTMCell(z_dim + 3, hidden, key=ckey)
        self.head = eqx.nn.Linear(hidden, 3 * z_dim * mixtures + 2, key=hkey)

    def init_carry(self) -> tuple[Float[Array, " h"], Float[Array, " h"]]:
        return jnp.zeros(self.hidden), jnp.zeros(self.hidden)

    def step(self, z: Float[Array, " z"], a: Float[Array, " 3"], carry, masks=None):
        """One LSTM step on [z_t, a_t]: (h_t, c_t) -> (h_{t+1}, c_{t+1}).

        ``masks`` = (input mask (z+3,), hidden mask (h,)) from :func:`dropout_masks`, or None.
        """
        x = jnp.concatenate([z, a])
        if masks is not None:
            x, carry = x * masks[0], (carry[0] * masks[1], carry[1])
        return self.cell(x, carry)

    def heads(self, h: Float[Array, " h"]):
        """-> logits (z, K), mu (z, K), log_sigma (z, K), reward (), done_logit ()."""
        return self._split_heads(self.head(h))

    def _split_heads(self, out: Float[Array, "... o"]):
        """The head's output (..., 3zK + 2) -> (logits, mu, log_sigma) (..., z, K), r, done."""
        zk, lead = self.z_dim * self.mixtures, out.shape[:-1]
        logits, mu, log_sigma = (
            out[..., i * zk : (i + 1) * zk].reshape(*lead, self.z_dim, self.mixtures)
            for i in range(3)
        )
        log_sigma = jnp.clip(log_sigma, LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        return logits, mu, log_sigma, out[..., -2], out[..., -1]

    def warm(self, z_seq: Float[Array, "W z"], a_seq: Float[Array, "W 3"], masks=None):
        """The (h, c) state after reading a real sequence from a zero state (a dream's warm-up)."""

        def step(carry, za):
            return self.step(*za, carry, masks), None

        carry, _ = jax.lax.scan(step, self.init_carry(), (z_seq, a_seq))
        return carry

    def unroll(self, z_seq: Float[Array, "T z"], a_seq: Float[Array, "T 3"], masks=None):
        """Teacher-forced pass over a sequence from a zero state: outputs of heads per step."""

        def step(carry, za):
            carry = self.step(*za, carry, masks)
            return carry, self.heads(carry[0])

        _, outs = jax.lax.scan(step, self.init_carry(), (z_seq, a_seq))
        return outs

    def unroll_batch(self, z: Float[Array, "B T z"], a: Float[Array, "B T 3"], masks=None):
        """``vmap(unroll)`` computed batch-major for training: the LSTM as one
        :func:`~wm_core.lstm.lstm_sequence` (input projection, weight gradients and heads as
        single matmuls over all B * T steps). ``masks`` as from ``vmap(dropout_masks)``:
        (input (B, z+3), hidden (B, h)) or None. Outputs as ``unroll``'s, with a leading B."""
        x = jnp.concatenate([z, a], axis=-1)
        h_mask = None
        if masks is not None:
            x, h_mask = x * masks[0][:, None, :], masks[1]
        c = self.cell
        hs = lstm_sequence(c.weight_ih, c.weight_hh, c.bias, x.transpose(1, 0, 2), h_mask)
        return self._split_heads(hs.transpose(1, 0, 2) @ self.head.weight.T + self.head.bias)


def judges_skeleton(
    z_dim: int, hidden: int, mixtures: int, count: int, *, key: PRNGKeyArray
) -> tuple[MDNRNN, ...]:
    """``count`` Ms of one shape (the file format of rnn.judges; weights come from the file)."""
    return tuple(
        MDNRNN(z_dim, hidden, mixtures, key=jax.random.fold_in(key, j)) for j in range(count)
    )


def dropout_masks(rnn: MDNRNN, p: float, key: PRNGKeyArray):
    """Inverted-dropout masks (input (z+3,), hidden (h,)) with drop probability p; None if p=0."""
    if p == 0.0:
        return None
    ikey, hkey = jax.random.split(key)
    keep = 1.0 - p
    return tuple(
        jax.random.bernoulli(k, keep, (n,)).astype(jnp.float32) / keep
        for k, n in ((ikey, rnn.z_dim + 3), (hkey, rnn.hidden))
    )


def mdn_logprob(
    logits: Float[Array, "z K"],
    mu: Float[Array, "z K"],
    log_sigma: Float[Array, "z K"],
    z_next: Float[Array, " z"],
) -> Float[Array, ""]:
    """Mean over dimensions of log p(z_next) under the per-dimension mixtures (log-sum-exp)."""
    log_n = (
        -0.5 * ((z_next[:, None] - mu) / jnp.exp(log_sigma)) ** 2
        - log_sigma
        - 0.5 * jnp.log(2 * jnp.pi)
    )
    return jax.nn.logsumexp(jax.nn.log_softmax(logits, axis=-1) + log_n, axis=-1).mean()


def asymmetric_sq_error(
    pred: Float[Array, ...], target: Float[Array, ...], optimism_weight: float
) -> Float[Array, ...]:
    """Squared error, multiplied by ``optimism_weight`` where pred > target (optimism)."""
    err = pred - target
    return jnp.where(err > 0, optimism_weight, 1.0) * err**2


def sample_next(logits, mu, log_sigma, temperature: float, key: PRNGKeyArray) -> Float[Array, " z"]:
    """Sample z_{t+1} with Ha's temperature: pick a component per dimension from
    softmax(logits / tau), then draw from N(mu, (sigma * sqrt(tau))^2)."""
    kkey, nkey = jax.random.split(key)
    k = jax.random.categorical(kkey, logits / temperature, axis=-1)  # (z,)
    mu_k = jnp.take_along_axis(mu, k[:, None], axis=-1)[:, 0]
    sigma_k = jnp.exp(jnp.take_along_axis(log_sigma, k[:, None], axis=-1)[:, 0])
    return mu_k + sigma_k * jnp.sqrt(temperature) * jax.random.normal(nkey, mu_k.shape)
