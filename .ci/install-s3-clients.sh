#!/usr/bin/env bash
# Installs the S3 clients the S3 API's real-client tests drive (test/e2e/s3-clients.test.ts), idempotently:
#   - the AWS CLI v2 and rclone from Debian (awscli 2.9 and rclone 1.60 on Debian 12),
#   - boto3 from PyPI into a virtual environment at test/servers/s3-clients-venv (gitignored; Debian's system
#     Python refuses pip installs, PEP 668), recent enough to send checksums the way current boto3 does.
# Skips whatever is already in place. The tests fail in CI (CI=true) when a client is missing.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/test/servers/s3-clients-venv"
log() { echo "install-s3-clients: $*" >&2; }

missing=()
[[ -x /usr/bin/aws ]] || missing+=(awscli)
command -v rclone >/dev/null 2>&1 || missing+=(rclone)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if ! command -v python3 >/dev/null 2>&1 || ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
  missing+=(python3 python3-venv)
fi
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! "$venv/bin/python" -c 'import boto3' >/dev/null 2>&1; then
  log "installing boto3 into $venv"
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check 'boto3>=1.36,<2'
fi

log "aws: $(/usr/bin/aws --version 2>&1 | head -1)"
log "rclone: $(rclone version 2>/dev/null | head -1)"
log "boto3: $("$venv/bin/python" -c 'import boto3; print(boto3.__version__)')"
