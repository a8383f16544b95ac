import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from wm_core.checkpoint import load_model, save_model
from wm_core.controller import Controller


def test_ensemble_averages_its_members_actions(key):
    members = [Controller(4, 8, key=jax.random.fold_in(key, i)) for i in range(3)]
    ens = Controller.ensemble(members)
    z, h = jax.random.normal(key, (4,)), jax.random.normal(jax.random.fold_in(key, 9), (8,))
    want = np.mean([np.asarray(m(z, h)) for m in members], axis=0)
    np.testing.assert_allclose(np.asarray(ens(z, h)), want, atol=1e-6)
    assert ens.members == 3 and ens.linear.weight.shape == (3, 3, 12)
    a = np.asarray(ens(z, h))  # averaged actions stay in the action box
    assert -1 <= a[0] <= 1 and 0 <= a[1] <= 1 and 0 <= a[2] <= 1
    assert Controller.ensemble(members[:1]) is members[0]


def test_ensemble_round_trips_through_a_checkpoint(tmp_path, key):
    ens = Controller.ensemble([Controller(4, 8, key=jax.random.fold_in(key, i)) for i in range(2)])
    save_model(tmp_path / "c.eqx", ens, "controller", {"z_dim": 4, "hidden": 8, "members": 2})
    back, _ = load_model(tmp_path / "c.eqx", "controller", Controller)
    assert back.members == 2 and eqx.tree_equal(ens, back)


def test_single_controller_is_ha_s_squashing(key):
    ctrl = Controller(4, 8, key=key)
    x = jnp.ones(12)
    steer, gas, brake = jnp.tanh(ctrl.linear(x))
    want = [steer, (gas + 1) / 2, jnp.clip(brake, 0, 1)]
    np.testing.assert_allclose(np.asarray(ctrl(x[:4], x[4:])), np.asarray(want), atol=1e-7)
