"""Session 44 probe: the rounds' top agents driving together, their actions averaged.

    python plots/session44/ensemble_probe.py MODELS_DIR ROUND[,ROUND...] SEEDS [--noise 0.2]

Each member is one round's (M_k, C_k) on the draw's shared V: every frame V encodes once, each
C_k acts on [z, h_k], the car gets the mean of their actions plus one Gaussian noise draw
(seeded by the track as ``wm_core.agent.AgentPolicy`` seeds it, so a one-member ensemble drives
exactly as ``wm play`` does), and every M_k is fed that executed action. Every C was evolved in
dreams only; this changes how the chosen ones are combined, not how any was trained. Not wired
into the pipeline: it is the probe that decides whether that is worth doing (RESULTS.md,
"Session 44"). Prints one line per track, then the mean, as ``wm play`` does.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import equinox as eqx
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from wm_core.agent import _advance, _encode_act, load_world  # noqa: E402
from wm_core.cli import parse_seeds  # noqa: E402
from wm_core.env import make_env  # noqa: E402
from wm_core.policies import HIGH, LOW  # noqa: E402
from wm_core.rollout import run_episode  # noqa: E402


@eqx.filter_jit
def _act(ctrl, z, h):
    return ctrl(z, h)


class EnsemblePolicy:
    def __init__(self, models: Path, rounds: list[str], noise: float):
        worlds = [
            load_world(
                models / "vae.eqx", models / f"r{k}/mdrnn.eqx", models / f"r{k}/controller.eqx"
            )
            for k in rounds
        ]
        self.vae = worlds[0][0]
        self.members = [(rnn, ctrl) for _, rnn, ctrl, _ in worlds]
        self.noise = noise

    def reset(self, seed: int, env) -> None:
        self.carries = [rnn.init_carry() for rnn, _ in self.members]
        self.rng = np.random.default_rng([seed, 3])  # AgentPolicy's seeding

    def act(self, obs, env, frame):
        rnn0, ctrl0 = self.members[0]
        z, a0 = _encode_act(self.vae, ctrl0, jnp.asarray(frame), self.carries[0][0])
        acts = [np.asarray(a0, np.float32)] + [
            np.asarray(_act(ctrl, z, carry[0]), np.float32)
            for (_, ctrl), carry in zip(self.members[1:], self.carries[1:])
        ]
        a = np.mean(acts, axis=0).astype(np.float32) if len(acts) > 1 else acts[0]
        if self.noise > 0:
            a = np.clip(a + self.noise * self.rng.standard_normal(3), LOW, HIGH).astype(np.float32)
        aj = jnp.asarray(a)
        self.carries = [
            _advance(rnn, z, aj, carry)[0] for (rnn, _), carry in zip(self.members, self.carries)
        ]
        return a


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", type=Path)
    ap.add_argument("rounds", help="comma-separated round ids, e.g. 3,8,9")
    ap.add_argument("seeds", type=parse_seeds)
    ap.add_argument("--noise", type=float, default=0.2)
    args = ap.parse_args()
    policy = EnsemblePolicy(args.models, args.rounds.split(","), args.noise)
    env = make_env(fast=True)
    for seed in args.seeds:
        ep = run_episode(env, policy, seed, 1000, crop_hud=False)
        print(
            f"seed {seed}: {float(ep['reward'].sum()):.1f} ({len(ep['reward'])} frames)", flush=True
        )


if __name__ == "__main__":
    main()
