#!/usr/bin/env bash
# What the GEMM core's main loop costs per stage in NVIDIA instructions, for a few forms, with
# Mesa 26's NVIDIA compiler (NAK) for a simulated GA102 (bench/drm-shim.sh): NAK prints each
# shader (NAK_DEBUG=print) and bench/nak_loops.py counts the loop over the stages in it.
#
#   bench/nak-loops.sh OUT_DIR [BASELINE_LOG]   # OUT_DIR/nak.log and OUT_DIR/loops.md
#
# BASELINE_LOG: the nak.log of an earlier run (another commit), whose counts the table puts
# beside. FORMS (lines) replaces the forms below. About 6 s a form on this project's machine,
# after the build. The counts are static (see bench/nak_loops.py): what the compiler made of the
# source, not what the GPU does with it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:?usage: bench/nak-loops.sh OUT_DIR [BASELINE_LOG]}
baseline=${2:-}
mkdir -p "$out"
# shellcheck source=bench/drm-shim.sh
. bench/drm-shim.sh

# The forward pass of the largest FMA tile; each pass of a middle one; a small tile on a
# pointwise conv; cooperative 16x16x16 tiles on f32 and f16 activations; the forward pass and
# the weight gradient of a middle tile and of a cooperative one reading A a vec4 at a time.
default_forms='gemm_core::gemm[128x128/8x8/k16 role 0] kfast true/false KS Some(3.0)
gemm_core::gemm[64x64/4x4/k16 role 0] kfast true/false KS Some(3.0)
gemm_core::gemm[64x64/4x4/k16 role 1] kfast true/false KS Some(3.0)
gemm_core::gemm[64x64/4x4/k16 role 2] kfast true/true KS Some(3.0)
gemm_core::gemm[64x64/4x4/k16 role 3] kfast true/false KS None
gemm_core::gemm[32x32/4x4/k16 role 0] kfast true/false KS Some(1.0)
gemm_core_coop16::gemm[128x128/16x16x16/k32/w256 role 0] kfast true/false KS Some(3.0)
gemm_core_coop16_act16::gemm[64x64/16x16x16/k32/w128 role 0] kfast true/false KS Some(3.0)
gemm_core_coop16_act16::gemm[64x64/16x16x16/k32/w128 role 2] kfast true/true KS Some(3.0)
gemm_core_quads::gemm[64x64/4x4/k16 role 0] kfast true/false KS Some(3.0)
gemm_core_quads::gemm[64x64/4x4/k16 role 2] kfast true/true KS Some(3.0)
gemm_core_coop16_act16_quads::gemm[64x64/16x16x16/k32/w128 role 0] kfast true/false KS Some(3.0)
gemm_core_coop16_act16_quads::gemm[64x64/16x16x16/k32/w128 role 2] kfast true/true KS Some(3.0)'
: > "$out/nak.log"
while IFS= read -r form; do
  [ -n "$form" ] || continue
  compile_forms nouveau nouveau "$form" NOUVEAU_CHIPSET=0x172 NAK_DEBUG=print > "$icds/form.log" || true
  cat "$icds/form.log" >> "$out/nak.log"
  grep -q "^1 forms compiled" "$icds/form.log" ||
    { echo "nak-loops: $form: not compiled exactly once (see $out/nak.log)" >&2; exit 1; }
done <<< "${FORMS:-$default_forms}"
python3 bench/nak_loops.py "$out/nak.log" ${baseline:+"$baseline"} > "$out/loops.md"
cat "$out/loops.md"
