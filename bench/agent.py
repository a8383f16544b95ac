"""The real agent's own cost per frame (collect_onpolicy, select, evaluate, ``wm play``): V
encodes the frame, C acts on [z, h], M steps on [z, a] and its reward head reads h.

    pip install -e '.[bench]' && python bench/agent.py [--frames 400] [--repeats 5]

Three drivers of the same models (Ha's sizes: z 32, LSTM 256, 5 mixtures; random weights, the
cost does not depend on them) over the same uint8 frames, one frame at a time as in a real
episode, each returning a NumPy action and M's reward prediction per frame:
``wm_core.agent.AgentPolicy`` (one jitted call per frame: M's step for the previous frame with V
and C on the new one), the same with two calls per frame (V and C, then M: the agent before
session 50), and a PyTorch agent of the same architecture under ``torch.no_grad`` with the JAX
weights copied in (bench/torch_models.py), on one thread by default as a worker process drives
(``--torch-threads``). The environment is not in the timing (bench/env.py times it). The median
of ``repeats`` passes over the frames; the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from harness import machine_info  # also puts the repo root on sys.path (wm_core)


def main() -> None:
    import jax
    import jax.numpy as jnp
    import torch
    from torch import nn
    from torch_models import TorchMDNRNN, TorchVAE, _t, load_mdrnn, load_vae_encoder

    from wm_core.agent import AgentPolicy, _encode_act
    from wm_core.checkpoint import save_model
    from wm_core.controller import Controller
    from wm_core.mdrnn import MDNRNN
    from wm_core.vae import VAE

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--frames", type=int, default=400, help="frames per pass")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--torch-threads", type=int, default=1)
    ap.add_argument("--noise", type=float, default=0.2, help="action noise, as collect_onpolicy")
    args = ap.parse_args()
    torch.set_num_threads(args.torch_threads)
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, 64, 64, 3), np.uint8)

    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    vae, rnn, ctrl = VAE(32, key=k1), MDNRNN(32, 256, 5, key=k2), Controller(32, 256, key=k3)
    tmp = tempfile.TemporaryDirectory()  # the agents load their models from files, as in a stage
    paths = [str(Path(tmp.name) / f) for f in ("v.eqx", "m.eqx", "c.eqx")]
    save_model(paths[0], vae, "vae", {"z_dim": 32})
    save_model(paths[1], rnn, "mdrnn", {"z_dim": 32, "hidden": 256, "mixtures": 5})
    save_model(paths[2], ctrl, "controller", {"z_dim": 32, "hidden": 256})

    class TwoCalls(AgentPolicy):  # the agent before session 50: V and C, then M
        def encode_act(self, frame):
            self.advance()
            return _encode_act(self.vae, self.ctrl, jnp.asarray(frame), self.carry[0])

    class TorchAgent:
        """The same agent in PyTorch: encoder, linear C on [z, h], LSTM cell, reward head."""

        def __init__(self, noise: float):
            self.vae, self.m = TorchVAE(32), TorchMDNRNN(32, 256, 5)
            load_vae_encoder(self.vae, vae)
            load_mdrnn(self.m, rnn)
            self.cell = nn.LSTMCell(35, 256)
            with torch.no_grad():
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(self.cell, name).copy_(getattr(self.m.lstm, f"{name}_l0"))
                self.c = nn.Linear(288, 3)
                self.c.weight.copy_(_t(ctrl.linear.weight))
                self.c.bias.copy_(_t(ctrl.linear.bias))
            self.noise = noise

        def reset(self, seed: int, env) -> None:
            self.h, self.cs = torch.zeros(1, 256), torch.zeros(1, 256)
            self.rng = np.random.default_rng([seed, 3])
            self.pred_reward: list[float] = []

        @torch.no_grad()
        def act(self, obs, env, frame) -> np.ndarray:
            x = torch.from_numpy(frame)[None].permute(0, 3, 1, 2).float() / 255.0
            z, _ = self.vae.encode(x)
            out = torch.tanh(self.c(torch.cat([z, self.h], 1)))[0]
            a = torch.stack([out[0], (out[1] + 1) / 2, out[2].clamp(0.0, 1.0)]).numpy()
            if self.noise > 0:
                noisy = a + self.noise * self.rng.standard_normal(3)
                a = np.clip(noisy, [-1, 0, 0], [1, 1, 1]).astype(np.float32)
            self.h, self.cs = self.cell(torch.cat([z, torch.from_numpy(a)[None]], 1),
                                        (self.h, self.cs))  # fmt: skip
            self.pred_reward.append(float(self.m.heads(self.h)[3]))
            return a

    drivers = {
        "one_call": AgentPolicy(*paths, noise=args.noise),
        "two_calls": TwoCalls(*paths, noise=args.noise),
        "torch": TorchAgent(args.noise),
    }
    tmp.cleanup()

    def drive(policy) -> tuple[np.ndarray, np.ndarray]:
        policy.reset(0, None)
        actions = np.stack([policy.act(None, None, f) for f in frames])
        return actions, np.asarray(policy.pred_reward, np.float32)

    outs = {name: drive(p) for name, p in drivers.items()}  # compiles the JAX calls
    times: dict[str, list[float]] = {name: [] for name in drivers}
    for _ in range(args.repeats):  # interleaved, so a busy moment hits all three alike
        for name, p in drivers.items():
            t0 = time.perf_counter()
            drive(p)
            times[name].append((time.perf_counter() - t0) / args.frames * 1e3)
    ms = {name: float(np.median(v)) for name, v in times.items()}
    same = np.array_equal(outs["one_call"][0], outs["two_calls"][0]) and np.array_equal(
        outs["one_call"][1], outs["two_calls"][1]
    )
    diff = float(np.abs(outs["one_call"][0] - outs["torch"][0]).max())
    for name, v in ms.items():
        print(f"{name}: {v:.3f} ms/frame", flush=True)
    print(
        json.dumps(
            {
                "jax_ms_per_frame": round(ms["one_call"], 3),
                "jax_two_calls_ms_per_frame": round(ms["two_calls"], 3),
                "torch_ms_per_frame": round(ms["torch"], 3),
                "ratio": round(ms["torch"] / ms["one_call"], 3),  # > 1: JAX faster
                "one_call_vs_two_calls": round(ms["two_calls"] / ms["one_call"], 3),
                "one_and_two_calls_same_bits": bool(same),
                "max_abs_action_diff_vs_torch": diff,
                "frames": args.frames,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
