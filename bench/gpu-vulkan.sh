# shellcheck shell=bash disable=SC2154,SC2034  # shares variables with bench/gpu-suite.sh
# Sourced by bench/gpu-suite.sh: finds an environment in which hetconv sees the machine's GPU
# through Vulkan, exports it, and writes what it saw and tried to $out/vulkan-probe.log.
#
# Why: a lent GPU machine may be a container with NVIDIA's driver mounted (its ICD manifest,
# libGLX_nvidia, libEGL_nvidia) but neither the Vulkan loader nor glvnd's EGL/GLX dispatch
# libraries, which the driver's Vulkan entry needs on a headless machine; without them its
# `vk_icdGetInstanceProcAddr` returns no vkCreateInstance and the loader finds "no drivers"
# (bench-results/h200-vulkan-unavailable-2026-12-04.md). So:
#   0. unless the linker knows the loader and glvnd's libEGL and libGLdispatch, the Debian
#      packages bench/gpu-kit.sh packs in $kit/gl (the loader and glvnd) are unpacked: into / as
#      root (then ldconfig), else, or if that fails, into a folder of their own put on the
#      library path;
# then, in order, until hetconv sees a Vulkan adapter that is not a CPU:
#   1. the machine as it is;
#   2. the driver's own manifests named outright: VK_DRIVER_FILES, and glvnd's EGL vendor file
#      through __EGL_VENDOR_LIBRARY_FILENAMES (the device tool's documented recipe);
#   3. as 2, with the driver's folders appended to the library path;
#   4. as 3, with a manifest of our own naming the driver's EGL library by its full path, then its
#      GLX library.
# "Sees" means `hetconv info` names the adapter, or names it in a device-creation error (that
# error then shows in every step instead of "no adapter").
# Sets vulkan_found (yes/no) and vulkan_how (what worked), exports what worked, and exports
# WGPU_BACKEND=vulkan in every case: the steps measure Vulkan or fail saying why, never a GL
# adapter that the unpacked EGL might offer. Keeps the caller's library path in
# vulkan_saved_ld_path for programs that must not see the unpacked libraries (PyTorch).

vulkan_log="$out/vulkan-probe.log"
vulkan_saved_ld_path=${LD_LIBRARY_PATH:-}
# The probe's own time cap: each attempt runs only while this many seconds are left of it.
vulkan_deadline=$((SECONDS + ${VULKAN_PROBE_SECONDS:-90}))

# True when hetconv, under the current environment plus "$@" (VAR=value words), sees a Vulkan
# GPU; its output and the loader's messages go to the log.
vulkan_attempt() {
  local what=$1
  shift
  local info rc left=$((vulkan_deadline - SECONDS))
  echo "== attempt: $what ($*)" >> "$vulkan_log"
  if [ "$left" -lt 5 ]; then
    echo "== skipped: the probe's time is spent" >> "$vulkan_log"
    return 1
  fi
  [ "$left" -le 20 ] || left=20
  info=$(env "$@" WGPU_BACKEND=vulkan VK_LOADER_DEBUG=error,warn,driver \
    timeout -k 5 "$left" "$hetconv" info 2>&1)
  rc=$?
  if [ "$(wc -l <<< "$info")" -le 100 ]; then
    printf '%s\n' "$info" >> "$vulkan_log"
  else
    # The loader's errors and warnings, then hetconv's own last lines.
    { grep -E '^(ERROR|WARNING)' <<< "$info" | head -n 40; echo "[...]"; tail -n 40 <<< "$info"; } >> "$vulkan_log"
  fi
  echo "== exit $rc" >> "$vulkan_log"
  if [ "$rc" = 0 ]; then
    grep -q '^backend: *Vulkan' <<< "$info" && ! grep -q '^type: *Cpu' <<< "$info"
  else
    # The adapter is there, but the device could not be created: that is the error to show.
    grep -q 'could not create a device on adapter' <<< "$info" && ! grep -qi 'llvmpipe' <<< "$info"
  fi
}

# The first of the files named that exists.
first_file() {
  local f
  for f in "$@"; do
    [ -f "$f" ] && { echo "$f"; return; }
  done
}

# The folders holding the NVIDIA driver's user-space libraries that are not system folders
# (those are searched anyway), from the linker cache and where container runtimes mount them.
driver_dirs() {
  {
    awk '/lib(GLX|EGL)_nvidia\.so/ {print $NF}' <<< "$(ldconfig -p 2>/dev/null)" | xargs -r -n1 dirname
    for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
      compgen -G "$d/lib[EG]L*_nvidia.so*" > /dev/null && echo "$d"
    done
  } | awk '$0 != "" && !seen[$0]++' | grep -vxE '/(usr/)?lib(64|/x86_64-linux-gnu)?'
}

# The linker knows every one of the libraries named.
linker_knows() {
  local cache lib
  cache=$(ldconfig -p 2>/dev/null)
  for lib in "$@"; do
    grep -qF "$lib " <<< "$cache" || return 1
  done
}

