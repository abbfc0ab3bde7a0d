#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages the build and the tests need; does nothing when
# they are all present. The CUDA toolkit (optional) is expected under /usr/local/cuda.
set -euo pipefail
packages=(cmake ninja-build g++ libgtest-dev libcli11-dev nlohmann-json3-dev libdnnl-dev python3
  zlib1g-dev dataset-fashion-mnist)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
# pip fetches the CUTLASS headers below.
if ! python3 -m pip --version >/dev/null 2>&1; then
  missing+=(python3-pip)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "convgrad: installing ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# CUTLASS/CuTe headers (the CUDA backend's tensor-core kernels, cmake/cutlass.cmake): unpacked from
# the nvidia-cutlass wheel into .deps/cutlass/include, cutlass/util merged in. Header-only; a
# build without them has no tensor-core kernels.
cutlass_version=4.2.0.0
root="$(cd "$(dirname "$0")/.." && pwd)"
cutlass_dir="$root/.deps/cutlass"
if [ ! -f "$cutlass_dir/include/cutlass/conv/kernel/conv_universal.hpp" ] ||
   [ "$(cat "$cutlass_dir/VERSION" 2>/dev/null)" != "$cutlass_version" ]; then
  echo "convgrad: fetching CUTLASS $cutlass_version headers into $cutlass_dir"
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  # Optional: without network the build goes on without the tensor-core kernels.
  if python3 -m pip download -q --no-deps --dest "$tmp" "nvidia-cutlass==$cutlass_version"; then
    python3 - "$tmp"/nvidia_cutlass-*.whl "$tmp/x" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as wheel:
    for name in wheel.namelist():
        if name.startswith(("cutlass_library/source/include/",
                            "cutlass_library/source/tools/util/include/")):
            wheel.extract(name, sys.argv[2])
PY
    rm -rf "$cutlass_dir"
    mkdir -p "$cutlass_dir"
    mv "$tmp/x/cutlass_library/source/include" "$cutlass_dir/include"
    cp -r "$tmp/x/cutlass_library/source/tools/util/include/cutlass/util" "$cutlass_dir/include/cutlass/"
    echo "$cutlass_version" > "$cutlass_dir/VERSION"
  else
    echo "convgrad: could not fetch CUTLASS; building without the tensor-core kernels" >&2
  fi
fi
