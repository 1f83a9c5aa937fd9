# shellcheck shell=bash disable=SC2154  # out, kit and hetconv come from bench/gpu-suite.sh
# Sourced by bench/gpu-suite.sh: finds an environment in which hetconv sees the machine's GPU
# through Vulkan, exports it, and writes what it saw and tried to $out/vulkan-probe.log.
#
# Why: a lent GPU machine may be a container with NVIDIA's driver mounted (its ICD manifest,
# libGLX_nvidia, libEGL_nvidia) but neither the Vulkan loader nor glvnd's EGL/GLX dispatch
# libraries, which the driver's Vulkan entry needs on a headless machine; without them its
# `vk_icdGetInstanceProcAddr` returns no vkCreateInstance and the loader finds "no drivers"
# (bench-results/h200-vulkan-unavailable-2026-12-04.md). So:
#   0. where the linker knows no libvulkan.so.1, the Debian packages bench/gpu-kit.sh packs in
#      $kit/gl (the loader and glvnd) are unpacked: into / as root, else into a folder of their
#      own put on the library path;
# then, in order, until `hetconv info` names a Vulkan adapter that is not a CPU:
#   1. the machine as it is;
#   2. the driver's own manifests named outright (VK_DRIVER_FILES, and glvnd's EGL vendor file
#      through __EGL_VENDOR_LIBRARY_FILENAMES), the driver's folders on the library path;
#   3. as 2, with a manifest of our own naming the driver's EGL library by its full path, then its
#      GLX library.
# Sets: vulkan_found (yes/no) and vulkan_how (what worked); exports what worked and, where
# something did, WGPU_BACKEND=vulkan.

vulkan_log="$out/vulkan-probe.log"

# True when hetconv, under the current environment plus "$@" (VAR=value words), names a Vulkan
# GPU; its output and the loader's messages go to the log.
vulkan_attempt() {
  local what=$1
  shift
  local info rc
  echo "== attempt: $what ($*)" >> "$vulkan_log"
  info=$(env "$@" WGPU_BACKEND=vulkan VK_LOADER_DEBUG=error,warn,driver timeout 20 "$hetconv" info 2>&1)
  rc=$?
  # The loader's first messages and hetconv's own last lines, at most 100 lines an attempt.
  awk -v n="$(wc -l <<< "$info")" 'NR <= 60 || NR > n - 40' <<< "$info" >> "$vulkan_log"
  echo "== exit $rc" >> "$vulkan_log"
  [ "$rc" = 0 ] && grep -q '^backend: *Vulkan' <<< "$info" && ! grep -q '^type: *Cpu' <<< "$info"
}

# The first of the files named that exists.
first_file() {
  local f
  for f in "$@"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
}

# The folders holding the NVIDIA driver's user-space libraries, from the linker cache and the
# places container runtimes mount them.
driver_dirs() {
  {
    ldconfig -p 2>/dev/null | awk '/lib(GLX|EGL)_nvidia\.so/ {print $NF}' | xargs -r -n1 dirname
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib/x86_64-linux-gnu /usr/lib64; do
      ls "$d"/libGLX_nvidia.so* "$d"/libEGL_nvidia.so* > /dev/null 2>&1 && echo "$d"
    done
  } | awk '!seen[$0]++'
}

{
  echo "== user $(id -u), $(uname -r)"
  echo "== devices"
  ls -l /dev/nvidia* /dev/dri 2>&1
  echo "== environment"
  env | grep -E '^(NVIDIA_|VK_|__EGL|LD_LIBRARY_PATH|XDG_)' | sort
  echo "== linker cache (Vulkan, EGL, GLX, NVIDIA)"
  ldconfig -p 2>/dev/null | grep -Ei 'vulkan|nvidia|libEGL|libGLX|GLdispatch'
  echo "== manifests (Vulkan ICDs, glvnd EGL vendors)"
  for manifest in {/etc,/usr/share,/usr/local/nvidia/share}/{vulkan/icd.d,glvnd/egl_vendor.d}/*.json; do
    [ -f "$manifest" ] && { echo "-- $manifest"; cat "$manifest"; echo; }
  done
} > "$vulkan_log" 2>&1

if ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
  debs=("$kit"/gl/*.deb)
  if [ ! -f "${debs[0]}" ]; then
    echo "== no Vulkan loader here and none packed in $kit/gl" >> "$vulkan_log"
  elif [ "$(id -u)" = 0 ]; then
    for deb in "${debs[@]}"; do dpkg -x "$deb" /; done
    ldconfig
    echo "== unpacked into /: ${debs[*]##*/}" >> "$vulkan_log"
  else
    gl_root=$(mktemp -d)
    for deb in "${debs[@]}"; do dpkg -x "$deb" "$gl_root"; done
    export LD_LIBRARY_PATH="$gl_root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "== unpacked into $gl_root (not root): ${debs[*]##*/}" >> "$vulkan_log"
  fi
fi

vulkan_found=no
vulkan_how=none
lib_path=$(driver_dirs | paste -sd:)
lib_path="$lib_path${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
icd_manifest=$(first_file /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
  /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json)
egl_vendor=$(first_file /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json \
  /etc/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json)
driver_env=(LD_LIBRARY_PATH="$lib_path")
[ -z "$egl_vendor" ] || driver_env+=(__EGL_VENDOR_LIBRARY_FILENAMES="$egl_vendor")
if vulkan_attempt "the machine as it is"; then
  vulkan_found=yes
  vulkan_how="the machine's own loader and driver manifests"
elif [ -n "$icd_manifest" ] && vulkan_attempt "the driver's manifests named outright" \
  "${driver_env[@]}" VK_DRIVER_FILES="$icd_manifest" VK_ICD_FILENAMES="$icd_manifest"; then
  vulkan_found=yes
  vulkan_how="the driver's manifest $icd_manifest${egl_vendor:+ and EGL vendor file $egl_vendor}"
  export "${driver_env[@]}" VK_DRIVER_FILES="$icd_manifest" VK_ICD_FILENAMES="$icd_manifest"
else
  # The loader wants an API version; the driver's manifest states one.
  api=$(sed -n 's/.*"api_version" *: *"\([0-9.]*\)".*/\1/p' "${icd_manifest:-/dev/null}" | head -n 1)
  for icd in libEGL_nvidia.so.0 libGLX_nvidia.so.0; do
    for dir in $(driver_dirs); do
      [ -e "$dir/$icd" ] || continue
      manifest="$out/vulkan-icd-${icd%%.*}.json"
      printf '{"file_format_version": "1.0.1", "ICD": {"library_path": "%s", "api_version": "%s"}}\n' \
        "$dir/$icd" "${api:-1.3.0}" > "$manifest"
      if vulkan_attempt "a manifest of our own for $dir/$icd" "${driver_env[@]}" \
        VK_DRIVER_FILES="$manifest" VK_ICD_FILENAMES="$manifest"; then
        vulkan_found=yes
        vulkan_how="a manifest of our own for $dir/$icd"
        export "${driver_env[@]}" VK_DRIVER_FILES="$manifest" VK_ICD_FILENAMES="$manifest"
        break 2
      fi
    done
  done
fi
# What follows measures the Vulkan backend, even where glvnd's EGL now offers wgpu a GL adapter.
[ "$vulkan_found" = no ] || export WGPU_BACKEND=vulkan
echo "== found: $vulkan_found, through $vulkan_how" >> "$vulkan_log"
echo "gpu-suite: Vulkan GPU found: $vulkan_found ($vulkan_how); details in $vulkan_log"
