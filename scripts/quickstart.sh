#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh), then lays out and starts an embedded cluster on this
# machine: `galera-pilot up --dir "${CLUSTER_DIR:-<repo>/cluster}"`, plus any options given here,
# e.g. `bash scripts/quickstart.sh --nodes 5 --sst-method rsync`.
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
CLUSTER_DIR="${CLUSTER_DIR:-$REPO/cluster}"

bash "$REPO/scripts/setup.sh"

"$REPO/.venv/bin/galera-pilot" up --dir "$CLUSTER_DIR" "$@"

cat <<MSG

Also:   $REPO/.venv/bin/galera-pilot list --dir $CLUSTER_DIR
Stop:   $REPO/.venv/bin/galera-pilot down --dir $CLUSTER_DIR   (data stays; run this script again to restart)
MSG
