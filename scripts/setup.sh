#!/usr/bin/env bash
# Installs everything galera-pilot and its tests need on Debian 12, and only what is missing:
#   1. Debian packages (apt-get update runs only when a package is missing);
#   2. if this run installed mariadb-server: stops and disables the system MariaDB service that the
#      package's postinst may have started on 127.0.0.1:3306 (galera-pilot starts its own servers);
#   3. .venv in the repository root (python3 from PATH, 3.11 or newer) with `pip install -e '.[test]'`.
# Safe to run again; works from any directory. As root it runs apt-get directly, otherwise through sudo.
set -euo pipefail

REPO="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/.." && pwd -P)"
cd "$REPO"

PACKAGES=(mariadb-server galera-4 mariadb-backup mariadb-client socat rsync haproxy etcd-server sysbench
          iproute2 iptables nftables conntrack python3-venv psmisc faketime stunnel4 tcpdump zstd)
# Installed without their recommended packages: galera-pilot runs garbd itself, and needs only promtool
# (for the alert rules' tests) from prometheus, not a node exporter or a web UI; chromium and its driver run
# the dashboard's browser tests headless (through selenium), with no desktop around them.
PACKAGES_BARE=(galera-arbitrator-4 prometheus chromium chromium-driver)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root: run this script as root, or install sudo"
    fi
}

installed() {
    [ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" = "install ok installed" ]
}

# argv of a process, one argument per line (empty if it is gone or unreadable).
process_args() {
    tr '\0' '\n' 2>/dev/null <"/proc/$1/cmdline" || true
}

# Pids of MariaDB servers that galera-pilot did not start, and of the mysqld_safe wrappers that restart
# them. galera-pilot always starts mariadbd with --defaults-file=, so those are never listed.
system_mariadb_pids() {
    local dir pid args argv0
    for dir in /proc/[0-9]*; do
        pid="${dir#/proc/}"
        args="$(process_args "$pid")"
        [ -n "$args" ] || continue
        argv0="$(head -n 1 <<<"$args")"
        if grep -qE '(^|/)mysqld_safe$' <<<"$args"; then
            echo "$pid"
        elif [[ "$argv0" =~ (^|/)(mariadbd|mysqld)$ ]] && ! grep -q -- '--defaults-file=' <<<"$args"; then
            echo "$pid"
        fi
    done
}

stop_system_mariadb() {
    say "stopping and disabling the system MariaDB service (galera-pilot runs its own mariadbd processes)"
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now mariadb >/dev/null 2>&1 || true
    elif command -v update-rc.d >/dev/null 2>&1; then
        as_root update-rc.d mariadb disable >/dev/null 2>&1 || true
    fi
    # Without systemd (containers), signal the system server directly rather than `service mariadb stop`:
    # when its mysqladmin shutdown fails, that init script runs `killall mariadbd`, which would also hit
    # galera-pilot's servers. mariadbd shuts down cleanly on SIGTERM and mysqld_safe then exits by itself.
    local pids
    pids="$(system_mariadb_pids | tr '\n' ' ')"
    [ -n "${pids// /}" ] || return 0
    say "terminating the system MariaDB processes: $pids"
    # shellcheck disable=SC2086  # word splitting of the pid list is intended
    as_root kill -TERM $pids 2>/dev/null || true
    local waited=0
    while [ -n "$(system_mariadb_pids)" ] && [ "$waited" -lt 60 ]; do
        sleep 1
        waited=$((waited + 1))
    done
    pids="$(system_mariadb_pids | tr '\n' ' ')"
    if [ -n "${pids// /}" ]; then
        die "system MariaDB processes still running after 60 s: $pids"
    fi
}

# ---- 1. Debian packages ------------------------------------------------------------------------------
if ! command -v dpkg-query >/dev/null 2>&1 || ! command -v apt-get >/dev/null 2>&1; then
    die "this script needs Debian's dpkg-query and apt-get (galera-pilot targets Debian 12)"
fi

# The system services these packages may start on a systemd host: galera-pilot starts its own.
stop_system_service() {
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
        as_root systemctl disable --now "$1" >/dev/null 2>&1 || true
    fi
}

missing=()
for package in "${PACKAGES[@]}"; do
    installed "$package" || missing+=("$package")
done
missing_bare=()
for package in "${PACKAGES_BARE[@]}"; do
    installed "$package" || missing_bare+=("$package")
done

if [ "$((${#missing[@]} + ${#missing_bare[@]}))" -gt 0 ]; then
    say "installing ${missing[*]} ${missing_bare[*]}"
    as_root apt-get update -q
    if [ "${#missing[@]}" -gt 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
    fi
    if [ "${#missing_bare[@]}" -gt 0 ]; then
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing_bare[@]}"
    fi
    for package in "${missing[@]}" "${missing_bare[@]}"; do
        case "$package" in
            mariadb-server) stop_system_mariadb ;;
            prometheus) stop_system_service prometheus ;;
            galera-arbitrator-4) stop_system_service garb ;;
        esac
    done
else
    say "Debian packages: all present"
fi

# ---- 2. Python virtual environment -------------------------------------------------------------------
version_ok='import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'

if [ ! -e .venv/bin/python ]; then
    command -v python3 >/dev/null 2>&1 || die "python3 is not on PATH; galera-pilot needs Python 3.11 or newer"
    python3 -c "$version_ok" \
        || die "galera-pilot needs Python 3.11 or newer; python3 on PATH is $(python3 -V 2>&1) ($(command -v python3))"
    say "creating .venv with $(python3 -V 2>&1) ($(command -v python3))"
    python3 -m venv .venv
else
    .venv/bin/python -c "$version_ok" 2>/dev/null \
        || die "$REPO/.venv does not run Python 3.11 or newer; remove it and run this script again"
fi

# Reinstall only when pyproject.toml changed since the last successful install (the install is editable,
# so changes below src/ need no reinstall).
stamp=.venv/.galera-pilot-setup
want="$(sha256sum pyproject.toml | cut -d ' ' -f 1)"
if [ -x .venv/bin/galera-pilot ] && [ -x .venv/bin/pytest ] && [ -x .venv/bin/ruff ] \
        && [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ]; then
    say "Python package: installed in .venv"
else
    say "installing galera-pilot and its test tools into .venv"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
    printf '%s\n' "$want" >"$stamp"
fi
