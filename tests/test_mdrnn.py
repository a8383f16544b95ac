import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from conftest import make_episodes

from wm_core.checkpoint import load_model, save_model
from wm_core.config import RNNConfig
from wm_core.mdrnn import MDNRNN, asymmetric_sq_error, mdn_logprob, sample_next
from wm_core.train import SeqData, fit_mdrnn, mdrnn_loss, sample_windows

CFG = RNNConfig(
    hidden=16,
    mixtures=3,
    mixture="factored",
    seq_len=10,
    batch_size=4,
    lr=1e-3,
    grad_clip=1.0,
    steps=3,
    round_steps=2,
    round_scratch=False,
    reward_optimism_weight=5.0,
    done_pos_weight=10.0,
    dropout=0.0,
    z_noise=1.0,
    judges=0,
    log_every=1,
    snapshot_every=0,
)


def test_shapes_and_paper_parameter_count(key):
    rnn = MDNRNN(32, 256, 5, key=key)
    n = sum(x.size for x in jax.tree.leaves(eqx.filter(rnn, eqx.is_array)))
    assert n == 422_368 + 2 * 257  # Ha's M plus our reward and done heads
    logits, mu, log_sigma, r, d = rnn.unroll(jnp.zeros((7, 32)), jnp.zeros((7, 3)))
    assert logits.shape == mu.shape == log_sigma.shape == (7, 32, 5)
    assert r.shape == d.shape == (7,)


def test_asymmetric_loss_punishes_optimism():
    target = jnp.array(0.0)
    over, under = (
        asymmetric_sq_error(jnp.array(1.0), target, 5.0),
        asymmetric_sq_error(jnp.array(-1.0), target, 5.0),
    )
    assert float(over) == 5.0 and float(under) == 1.0


def test_temperature_follows_ha(key):
    """logits / tau picks components; sigma * sqrt(tau) spreads the draw."""
    logits = jnp.log(jnp.array([[0.7, 0.3]]))
    mu = jnp.array([[-5.0, 5.0]])
    log_sigma = jnp.log(jnp.array([[0.5, 0.5]]))
    keys = jax.random.split(key, 4000)

    def draws(tau):
        return np.asarray(jax.vmap(lambda k: sample_next(logits, mu, log_sigma, tau, k))(keys))[
            :, 0
        ]

    cold, warm = draws(0.05), draws(4.0)
    assert np.mean(cold < 0) > 0.99  # tau -> 0: the most likely component only
    p_warm = 0.7**0.25 / (0.7**0.25 + 0.3**0.25)  # softmax(log pi / 4)
    assert abs(np.mean(warm < 0) - p_warm) < 0.03
    spread = np.std(warm[warm < 0])
    assert abs(spread - 0.5 * np.sqrt(4.0)) < 0.1


def test_logprob_is_stable_for_far_targets():
    logits = jnp.zeros((4, 5))
    mu = jnp.zeros((4, 5))
    log_sigma = jnp.full((4, 5), -7.0)
    lp = mdn_logprob(logits, mu, log_sigma, jnp.full((4,), 1e3))
    assert jnp.isfinite(lp)


def test_windows_cover_ends_and_never_truncate_to_shortest(key):
    data = make_episodes(lengths=(30, 5, 45), z_dim=4, frames=False)
    seq = SeqData.from_episodes(data)
    b = sample_windows(seq, 512, 10, key)
    valid = np.asarray(b["valid"])
    assert valid.shape == (512, 10)
    # windows of the 45-frame episode are full length although the shortest has 5 frames
    assert (valid.sum(1) == 10).any() and (valid.sum(1) < 10).any()
    # the terminal frame of episode 0 is inside some window, with its done target
    assert float(b["done"].max()) == 1.0
    # has_next is off on the last frame of each episode (no z_{t+1} to predict)
    assert np.all(np.asarray(b["has_next"]) <= valid)


def test_z_noise_scales_the_posterior_noise_on_m_inputs(key):
    data = make_episodes(lengths=(30, 12), z_dim=4, frames=False)
    seq = SeqData.from_episodes(data)
    full, half, means = (sample_windows(seq, 8, 10, key, z_noise=s) for s in (1.0, 0.5, 0.0))
    # the same windows and draws: the noise scales linearly, and 0 trains on the posterior means
    noise = np.asarray(full["z"] - means["z"])
    assert np.abs(noise).max() > 0.1
    np.testing.assert_allclose(np.asarray(half["z"] - means["z"]), 0.5 * noise, atol=1e-6)
    z = np.asarray(means["z"]).reshape(-1, 4)
    assert np.abs(z[:, None] - data.mu[None]).max(axis=2).min(axis=1).max() == 0.0
    np.testing.assert_array_equal(means["z_next"][:, :-1], means["z"][:, 1:])


