#!/usr/bin/env bash
# Data-parallel overhead: the same training run in one process and with `mpirun -n N` for each
# N (BatchNorm statistics per rank, and --sync-bn), images per second, the share of the steps
# spent exchanging gradients and the final test accuracy, as a Markdown table (printed, and
# written to OUT). On one machine's software adapter the ranks share the
# same cores, so this measures the exchange's overhead, not a speed-up; on a multi-GPU host
# (with --adapter-per-rank) it measures scaling.
#
#   bench/mpi.sh [OUT]        # after: cargo build --release --features mpi
#
# Knobs (environment): HETCONV (binary, target/release/hetconv), RANKS (2), WIDTH (0.25),
# BATCH (32), IMAGES (640 training images: BATCH must divide it), PARTS (4).
set -euo pipefail
out=${1:-bench-results/mpi-$(date -u +%F).md}
hetconv=${HETCONV:-target/release/hetconv}
ranks=${RANKS:-2}
width=${WIDTH:-0.25}
batch=${BATCH:-32}
images=${IMAGES:-640}
parts=${PARTS:-4}
export HETCONV_TUNE=${HETCONV_TUNE:-off} OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
args=(train --width-mult "$width" --part "$parts" --batch-size "$batch" --train-limit "$images"
  --eval-limit "$batch" --epochs 2 --out "$scratch/run")

# One run: "images/s | exchange share | final test accuracy" from its output (the second
# epoch's rate, warm). $@: the launcher and binary; extra flags after "--".
measure() {
  local launch=() extra=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do launch+=("$1"); shift; done
  [ $# -gt 0 ] && shift && extra=("$@")
  "${launch[@]}" "${args[@]}" ${extra[@]+"${extra[@]}"} >"$scratch/log" 2>&1 || { cat "$scratch/log" >&2; exit 1; }
  rm -rf "$scratch/run"
  local rate share accuracy
  rate=$(sed -n 's/^epoch   2:.* \([0-9.]*\) img\/s$/\1/p' "$scratch/log")
  share=$(sed -n 's/^exchange .*(\([0-9]*\)%).*/\1%/p' "$scratch/log")
  accuracy=$(sed -n 's/^final test accuracy \([0-9.]*%\).*/\1/p' "$scratch/log")
  echo "${rate:-?} | ${share:--} | ${accuracy:-?}"
}

rows=("| 1 process | $(measure "$hetconv") |")
for n in $ranks; do
  rows+=("| mpirun -n $n | $(measure mpirun -n "$n" --oversubscribe "$hetconv") |")
  rows+=("| mpirun -n $n, --sync-bn | $(measure mpirun -n "$n" --oversubscribe "$hetconv" -- --sync-bn) |")
done
{
  echo "# Data-parallel overhead, $(date -u +%F)"
  echo
  echo "\`bench/mpi.sh\` on $(nproc) cores, adapter: $("$hetconv" info | sed -n 's/^adapter: *//p'), $(mpirun --version | head -n 1)."
  echo "Binary: $hetconv. VGG-16 width $width, P = $parts, global batch $batch, $images training images, 2 epochs;"
  echo "the second epoch's rate."
  echo
  echo "| run | images/s (epoch 2) | steps' time exchanging gradients | final test accuracy ($batch images) |"
  echo "|---|---|---|---|"
  printf '%s\n' "${rows[@]}"
} | tee "$out"
