#!/usr/bin/env bash
# The GPU benchmark suite, from binaries built beforehand, into one folder, within a time budget
# on a GPU machine, in this order: Vulkan made to see the GPU (bench/gpu-vulkan.sh), adapter
# info, every kernel variant against the CPU reference on this GPU (selfcheck, f32 and mixed),
# tuning from an empty cache (its cost is the table's header), the whole step with the tuned
# kernels against the direct kernels alone (pairs of steps in one process), the same in mixed
# precision, the layer table, a
# per-kernel profile, the PyTorch peer where it imports and sees CUDA, the mixed profile, and the
# cooperative-matrix kernel tests (selfcheck has checked those tiles already).
#
#   bench/gpu-kit.sh                 # on the build machine: packs .devbin/ (carry it)
#   bench/gpu-suite.sh [OUT_DIR]     # on the GPU machine
#
# Without .devbin/ it uses target/release (cargo build --release --bin hetconv --example
# layer_bench; the kernel tests are then skipped). Steps run in order of what they tell (a lent
# GPU's minutes are few): each has a time limit, a failing step does not stop the others, and a
# step that would start with less than 15 s of BUDGET left is skipped. `steps.tsv` records each
# step's exit status and seconds, so a partial run still says what it did.
#
# Knobs (environment): BUDGET (seconds for the whole suite, 540), WIDTH (1), BATCH (16,128),
# PARTS (1,4,16), LIMITS (--max-limits; empty for the WebGPU defaults), KIT (.devbin),
# VULKAN_PROBE_SECONDS (90), ARCHIVE
# (a .tar.gz of OUT_DIR rewritten after every step, for a device tool that brings back only a
# few files: `bench/gpu-suite.sh /tmp/gpu` with ARCHIVE=$OUT/gpu.tar.gz), and the binaries
# HETCONV, LAYER_BENCH.
set -uo pipefail
started=$SECONDS
# Paths given relative to the caller's folder, then everything from the repository root.
out=${1:-}
kit=${KIT:-}
[ -z "$out" ] || { mkdir -p "$out" && out=$(cd "$out" && pwd); }
[ -z "$kit" ] || kit=$(realpath -m "$kit")
cd "$(dirname "$0")/.." || exit 1
out=${out:-bench-results/gpu-$(date -u +%Y%m%d-%H%M)}
kit=${kit:-.devbin}
budget=${BUDGET:-540}
width=${WIDTH:-1}
batch=${BATCH:-16,128}
parts=${PARTS:-1,4,16}
limits=${LIMITS---max-limits}
mkdir -p "$out"
out=$(cd "$out" && pwd)

