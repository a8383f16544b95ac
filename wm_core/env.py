"""CarRacing-v3 construction and the frame preprocessing shared by every stage.

``make_env`` is the single seam through which stages get an environment: by default the
pixel-identical fast renderer (:mod:`wm_core.fast_env`), registered under its own id with the
stock spec (TimeLimit 1000, reward threshold 900), or stock Gymnasium with ``fast=False``.
"""

from __future__ import annotations

import os

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # headless pygame: no window, no hang

import cv2
import gymnasium as gym
import numpy as np
from jaxtyping import UInt8

ENV_ID = "CarRacing-v3"
FAST_ENV_ID = "wm/FastCarRacing-v3"
HUD_ROWS = 12  # rows 84..95 of the 96x96 frame: speed bar, ABS, steering, gyro


def make_env(fast: bool = True, **gym_kwargs) -> gym.Env:
    """CarRacing-v3; ``fast`` renders the same frames faster (``False``: stock Gymnasium)."""
    if not fast:
        return gym.make(ENV_ID, **gym_kwargs)
    if FAST_ENV_ID not in gym.registry:
        stock = gym.spec(ENV_ID)
        gym.register(
            FAST_ENV_ID,
            entry_point="wm_core.fast_env:FastCarRacing",
            max_episode_steps=stock.max_episode_steps,
            reward_threshold=stock.reward_threshold,
        )
    return gym.make(FAST_ENV_ID, **gym_kwargs)


def preprocess(
    obs: UInt8[np.ndarray, "96 96 3"], crop_hud: bool = True
) -> UInt8[np.ndarray, "64 64 3"]:
    """Resize to 64x64 with area averaging, after cropping the HUD (Ha: rows 84-95) unless
    ``crop_hud`` is False (then speed, ABS, steering and gyro bars stay visible to V)."""
    frame = obs[: 96 - HUD_ROWS] if crop_hud else obs
    return cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)


def on_road(env: gym.Env) -> bool:
    """True while at least one wheel touches a road tile (privileged state)."""
    return any(len(w.tiles) > 0 for w in env.unwrapped.car.wheels)


def gym_version() -> str:
    return gym.__version__
