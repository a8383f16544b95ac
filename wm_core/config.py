"""Typed, frozen views of params.yaml: one dataclass per top-level section.

Fields have no defaults, so a missing or unknown key fails before any work starts, with one
line naming the key. Ranges are checked in ``__post_init__``. Stages read only the sections
they list under ``params:`` in dvc.yaml.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import yaml

from wm_core.errors import ParamsError  # noqa: F401  (re-exported)

PARAMS_ENV = "WM_PARAMS"  # tests point stages at another params file through this


def _check(ok: bool, key: str, what: str) -> None:
    if not ok:
        raise ParamsError(f"params: {key} must be {what}")


@dataclass(frozen=True)
class EnvConfig:
    max_steps: int  # episode cap; CarRacing-v3's own TimeLimit is 1000
    episode_timeout_s: float  # a worker stuck this long on one episode is an error (watchdog)
    fast: bool  # the pixel-identical fast renderer (False: stock Gymnasium; same data either way)
    crop_hud: bool  # crop the HUD rows before resizing to 64x64 (Ha) or keep them visible

    def __post_init__(self):
        _check(1 <= self.max_steps <= 1000, "env.max_steps", "in [1, 1000]")
        _check(self.episode_timeout_s > 0, "env.episode_timeout_s", "> 0")


@dataclass(frozen=True)
class RandomConfig:
    seed0: int  # episode i runs on track seed seed0 + i
    episodes: int
    dt: float  # Brownian step: a_{t+1} = clip(a_t + sqrt(dt) * N(0, I))

    def __post_init__(self):
        _check(self.seed0 >= 0, "collect.random.seed0", ">= 0")
        _check(self.episodes >= 1, "collect.random.episodes", ">= 1")
        _check(0 < self.dt <= 1, "collect.random.dt", "in (0, 1]")


HEURISTIC_MODES = ("plain", "recovery", "aggressive", "commit")


@dataclass(frozen=True)
class HeuristicConfig:
    seed0: int
    episodes: dict[str, int]  # mode -> episodes; modes are HEURISTIC_MODES
    KEY: ClassVar[str] = "collect.heuristic"  # where it sits in params.yaml (error messages)
    MIN_TOTAL: ClassVar[int] = 0  # 0: a random-only dataset (the data-mix ablation)

    def __post_init__(self):
        _check(self.seed0 >= 0, f"{self.KEY}.seed0", ">= 0")
        for mode, n in self.episodes.items():
            key = f"{self.KEY}.episodes.{mode}"
            _check(mode in HEURISTIC_MODES, key, f"one of {', '.join(HEURISTIC_MODES)}")
            _check(isinstance(n, int) and n >= 0, key, "an int >= 0")
        _check(
            sum(self.episodes.values()) >= self.MIN_TOTAL,
            f"{self.KEY}.episodes",
            f">= {self.MIN_TOTAL} in total",
        )


@dataclass(frozen=True)
class ScoreHeuristicConfig(HeuristicConfig):
    KEY: ClassVar[str] = "score_heuristic"
    MIN_TOTAL: ClassVar[int] = 1


@dataclass(frozen=True)
class AugmentConfig:
    flip: bool  # mirror every collected episode left-right (False: flip_augment writes none)


@dataclass(frozen=True)
class OnpolicyConfig:
    seed0: int  # round k, episode i runs on seed seed0 + 1000 * k + i
    episodes: int
    noise: float  # std of Gaussian exploration noise added to the controller's action

    def __post_init__(self):
        _check(self.seed0 >= 0, "collect.onpolicy.seed0", ">= 0")
        _check(1 <= self.episodes <= 1000, "collect.onpolicy.episodes", "in [1, 1000]")
        _check(self.noise >= 0, "collect.onpolicy.noise", ">= 0")


@dataclass(frozen=True)
class CollectConfig:
    workers: int
    random: RandomConfig
    heuristic: HeuristicConfig
    onpolicy: OnpolicyConfig

    def __post_init__(self):
        _check(self.workers >= 1, "collect.workers", ">= 1")


@dataclass(frozen=True)
class VAEConfig:
    z_dim: int
    kl_tolerance: float  # free bits: KL floored at kl_tolerance * z_dim nats per image
    lr: float
    batch_size: int
    steps: int
    log_every: int
    snapshot_every: int  # resumable: snapshot every N steps (0 = off); results do not change

    def __post_init__(self):
        _check(self.z_dim >= 1, "vae.z_dim", ">= 1")
        _check(self.snapshot_every >= 0, "vae.snapshot_every", ">= 0")
        _check(self.kl_tolerance >= 0, "vae.kl_tolerance", ">= 0")
        _check(self.lr > 0, "vae.lr", "> 0")
        _check(self.batch_size >= 1, "vae.batch_size", ">= 1")
        _check(self.steps >= 1, "vae.steps", ">= 1")
        _check(self.log_every >= 1, "vae.log_every", ">= 1")


@dataclass(frozen=True)
class RNNConfig:
    hidden: int
    mixtures: int
    mixture: str  # 'factored': Ha's mixture per latent dimension; 'joint': one over all of z
    seq_len: int
    batch_size: int
    lr: float
    grad_clip: float
    steps: int  # round 0
    round_steps: int  # rounds >= 1, warm-started from the previous round
    round_scratch: bool  # rounds >= 1 train M from scratch on their data (rnn.steps) instead
    reward_optimism_weight: float  # weight of squared error when predicted r > actual r
    done_pos_weight: float  # BCE weight of the rare done=1 frames
    dropout: float  # DDL: drop probability on the LSTM input and recurrent h (0 = off)
    z_noise: float  # x V's posterior sigma on M's z (1 = Ha's samples, 0 = posterior means)
    judges: int  # extra Ms (seeds seed + 1 ..) that only score C in evolve: worst M's mean
    log_every: int
    snapshot_every: int  # resumable: snapshot every N steps (0 = off); results do not change

    MIXTURES: ClassVar[tuple[str, ...]] = ("factored", "joint")

    def __post_init__(self):
        _check(self.mixture in self.MIXTURES, "rnn.mixture", f"one of {', '.join(self.MIXTURES)}")
        for k in ("hidden", "mixtures", "seq_len", "batch_size", "steps", "log_every"):
            _check(getattr(self, k) >= 1, f"rnn.{k}", ">= 1")
        _check(self.round_steps >= 0, "rnn.round_steps", ">= 0")
        _check(self.lr > 0, "rnn.lr", "> 0")
        _check(self.grad_clip > 0, "rnn.grad_clip", "> 0")
        _check(self.reward_optimism_weight >= 1, "rnn.reward_optimism_weight", ">= 1")
        _check(self.done_pos_weight > 0, "rnn.done_pos_weight", "> 0")
        _check(0 <= self.dropout < 1, "rnn.dropout", "in [0, 1)")
        _check(self.z_noise >= 0, "rnn.z_noise", ">= 0")
        _check(isinstance(self.judges, int) and self.judges >= 0, "rnn.judges", "an int >= 0")
        _check(self.snapshot_every >= 0, "rnn.snapshot_every", ">= 0")


@dataclass(frozen=True)
class DreamConfig:
    temperature: float  # Ha's: mixture logits / tau, sigma * sqrt(tau)
    horizon: int
    warmup: int  # real steps that warm h up before the dream starts
    dropout: float  # DDL: each dream runs M under its own dropout mask (0 = off)
    reset_starts: float  # fraction of dreams that start at an episode's first frame, h = 0
    offroad_penalty: float  # round 0: per dream step, x P(next frame off the road) (road.py)
    round_offroad_penalty: float  # the same charge in rounds >= 1, whose M has seen C off the road
    action_noise: float  # std of Gaussian noise on each dreamed action (as evaluate.noise)

    def __post_init__(self):
        _check(0 <= self.reset_starts <= 1, "dream.reset_starts", "in [0, 1]")
        _check(self.temperature > 0, "dream.temperature", "> 0")
        _check(self.horizon >= 1, "dream.horizon", ">= 1")
        _check(self.warmup >= 0, "dream.warmup", ">= 0")
        _check(0 <= self.dropout < 1, "dream.dropout", "in [0, 1)")
        _check(self.offroad_penalty >= 0, "dream.offroad_penalty", ">= 0")
        _check(self.round_offroad_penalty >= 0, "dream.round_offroad_penalty", ">= 0")
        _check(self.action_noise >= 0, "dream.action_noise", ">= 0")


@dataclass(frozen=True)
class EvolveConfig:
    popsize: int
    rollouts: int  # dreams per member; fitness is their mean
    sigma0: float
    generations: int  # round 0 (0: C is its start, the clone with init: clone)
    round_generations: int  # rounds >= 1 (0: C is the round's clone with init: clone)
    snapshot_every: int  # resumable: snapshot every N generations (0 = off)
    final_rollouts: int  # re-score each generation's best on this many fresh dreams (0 = off)
    real_check_every: int  # drive the best-so-far C in the real env every N generations (0 = off)
    real_check_episodes: int  # tracks per real check
    real_check_seed0: int  # their seeds: training tracks, disjoint from evaluation's
    members: int  # independent CMA-ES runs whose controllers are averaged (1 = Ha's single C)
    init: str  # 'random': Ha's fresh C; 'clone': C first fitted to the expert's labels (clone.py)
    round_init: str  # rounds >= 1: 'fresh' (as round 0) or 'prev' (from the previous round's C)
    round_start: str  # with prev: 'last' (agent prev's C) or 'best' (best so far, round_start)
    clone_from: list[str]  # episode_policy label prefixes whose episodes are cloned
    clone_keyframe: float  # frame weight 1 + k |y_t - y_{t-1}|_1 / mean in the fit (0 = equal)

    INITS: ClassVar[tuple[str, ...]] = ("random", "clone")
    ROUND_INITS: ClassVar[tuple[str, ...]] = ("fresh", "prev")
    ROUND_STARTS: ClassVar[tuple[str, ...]] = ("last", "best")

    def __post_init__(self):
        _check(self.init in self.INITS, "evolve.init", f"one of {', '.join(self.INITS)}")
        _check(
            self.round_init in self.ROUND_INITS,
            "evolve.round_init",
            f"one of {', '.join(self.ROUND_INITS)}",
        )
        _check(
            self.round_start in self.ROUND_STARTS,
            "evolve.round_start",
            f"one of {', '.join(self.ROUND_STARTS)}",
        )
        _check(
            self.init != "clone" or len(self.clone_from) > 0,
            "evolve.clone_from",
            "a non-empty list when evolve.init is clone",
        )
        _check(self.clone_keyframe >= 0, "evolve.clone_keyframe", ">= 0")
        _check(self.snapshot_every >= 0, "evolve.snapshot_every", ">= 0")
        _check(self.real_check_every >= 0, "evolve.real_check_every", ">= 0")
        _check(self.final_rollouts >= 0, "evolve.final_rollouts", ">= 0")
        _check(self.real_check_episodes >= 1, "evolve.real_check_episodes", ">= 1")
        _check(self.real_check_seed0 >= 0, "evolve.real_check_seed0", ">= 0")
        _check(self.popsize >= 2, "evolve.popsize", ">= 2")
        _check(self.members >= 1, "evolve.members", ">= 1")
        _check(self.rollouts >= 1, "evolve.rollouts", ">= 1")
        _check(self.sigma0 > 0, "evolve.sigma0", "> 0")
        _check(self.generations >= 0, "evolve.generations", ">= 0")
        _check(self.round_generations >= 0, "evolve.round_generations", ">= 0")
        # relations last, so a key out of its own range is named as such
        _check(
            self.round_init == "fresh" or self.members == 1,
            "evolve.round_init",
            "fresh when evolve.members > 1 (a round's CMA-ES starts from one C, not an ensemble)",
        )


@dataclass(frozen=True)
class HybridConfig:
    """Not dream-only: CMA-ES continued in the real env from the dream's controller."""

    real_generations: int  # 0 = off (the controller stays dream-only)
    popsize: int
    episodes: int  # real tracks per member per generation, shared by the whole population
    sigma0: float  # CMA-ES step size around the dream solution
    seed0: int  # generation g drives tracks seed0 + g * episodes + i (training tracks)

    def __post_init__(self):
        _check(self.real_generations >= 0, "hybrid.real_generations", ">= 0")
        _check(self.popsize >= 2, "hybrid.popsize", ">= 2")
        _check(self.episodes >= 1, "hybrid.episodes", ">= 1")
        _check(self.sigma0 > 0, "hybrid.sigma0", "> 0")
        _check(self.seed0 >= 0, "hybrid.seed0", ">= 0")


