"""Does M's reward head rank real episodes by their real return? Teacher-forced, per policy.

M reads each real episode as the agent does (V's posterior means and the driven actions, from a
zero state); the reward head's predictions summed over the episode are set against the real
return, per collection policy and over all episodes (rank and linear correlation). This
separates the two ways a dream can misjudge a controller: a reward head that misprices real
driving, or dreamed trajectories that differ from the real ones. If the head ranks real
episodes well, a dream that ranks controllers badly is a fault of the dreamed dynamics.

python diagnostics/reward_calibration.py --rnn models/r0/mdrnn.eqx \
    --latents data/latents/r0.zarr [data/latents/r1.zarr ...]
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from wm_core.checkpoint import load_model  # noqa: E402
from wm_core.data import Episodes, read_dataset  # noqa: E402
from wm_core.mdrnn import MDNRNN  # noqa: E402


@eqx.filter_jit
def reward_head(
    rnn: MDNRNN, z: Float[Array, "E T z"], a: Float[Array, "E T 3"]
) -> Float[Array, "E T"]:
    """The reward head's prediction for each step of each (padded) episode, M teacher-forced
    from a zero state; step t's read after M has taken (z_t, a_t), as in training."""
    return jax.vmap(lambda zs, as_: rnn.unroll(zs, as_)[3])(z, a)


def episode_reward_sums(
    rnn: MDNRNN, data: Episodes
) -> tuple[Float[np.ndarray, " E"], Float[np.ndarray, " E"]]:
    """(real return, sum of the reward head's predictions) per episode; M teacher-forced on
    [mu_t, a_t] from a zero state, the prediction for step t read after it (as in training)."""
    starts, lengths = data.episode_starts, data.lengths
    T = int(lengths.max())
    z = np.zeros((len(lengths), T, data.mu.shape[1]), np.float32)
    a = np.zeros((len(lengths), T, 3), np.float32)
    for i, (s, n) in enumerate(zip(starts, lengths)):  # padding after the end is masked below
        z[i, :n], a[i, :n] = data.mu[s : s + n], data.action[s : s + n]
    r_hat = np.asarray(reward_head(rnn, jnp.asarray(z), jnp.asarray(a)))
    valid = np.arange(T)[None, :] < lengths[:, None]
    return data.episode_returns(), (r_hat * valid).sum(axis=1)


def _ranks(x):
    return np.argsort(np.argsort(x))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rnn", required=True)
    ap.add_argument("--latents", nargs="+", required=True)
    args = ap.parse_args(argv)

    rnn, _ = load_model(args.rnn, "mdrnn", MDNRNN)
    real, pred, policy = [], [], []
    for path in args.latents:
        data = read_dataset(path)
        labels = list(data.attrs.get("episode_policy", ["?"] * len(data.lengths)))
        r, p = episode_reward_sums(rnn, data)
        real.append(r), pred.append(p), policy.extend(labels)
    real, pred = np.concatenate(real), np.concatenate(pred)

    groups = defaultdict(list)
    for i, label in enumerate(policy):
        groups[label.removesuffix("/mirrored")].append(i)
    print(f"{'policy (with mirror images)':28s} {'episodes':>8s} {'real':>8s} {'predicted':>10s}")
    for label, idx in groups.items():
        print(f"{label:28s} {len(idx):8d} {real[idx].mean():8.1f} {pred[idx].mean():10.1f}")
    if len(real) >= 3:
        rank = np.corrcoef(_ranks(real), _ranks(pred))[0, 1]
        lin = np.corrcoef(real, pred)[0, 1]
        print(f"over {len(real)} episodes: rank correlation {rank:+.2f}, linear {lin:+.2f}")


if __name__ == "__main__":
    main()
