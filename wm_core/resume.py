"""Resumable long stages: periodic snapshots outside DVC's outs, keyed by what the stage reads.

DVC deletes a stage's outs before running it, so snapshots live in ``.wm_resume/`` (git-ignored,
beside the repo's outputs) under a name derived from the stage's first output. Each snapshot
carries a fingerprint of the stage's config and its inputs (path, size, mtime of every file),
so a snapshot taken with other params or other data is never resumed: it is ignored and
overwritten. Snapshots are written atomically (a killed write leaves the previous one intact),
hold no pickle (a JSON header line + equinox leaves), and are deleted when the stage succeeds.

Training keys come from ``fold_in(key, step)`` and CMA-ES is replayed from recorded fitnesses,
so a resumed stage ends with the same bytes as an uninterrupted one (tested).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

import equinox as eqx

from wm_core.data import atomic_path

ROOT = Path(".wm_resume")
FORMAT = "wm-snapshot v1"


def fingerprint(config: Any, inputs: list[str | os.PathLike], extra: Any = None) -> str:
    """sha256 over a config (dataclass or JSON-able), ``extra`` and every input file's
    relative path, size and mtime."""
    h = hashlib.sha256()
    cfg = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    cfg.pop("snapshot_every", None)  # how often to snapshot does not change the result
    h.update(json.dumps([cfg, extra], sort_keys=True, default=str).encode())
    for root in map(Path, inputs):
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for f in files:
            if f.is_file():
                st = f.stat()
                h.update(f"{f.relative_to(root.parent)}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclasses.dataclass(frozen=True)
class Snapshots:
    """Snapshots of one stage run: ``every`` steps (0 = off), at ``path``, for ``key``."""

    path: Path
    key: str
    every: int

    @staticmethod
    def for_output(output: str | os.PathLike, key: str, every: int) -> Snapshots:
        name = str(Path(output)).replace(os.sep, "__")
        return Snapshots(ROOT / f"{name}.snap", key, every)

    def due(self, step: int, last: int) -> bool:
        """Snapshot after ``step`` (0-based)? Never after the last one: the output follows."""
        return self.every > 0 and (step + 1) % self.every == 0 and step < last

    def save(self, step: int, info: dict, tree: Any = None) -> None:
        header = {"format": FORMAT, "key": self.key, "step": step, "info": info}
        with atomic_path(self.path) as tmp, open(tmp, "wb") as f:
            f.write((json.dumps(header) + "\n").encode())
            if tree is not None:
                eqx.tree_serialise_leaves(f, tree)

    def load(self, template: Any = None) -> tuple[int, dict, Any] | None:
        """-> (step, info, tree) of a matching snapshot, or None (none, stale or unreadable)."""
        if self.every <= 0 or not self.path.exists():
            return None
        try:
            with open(self.path, "rb") as f:
                header = json.loads(f.readline())
                if header.get("format") != FORMAT or header.get("key") != self.key:
                    print(f"resume: ignoring stale snapshot {self.path}", file=sys.stderr)
                    return None
                tree = eqx.tree_deserialise_leaves(f, template) if template is not None else None
        except Exception as e:  # a snapshot is an optimisation: never fail the stage over it
            print(f"resume: ignoring unreadable snapshot {self.path} ({e})", file=sys.stderr)
            return None
        print(f"resume: continuing from {self.path} after step {header['step']}", file=sys.stderr)
        return header["step"], header["info"], tree

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)
