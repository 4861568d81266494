#!/usr/bin/env bash
# Makes Jaeger (v2, the all-in-one `jaeger` binary) available for the tracing tests, building it
# from its Go module (never downloading a prebuilt binary), and prints its path (stdout: that one
# line; progress goes to stderr).
#
# The first of these wins:
#   1. $PAYGO_JAEGER                                   (a binary you already have)
#   2. $PAYGO_CACHE_DIR/bin/jaeger-<version>           (an earlier build; default ~/.cache/paygo)
#   3. a fresh `go build` into that cache              (first run: see README.md for timings)
#
# The version comes from jaeger/go.mod beside this script; changing it there changes the cache
# file name, so the next run builds the new one. Idempotent and safe to run concurrently (builds
# are serialised with flock when present).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}"
bindir="$cache/bin"
jobs="${PAYGO_BUILD_JOBS:-2}"

log() { echo "tracing/install: $*" >&2; }
die() { log "error: $*"; exit 1; }

if [ -n "${PAYGO_JAEGER:-}" ]; then
  [ -x "$PAYGO_JAEGER" ] || die "PAYGO_JAEGER=$PAYGO_JAEGER is not an executable"
  echo "$PAYGO_JAEGER"; exit 0
fi

module=github.com/jaegertracing/jaeger
version="$(awk -v m="$module" '$1==m && $0 !~ /=>/ { print $2 }' "$here/jaeger/go.mod")"
[ -n "$version" ] || die "no $module in jaeger/go.mod"
out="$bindir/jaeger-$version"

mkdir -p "$bindir"
if [ -x "$out" ]; then echo "$out"; exit 0; fi

# Serialise concurrent installs (two test runs must not build the same thing twice at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$bindir/.install-jaeger.lock"
  if ! flock -n 9; then
    log "another install is running; waiting for it (up to 30 min) ..."
    flock -w 1800 9 || die "timed out waiting for $bindir/.install-jaeger.lock"
  fi
  if [ -x "$out" ]; then echo "$out"; exit 0; fi
fi

if ! command -v go >/dev/null 2>&1; then
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"
  else die "Go is needed to build Jaeger (jaeger/go.mod asks for go $(awk '$1=="go"{print $2}' "$here/jaeger/go.mod")); install it or set PAYGO_JAEGER"; fi
fi

tmp="$(mktemp "$bindir/.jaeger-$version.XXXXXX")"
start=$(date +%s)
log "building jaeger $version from $module/cmd/jaeger (go build -p $jobs) ..."
# A static binary, as upstream ships it; -mod=readonly: go.sum is the pinned truth.
if ! (cd "$here/jaeger" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
      go build -p "$jobs" -trimpath -ldflags="-s -w" -o "$tmp" "$module/cmd/jaeger"); then
  rm -f "$tmp"; die "building jaeger failed"
fi
chmod 0755 "$tmp"
mv -f "$tmp" "$out"
log "built jaeger in $(( $(date +%s) - start ))s -> $out"
echo "$out"
