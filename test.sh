#!/usr/bin/env bash
# Every test of the project: the Rust suite (GPU tests run on whatever adapter wgpu finds:
# Mesa's lavapipe on a machine without a GPU), then the browser demo, built and tested in
# headless Chromium (WebGPU on SwiftShader) against the native command line.
set -euo pipefail
cd "$(dirname "$0")"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

# What the tests need beyond Rust, checked (and, as root, installed) before anything is built.
.ci/deps.sh
export HETCONV_PYTHON="${HETCONV_PYTHON:-${HETCONV_VENV:-$HOME/.cache/hetconv/venv}/bin/python}"

# The SPIR-V validator that checks the GEMM core's modules (kernels::gemm_core::spirv_check):
# trixie's, where .ci/mesa26.sh installed it (the test needs SPIRV-Tools 2023.4 or later).
if [ -z "${HETCONV_SPIRV_VAL:-}" ] && [ -x "${HETCONV_MESA26:-/opt/trixie}/usr/bin/spirv-val" ]; then
  export HETCONV_SPIRV_VAL="$PWD/.ci/spirv-val"
fi

# The mpi feature too: the data-parallel tests run under mpirun (tests/mpi.rs).
cargo test --workspace --locked --features hetconv/mpi

# The cooperative-matrix (tensor-core) kernels on Mesa 26 lavapipe, which has 8x8x8 f16 -> f32
# cooperative matrices (the default lavapipe has none): the mixed-precision tests again, on it,
# where skipping a cooperative tile fails (HETCONV_REQUIRE_COOP). .ci/mesa26.sh installs it;
# without it this part is skipped with a note, unless HETCONV_NEED_MESA26 is set (CI).
if [ -f "${HETCONV_MESA26:-/opt/trixie}/lvp26.json" ]; then
  echo "test.sh: mixed-precision tests on Mesa 26 lavapipe (cooperative matrices)"
  # --workspace: the same feature set as the run above, so nothing is rebuilt.
  # HETCONV_ONLY_MIXED: the direct and f32 paths ran above; here only the mixed ones run.
  CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/.ci/mesa26-run" HETCONV_REQUIRE_COOP=1 \
    HETCONV_ONLY_MIXED=1 \
    cargo test --workspace --locked --features hetconv/mpi --test gemm --test mixed --test conv --test unchecked --test tune -- \
    grouped_3x3 pointwise_dense fused_hetconv_every_part strided_every_kind standard_kxk_convs \
    split_reductions matmul mixed a_non_finite unchecked_mixed unchecked_split several_blocks
elif [ -n "${HETCONV_NEED_MESA26:-}" ]; then
  echo "test.sh: ERROR: HETCONV_NEED_MESA26 is set but Mesa 26 lavapipe is not installed (.ci/mesa26.sh)" >&2
  exit 1
else
  echo "test.sh: note: Mesa 26 lavapipe is not installed (.ci/mesa26.sh): the cooperative-matrix kernels were not run"
fi

# The library alone, without the command line's dependencies (the `cli` feature), as an
# application that embeds it builds it: the generic model, trainer and checkpoint tests. Last
# of the native builds: the other feature set rebuilds the dependencies once.
echo "test.sh: the library without the cli feature"
cargo test --locked --no-default-features --test custom_model --test checkpoint

web/build.sh
(
  cd web/e2e
  npm ci --no-audit --no-fund --loglevel=error
  HETCONV_BIN="$PWD/../../target/debug/hetconv" node --test browser.test.mjs
)
