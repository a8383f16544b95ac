"""Episode datasets as Zarr v3 groups: one time axis, an episode index, provenance in attrs.

Schema (version 1) of a frames dataset, all arrays sharing the time axis N:

    obs          (N, 64, 64, 3) uint8    frame seen before action t (HUD cropped, resized)
    action       (N, 3)         float32  steer [-1, 1], gas [0, 1], brake [0, 1]
    reward       (N,)           float32  reward received for action t
    terminated   (N,)           bool     lap finished or left the playfield after action t
    truncated    (N,)           bool     hit the step cap after action t
    episode_ends (E,)           int64    cumulative ends: episode i is [ends[i-1], ends[i])
    seeds        (E,)           int64    track seed of each episode

A latents dataset has ``mu`` and ``log_sigma`` (N, z) float32 instead of ``obs``, and
``off_road`` (N,) bool: whether frame t shows the car off the road (wm_core/road.py).
Chunks run along time only (1000 frames, ~0.9 MB zstd) so DVC hashes a few hundred files,
not one per frame (../shared/DVC-NOTES.md §3.2).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from jaxtyping import Bool, Float, Int, UInt8

from wm_core.errors import DataError  # noqa: F401  (re-exported)

SCHEMA_VERSION = 1
FRAME_SHAPE = (64, 64, 3)
OBS_CHUNK = 1000
FLAT_CHUNK = 65536
STEP_KEYS = ("action", "reward", "terminated", "truncated")


@dataclass
class Episodes:
    """Ragged episodes concatenated on one time axis (in memory)."""

    action: Float[np.ndarray, "N 3"]
    reward: Float[np.ndarray, " N"]
    terminated: Bool[np.ndarray, " N"]
    truncated: Bool[np.ndarray, " N"]
    episode_ends: Int[np.ndarray, " E"]
    seeds: Int[np.ndarray, " E"]
    obs: UInt8[np.ndarray, "N 64 64 3"] | None = None
    mu: Float[np.ndarray, "N z"] | None = None
    log_sigma: Float[np.ndarray, "N z"] | None = None
    off_road: Bool[np.ndarray, " N"] | None = None
    # the plain heuristic expert's action on each frame, whoever drove (wm_core/rollout.py);
    # None in datasets collected before session 17: the clone then fits the driven action
    expert_action: Float[np.ndarray, "N 3"] | None = None
    attrs: dict = field(default_factory=dict)

    @property
    def n_frames(self) -> int:
        return int(self.reward.shape[0])

    @property
    def episode_starts(self) -> Int[np.ndarray, " E"]:
        return np.concatenate([[0], self.episode_ends])[:-1].astype(np.int64)

    @property
    def lengths(self) -> Int[np.ndarray, " E"]:
        return np.diff(np.concatenate([[0], self.episode_ends])).astype(np.int64)

    def episode_returns(self) -> Float[np.ndarray, " E"]:
        if not len(self.episode_ends):
            return np.zeros(0)
        return np.add.reduceat(self.reward.astype(np.float64), self.episode_starts)


def concat(parts: list[Episodes], attrs: dict | None = None) -> Episodes:
    """Concatenate datasets on the time axis (episode index shifted accordingly)."""
    offsets = np.cumsum([0] + [p.n_frames for p in parts[:-1]])

    def cat(name):
        arrays = [getattr(p, name) for p in parts]
        return None if any(a is None for a in arrays) else np.concatenate(arrays)

    return Episodes(
        action=cat("action"),
        reward=cat("reward"),
        terminated=cat("terminated"),
        truncated=cat("truncated"),
        seeds=cat("seeds"),
        obs=cat("obs"),
        mu=cat("mu"),
        log_sigma=cat("log_sigma"),
        off_road=cat("off_road"),
        expert_action=cat("expert_action"),
        episode_ends=np.concatenate([p.episode_ends + o for p, o in zip(parts, offsets)]),
        attrs=attrs or {},
    )


def from_episodes(episodes: list[dict], attrs: dict) -> Episodes:
    """Build a dataset from per-episode dicts with keys obs/action/reward/... and seed.

    No episodes give an empty dataset (a data-mix ablation that switches a source off keeps
    the DAG's shape: every stage still has its inputs).
    """
    if not episodes:
        return empty(attrs)
    cat = lambda k: np.concatenate([e[k] for e in episodes])  # noqa: E731
    labelled = all("expert_action" in e for e in episodes)
    return Episodes(
        obs=cat("obs").astype(np.uint8),
        action=cat("action").astype(np.float32),
        reward=cat("reward").astype(np.float32),
        terminated=cat("terminated").astype(bool),
        truncated=cat("truncated").astype(bool),
        episode_ends=np.cumsum([len(e["reward"]) for e in episodes]).astype(np.int64),
        seeds=np.array([e["seed"] for e in episodes], np.int64),
        expert_action=cat("expert_action").astype(np.float32) if labelled else None,
        attrs=attrs,
    )


def empty(attrs: dict) -> Episodes:
    """A frames dataset with no episodes."""
    return Episodes(
        obs=np.zeros((0, *FRAME_SHAPE), np.uint8),
        action=np.zeros((0, 3), np.float32),
        reward=np.zeros(0, np.float32),
        terminated=np.zeros(0, bool),
        truncated=np.zeros(0, bool),
        episode_ends=np.zeros(0, np.int64),
        seeds=np.zeros(0, np.int64),
        expert_action=np.zeros((0, 3), np.float32),  # concatenates with labelled datasets
        attrs=attrs,
    )


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary sibling path; rename it onto ``path`` only if the block succeeds.

    A stage killed mid-write leaves a ``.tmp-*`` sibling, never something that looks complete.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
        os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_dataset(path: str | os.PathLike, data: Episodes) -> None:
    """Write ``data`` as a Zarr v3 group at ``path`` (atomically)."""
    _validate(data, str(path))
    with atomic_path(path) as tmp:
        root = zarr.open_group(tmp, mode="w", zarr_format=3)
        names = ("obs", "mu", "log_sigma", *STEP_KEYS, "off_road", "expert_action")
        arrays = {k: getattr(data, k) for k in names}
        arrays |= {"episode_ends": data.episode_ends, "seeds": data.seeds}
        for name, arr in arrays.items():
            if arr is None:
                continue
            chunk0 = OBS_CHUNK if name == "obs" else FLAT_CHUNK
            chunks = (max(1, min(chunk0, arr.shape[0])),) + arr.shape[1:]
            root.create_array(name, data=arr, chunks=chunks)
        root.attrs.update({**data.attrs, "schema_version": SCHEMA_VERSION})


def read_dataset(path: str | os.PathLike, *, obs: bool = True) -> Episodes:
    """Read and validate a dataset; ``obs=False`` skips the (large) frames."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"dataset {path}: not found")
    try:
        root = zarr.open_group(path, mode="r")
        version = root.attrs.get("schema_version")
        if version != SCHEMA_VERSION:
            raise DataError(f"dataset {path}: schema_version {version}, expected {SCHEMA_VERSION}")
        keys = set(root.array_keys())

        def get(name, required=True):
            if name not in keys:
                if required:
                    raise DataError(f"dataset {path}: missing array '{name}'")
                return None
            return root[name][...]

        data = Episodes(
            **{k: get(k) for k in (*STEP_KEYS, "episode_ends", "seeds")},
            obs=get("obs", required="mu" not in keys) if obs else None,
            mu=get("mu", required=False),
            log_sigma=get("log_sigma", required=False),
            off_road=get("off_road", required=False),
            expert_action=get("expert_action", required=False),
            attrs=dict(root.attrs),
        )
    except DataError:
        raise
    except Exception as e:  # zarr/numcodecs errors on truncated or corrupt chunks
        raise DataError(f"dataset {path}: unreadable ({type(e).__name__}: {e})") from e
    if obs and data.obs is None and data.mu is None:
        raise DataError(f"dataset {path}: has neither 'obs' nor 'mu'")
    _validate(data, str(path))
    return data


def _validate(d: Episodes, where: str) -> None:
    n = d.n_frames
    expect = {
        "action": ((n, 3), np.float32),
        "reward": ((n,), np.float32),
        "terminated": ((n,), np.bool_),
        "truncated": ((n,), np.bool_),
        "obs": ((n, *FRAME_SHAPE), np.uint8),
        "off_road": ((n,), np.bool_),
        "expert_action": ((n, 3), np.float32),
    }
    if d.mu is not None:
        expect["mu"] = expect["log_sigma"] = ((n, d.mu.shape[-1]), np.float32)
    for name, (shape, dtype) in expect.items():
        arr = getattr(d, name)
        if arr is None:
            continue
        if arr.shape != shape or arr.dtype != dtype:
            raise DataError(
                f"dataset {where}: '{name}' is {arr.dtype}{list(arr.shape)}, "
                f"expected {np.dtype(dtype)}{list(shape)}"
            )
    ends = d.episode_ends
    if ends.ndim != 1 or (
        (len(ends) == 0 and n != 0)
        or len(ends)
        and (ends[-1] != n or np.any(np.diff(ends) <= 0) or ends[0] <= 0)
    ):
        raise DataError(
            f"dataset {where}: episode_ends does not index the {n} frames "
            "(must be increasing, positive, ending at N; empty only if N = 0)"
        )
    if d.seeds.shape != ends.shape:
        raise DataError(f"dataset {where}: {len(d.seeds)} seeds for {len(ends)} episodes")
    for name in ("action", "reward", "mu", "log_sigma", "expert_action"):
        arr = getattr(d, name)
        if arr is not None and not np.all(np.isfinite(arr)):
            raise DataError(f"dataset {where}: '{name}' has non-finite values")


def flip(data: Episodes) -> Episodes:
    """Mirror frames left-right and negate steering (driven and expert's); gas, brake, reward,
    done unchanged."""
    if data.obs is None:
        raise DataError("flip needs frames")
    mirror = np.array([-1.0, 1.0, 1.0], np.float32)
    return Episodes(
        obs=np.ascontiguousarray(data.obs[:, :, ::-1, :]),
        action=data.action * mirror,
        expert_action=None if data.expert_action is None else data.expert_action * mirror,
        reward=data.reward.copy(),
        terminated=data.terminated.copy(),
        truncated=data.truncated.copy(),
        episode_ends=data.episode_ends.copy(),
        seeds=data.seeds.copy(),
        attrs={**data.attrs, "mirrored": True},
    )
