"""Per-frame cost of the real agent: two jitted calls per frame (AgentPolicy before session 48)
against one fused call (M's step for the previous action + V + C on the new frame). Run on the
code before f92f994 (branch fused-agent), from the repo root, with run 22's models and data:

    python plots/session48/agent_probe.py models 3 7 [--check]

--check first drives validation track 71000 with both and compares actions and reward predictions;
then interleaved timing rounds on 400 recorded frames of data/heuristic.zarr."""
import sys, time
import numpy as np, jax, jax.numpy as jnp, equinox as eqx
from wm_core import agent as A
from wm_core.encode import jit_native_convs
from wm_core.policies import LOW, HIGH

@jit_native_convs
def _advance_encode_act(vae, rnn, ctrl, z_prev, a_prev, carry, obs):
    carry = rnn.step(z_prev, a_prev, carry)
    _, _, _, r_pred, _ = rnn.heads(carry[0])
    mu, _ = vae.encode(obs[None].astype(jnp.float32) / 255.0, native=True)
    return carry, r_pred, mu[0], ctrl(mu[0], carry[0])

class Fused(A.AgentPolicy):
    def reset(self, seed, env):
        super().reset(seed, env); self._pending = None; self._pred = []
    @property
    def pred_reward(self):
        if getattr(self, "_pending", None) is not None:
            z, a = self._pending
            self.carry, r, _ = A._advance(self.rnn, z, jnp.asarray(a), self.carry)
            self._pred.append(float(r)); self._pending = None
        return self._pred
    @pred_reward.setter
    def pred_reward(self, v):
        self._pred = v
    def act(self, obs, env, frame):
        if self._pending is None:
            z, a = A._encode_act(self.vae, self.ctrl, jnp.asarray(frame), self.carry[0])
        else:
            zp, ap = self._pending
            self.carry, r, z, a = _advance_encode_act(self.vae, self.rnn, self.ctrl, zp, jnp.asarray(ap), self.carry, jnp.asarray(frame))
            self._pred.append(float(r))
        a = np.asarray(a, np.float32)
        if self.noise > 0:
            a = np.clip(a + self.noise * self.rng.standard_normal(3), LOW, HIGH).astype(np.float32)
        self._pending = (z, a)
        return a

models, rnd = sys.argv[1], sys.argv[2]
paths = (f"{models}/vae.eqx", f"{models}/r{rnd}/mdrnn.eqx", f"{models}/r{rnd}/controller.eqx")
from wm_core.env import make_env
from wm_core.rollout import run_episode
env = make_env(fast=True)
if "--check" in sys.argv:
    for seed in (71000,):
        e1 = run_episode(env, A.AgentPolicy(*paths, noise=0.2), seed, 1000)
        e2 = run_episode(env, Fused(*paths, noise=0.2), seed, 1000)
        print("seed", seed, "frames", len(e1["action"]), len(e2["action"]), "return", e1["reward"].sum(), e2["reward"].sum(),
              "actions equal", np.array_equal(e1["action"], e2["action"]), "pred_reward equal", np.array_equal(e1["pred_reward"], e2["pred_reward"]), flush=True)
import zarr
frames = np.asarray(zarr.open_group("data/heuristic.zarr", mode="r")["obs"][:400])
pols = {"two calls": A.AgentPolicy(*paths, noise=0.2), "fused": Fused(*paths, noise=0.2)}
for p in pols.values():
    p.reset(1, env); [p.act(None, env, f) for f in frames[:5]]
times = {n: [] for n in pols}
for r in range(int(sys.argv[3]) if len(sys.argv) > 3 and sys.argv[3].isdigit() else 5):
    for n, p in pols.items():
        p.reset(1, env); t0 = time.perf_counter()
        for f in frames: p.act(None, env, f)
        _ = p.pred_reward
        times[n].append((time.perf_counter() - t0) / len(frames) * 1e3)
for n, v in times.items(): print(n, "ms/frame median", round(float(np.median(v)), 3), [round(x, 3) for x in v])
