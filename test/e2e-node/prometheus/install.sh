#!/usr/bin/env bash
# Makes a Prometheus with kubernetes_sd_configs available for journey 5 of the e2e-node tier and
# prints its path. Debian's prometheus package is built without the Kubernetes service discovery
# ("field kubernetes_sd_configs not found"), so this builds cmd/prometheus from its Go module
# (go.mod beside this script; never a prebuilt download) with only the file, http and kubernetes
# discovery plugins (-tags remove_all_sd,enable_kubernetes_sd), cached in
# ${PAYGO_CACHE_DIR:-~/.cache/paygo}/bin/prometheus-<version>. $PAYGO_PROMETHEUS overrides.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO_BUILD_WHO=e2e-node/prometheus
# shellcheck source=../../support/go-build.sh
. "$here/../../support/go-build.sh"
if [ -n "${PAYGO_PROMETHEUS:-}" ]; then echo "$PAYGO_PROMETHEUS"; exit 0; fi
module=github.com/prometheus/prometheus
version="$(modver "$here/go.mod" "$module")" || die "no $module in go.mod"
out="$bindir/prometheus-$version"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
install_lock .install-prometheus.lock 1800
if [ ! -x "$out" ]; then go_build prometheus "$version" "$here" "$module/cmd/prometheus" "-s -w" "remove_all_sd,enable_kubernetes_sd"; fi
echo "$out"
