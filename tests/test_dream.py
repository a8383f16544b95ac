import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import make_episodes
from jax.flatten_util import ravel_pytree

from wm_core.controller import Controller
from wm_core.dream import (
    dream_offroad_frac,
    dream_return,
    make_population_returns,
    perturb,
    sample_starts,
)
from wm_core.mdrnn import MDNRNN


def test_controller_action_ranges_and_size(key):
    ctrl = Controller(32, 256, key=key)
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    assert flat.shape == (867,)  # Ha's C
    big = Controller(4, 8, key=key)
    a = big(jnp.full(4, 50.0), jnp.full(8, -50.0))
    assert -1 <= float(a[0]) <= 1 and 0 <= float(a[1]) <= 1 and 0 <= float(a[2]) <= 1


def never_done(rnn):
    return eqx.tree_at(lambda m: m.head.bias, rnn, rnn.head.bias.at[-1].set(-10.0))


def test_dream_return_deterministic_finite_and_key_dependent(key):
    rnn = never_done(MDNRNN(4, 8, 2, key=key))
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    args = (jnp.zeros((3, 4)), jnp.zeros((3, 3)), jnp.ones(4))
    r1 = dream_return(ctrl, rnn, *args, key, 1.0, 20)
    r2 = dream_return(ctrl, rnn, *args, key, 1.0, 20)
    r3 = dream_return(ctrl, rnn, *args, jax.random.fold_in(key, 9), 1.5, 20)
    assert jnp.isfinite(r1) and r1 == r2 and r1 != r3


def test_done_head_ends_the_dream(key):
    rnn = MDNRNN(4, 8, 2, key=key)
    ctrl = Controller(4, 8, key=key)
    # done logit = +10, reward = +1 every step: only the first step pays
    bias = rnn.head.bias.at[-1].set(10.0).at[-2].set(1.0)
    weight = rnn.head.weight.at[-2:].set(0.0)
    rnn = eqx.tree_at(lambda m: (m.head.bias, m.head.weight), rnn, (bias, weight))
    r = dream_return(ctrl, rnn, jnp.zeros((2, 4)), jnp.zeros((2, 3)), jnp.zeros(4), key, 1.0, 50)
    assert abs(float(r) - 1.0) < 1e-5


def test_population_returns_shape_and_common_random_numbers(key):
    rnn = never_done(MDNRNN(4, 8, 2, key=key))
    ctrl = Controller(4, 8, key=key)
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    starts = sample_starts(data, 3, 5, np.random.default_rng(0))
    assert starts.z_warm.shape == (3, 5, 4) and starts.z0.shape == (3, 4)
    f = make_population_returns(ctrl, 1.25, 15)
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    pop = jnp.stack([flat, flat, flat + 0.5])
    r = f(rnn, pop, starts, key)
    assert r.shape == (3, 3)
    np.testing.assert_array_equal(r[0], r[1])  # same member, same dreams
    assert not np.array_equal(r[0], r[2])


def test_dream_dropout_gives_each_dream_its_own_world(key):
    rnn = never_done(MDNRNN(4, 16, 2, key=key))
    ctrl = Controller(4, 16, key=jax.random.fold_in(key, 1))
    args = (jnp.zeros((3, 4)), jnp.zeros((3, 3)), jnp.ones(4))
    plain = dream_return(ctrl, rnn, *args, key, 1.0, 20)
    assert plain == dream_return(ctrl, rnn, *args, key, 1.0, 20, 0.0)
    dropped = dream_return(ctrl, rnn, *args, key, 1.0, 20, 0.3)
    assert dropped == dream_return(ctrl, rnn, *args, key, 1.0, 20, 0.3)  # mask comes from key
    assert dropped != plain


def test_fresh_starts_begin_at_frame_zero_with_a_zero_state(key):
    rnn = never_done(MDNRNN(4, 8, 2, key=key))
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    z0 = jnp.ones(4)
    warm = (jnp.full((3, 4), 2.0), jnp.full((3, 3), 0.5))
    cold = dream_return(ctrl, rnn, jnp.zeros((0, 4)), jnp.zeros((0, 3)), z0, key, 1.0, 20)
    fresh = dream_return(ctrl, rnn, *warm, z0, key, 1.0, 20, fresh=jnp.array(True))
    warmed = dream_return(ctrl, rnn, *warm, z0, key, 1.0, 20, fresh=jnp.array(False))
    assert fresh == cold and warmed != cold
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    s = sample_starts(data, 8, 5, np.random.default_rng(0), reset_frac=0.25)
    assert s.fresh.tolist() == [True, True] + [False] * 6
    first_frames = data.mu[data.episode_starts]
    for z in np.asarray(s.z0[:2]):  # posterior samples around an episode's first frame
        assert np.abs(first_frames - z).max(axis=1).min() < 5 * np.exp(-1.0)
    means = sample_starts(data, 8, 5, np.random.default_rng(0), reset_frac=0.25, z_noise=0.0)
    np.testing.assert_array_equal(means.z_warm, s.z_warm)  # the same starts, without the noise
    for z in np.asarray(means.z0):  # each start is exactly a frame's posterior mean
        assert np.abs(data.mu - z).max(axis=1).min() == 0.0
    assert np.abs(np.asarray(means.z0) - np.asarray(s.z0)).max() > 0.1


