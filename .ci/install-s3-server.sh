#!/usr/bin/env bash
# Installs Coffer's S3-compatible test server, idempotently: moto's server from PyPI in a virtual environment at
# test/servers/moto-venv (gitignored; Debian's system Python refuses pip installs, PEP 668), then a smoke test
# (start → READY line → stdin closed → clean exit). Skips the install when the venv already imports moto.
# With COFFER_TEST_S3_ENDPOINT set (an external S3-compatible server), nothing is installed.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/test/servers/moto-venv"
log() { echo "install-s3-server: $*" >&2; }

if [[ -n "${COFFER_TEST_S3_ENDPOINT:-}" ]]; then
  log "COFFER_TEST_S3_ENDPOINT is set: using that server, not installing moto"
  exit 0
fi

if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  log "installing python3 and python3-venv"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv >/dev/null
fi

if ! "$venv/bin/python" -c 'import moto.server' >/dev/null 2>&1; then
  log "installing moto[server] into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'moto[server]>=5,<6'
fi

# Smoke test: READY within 30 s, clean exit when stdin closes.
coproc MOTO { exec "$venv/bin/python" "$root/test/servers/moto_s3.py" 2>/tmp/coffer-moto-smoke.err; }
if ! IFS= read -r -t 30 line <&"${MOTO[0]}" || [[ "$line" != READY\ http://* ]]; then
  kill "$MOTO_PID" 2>/dev/null || true
  log "moto's server did not become ready: ${line:-no output}; stderr: $(cat /tmp/coffer-moto-smoke.err)"
  exit 1
fi
pid="$MOTO_PID"
to_moto="${MOTO[1]}"
exec {to_moto}>&-
status=0
wait "$pid" || status=$?
if ((status != 0)); then
  log "moto's server exited with status $status after stdin closed; stderr: $(cat /tmp/coffer-moto-smoke.err)"
  exit 1
fi
log "moto's S3 server ready: $venv/bin/python (${line#READY })"
