"""mp4 writing (OpenCV's bundled FFmpeg, mp4v codec), atomically."""

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
