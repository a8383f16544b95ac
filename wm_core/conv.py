"""Convolutions written as strided slices + one matmul (im2col), NHWC, for XLA:CPU speed.

XLA:CPU differentiates strided and transposed convolutions slowly (~10x behind PyTorch on
Ha's VAE, ../shared/PERF-NOTES.md). These layers compute the *same functions* as the
textbook layers for the same weights (tests/test_conv.py checks against direct references):

* ``conv2d``: cross-correlation, VALID padding, any stride (as ``torch.nn.Conv2d``).
* ``conv_transpose2d``: out[s*i + j] += x[i] * w[j] (as ``torch.nn.ConvTranspose2d``,
  padding 0), computed as a stride-1 convolution per output phase followed by
  depth-to-space ("sub-pixel convolution"), so no zeros are multiplied.

Weights are ``(kh, kw, c_in, c_out)``; inputs ``(B, H, W, C)``.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def _patches(x: Float[Array, "B H W C"], k: int, stride: int) -> Float[Array, "B Ho Wo KKC"]:
    _, h, w, _ = x.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    cols = [
        x[:, i : i + stride * (ho - 1) + 1 : stride, j : j + stride * (wo - 1) + 1 : stride]
        for i in range(k)
        for j in range(k)
    ]
    return jnp.concatenate(cols, axis=-1)  # channel order (i, j, c) matches w.reshape


def conv2d(
    x: Float[Array, "B H W Ci"], w: Float[Array, "k k Ci Co"], b: Float[Array, " Co"], stride: int
) -> Float[Array, "B Ho Wo Co"]:
    """VALID cross-correlation with a square kernel."""
    k, _, ci, co = w.shape
    return _patches(x, k, stride) @ w.reshape(k * k * ci, co) + b


def conv_transpose2d(
    x: Float[Array, "B H W Ci"], w: Float[Array, "k k Ci Co"], b: Float[Array, " Co"]
) -> Float[Array, "B Ho Wo Co"]:
    """Stride-2 transposed convolution, output (H - 1) * 2 + k, as sub-pixel convolution.

    Zero-pad the kernel to an even size 2T; then output phase p of each axis is
    out[2m + p] = sum_s xp[m + s] * w[p + 2 (T - 1 - s)] with x padded by T - 1 on both sides:
    a stride-1 correlation with a T-tap kernel. All four phases share one matmul.
    """
    k, _, ci, co = w.shape
    t = (k + 1) // 2
    w = jnp.pad(w, ((0, 2 * t - k), (0, 2 * t - k), (0, 0), (0, 0)))
    taps = 2 * (t - 1 - jnp.arange(t))  # kernel index for tap s, phase 0
    # (s_y, s_x, ci, p_y, p_x, co): phase kernels side by side on the output axis
    phases = jnp.stack(
        [jnp.stack([w[taps + py][:, taps + px] for px in (0, 1)], axis=-2) for py in (0, 1)],
        axis=-3,
    )
    xp = jnp.pad(x, ((0, 0), (t - 1, t - 1), (t - 1, t - 1), (0, 0)))
    y = conv2d(xp, phases.reshape(t, t, ci, 4 * co), jnp.zeros(4 * co, x.dtype), 1)
    bsz, m, n, _ = y.shape
    y = y.reshape(bsz, m, n, 2, 2, co).transpose(0, 1, 3, 2, 4, 5).reshape(bsz, 2 * m, 2 * n, co)
    ho, wo = (x.shape[1] - 1) * 2 + k, (x.shape[2] - 1) * 2 + k
    return y[:, :ho, :wo] + b
