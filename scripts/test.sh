#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), lints, and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k decisions -x`.
# Without arguments (what CI runs), the recovery and routing modules then run a second time on a real etcd
# (DCS=etcd; see tests/integration/conftest.py), so both DCS backends carry full-outage recovery.
# The exit code is ruff's or mypy's if a check fails, else the first failing pytest run's; pytest's 5 ("no tests
# collected") is a failure.
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"

bash scripts/setup.sh

.venv/bin/ruff check src tests bench
.venv/bin/mypy src

ETCD_MODULES=(tests/integration/test_recovery.py tests/integration/test_routing.py)

status=0
.venv/bin/pytest -q --durations=40 tests "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that counts as a failure" >&2
fi
if [ "$#" -eq 0 ]; then
    echo "test.sh: recovery modules again with DCS=etcd" >&2
    etcd_status=0
    DCS=etcd .venv/bin/pytest -q "${ETCD_MODULES[@]}" || etcd_status=$?
    if [ "$etcd_status" -eq 5 ]; then
        echo "test.sh: pytest collected no tests with DCS=etcd; that counts as a failure" >&2
    fi
    if [ "$status" -eq 0 ]; then
        status=$etcd_status
    fi
fi
exit "$status"
