#!/usr/bin/env bash
# Create ./.venv (if needed) and install raycg with everything it needs.
# On this project's CPU machines torch comes from the local CPU wheel (torch==2.13.0); on a GPU
# machine set RAYCG_TORCH to the torch requirement you want (e.g. "torch==2.13.0" from the CUDA index).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
# Install torch first, pinned, so that no dependency pulls a multi-GB CUDA build.
python -m pip install -q "${RAYCG_TORCH:-torch==2.13.0}"
python -m pip install -q -e ".[all]"
python -c "import raycg, torch, ray; print(f'raycg {raycg.__version__} ready (torch {torch.__version__}, ray {ray.__version__})')"
