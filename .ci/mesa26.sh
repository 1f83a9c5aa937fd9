#!/usr/bin/env bash
# Installs Mesa 26 lavapipe (trixie-backports), whose cooperative matrices let the tensor-core
# kernels run without a GPU, as a side userland under $HETCONV_MESA26 (default /opt/trixie):
# it needs trixie's glibc, so binaries run through trixie's dynamic loader (.ci/mesa26-run).
# Also trixie's SPIR-V validator (SPIRV-Tools 2025.1, .ci/spirv-val), which checks the GEMM
# core's modules as a Vulkan driver receives them, cooperative matrices included.
# Idempotent; ~4 minutes and ~700 MB the first time. Needs root and the Debian mirror.
set -euo pipefail
root=${HETCONV_MESA26:-/opt/trixie}
install_validator() {
  [ -x "$root/usr/bin/spirv-val" ] && return
  chroot "$root" sh -c 'apt-get update -qq && apt-get install -y -qq spirv-tools' >/dev/null
  echo "mesa26: $(chroot "$root" dpkg-query -W -f '${Version}' spirv-tools) (spirv-tools) installed"
}
if [ -f "$root/lvp26.json" ]; then
  install_validator
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
command -v debootstrap >/dev/null 2>&1 || {
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
}
mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}
echo "mesa26: debootstrap trixie from $mirror into $root"
debootstrap --variant=minbase trixie "$root" "$mirror" >/dev/null
printf 'Types: deb\nURIs: %s\nSuites: trixie-backports\nComponents: main\n' "$mirror" \
  > "$root/etc/apt/sources.list.d/backports.sources"
chroot "$root" sh -c 'apt-get update -qq && apt-get install -y -qq -t trixie-backports mesa-vulkan-drivers' >/dev/null
sed "s#\"libvulkan_lvp.so\"#\"$root/usr/lib/x86_64-linux-gnu/libvulkan_lvp.so\"#" \
  "$root/usr/share/vulkan/icd.d/lvp_icd.json" > "$root/lvp26.json.tmp"
mv "$root/lvp26.json.tmp" "$root/lvp26.json"
echo "mesa26: $(chroot "$root" dpkg-query -W -f '${Version}' mesa-vulkan-drivers) installed"
install_validator
