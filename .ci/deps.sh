#!/usr/bin/env bash
# What ./test.sh needs beyond a Rust toolchain: a Vulkan driver (Mesa's lavapipe where there is
# no GPU), Chromium, Node.js and npm for the browser test, Open MPI and libclang for the
# data-parallel tests, the wasm32 target and wasm-bindgen-cli
# at Cargo.lock's version for the page, and ONNX Runtime (Python, from the package registry, in
# a virtual environment at $HETCONV_VENV, default ~/.cache/hetconv/venv) for the ONNX export
# test. As root with apt-get it installs what is missing (as CI does); otherwise it names what
# to install in one line and fails, before any build starts.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
has_vulkan_driver() {
  [ -n "${VK_ICD_FILENAMES:-}" ] || compgen -G '/usr/share/vulkan/icd.d/*.json' >/dev/null ||
    compgen -G '/etc/vulkan/icd.d/*.json' >/dev/null
}
has_vulkan_driver || need_apt+=(mesa-vulkan-drivers)
[ -x "${CHROMIUM:-/usr/bin/chromium}" ] || need_apt+=(chromium)
command -v node >/dev/null 2>&1 || need_apt+=(nodejs)
command -v npm >/dev/null 2>&1 || need_apt+=(npm)
# MPI for the data-parallel tests (the mpi feature): Open MPI's launcher and compiler
# wrapper, and libclang, which the mpi crate's bindings are generated with.
command -v mpirun >/dev/null 2>&1 || need_apt+=(openmpi-bin)
command -v mpicc >/dev/null 2>&1 || need_apt+=(libopenmpi-dev)
# (libclang itself: libclang-cpp, which Mesa's LLVM pulls in, is not what bindgen loads.)
compgen -G '/usr/lib/llvm-*/lib/libclang.so*' >/dev/null || compgen -G '/usr/lib/*/libclang-[0-9]*.so*' >/dev/null ||
  need_apt+=(libclang-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "deps: installing ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  else
    echo "deps: ERROR: missing ${need_apt[*]}: install them first (Debian/Ubuntu: sudo apt-get install ${need_apt[*]}), or run .ci/run as root, which installs everything" >&2
    exit 1
  fi
fi

# The wasm target comes from rustup's server.
if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown || {
    echo "deps: ERROR: 'rustup target add wasm32-unknown-unknown' failed (rustup's server unreachable?): the browser demo cannot be built" >&2
    exit 1
  }
fi
# wasm-bindgen-cli at exactly Cargo.lock's version; cargo puts it in ~/.cargo/bin, where the next
# run finds it.
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
if ! command -v wasm-bindgen >/dev/null 2>&1 || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$version" ]; then
  echo "deps: installing wasm-bindgen-cli $version (compiled from source: several minutes, once)"
  cargo install wasm-bindgen-cli --version "$version" --no-default-features --quiet
fi

# ONNX Runtime and numpy in a virtual environment of the machine's Python 3.
venv=${HETCONV_VENV:-$HOME/.cache/hetconv/venv}
if ! "$venv/bin/python" -c "import onnxruntime, numpy" >/dev/null 2>&1; then
  echo "deps: installing onnxruntime and numpy into $venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's own Python keeps venv in a package of its own.
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      apt-get update -qq && apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      echo "deps: ERROR: 'python3 -m venv' failed: install Python 3 with venv (Debian: sudo apt-get install python3-venv), or run .ci/run as root" >&2
      exit 1
    fi
  fi
  "$venv/bin/pip" install --quiet onnxruntime numpy
fi
