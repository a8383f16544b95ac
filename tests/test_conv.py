"""The im2col / col2im layers and their native (accelerator) forms compute the textbook
functions for the same weights, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wm_core.conv import (
    conv2d,
    conv2d_inference,
    conv2d_lax,
    conv_transpose2d,
    conv_transpose2d_lax,
    native,
)


def reference_conv_transpose(x, w, b, stride=2):
    """Scatter definition: out[s*i + j] += x[i] * w[j] (torch.nn.ConvTranspose2d, padding 0)."""
    bsz, h, wd, _ = x.shape
    k, co = w.shape[0], w.shape[3]
    out = np.zeros((bsz, (h - 1) * stride + k, (wd - 1) * stride + k, co))
    for i in range(h):
        for j in range(wd):
            out[:, stride * i : stride * i + k, stride * j : stride * j + k] += np.einsum(
                "bc,xycd->bxyd", x[:, i, j], w
            )
    return out + b


def random_layer(seed: int, x_shape: tuple, k: int, co: int):
    """Random input (B, H, W, Ci), square kernel (k, k, Ci, co) and bias, float32."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal((k, k, x_shape[-1], co)).astype(np.float32)
    return x, w, rng.standard_normal(co).astype(np.float32)


def assert_same_gradients(f, g, *args):
    """d/d(x, w, b) of sum(sin(layer)) agree between two forms of the same layer."""
    loss = lambda layer: lambda *a: jnp.sum(jnp.sin(layer(*a)))  # noqa: E731
    for a, c in zip(jax.grad(loss(f), (0, 1, 2))(*args), jax.grad(loss(g), (0, 1, 2))(*args)):
        assert np.max(np.abs(np.asarray(a) - np.asarray(c))) < 1e-3 * (1 + np.abs(c).max())


@pytest.mark.parametrize("k,h", [(5, 1), (5, 5), (6, 13), (6, 30), (3, 4), (4, 7)])
def test_conv_transpose_matches_scatter_definition(k, h):
    x, w, b = random_layer(k * 100 + h, (2, h, h + 1, 3), k, 5)
    got = np.asarray(conv_transpose2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)))
    want = reference_conv_transpose(x, w, b)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-4


@pytest.mark.parametrize("stride,h", [(2, 64), (2, 9), (1, 6)])
def test_conv2d_matches_lax(stride, h):
    x, w, b = random_layer(h, (2, h, h, 3), 4, 8)
    want = (
        jax.lax.conv_general_dilated(
            x, w, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        + b
    )
    assert np.max(np.abs(np.asarray(conv2d(x, w, b, stride)) - np.asarray(want))) < 1e-4


def test_on_cpu_the_layers_avoid_xlas_strided_and_dilated_convolutions():
    """The pipeline's CPU outputs come from the im2col / phase forms; XLA's native strided and
    input-dilated convolutions (slow to differentiate on CPU) only off CPU. Even-k transposed
    convolutions do use a native *stride-1, undilated* convolution for their four phases."""
    if jax.default_backend() != "cpu":
        pytest.skip("checks the CPU path")
    x, b = jnp.zeros((1, 9, 9, 3)), jnp.zeros(8)
    for layer, w in ((lambda x, w, b: conv2d(x, w, b, 2), jnp.zeros((4, 4, 3, 8))),
                     (conv_transpose2d, jnp.zeros((5, 5, 3, 8)))):  # fmt: skip
        assert "conv_general_dilated" not in str(jax.make_jaxpr(layer)(x, w, b))
    even = str(jax.make_jaxpr(conv_transpose2d)(x, jnp.zeros((6, 6, 3, 8)), b))
    assert "conv_general_dilated" in even
    assert "lhs_dilation=(2" not in even and "window_strides=(2" not in even
    # the strided convolution's hand-written backward: its dx is the phase form (stride 1)
    loss = lambda x, w, b: jnp.sum(conv2d(x, w, b, 2))  # noqa: E731
    back = str(jax.make_jaxpr(jax.grad(loss, (0, 1, 2)))(x, jnp.zeros((4, 4, 3, 8)), b))
    assert "conv_general_dilated" in back
    assert "lhs_dilation=(2" not in back and "window_strides=(2" not in back
    native_jaxpr = str(jax.make_jaxpr(conv_transpose2d_lax)(x, jnp.zeros((5, 5, 3, 8)), b))
    assert "lhs_dilation=(2" in native_jaxpr and not native()


@pytest.mark.parametrize("k,h", [(5, 1), (5, 5), (6, 13), (4, 7)])
def test_native_conv_transpose_matches_scatter_definition_and_im2col_gradient(k, h):
    x, w, b = random_layer(k * 10 + h, (2, h, h + 2, 3), k, 5)
    got = np.asarray(conv_transpose2d_lax(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)))
    assert np.max(np.abs(got - reference_conv_transpose(x, w, b))) < 1e-4
    assert_same_gradients(conv_transpose2d_lax, conv_transpose2d, x, w, b)


