"""Convolutions written as strided slices + one matmul (im2col), NHWC, for XLA:CPU speed.

XLA:CPU differentiates strided and transposed convolutions slowly (~10x behind PyTorch on
Ha's VAE, ../shared/PERF-NOTES.md). These layers compute the *same functions* as the
textbook layers for the same weights (tests/test_conv.py checks against direct references).
The im2col forms are for XLA:CPU; on an accelerator ``conv2d`` and ``conv_transpose2d`` use
XLA's native convolutions (cuDNN on a GPU; the im2col forms were not timed there), chosen by
the default backend at trace time, so every pipeline output made on CPU is unchanged:

* ``conv2d``: cross-correlation, VALID padding, any stride (as ``torch.nn.Conv2d``). Stride 2
  with an even kernel (V's encoder) has a hand-written backward: dx is the transposed
  convolution of the output gradient (the phase form below), dw one matmul with the patches.
* ``conv_transpose2d``: out[2i + j] += x[i] * w[j] (as ``torch.nn.ConvTranspose2d``,
  stride 2, padding 0), computed by output phase so no inserted zeros are multiplied (a
  sub-pixel formulation multiplies 13x more than needed on the 1x1 -> 5x5 layer): odd kernels
  as one matmul per input pixel plus a col2im scatter; even kernels, whose four phases all have
  (k/2)^2 taps, as one stride-1 convolution with 4 Co outputs and a depth-to-space shuffle.
* ``conv2d_inference``: ``conv2d`` as XLA's own convolution, for encoding without a gradient
  (wm_core/encode.py compiles it with an option that gives convolutions to XLA's Eigen kernels).

Weights are ``(kh, kw, c_in, c_out)``; inputs ``(B, H, W, C)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from wm_core.matmul import weight_grad

_NHWC = ("NHWC", "HWIO", "NHWC")


def native() -> bool:
    """True off CPU: use XLA's own convolutions (cuDNN on GPU) instead of im2col."""
    return jax.default_backend() != "cpu"


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
    if native():
        return conv2d_lax(x, w, b, stride)
    k, _, ci, co = w.shape
    if stride == 2 and k % 2 == 0:
        return _conv2d_s2(x, w, b)
    return _patches(x, k, stride) @ w.reshape(k * k * ci, co) + b


@jax.custom_vjp
def _conv2d_s2(x, w, b):
    return _conv2d_s2_fwd(x, w, b)[0]


def _space_to_depth(x: Float[Array, "B H W C"], k: int) -> Float[Array, "B M N 4C"]:
    """Pixel pairs side by side in channels, (a, c, ch) = x[2 I + a, 2 J + c, ch], over the rows
    and columns a stride-2 k x k window reads (a last odd row or column is not)."""
    bsz, h, wd, c = x.shape
    m, n = (h - k) // 2 + k // 2, (wd - k) // 2 + k // 2
    x = x[:, : 2 * m, : 2 * n].reshape(bsz, m, 2, n, 2, c)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(bsz, m, n, 4 * c)


def _s2d_kernel_order(w: Array, k: int) -> Array:
    """(k, k, ...) taps -> (k/2, k/2, 2, 2, ...) as the space-to-depth patches order them:
    tap 2 P + a -> (P, a)."""
    t = k // 2
    return w.reshape(t, 2, t, 2, *w.shape[2:]).transpose(0, 2, 1, 3, *range(4, w.ndim + 2))