bin_dir=target/release
tests_dir=
if [ -d "$kit" ]; then
  bin_dir=$(mktemp -d)
  for gz in "$kit"/*.gz; do
    name=$(basename "$gz" .gz)
    if ! { gunzip -c "$gz" > "$bin_dir/$name" && chmod +x "$bin_dir/$name"; }; then
      echo "gpu-suite: ERROR: could not unpack $gz" | tee -a "$out/kit-errors.txt" >&2
      rm -f "$bin_dir/$name"
    fi
  done
  tests_dir=$bin_dir
  cp "$kit/commit.txt" "$out/kit-commit.txt"
  here=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  if [ "$(cat "$kit/commit.txt")" != "$here" ]; then
    echo "gpu-suite: WARNING: $kit was packed at $(cat "$kit/commit.txt"), this tree is $here (rerun bench/gpu-kit.sh)" |
      tee "$out/kit-stale.txt" >&2
  fi
fi
hetconv=${HETCONV:-$bin_dir/hetconv}
layer_bench=${LAYER_BENCH:-$bin_dir/layer_bench}
[ -d "$kit" ] || layer_bench=${LAYER_BENCH:-$bin_dir/examples/layer_bench}

# A fresh cache of this run's own, so that the tuning cost below is the cold one.
export HETCONV_TUNE_CACHE="$out/tune-cache.json"
rm -f "$HETCONV_TUNE_CACHE"
date -u +%FT%TZ > "$out/date.txt"
printf 'step\texit\tseconds\n' > "$out/steps.tsv"

# step NAME LIMIT COMMAND...: runs COMMAND with its output in NAME.log, for at most LIMIT
# seconds and what is left of the budget; records the outcome in steps.tsv.
step() {
  local name=$1 limit=$2
  shift 2
  # 5 s of the budget kept for timeout's --kill-after.
  local left=$((budget - (SECONDS - started) - 5))
  if [ "$left" -lt 15 ]; then
    printf '%s\tskipped (budget)\t0\n' "$name" >> "$out/steps.tsv"
    return
  fi
  [ "$limit" -le "$left" ] || limit=$left
  local t0=$SECONDS
  timeout --kill-after=5 "$limit" "$@" > "$out/$name.log" 2>&1
  local rc=$?
  printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" >> "$out/steps.tsv"
  echo "gpu-suite: $name: exit $rc after $((SECONDS - t0)) s"
  archive
}

# The results so far as one file, where ARCHIVE asks for it (a suite cut short keeps them).
archive() {
  [ -z "${ARCHIVE:-}" ] || { tar -czf "$ARCHIVE.part" -C "$(dirname "$out")" "$(basename "$out")" && mv "$ARCHIVE.part" "$ARCHIVE"; }
}

# The GPU through Vulkan, with the packed loader where the machine has none (gpu-vulkan.sh;
# at most VULKAN_PROBE_SECONDS, 90, of the budget).
archive
. bench/gpu-vulkan.sh
archive
step info 30 "$hetconv" $limits info
command -v nvidia-smi >/dev/null && timeout 20 nvidia-smi > "$out/nvidia-smi.txt" 2>&1
step selfcheck 90 "$hetconv" $limits selfcheck
step tune-f32 120 "$hetconv" $limits tune --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/tune-f32"
step steps-tuned 150 "$hetconv" $limits --tune cached bench --versus-direct --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/steps-tuned"
step tune-mixed 120 "$hetconv" $limits --precision mixed tune --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/tune-mixed"
step steps-mixed 90 "$hetconv" $limits --tune cached bench --precisions mixed --batch "$batch" --parts "$parts" --width-mult "$width" --out "$out/steps-mixed"
# layer_bench opens the adapter's maximum limits whatever LIMITS says: a cache of its own, so
# that its identity never replaces the one the profiles below read.
step layers 90 env HETCONV_TUNE_CACHE="$out/tune-cache-layers.json" "$layer_bench" --batch 16 --out "$out/layers"
step profile 60 "$hetconv" $limits --tune cached bench --batch 128 --parts 4 --width-mult "$width" --steps 3 --profile --out "$out/profile"
# PyTorch's step (fp32, TF32 and AMP) on this GPU, for ratios from one run.
# With the caller's library path: the unpacked loader libraries are none of PyTorch's business.
torch_probe_limit=$((budget - (SECONDS - started) - 20))
[ "$torch_probe_limit" -le 60 ] || torch_probe_limit=60
if [ "$torch_probe_limit" -gt 5 ] &&
  LD_LIBRARY_PATH=$vulkan_saved_ld_path timeout -k 5 "$torch_probe_limit" python3 -c \
    "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" > "$out/pytorch-probe.log" 2>&1; then
  step pytorch 150 env LD_LIBRARY_PATH="$vulkan_saved_ld_path" PYTHONUNBUFFERED=1 \
    python3 bench/pytorch_step.py --batch "$batch" --parts "$parts" --out "$out/pytorch.json"
else
  echo "PyTorch with CUDA not available, or no time left to ask: skipped" | tee "$out/pytorch.skipped"
fi
step profile-mixed 60 "$hetconv" $limits --tune cached --precision mixed bench --batch 128 --parts 4 --width-mult "$width" --steps 3 --profile --out "$out/profile-mixed"
if [ -n "$tests_dir" ]; then
  # The cooperative-matrix and f16 kernels against the f64 reference on this GPU (its 16x16x16
  # tiles are checked nowhere else); a device without cooperative matrices fails here.
  coop_filters=(grouped_3x3 pointwise_dense fused_hetconv_every_part strided_every_kind standard_kxk_convs split_reductions matmul mixed a_non_finite unchecked_mixed)
  for t in gemm mixed conv unchecked; do
    step "test-$t" 90 env HETCONV_REQUIRE_COOP=1 "$tests_dir/test-$t" "${coop_filters[@]}"
  done
else
  echo "no $kit: the kernel tests were not run (bench/gpu-kit.sh packs them)" | tee "$out/tests.skipped"
fi
archive
echo "gpu-suite: results in $out${ARCHIVE:+ and $ARCHIVE} ($((SECONDS - started)) s)"
cat "$out/steps.tsv"
