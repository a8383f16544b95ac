"""M: an MDN-RNN. LSTM over [z_t, a_t]; from h_{t+1} it predicts z_{t+1}, r_t and done_t.

* z_{t+1}: a K-component Gaussian mixture. ``joint=False`` (Ha's factored form): one mixture
  **per latent dimension**, each with its own weights, so a sample picks a component for each
  of z's dimensions independently. ``joint=True`` (ctallec's form): K diagonal Gaussians over
  the whole of z with one set of weights, so a sample is one coherent frame-to-be (one
  component for all dimensions). In both, the head's logits have shape (G, K): G = z
  (factored) or 1 (joint); sampling and the log-likelihood broadcast over G.
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
    joint: bool = eqx.field(static=True)

    def __init__(
        self, z_dim: int, hidden: int, mixtures: int, joint: bool = False, *, key: PRNGKeyArray
    ):
        ckey, hkey = jax.random.split(key)
        self.z_dim, self.hidden, self.mixtures, self.joint = z_dim, hidden, mixtures, joint
        self.cell = eqx.nn.LSTMCell(z_dim + 3, hidden, key=ckey)
        n_logits = mixtures if joint else z_dim * mixtures
        self.head = eqx.nn.Linear(hidden, n_logits + 2 * z_dim * mixtures + 2, key=hkey)

    @property
    def hparams(self) -> dict:
        """The constructor's arguments, for the checkpoint header."""
        hp = {"z_dim": self.z_dim, "hidden": self.hidden, "mixtures": self.mixtures}
        return hp | ({"joint": True} if self.joint else {})  # factored files as they were

    def init_carry(self) -> tuple[Float[Array, " h"], Float[Array, " h"]]:
        return jnp.zeros(self.hidden), jnp.zeros(self.hidden)

    def step(self, z: Float[Array, " z"], a: Float[Array, " 3"], carry, masks=None):
        """One LSTM step on [z_t, a_t]: (h_t, c_t) -> (h_{t+1}, c_{t+1}).

        ``masks`` = (input mask (z+3,), hidden mask (h,)) from :func:`dropout_masks`, or None.
        """
        x = jnp.concatenate([z, a])
        if masks is not None:
            x, carry = x * masks[0], (carry[0] * masks[1], carry[1])
        # eqx.nn.LSTMCell's function, with the matmuls written row-major (x @ W^T, not W @ x).
        # Under the dream's vmap over 1,024 rollouts, W @ x puts the gates out as (4H, rows)
        # and XLA:CPU transposed them back inside the gate fusion: ~40 % of a dream step
        # (AMD EPYC, session 43). Row-major, the gates come out of the matmul as (rows, 4H).
        h, c = carry
        cell = self.cell
        gates = x @ cell.weight_ih.T + h @ cell.weight_hh.T + cell.bias
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c

    def heads(self, h: Float[Array, " h"]):
        """-> logits (G, K), mu (z, K), log_sigma (z, K), reward (), done_logit ();
        G = z (factored) or 1 (joint)."""
        return self._split_heads(h @ self.head.weight.T + self.head.bias)  # row-major, as step

    def _split_heads(self, out: Float[Array, "... o"]):
        """The head's output (..., GK + 2zK + 2) -> logits (..., G, K), (mu, log_sigma)
        (..., z, K), r, done."""
        k, zk, lead = self.mixtures, self.z_dim * self.mixtures, out.shape[:-1]
        g = 1 if self.joint else self.z_dim
        # one split, not five slices: the gradient of slices is a padded copy of each added up
        # (~10 ms of M's ~175 ms train step on XLA:CPU, session 51); a split's is one concat
        logits, mu, log_sigma, r, d = jnp.split(
            out, [g * k, g * k + zk, g * k + 2 * zk, out.shape[-1] - 1], -1
        )
        log_sigma = jnp.clip(log_sigma.reshape(*lead, self.z_dim, k), LOG_SIGMA_MIN, LOG_SIGMA_MAX)
        return (
            logits.reshape(*lead, g, k),
            mu.reshape(*lead, self.z_dim, k),
            log_sigma,
            r[..., 0],
            d[..., 0],
        )

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
    z_dim: int, hidden: int, mixtures: int, count: int, joint: bool = False, *, key: PRNGKeyArray
) -> tuple[MDNRNN, ...]:
    """``count`` Ms of one shape (the file format of rnn.judges; weights come from the file)."""
    return tuple(
        MDNRNN(z_dim, hidden, mixtures, joint, key=jax.random.fold_in(key, j)) for j in range(count)
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


@jax.custom_vjp
def mdn_logprob(
    logits: Float[Array, "G K"],
    mu: Float[Array, "z K"],
    log_sigma: Float[Array, "z K"],
    z_next: Float[Array, " z"],
) -> Float[Array, ""]:
    """log p(z_next) per dimension (divided by z, so both forms read on one scale).

    G = z: the per-dimension mixtures' log-likelihoods, averaged. G = 1: the joint mixture,
    log sum_k pi_k prod_d N(z_d; mu_dk, sigma_dk), over z.

    Its gradient is written in closed form (``_mdn_logprob_bwd``): autodiff of log_softmax and
    logsumexp over K = 5 put reductions over the innermost axis into the backward fusion, which
    took ~12 ms of a ~190 ms train step on XLA:CPU (B 32, T 200; session 51).
    """
    return _mdn_logprob_fwd(logits, mu, log_sigma, z_next)[0]


def _mdn_logprob_fwd(logits, mu, log_sigma, z_next):
    sigma = jnp.exp(log_sigma)
    u = (z_next[:, None] - mu) / sigma  # (z, K): standardized residuals
    log_n = -0.5 * u**2 - log_sigma - 0.5 * jnp.log(2 * jnp.pi)
    groups = logits.shape[0]
    log_n = log_n.reshape(groups, -1, log_n.shape[-1]).sum(1)  # (G, K): dims sharing weights
    log_pi = jax.nn.log_softmax(logits, axis=-1)
    joint = log_pi + log_n
    per_group = jax.nn.logsumexp(joint, axis=-1)  # (G,)
    gamma = jnp.exp(joint - per_group[:, None])  # (G, K): each component's posterior weight
    return per_group.sum() / mu.shape[0], (gamma, jnp.exp(log_pi), u, sigma)


def _mdn_logprob_bwd(res, g):
    """d log p = sum_k gamma_k [d log pi_k + d log N_k], with d log pi_k / d logits_j =
    [j = k] - pi_j, d log N_k / d mu_k = u_k / sigma_k and d log N_k / d log sigma_k = u_k^2 - 1
    (u the standardized residual, gamma the posterior weights, which sum to 1 per group)."""
    gamma, pi, u, sigma = res
    z_dim, k = u.shape
    scale = g / z_dim
    d_logits = scale * (gamma - pi)
    w = scale * jnp.broadcast_to(gamma[:, None, :], (gamma.shape[0], z_dim // gamma.shape[0], k))
    w = w.reshape(z_dim, k)  # each dimension's share of its group's weights
    d_mu = w * u / sigma
    return d_logits, d_mu, w * (u**2 - 1.0), -d_mu.sum(-1)


mdn_logprob.defvjp(_mdn_logprob_fwd, _mdn_logprob_bwd)


def asymmetric_sq_error(
    pred: Float[Array, ...], target: Float[Array, ...], optimism_weight: float
) -> Float[Array, ...]:
    """Squared error, multiplied by ``optimism_weight`` where pred > target (optimism)."""
    err = pred - target
    return jnp.where(err > 0, optimism_weight, 1.0) * err**2


def sample_next(logits, mu, log_sigma, temperature: float, key: PRNGKeyArray) -> Float[Array, " z"]:
    """Sample z_{t+1} with Ha's temperature: pick a component from softmax(logits / tau), per
    dimension (logits (z, K)) or one for all of z (logits (1, K)), then draw from
    N(mu, (sigma * sqrt(tau))^2)."""
    mu_k, sigma_k = pick_component(logits, mu, log_sigma, temperature, key)
    nkey = jax.random.split(key)[1]
    return mu_k + sigma_k * jnp.sqrt(temperature) * jax.random.normal(nkey, mu_k.shape)


def pick_component(
    logits: Float[Array, "G K"],
    mu: Float[Array, "z K"],
    log_sigma: Float[Array, "z K"],
    temperature: float,
    key: PRNGKeyArray,
) -> tuple[Float[Array, " z"], Float[Array, " z"]]:
    """The (mu, sigma) of the component drawn from softmax(logits / tau) (``sample_next``'s
    first half, with the same key use)."""
    kkey = jax.random.split(key)[0]
    k = jax.random.categorical(kkey, logits / temperature, axis=-1)  # (G,)
    k = jnp.broadcast_to(k[:, None], (mu.shape[0], 1)) if k.shape[0] == 1 else k[:, None]
    mu_k = jnp.take_along_axis(mu, k, axis=-1)[:, 0]
    return mu_k, jnp.exp(jnp.take_along_axis(log_sigma, k, axis=-1)[:, 0])
