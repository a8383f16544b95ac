"""The im2col / col2im layers and their native (accelerator) forms compute the textbook
functions for the same weights, values and gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from wm_core.conv import conv2d, conv2d_lax, conv_transpose2d, conv_transpose2d_lax, native


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


@pytest.mark.parametrize("k,h", [(5, 1), (5, 5), (6, 13), (6, 30), (3, 4), (4, 7)])
def test_conv_transpose_matches_scatter_definition(k, h):
    rng = np.random.default_rng(k * 100 + h)
    x = rng.standard_normal((2, h, h + 1, 3)).astype(np.float32)
    w = rng.standard_normal((k, k, 3, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    got = np.asarray(conv_transpose2d(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)))
    want = reference_conv_transpose(x, w, b)
    assert got.shape == want.shape
    assert np.max(np.abs(got - want)) < 1e-4


@pytest.mark.parametrize("stride,h", [(2, 64), (2, 9), (1, 6)])
def test_conv2d_matches_lax(stride, h):
    rng = np.random.default_rng(h)
    x = rng.standard_normal((2, h, h, 3)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    want = (
        jax.lax.conv_general_dilated(
            x, w, (stride, stride), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        + b
    )
    assert np.max(np.abs(np.asarray(conv2d(x, w, b, stride)) - np.asarray(want))) < 1e-4


def test_on_cpu_the_layers_trace_to_im2col_not_native_convolutions():
    """The pipeline's CPU outputs come from the im2col forms; the native ones only off CPU."""
    if jax.default_backend() != "cpu":
        pytest.skip("checks the CPU path")
    x, b = jnp.zeros((1, 9, 9, 3)), jnp.zeros(8)
    for layer, w in ((lambda x, w, b: conv2d(x, w, b, 2), jnp.zeros((4, 4, 3, 8))),
                     (conv_transpose2d, jnp.zeros((5, 5, 3, 8)))):  # fmt: skip
        assert "conv_general_dilated" not in str(jax.make_jaxpr(layer)(x, w, b))
    native_jaxpr = str(jax.make_jaxpr(conv_transpose2d_lax)(x, jnp.zeros((5, 5, 3, 8)), b))
    assert "conv_general_dilated" in native_jaxpr and not native()


@pytest.mark.parametrize("k,h", [(5, 1), (5, 5), (6, 13), (4, 7)])
def test_native_conv_transpose_matches_scatter_definition_and_im2col_gradient(k, h):
    rng = np.random.default_rng(k * 10 + h)
    x = rng.standard_normal((2, h, h + 2, 3)).astype(np.float32)
    w = rng.standard_normal((k, k, 3, 5)).astype(np.float32)
    b = rng.standard_normal(5).astype(np.float32)
    got = np.asarray(conv_transpose2d_lax(jnp.asarray(x), jnp.asarray(w), jnp.asarray(b)))
    assert np.max(np.abs(got - reference_conv_transpose(x, w, b))) < 1e-4
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a)))  # noqa: E731
    g_native = jax.grad(loss(conv_transpose2d_lax), argnums=(0, 1, 2))(x, w, b)
    g_im2col = jax.grad(loss(conv_transpose2d), argnums=(0, 1, 2))(x, w, b)
    for a, c in zip(g_native, g_im2col):
        assert np.max(np.abs(np.asarray(a) - np.asarray(c))) < 1e-3 * (1 + np.abs(c).max())


@pytest.mark.parametrize("stride,h", [(2, 64), (2, 9), (1, 6)])
def test_native_conv2d_matches_im2col_values_and_gradients(stride, h):
    rng = np.random.default_rng(h + stride)
    x = rng.standard_normal((2, h, h, 3)).astype(np.float32)
    w = rng.standard_normal((4, 4, 3, 8)).astype(np.float32)
    b = rng.standard_normal(8).astype(np.float32)
    loss = lambda f: lambda *a: jnp.sum(jnp.sin(f(*a, stride)))  # noqa: E731
    assert np.max(np.abs(np.asarray(conv2d_lax(x, w, b, stride) - conv2d(x, w, b, stride)))) < 1e-4
    g_native = jax.grad(loss(conv2d_lax), argnums=(0, 1, 2))(x, w, b)
    g_im2col = jax.grad(loss(conv2d), argnums=(0, 1, 2))(x, w, b)
    for a, c in zip(g_native, g_im2col):
        assert np.max(np.abs(np.asarray(a) - np.asarray(c))) < 1e-3 * (1 + np.abs(c).max())
