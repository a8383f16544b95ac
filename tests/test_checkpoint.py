import equinox as eqx
import pytest

from wm_core.checkpoint import CheckpointError, load_model, save_model
from wm_core.controller import Controller
from wm_core.mdrnn import MDNRNN


def test_controller_round_trip_keeps_info(tmp_path, key):
    ctrl = Controller(4, 8, key=key)
    save_model(
        tmp_path / "c.eqx", ctrl, "controller", {"z_dim": 4, "hidden": 8}, {"dream_return": 1.5}
    )
    back, header = load_model(tmp_path / "c.eqx", "controller", Controller)
    assert eqx.tree_equal(ctrl, back)
    assert header["info"]["dream_return"] == 1.5


def test_wrong_kind_version_and_truncation_are_refused(tmp_path, key):
    path = tmp_path / "c.eqx"
    save_model(path, Controller(4, 8, key=key), "controller", {"z_dim": 4, "hidden": 8})
    with pytest.raises(CheckpointError, match="holds a controller, expected a mdrnn"):
        load_model(path, "mdrnn", MDNRNN)
    raw = path.read_bytes()
    path.write_bytes(raw[:-20])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_model(path, "controller", Controller)
    path.write_bytes(raw.replace(b'"version": 1', b'"version": 7', 1))
    with pytest.raises(CheckpointError, match="v7, expected wm-eqx v1"):
        load_model(path, "controller", Controller)
    path.write_bytes(b"\x80\x04pickle")
    with pytest.raises(CheckpointError, match="bad header"):
        load_model(path, "controller", Controller)
