#!/usr/bin/env bash
# Everything CI checks (`make check`): formatting, lint, types, then the test command.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
scripts/test.sh "$@"
