#!/usr/bin/env bash
# restic and age for `coffer bench files` / `bench ingest` (their ratios are against them on the same disk).
# Idempotent; the benchmarks say "not installed" and skip those ratios without them, and no test needs them.
set -euo pipefail
command -v restic >/dev/null && command -v age >/dev/null && exit 0
export DEBIAN_FRONTEND=noninteractive
if command -v apt-get >/dev/null; then
  apt-get update -qq && apt-get install -y -qq restic age >/dev/null
else
  echo "install-restic: no apt-get here; install restic and age by hand for the benchmarks' ratios" >&2
fi
