#!/usr/bin/env bash
# Makes a Prometheus with kubernetes_sd_configs available for journey 5 of the e2e-node tier and
# prints its path. Debian's prometheus package is built without the Kubernetes service discovery
# ("field kubernetes_sd_configs not found"), so this builds cmd/prometheus from its Go module
# (go.mod beside this script; never a prebuilt download) with only the file, http and kubernetes
# discovery plugins (-tags remove_all_sd,enable_kubernetes_sd), cached in
# ${PAYGO_CACHE_DIR:-~/.cache/paygo}/bin/prometheus-<version>. $PAYGO_PROMETHEUS overrides.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}"
bindir="$cache/bin"
log() { echo "e2e-node/prometheus: $*" >&2; }
die() { log "error: $*"; exit 1; }
if [ -n "${PAYGO_PROMETHEUS:-}" ]; then echo "$PAYGO_PROMETHEUS"; exit 0; fi
module=github.com/prometheus/prometheus
version="$(awk -v m="$module" '{ for (i = 1; i < NF; i++) if ($i == m) { print $(i + 1); exit } }' "$here/go.mod")"
[ -n "$version" ] || die "no $module in go.mod"
out="$bindir/prometheus-$version"
mkdir -p "$bindir"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
exec 9>"$bindir/.install-prometheus.lock"
flock -w 1800 9 || die "timed out waiting for $bindir/.install-prometheus.lock"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
command -v go >/dev/null 2>&1 || die "Go is needed to build Prometheus (or set PAYGO_PROMETHEUS)"
tmp="$(mktemp "$bindir/.prometheus-$version.XXXXXX")"
start=$(date +%s)
log "building prometheus $version (go build -p ${PAYGO_BUILD_JOBS:-2}; first time: minutes) ..."
if ! (cd "$here" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
      go build -p "${PAYGO_BUILD_JOBS:-2}" -trimpath -ldflags="-s -w" -tags remove_all_sd,enable_kubernetes_sd \
      -o "$tmp" "$module/cmd/prometheus"); then
  rm -f "$tmp"; die "building prometheus failed"
fi
chmod 0755 "$tmp"; mv -f "$tmp" "$out"
log "built prometheus in $(( $(date +%s) - start ))s -> $out"
echo "$out"
