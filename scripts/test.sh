#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), lints, and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k decisions -x`.
# Without arguments (what CI runs): the integration and multihost modules, then the recovery and routing
# modules a second time on a real etcd (DCS=etcd; see tests/integration/conftest.py), so both DCS backends
# carry full-outage recovery, with the unit tests running beside that last run.
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
if [ "$#" -gt 0 ]; then
    .venv/bin/pytest -q --durations=40 tests "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "test.sh: pytest collected no tests; that counts as a failure" >&2
    fi
    exit "$status"
fi

# What CI runs: the clusters' modules one at a time (they share two cores), then the recovery modules on
# etcd while the unit tests, which start no cluster, run beside them.
.venv/bin/pytest -q --durations=40 tests/integration tests/multihost || status=$?
echo "test.sh: recovery modules again with DCS=etcd, the unit tests beside them" >&2
unit_log="$(mktemp)"
.venv/bin/pytest -q -p no:cacheprovider tests/unit > "$unit_log" 2>&1 &
unit_pid=$!
etcd_status=0
DCS=etcd .venv/bin/pytest -q "${ETCD_MODULES[@]}" || etcd_status=$?
unit_status=0
wait "$unit_pid" || unit_status=$?
echo "test.sh: the unit tests:" >&2
cat "$unit_log"
rm -f "$unit_log"
for code in "$etcd_status" "$unit_status"; do
    if [ "$status" -eq 0 ] && [ "$code" -ne 0 ]; then
        status=$code
    fi
done
if [ "$status" -eq 5 ]; then
    echo "test.sh: a pytest run collected no tests; that counts as a failure" >&2
fi
exit "$status"
