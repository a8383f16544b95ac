#!/usr/bin/env bash
# Ha's iterative procedure outside the DAG, from a given C: round k evolves C_k in M_k's dream
# from C_{k-1}, lets C_k drive training tracks with exploration noise (seeds
# collect.onpolicy.seed0 + 1000 (FIRST + k)), mirrors and encodes them, and trains M_{k+1} from M_k
# on the round-0 latents plus every round's episodes so far. Each step is a stage's own CLI, so
# the knobs are the params file's: evolve.generations / round_generations, rnn.round_steps,
# collect.onpolicy.episodes / noise. RESULTS.md, "Session 19", ran it with 5 rounds, FIRST 10.
#
# diagnostics/failure_rounds.sh OUT PARAMS.yaml VAE.eqx M.eqx C.eqx R0_LATENTS.zarr ROUNDS [FIRST]
# then, per round: wm play --models OUT/play<k> --round 0 --seeds 70000-70031 --workers 2
set -euo pipefail
[ $# -ge 7 ] || { sed -n 2,10p "$0"; exit 2; }
out=$1 params=$2 vae=$3 rnn=$4 ctrl=$5 r0=$6 rounds=$7 first=${8:-10}
mkdir -p "$out"
cd "$(dirname "$0")/.."
export WM_PARAMS=$params
cp "$rnn" "$out/m0.eqx"
prev=$ctrl lats=()
for ((k = 0; k < rounds; k++)); do
  r=$((first + k)) o=$out
  python -m stages.evolve "$o/c$k.eqx" "$o/evolve$k.json" "$o/evolve$k.tsv" "$o/m$k.eqx" "$r0" \
    "${lats[@]}" --round $r --vae "$vae" --init "$prev"
  python -m stages.collect onpolicy "$o/ep$k.zarr" "$o/collect$k.json" --round $r \
    --models "$vae" "$o/m$k.eqx" "$o/c$k.eqx"
  python -m stages.flip_augment "$o/flip$k.zarr" "$o/ep$k.zarr"
  python -m stages.encode_latents "$vae" "$o/lat$k.zarr" "$o/ep$k.zarr" "$o/flip$k.zarr"
  lats+=("$o/lat$k.zarr")
  python -m stages.train_rnn "$o/m$((k + 1)).eqx" "$o/m$((k + 1)).json" "$o/m$((k + 1)).tsv" \
    "$r0" "${lats[@]}" --init "$o/m$k.eqx" --round $r
  mkdir -p "$o/play$k/r0"  # what wm play reads: V, and C_k with the M whose h it was evolved on
  cp "$vae" "$o/play$k/vae.eqx"
  cp "$o/c$k.eqx" "$o/play$k/r0/controller.eqx"
  cp "$o/m$k.eqx" "$o/play$k/r0/mdrnn.eqx"
  prev=$o/c$k.eqx
done
