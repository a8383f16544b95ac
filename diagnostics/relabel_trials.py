"""Session 17's clone trials: expert labels, DART noise, DAgger rounds, outside the pipeline.

Three steps, each writing files the next reads (no DVC; the pipeline's own version of the
winner is ``collect_*`` with expert labels plus one on-policy round, see RESULTS.md):

1. ``collect OUT.npz MODE:SEED0:N ...`` drives heuristic episodes (MODE plain, recovery,
   aggressive, or ``dart``: the plain driver with steering noise 0.3, Laskey et al. 2017) and
   labels every frame with the plain expert's action.
2. ``drive OUT.npz MODELS SEED0 N NOISE`` drives a trained agent (MODELS holds ``vae.eqx``,
   ``r0/mdrnn.eqx``, ``r0/controller.eqx``) with action noise, the expert labelling each frame:
   one DAgger iteration's data (Ross et al. 2011).
3. ``fit OUT NAME TARGET K FILE.npz ... --vae V --rnn M`` encodes the frames with V (and their
   mirror images), teacher-forces M's h on the driven actions, fits C to TARGET (``action``:
   the driven actions, ``label``: the expert's) with keyframe weight K (wm_core/clone.py),
   and writes OUT/NAME as a models directory for
   ``wm play --models OUT/NAME --round 0 --seeds 70000-70031 --workers 2``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from multiprocessing import Pool
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wm_core.policies import STYLES, DriverStyle, HeuristicPolicy  # noqa: E402

# the plain driver's plan with i.i.d. steering noise; the labels stay noise-free
STYLES.setdefault("dart", DriverStyle(45.0, 45.0, 110.0, steer_noise=0.3, perturb_prob=0.0))
MIRROR = np.array([-1.0, 1.0, 1.0], np.float32)
_PROC: dict = {}  # per worker process: env and agent, built once


def _episode(job: tuple) -> dict:
    from wm_core.env import make_env
    from wm_core.rollout import run_episode

    kind, arg, seed, noise = job
    if "env" not in _PROC:
        _PROC["env"] = make_env(fast=True)
    if kind == "agent":
        if "agent" not in _PROC:
            from wm_core.agent import AgentPolicy

            d = Path(arg)
            paths = (d / "vae.eqx", d / "r0" / "mdrnn.eqx", d / "r0" / "controller.eqx")
            _PROC["agent"] = AgentPolicy(*paths, noise=noise)
        policy = _PROC["agent"]
    else:
        policy = HeuristicPolicy(arg)
    ep = run_episode(
        _PROC["env"], policy, seed, 1000, crop_hud=False, expert=HeuristicPolicy("plain")
    )
    return {"mode": arg if kind == "heuristic" else "agent", "seed": seed} | {
        k: ep[k] for k in ("obs", "action", "expert_action", "reward", "off_road")
    }


def _save(out: str, eps: list[dict], seconds: float) -> None:
    cat = lambda k: np.concatenate([e[k] for e in eps])  # noqa: E731
    rets = np.array([e["reward"].sum() for e in eps])
    modes = np.array([e["mode"] for e in eps])
    np.savez(
        out, obs=cat("obs"), action=cat("action"), label=cat("expert_action"),
        lengths=np.array([len(e["reward"]) for e in eps]), modes=modes,
        seeds=np.array([e["seed"] for e in eps]), returns=rets, off_road=cat("off_road"),
    )  # fmt: skip
    for m in dict.fromkeys(modes):
        r = rets[modes == m]
        print(f"{m}: {len(r)} episodes, return {r.mean():.1f} ± {r.std():.1f}")
    print(f"off road {cat('off_road').mean():.3f}; {seconds:.0f} s")


def _run(jobs: list[tuple], out: str) -> None:
    t = time.time()
    with Pool(2) as pool:
        eps = pool.map(_episode, jobs, chunksize=1)
    _save(out, eps, time.time() - t)


def _load(path: str, target: str, vae) -> list[tuple]:
    """(mu, driven action, target) per episode and per mirror image; mu cached beside the file."""
    from wm_core.encode import encode_frames

    d = np.load(path)
    cache = Path(path + ".mu.npz")
    if cache.exists():
        mu, mu_mirror = np.load(cache)["mu"], np.load(cache)["mu_mirror"]
    else:
        mu = encode_frames(vae, d["obs"])[0]
        mu_mirror = encode_frames(vae, np.ascontiguousarray(d["obs"][:, :, ::-1]))[0]
        np.savez(cache, mu=mu, mu_mirror=mu_mirror)
    y = d["label"] if target == "label" else d["action"]
    eps = []
    ends = np.cumsum(d["lengths"])
    for s, e in zip(ends - d["lengths"], ends):
        eps.append((mu[s:e], d["action"][s:e], y[s:e]))
        eps.append((mu_mirror[s:e], d["action"][s:e] * MIRROR, y[s:e] * MIRROR))
    return eps


def _fit(args) -> None:
    import jax.numpy as jnp

    from wm_core.checkpoint import load_model, save_model
    from wm_core.clone import _teacher_forced_h, fit_controller
    from wm_core.mdrnn import MDNRNN
    from wm_core.vae import VAE

    vae, _ = load_model(args.vae, "vae", VAE)
    rnn, _ = load_model(args.rnn, "mdrnn", MDNRNN)
    eps = [e for f in args.files for e in _load(f, args.target, vae)]
    xs, ys, change = [], [], []
    for i in range(0, len(eps), 32):  # h in groups of episodes, zero-padded to the longest
        group = eps[i : i + 32]
        T = max(len(m) for m, _, _ in group)
        z = np.zeros((len(group), T, rnn.z_dim), np.float32)
        a = np.zeros((len(group), T, 3), np.float32)
        for j, (m, act, _) in enumerate(group):
            z[j, : len(m)], a[j, : len(m)] = m, act
        h = np.asarray(_teacher_forced_h(rnn, jnp.asarray(z), jnp.asarray(a)))
        for j, (m, _, y) in enumerate(group):
            xs.append(np.concatenate([m, h[j, : len(m)]], 1))
            ys.append(y)
            change.append(np.abs(np.diff(y, axis=0, prepend=np.zeros((1, 3), y.dtype))).sum(1))
    x, y, change = np.concatenate(xs), np.concatenate(ys), np.concatenate(change)
    w = 1 + args.k * change / change.mean() if args.k > 0 else np.ones(len(y))
    ctrl, mse = fit_controller(x, y, rnn.z_dim, rnn.hidden, w.astype(np.float32))
    d = Path(args.out) / args.name
    (d / "r0").mkdir(parents=True, exist_ok=True)
    for src, dst in [(args.vae, d / "vae.eqx"), (args.rnn, d / "r0" / "mdrnn.eqx")]:
        if not dst.exists():
            os.symlink(Path(src).resolve(), dst)
    info = {"variant": args.name, "episodes": len(eps), "frames": len(y), "mse": mse}
    hp = {"z_dim": rnn.z_dim, "hidden": rnn.hidden}
    save_model(d / "r0" / "controller.eqx", ctrl, "controller", hp, info)
    print(json.dumps(info))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("out")
    c.add_argument("specs", nargs="+", help="MODE:SEED0:N")
    d = sub.add_parser("drive")
    for name, kind in [("out", str), ("models", str), ("seed0", int), ("n", int), ("noise", float)]:
        d.add_argument(name, type=kind)
    f = sub.add_parser("fit")
    f.add_argument("out")
    f.add_argument("name")
    f.add_argument("target", choices=["action", "label"])
    f.add_argument("k", type=float)
    f.add_argument("files", nargs="+")
    f.add_argument("--vae", default="models/vae.eqx")
    f.add_argument("--rnn", default="models/r0/mdrnn.eqx")
    args = ap.parse_args(argv)
    if args.cmd == "collect":
        jobs = []
        for spec in args.specs:
            mode, s0, n = spec.split(":")
            jobs += [("heuristic", mode, int(s0) + i, 0.0) for i in range(int(n))]
        _run(jobs, args.out)
    elif args.cmd == "drive":
        jobs = [("agent", args.models, args.seed0 + i, args.noise) for i in range(args.n)]
        _run(jobs, args.out)
    else:
        _fit(args)


if __name__ == "__main__":
    main()
