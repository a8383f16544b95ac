"""weight_grad: a^T g in either contraction order, the same values as the textbook product."""

import jax
import numpy as np
import pytest

from wm_core.matmul import weight_grad


@pytest.mark.parametrize("k,n", [(1024, 35), (1024, 256), (64, 128), (12, 12)])
def test_weight_grad_is_a_transpose_times_g(k, n):
    """Both branches (K > 2N takes the swapped order behind a barrier) give a^T g, shape (K, N),
    under jit as the backward passes call it."""
    a = jax.random.normal(jax.random.key(k), (300, k))
    g = jax.random.normal(jax.random.key(n + 1), (300, n))
    got = jax.jit(weight_grad)(a, g)
    want = np.asarray(a, np.float64).T @ np.asarray(g, np.float64)
    assert got.shape == (k, n)
    assert np.max(np.abs(np.asarray(got) - want)) < 1e-4 * (1 + np.abs(want).max())
