#!/usr/bin/env bash
# The whole comparison on one adapter, into one folder: hetconv's whole step (fused and unfused,
# then a per-kernel GPU profile), the layer benchmark, burn 0.22's wgpu backend on the same model
# (if bench/burn-peer is built) and PyTorch (if it imports and sees CUDA). One run, one adapter:
# compare the ratios inside it.
#
#   bench/suite.sh [OUT_DIR]          # after: cargo build --release --bin hetconv --example layer_bench
#
# Knobs (environment): WIDTH (width multiplier of the step, 1; use 0.25 on a software adapter),
# LAYER_DIV (channel divisor of the layer benchmark, 1), BATCH (16,128), PARTS (1,4,16), and the
# binaries HETCONV, LAYER_BENCH, BURN_PEER.
set -euo pipefail
out=${1:-bench-results/suite-$(date -u +%Y%m%d-%H%M)}
hetconv=${HETCONV:-target/release/hetconv}
layer_bench=${LAYER_BENCH:-target/release/examples/layer_bench}
burn_peer=${BURN_PEER:-bench/burn-peer/target/release/burn-peer}
width=${WIDTH:-1}
layer_div=${LAYER_DIV:-1}
batch=${BATCH:-16,128}
parts=${PARTS:-1,4,16}
mkdir -p "$out"
date -u +%FT%TZ > "$out/date.txt"
"$hetconv" info > "$out/info.txt"
"$hetconv" --max-limits bench --batch "$batch" --parts "$parts" --width-mult "$width" --unfused --out "$out/steps"
"$hetconv" --max-limits bench --batch "$batch" --parts 4 --width-mult "$width" --profile --out "$out/profile"
"$layer_bench" --batch 16 --width-div "$layer_div" --out "$out/layers"
if [ -x "$burn_peer" ]; then
    "$burn_peer" --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/burn"
else
    echo "burn-peer not built ($burn_peer): skipped" | tee "$out/burn.skipped"
fi
if python3 -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
    python3 bench/pytorch_step.py --batch "$batch" --parts "$parts" --out "$out/pytorch.json"
else
    echo "PyTorch with CUDA not available: skipped" | tee "$out/pytorch.skipped"
fi
echo "results in $out"
