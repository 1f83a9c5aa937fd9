#!/usr/bin/env bash
# What tuning costs in pipeline compiles, measured with two real GPU compilers on a machine
# without a GPU: `hetconv tune` as bench/gpu-suite.sh runs it (full width, --max-limits, batch
# 16 and 128, P = 1, 4, 16; f32, then mixed precision), on Mesa 26's RADV for an AMD RX 7900
# (Navi 31) and NVK for an NVIDIA GA102, each on a simulated device (Mesa's drm-shim). There a
# submission does nothing and returns at once, so every candidate "runs" in no time: the
# choices mean nothing, but the pipelines built are those a real device with the same features
# and limits builds (every candidate's, before any is timed), and the tuning time is nearly all
# their compiles.
#
#   bench/tune-compile.sh OUT_DIR [BASELINE_HETCONV]
#
# With BASELINE_HETCONV (an older hetconv binary) each run is made with it too, in turn. Needs
# the Mesa 26 side userland of .ci/mesa26.sh; bench/drm-shim.sh installs the shim. DRIVERS=radv
# or nvk for one of them; PARTS, BATCH as in gpu-suite.sh. Writes OUT_DIR/tune-compile.md (each
# run's wall time and tune header) and each run's log. User time is the same in each pair: the
# wall time of a RADV run is mostly waits on the simulated device, which vary by seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/tune-compile.sh OUT_DIR [BASELINE_HETCONV]}
baseline=${2:-}
mkdir -p "$out"
# shellcheck source=bench/drm-shim.sh
. bench/drm-shim.sh
cargo build --release --bin hetconv --quiet
current=target/release/hetconv
parts=${PARTS:-1,4,16}
batch=${BATCH:-16,128}

# run NAME DRIVER SHIM BINARY VAR=value... -- HETCONV_ARGS...: one tune from an empty cache.
run() {
  local name=$1 driver=$2 shim=$3 binary=$4
  shift 4
  local vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  rm -f "$out/$name.cache.json"
  local t0=$SECONDS
  on_shim "$driver" "$shim" "${vars[@]}" -- \
    "$binary" --max-limits --tune-cache "$out/$name.cache.json" "$@" \
    tune --batch "$batch" --parts "$parts" --out "$out/$name" > /dev/null 2> "$out/$name.log"
  rm -f "$out/$name.cache.json"
  local header
  header=$(sed -n 2p "$out/$name.md")
  # The choices themselves mean nothing here (every candidate ran in no time).
  rm -f "$out/$name.md" "$out/$name.json"
  echo "| $name | $((SECONDS - t0)) | $header |" >> "$out/tune-compile.md"
  echo "tune-compile: $name: $((SECONDS - t0)) s"
}

{
  echo "# hetconv tune on simulated devices: the cost of its pipeline compiles"
  echo
  echo "$(date -u +%F), $(nproc) CPU threads, hetconv $(git rev-parse --short HEAD)$(git diff --quiet || echo ' (with uncommitted changes)'), Mesa 26 drm-shim."
  echo "\`hetconv --max-limits tune --batch $batch --parts $parts\` from an empty cache (bench/tune-compile.sh)."
  echo
  echo "| run | wall s | the tune table's header |"
  echo "|---|---|---|"
} > "$out/tune-compile.md"

drivers=${DRIVERS:-radv,nvk}
for precision in f32 mixed; do
  for d in radv nvk; do
    [[ ",$drivers," == *,$d,* ]] || continue
    case $d in
      radv) set -- radeon amdgpu AMDGPU_GPU_ID=navi31 ;;
      nvk) set -- nouveau nouveau NOUVEAU_CHIPSET=0x172 ;;
    esac
    run "$d-$precision" "$1" "$2" "$current" "$3" -- --precision "$precision"
    [ -z "$baseline" ] || run "$d-$precision-baseline" "$1" "$2" "$baseline" "$3" -- --precision "$precision"
  done
done
cat "$out/tune-compile.md"
