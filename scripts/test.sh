#!/usr/bin/env bash
# The README's test command with pytest arguments: bash scripts/test.sh tests/unit
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-dev.sh
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
