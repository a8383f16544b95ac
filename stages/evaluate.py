"""evaluate: the final agent drives the real CarRacing-v3 from frame 0 on held-out seeds.

python -m stages.evaluate METRICS.json SCORES.tsv VIDEO_DIR STRIP.png MODELS_DIR SELECT.json

The agent is round ``evaluate.round``'s, or with 'best' the one the select stage chose
(SELECT.json, from training tracks only). Writes the metrics, per-episode scores, mp4s of the
best and the worst episode, and a strip of real frames / V reconstructions / M's open-loop dream
from the best episode.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import jax

from stages.common import run_stage
from wm_core.agent import load_world
from wm_core.checkpoint import read_header
from wm_core.evaluate import score_summary
from wm_core.metrics import write_json, write_tsv
from wm_core.rollout import run_episodes
from wm_core.select import agent_paths, final_round
from wm_core.strip import dream_strip
from wm_core.video import write_mp4, write_png


def write_strip(path: str, ep: dict, models: list[str], temperature: float, seed: int) -> None:
    """The best episode's frames from ~frame 50 (after the zoom-in), 8 panels."""
    vae, rnn, _, _ = load_world(*models)
    t = len(ep["action"])
    start = max(1, min(50, t // 3))
    every = max(1, (t - start) // 8)
    panels = min(8, (t - start) // every)
    key = jax.random.fold_in(jax.random.key(seed), 5)
    img = dream_strip(vae, rnn, ep["obs"], ep["action"], start, panels, every, temperature, key)
    write_png(path, img)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("metrics")
    ap.add_argument("scores")
    ap.add_argument("video_dir")
    ap.add_argument("strip")
    ap.add_argument("models", help="the models directory (vae.eqx, r<k>/)")
    ap.add_argument("select", help="the select stage's JSON (read where evaluate.round is 'best')")
    args = ap.parse_args(argv)

    def body(p) -> None:
        e = p.evaluate
        rnd = final_round(p, args.select)
        models = agent_paths(args.models, rnd)
        seeds = list(range(e.seed0, e.seed0 + e.episodes))
        spec = ("agent", *models, e.noise)  # noise: seeded per episode, replays agree
        eps = run_episodes(spec, seeds, p.env, e.workers, "evaluate", keep_obs=False)
        summary = score_summary(eps)
        summary["round"] = int(rnd)
        info = read_header(models[2])["info"]
        summary["dream_return"] = float(info["dream_return"])
        # 0: dream-only. >0: a hybrid (CMA-ES went on in the real env), never to be mixed up
        summary["real_generations"] = int(info.get("real_generations", 0))
        summary["action_noise"] = e.noise
        if "dream_offroad_frac" in info:  # the same C's off-road fraction in its dreams
            summary["dream_offroad_frac"] = float(info["dream_offroad_frac"])
        write_json(args.metrics, summary)
        write_tsv(
            args.scores,
            [
                {"episode": i, "seed": ep["seed"], "score": float(ep["reward"].sum())}
                for i, ep in enumerate(eps)
            ],
        )
        # Rerun the best and the worst episode with raw frames (driving is deterministic).
        ranked = sorted(eps, key=lambda ep: float(ep["reward"].sum()))
        picks = {"worst": ranked[0]["seed"], "best": ranked[-1]["seed"]}
        replays = run_episodes(spec, list(picks.values()), p.env, 1, "video", keep_raw=True)
        out = Path(args.video_dir)
        out.mkdir(parents=True, exist_ok=True)
        for (name, seed), ep in zip(picks.items(), replays):
            write_mp4(out / f"{name}_seed{seed}.mp4", ep["raw"])
        write_strip(args.strip, replays[-1], models, p.dream.temperature, p.seed)

    run_stage("evaluate", body)


if __name__ == "__main__":
    main()
