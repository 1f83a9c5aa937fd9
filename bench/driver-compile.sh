#!/usr/bin/env bash
# Compiles every dispatch form of the GEMM core with two real GPU compilers on a machine without
# a GPU, and tabulates their registers, spills and occupancy: Mesa 26's RADV (ACO) for an AMD
# Radeon RX 7900 (Navi 31, RDNA3) and NVK (NAK) for an NVIDIA GA102 (Ampere, RTX 3090 class),
# each on a simulated device (Mesa's drm-shim: the driver's own compiler runs, no command does).
# The forms are those of `kernels::gemm_core::driver_check` (the library's unit test, which fails
# if a driver refuses any form); each driver compiles those its device takes (features,
# fragment sizes, subgroup sizes, limits).
#
#   bench/driver-compile.sh [OUT_DIR]    # default bench-results/driver-compile-<date>
#   DRIVERS=radv bench/driver-compile.sh  # one of them (radv, nvk; default both)
#
# Needs the Mesa 26 side userland of .ci/mesa26.sh (run first, as root) and, in it, Debian's
# mesa-drm-shim, which this script installs there when missing (root and the Debian mirror).
# Takes 20-35 minutes on this project's 2-core machine after the build (RADV under one; NAK
# prints each shader whole), and keeps the filtered driver output beside the tables (*.log).
# What it does not show: whether the kernels compute right or fast on hardware, or what
# NVIDIA's own compiler makes of them.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${HETCONV_MESA26:-/opt/trixie}
lib="$root/usr/lib/x86_64-linux-gnu"
out=${1:-bench-results/driver-compile-$(date -u +%Y-%m-%d)}
mkdir -p "$out"

[ -f "$lib/libvulkan_radeon.so" ] || { echo "driver-compile: no Mesa 26 in $root: run .ci/mesa26.sh" >&2; exit 1; }
if [ ! -f "$lib/libamdgpu_noop_drm_shim.so" ]; then
  chroot "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie-backports mesa-drm-shim' >/dev/null
fi

test_bin=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
[ -x "$test_bin" ] || { echo "driver-compile: the library's test binary did not build" >&2; exit 1; }

icds=$(mktemp -d)
trap 'rm -rf "$icds"' EXIT
for driver in radeon nouveau; do
  printf '{"file_format_version": "1.0.1", "ICD": {"library_path": "%s/libvulkan_%s.so", "api_version": "1.4.309"}}\n' \
    "$lib" "$driver" > "$icds/$driver.json"
done

# $1: driver (radeon, nouveau); $2: its drm-shim (amdgpu, nouveau); the rest: VAR=value words.
# Runs the check through trixie's loader with the shim preloaded; its output on stdout.
compile_all() {
  local driver=$1 shim=$2
  shift 2
  env "$@" HETCONV_DRIVER_COMPILE=1 MESA_SHADER_CACHE_DISABLE=true VK_ICD_FILENAMES="$icds/$driver.json" XDG_RUNTIME_DIR=/tmp \
    "$root/lib64/ld-linux-x86-64.so.2" --preload "$lib/lib${shim}_noop_drm_shim.so" \
    --library-path "$lib:$root/lib/x86_64-linux-gnu" \
    "$test_bin" driver_check --nocapture --test-threads 1 2>&1
}

# The check's own lines and the drivers' statistic lines (NAK prints each shader whole as well).
keep='^driver-check:|^[A-Za-z /]+: [0-9]+|forms compiled|not for this device|test result|panicked|failed'
drivers=${DRIVERS:-radv,nvk}
runs=()
if [[ ",$drivers," == *,radv,* ]]; then
  compile_all radeon amdgpu AMDGPU_GPU_ID=navi31 RADV_DEBUG=shaderstats,nocache |
    grep -E "$keep" > "$out/radv-navi31.log"
  runs+=(radv-navi31:radv)
fi
if [[ ",$drivers," == *,nvk,* ]]; then
  compile_all nouveau nouveau NOUVEAU_CHIPSET=0x172 NAK_DEBUG=print |
    grep -E "$keep" > "$out/nvk-ga102.log"
  runs+=(nvk-ga102:nak)
fi

status=0
for run in "${runs[@]}"; do
  name=${run%%:*}
  grep -q 'test result: ok' "$out/$name.log" || { echo "driver-compile: $name: the check failed (see $out/$name.log)" >&2; status=1; }
  python3 bench/driver_stats.py "${run##*:}" "$out/$name" "GEMM core compiled by ${name} (Mesa 26, drm-shim)" \
    < "$out/$name.log" > /dev/null
  grep -E 'forms compiled' "$out/$name.log"
done
exit $status
