"""Zarr layout vs DVC: dvc add / push / checkout / pull time, file counts, size, read speed.

    python bench/zarr_dvc.py [--frames 200000] [--layouts current,chunk250,shard10k]
                             [--repeats 3] [--source A.zarr B.zarr] [--tmp DIR]

Builds an ``--frames`` dataset in the project's schema from real CarRacing-v3 frames: the
episodes of ``--source`` (default: the round-0 datasets of a finished run) are tiled,
every other copy mirrored with ``wm_core.data.flip`` and each copy after the first starting
a few frames into its first episode, so that no two chunks hold the same bytes (DVC would
store identical files once and flatter the cache). With no source, a few random-policy
episodes are collected with the project's collector and tiled the same way.

Layout ``current`` is written by ``wm_core.data.write_dataset`` itself; the others write the
same arrays and attrs with zarr directly, changing only the ``obs`` chunks, shards or codec.
For each layout and each of ``--repeats`` rounds, a fresh Git + DVC repo and a local
directory remote (same disk) are made under ``--tmp``, then timed:
``dvc add data.zarr``, a no-op ``dvc status``, ``dvc push``, ``dvc checkout`` after deleting
the workspace copy, and ``dvc pull`` after deleting the workspace copy and the cache.
Read speed is then measured on the pulled copy (page cache warm):

- ``read_all``: ``read_dataset`` (every array into memory), which is what train_vae,
  encode_latents, train_rnn and evolve do; their batches and windows are then cut in memory;
- ``windows``: random 200-frame ``obs`` windows read from disk (out-of-core M-style reads);
- ``minibatch``: random 64-frame ``obs`` batches read from disk (out-of-core V-style reads).

Layouts are interleaved (rotated order) within each repeat; figures are medians over the
repeats, and ``runs`` / ``read_all_runs`` keep every value. The last line printed is one
JSON object. The default (3 layouts x 3 repeats, 200k frames) took 4 min (3.7 CPU-min) on
2 cores shared with other jobs; it needs ~1 GB of scratch disk and ~6 GB of RAM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # `python bench/x.py` puts bench/, not the root, on sys.path

from wm_core.data import (  # noqa: E402
    FLAT_CHUNK,
    SCHEMA_VERSION,
    STEP_KEYS,
    Episodes,
    concat,
    flip,
    read_dataset,
    write_dataset,
)

DEFAULT_SOURCES = ["/tmp/final/data/heuristic.zarr", "/tmp/final/data/random.zarr"]
FRAME = (64, 64, 3)


@dataclass(frozen=True)
class Layout:
    obs_chunk: int
    obs_shard: int | None = None  # zarr v3 sharding: obs_shard frames per file
    codec: str = "zstd"  # zstd (level below) or blosc-lz4
    level: int = 0  # zstd level 0 = zstd's default level 3 (zarr's default codec)


LAYOUTS = {
    "current": Layout(1000),  # written by wm_core.data.write_dataset itself
    "chunk250": Layout(250),
    "chunk100": Layout(100),
    "chunk5000": Layout(5000),
    "shard10k": Layout(100, 10_000),  # files of 10000 frames, read units of 100
    "shard50k": Layout(250, 50_000),
    "zstd1": Layout(1000, level=1),
    "zstd9": Layout(1000, level=9),
    "blosc-lz4": Layout(1000, codec="blosc-lz4"),
}


# ---------------------------------------------------------------- dataset from real frames


def slice_episodes(d: Episodes, skip: int) -> Episodes:
    """``d`` without the first ``skip`` frames (all inside its first episode)."""
    skip = min(skip, int(d.episode_ends[0]) - 1)
    return Episodes(
        obs=d.obs[skip:],
        action=d.action[skip:],
        reward=d.reward[skip:],
        terminated=d.terminated[skip:],
        truncated=d.truncated[skip:],
        episode_ends=d.episode_ends - skip,
        seeds=d.seeds,
        attrs=d.attrs,
    )


def take_frames(d: Episodes, n: int) -> Episodes:
    """The first ``n`` frames; the episode cut at ``n`` is marked truncated."""
    e = int(np.searchsorted(d.episode_ends, n))  # episode holding frame n-1
    ends = np.concatenate([d.episode_ends[:e], [n]]).astype(np.int64)
    truncated = d.truncated[:n].copy()
    truncated[-1] = truncated[-1] or not d.terminated[n - 1]
    return Episodes(
        obs=d.obs[:n],
        action=d.action[:n],
        reward=d.reward[:n],
        terminated=d.terminated[:n],
        truncated=truncated,
        episode_ends=ends,
        seeds=d.seeds[: e + 1],
        attrs=d.attrs,
    )


def collect_source(episodes: int) -> tuple[Episodes, list[str]]:
    """A few random-policy episodes from the real env (only when no source dataset exists)."""
    from wm_core.config import load_params
    from wm_core.data import from_episodes
    from wm_core.rollout import run_episodes

    p = load_params(REPO / "params.yaml")
    seeds = list(range(p.collect.random.seed0, p.collect.random.seed0 + episodes))
    eps = run_episodes(("random", p.collect.random.dt), seeds, p.env, 2, "collect (bench)")
    return from_episodes(eps, {"policy": "random"}), ["collected:random"]


def build_dataset(sources: list[str], n_frames: int, collect_episodes: int) -> Episodes:
    found = [s for s in sources if Path(s).is_dir()]
    if found:
        base, names = concat([read_dataset(s) for s in found]), found
    else:
        base, names = collect_source(collect_episodes)
    copies, total, k = [], 0, 0
    while total < n_frames:
        part = flip(base) if k % 2 else base
        part = slice_episodes(part, (k * 137) % 997 + 1) if k else part  # misalign copies
        copies.append(part)
        total += part.n_frames
        k += 1
    attrs = {
        "policy": "bench-tiled",
        "env_id": base.attrs.get("env_id", "CarRacing-v3"),
        "crop_hud": base.attrs.get("crop_hud", False),
        "tiled_from": names,
        "copies": k,
    }
    data = take_frames(concat(copies, attrs), n_frames)
    data.attrs["episode_policy"] = ["bench-tiled"] * len(data.episode_ends)
    return data


# ---------------------------------------------------------------- writers


def codec(layout: Layout):
    if layout.codec == "blosc-lz4":
        return BloscCodec(cname="lz4", clevel=5, shuffle="noshuffle")
    return ZstdCodec(level=layout.level)


def codec_name(layout: Layout) -> str:
    return "blosc-lz4-5" if layout.codec == "blosc-lz4" else f"zstd-{layout.level or 3}"


def write_layout(path: Path, data: Episodes, name: str) -> None:
    """Same arrays and attrs as ``write_dataset``; only ``obs`` chunking/codec differ."""
    if name == "current":
        write_dataset(path, data)
        return
    lay = LAYOUTS[name]
    root = zarr.open_group(path, mode="w", zarr_format=3)
    for key in ("obs", *STEP_KEYS, "episode_ends", "seeds"):
        arr = getattr(data, key)
        if key == "obs":
            root.create_array(
                key,
                data=arr,
                chunks=(lay.obs_chunk, *FRAME),
                shards=(lay.obs_shard, *FRAME) if lay.obs_shard else None,
                compressors=codec(lay),
            )
        else:
            chunks = (max(1, min(FLAT_CHUNK, arr.shape[0])),) + arr.shape[1:]
            root.create_array(key, data=arr, chunks=chunks)
    root.attrs.update({**data.attrs, "schema_version": SCHEMA_VERSION})


# ---------------------------------------------------------------- DVC


def run(cmd: list[str], cwd: Path) -> float:
    env = os.environ | {
        "DVC_NO_ANALYTICS": "1",
        "GIT_TERMINAL_PROMPT": "0",
        # DVC's state/link DBs (default /var/tmp/dvc/repo/<hash>) go inside the deleted root
        "DVC_SITE_CACHE_DIR": str(cwd.parent / "site_cache"),
    }
    t0 = time.perf_counter()
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if res.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stderr[-2000:]}")
    return dt


def dvc(*args: str) -> list[str]:
    return [sys.executable, "-m", "dvc", *args]


def make_repo(root: Path) -> tuple[Path, Path]:
    repo, remote = root / "repo", root / "remote"
    repo.mkdir(parents=True)
    remote.mkdir()
    run(["git", "init", "-q"], repo)
    run(dvc("init", "-q"), repo)
    with open(repo / ".dvc" / "config", "a") as f:  # = dvc config ...; dvc remote add -d
        f.write(
            "[core]\n    analytics = false\n    check_update = false\n    remote = local\n"
            f"['remote \"local\"']\n    url = {remote}\n"
        )
    return repo, remote


def count_files(path: Path) -> tuple[int, int, int]:
    """(files, bytes, bytes on disk incl. block rounding) under ``path``."""
    n = size = disk = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            st = os.stat(os.path.join(dirpath, f))
            n, size, disk = n + 1, size + st.st_size, disk + st.st_blocks * 512
    return n, size, disk


def dvc_round(stage: Path, root: Path) -> dict:
    """One fresh repo: time add/status/push/checkout/pull; ``stage`` is moved in and back."""
    repo, remote = make_repo(root)
    ws = repo / "data.zarr"
    os.rename(stage, ws)
    out = {"add_s": run(dvc("add", "-q", "data.zarr"), repo)}
    out["status_noop_s"] = run(dvc("status", "-q"), repo)
    out["push_s"] = run(dvc("push", "-q"), repo)
    out["cache_files"] = count_files(repo / ".dvc" / "cache")[0]
    out["remote_files"] = count_files(remote)[0]
    shutil.rmtree(ws)
    out["checkout_s"] = run(dvc("checkout", "-q"), repo)
    shutil.rmtree(ws)
    shutil.rmtree(repo / ".dvc" / "cache")
    out["pull_s"] = run(dvc("pull", "-q"), repo)
    os.rename(ws, stage)
    shutil.rmtree(root)
    return out


# ---------------------------------------------------------------- reads


def read_once(path: Path, data: Episodes, rng: np.random.Generator, check: bool) -> dict:
    """Seconds for: read_dataset (all arrays), 50 random 200-frame windows, 2 random batches."""
    n = data.n_frames
    t0 = time.perf_counter()
    back = read_dataset(path)
    out = {"read_all_s": time.perf_counter() - t0}
    if check:
        out["equal"] = np.array_equal(back.obs, data.obs) and all(
            np.array_equal(getattr(back, k), getattr(data, k))
            for k in (*STEP_KEYS, "episode_ends", "seeds")
        )
    del back
    obs = zarr.open_group(path, mode="r")["obs"]
    t0 = time.perf_counter()
    for s in rng.integers(0, n - 200, 50):
        obs[s : s + 200]
    out["windows_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(2):
        obs.get_orthogonal_selection(np.sort(rng.choice(n, 64, replace=False)))
    out["minibatch_s"] = time.perf_counter() - t0
    return out


def read_summary(reads: list[dict], n: int) -> dict:
    med = {k: statistics.median(r[k] for r in reads) for k in reads[0] if k != "equal"}
    return {
        "roundtrip_equal": bool(reads[0]["equal"]),
        "read_all_s": med["read_all_s"],
        "read_all_fps": n / med["read_all_s"],
        "windows200_fps": 50 * 200 / med["windows_s"],
        "minibatch64_fps": 2 * 64 / med["minibatch_s"],
        "read_all_runs": [round(r["read_all_s"], 2) for r in reads],
    }


# ---------------------------------------------------------------- main


def write_stage(name: str, data: Episodes, tmp: Path) -> dict:
    stage = tmp / f"{name}.zarr"
    t0 = time.perf_counter()
    write_layout(stage, data, name)
    write_s = time.perf_counter() - t0
    files, size, disk = count_files(stage)
    obs = zarr.open_group(stage, mode="r")["obs"]
    raw = sum(getattr(data, k).nbytes for k in ("obs", *STEP_KEYS, "episode_ends", "seeds"))
    return {
        "layout": name,
        "obs_chunks": list(obs.chunks),
        "obs_shards": list(obs.shards) if obs.shards else None,
        "obs_codec": codec_name(LAYOUTS[name]),
        "files": files,
        "bytes": size,
        "disk_bytes": disk,
        "raw_bytes": raw,
        "ratio": raw / size,
        "write_s": write_s,
    }


def bench_layouts(names: list[str], data: Episodes, tmp: Path, repeats: int) -> list[dict]:
    """Write every layout, then interleave layouts inside each repeat (DVC, then reads), in a
    rotated order, so that a background load drifting over the run hits every layout alike."""
    res = {name: write_stage(name, data, tmp) for name in names}
    rounds = {name: [] for name in names}
    reads = {name: [] for name in names}
    rng = np.random.default_rng(0)
    order = [names[r % len(names) :] + names[: r % len(names)] for r in range(repeats)]
    for r in range(repeats):
        for name in order[r]:  # rotated, so no layout always goes first
            rounds[name].append(dvc_round(tmp / f"{name}.zarr", tmp / f"{name}-r{r}"))
    read_dataset(tmp / f"{names[0]}.zarr")  # untimed: the first 2 GB read of a process is slow
    for r in range(repeats):
        for name in order[r]:
            reads[name].append(read_once(tmp / f"{name}.zarr", data, rng, check=r == 0))
    out = []
    for name in names:
        rs = rounds[name]
        med = {k: statistics.median_low(x[k] for x in rs) for k in rs[0]}  # low: ints stay int
        row = (
            res[name]
            | med
            | {
                "dedup_files": res[name]["files"] - (med["cache_files"] - 1),  # cache: + .dir
                "runs": {k: [round(x[k], 2) for x in rs] for k in rs[0] if k.endswith("_s")},
            }
            | read_summary(reads[name], data.n_frames)
        )
        out.append({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()})
        print(f"{name}: {json.dumps(out[-1])}", file=sys.stderr, flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--frames", type=int, default=200_000)
    ap.add_argument(
        "--layouts",
        default="current,chunk250,shard10k",
        help=f"comma-separated, from {','.join(LAYOUTS)}",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--source", nargs="+", default=DEFAULT_SOURCES)
    ap.add_argument("--collect-episodes", type=int, default=6)
    ap.add_argument("--tmp", default=None, help="scratch dir (default: system temp)")
    args = ap.parse_args()
    names = args.layouts.split(",")
    unknown = [n for n in names if n not in LAYOUTS]
    if unknown:
        ap.error(f"unknown layouts {unknown}; known: {list(LAYOUTS)}")

    load0, t0 = os.getloadavg()[0], time.perf_counter()
    data = build_dataset(args.source, args.frames, args.collect_episodes)
    free = shutil.disk_usage(args.tmp or tempfile.gettempdir()).free
    need = 4 * data.obs.nbytes // 5  # ~3 copies at <=4x compression, generous
    if free < need:
        sys.exit(f"need ~{need / 1e9:.1f} GB free in the scratch dir, have {free / 1e9:.1f} GB")
    with tempfile.TemporaryDirectory(prefix="zarr_dvc_", dir=args.tmp) as tmp:
        results = bench_layouts(names, data, Path(tmp), args.repeats)
    dvc_version = subprocess.run(dvc("--version"), capture_output=True, text=True).stdout
    print(
        json.dumps(
            {
                "frames": data.n_frames,
                "episodes": len(data.episode_ends),
                "sources": data.attrs["tiled_from"],
                "repeats": args.repeats,
                "layouts": results,
                "total_s": round(time.perf_counter() - t0, 1),
                "loadavg_start_end": [round(load0, 2), round(os.getloadavg()[0], 2)],
                "dvc": dvc_version.strip(),
                "zarr": zarr.__version__,
                "cpus": os.cpu_count(),
                "machine": platform.platform(),
                "processor": platform.processor() or platform.machine(),
                "remote": "local directory, same disk; cache.type default (reflink,copy -> copy)",
            }
        )
    )


if __name__ == "__main__":
    main()
