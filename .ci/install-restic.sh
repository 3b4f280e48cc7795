#!/usr/bin/env bash
# Installs restic (Debian package), the reference `coffer bench backup` compares against. Idempotent; the tests
# do not need it (the benchmark prints "restic: not installed" and skips the comparison without it).
set -euo pipefail
if command -v restic >/dev/null 2>&1; then
  echo "install-restic: $(restic version | head -n1)" >&2
  exit 0
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq restic >/dev/null
echo "install-restic: $(restic version | head -n1)" >&2
