"""evolve: CMA-ES on the linear controller, entirely inside M's dream.

python -m stages.evolve CTRL.eqx METRICS.json CURVE.tsv RNN.eqx LATENTS.zarr [...]
    [--init CTRL.eqx] [--prev PREV_CTRL.eqx] [--round K] [--vae VAE.eqx] [--judges JUDGES.eqx]

With ``evolve.init: clone`` (the default) CMA-ES starts from a C fitted to the expert's labels
on ``evolve.clone_from``'s episodes, keyframes weighted by ``evolve.clone_keyframe``
(wm_core/clone.py), and that clone competes in the final re-scoring; ``random`` starts from a
fresh C, as Ha did. ``evolve.sigma0`` is CMA-ES's first step around either start. With 0
generations (the default since session 17) there is no search: C is the clone, and the metrics
still give its dream return. CMA-ES from the clone lowered its real score on every draw
measured, while raising its dream return (RESULTS.md, sessions 16 and 17).

In a round (K >= 1) with ``evolve.round_init: prev`` CMA-ES continues from ``--prev``: the C
that round_start@K chose (``evolve.round_start``: the previous round's, as in Ha's iterative
procedure, or the best so far); ``fresh`` starts as round 0 did. ``--init``
always wins.

With judges (``rnn.judges`` more Ms, from ``train_rnn --judges``) each C is dreamed
``evolve.rollouts`` times in M and in every judge, and its fitness is the worst M's mean: a
controller must not rely on one M's mistakes. C always reads M's h, as it will in the real
env; a judge only dreams the world (wm_core.dream, ``memory``).

With ``hybrid.real_generations > 0`` the controller is no longer dream-only: CMA-ES goes on
in the real env from the dream's solution, and the metrics say so (``real_generations``).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from stages.common import run_stage
from wm_core.checkpoint import load_model, save_model
from wm_core.clone import clone_controller
from wm_core.config import EvolveConfig
from wm_core.controller import Controller
from wm_core.data import concat, read_dataset
from wm_core.dream import dream_offroad_frac, make_population_returns, sample_starts
from wm_core.es import evolve
from wm_core.mdrnn import MDNRNN, judges_skeleton
from wm_core.metrics import write_json, write_tsv
from wm_core.resume import Snapshots, fingerprint
from wm_core.road import fit_probe, probe_accuracy
from wm_core.rollout import run_episodes, run_population

FINAL_GEN = 1_000_000  # the final re-scoring's dreams: seeds no generation uses


def evolve_keys_read(round_: int) -> set[str]:
    """The ``evolve`` keys a stage of this round reads (dvc.yaml lists the same; a test checks):
    round 0 reads ``generations``, later rounds ``round_generations`` and ``round_init``;
    ``snapshot_every`` changes no result, and ``round_start`` is read by the round_start stage
    (which C ``--prev`` names). The controller's header records only these, so its bits do not
    depend on a key the stage ignores."""
    skip = {"snapshot_every", "round_start"} | (
        {"round_generations", "round_init"} if round_ == 0 else {"generations"}
    )
    return {f.name for f in dataclasses.fields(EvolveConfig)} - skip


def make_real_check(
    p, vae: str, rnn: str, template: Controller, unravel, output: str, generations: int
):
    """-> on_generation(gen, best_x): every ``real_check_every`` generations (and at the last),
    drive the best-so-far C on the real_check tracks; the column carries the last check."""
    e = p.evolve
    seeds = list(range(e.real_check_seed0, e.real_check_seed0 + e.real_check_episodes))
    tmp = Path(".wm_resume") / (str(Path(output)).replace(os.sep, "__") + ".check.eqx")
    state = {"score": float("nan")}

    def check(gen: int, best_x: np.ndarray) -> dict:
        if gen % e.real_check_every == 0 or gen + 1 == generations:
            ctrl = eqx.combine(
                unravel(jnp.asarray(best_x, jnp.float32)),
                eqx.filter(template, eqx.is_array, inverse=True),
            )
            hp = {"z_dim": template.z_dim, "hidden": template.hidden}
            save_model(tmp, ctrl, "controller", hp)
            spec = ("agent", vae, rnn, str(tmp), 0.0)
            eps = run_episodes(spec, seeds, p.env, p.collect.workers, "real_check", keep_obs=False)
            state["score"] = float(np.mean([ep["reward"].sum() for ep in eps]))
            tmp.unlink(missing_ok=True)
        return {"real_check": state["score"]}

    return check


def hybrid_phase(p, vae: str, rnn: str, x0: np.ndarray, to_ctrl, hp: dict, out: str, inputs):
    """Not dream-only: CMA-ES continued in the real env from the dream's solution ``x0``.

    Generation g drives every member on the same fresh training tracks (common tracks make
    the ranking less noisy). Returns the strategy's final mean (a mean over noisy 2-track
    estimates is safer than the luckiest member) and one curve row per generation.
    """
    h = p.hybrid
    scratch = Path(".wm_resume") / (str(Path(out)).replace(os.sep, "__") + ".hybrid")

    def fitness(pop: np.ndarray, gen: int) -> np.ndarray:
        seeds = list(range(h.seed0 + gen * h.episodes, h.seed0 + (gen + 1) * h.episodes))
        scratch.mkdir(parents=True, exist_ok=True)
        specs = []
        for i, x in enumerate(pop):
            path = scratch / f"g{gen}_c{i}.eqx"
            save_model(path, to_ctrl(x), "controller", hp)
            specs.append(("agent", vae, rnn, str(path), 0.0))
        try:
            r = run_population(specs, seeds, p.env, p.collect.workers, f"hybrid gen {gen}")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return r.mean(axis=1)

    snaps = Snapshots.for_output(
        out + ".hybrid", fingerprint(p.hybrid, inputs, [p.seed, out, x0.tolist()]), 1
    )
    _, _, curve, candidates = evolve(
        x0,
        fitness,
        sigma0=h.sigma0,
        popsize=h.popsize,
        generations=h.real_generations,
        seed=p.seed + 7919,
        snapshots=snaps,
    )
    return candidates[-1], curve, snaps


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("metrics")
    ap.add_argument("curve")
    ap.add_argument("rnn")
    ap.add_argument("latents", nargs="+")
    ap.add_argument("--init", help="a controller for CMA-ES to start from (default: fresh)")
    ap.add_argument("--prev", help="round_start's choice of C (the start with round_init: prev)")
    ap.add_argument("--round", default="0")
    ap.add_argument("--vae", help="V, for the optional real-env checks (evolve.real_check_every)")
    ap.add_argument("--judges", help="more Ms that score C too (fitness: the worst M's mean)")
    args = ap.parse_args(argv)

    def body(p) -> None:
        if p.hybrid.real_generations > 0 and (p.evolve.members > 1 or not args.vae):
            raise RuntimeError("hybrid.real_generations > 0 needs evolve.members: 1 and --vae")
        rnn, _ = load_model(args.rnn, "mdrnn", MDNRNN)
        judges = load_model(args.judges, "mdrnn_judges", judges_skeleton)[0] if args.judges else ()
        if any(j.z_dim != rnn.z_dim or j.hidden != rnn.hidden for j in judges):
            raise RuntimeError(f"--judges {args.judges}: Ms of another shape than {args.rnn}")
        # (world M, memory M): the agent's M dreams alone; a judge dreams while C reads M's h
        worlds = [(rnn, None)] + [(j, rnn) for j in judges]
        parts = [read_dataset(path) for path in args.latents]
        labels = [lab for part in parts for lab in part.attrs.get("episode_policy", [])]
        data = concat(parts, attrs={"episode_policy": labels})  # labels: what evolve.init clones
        rnd = int(args.round)

        def round_key(seed: int):
            return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), 3), rnd)

        key = round_key(p.seed)
        generations = p.evolve.generations if rnd == 0 else p.evolve.round_generations
        init_path = args.init
        if not init_path and rnd > 0 and p.evolve.round_init == "prev":
            if not args.prev:
                raise RuntimeError("evolve.round_init is prev, but no --prev controller was given")
            init_path = args.prev
        if init_path:  # continue from a given controller instead of a fresh one
            init = load_model(init_path, "controller", Controller)[0]
            if init.members != 1:
                raise RuntimeError(f"{init_path}: an ensemble; CMA-ES starts from one C")
        cloned, clone_info = None, {}
        if not init_path and p.evolve.init == "clone":  # every member starts from the clone
            cloned, clone_info = clone_controller(
                rnn, data, p.evolve.clone_from, p.evolve.clone_keyframe
            )
        template = Controller(rnn.z_dim, rnn.hidden, key=jax.random.fold_in(key, 0))
        _, unravel = ravel_pytree(eqx.filter(template, eqx.is_array))
        static = eqx.filter(template, eqx.is_array, inverse=True)
        d = p.dream
        # Round 0's M has seen only random and scripted driving; a round's M has seen C's own
        # off-road frames, so the rounds may charge for leaving the road where round 0 does not.
        penalty, penalty_key = (
            (d.offroad_penalty, "dream.offroad_penalty")
            if rnd == 0
            else (d.round_offroad_penalty, "dream.round_offroad_penalty")
        )
        # the dream this C is evolved in, its charge as offroad_penalty in every round
        dream_used = {
            k: v for k, v in dataclasses.asdict(d).items() if k != "round_offroad_penalty"
        } | {"offroad_penalty": penalty}
        returns = make_population_returns(
            template, d.temperature, d.horizon, d.dropout, penalty, d.action_noise
        )
        probe, probe_info = None, {}
        labels = data.off_road
        if labels is not None and 0 < labels.sum() < len(labels):
            w, b = fit_probe(data.mu, labels)
            probe = (jnp.asarray(w), jnp.asarray(b, jnp.float32))
            probe_info = {"offroad_probe_accuracy": probe_accuracy(data.mu, labels, w, b)}
        elif penalty > 0:
            raise RuntimeError(
                f"{penalty_key} > 0 needs latents with 'off_road' labels of both kinds "
                "(rerun encode_latents; frames on and off the road)"
            )
        inputs = [args.rnn, *args.latents] + [x for x in (init_path, args.judges) if x]

        def final_starts():
            """The dreams that score the kept C as a whole (ensemble, off-road fraction)."""
            rng = np.random.default_rng([p.seed, rnd, FINAL_GEN])
            n = max(p.evolve.final_rollouts, p.evolve.rollouts)
            return sample_starts(data, n, d.warmup, rng, d.reset_starts, p.rnn.z_noise)

        snapshots: list[Snapshots] = []  # cleared once the model is written, not before

        def member(m: int) -> tuple[np.ndarray, float, list[dict]]:
            """One CMA-ES run: member m is exactly the run that ``seed: seed + m`` would give
            (its own init, CMA-ES samples and dreams), so members are independent draws and
            member 0 is the single-controller run."""
            seed = p.seed + m
            key_m = round_key(seed)

            def fitness(pop: np.ndarray, gen: int, rollouts: int = p.evolve.rollouts):
                return world_means(pop, gen, rollouts).min(axis=0)

            def world_means(pop: np.ndarray, gen: int, rollouts: int) -> np.ndarray:
                """(Ms, P): each member's mean return in M and in each judge (own dreams)."""
                means = []
                for w, (world, memory) in enumerate(worlds):
                    rng = np.random.default_rng([seed, rnd, gen] + ([w] if w else []))
                    starts = sample_starts(
                        data, rollouts, d.warmup, rng, d.reset_starts, p.rnn.z_noise
                    )
                    key_g = jax.random.fold_in(key_m, gen + 1)
                    r = returns(
                        world,
                        jnp.asarray(pop, jnp.float32),
                        starts,
                        jax.random.fold_in(key_g, w) if w else key_g,
                        probe,
                        memory,
                    )
                    means.append(np.asarray(r).mean(axis=1))
                return np.stack(means)

            if init_path:
                ctrl = init
            elif cloned is not None:
                ctrl = cloned
            else:
                ctrl = Controller(rnn.z_dim, rnn.hidden, key=jax.random.fold_in(key_m, 0))
            flat0 = np.asarray(ravel_pytree(eqx.filter(ctrl, eqx.is_array))[0])
            if generations == 0:
                return flat0, float(fitness(flat0[None], 0)[0]), [], []
            out = args.model + (f".m{m}" if m else "")
            snaps = Snapshots.for_output(
                out,
                fingerprint(p.evolve, inputs, [seed, args.round, out, dream_used]),
                p.evolve.snapshot_every,
            )
            real_check = None
            if p.evolve.real_check_every > 0:
                if not args.vae:
                    raise RuntimeError("evolve.real_check_every > 0 needs --vae")
                real_check = make_real_check(p, args.vae, args.rnn, ctrl, unravel, out, generations)
            best, best_f, curve, candidates = evolve(
                flat0,
                fitness,
                sigma0=p.evolve.sigma0,
                popsize=p.evolve.popsize,
                generations=generations,
                seed=seed + 1000 * rnd,
                snapshots=snaps,
                on_generation=real_check,
            )
            by_m = []
            if cloned is not None:  # the clone competes too: the dream may not beat it
                candidates = np.concatenate([flat0[None], candidates])
            if p.evolve.final_rollouts > 0:
                # The best-ever member won a max over noisy 16-dream estimates (winner's
                # curse): re-score every generation's best and the final mean on fresh dreams.
                means = world_means(candidates, FINAL_GEN, p.evolve.final_rollouts)
                i = int(np.argmax(means.min(axis=0)))
                best, best_f, by_m = candidates[i], float(means[:, i].min()), means[:, i].tolist()
            snapshots.append(snaps)
            return best, best_f, curve, by_m

        runs = [member(m) for m in range(p.evolve.members)]
        ctrl = Controller.ensemble(
            [eqx.combine(unravel(jnp.asarray(x, jnp.float32)), static) for x, *_ in runs]
        )
        dream_ret = runs[0][1]
        if ctrl.members > 1:  # the ensemble's own dream return, on the final re-score's dreams
            starts = final_starts()
            flat, _ = ravel_pytree(eqx.filter(ctrl, eqx.is_array))
            ens_returns = make_population_returns(
                ctrl, d.temperature, d.horizon, d.dropout, penalty, d.action_noise
            )
            r = ens_returns(rnn, flat[None], starts, jax.random.fold_in(key, FINAL_GEN + 1), probe)
            dream_ret = float(np.asarray(r).mean())
        metrics = {"dream_return": dream_ret, "generations": generations} | probe_info | clone_info
        if ctrl.members > 1:
            metrics |= {"members": ctrl.members, "member_dream_returns": [r[1] for r in runs]}
        if judges:  # member 0's kept C: mean return in M, then in each judge (fitness: the min)
            metrics |= {"judges": len(judges), "dream_return_by_m": runs[0][3]}
        info = metrics | {
            "round": args.round,
            "dream": dream_used,
            "evolve": {
                k: v
                for k, v in dataclasses.asdict(p.evolve).items()
                if k in evolve_keys_read(args.round)
            },
        }
        hp = {"z_dim": rnn.z_dim, "hidden": rnn.hidden}
        if ctrl.members > 1:
            hp["members"] = ctrl.members
        real_curve: list[dict] = []
        if p.hybrid.real_generations > 0:

            def to_ctrl(x):
                return eqx.combine(unravel(jnp.asarray(x, jnp.float32)), static)

            x, real_curve, snaps = hybrid_phase(
                p, args.vae, args.rnn, runs[0][0], to_ctrl, hp, args.model, inputs
            )
            snapshots.append(snaps)
            ctrl = to_ctrl(x)
            real = {
                "real_generations": p.hybrid.real_generations,
                "real_mean_last": real_curve[-1]["mean"],  # the last population's real mean
            }
            metrics |= real
            info |= real | {"hybrid": dataclasses.asdict(p.hybrid)}
        if probe is not None:  # how often the kept C's dreams look off the road (vs real)
            frac = dream_offroad_frac(
                ctrl, rnn, final_starts(), jax.random.fold_in(key, FINAL_GEN + 2), probe,
                d.temperature, d.horizon, d.dropout, d.action_noise,
            )  # fmt: skip
            metrics["dream_offroad_frac"] = info["dream_offroad_frac"] = frac
        save_model(args.model, ctrl, "controller", hp, info)
        write_json(args.metrics, metrics)
        curve = runs[0][2]
        if ctrl.members > 1:  # one x axis for DVC's plot: the members' runs one after another
            curve = [
                row | {"generation": m * generations + row["generation"], "member": m}
                for m, (_, _, rows, _) in enumerate(runs)
                for row in rows
            ]
        if real_curve:  # the real generations continue the dream's, marked env = real
            blank = dict.fromkeys(curve[0] if curve else {}, float("nan"))  # real_check: dream only
            curve = [row | {"env": "dream"} for row in curve] + [
                blank | row | {"generation": generations + row["generation"], "env": "real"}
                for row in real_curve
            ]
        write_tsv(
            args.curve,
            curve
            or [
                {
                    "generation": 0,
                    "best": dream_ret,
                    "mean": dream_ret,
                    "best_ever": dream_ret,
                    "sigma": 0.0,
                }
            ],
        )
        for snaps in snapshots:
            snaps.clear()

    run_stage("evolve", body)


if __name__ == "__main__":
    main()
