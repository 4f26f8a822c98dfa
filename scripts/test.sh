#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), lints, and runs the whole test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k decisions -x`.
# Without arguments (what CI runs): test_clock_skew.py alone first (SERIAL), then every other integration
# and multihost module, in two lanes side by side (two
# pytest processes, each running its modules one at a time), then in each lane one module a second time on a
# real etcd (DCS=etcd; see tests/integration/conftest.py), so both DCS backends carry full-outage recovery
# and routing; the unit tests end the first lane. Each lane's output is printed when both are done.
# The exit code is ruff's or mypy's if a check fails, else the first failing pytest run's; pytest's 5 ("no tests
# collected") is a failure.
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"

bash scripts/setup.sh

.venv/bin/ruff check src tests bench
.venv/bin/mypy src

status=0
if [ "$#" -gt 0 ]; then
    .venv/bin/pytest -q --durations=40 tests "$@" || status=$?
    if [ "$status" -eq 5 ]; then
        echo "test.sh: pytest collected no tests; that counts as a failure" >&2
    fi
    exit "$status"
fi

# The first lane's modules; the second lane runs every other module, so a new module always runs. Two modules
# of different lanes run at the same time, so what they share must be in one lane: loopback addresses
# (cluster with disk_full, the default .2-.5; outage_policies and unusable_datadirs shared theirs with
# clock_skew, which now runs alone), the SeaweedFS address (backup with s3_repository (.228)), and a module with its own etcd run
# (same addresses); the multihost modules share their namespaces' names, and with the kernel-mode proxy
# the host's nftables (all in the second lane). The lanes are balanced by the per-module times CI prints
# (the first lane also runs the etcd recovery and the unit tests).
# Run alone first, on a quiet machine: its checks are about timing (a switchover under 8 s, no instant without
# a writer longer than 0.5 s) with an agent's clock 30 s off, and the other lane's load made one of them miss.
SERIAL=(tests/integration/test_clock_skew.py)
LANE_A=(
    tests/integration/test_recovery.py
    tests/integration/test_sst_methods.py
    tests/integration/test_outage_policies.py
    tests/integration/test_unusable_datadirs.py
    tests/integration/test_cluster.py
    tests/integration/test_disk_full.py
    tests/integration/test_arbitrator.py
    tests/integration/test_concurrent_bootstrap.py
    tests/integration/test_settings.py
    tests/integration/test_lost_data.py
    tests/integration/test_soak.py
    tests/integration/test_snapshot.py
)
LANE_A_ETCD=tests/integration/test_recovery.py
LANE_B_ETCD=tests/integration/test_routing.py

LANE_B=()
for module in tests/integration/test_*.py tests/multihost/test_*.py; do
    case " ${LANE_A[*]} ${SERIAL[*]} " in
        *" $module "*) ;;
        *) LANE_B+=("$module") ;;
    esac
done
for module in "${LANE_A[@]}" "${SERIAL[@]}"; do
    [ -f "$module" ] || { echo "test.sh: $module (in LANE_A or SERIAL) does not exist" >&2; exit 2; }
done

work="$(mktemp -d /tmp/gp-lanes.XXXXXX)"
# pytest's temporary folders apart per run: two processes must not prune each other's.
run_pytest() {  # NAME ARGS...: one pytest run, its exit code in $work/NAME.rc
    local name=$1
    shift
    local code=0
    .venv/bin/pytest -q -p no:cacheprovider --durations=20 --basetemp="$work/$name" "$@" || code=$?
    echo "$code" > "$work/$name.rc"
}
echo "test.sh: ${SERIAL[*]} alone first" >&2
run_pytest serial "${SERIAL[@]}"
(
    run_pytest a-sqlite "${LANE_A[@]}"
    DCS=etcd run_pytest a-etcd "$LANE_A_ETCD"
    run_pytest unit tests/unit
) > "$work/lane-a.log" 2>&1 &
lane_a=$!
(
    run_pytest b-sqlite "${LANE_B[@]}"
    DCS=etcd run_pytest b-etcd "$LANE_B_ETCD"
) > "$work/lane-b.log" 2>&1 &
lane_b=$!
echo "test.sh: two lanes running (logs in $work): ${#LANE_A[@]} modules, then $LANE_A_ETCD on etcd, then the unit" \
     "tests; and ${#LANE_B[@]} modules, then $LANE_B_ETCD on etcd" >&2
wait "$lane_a" || true
wait "$lane_b" || true
for lane in a b; do
    echo "=============================== lane $lane ===============================" >&2
    cat "$work/lane-$lane.log"
done
for name in serial a-sqlite b-sqlite a-etcd b-etcd unit; do
    code="$(cat "$work/$name.rc" 2>/dev/null || echo 1)"
    echo "test.sh: $name: exit $code" >&2
    if [ "$status" -eq 0 ] && [ "$code" -ne 0 ]; then
        status=$code
    fi
done
rm -rf "$work"
if [ "$status" -eq 5 ]; then
    echo "test.sh: a pytest run collected no tests; that counts as a failure" >&2
fi
exit "$status"
