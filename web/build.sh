#!/usr/bin/env bash
# Builds the browser demo into web/dist: the wasm crate for wasm32-unknown-unknown, then
# wasm-bindgen (the CLI at exactly the version in Cargo.lock, installed with cargo when
# missing), then the static page. Serve web/dist with any static file server.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  rustup target add wasm32-unknown-unknown
fi
version=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
if ! command -v wasm-bindgen >/dev/null || [ "$(wasm-bindgen --version | awk '{print $2}')" != "$version" ]; then
  echo "build.sh: installing wasm-bindgen-cli $version (takes several minutes once)"
  cargo install wasm-bindgen-cli --version "$version" --no-default-features
fi

cargo build --release --target wasm32-unknown-unknown -p hetconv-web
rm -rf web/dist
mkdir -p web/dist/pkg
wasm-bindgen --target web --no-typescript --out-dir web/dist/pkg target/wasm32-unknown-unknown/release/hetconv_web.wasm
cp web/index.html web/app.js web/style.css web/dist/
echo "build.sh: web/dist is ready ($(du -sh web/dist | cut -f1)); serve it, e.g. python3 -m http.server -d web/dist"
