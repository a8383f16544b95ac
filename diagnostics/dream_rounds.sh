#!/usr/bin/env bash
# Ha's iterative procedure for a dream-only C, outside the DAG (RESULTS.md, "Session 29"). From a
# C evolved in M_0's dream: round k lets C_{k-1} drive training tracks with exploration noise
# (stages.collect onpolicy, seeds collect.onpolicy.seed0 + 1000 (FIRST + k - 1)), mirrors and
# encodes them, trains M_k from M_{k-1} for rnn.round_steps on the base latents plus every
# round's episodes so far, and continues CMA-ES from C_{k-1} in M_k's dream for
# evolve.round_generations. Every step is a stage's own CLI, so the knobs are the params file's.
# Unlike diagnostics/failure_rounds.sh (session 19, from a clone) it collects before it evolves:
# C_0 already comes out of M_0's dream.
#
# diagnostics/dream_rounds.sh OUT PARAMS.yaml VAE.eqx M0.eqx C0.eqx ROUNDS FIRST BASE_LATENTS...
# then, per round: wm play --models OUT/play<k> --round 0 --seeds 70000-70031 --workers 2
set -euo pipefail
[ $# -ge 8 ] || { sed -n 2,12p "$0"; exit 2; }
out=$1 params=$2 vae=$3 m0=$4 c0=$5 rounds=$6 first=$7
shift 7
base=("$@")
mkdir -p "$out"
cd "$(dirname "$0")/.."
export WM_PARAMS=$params
cp "$m0" "$out/m0.eqx"
cp "$c0" "$out/c0.eqx"
lats=()
for ((k = 1; k <= rounds; k++)); do
  r=$((first + k - 1)) p=$((k - 1)) o=$out
  python -m stages.collect onpolicy "$o/ep$k.zarr" "$o/collect$k.json" --round $r \
    --models "$vae" "$o/m$p.eqx" "$o/c$p.eqx"
  python -m stages.flip_augment "$o/flip$k.zarr" "$o/ep$k.zarr"
  python -m stages.encode_latents "$vae" "$o/lat$k.zarr" "$o/ep$k.zarr" "$o/flip$k.zarr"
  lats+=("$o/lat$k.zarr")
  python -m stages.train_rnn "$o/m$k.eqx" "$o/m$k.json" "$o/m$k.tsv" "${base[@]}" "${lats[@]}" \
    --init "$o/m$p.eqx" --round $r
  python -m stages.evolve "$o/c$k.eqx" "$o/evolve$k.json" "$o/evolve$k.tsv" "$o/m$k.eqx" \
    "${base[@]}" "${lats[@]}" --round $r --vae "$vae" --init "$o/c$p.eqx"
  mkdir -p "$o/play$k/r0"  # what wm play reads: V, and C_k with the M whose h it reads
  cp "$vae" "$o/play$k/vae.eqx"
  cp "$o/c$k.eqx" "$o/play$k/r0/controller.eqx"
  cp "$o/m$k.eqx" "$o/play$k/r0/mdrnn.eqx"
done
