#!/usr/bin/env bash
# The GPU benchmark suite, from binaries built beforehand, into one folder, in a few minutes on a
# GPU machine: adapter info, every kernel variant against the CPU reference on this GPU
# (selfcheck), tuning from an empty cache (its cost is the table's header), the whole step with
# the tuned kernels and with the direct kernels alone, a per-kernel profile, the layer table,
# and PyTorch where it imports and sees CUDA.
#
#   cargo build --release --bin hetconv --example layer_bench
#   bench/gpu-suite.sh [OUT_DIR]
#
# Knobs (environment): WIDTH (1), BATCH (16,128), PARTS (1,4,16), LIMITS (--max-limits; empty
# for the WebGPU defaults), and the binaries HETCONV, LAYER_BENCH.
set -euo pipefail
out=${1:-bench-results/gpu-$(date -u +%Y%m%d-%H%M)}
hetconv=${HETCONV:-target/release/hetconv}
layer_bench=${LAYER_BENCH:-target/release/examples/layer_bench}
width=${WIDTH:-1}
batch=${BATCH:-16,128}
parts=${PARTS:-1,4,16}
limits=${LIMITS---max-limits}
mkdir -p "$out"
# A fresh cache of this run's own, so that the tuning cost below is the cold one.
export HETCONV_TUNE_CACHE="$out/tune-cache.json"
rm -f "$HETCONV_TUNE_CACHE"
date -u +%FT%TZ > "$out/date.txt"
"$hetconv" $limits info > "$out/info.txt"
command -v nvidia-smi >/dev/null && nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
"$hetconv" $limits selfcheck > "$out/selfcheck.txt"
"$hetconv" $limits tune --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/tune"
"$hetconv" $limits --tune cached bench --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/steps-tuned"
"$hetconv" $limits --conv direct bench --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/steps-direct"
"$hetconv" $limits --tune cached bench --batch 128 --parts 4 --width-mult "$width" --steps 3 --profile --out "$out/profile"
"$layer_bench" --batch 16 --out "$out/layers"
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    python3 bench/pytorch_step.py --batch "$batch" --parts "$parts" --out "$out/pytorch.json"
else
    echo "PyTorch with CUDA not available: skipped" | tee "$out/pytorch.skipped"
fi
echo "results in $out"