def test_loss_finite_gradients_and_fit(key):
    data = make_episodes(lengths=(30, 12), z_dim=4, frames=False)
    rnn = MDNRNN(4, CFG.hidden, CFG.mixtures, key=key)
    batch = sample_windows(SeqData.from_episodes(data), 4, 10, key)
    (loss, aux), grads = eqx.filter_value_and_grad(mdrnn_loss, has_aux=True)(rnn, batch, CFG, key)
    assert jnp.isfinite(loss) and set(aux) == {"nll", "reward_loss", "done_loss"}
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    model, curve = fit_mdrnn(CFG, data, 3, key=key)
    assert len(curve) == 3 and all(np.isfinite(r["loss"]) for r in curve)


def test_save_load_round_trip(tmp_path, key):
    rnn = MDNRNN(4, 16, 3, key=key)
    save_model(tmp_path / "m.eqx", rnn, "mdrnn", {"z_dim": 4, "hidden": 16, "mixtures": 3})
    back, _ = load_model(tmp_path / "m.eqx", "mdrnn", MDNRNN)
    assert eqx.tree_equal(rnn, back)


def test_step_and_heads_are_the_textbook_cell_and_linear_head(key):
    """step/heads are written row-major for speed; they must compute eqx.nn.LSTMCell and
    eqx.nn.Linear, alone and under vmap (the dream's batch of rollouts)."""
    rnn = MDNRNN(32, 64, 5, key=key)
    k1, k2, k3, k4 = jax.random.split(jax.random.key(7), 4)
    z, a = jax.random.normal(k1, (12, 32)), jax.random.uniform(k2, (12, 3))
    h, c = jax.random.normal(k3, (12, 64)), jax.random.normal(k4, (12, 64))

    def ours(z, a, h, c):
        h2, c2 = rnn.step(z, a, (h, c))
        return h2, c2, jnp.concatenate([x.ravel() for x in rnn.heads(h2)])

    def textbook(z, a, h, c):
        h2, c2 = rnn.cell(jnp.concatenate([z, a]), (h, c))
        return h2, c2, jnp.concatenate([x.ravel() for x in rnn._split_heads(rnn.head(h2))])

    for got, want in (
        (jax.vmap(ours)(z, a, h, c), jax.vmap(textbook)(z, a, h, c)),
        (ours(z[0], a[0], h[0], c[0]), textbook(z[0], a[0], h[0], c[0])),
    ):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-5, atol=1e-5)


def test_dropout_masks_are_inverted_and_change_the_step(key):
    from wm_core.mdrnn import dropout_masks

    rnn = MDNRNN(8, 4000, 2, key=key)
    assert dropout_masks(rnn, 0.0, key) is None
    m_in, m_h = dropout_masks(rnn, 0.25, key)
    assert m_in.shape == (11,) and m_h.shape == (4000,)
    np.testing.assert_allclose(np.unique(np.asarray(m_h)), [0.0, 1 / 0.75], rtol=1e-6)
    assert abs(float(m_h.mean()) - 1.0) < 0.05  # inverted: the expected mask is 1
    small = MDNRNN(8, 16, 2, key=key)
    carry = (jnp.ones(16), jnp.ones(16))
    z, a = jnp.ones(8), jnp.ones(3)
    masks = dropout_masks(small, 0.5, key)
    assert not jnp.allclose(small.step(z, a, carry)[0], small.step(z, a, carry, masks)[0])


def test_training_dropout_depends_on_the_key_only_when_on(key):
    import dataclasses

    data = make_episodes(lengths=(30, 12), z_dim=4, frames=False)
    rnn = MDNRNN(4, CFG.hidden, CFG.mixtures, key=key)
    batch = sample_windows(SeqData.from_episodes(data), 4, 10, key)
    k2 = jax.random.fold_in(key, 1)
    assert mdrnn_loss(rnn, batch, CFG, key)[0] == mdrnn_loss(rnn, batch, CFG, k2)[0]
    drop = dataclasses.replace(CFG, dropout=0.3)
    assert mdrnn_loss(rnn, batch, drop, key)[0] != mdrnn_loss(rnn, batch, drop, k2)[0]


