"""mp4 and png writing (OpenCV; mp4v codec), atomically."""

from __future__ import annotations

import os

import cv2
import numpy as np
from jaxtyping import UInt8

from wm_core.data import atomic_path


def write_mp4(
    path: str | os.PathLike, frames: UInt8[np.ndarray, "T H W 3"], fps: int = 50, scale: int = 4
) -> None:
    """RGB frames -> mp4, upscaled ``scale`` x with nearest neighbour so pixels stay sharp."""
    h, w = frames.shape[1] * scale, frames.shape[2] * scale
    with atomic_path(path) as tmp:
        tmp_mp4 = tmp.with_suffix(".mp4")  # OpenCV picks the container from the suffix
        writer = cv2.VideoWriter(str(tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise RuntimeError(f"cannot open a video writer for {path}")
        for f in frames:
            big = cv2.resize(f, (w, h), interpolation=cv2.INTER_NEAREST)
            writer.write(cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
        writer.release()
        os.replace(tmp_mp4, tmp)


def write_png(path: str | os.PathLike, image: UInt8[np.ndarray, "H W 3"], scale: int = 2) -> None:
    """RGB image -> png, upscaled ``scale`` x (nearest neighbour)."""
    h, w = image.shape[0] * scale, image.shape[1] * scale
    big = cv2.resize(image, (w, h), interpolation=cv2.INTER_NEAREST)
    with atomic_path(path) as tmp:
        ok, buf = cv2.imencode(".png", cv2.cvtColor(big, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"cannot encode {path} as png")
        tmp.write_bytes(buf.tobytes())
