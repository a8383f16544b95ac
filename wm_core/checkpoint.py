"""Model files: one JSON header line (format, kind, hyperparameters, extra info) + Equinox leaves.

No pickle: the skeleton is rebuilt from the header with ``filter_eval_shape`` and the leaves
are read into it (equinox's serialisation pattern).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax

from wm_core.data import atomic_path
from wm_core.errors import CheckpointError  # noqa: F401  (re-exported)

FORMAT = "wm-eqx"
FORMAT_VERSION = 1


def save_model(
    path: str | os.PathLike, model: eqx.Module, kind: str, hparams: dict, info: dict | None = None
) -> None:
    header = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "kind": kind,
        "hparams": hparams,
        "info": info or {},
    }
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write((json.dumps(header) + "\n").encode())
        eqx.tree_serialise_leaves(f, model)


def read_header(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as f:
            header = json.loads(f.readline())
    except FileNotFoundError:
        raise CheckpointError(f"model {path}: not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"model {path}: not a {FORMAT} file (bad header)") from None
    if header.get("format") != FORMAT or header.get("version") != FORMAT_VERSION:
        raise CheckpointError(
            f"model {path}: format {header.get('format')} v{header.get('version')}, "
            f"expected {FORMAT} v{FORMAT_VERSION}"
        )
    return header


def load_model(
    path: str | os.PathLike, kind: str, build: Callable[..., eqx.Module]
) -> tuple[Any, dict]:
    """Load a model saved by ``save_model``; ``build(**hparams, key=...)`` gives the skeleton."""
    header = read_header(path)
    if header["kind"] != kind:
        raise CheckpointError(f"model {path}: holds a {header['kind']}, expected a {kind}")
    skeleton = eqx.filter_eval_shape(build, **header["hparams"], key=jax.random.key(0))
    with open(path, "rb") as f:
        f.readline()
        try:
            model = eqx.tree_deserialise_leaves(f, skeleton)
        except Exception as e:
            raise CheckpointError(f"model {path}: truncated or corrupt ({e})") from e
    return model, header
