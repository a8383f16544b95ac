"""The agent on real tracks with C (and M) reading a sample of V's posterior instead of its mean.

In the dream C reads M's sampled z; the pipeline's agent (wm_core.agent) reads V's posterior mean;
Ha's real rollouts read a sample, z = mu + sigma * eps. This drives round K's agent with
z = mu + scale * sigma * eps (eps per frame, seeded per track) and prints each track's return and
the mean, like ``wm play``. ``--scale 0`` is the pipeline's agent (the same actions).

python diagnostics/posterior_play.py --models models --round 6 --seeds 70000-70015 \
    [--scale 1.0] [--noise 0.2]
"""

from __future__ import annotations

import argparse

import jax.numpy as jnp
import numpy as np

from wm_core.agent import AgentPolicy
from wm_core.cli import parse_seeds
from wm_core.encode import jit_native_convs
from wm_core.env import make_env
from wm_core.rollout import run_episode


@jit_native_convs
def encode_act_sampled(vae, ctrl, obs, h, eps, scale):
    """(z, C's action) with z = mu + scale * sigma * eps, V's posterior on the frame ``obs``."""
    mu, log_sigma = vae.encode(obs[None].astype(jnp.float32) / 255.0, native=True)
    z = mu[0] + scale * jnp.exp(log_sigma[0]) * eps
    return z, ctrl(z, h)


class PosteriorSamplePolicy(AgentPolicy):
    def __init__(self, *paths, noise: float = 0.0, scale: float = 1.0):
        super().__init__(*paths, noise=noise)
        self.scale = scale

    def reset(self, seed: int, env) -> None:
        super().reset(seed, env)
        self.z_rng = np.random.default_rng([seed, 7])  # apart from the action noise's stream

    def encode_act(self, frame):
        self.advance()  # M's step on the previous frame first: C reads the current h
        eps = self.z_rng.standard_normal(self.vae.mu_b.shape[-1]).astype(np.float32)
        return encode_act_sampled(
            self.vae, self.ctrl, jnp.asarray(frame), self.carry[0], jnp.asarray(eps), self.scale
        )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--models", default="models")
    ap.add_argument("--round", default="0")
    ap.add_argument("--seeds", type=parse_seeds, default="70000-70015", help="as wm play's")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--noise", type=float, default=0.0)
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--crop-hud", action="store_true", help="as env.crop_hud (V's frames)")
    args = ap.parse_args()
    d = args.models
    policy = PosteriorSamplePolicy(
        f"{d}/vae.eqx",
        f"{d}/r{args.round}/mdrnn.eqx",
        f"{d}/r{args.round}/controller.eqx",
        noise=args.noise,
        scale=args.scale,
    )
    env, scores = make_env(True), []
    for seed in args.seeds:
        ep = run_episode(env, policy, seed, args.max_steps, crop_hud=args.crop_hud)
        scores.append(float(ep["reward"].sum()))
        print(f"seed {seed}: {scores[-1]:.1f} ({len(ep['reward'])} frames)", flush=True)
    print(f"mean {np.mean(scores):.1f} ± {np.std(scores):.1f} over {len(scores)} episodes")


if __name__ == "__main__":
    main()
