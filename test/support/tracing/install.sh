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
GO_BUILD_WHO=tracing/install
# shellcheck source=../go-build.sh
. "$here/../go-build.sh"

if [ -n "${PAYGO_JAEGER:-}" ]; then
  [ -x "$PAYGO_JAEGER" ] || die "PAYGO_JAEGER=$PAYGO_JAEGER is not an executable"
  echo "$PAYGO_JAEGER"; exit 0
fi

module=github.com/jaegertracing/jaeger
version="$(modver "$here/jaeger/go.mod" "$module")" || die "no $module in jaeger/go.mod"
out="$bindir/jaeger-$version"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
install_lock .install-jaeger.lock 1800
if [ ! -x "$out" ]; then go_build jaeger "$version" "$here/jaeger" "$module/cmd/jaeger" "-s -w"; fi
echo "$out"
