#!/usr/bin/env bash
# One entry point for a fresh Debian 12 machine (as root) or a developer's checkout:
#   bash scripts/dev.sh up     install what is missing, then run the whole center (callcenter up)
#   bash scripts/dev.sh test   install what is missing, start the test services, run checks + tests
#   bash scripts/dev.sh setup  only install (system packages and the Python environment)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV="$ROOT/.venv"

log() { printf '\033[1m[dev]\033[0m %s\n' "$*" >&2; }

SYSTEM_PACKAGES_RUN=(python3 python3-venv python3-dev gcc redis-server kamailio kamailio-redis-modules kamailio-tls-modules rtpengine-daemon openssl espeak-ng sox opus-tools)
SYSTEM_PACKAGES_TEST=(postgresql sip-tester baresip chromium fonts-noto-cjk sipvicious systemd)
APT_UPDATED=0

apt_install() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    log "missing system packages: ${missing[*]} (run as root, or install them)"; exit 1
  fi
  if [ "$APT_UPDATED" = 0 ]; then apt-get update -qq; APT_UPDATED=1; fi
  log "installing ${missing[*]}"
  # policy-rc.d: packages such as kamailio must not start their own daemons on 5060;
  # the engine runs the SIP edge with the configuration this project renders.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  rm -f /usr/sbin/policy-rc.d
}

stop_system_kamailio() {
  # A kamailio.service started by the package would hold 5060 with Debian's sample config.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet kamailio 2>/dev/null; then
    log "stopping the packaged kamailio service (the engine runs its own edge)"
    systemctl disable --now kamailio >/dev/null 2>&1 || true
  fi
  # Likewise rtpengine-daemon.service: the edge runs its own rtpengine when configured.
  if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet rtpengine-daemon 2>/dev/null; then
    systemctl disable --now rtpengine-daemon >/dev/null 2>&1 || true
  fi
}

python_env() {
  local py=python3
  if ! "$py" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)'; then
    command -v python3.11 >/dev/null 2>&1 && py=python3.11 || { log "Python 3.11 is required"; exit 1; }
  fi
  [ -x "$VENV/bin/python" ] || { log "creating $VENV"; "$py" -m venv "$VENV"; }
  local stamp="$VENV/.installed-$(sha256sum pyproject.toml | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    log "installing Python packages"
    "$VENV/bin/pip" install -q --upgrade pip >/dev/null
    "$VENV/bin/pip" install -q -e ".[test]"
    rm -f "$VENV"/.installed-*; touch "$stamp"
  fi
}

start_redis() {
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    log "starting redis-server on 127.0.0.1:6379"
    mkdir -p /var/lib/redis /var/log/redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
    for _ in $(seq 50); do redis-cli ping >/dev/null 2>&1 && break; sleep 0.1; done
  fi
}

start_postgres() {
  if ! pg_isready -q -h 127.0.0.1 -p 5432; then
    log "starting PostgreSQL"
    local version; version=$(ls /etc/postgresql | sort -n | tail -1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || pg_ctlcluster "$version" main start
    for _ in $(seq 100); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
  fi
  # A login role and a database for the tests (password auth works with Debian's pg_hba).
  runuser -u postgres -- psql -q -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'callcenter') THEN
    CREATE ROLE callcenter LOGIN SUPERUSER PASSWORD 'callcenter';
  END IF;
END $$;
SQL
  runuser -u postgres -- psql -tAc "SELECT 1 FROM pg_database WHERE datname='callcenter_test'" | grep -q 1 \
    || runuser -u postgres -- createdb -O callcenter callcenter_test
}

cmd=${1:-}
case "$cmd" in
  setup)
    apt_install "${SYSTEM_PACKAGES_RUN[@]}"; stop_system_kamailio; python_env ;;
  up)
    apt_install "${SYSTEM_PACKAGES_RUN[@]}"; stop_system_kamailio; python_env
    shift; exec "$VENV/bin/callcenter" up "$@" ;;
  test)
    apt_install "${SYSTEM_PACKAGES_RUN[@]}" "${SYSTEM_PACKAGES_TEST[@]}"; stop_system_kamailio; python_env
    start_redis; start_postgres
    shift
    log "ruff"; "$VENV/bin/ruff" check .
    log "mypy"; "$VENV/bin/mypy" .
    # Two workers (this machine class has two cores): the SIP and browser tests, which
    # listen on fixed loopback ports, run in order on one; the rest spread beside them.
    # CALLCENTER_TEST_WORKERS=0 runs everything in this process.
    log "pytest"
    exec "$VENV/bin/pytest" -n "${CALLCENTER_TEST_WORKERS:-2}" --dist loadgroup "$@" ;;
  *)
    echo "usage: bash scripts/dev.sh {up|test|setup} [args...]" >&2; exit 2 ;;
esac
