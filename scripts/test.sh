#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), lints, and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k decisions -x`.
# The exit code is ruff's if linting fails, else pytest's; pytest's 5 ("no tests collected") is a failure.
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"

bash scripts/setup.sh

.venv/bin/ruff check src tests bench

status=0
.venv/bin/pytest -q tests "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that counts as a failure" >&2
fi
exit "$status"
