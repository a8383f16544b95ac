"""CMA-ES (pycma) on the host; fitness of the whole population comes from one jitted call.

pycma minimises, so the sign is flipped exactly once, at ``tell``. The best-ever member
(by its generation's mean dream return) is kept, not the last generation's mean.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from jaxtyping import Float
from tqdm import tqdm

from wm_core.resume import Snapshots

with warnings.catch_warnings():  # pycma warns when matplotlib (plots only) is absent
    warnings.simplefilter("ignore")
    import cma


def evolve(
    x0: Float[np.ndarray, " n"],
    fitness: Callable[[np.ndarray, int], np.ndarray],
    *,
    sigma0: float,
    popsize: int,
    generations: int,
    seed: int,
    on_generation: Callable[[int, np.ndarray], dict] | None = None,
    snapshots: Snapshots | None = None,
):
    """Maximise ``fitness(pop (P, n), generation) -> (P,)``.

    Returns (best_x, best_f, curve, candidates): the best-ever member and its fitness, one row
    per generation, and (generations + 1, n) candidates for a final, larger re-evaluation:
    each generation's best member and the strategy's final mean.

    A snapshot records every generation's fitnesses; resuming replays them through ask/tell
    (pycma's sampling is seeded), which restores the exact strategy state without pickle.
    """
    es = cma.CMAEvolutionStrategy(
        np.asarray(x0, np.float64),
        sigma0,
        {"popsize": popsize, "seed": seed + 1, "verbose": -9, "CMA_diagonal": False},
    )  # pycma treats seed 0 as "random": offset by one keeps every seed deterministic
    best_x, best_f, curve, history = np.asarray(x0, np.float64), -np.inf, [], []
    elites = []
    if snapshots is not None and (snap := snapshots.load()) is not None:
        history, curve = snap[1]["history"], snap[1]["curve"]
        best_x, best_f = np.asarray(snap[1]["best_x"]), snap[1]["best_f"]
        for f in history:  # pycma's sampling is seeded: the same asks, told the same values
            pop = es.ask()
            elites.append(np.array(pop[int(np.argmax(f))]))
            es.tell(pop, [-v for v in f])
    bar = tqdm(range(len(history), generations), desc="evolve", mininterval=2.0)
    for gen in bar:
        pop = np.stack(es.ask())
        f = np.asarray(fitness(pop, gen), np.float64)
        if not np.all(np.isfinite(f)):
            raise FloatingPointError(f"evolve: non-finite dream return in generation {gen}")
        es.tell(list(pop), list(-f))
        i = int(np.argmax(f))
        elites.append(pop[i].copy())
        if f[i] > best_f:
            best_x, best_f = pop[i].copy(), float(f[i])
        row = {
            "generation": gen,
            "best": float(f[i]),
            "mean": float(f.mean()),
            "best_ever": best_f,
            "sigma": float(es.sigma),
        }
        if on_generation is not None:
            row |= on_generation(gen, best_x)
        curve.append(row)
        history.append(f.tolist())
        if snapshots is not None and snapshots.due(gen, generations - 1):
            state = {"history": history, "curve": curve, "best_f": best_f}
            snapshots.save(gen, state | {"best_x": best_x.tolist()})
        bar.set_postfix(best=f"{best_f:.1f}", mean=f"{f.mean():.1f}")
    return best_x, best_f, curve, np.stack(elites + [np.asarray(es.mean, np.float64)])
