#!/usr/bin/env bash
# restic for `coffer bench files` / `bench ingest` (their ratios are against restic on the same disk). Idempotent;
# the benchmarks print "restic: not installed" and skip the ratios without it, and no test needs it.
set -euo pipefail
command -v restic >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
if command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq restic >/dev/null
else
  echo "install-restic: no apt-get here; install restic by hand for the benchmarks' ratios" >&2
fi
