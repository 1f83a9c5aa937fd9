#!/usr/bin/env bash
# A dress rehearsal of the GPU suite on a machine without a GPU: bench/gpu-kit.sh's kit, then
# bench/gpu-suite.sh with every binary of the kit run on a simulated NVIDIA GA102 (Mesa 26's NVK
# on its drm-shim, bench/drm-shim.sh). A submission there does nothing, so the times mean
# nothing and the steps that compare results with the CPU (selfcheck, the kernel tests) fail;
# what it shows is that a lent GPU's few minutes will not be lost to the suite itself: the kit
# unpacks, Vulkan is found, every step starts within its limit and writes its tables, and the
# tune builds its pipelines before timing.
#
#   bench/gpu-suite-dry.sh OUT_DIR     # about 2 minutes after the kit's build
#
# Exits 1 when a step that needs no computed result did not exit 0 or left no table, or the
# tune built pipelines while timing. Needs the Mesa 26 side userland of .ci/mesa26.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/gpu-suite-dry.sh OUT_DIR}
# shellcheck source=bench/drm-shim.sh
. bench/drm-shim.sh
bench/gpu-kit.sh > "$icds/kit.log" 2>&1 || { cat "$icds/kit.log" >&2; exit 1; }

# The kit again, each binary replaced by a script that runs it on the simulated device.
kit="$icds/kit"
real="$icds/real"
mkdir -p "$kit" "$real"
cp -r .devbin/gl .devbin/commit.txt "$kit/"
export -f on_shim
export icds root lib
for gz in .devbin/*.gz; do
  name=$(basename "$gz" .gz)
  gunzip -c "$gz" > "$real/$name"
  chmod +x "$real/$name"
  printf '#!/usr/bin/env bash\non_shim nouveau nouveau NOUVEAU_CHIPSET=0x172 -- %q "$@"\n' \
    "$real/$name" > "$kit/$name"
  gzip "$kit/$name"
done

KIT=$kit bench/gpu-suite.sh "$out"

# What must have worked, from the suite's own record.
failed=0
expect() { # NAME TABLE: the step exited 0 and wrote TABLE
  local rc
  rc=$(awk -F'\t' -v s="$1" '$1 == s {print $2}' "$out/steps.tsv")
  if [ "$rc" != 0 ] || [ ! -s "$out/$2" ]; then
    echo "gpu-suite-dry: FAILED: step $1 exited '${rc:-never ran}', table $2 $([ -s "$out/$2" ] && echo present || echo missing)"
    failed=1
  fi
}
expect info info.log
expect tune-f32 tune-f32.md
expect steps-tuned steps-tuned.md
expect tune-mixed tune-mixed.md
expect steps-mixed steps-mixed.md
expect layers layers.md
expect profile profile.md
expect profile-mixed profile-mixed.md
for t in selfcheck test-gemm test-mixed test-conv test-unchecked; do
  grep -q "^$t	" "$out/steps.tsv" || { echo "gpu-suite-dry: FAILED: step $t never ran"; failed=1; }
done
for tune in tune-f32 tune-mixed; do
  grep -q '(0 more pipelines built while timing' "$out/$tune.md" ||
    { echo "gpu-suite-dry: FAILED: $tune built pipelines while timing: $(sed -n 2p "$out/$tune.md")"; failed=1; }
done
[ "$failed" = 0 ] && echo "gpu-suite-dry: every step ran; those that need no computed result exited 0 with their tables"
exit "$failed"
