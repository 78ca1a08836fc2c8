#!/usr/bin/env bash
# Create ./.venv (if needed) and install raycg with everything it needs.
# torch comes first, through pip, pinned (torch==2.13.0): on this project's CPU machines pip takes the
# local CPU wheel, so no dependency pulls a multi-GB CUDA build. On a GPU machine set RAYCG_TORCH to the
# torch requirement you want. The rest is installed by uv (same versions as pip, several times faster);
# where uv cannot be installed, pip does it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
. .venv/bin/activate
quiet() { "$@" 2> >(grep -v -e "is ignored: it is neither a file nor a directory" >&2); }
quiet python -m pip install -q "${RAYCG_TORCH:-torch==2.13.0}"
if quiet python -m pip install -q uv; then
  uv pip install -q -e ".[all]"
else
  quiet python -m pip install -q -e ".[all]"
fi
python -c "import raycg, torch, ray; print(f'raycg {raycg.__version__} ready (torch {torch.__version__}, ray {ray.__version__})')"