def _conv2d_s2_fwd(x, w, b):
    k, _, ci, co = w.shape
    # Stride 2 and even k is a stride-1 (k/2 x k/2) window over the space-to-depth input:
    # (k/2)^2 unstrided slices of 4 Ci channels build the same patches as k^2 strided ones
    # of Ci, in another order, and much faster for V's 3-channel frames (first layer, forward
    # 27 -> 9 ms at batch 100).
    p = _patches(_space_to_depth(x, k), k // 2, 1)
    # The backward needs x only for its height and width (to pad dx back to them): a
    # zero-size stand-in keeps the shape without holding x's activations alive (the
    # patches p already carry its values).
    x_shape = jnp.zeros((0, *x.shape[1:3], 0), x.dtype)
    return p @ _s2d_kernel_order(w, k).reshape(k * k * ci, co) + b, (x_shape, p, w)


def _conv2d_s2_bwd(res, g):
    """dx[2i + j] += g[i] @ w[j]^T is a stride-2 transposed convolution of g, which the phase
    form computes as one stride-1 convolution (even k). Autodiff of the forward's slices
    instead wrote a (B Ho Wo, k k Ci) matrix g @ w^T and scattered it back: 31 px layer,
    forward + backward 101 -> 73 ms at batch 100 (BENCHMARKS.md, session 24)."""
    x_shape, p, w = res
    k, _, ci, co = w.shape
    gf = g.reshape(-1, co)
    dw = weight_grad(p.reshape(gf.shape[0], -1), gf).reshape(k // 2, k // 2, 2, 2, ci, co)
    dw = dw.transpose(0, 2, 1, 3, 4, 5).reshape(k, k, ci, co)  # (P, Q, a, c) -> taps 2 P + a
    dx = _conv_transpose2d(g, w.transpose(0, 1, 3, 2), jnp.zeros(ci, g.dtype))
    h, wd = x_shape.shape[1:3]
    dx = jnp.pad(dx, ((0, 0), (0, h - dx.shape[1]), (0, wd - dx.shape[2]), (0, 0)))
    return dx, dw, gf.sum(0)


_conv2d_s2.defvjp(_conv2d_s2_fwd, _conv2d_s2_bwd)


def conv2d_lax(
    x: Float[Array, "B H W Ci"], w: Float[Array, "k k Ci Co"], b: Float[Array, " Co"], stride: int
) -> Float[Array, "B Ho Wo Co"]:
    """``conv2d`` as one native convolution (the accelerator path)."""
    return (
        jax.lax.conv_general_dilated(x, w, (stride, stride), "VALID", dimension_numbers=_NHWC) + b
    )


def conv2d_inference(
    x: Float[Array, "B H W Ci"], w: Float[Array, "k k Ci Co"], b: Float[Array, " Co"], stride: int
) -> Float[Array, "B Ho Wo Co"]:
    """``conv2d`` for encoding without a gradient (wm_core/encode.py): XLA's own convolution.

    A stride-2 even-kernel layer with few input channels (V's first: 3) goes through the
    space-to-depth input as a stride-1 (k/2 x k/2) convolution of 4 Ci channels, the same
    taps in another order: V's first layer 82.8 -> 49.7 ms per 1,000 frames on XLA:CPU's Eigen
    kernels, where 3 channels per tap leave its vectors mostly empty (BENCHMARKS.md, session
    27). With 32 channels the direct convolution is faster (81.4 against 95.8 ms).
    """
    k, _, ci, co = w.shape
    if stride == 2 and k % 2 == 0 and ci < 8:
        wk = _s2d_kernel_order(w, k).reshape(k // 2, k // 2, 4 * ci, co)
        xs = _space_to_depth(x, k)
        return jax.lax.conv_general_dilated(xs, wk, (1, 1), "VALID", dimension_numbers=_NHWC) + b
    return conv2d_lax(x, w, b, stride)


def conv_transpose2d_lax(
    x: Float[Array, "B H W Ci"], w: Float[Array, "k k Ci Co"], b: Float[Array, " Co"]
) -> Float[Array, "B Ho Wo Co"]:
    """``conv_transpose2d`` as one native convolution: the input dilated by 2, padded by k - 1
    and correlated with the spatially flipped kernel, which is out[2i + j] += x[i] * w[j]."""
    k = w.shape[0]
    y = jax.lax.conv_general_dilated(
        x, w[::-1, ::-1], (1, 1), [(k - 1, k - 1)] * 2, lhs_dilation=(2, 2), dimension_numbers=_NHWC
    )
    return y + b


def conv_transpose2d(
    x: Float[Array, "B H W Ci"], w: Float[Array, "k k Ci Co"], b: Float[Array, " Co"]
) -> Float[Array, "B Ho Wo Co"]:
    """Stride-2 transposed convolution, output (H - 1) * 2 + k, as matmul + col2im.

    Each input pixel's contribution x[i] @ w is one matmul (exactly the textbook MACs, no
    multiplications by inserted zeros). The scatter out[2i + j] += y[i, j] is then done per
    output phase: tap j = 2p + phase lands at out[2(i + p) + phase], so each phase image is a
    sum of the taps shifted by p (pads, fused by XLA), and the phases interleave by
    depth-to-space. The gradient is written by hand (:func:`_conv_transpose2d_bwd`).
    """
    if native():
        return conv_transpose2d_lax(x, w, b)
    if x.shape[1:3] == (1, 1):
        # One input pixel: the output is its patch, x @ w, with nothing to scatter. Autodiff of
        # this one matmul is the direct backward (dx = g w^T, dw = x^T g), cheaper than the
        # phase form, which would pad a k = 5 kernel to 6 x 6 (V's first decoder layer).
        bsz, _, _, ci = x.shape
        k, _, _, co = w.shape
        y = x.reshape(bsz, ci) @ w.transpose(2, 0, 1, 3).reshape(ci, k * k * co)
        return y.reshape(bsz, k, k, co) + b
    return _conv_transpose2d(x, w, b)


def _phase_kernel(w: Float[Array, "k k Ci Co"]) -> tuple[Float[Array, "t t Ci 4Co"], int]:
    """w split by output phase: tap j = 2p + phase -> [p, q, ci, (phase_y, phase_x, co)],
    zero-padded to 2t x 2t taps when k is odd."""
    k, _, ci, co = w.shape
    t = (k + 1) // 2
    wp = jnp.pad(w, ((0, 2 * t - k), (0, 2 * t - k), (0, 0), (0, 0)))
    return wp.reshape(t, 2, t, 2, ci, co).transpose(0, 2, 4, 1, 3, 5).reshape(t, t, ci, 4 * co), t


def _depth_to_space(y, k: int, h: int, wd: int):
    """(B, M, N, 4 Co) phase images -> (B, 2M, 2N, Co), cropped to the output's (H-1)*2 + k."""
    bsz, m, n, c4 = y.shape
    co = c4 // 4
    y = y.reshape(bsz, m, n, 2, 2, co).transpose(0, 1, 3, 2, 4, 5).reshape(bsz, 2 * m, 2 * n, co)
    return y[:, : (h - 1) * 2 + k, : (wd - 1) * 2 + k]


@jax.custom_vjp
def _conv_transpose2d(x, w, b):
    bsz, h, wd, ci = x.shape
    k, _, _, co = w.shape
    if k % 2 == 0:
        # Even k: the phase kernels hold no padded taps, so each phase image is a stride-1
        # correlation of x (padded by t - 1) with the flipped phase kernel, and XLA:CPU's
        # stride-1 convolution beats matmul + col2im (V's two 6 x 6 layers: 115 -> 63 and
        # 67 -> 22 ms forward + backward at batch 64; BENCHMARKS.md, sessions 22-23).
        wp, t = _phase_kernel(w)
        y = jax.lax.conv_general_dilated(
            x, wp[::-1, ::-1], (1, 1), [(t - 1, t - 1)] * 2, dimension_numbers=_NHWC
        )
        return _depth_to_space(y, k, h, wd) + b
    t = (k + 1) // 2
    y = x.reshape(-1, ci) @ w.transpose(2, 0, 1, 3).reshape(ci, k * k * co)
    y = y.reshape(bsz, h, wd, k, k, co)
    y = jnp.pad(y, ((0, 0),) * 3 + ((0, 2 * t - k), (0, 2 * t - k), (0, 0)))
    y = y.reshape(bsz, h, wd, t, 2, t, 2, co)  # tap index = 2 p + phase
    phases = sum(
        jnp.pad(
            y[:, :, :, p, :, q], ((0, 0), (p, t - 1 - p), (q, t - 1 - q), (0, 0), (0, 0), (0, 0))
        )
        for p in range(t)
        for q in range(t)
    )  # (B, H + t - 1, W + t - 1, phase_y, phase_x, Co)
    return _depth_to_space(phases.reshape(bsz, h + t - 1, wd + t - 1, 4 * co), k, h, wd) + b


def _conv_transpose2d_fwd(x, w, b):
    return _conv_transpose2d(x, w, b), (x, w)


def _conv_transpose2d_bwd(res, g):
    """By output phase, like the forward: dx[i] = sum_j g[2i + j] @ w[j]^T, j = 2p + phase.

    The output gradient goes space-to-depth once (B, H + t - 1, W + t - 1, 4 Co); then dx is
    t x t shifted slices of it, each times its block of w, and dw the input times each slice:
    2 t^2 matmuls and no (B H W, k k Co) patch matrix. Autodiff of the forward's pads and
    slices wrote and read that matrix and ran 1.15-1.6x slower on V's three larger transposed
    convolutions (BENCHMARKS.md, session 18). When the output gradient has fewer channels than
    x (4 Co < Ci) its slices form one narrow patch matrix instead (below).
    """
    x, w = res
    bsz, h, wd, ci = x.shape
    k, _, _, co = w.shape
    wp, t = _phase_kernel(w)
    m, n = h + t - 1, wd + t - 1
    g = jnp.pad(g, ((0, 0), (0, 2 * m - g.shape[1]), (0, 2 * n - g.shape[2]), (0, 0)))
    g = g.reshape(bsz, m, 2, n, 2, co).transpose(0, 1, 3, 2, 4, 5).reshape(bsz, m, n, 4 * co)
    xf = x.reshape(-1, ci)
    if 4 * co < ci:
        # A thin output gradient (V's last layer, 4 Co = 12 < Ci = 32): its t^2 shifted
        # slices side by side are a narrow patch matrix, worth building once for one matmul
        # each for dx and dw; 30 px layer, backward 73 -> 54-58 ms at batch 100 against a
        # stride-1 convolution for dx and t^2 thin matmuls for dw (session 24).
        cols = jax.lax.optimization_barrier(
            jnp.concatenate([g[:, p : p + h, q : q + wd] for p in range(t) for q in range(t)], -1)
        ).reshape(-1, t * t * 4 * co)
        dx = (cols @ wp.transpose(0, 1, 3, 2).reshape(-1, ci)).reshape(x.shape)
        dwp = weight_grad(xf, cols).reshape(ci, t, t, 4 * co).transpose(1, 2, 0, 3)
    else:
        dx = jnp.zeros_like(x)
        dwp = []
        for p in range(t):
            for q in range(t):
                s = g[:, p : p + h, q : q + wd]  # the output phases pixel i feeds via p
                dx = dx + s @ wp[p, q].T
                dwp.append(weight_grad(xf, s.reshape(-1, 4 * co)))
        dwp = jnp.stack(dwp).reshape(t, t, ci, 4 * co)
    dw = dwp.reshape(t, t, ci, 2, 2, co).transpose(0, 3, 1, 4, 2, 5)
    dw = dw.reshape(2 * t, 2 * t, ci, co)[:k, :k]
    return dx, dw, g.reshape(-1, co).sum(0)


_conv_transpose2d.defvjp(_conv_transpose2d_fwd, _conv_transpose2d_bwd)
