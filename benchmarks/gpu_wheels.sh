#!/usr/bin/env bash
# Fetch the wheels benchmarks/gpu_check.py needs on a device machine into .whl/ (git-ignored).
# The device image has torch, triton, torch_geometric, numpy, scipy, h5py, pyyaml, safetensors, tqdm
# but not pydantic (raycg's configs); mdtraj, deeptime and ray are not needed by gpu_check.
# Versions: those of this checkout's .venv (else the pins below). Run from anywhere:
#     benchmarks/gpu_wheels.sh
# then pass carry: [".whl"] to the device run (see benchmarks/gpu_check.py's docstring).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
PY=.venv/bin/python
[ -x "$PY" ] || PY=python3
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null || echo "$2"; }
pkgs=(
  "pydantic==$(version pydantic 2.14.4)"
  "pydantic-core==$(version pydantic-core 2.50.5)"
  "annotated-types==$(version annotated-types 0.8.0)"
  "typing-inspection==$(version typing-inspection 0.4.5)"
  "typing-extensions==$(version typing-extensions 4.16.0)"
)
rm -rf .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl "${pkgs[@]}"
ls -l .whl
