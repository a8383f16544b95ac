"""Scoring an agent in the real env: returns, and how often M's reward head was deluded."""

from __future__ import annotations

import numpy as np


def score_summary(episodes: list[dict]) -> dict:
    """mean/std/min/max of returns plus the two delusion rates (:func:`delusion_rates`).

    off_road_frac: the fraction of frames off the road (compare the C's ``dream_offroad_frac``).
    """
    scores = np.array([e["reward"].sum() for e in episodes], np.float64)
    off = np.concatenate([e["off_road"] for e in episodes])
    return {
        "episodes": len(episodes),
        "score_mean": float(scores.mean()),
        "score_std": float(scores.std()),
        "score_min": float(scores.min()),
        "score_max": float(scores.max()),
        "frac_ge_900": float(np.mean(scores >= 900)),
        **delusion_rates(episodes),
        "off_road_frames": int(off.sum()),
        "frames": int(len(off)),
        "off_road_frac": float(off.mean()),
    }


def delusion_rates(episodes: list[dict]) -> dict:
    """How often the agent's M promised reward it did not get, from ``pred_reward`` (M's reward
    head after each executed action, as :class:`wm_core.agent.AgentPolicy` records it).

    delusion_rate: over frames off the road after the action (no wheel on a road tile), the
    fraction where M predicted r > 0 (a new tile). delusion_rate_no_progress: the same over
    frames where no new tile was reached (the design's looser definition, which also counts slow
    driving on the road). 0 where no frame qualifies.
    """
    pred = np.concatenate([e["pred_reward"] for e in episodes])
    off = np.concatenate([e["off_road"] for e in episodes])
    no_progress = ~np.concatenate([e["new_tile"] for e in episodes])
    if not (len(pred) == len(off) == len(no_progress)):
        raise ValueError(f"pred_reward has {len(pred)} frames, the episodes {len(off)}")

    def rate(mask):
        return float(np.mean(pred[mask] > 0)) if mask.any() else 0.0

    return {"delusion_rate": rate(off), "delusion_rate_no_progress": rate(no_progress)}
