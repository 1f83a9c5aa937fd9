#!/usr/bin/env bash
# Packs what bench/gpu-suite.sh runs on a lent GPU machine into .devbin/, built here beforehand
# (the GPU machine's time is short and its start slow): hetconv, the layer benchmark, and the test
# binaries of the kernels that only a GPU with cooperative matrices can check (the 16x16x16
# tiles), all release builds, stripped and gzipped to stay under the device tool's 64 MiB carry
# limit. Then, on the GPU machine, with `.devbin` carried:
#
#   bench/gpu-kit.sh                 # here
#   bench/gpu-suite.sh "$OUT"        # there (it unpacks .devbin/ itself)
set -euo pipefail
cd "$(dirname "$0")/.."
kit=.devbin
limit_mib=64
# The kernel tests that cover the mixed-precision and cooperative-matrix variants (test.sh runs
# the same ones on Mesa 26 lavapipe); bench/gpu-suite.sh names the filters.
tests=(gemm conv mixed unchecked)

cargo build --release --locked --bin hetconv --example layer_bench
test_args=()
for t in "${tests[@]}"; do test_args+=(--test "$t"); done
# The test executables' paths, from cargo's own report of what it built.
mapfile -t test_bins < <(cargo test --release --locked --no-run "${test_args[@]}" --message-format=json |
  python3 -c '
import json, sys
for line in sys.stdin:
    msg = json.loads(line)
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["kind"] == ["test"]:
        print(msg["target"]["name"] + " " + msg["executable"])
')

rm -rf "$kit"
mkdir -p "$kit"
pack() { # NAME PATH: a stripped, gzipped copy as $kit/NAME.gz
  strip -o "$kit/$1" "$2"
  gzip -9 "$kit/$1"
}
pack hetconv target/release/hetconv
pack layer_bench target/release/examples/layer_bench
for entry in "${test_bins[@]}"; do
  pack "test-${entry%% *}" "${entry#* }"
done
[ "$(ls "$kit"/test-*.gz | wc -l)" = "${#tests[@]}" ] ||
  { echo "gpu-kit: ERROR: expected ${#tests[@]} test binaries, found: $(ls "$kit")" >&2; exit 1; }
# Debian's Vulkan loader and glvnd (EGL/GLX dispatch), for a GPU machine that has NVIDIA's
# driver but not these: bench/gpu-vulkan.sh unpacks them there only where no loader is found.
mkdir -p "$kit/gl"
(cd "$kit/gl" && apt-get download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2) ||
  { echo "gpu-kit: ERROR: could not download the loader packages (apt-get download)" >&2; exit 1; }
git rev-parse HEAD > "$kit/commit.txt"
size_kib=$(du -sk "$kit" | cut -f1)
ls -l "$kit"
if [ "$size_kib" -gt $((limit_mib * 1024)) ]; then
  echo "gpu-kit: ERROR: $kit is $size_kib KiB, over the ${limit_mib} MiB carry limit" >&2
  exit 1
fi
echo "gpu-kit: $kit holds $size_kib KiB (limit ${limit_mib} MiB), commit $(cat "$kit/commit.txt")"
echo "gpu-kit: on the GPU machine: run with carry [\"$kit\"]: bench/gpu-suite.sh \"\$OUT\""