@pytest.mark.parametrize("stride,h", [(2, 64), (2, 9), (1, 6)])
def test_native_conv2d_matches_im2col_values_and_gradients(stride, h):
    x, w, b = random_layer(h + stride, (2, h, h, 3), 4, 8)
    assert np.max(np.abs(np.asarray(conv2d_lax(x, w, b, stride) - conv2d(x, w, b, stride)))) < 1e-4
    assert_same_gradients(lambda *a: conv2d_lax(*a, stride), lambda *a: conv2d(*a, stride), x, w, b)


@pytest.mark.parametrize(
    "k,h,ci,stride", [(4, 64, 3, 2), (4, 9, 3, 2), (6, 11, 3, 2), (4, 31, 32, 2), (3, 6, 3, 2)]
)
def test_inference_conv2d_matches_lax(k, h, ci, stride):
    """The inference route (space-to-depth for few input channels, odd sizes included)
    computes the native convolution's values."""
    x, w, b = random_layer(k * 100 + h, (2, h, h + 1, ci), k, 8)
    want = np.asarray(conv2d_lax(x, w, b, stride))
    got = np.asarray(conv2d_inference(x, w, b, stride))
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-4


@pytest.mark.parametrize("k", [5, 6])
def test_conv_transpose_one_pixel_input_is_its_patch(k):
    """V's first decoder layer (1 x 1 input) takes the one-matmul route: same values as the
    scatter definition, same gradients as the native convolution and as the phase form."""
    from wm_core.conv import _conv_transpose2d

    x, w, b = random_layer(k, (3, 1, 1, 7), k, 4)
    got = np.asarray(conv_transpose2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)))
    assert got.shape == (3, k, k, 4)
    assert np.max(np.abs(got - reference_conv_transpose(x, w, b))) < 1e-4
    assert_same_gradients(conv_transpose2d_lax, conv_transpose2d, x, w, b)
    assert_same_gradients(_conv_transpose2d, conv_transpose2d, x, w, b)


@pytest.mark.parametrize(
    "k,h,ci,co",
    [(5, 1, 4, 6), (5, 5, 4, 6), (6, 13, 4, 6), (6, 30, 4, 6), (3, 4, 4, 6), (4, 7, 4, 6),
     (6, 9, 32, 3), (5, 6, 13, 3)],
)  # fmt: skip
def test_conv_transpose_hand_written_gradient_matches_autodiff(k, h, ci, co):
    """The phase-form backward (wm_core.conv._conv_transpose2d_bwd) against autodiff of the
    same forward, on non-square inputs and odd and even kernels, to float32 rounding. The last
    two cases have 4 Co < Ci (V's last layer, 32 -> 3): dx and dw from one patch matrix."""
    from wm_core.conv import _conv_transpose2d

    x, w, b = random_layer(k * 1000 + h, (3, h, h + 3, ci), k, co)
    args = [jnp.asarray(a) for a in (x, w, b)]
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)) * jnp.arange(float(co)))  # noqa: E731
    got = jax.grad(loss(_conv_transpose2d), (0, 1, 2))(*args)
    want = jax.grad(loss(_conv_transpose2d.fun), (0, 1, 2))(*args)
    for a, c in zip(got, want):
        assert a.shape == c.shape
        assert np.max(np.abs(np.asarray(a) - np.asarray(c))) < 1e-5 * (1 + np.abs(c).max())


@pytest.mark.parametrize(
    "k,h,ci,co",
    [(4, 64, 3, 8), (4, 31, 32, 6), (4, 14, 2, 40), (4, 6, 16, 4), (2, 9, 5, 3), (6, 13, 4, 7)],
)
def test_strided_conv_hand_written_gradient_matches_native(k, h, ci, co):
    """Stride 2, even k (V's encoder): dx as a transposed convolution of the output gradient,
    dw one matmul with the patches, either contraction order (wm_core.matmul.weight_grad: patch
    width 16 Ci above and below 2 Co) against XLA's own strided convolution; odd and even
    sizes, non-square inputs whose last row or column no output reads."""
    x, w, b = random_layer(k * 1000 + h, (3, h, h + 3, ci), k, co)
    want = conv2d_lax(x, w, b, 2)
    assert np.max(np.abs(np.asarray(conv2d(x, w, b, 2) - want))) < 1e-4 * (1 + np.abs(want).max())
    assert_same_gradients(lambda *a: conv2d_lax(*a, 2), lambda *a: conv2d(*a, 2), x, w, b)