{
  echo "== user $(id -u), $(uname -r)"
  echo "== devices"
  ls -l /dev/nvidia* /dev/dri 2>&1
  echo "== environment"
  env | grep -E '^(NVIDIA_|VK_|__EGL|LD_LIBRARY_PATH|XDG_)' | sort
  echo "== linker cache (Vulkan, EGL, GLX, NVIDIA)"
  grep -Ei 'vulkan|nvidia|libEGL|libGLX|GLdispatch' <<< "$(ldconfig -p 2>/dev/null)"
  echo "== manifests (Vulkan ICDs, glvnd EGL vendors)"
  for manifest in {/etc,/usr/share,/usr/local/nvidia/share}/{vulkan/icd.d,glvnd/egl_vendor.d}/*.json; do
    [ -f "$manifest" ] && { echo "-- $manifest"; cat "$manifest"; echo; }
  done
} > "$vulkan_log" 2>&1

# 0. The loader and glvnd.
if ! linker_knows libvulkan.so.1 libEGL.so.1 libGLdispatch.so.0; then
  debs=("$kit"/gl/*.deb)
  unpacked=no
  if [ ! -f "${debs[0]}" ]; then
    echo "== no Vulkan loader or glvnd here, and none packed in $kit/gl" >> "$vulkan_log"
  elif [ "$(id -u)" = 0 ]; then
    echo "== unpacking into /: ${debs[*]##*/}" >> "$vulkan_log"
    unpacked=yes
    for deb in "${debs[@]}"; do dpkg -x "$deb" / >> "$vulkan_log" 2>&1 || unpacked=no; done
    ldconfig >> "$vulkan_log" 2>&1 || unpacked=no
    linker_knows libvulkan.so.1 libEGL.so.1 libGLdispatch.so.0 || unpacked=no
    echo "== into /: $unpacked" >> "$vulkan_log"
  fi
  if [ -f "${debs[0]}" ] && [ "$unpacked" = no ]; then
    gl_root=$(mktemp -d)
    for deb in "${debs[@]}"; do dpkg -x "$deb" "$gl_root" >> "$vulkan_log" 2>&1; done
    export LD_LIBRARY_PATH="$gl_root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "== unpacked into $gl_root instead, on the library path" >> "$vulkan_log"
  fi
  echo "== linker cache now:" >> "$vulkan_log"
  grep -Ei 'vulkan|libEGL\.|GLdispatch' <<< "$(ldconfig -p 2>/dev/null)" >> "$vulkan_log"
fi

vulkan_found=no
vulkan_how=none
vulkan_env=()
icd_manifest=$(first_file /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
  /etc/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json)
egl_vendor=$(first_file /usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json \
  /etc/glvnd/egl_vendor.d/10_nvidia.json /usr/share/glvnd/egl_vendor.d/10_nvidia.json)
recipe_env=()
[ -z "$icd_manifest" ] || recipe_env+=(VK_DRIVER_FILES="$icd_manifest" VK_ICD_FILENAMES="$icd_manifest")
[ -z "$egl_vendor" ] || recipe_env+=(__EGL_VENDOR_LIBRARY_FILENAMES="$egl_vendor")
extra_dirs=$(driver_dirs | paste -sd:)
appended_env=(LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$extra_dirs")

if vulkan_attempt "the machine as it is"; then
  vulkan_found=yes
  vulkan_how="the machine's own loader and driver manifests"
elif [ "${#recipe_env[@]}" -gt 0 ] && vulkan_attempt "the driver's manifests named outright" "${recipe_env[@]}"; then
  vulkan_found=yes
  vulkan_how="the driver's manifest $icd_manifest${egl_vendor:+ and EGL vendor file $egl_vendor}"
  vulkan_env=("${recipe_env[@]}")
elif [ -n "$extra_dirs" ] && vulkan_attempt "as before, the driver's folders on the library path" \
  "${recipe_env[@]}" "${appended_env[@]}"; then
  vulkan_found=yes
  vulkan_how="the driver's manifests, with $extra_dirs on the library path"
  vulkan_env=("${recipe_env[@]}" "${appended_env[@]}")
else
  # The loader wants an API version; the driver's manifest states one.
  api=$(sed -n 's/.*"api_version" *: *"\([0-9.]*\)".*/\1/p' "${icd_manifest:-/dev/null}" | head -n 1)
  egl_env=()
  [ -z "$egl_vendor" ] || egl_env=(__EGL_VENDOR_LIBRARY_FILENAMES="$egl_vendor")
  for icd in libEGL_nvidia.so.0 libGLX_nvidia.so.0; do
    for dir in $(driver_dirs) /usr/lib/x86_64-linux-gnu /usr/lib64; do
      [ -e "$dir/$icd" ] || continue
      manifest="$out/vulkan-icd-${icd%%.*}.json"
      printf '{"file_format_version": "1.0.1", "ICD": {"library_path": "%s", "api_version": "%s"}}\n' \
        "$dir/$icd" "${api:-1.3.0}" > "$manifest"
      own_env=(VK_DRIVER_FILES="$manifest" VK_ICD_FILENAMES="$manifest" "${egl_env[@]}" "${appended_env[@]}")
      if vulkan_attempt "a manifest of our own for $dir/$icd" "${own_env[@]}"; then
        vulkan_found=yes
        vulkan_how="a manifest of our own for $dir/$icd"
        vulkan_env=("${own_env[@]}")
        break 2
      fi
    done
  done
fi
[ "${#vulkan_env[@]}" = 0 ] || export "${vulkan_env[@]}"
export WGPU_BACKEND=vulkan
echo "== found: $vulkan_found, through $vulkan_how (exported: ${vulkan_env[*]} WGPU_BACKEND=vulkan)" >> "$vulkan_log"
echo "gpu-suite: Vulkan GPU found: $vulkan_found ($vulkan_how); details in $vulkan_log"
