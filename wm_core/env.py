"""CarRacing-v3 construction and the frame preprocessing shared by every stage.

``make_env`` is the single seam through which stages get an environment; the pixel-identical
fast renderer (its own issue) plugs in here behind ``fast=True``.
"""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless pygame: no window, no hang

import cv2
import gymnasium as gym
import numpy as np
from jaxtyping import UInt8

ENV_ID = "CarRacing-v3"
HUD_ROWS = 12  # rows 84..95 of the 96x96 frame: speed bar, ABS, steering, gyro


def make_env(fast: bool = False, **gym_kwargs) -> gym.Env:
    """The real environment. ``fast`` is reserved for the pixel-identical renderer."""
    if fast:
        raise NotImplementedError("the fast renderer is not built yet; use fast=False")
    return gym.make(ENV_ID, **gym_kwargs)


def preprocess(obs: UInt8[np.ndarray, "96 96 3"]) -> UInt8[np.ndarray, "64 64 3"]:
    """Crop the HUD (Ha crops rows 84-95) and resize to 64x64 with area averaging."""
    return cv2.resize(obs[: 96 - HUD_ROWS], (64, 64), interpolation=cv2.INTER_AREA)


def on_road(env: gym.Env) -> bool:
    """True while at least one wheel touches a road tile (privileged state)."""
    return any(len(w.tiles) > 0 for w in env.unwrapped.car.wheels)


def gym_version() -> str:
    return gym.__version__
