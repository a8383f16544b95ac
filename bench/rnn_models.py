"""K MDN-RNNs trained in one program (vmapped over K) against one: what an extra M costs.

    python bench/rnn_models.py [--models 1 2 3] [--steps 10]

A selection rule over K (M, C) pairs needs K Ms trained on the same latents. Trained one after
another they cost K times one M; vmapped, the K models' matmuls are batched together, which
may use 2 cores better than one M's batch of 32 windows. Each M draws its own windows (its own
key), as separately trained Ms would. The baseline is K = 1 in the same run. The last line is
one JSON object.
"""

from __future__ import annotations

import argparse
import json

from harness import REPO, machine_info, synthetic_latents, time_it  # + repo root on sys.path


def main() -> None:
    import equinox as eqx
    import jax
    import optax

    from wm_core.config import load_params
    from wm_core.mdrnn import MDNRNN
    from wm_core.train import SeqData, mdrnn_loss, sample_windows

    cfg = load_params(REPO / "params.yaml").rnn
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--models", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--steps", type=int, default=10, help="train steps per timing")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    seq = SeqData.from_episodes(synthetic_latents(n_episodes=60, length=1000, z_dim=32))
    optim = optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr))

    def step(model, opt_state, key):  # fit_mdrnn's step: windows drawn inside, then Adam
        def loss(m):
            return mdrnn_loss(m, sample_windows(seq, cfg.batch_size, cfg.seq_len, key), cfg, key)

        (value, _), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model)
        updates, opt_state = optim.update(grads, opt_state, eqx.filter(model, eqx.is_array))
        return eqx.apply_updates(model, updates), opt_state, value

    results = {}
    for k in args.models:
        keys = jax.random.split(jax.random.key(0), k)
        models = eqx.filter_vmap(lambda kk: MDNRNN(32, cfg.hidden, cfg.mixtures, key=kk))(keys)
        states = eqx.filter_vmap(lambda m: optim.init(eqx.filter(m, eqx.is_array)))(models)
        train = eqx.filter_jit(eqx.filter_vmap(step))
        st = {"m": models, "o": states, "i": 0}

        def one(k=k, train=train, st=st):
            ks = jax.random.split(jax.random.fold_in(jax.random.key(1), st["i"]), k)
            st["m"], st["o"], st["loss"] = train(st["m"], st["o"], ks)
            st["i"] += 1

        secs = time_it(one, args.steps, args.repeats, lambda st=st: st["loss"].block_until_ready())
        results[k] = secs / args.steps
        print(f"{k} M(s): {1000 * results[k]:.0f} ms per step, {1000 * results[k] / k:.0f} per M")
    base = results.get(1)
    print(
        json.dumps(
            {
                "ms_per_step": {k: round(1000 * s, 1) for k, s in results.items()},
                "speedup_per_m_vs_one": {
                    k: round(base * k / s, 3) for k, s in results.items() if base is not None
                },
                "batch": cfg.batch_size,
                "seq_len": cfg.seq_len,
                **machine_info(),
            }
        )
    )


if __name__ == "__main__":
    main()