@dataclass(frozen=True)
class EvaluateConfig:
    seed0: int  # held-out tracks: seed0 .. seed0 + episodes - 1
    episodes: int
    workers: int
    round: str  # whose agent is scored: 'best' (the select stage's choice) or a round id
    noise: float  # std of Gaussian noise on each action (0: C's deterministic actions)

    def __post_init__(self):
        _check(self.seed0 >= 0, "evaluate.seed0", ">= 0")
        _check(self.noise >= 0, "evaluate.noise", ">= 0")
        _check(self.episodes >= 1, "evaluate.episodes", ">= 1")
        _check(self.workers >= 1, "evaluate.workers", ">= 1")


@dataclass(frozen=True)
class Params:
    seed: int
    env: EnvConfig
    collect: CollectConfig
    augment: AugmentConfig
    vae: VAEConfig
    rnn: RNNConfig
    dream: DreamConfig
    evolve: EvolveConfig
    hybrid: HybridConfig
    evaluate: EvaluateConfig
    score_heuristic: ScoreHeuristicConfig  # the expert's score on its own tracks (metrics only)
    rounds: dict[str, dict[str, str]]  # round id -> {prev: previous round id} (may be empty)

    def __post_init__(self):
        for rid, spec in self.rounds.items():
            _check(str(rid).isdigit() and int(rid) >= 1, f"rounds.{rid}", "keyed by ids >= 1")
            _check(set(spec) == {"prev"}, f"rounds.{rid}", "a mapping {prev: <round id>}")
            prev = str(spec["prev"])
            _check(
                prev == "0" or prev in self.rounds, f"rounds.{rid}.prev", "'0' or an id in rounds"
            )
            _check(int(prev) < int(rid), f"rounds.{rid}.prev", "an earlier round")
        _check(
            self.evaluate.round in ("best", "0") or self.evaluate.round in self.rounds,
            "evaluate.round",
            "'best', '0' or an id in rounds",
        )
        self._check_seed_overlap()

    def collection_seeds(self) -> dict[str, range]:
        c = self.collect
        seeds = {
            "collect.random": range(c.random.seed0, c.random.seed0 + c.random.episodes),
            "collect.heuristic": range(
                c.heuristic.seed0, c.heuristic.seed0 + sum(c.heuristic.episodes.values())
            ),
        }
        h = self.score_heuristic
        seeds["score_heuristic"] = range(h.seed0, h.seed0 + sum(h.episodes.values()))
        for rid in self.rounds:
            s0 = onpolicy_seed0(c.onpolicy, rid)
            seeds[f"collect.onpolicy@{rid}"] = range(s0, s0 + c.onpolicy.episodes)
        from wm_core.select import select_seeds  # it reads Params: imported when called

        for agent, r in select_seeds(self).items():
            seeds[f"select@{agent}"] = r
        hy = self.hybrid
        if hy.real_generations > 0:
            seeds["hybrid"] = range(hy.seed0, hy.seed0 + hy.real_generations * hy.episodes)
        e = self.evolve
        if e.real_check_every > 0:
            seeds["evolve.real_check"] = range(
                e.real_check_seed0, e.real_check_seed0 + e.real_check_episodes
            )
        return seeds

    def _check_seed_overlap(self) -> None:
        ev = range(self.evaluate.seed0, self.evaluate.seed0 + self.evaluate.episodes)
        for name, seeds in self.collection_seeds().items():
            overlap = max(seeds.start, ev.start) < min(seeds.stop, ev.stop)
            _check(
                not overlap,
                "evaluate.seed0",
                f"such that evaluation seeds [{ev.start}, {ev.stop}) avoid {name} seeds "
                f"[{seeds.start}, {seeds.stop})",
            )


