"""Where do several Ms disagree? The spread of their predictions on real episodes.

Each M is run teacher-forced over whole episodes (real z and actions from a latents dataset);
at every step each M predicts the next z's mixture mean (sum_k pi_k mu_k). The disagreement u
is the RMS over latent dimensions of the variance across Ms of those means; it is printed for
on-road and off-road frames, with M's own error (the first M's mean vs the real next z) and
their correlation. Run it on the training latents and on episodes no M trained on (e.g. the
agent's own, collected on validation tracks) to see whether u flags what M does not know.

python diagnostics/m_disagreement.py --ms models/r0/mdrnn.eqx M_SEED1.eqx M_SEED2.eqx \
    --latents data/latents/r0.zarr [OTHER.zarr ...] [--episodes 40]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wm_core.checkpoint import load_model  # noqa: E402
from wm_core.data import read_dataset  # noqa: E402
from wm_core.mdrnn import MDNRNN  # noqa: E402

PAD = 1000  # episodes are padded to CarRacing's length: one compile


def make_measure(ms: list[MDNRNN]):
    @jax.jit
    def measure(z, a):
        """(T, z), (T, 3) -> u (T,), the first M's squared error of its mean (T,)."""
        means = []
        for m in ms:
            logits, mu = m.unroll(z, a)[:2]
            means.append((jax.nn.softmax(logits, -1) * mu).sum(-1))
        means = jnp.stack(means)  # (Ms, T, z): step t predicts z_{t+1}
        u = jnp.sqrt(means.var(0).mean(-1))
        err = ((means[0] - jnp.roll(z, -1, 0)) ** 2).mean(-1)
        return u, err

    return measure


def summarise(path: str, measure, episodes: int, seed: int = 0) -> None:
    d = read_dataset(path, obs=False)
    ends = d.episode_ends
    starts = np.r_[0, ends[:-1]]
    rng = np.random.default_rng(seed)
    us, errs, off = [], [], []
    for e in rng.choice(len(ends), size=min(episodes, len(ends)), replace=False):
        s, t = int(starts[e]), int(ends[e])
        n = t - s
        if n < 2 or n > PAD:
            continue
        z = np.zeros((PAD, d.mu.shape[1]), np.float32)
        a = np.zeros((PAD, 3), np.float32)
        z[:n], a[:n] = d.mu[s:t], d.action[s:t]
        u, err = measure(jnp.asarray(z), jnp.asarray(a))
        us.append(np.asarray(u[: n - 1]))  # the last step has no real next z
        errs.append(np.asarray(err[: n - 1]))
        flags = d.off_road[s : t - 1] if d.off_road is not None else np.zeros(n - 1, bool)
        off.append(np.asarray(flags, bool))
    u, err, off = map(np.concatenate, (us, errs, off))
    off_u = f"{u[off].mean():.4f}" if off.any() else "-"
    print(
        f"{path}: {len(u)} steps, u {u.mean():.4f} (on road {u[~off].mean():.4f}, off road "
        f"{off_u}; 90th percentile {np.percentile(u, 90):.4f}), M's error {err.mean():.4f}, "
        f"corr(u, error) {np.corrcoef(u, err)[0, 1]:.2f}, off road {off.mean():.0%}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--ms", nargs="+", required=True, help="two or more M checkpoints")
    ap.add_argument("--latents", nargs="+", required=True)
    ap.add_argument("--episodes", type=int, default=40, help="episodes drawn per dataset")
    args = ap.parse_args()
    if len(args.ms) < 2:
        raise SystemExit("--ms: disagreement needs at least two Ms")
    measure = make_measure([load_model(p, "mdrnn", MDNRNN)[0] for p in args.ms])
    for path in args.latents:
        summarise(path, measure, args.episodes)


if __name__ == "__main__":
    main()
