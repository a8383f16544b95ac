"""Session 48 probe (not kept): wm_core/lstm.py with the batch split into `chains` independent
recurrences, inside one loop body, in the hope that XLA:CPU runs them on different cores."""
from __future__ import annotations
import functools
import jax
import jax.numpy as jnp
from wm_core.lstm import _cell, _UNROLL
from wm_core.matmul import weight_grad


def lstm_sequence(w_ih, w_hh, bias, xs, h_mask=None, chains=2):
    return _lstm(w_ih, w_hh, bias, xs, h_mask, chains)


def _split(a, n, axis):
    return jnp.split(a, n, axis=axis)


def _forward(w_ih, w_hh, bias, xs, h_mask, chains):
    _, b, _ = xs.shape
    hidden = w_hh.shape[1]
    x_proj = xs @ w_ih.T + bias
    xps = tuple(_split(x_proj, chains, 1))
    masks = (None,) * chains if h_mask is None else tuple(_split(h_mask, chains, 0))

    def step(carry, xp):
        new, outs = [], []
        for (h, c), x, m in zip(carry, xp, masks):
            hm = h if m is None else h * m
            h, c_new, tc, acts = _cell(x + hm @ w_hh.T, c)
            new.append((h, c_new)); outs.append((h, c_new, tc, acts))
        return tuple(new), tuple(outs)

    zeros = jnp.zeros((b // chains, hidden), xs.dtype)
    _, outs = jax.lax.scan(step, tuple((zeros, zeros) for _ in range(chains)), xps, unroll=_UNROLL)
    hs, cs, tcs, acts = (jnp.concatenate([o[k] for o in outs], axis=1) for k in range(4))
    return hs, (w_ih, w_hh, xs, h_mask, hs, cs, tcs, acts)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _lstm(w_ih, w_hh, bias, xs, h_mask, chains):
    return _forward(w_ih, w_hh, bias, xs, h_mask, chains)[0]


def _fwd(w_ih, w_hh, bias, xs, h_mask, chains):
    return _forward(w_ih, w_hh, bias, xs, h_mask, chains)


def _bwd(chains, res, d_hs):
    w_ih, w_hh, xs, h_mask, hs, cs, tcs, acts = res
    zeros = jnp.zeros_like(hs[0])
    h_prev = jnp.concatenate([zeros[None], hs[:-1]])
    c_prev = jnp.concatenate([zeros[None], cs[:-1]])
    i, f, g, o = jnp.split(acts, 4, axis=-1)
    local = jnp.concatenate(
        [g * i * (1 - i), c_prev * f * (1 - f), i * (1 - g**2), tcs * o * (1 - o)], axis=-1
    )
    dh_to_dc = o * (1.0 - tcs**2)
    f_next = jnp.concatenate([f[1:], zeros[None]])
    masks = (None,) * chains if h_mask is None else tuple(_split(h_mask, chains, 0))
    xsplit = tuple(tuple(_split(a, chains, 1)) for a in (d_hs, dh_to_dc, f_next, local))
    ins = tuple(zip(*xsplit))  # per chain: (d_hs, to_dc, f_next, local)

    def step(carry, inputs):
        new, outs = [], []
        for (dh_rec, dc_next), (dh_out, to_dc, f_n, loc), m in zip(carry, inputs, masks):
            dh = dh_out + dh_rec
            dc = dc_next * f_n + dh * to_dc
            d_gates = jnp.concatenate([dc, dc, dc, dh], axis=-1) * loc
            d_hm = d_gates @ w_hh
            new.append((d_hm if m is None else d_hm * m, dc)); outs.append((dh, dc))
        return tuple(new), tuple(outs)

    z = zeros[: zeros.shape[0] // chains]
    _, outs = jax.lax.scan(step, tuple((z, z) for _ in range(chains)), ins, reverse=True, unroll=_UNROLL)
    dh = jnp.concatenate([o[0] for o in outs], axis=1)
    dc = jnp.concatenate([o[1] for o in outs], axis=1)
    d_gates = jnp.concatenate([dc, dc, dc, dh], axis=-1) * local
    hm_prev = h_prev if h_mask is None else h_prev * h_mask
    t, b, g_dim = d_gates.shape
    flat = d_gates.reshape(t * b, g_dim)
    d_w_hh = weight_grad(flat, hm_prev.reshape(t * b, -1))
    d_w_ih = weight_grad(flat, xs.reshape(t * b, -1))
    d_bias = flat.sum(axis=0)
    d_xs = d_gates @ w_ih
    d_mask = None if h_mask is None else jnp.sum((d_gates @ w_hh) * h_prev, axis=0)
    return d_w_ih, d_w_hh, d_bias, d_xs, d_mask


_lstm.defvjp(_fwd, _bwd)
