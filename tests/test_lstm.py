"""wm_core.lstm.lstm_sequence is eqx.nn.LSTMCell stepped from a zero state: same values and,
through its hand-written backward pass, the same gradients as autodiff of that cell."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wm_core.lstm import lstm_sequence
from wm_core.mdrnn import MDNRNN, dropout_masks

T, B, N_IN, H = 13, 4, 35, 16


def reference(cell: eqx.nn.LSTMCell, xs, h_mask):
    """The textbook loop: the cell per sequence under vmap, h masked before each step."""

    def one(x_seq, mask):
        def step(carry, x):
            h, c = carry
            carry = cell(x, (h if mask is None else h * mask, c))
            return carry, carry[0]

        zero = jnp.zeros(cell.hidden_size)
        return jax.lax.scan(step, (zero, zero), x_seq)[1]

    return jax.vmap(one, in_axes=(1, None if h_mask is None else 0), out_axes=1)(xs, h_mask)


def fused(cell: eqx.nn.LSTMCell, xs, h_mask):
    return lstm_sequence(cell.weight_ih, cell.weight_hh, cell.bias, xs, h_mask)


@pytest.mark.parametrize("masked", [False, True])
def test_values_and_gradients_match_the_cell(masked):
    k = jax.random.split(jax.random.key(0), 4)
    cell = eqx.nn.LSTMCell(N_IN, H, key=k[0])
    xs = jax.random.normal(k[1], (T, B, N_IN))
    mask = jax.random.bernoulli(k[2], 0.8, (B, H)) / 0.8 if masked else None
    cot = jax.random.normal(k[3], (T, B, H))  # a generic cotangent: every output matters

    np.testing.assert_allclose(fused(cell, xs, mask), reference(cell, xs, mask), atol=1e-6)

    def grads(form):
        return jax.grad(lambda c, x, m: jnp.sum(form(c, x, m) * cot), argnums=(0, 1, 2))(
            cell, xs, mask
        )

    got, want = grads(fused), grads(reference)
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-5 * max(1.0, float(jnp.abs(w).max())))
    assert len(jax.tree.leaves(got)) == 4 + masked  # w_ih, w_hh, bias, xs (+ the mask)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_unroll_batch_is_vmapped_unroll(dropout):
    """M's training pass (batch-major, fused LSTM) against its per-sequence reference."""
    k = jax.random.split(jax.random.key(1), 4)
    rnn = MDNRNN(8, H, 3, key=k[0])
    z, a = jax.random.normal(k[1], (B, T, 8)), jax.random.normal(k[2], (B, T, 3))
    masks = jax.vmap(lambda kk: dropout_masks(rnn, dropout, kk))(jax.random.split(k[3], B))

    def total(m, fn):  # every head enters the scalar, with distinct weights
        outs = fn(m)
        return sum((j + 1.0) * jnp.sum(jnp.tanh(o)) for j, o in enumerate(outs))

    def batched(m):
        return m.unroll_batch(z, a, masks)

    def per_sequence(m):
        return jax.vmap(m.unroll)(z, a, masks)

    for got, want in zip(batched(rnn), per_sequence(rnn), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
    g_got = jax.grad(total)(rnn, batched)
    g_want = jax.grad(total)(rnn, per_sequence)
    for g, w in zip(jax.tree.leaves(g_got), jax.tree.leaves(g_want), strict=True):
        np.testing.assert_allclose(g, w, atol=1e-4 * max(1.0, float(jnp.abs(w).max())))