def test_offroad_penalty_charges_each_alive_step_its_probability(key):
    rnn = never_done(MDNRNN(4, 8, 2, key=key))
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    args = (jnp.zeros((3, 4)), jnp.zeros((3, 3)), jnp.ones(4), key, 1.0, 20)
    plain = dream_return(ctrl, rnn, *args)
    w = jnp.zeros(4)
    sure_off = dream_return(ctrl, rnn, *args, probe=(w, jnp.array(30.0)), offroad_penalty=0.5)
    sure_on = dream_return(ctrl, rnn, *args, probe=(w, jnp.array(-30.0)), offroad_penalty=0.5)
    off_free = dream_return(ctrl, rnn, *args, probe=(w, jnp.array(30.0)), offroad_penalty=0.0)
    np.testing.assert_allclose(sure_off, plain - 0.5 * 20, atol=1e-4)  # 20 steps, P = 1
    np.testing.assert_allclose(sure_on, plain, atol=1e-4)
    assert off_free == plain
    f = make_population_returns(ctrl, 1.0, 20, offroad_penalty=0.5)
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    starts = sample_starts(data, 2, 3, np.random.default_rng(0))
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    with pytest.raises(ValueError, match="needs the off-road probe"):
        f(rnn, flat[None], starts, key)


def test_dream_offroad_frac_is_the_probes_mean_per_step(key):
    rnn = never_done(MDNRNN(4, 8, 2, key=key))
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    starts = sample_starts(data, 3, 3, np.random.default_rng(0), reset_frac=0.5)
    w = jnp.zeros(4)
    for b, expected in ((30.0, 1.0), (-30.0, 0.0), (0.0, 0.5)):
        frac = dream_offroad_frac(ctrl, rnn, starts, key, (w, jnp.array(b)), 1.0, 15)
        assert abs(frac - expected) < 1e-4


def test_dream_offroad_frac_is_what_the_charge_takes_from_the_same_dreams(key):
    """One dream per start gives what a charge of 1 per unit of P(off road) takes from the
    return of the same dreams (same keys), with a real probe and dreams the done head ends."""
    rnn = MDNRNN(4, 8, 2, key=key)
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    starts = sample_starts(data, 6, 3, np.random.default_rng(1), reset_frac=0.5)
    probe = (jax.random.normal(jax.random.fold_in(key, 2), (4,)), jnp.array(0.3))
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    plain = make_population_returns(ctrl, 1.25, 25, action_noise=0.1)
    charged = make_population_returns(ctrl, 1.25, 25, offroad_penalty=1.0, action_noise=0.1)
    taken = plain(rnn, flat[None], starts, key) - charged(rnn, flat[None], starts, key, probe)
    frac = dream_offroad_frac(ctrl, rnn, starts, key, probe, 1.25, 25, action_noise=0.1)
    assert 0.01 < frac < 0.99
    np.testing.assert_allclose(frac, float(taken.mean()) / 25, rtol=1e-5)


def test_memory_m_feeds_the_controller_while_the_other_m_dreams(key):
    """C reads ``memory``'s h; the world (z, reward, done) is ``rnn``'s alone."""
    rnn = never_done(MDNRNN(4, 8, 2, key=key))
    other = never_done(MDNRNN(4, 8, 2, key=jax.random.fold_in(key, 5)))
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    args = (jnp.ones((3, 4)), jnp.ones((3, 3)), jnp.ones(4), key, 1.0, 20)
    plain = dream_return(ctrl, rnn, *args)
    # its own M as memory is the plain dream, to the bit
    assert dream_return(ctrl, rnn, *args, memory=rnn) == plain
    # another memory changes C's actions, hence the dream
    assert dream_return(ctrl, rnn, *args, memory=other) != plain
    # a C blind to h cannot tell the memories apart
    blind = eqx.tree_at(lambda c: c.linear.weight, ctrl, ctrl.linear.weight.at[:, 4:].set(0.0))
    assert dream_return(blind, rnn, *args, memory=other) == dream_return(blind, rnn, *args)
    # and the world is rnn's: swapping which M dreams changes the return
    assert dream_return(ctrl, other, *args, memory=rnn) != dream_return(ctrl, rnn, *args)


def test_action_noise_stays_in_the_box_and_is_shared_by_all_members(key):
    a = jnp.array([0.9, 0.5, 0.05])
    big = jax.vmap(lambda k: perturb(a, 5.0, k))(jax.random.split(key, 256))
    assert float(big[:, 0].min()) == -1.0 and float(big[:, 0].max()) == 1.0
    assert float(big[:, 1:].min()) == 0.0 and float(big[:, 1:].max()) == 1.0
    small = jax.vmap(lambda k: perturb(a, 0.01, k))(jax.random.split(key, 256))
    assert 0.005 < float(jnp.abs(small[:, 0] - a[0]).mean()) < 0.02  # N(0, 0.01^2): E|x| = 0.008

    rnn = never_done(MDNRNN(4, 8, 2, key=key))
    ctrl = Controller(4, 8, key=jax.random.fold_in(key, 1))
    data = make_episodes(lengths=(30, 20), z_dim=4, frames=False)
    starts = sample_starts(data, 3, 3, np.random.default_rng(0))
    flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
    pop = jnp.stack([flat, flat, flat + 0.5])
    quiet = make_population_returns(ctrl, 1.0, 20)(rnn, pop, starts, key)
    zero = make_population_returns(ctrl, 1.0, 20, action_noise=0.0)(rnn, pop, starts, key)
    noisy = make_population_returns(ctrl, 1.0, 20, action_noise=0.3)(rnn, pop, starts, key)
    np.testing.assert_array_equal(zero, quiet)  # noise 0: the same dreams, key for key
    np.testing.assert_array_equal(noisy[0], noisy[1])  # the same member, the same noise
    assert np.abs(np.asarray(noisy - quiet)).max() > 1e-4
