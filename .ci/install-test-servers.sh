#!/usr/bin/env bash
# Installs Coffer's test servers on a fresh Debian machine, idempotently: today that is the MongoDB-wire
# harness (FerretDB v1 embedded in a small Go program, test/servers/ferretdb), built from the Go module
# proxy into test/servers/bin/ and smoke-tested (start → READY line → stdin closed → clean exit).
# Needs: Go >= 1.24 (on PATH or /usr/local/go/bin), flock and sha256sum (util-linux, coreutils).
# Skips everything that is already in place; a second run takes well under a second plus the smoke test.
# With COFFER_TEST_MONGODB_URI set (a real MongoDB), the harness is not needed and is not built.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
log() { echo "install-test-servers: $*" >&2; }

if [[ -n "${COFFER_TEST_MONGODB_URI:-}" ]]; then
  log "COFFER_TEST_MONGODB_URI is set: using that MongoDB, not building the harness"
  exit 0
fi

# Tools the build script uses (present on Debian; installed only when missing).
missing=()
command -v flock >/dev/null 2>&1 || missing+=(util-linux)
command -v sha256sum >/dev/null 2>&1 || missing+=(coreutils)
if ((${#missing[@]})); then
  log "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Go >= 1.24 (FerretDB v1.24 requires it; Debian 12's golang-go is 1.19, too old).
go_cmd="$(command -v go || true)"
[[ -z "$go_cmd" && -x /usr/local/go/bin/go ]] && go_cmd=/usr/local/go/bin/go
if [[ -z "$go_cmd" ]]; then
  log "Go not found: install Go >= 1.24 (e.g. into /usr/local/go) and re-run"
  exit 1
fi
go_version="$(GOTOOLCHAIN=local "$go_cmd" env GOVERSION)" # e.g. go1.26.8
IFS=. read -r major minor _ <<<"${go_version#go}"
if ((major < 1 || (major == 1 && minor < 24))); then
  log "$go_version is too old: the harness needs Go >= 1.24"
  exit 1
fi
log "using $go_version ($go_cmd)"

binary="$(GO="$go_cmd" bash "$root/test/servers/build-mongo-wire.sh" | tail -n1)"

# Smoke test: the binary must print READY within 30 s and exit cleanly when its stdin closes.
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
coproc HARNESS { exec "$binary" --dir "$dir/data" 2>"$dir/stderr"; }
if ! IFS= read -r -t 30 line <&"${HARNESS[0]}" || [[ "$line" != READY\ mongodb://* ]]; then
  kill "$HARNESS_PID" 2>/dev/null || true
  log "harness did not become ready: ${line:-no output}; stderr: $(cat "$dir/stderr")"
  exit 1
fi
pid="$HARNESS_PID"
to_harness="${HARNESS[1]}"
exec {to_harness}>&- # EOF on the harness's stdin: it must shut down by itself
status=0
wait "$pid" || status=$?
if ((status != 0)); then
  log "harness exited with status $status after stdin closed; stderr: $(cat "$dir/stderr")"
  exit 1
fi
log "MongoDB-wire harness ready: $binary (${line#READY })"
