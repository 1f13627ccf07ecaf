#!/usr/bin/env bash
# Set up mocap on a fresh Debian/Ubuntu machine with Python 3.11: system libraries for the
# GUI and its tests (when run as root with apt), then the package with its GUI and test extras.
# torch is pinned to 2.13.0 so pip never pulls a CUDA build by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends \
    xvfb xauth libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-xkb1 \
    libxkbcommon-x11-0 libxcb-cursor0 libxcb-shape0 libxcb-randr0 libxcb-xinerama0 \
    libusb-1.0-0 libgl1 libegl1 libglib2.0-0 libfontconfig1 libdbus-1-3 assimp-utils >/dev/null
fi
"$PY" -m pip install -q --disable-pip-version-check "torch==2.13.0" -e ".[gui,dev]"
echo "mocap installed: run 'mocap-app --help'"
