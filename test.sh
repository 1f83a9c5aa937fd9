#!/usr/bin/env bash
# Every test of the project: the Rust suite (GPU tests run on whatever adapter wgpu finds:
# Mesa's lavapipe on a machine without a GPU), then the browser demo, built and tested in
# headless Chromium (WebGPU on SwiftShader) against the native command line.
set -euo pipefail
cd "$(dirname "$0")"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"

cargo test --workspace --locked

web/build.sh
(
  cd web/e2e
  npm ci --no-audit --no-fund --loglevel=error
  HETCONV_BIN="$PWD/../../target/debug/hetconv" node --test browser.test.mjs
)
