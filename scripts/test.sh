#!/usr/bin/env bash
# The test command (`make test`): set up, make sure the local stack answers, run pytest with any
# extra arguments. A component this script had to start is stopped again on exit; one that was
# already running (someone else's, or a developer's `make up`) is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

PY=.venv/bin/python
started=()
cleanup() {
    local i
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
        "$PY" -m devkit.stack down "${started[i]}" || true
    done
}
trap cleanup EXIT

for component in kafka s3; do
    if ! "$PY" -m devkit.stack status "$component" >/dev/null 2>&1; then
        started+=("$component")
        "$PY" -m devkit.stack up "$component"
    fi
done

# pytest's own exit code decides; 5 ("no tests collected") counts as a failure too.
"$PY" -m pytest "$@"
