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
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "convgrad: installing ${missing[*]}"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