def test_joint_mixture_shares_one_component_across_dimensions(key):
    """joint=True: logits (1, K); its log-likelihood is log sum_k pi_k prod_d N(z_d), over z,
    and a sample takes one component for every dimension, at any temperature."""
    rnn = MDNRNN(4, 16, 3, joint=True, key=key)
    logits, mu, log_sigma, r, d = rnn.unroll(jnp.zeros((7, 4)), jnp.zeros((7, 3)))
    assert logits.shape == (7, 1, 3) and mu.shape == log_sigma.shape == (7, 4, 3)
    assert rnn.head.out_features == 3 + 2 * 4 * 3 + 2
    lg, m, ls = logits[0], mu[0], log_sigma[0]
    z = jnp.array([0.3, -1.0, 2.0, 0.1])
    log_n = jax.scipy.stats.norm.logpdf(z[:, None], m, jnp.exp(ls)).sum(0)  # (K,)
    want = jax.nn.logsumexp(jax.nn.log_softmax(lg[0]) + log_n) / 4
    assert abs(float(mdn_logprob(lg, m, ls, z)) - float(want)) < 1e-5
    # far-apart components with no spread: a draw must equal one component's means exactly
    means = jnp.array([[-10.0, 0.0, 10.0]] * 4) * jnp.arange(1, 5)[:, None]
    draws = jax.vmap(
        lambda k: sample_next(jnp.zeros((1, 3)), means, jnp.full((4, 3), -7.0), 1.5, k)
    )(jax.random.split(key, 200))
    comp = np.asarray(jnp.round(draws / (10.0 * jnp.arange(1, 5)))).astype(int)  # -1, 0, 1
    assert (comp == comp[:, :1]).all() and len(np.unique(comp[:, 0])) == 3
    # the factored form, same draws: dimensions pick their components independently
    fact = jax.vmap(
        lambda k: sample_next(jnp.zeros((4, 3)), means, jnp.full((4, 3), -7.0), 1.5, k)
    )(jax.random.split(key, 200))
    fcomp = np.asarray(jnp.round(fact / (10.0 * jnp.arange(1, 5)))).astype(int)
    assert (fcomp != fcomp[:, :1]).any()


def test_joint_mixture_trains_and_round_trips(tmp_path, key):
    data = make_episodes(lengths=(30, 12), z_dim=4, frames=False)
    init = MDNRNN(4, CFG.hidden, CFG.mixtures, joint=True, key=key)
    model, curve = fit_mdrnn(CFG, data, 3, key=key, init=init)
    assert model.joint and all(np.isfinite(r["loss"]) for r in curve)
    assert curve[-1]["loss"] < curve[0]["loss"]
    save_model(tmp_path / "m.eqx", model, "mdrnn", model.hparams)
    back, header = load_model(tmp_path / "m.eqx", "mdrnn", MDNRNN)
    assert header["hparams"]["joint"] is True and eqx.tree_equal(model, back)
    factored = MDNRNN(4, 16, 3, key=key)
    assert "joint" not in factored.hparams  # factored checkpoints keep their old header


def _mdn_logprob_autodiff(logits, mu, log_sigma, z_next):
    """The textbook log-likelihood, for autodiff: what mdn_logprob's closed-form gradient
    must match."""
    log_n = jax.scipy.stats.norm.logpdf(z_next[:, None], mu, jnp.exp(log_sigma))
    log_n = log_n.reshape(logits.shape[0], -1, log_n.shape[-1]).sum(1)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits) + log_n, axis=-1).sum() / mu.shape[0]


def test_mdn_logprob_gradient_matches_autodiff_of_the_textbook_form(key):
    """mdn_logprob's hand-written gradient (logits, mu, log_sigma, z) equals autodiff of the
    plain formula, factored and joint, with components near and far from z_next."""
    weights = jnp.linspace(-1.0, 2.0, 32)  # a cotangent that is not all ones

    def total(f):
        return lambda *a: (jax.vmap(f)(*a) * weights).sum()

    for groups in (6, 1):
        k = jax.random.split(jax.random.fold_in(key, groups), 4)
        logits = 2.0 * jax.random.normal(k[0], (32, groups, 5))
        mu = 1.5 * jax.random.normal(k[1], (32, 6, 5))
        log_sigma = jax.random.uniform(k[2], (32, 6, 5), minval=-3.0, maxval=1.0)
        z = 2.0 * jax.random.normal(k[3], (32, 6))
        got = jax.grad(total(mdn_logprob), argnums=(0, 1, 2, 3))(logits, mu, log_sigma, z)
        want = jax.grad(total(_mdn_logprob_autodiff), argnums=(0, 1, 2, 3))(
            logits, mu, log_sigma, z
        )
        for g, w in zip(got, want):
            assert g.shape == w.shape
            np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
        value = jax.vmap(mdn_logprob)(logits, mu, log_sigma, z)
        np.testing.assert_allclose(
            value, jax.vmap(_mdn_logprob_autodiff)(logits, mu, log_sigma, z), rtol=1e-5, atol=1e-6
        )
