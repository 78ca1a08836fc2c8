#!/usr/bin/env bash
# Set everything up (./.venv) and run the linter and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# Ray tests set RAY_AUTH_MODE themselves; keep Ray's usage stats and logs quiet and local.
export RAY_USAGE_STATS_ENABLED=0
ruff check .
python -m pytest -q "$@"
