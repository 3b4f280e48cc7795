#!/usr/bin/env bash
# Builds Coffer's MongoDB-wire test server (FerretDB v1 embedded as a library, see ferretdb/main.go) into
# test/servers/bin/ferretdb-harness. Skips the build when the binary is up to date: a stamp beside it holds
# a hash of go.mod, go.sum, the *.go sources and the Go version. Safe to run concurrently (flock) and idempotent.
# Needs Go >= 1.24 (PATH, or /usr/local/go/bin) and the Go module proxy; dependencies are pinned by go.sum.
# Usage: test/servers/build-mongo-wire.sh [--force]   Prints the binary path on stdout.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$here/ferretdb"
bin_dir="$here/bin"
bin="$bin_dir/ferretdb-harness"
stamp="$bin.stamp"

force=0
case "${1:-}" in
  --force) force=1 ;;
  "") ;;
  *) echo "usage: $0 [--force]" >&2; exit 2 ;;
esac

go_cmd="${GO:-}"
if [[ -z "$go_cmd" ]]; then
  if command -v go >/dev/null 2>&1; then go_cmd="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then go_cmd=/usr/local/go/bin/go
  else echo "build-mongo-wire: Go not found (install Go >= 1.24 or set GO=/path/to/go)" >&2; exit 1
  fi
fi

# Never let the go command fetch a different toolchain, and build exactly what go.sum pins.
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

if ! go_version="$("$go_cmd" version 2>&1)"; then
  echo "build-mongo-wire: '$go_cmd version' failed: $go_version" >&2
  exit 1
fi

mkdir -p "$bin_dir"
exec 9>"$bin_dir/.build.lock"
flock 9

want="$( { cat "$src/go.mod" "$src/go.sum" "$src"/*.go; echo "$go_version"; } | sha256sum | cut -d' ' -f1)"
if [[ $force -eq 0 && -x "$bin" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$bin"
  exit 0
fi

echo "build-mongo-wire: building $bin (a cold build downloads modules and compiles SQLite: 1-4 minutes)" >&2
start=$SECONDS
tmp="$bin.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$src" && "$go_cmd" build -trimpath -o "$tmp" .)
mv -f "$tmp" "$bin"
echo "$want" >"$stamp"
echo "build-mongo-wire: built in $((SECONDS - start))s" >&2
echo "$bin"
