"""Cloned Cs under different fits, each saved where ``wm play`` can drive it (no evolution).

Session 16's question: why does the clone alone not drive, and which fit makes it drive? Each
variant is a comma-separated name of tokens:

- ``base``: the plain fit of ``wm_core.clone`` (every heuristic frame weighs 1);
- ``pa``: plain and aggressive episodes only (no recovery episodes);
- ``nosw``: drop the recovery mode's scripted swerves (the only frames where the heuristic
  logs gas 0.5, wm_core/policies.py), whose actions are not the expert's;
- ``zonly``: C on z alone (W_h = 0);
- ``kfK``: keyframe weights 1 + K |a_t - a_{t-1}|_1 / mean (``wm_core.clone.keyframe_weights``);
- ``kfsK``: the same on the change of steering alone.

python diagnostics/clone_variants.py OUT base,kf64,nosw_kfs16 [--vae V] [--rnn M] [--latents L]
then: wm play --models OUT/<variant> --round 0 --seeds 70000-70031 --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wm_core.checkpoint import load_model, save_model  # noqa: E402
from wm_core.clone import agent_inputs, cloned_episodes, fit_controller  # noqa: E402
from wm_core.data import Episodes, read_dataset  # noqa: E402
from wm_core.mdrnn import MDNRNN  # noqa: E402

SWERVE_GAS = 0.5  # HeuristicPolicy._perturb's swerve; its other gas values are 1, 0.4 and 0


def variant_fit(rnn: MDNRNN, data: Episodes, name: str):
    """(C, info) for one variant name."""
    toks = name.split("_")
    sources = ["heuristic/plain", "heuristic/aggressive"] if "pa" in toks else ["heuristic"]
    episodes = cloned_episodes(data, sources)
    x, a = agent_inputs(rnn, data, episodes)
    starts = np.r_[0, np.cumsum(data.lengths[episodes])[:-1]]
    prev = np.roll(a, 1, axis=0)
    prev[starts] = 0.0  # the agent starts from rest
    keep = np.ones(len(a), bool)
    if "nosw" in toks:
        keep = a[:, 1] != SWERVE_GAS
    x, a, prev = x[keep], a[keep], prev[keep]
    w = np.ones(len(a), np.float32)
    for t in toks:
        if t.startswith("kfs"):
            change = np.abs(a - prev)[:, 0]
            w = 1.0 + float(t[3:]) * change / change.mean()
        elif t.startswith("kf"):
            change = np.abs(a - prev).sum(1)
            w = 1.0 + float(t[2:]) * change / change.mean()
    if "zonly" in toks:
        x = x.copy()
        x[:, rnn.z_dim :] = 0.0
    ctrl, mse = fit_controller(x, a, rnn.z_dim, rnn.hidden, w.astype(np.float32))
    pred = np.asarray(ctrl.linear.weight) @ x.T + np.asarray(ctrl.linear.bias)[:, None]
    steer = np.tanh(pred[0])
    return ctrl, {
        "variant": name,
        "frames": int(keep.sum()),
        "mse": mse,
        # a copycat's steering follows the previous action more closely than the current one
        "corr_steer_now": float(np.corrcoef(steer, a[:, 0])[0, 1]),
        "corr_steer_prev": float(np.corrcoef(steer, prev[:, 0])[0, 1]),
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("variants")
    ap.add_argument("--vae", default="models/vae.eqx")
    ap.add_argument("--rnn", default="models/r0/mdrnn.eqx")
    ap.add_argument("--latents", default="data/latents/r0.zarr")
    args = ap.parse_args(argv)
    rnn, _ = load_model(args.rnn, "mdrnn", MDNRNN)
    data = read_dataset(args.latents, obs=False)
    for name in args.variants.split(","):
        ctrl, info = variant_fit(rnn, data, name)
        d = Path(args.out) / name
        (d / "r0").mkdir(parents=True, exist_ok=True)
        for src, dst in [(args.vae, d / "vae.eqx"), (args.rnn, d / "r0" / "mdrnn.eqx")]:
            if not dst.exists():
                os.symlink(Path(src).resolve(), dst)
        hp = {"z_dim": rnn.z_dim, "hidden": rnn.hidden}
        save_model(d / "r0" / "controller.eqx", ctrl, "controller", hp, info)
        print(json.dumps(info), flush=True)


if __name__ == "__main__":
    main()
