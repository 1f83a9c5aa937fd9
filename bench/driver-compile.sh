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
#   FILTER='role 1]' bench/driver-compile.sh OUT_DIR   # only the forms whose name holds FILTER
#
# Needs the Mesa 26 side userland of .ci/mesa26.sh (run first, as root); bench/drm-shim.sh
# installs Debian's mesa-drm-shim in it when missing.
# Takes 20-35 minutes on this project's 2-core machine after the build (RADV under one; NAK
# prints each shader whole), and keeps the filtered driver output beside the tables (*.log).
# What it does not show: whether the kernels compute right or fast on hardware, or what
# NVIDIA's own compiler makes of them.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-bench-results/driver-compile-$(date -u +%Y-%m-%d)}
mkdir -p "$out"
# shellcheck source=bench/drm-shim.sh
. bench/drm-shim.sh

# The check's own lines and the drivers' statistic lines (NAK prints each shader whole as well).
keep='^driver-check:|^[A-Za-z /]+: [0-9]+|forms compiled|not for this device|test result|panicked|failed'
drivers=${DRIVERS:-radv,nvk}
runs=()
if [[ ",$drivers," == *,radv,* ]]; then
  compile_forms radeon amdgpu "${FILTER:-1}" AMDGPU_GPU_ID=navi31 RADV_DEBUG=shaderstats,nocache |
    grep -E "$keep" > "$out/radv-navi31.log"
  runs+=(radv-navi31:radv)
fi
if [[ ",$drivers," == *,nvk,* ]]; then
  compile_forms nouveau nouveau "${FILTER:-1}" NOUVEAU_CHIPSET=0x172 NAK_DEBUG=print |
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
