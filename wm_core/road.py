"""Is the car off the road? A label read off the 64x64 frame, and a probe that reads it off z.

CarRacing's camera follows the car, which therefore sits at the same place in every frame
(after the first ~5 zoomed-out frames). The label looks at a small window around the car: no
grey road pixels there and mostly grass means the car is off the road. It is a function of the
frame alone, so nothing privileged enters M's world. Its thresholds were set on 1,800 frames of
heuristic and Brownian driving (98.7 % agreement with the env's own "no wheel on a tile" flag);
on 1,500 other frames it agrees on 98.1 % (HUD kept) and 98.1 % (HUD cropped).

The probe is a logistic regression on V's mu. In the dream it reads the sampled z_{t+1}, so
the dream can charge for frames that *look* off the road (``dream.offroad_penalty``): the
reward head alone pays for many of them (the delusion rate), which is what CMA-ES exploits.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Bool, Float, UInt8

# The car's window in the 96x96 frame (rows, cols): the car and a few pixels around it.
_ROWS_96, _COLS_96 = (66.0, 76.5), (43.5, 54.0)
_HUD_ROWS = 12


def _window(crop_hud: bool) -> tuple[slice, slice]:
    """The car's window in the 64x64 frame (the frame is 84 or 96 rows before resizing)."""
    rows_in = 96 - _HUD_ROWS if crop_hud else 96
    r = [round(y * 64 / rows_in) for y in _ROWS_96]
    c = [round(x * 64 / 96) for x in _COLS_96]
    return slice(*r), slice(*c)


def offroad_label(frames: UInt8[np.ndarray, "N 64 64 3"], crop_hud: bool) -> Bool[np.ndarray, " N"]:
    """True where the window around the car shows no road (< 5 % grey) and mostly grass."""
    rows, cols = _window(crop_hud)
    w = frames[:, rows, cols].astype(np.int16)
    r, g, b = w[..., 0], w[..., 1], w[..., 2]
    grey = (abs(r - g) < 12) & (abs(g - b) < 12) & (r > 70) & (r < 140)
    grass = (g > r + 40) & (g > b + 40)
    return (grey.mean(axis=(1, 2)) < 0.05) & (grass.mean(axis=(1, 2)) > 0.3)


def fit_probe(
    mu: Float[np.ndarray, "N z"], label: Bool[np.ndarray, " N"], l2: float = 1e-3, iters: int = 25
) -> tuple[Float[np.ndarray, " z"], float]:
    """Logistic regression of ``label`` on ``mu`` by Newton's method (L2 on the weights).

    Deterministic and exact enough for a 33-parameter model; returns (w, b).
    """
    if len(label) == 0 or label.all() or not label.any():
        raise ValueError(
            f"the off-road probe needs frames on and off the road; got {int(label.sum())} "
            f"off-road of {len(label)}"
        )
    x = np.concatenate([mu.astype(np.float64), np.ones((len(mu), 1))], axis=1)
    y = label.astype(np.float64)
    reg = np.full(x.shape[1], l2 * len(y))
    reg[-1] = 0.0  # no penalty on the bias
    theta = np.zeros(x.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-x @ theta))
        grad = x.T @ (p - y) + reg * theta
        hess = (x * (p * (1 - p))[:, None]).T @ x + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return theta[:-1].astype(np.float32), float(theta[-1])


def probe_accuracy(mu: Float[np.ndarray, "N z"], label: Bool[np.ndarray, " N"], w, b) -> float:
    return float(np.mean((mu @ w + b > 0) == label))


def offroad_prob(
    z: Float[Array, " z"], w: Float[Array, " z"], b: Float[Array, ""]
) -> Float[Array, ""]:
    return jax.nn.sigmoid(jnp.dot(z, w) + b)
