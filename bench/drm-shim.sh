# shellcheck shell=bash
# Sourced by bench/driver-compile.sh and bench/nak-loops.sh: Mesa 26's drivers on simulated GPUs
# (Mesa's drm-shim), running the library's driver compile check (`kernels::gemm_core::
# driver_check`). Sets `root`, `lib`, `test_bin` and `icds` (removed on exit) and defines
# `on_shim DRIVER SHIM VAR=value... -- COMMAND...` (any command on the simulated device) and
# `compile_forms DRIVER SHIM FILTER VAR=value...`, which prints the check's and the driver's
# output for the forms whose name holds FILTER (`1`: every form).
#
# Needs the Mesa 26 side userland of .ci/mesa26.sh (run first, as root) and, in it, Debian's
# mesa-drm-shim, installed here when missing (root and the Debian mirror).
root=${HETCONV_MESA26:-/opt/trixie}
lib="$root/usr/lib/x86_64-linux-gnu"

[ -f "$lib/libvulkan_radeon.so" ] || { echo "drm-shim: no Mesa 26 in $root: run .ci/mesa26.sh" >&2; exit 1; }
if [ ! -f "$lib/libamdgpu_noop_drm_shim.so" ]; then
  chroot "$root" sh -c 'DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie-backports mesa-drm-shim' >/dev/null
fi

test_bin=$(cargo test --release --lib --no-run --message-format=json 2>/dev/null |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])')
[ -x "$test_bin" ] || { echo "drm-shim: the library's test binary did not build" >&2; exit 1; }

icds=$(mktemp -d)
trap 'rm -rf "$icds"' EXIT
for driver in radeon nouveau; do
  printf '{"file_format_version": "1.0.1", "ICD": {"library_path": "%s/libvulkan_%s.so", "api_version": "1.4.309"}}\n' \
    "$lib" "$driver" > "$icds/$driver.json"
done

# $1: driver (radeon, nouveau); $2: its drm-shim (amdgpu, nouveau); then VAR=value words, `--`
# and a command: runs the command through trixie's loader with the shim preloaded, the driver's
# shader disk cache off.
on_shim() {
  local driver=$1 shim=$2
  shift 2
  local vars=()
  while [ "$1" != -- ]; do vars+=("$1"); shift; done
  shift
  env "${vars[@]}" MESA_SHADER_CACHE_DISABLE=true VK_ICD_FILENAMES="$icds/$driver.json" XDG_RUNTIME_DIR=/tmp \
    "$root/lib64/ld-linux-x86-64.so.2" --preload "$lib/lib${shim}_noop_drm_shim.so" \
    --library-path "$lib:$root/lib/x86_64-linux-gnu" "$@"
}

# $1: driver; $2: its drm-shim; $3: the forms' filter; the rest: VAR=value words. Runs the check
# on the shim.
compile_forms() {
  local driver=$1 shim=$2 filter=$3
  shift 3
  on_shim "$driver" "$shim" "$@" HETCONV_DRIVER_COMPILE="$filter" -- \
    "$test_bin" driver_check --nocapture --test-threads 1 2>&1
}
