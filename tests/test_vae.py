import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from wm_core.checkpoint import load_model, save_model
from wm_core.encode import encode_batch, encode_chunks, encode_frames, jit_native_convs
from wm_core.train import make_train_step
from wm_core.vae import VAE, to_float, vae_loss


def test_shapes_dtypes_and_paper_parameter_count(key):
    vae = VAE(32, key=key)
    n = sum(x.size for x in jax.tree.leaves(eqx.filter(vae, eqx.is_array)))
    assert n == 4_348_547  # Ha & Schmidhuber's V at z=32
    x = jnp.zeros((3, 64, 64, 3))
    mu, log_sigma = vae.encode(x)
    assert mu.shape == log_sigma.shape == (3, 32) and mu.dtype == jnp.float32
    out = vae.decode(mu)
    assert out.shape == (3, 64, 64, 3)
    assert float(out.min()) >= 0.0 and float(out.max()) <= 1.0


def test_loss_gradients_finite_and_kl_floor(key):
    vae = VAE(8, key=key)
    obs = jax.random.randint(key, (4, 64, 64, 3), 0, 256).astype(jnp.uint8)
    (loss, aux), grads = eqx.filter_value_and_grad(vae_loss, has_aux=True)(vae, obs, key, 0.5)
    assert jnp.isfinite(loss)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    # free bits: the loss never counts less than kl_tolerance * z_dim nats of KL per image
    assert float(loss) >= float(aux["recon"]) + 0.5 * 8 - 1e-3


def test_chunked_encoding_is_the_plain_encoder(key):
    """encode_frames runs V's native convolutions over 50-frame chunks under CONV_OPTIONS: the
    same values per frame as the training path's im2col encoder up to float32 rounding, the
    ragged last batch padded to the same shape, the frame order kept. Kernels and summation
    orders differ (6.7e-8 apart here), so the check is to 1e-6, far below any frame-to-frame
    difference. The agent's per-frame encode gives the same z as the dataset's."""
    from wm_core.agent import _encode_act
    from wm_core.controller import Controller

    vae = VAE(32, key=key)
    obs = np.random.default_rng(0).integers(0, 256, (230, 64, 64, 3), dtype=np.uint8)
    plain = eqx.filter_jit(lambda m, x: m.encode(to_float(x)))(vae, jnp.asarray(obs))
    mu, log_sigma = encode_frames(vae, obs, batch=100, chunk=50)  # 100, 100, then 30 padded
    assert mu.shape == log_sigma.shape == (230, 32)
    np.testing.assert_allclose(mu, np.asarray(plain[0]), rtol=0, atol=1e-6)
    np.testing.assert_allclose(log_sigma, np.asarray(plain[1]), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of chunk"):
        encode_batch(vae, jnp.asarray(obs[:70]), 50)
    ctrl = Controller(32, 8, key=key)
    for t in (0, 229):
        z, _ = _encode_act(vae, ctrl, jnp.asarray(obs[t]), jnp.zeros(8))
        np.testing.assert_allclose(np.asarray(z), mu[t], rtol=0, atol=1e-6)


def test_an_option_this_xla_lacks_falls_back_to_plain_jit_with_one_warning(key):
    """CONV_OPTIONS is an experimental XLA option: where a jaxlib rejects it, encoding still
    works (the same values, slower) and says so once; other errors are not swallowed."""
    vae = VAE(8, key=key)
    obs = jnp.asarray(np.random.default_rng(1).integers(0, 256, (50, 64, 64, 3), dtype=np.uint8))
    bogus = {"xla_cpu_experimental_ynn_fusion_type": "NOT_A_FUSION_TYPE"}
    enc = jit_native_convs(encode_chunks, bogus)
    with pytest.warns(UserWarning, match="rejects"):
        mu, _ = enc(vae, obs, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning
        mu2, _ = enc(vae, obs, 50)
    ref, _ = encode_batch(vae, obs, 50)
    np.testing.assert_array_equal(mu, mu2)
    np.testing.assert_allclose(mu, ref, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="multiple of chunk"):
        enc(vae, obs[:30], 50)


def test_train_step_traces_once_and_reduces_loss(key):
    vae = VAE(8, key=key)
    optim = optax.adam(1e-3)
    step = make_train_step(lambda m, b, k: vae_loss(m, b, k, 0.5), optim)
    opt_state = optim.init(eqx.filter(vae, eqx.is_array))
    obs = jnp.full((8, 64, 64, 3), 40, jnp.uint8)  # a flat dark frame is quick to learn
    losses = []
    for _ in range(5):
        vae, opt_state, m = step(vae, opt_state, obs, key)
        losses.append(float(m["loss"]))
    assert eqx.debug.get_num_traces(step) == 1
    assert losses[-1] < losses[0]


def test_save_load_round_trip(tmp_path, key):
    vae = VAE(8, key=key)
    save_model(tmp_path / "v.eqx", vae, "vae", {"z_dim": 8})
    back, header = load_model(tmp_path / "v.eqx", "vae", VAE)
    assert header["hparams"] == {"z_dim": 8}
    assert eqx.tree_equal(vae, back)
    x = np.random.default_rng(0).random((2, 64, 64, 3)).astype(np.float32)
    np.testing.assert_array_equal(vae.encode(x)[0], back.encode(x)[0])


def test_dream_strip_rows_real_recon_dream(key):
    from wm_core.mdrnn import MDNRNN
    from wm_core.strip import dream_strip

    vae = VAE(4, key=key)
    rnn = MDNRNN(4, 8, 2, key=key)
    rng = np.random.default_rng(0)
    obs = rng.integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    actions = rng.uniform(-1, 1, (30, 3)).astype(np.float32)
    img = dream_strip(vae, rnn, obs, actions, 5, 3, 4, 1.25, key)
    assert img.shape == (3 * 64, 3 * 64, 3) and img.dtype == np.uint8
    np.testing.assert_array_equal(img[:64, 64:128], obs[9])  # row 1: the real frames
    # the dream starts from the real frame's z: its first panel is the reconstruction
    np.testing.assert_array_equal(img[128:, :64], img[64:128, :64])
    assert not np.array_equal(img[128:, 64:128], img[64:128, 64:128])  # then M takes over
    with pytest.raises(ValueError, match="strip needs frames"):
        dream_strip(vae, rnn, obs, actions, 5, 8, 4, 1.25, key)
