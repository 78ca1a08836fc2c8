#!/usr/bin/env bash
# Set everything up (./.venv) and run the quickstart study on the embedded CLN025 reference
# with a local Ray: 3 arms (force matching, the published and the corrected energy target) x 6 seeds,
# then the significance tests and the report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
export RAY_USAGE_STATS_ENABLED=0
raycg study run studies/quickstart.yaml --storage "${RAYCG_STORAGE:-$PWD/results}" "$@"
