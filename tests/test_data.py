import json

import numpy as np
import pytest
from conftest import make_episodes

from wm_core.data import DataError, concat, empty, flip, from_episodes, read_dataset, write_dataset


def test_zarr_round_trip(tmp_path, episodes):
    write_dataset(tmp_path / "d.zarr", episodes)
    back = read_dataset(tmp_path / "d.zarr")
    for name in ("obs", "action", "reward", "terminated", "truncated", "episode_ends", "seeds"):
        np.testing.assert_array_equal(getattr(back, name), getattr(episodes, name))
        assert getattr(back, name).dtype == getattr(episodes, name).dtype
    assert back.attrs["policy"] == "test" and back.attrs["schema_version"] == 1
    assert list(back.lengths) == [30, 12, 45]
    assert back.off_road is None  # frames datasets carry no labels


def test_latents_off_road_labels_round_trip_and_concatenate(tmp_path):
    a, b = make_episodes((5, 7), z_dim=3, frames=False), make_episodes((4,), z_dim=3, frames=False)
    a.off_road, b.off_road = np.arange(12) % 2 == 0, np.ones(4, bool)
    write_dataset(tmp_path / "a.zarr", a)
    back = read_dataset(tmp_path / "a.zarr")
    np.testing.assert_array_equal(back.off_road, a.off_road)
    np.testing.assert_array_equal(concat([back, b]).off_road, np.r_[a.off_road, b.off_road])
    a.off_road = a.off_road[:5]
    with pytest.raises(DataError, match="'off_road' is bool"):
        write_dataset(tmp_path / "bad.zarr", a)


def test_flip_negates_steering_only_and_mirrors_frames(episodes):
    f = flip(episodes)
    np.testing.assert_array_equal(f.action[:, 0], -episodes.action[:, 0])
    np.testing.assert_array_equal(f.action[:, 1:], episodes.action[:, 1:])
    np.testing.assert_array_equal(f.obs[:, :, 0], episodes.obs[:, :, -1])
    np.testing.assert_array_equal(f.reward, episodes.reward)
    np.testing.assert_array_equal(f.terminated, episodes.terminated)
    np.testing.assert_array_equal(flip(f).obs, episodes.obs)


def test_expert_labels_round_trip_mirror_and_concatenate(tmp_path, episodes):
    """expert_action (the plain expert's action on each frame) is kept, mirrored like the
    driven action, and survives concatenation with an empty source; data without labels
    (collected before session 17) concatenates to no labels rather than to made-up ones."""
    labels = np.random.default_rng(0).uniform(-1, 1, (episodes.n_frames, 3)).astype(np.float32)
    episodes.expert_action = labels
    write_dataset(tmp_path / "d.zarr", episodes)
    back = read_dataset(tmp_path / "d.zarr")
    np.testing.assert_array_equal(back.expert_action, labels)
    f = flip(back)
    np.testing.assert_array_equal(f.expert_action[:, 0], -labels[:, 0])
    np.testing.assert_array_equal(f.expert_action[:, 1:], labels[:, 1:])
    both = concat([back, empty({}), f])
    np.testing.assert_array_equal(both.expert_action, np.r_[labels, f.expert_action])
    unlabelled = make_episodes((4,), frames=True)
    assert concat([back, unlabelled]).expert_action is None
    episodes.expert_action = labels.copy()
    episodes.expert_action[3, 1] = np.nan
    with pytest.raises(DataError, match="'expert_action' has non-finite values"):
        write_dataset(tmp_path / "nan.zarr", episodes)
    episodes.expert_action = labels[:, :2].copy()
    with pytest.raises(DataError, match="'expert_action' is float32\\[87, 2\\]"):
        write_dataset(tmp_path / "bad.zarr", episodes)


def test_concat_shifts_episode_index(episodes):
    both = concat([episodes, episodes])
    assert list(both.lengths) == [30, 12, 45] * 2
    assert both.n_frames == 2 * episodes.n_frames


def test_an_empty_dataset_round_trips_and_concatenates_to_nothing(tmp_path, episodes):
    """A source switched off (0 heuristic episodes, no mirroring) is an empty dataset."""
    assert from_episodes([], {"policy": "heuristic"}).n_frames == 0
    write_dataset(tmp_path / "e.zarr", flip(empty({"policy": "none"})))
    none = read_dataset(tmp_path / "e.zarr")
    assert none.obs.shape == (0, 64, 64, 3) and len(none.episode_starts) == 0
    both = concat([none, episodes, none])
    for name in ("obs", "action", "episode_ends", "seeds"):
        np.testing.assert_array_equal(getattr(both, name), getattr(episodes, name))
    bad = empty({})
    bad.episode_ends = np.array([1], np.int64)  # an episode with no frames to index
    with pytest.raises(DataError, match="episode_ends"):
        write_dataset(tmp_path / "bad.zarr", bad)


def test_missing_array_is_named(tmp_path, episodes):
    import shutil

    write_dataset(tmp_path / "d.zarr", episodes)
    shutil.rmtree(tmp_path / "d.zarr" / "reward")
    with pytest.raises(DataError, match="missing array 'reward'"):
        read_dataset(tmp_path / "d.zarr")


def test_wrong_dtype_and_bad_index_are_refused(tmp_path):
    bad = make_episodes()
    bad.action = bad.action.astype(np.float64)
    with pytest.raises(DataError, match="'action' is float64"):
        write_dataset(tmp_path / "d.zarr", bad)
    bad = make_episodes()
    bad.episode_ends = bad.episode_ends - 1  # does not end at N
    with pytest.raises(DataError, match="episode_ends"):
        write_dataset(tmp_path / "d.zarr", bad)
    assert not (tmp_path / "d.zarr").exists()  # nothing half-written


def test_truncated_chunk_is_reported(tmp_path, episodes):
    write_dataset(tmp_path / "d.zarr", episodes)
    chunk = next((tmp_path / "d.zarr" / "obs").rglob("c/*/*/*/*"))
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(DataError, match="unreadable"):
        read_dataset(tmp_path / "d.zarr")


def test_schema_version_mismatch(tmp_path, episodes):
    write_dataset(tmp_path / "d.zarr", episodes)
    meta_path = tmp_path / "d.zarr" / "zarr.json"
    meta = json.loads(meta_path.read_text())
    meta["attributes"]["schema_version"] = 99
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(DataError, match="schema_version 99"):
        read_dataset(tmp_path / "d.zarr")
