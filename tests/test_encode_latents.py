"""encode_latents --pool: a round's latents are the earlier rounds' episodes, then its own."""

from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import make_episodes

from stages import encode_latents
from wm_core.checkpoint import save_model
from wm_core.data import read_dataset, write_dataset
from wm_core.vae import VAE

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WM_PARAMS", str(ROOT / "tests" / "tiny_params.yaml"))
    save_model("v.eqx", VAE(32, key=jax.random.key(0)), "vae", {"z_dim": 32})
    for name, lengths, seed in (("d0", (6, 4), 0), ("d1", (5,), 1)):
        data = make_episodes(lengths=lengths, seed=seed)
        data.attrs["episode_policy"] = [f"{name}/{i}" for i in range(len(lengths))]
        write_dataset(f"{name}.zarr", data)
    return tmp_path


def test_pool_puts_the_earlier_latents_first_unchanged(workdir):
    encode_latents.main(["v.eqx", "r0.zarr", "d0.zarr"])
    encode_latents.main(["v.eqx", "new.zarr", "d1.zarr"])
    encode_latents.main(["v.eqx", "r1.zarr", "d1.zarr", "--pool", "r0.zarr"])
    r0, new, r1 = (read_dataset(f"{n}.zarr") for n in ("r0", "new", "r1"))
    np.testing.assert_array_equal(r1.mu, np.concatenate([r0.mu, new.mu]))
    np.testing.assert_array_equal(r1.log_sigma, np.concatenate([r0.log_sigma, new.log_sigma]))
    np.testing.assert_array_equal(r1.off_road, np.concatenate([r0.off_road, new.off_road]))
    np.testing.assert_array_equal(r1.action, np.concatenate([r0.action, new.action]))
    assert r1.episode_ends.tolist() == [6, 10, 15] and r1.obs is None
    assert r1.attrs["episode_policy"] == ["d0/0", "d0/1", "d1/0"]
    assert r1.attrs["sources"] == ["d0.zarr", "d1.zarr"]


def test_a_pool_that_is_not_latents_is_refused_before_anything_is_written(workdir, capsys):
    with pytest.raises(SystemExit):
        encode_latents.main(["v.eqx", "r1.zarr", "d1.zarr", "--pool", "d0.zarr"])
    assert "--pool d0.zarr: no mu, but this V encodes z of size 32" in capsys.readouterr().err
    assert not Path("r1.zarr").exists()