def onpolicy_seed0(cfg: OnpolicyConfig, round_id: str) -> int:
    return cfg.seed0 + 1000 * int(round_id)


def _build(cls: Any, data: Any, key: str) -> Any:
    """Build dataclass ``cls`` from a YAML mapping, checking keys and leaf types."""
    if not isinstance(data, dict):
        raise ParamsError(f"params: {key} must be a mapping")
    names = {f.name for f in dataclasses.fields(cls)}
    prefix = f"{key}." if key else ""
    for k in data:
        if k not in names:
            raise ParamsError(
                f"params: unknown key {prefix}{k} (allowed: {', '.join(sorted(names))})"
            )
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            raise ParamsError(f"params: missing key {prefix}{f.name}")
        kwargs[f.name] = _coerce(hints[f.name], data[f.name], f"{prefix}{f.name}")
    return cls(**kwargs)


def _coerce(tp: Any, value: Any, key: str) -> Any:
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, key)
    origin = typing.get_origin(tp)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"params: {key} must be a mapping")
        _, vt = typing.get_args(tp)
        return {str(k): _coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ParamsError(f"params: {key} must be a list")
        (vt,) = typing.get_args(tp)
        return [_coerce(vt, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is str and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(tp, type) and (
        not isinstance(value, tp) or isinstance(value, bool) and tp is not bool
    ):
        raise ParamsError(f"params: {key} must be {tp.__name__}, got {value!r}")
    if isinstance(tp, types.UnionType):
        raise TypeError(f"unsupported annotation for {key}")
    return value


def params_path(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get(PARAMS_ENV, "params.yaml"))


def load_params(path: str | os.PathLike | None = None) -> Params:
    """Load and validate the whole params file (every stage does this first)."""
    p = params_path(path)
    try:
        with open(p) as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError:
        raise ParamsError(f"params: file {p} not found") from None
    except yaml.YAMLError as e:
        raise ParamsError(f"params: {p} is not valid YAML: {str(e).splitlines()[0]}") from None
    return _build(Params, raw, "")
