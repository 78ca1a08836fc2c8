#!/usr/bin/env bash
# Set everything up (./.venv) and run the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# Ray tests set RAY_AUTH_MODE themselves; keep Ray's usage stats and logs quiet and local.
export RAY_USAGE_STATS_ENABLED=0
ruff check .
mypy  # the stage APIs' types: [tool.mypy] in pyproject.toml
# Two workers (pytest-xdist): the Ray tests in one group on one worker, the rest by folder (tests/conftest.py);
# RAYCG_TEST_WORKERS=0 runs everything in this process.
python -m pytest -q -n "${RAYCG_TEST_WORKERS:-2}" --dist loadgroup "$@"
