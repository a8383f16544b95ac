"""Which round's agent is the final one: the one that drove best on its training tracks.

Every on-policy round k drives agent ``rounds.k.prev`` on its own training tracks
(collect_onpolicy@k, with exploration noise). The agents no round drove (the last one) drive,
in the select stage, the tracks the next rounds would, with the same noise and episode count.
The final agent is the argmax of those mean returns. Why: the rounds do not converge, and the
last agent is one draw among neighbours whose returns move 100-200 points from round to round
(RESULTS.md, sessions 39-40), as CMA-ES keeps its best-ever C rather than the last generation's.
Only training tracks enter the choice; evaluation's held-out tracks never do.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from wm_core.config import Params, onpolicy_seed0
from wm_core.errors import WMError


def agents(p: Params) -> list[str]:
    """Agent 0 and every round's, in round order."""
    return sorted(["0", *p.rounds], key=int)


def drivers(p: Params) -> dict[str, str]:
    """Agent -> the first on-policy round that collected with it."""
    drove: dict[str, str] = {}
    for k in sorted(p.rounds, key=int):
        drove.setdefault(p.rounds[k]["prev"], k)
    return drove


def undriven(p: Params) -> list[str]:
    """The agents no round drove (with a chain of rounds: the last one), in round order."""
    drove = drivers(p)
    return [a for a in agents(p) if a not in drove]


def select_seeds(p: Params) -> dict[str, range]:
    """Agent -> the training tracks it drives in the select stage: the j-th undriven agent gets
    those on-policy round ``last + 1 + j`` would (after main's ten rounds: 41000 .. 41019)."""
    o = p.collect.onpolicy
    nxt = max(int(a) for a in agents(p)) + 1
    out = {}
    for j, a in enumerate(undriven(p)):
        s0 = onpolicy_seed0(o, str(nxt + j))
        out[a] = range(s0, s0 + o.episodes)
    return out


def read_key(path: Path, key: str, kind=float):
    """``kind(json[key])`` from a stage's metrics file: ``float`` for a mean return, ``dict``
    for a record of them (values as floats). A missing file or key is one clear error."""
    try:
        value = json.loads(path.read_text())[key]
        if kind is dict:
            return {str(k): float(v) for k, v in value.items()}
        return kind(value)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: missing (did the stage that writes it run?)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise RuntimeError(f"{path}: no valid {key!r} in it ({e!r}); rerun its stage") from None


def pick(returns: dict[str, float]) -> str:
    """The agent with the highest mean return; a tie goes to the later round (more data)."""
    if not returns:
        raise WMError("select: no agent to choose from")
    bad = {a: r for a, r in returns.items() if not math.isfinite(r)}
    if bad:
        raise WMError(f"select: non-finite mean return for agent(s) {sorted(bad)}")
    return max(returns, key=lambda a: (returns[a], int(a)))


def final_round(p: Params, select_json: str | Path, requested: str | None = None) -> str:
    """The round whose agent is the final one: ``requested`` (default ``evaluate.round``) where
    it names a round, else ('best') the select stage's choice."""
    requested = p.evaluate.round if requested is None else str(requested)
    if requested != "best":
        return requested
    path = Path(select_json)
    try:
        chosen = json.loads(path.read_text())["round"]
    except FileNotFoundError:
        raise WMError(f"{path}: missing (evaluate.round is 'best': run the select stage)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise WMError(f"{path}: no 'round' in it ({e!r}); rerun the select stage") from None
    if str(chosen) not in agents(p):
        raise WMError(f"{path}: round {chosen!r} is not an agent of params' rounds; rerun select")
    return str(chosen)


def agent_paths(models: str | Path, rnd: str) -> list[str]:
    """V, M_r and C_r of round ``rnd``'s agent under the models directory; each must exist."""
    m = Path(models)
    paths = [m / "vae.eqx", m / f"r{rnd}" / "mdrnn.eqx", m / f"r{rnd}" / "controller.eqx"]
    for path in paths:
        if not path.exists():
            raise WMError(f"{path} not found (round {rnd}): run `dvc repro` (or `dvc pull`) first")
    return [str(path) for path in paths]
