"""A whole LSTM sequence with a hand-written backward pass, for training M on CPU.

Autodiff of a ``lax.scan`` over ``eqx.nn.LSTMCell`` does, at every one of the T steps, the
small matmuls of the weight gradients (dW += h_t^T dgates_t) and adds them into a carried
accumulator. Here the reverse loop does only what is truly sequential (dh, dc through the
recurrence) and writes the gate gradients over the saved gate factors; the weight gradients,
the bias gradient and the input gradient are then one large matmul each over all T * B rows,
and the input projection of the forward pass is one matmul before the loop. The function is
the textbook LSTM, ``eqx.nn.LSTMCell`` stepped from a zero state (gate order i, f, g, o, one
bias), up to float rounding; tests/test_lstm.py checks values and gradients against autodiff
of that cell.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from wm_core.matmul import weight_grad

# Steps per loop iteration of both loops. XLA:CPU pays some fixed cost per while-loop
# iteration on top of a ~200 us step (not broken down further; the gain below is what was
# measured); 4 steps per iteration took the LSTM's forward + backward from ~186 to ~166 ms
# (B 32, T 200, H 256; median of 7-9 rounds, session 25). Same arithmetic: M trained without
# dropout is bitwise the same as with unroll 1 (with a recurrent mask, equal to float rounding).
_UNROLL = 4


def lstm_sequence(
    w_ih: Float[Array, "G I"],
    w_hh: Float[Array, "G H"],
    bias: Float[Array, " G"],
    xs: Float[Array, "T B I"],
    h_mask: Float[Array, "B H"] | None = None,
) -> Float[Array, "T B H"]:
    """h_1..h_T of an LSTM from h_0 = c_0 = 0 (G = 4H).

    ``h_mask`` (variational dropout on the recurrent state) multiplies h_{t-1} before the
    recurrent matmul, as ``MDNRNN.step`` does; ``None`` means no mask.
    """
    return _lstm(w_ih, w_hh, bias, xs, h_mask)


def _cell(gates: Float[Array, "B G"], c: Float[Array, "B H"]):
    """One step's activations. tanh(g) is computed as 2 sigmoid(2g) - 1, so the four gates
    take one sigmoid over the whole (B, 4H) block: with the textbook form (three sigmoids and
    a tanh on four slices) XLA:CPU's loop step took ~550 us against ~340 us (B 32, H 256,
    the recurrent matmul alone ~210 us)."""
    hidden = c.shape[-1]
    scale = jnp.ones(gates.shape[-1], gates.dtype).at[2 * hidden : 3 * hidden].set(2.0)
    s = jax.lax.optimization_barrier(jax.nn.sigmoid(gates * scale))
    i, f, g, o = jnp.split(s, 4, axis=-1)
    g = 2.0 * g - 1.0
    c = f * c + i * g
    tc = jnp.tanh(c)
    return o * tc, c, tc, jnp.concatenate([i, f, g, o], axis=-1)


def _forward(w_ih, w_hh, bias, xs, h_mask):
    t_len, b, _ = xs.shape
    hidden = w_hh.shape[1]
    # Every step's input projection in one matmul, into a buffer that the loop then overwrites,
    # step by step, with the gate activations the backward pass needs: a scan would stack them
    # in a fresh (T, B, 4H) buffer, zero-filled first (~5 ms of a ~170 ms train step, B 32,
    # T 200, H 256, XLA:CPU; session 51), and the bias would be a separate (T, B, 4H) pass.
    acts = xs @ w_ih.T
    zeros = jnp.zeros((b, hidden), xs.dtype)
    stacked = jnp.zeros((t_len, b, hidden), xs.dtype)

    def step(t, carry):
        h, c, acts, hs, cs, tcs = carry
        hm = h if h_mask is None else h * h_mask
        h, c, tc, a = _cell(acts[t] + bias + hm @ w_hh.T, c)
        return h, c, acts.at[t].set(a), hs.at[t].set(h), cs.at[t].set(c), tcs.at[t].set(tc)

    init = (zeros, zeros, acts, stacked, stacked, stacked)
    _, _, acts, hs, cs, tcs = jax.lax.fori_loop(0, t_len, step, init, unroll=_UNROLL)
    return hs, (w_ih, w_hh, xs, h_mask, hs, cs, tcs, acts)


@jax.custom_vjp
def _lstm(w_ih, w_hh, bias, xs, h_mask):
    return _forward(w_ih, w_hh, bias, xs, h_mask)[0]


def _lstm_bwd(res, d_hs: Float[Array, "T B H"]):
    w_ih, w_hh, xs, h_mask, hs, cs, tcs, acts = res
    zeros = jnp.zeros_like(hs[0])
    h_prev = jnp.concatenate([zeros[None], hs[:-1]])  # h_{t-1}, h_0 = 0
    c_prev = jnp.concatenate([zeros[None], cs[:-1]])
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    # Every factor that does not depend on the reverse recursion, for all T steps at once:
    # d gates = [dc, dc, dc, dh] * local, and dc_t = dc_{t+1} f_{t+1} + dh_t o_t (1 - tanh^2 c_t).
    local = jnp.concatenate(
        [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g**2), tcs * o * (1 - o)], axis=-1
    )
    dh_to_dc = o * (1.0 - tcs**2)
    f_next = jnp.concatenate([f[1:], zeros[None]])  # c_t reaches c_{t+1} through f_{t+1}

    t_len = d_hs.shape[0]

    def step(j, carry):
        # reverse order; the gate gradients overwrite the local factors they were made from
        # (no stacked outputs to zero-fill, no (T, B, 4H) pass after the loop)
        t = t_len - 1 - j
        dh_rec, dc_next, grads = carry
        dh = d_hs[t] + dh_rec
        dc = dc_next * f_next[t] + dh * dh_to_dc[t]
        d_gates = jnp.concatenate([dc, dc, dc, dh], axis=-1) * grads[t]
        d_hm = d_gates @ w_hh  # gradient of the (masked) h_{t-1} that entered the matmul
        dh_prev = d_hm if h_mask is None else d_hm * h_mask
        return dh_prev, dc, grads.at[t].set(d_gates)

    _, _, d_gates = jax.lax.fori_loop(0, t_len, step, (zeros, zeros, local), unroll=_UNROLL)
    hm_prev = h_prev if h_mask is None else h_prev * h_mask
    t, b, g_dim = d_gates.shape
    flat = d_gates.reshape(t * b, g_dim)
    d_w_hh = weight_grad(flat, hm_prev.reshape(t * b, -1))  # (G, H) from T * B rows
    d_w_ih = weight_grad(flat, xs.reshape(t * b, -1))
    d_bias = flat.sum(axis=0)
    d_xs = d_gates @ w_ih
    d_mask = None if h_mask is None else jnp.sum((d_gates @ w_hh) * h_prev, axis=0)
    return d_w_ih, d_w_hh, d_bias, d_xs, d_mask


_lstm.defvjp(_forward, _lstm_bwd)
