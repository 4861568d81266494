#!/usr/bin/env bash
# Makes kube-apiserver, etcd, kubectl and helm available for the control-plane tests, building
# them from their Go modules (never downloading prebuilt binaries), and prints the directory
# that holds symlinks to all four (stdout: that one line; progress goes to stderr).
#
# For each binary, the first of these wins:
#   1. $KUBEBUILDER_ASSETS/<bin>                       (a set you already have)
#   2. $PAYGO_CACHE_DIR/bin/<bin>-<version>            (an earlier build; default ~/.cache/paygo)
#   3. a fresh `go build` into that cache              (first run: see README.md for timings)
#
# Versions come from the go.mod files beside this script (kube/, etcd/, helm/); changing a
# version there changes the cache file name, so the next run builds the new one.
# Idempotent and safe to run concurrently (builds are serialised with flock when present).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO_BUILD_WHO=controlplane/install
# shellcheck source=../go-build.sh
. "$here/../go-build.sh"
current="$bindir/current"

kube_version="$(modver "$here/kube/go.mod" k8s.io/kubernetes)" || die "no k8s.io/kubernetes in kube/go.mod"
etcd_version="$(modver "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)" || die "no etcd server in etcd/go.mod"
helm_version="$(modver "$here/helm/go.mod" helm.sh/helm/v3)" || die "no helm in helm/go.mod"

# helm's "1.37" from the k8s.io/client-go it is built with.
helm_k8s="$(modver "$here/helm/go.mod" k8s.io/client-go)" || die "no k8s.io/client-go in helm/go.mod"
helm_k8s_minor="$(echo "$helm_k8s" | sed -E 's/^v0\.([0-9]+)\..*/\1/')"

kube_flags="$(kube_ldflags "$kube_version")"
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_k8s_minor"
done

# name | version | module dir | package | ldflags
specs=(
  "etcd|$etcd_version|etcd|go.etcd.io/etcd/server/v3|-s -w"
  "kube-apiserver|$kube_version|kube|k8s.io/kubernetes/cmd/kube-apiserver|$kube_flags"
  "kubectl|$kube_version|kube|k8s.io/kubernetes/cmd/kubectl|$kube_flags"
  "helm|$helm_version|helm|helm.sh/helm/v3/cmd/helm|$helm_ldflags"
)

install_lock .install.lock 3600

for spec in "${specs[@]}"; do
  IFS='|' read -r name version moddir pkg ldflags <<<"$spec"
  src=""
  if [ -n "${KUBEBUILDER_ASSETS:-}" ] && [ -x "$KUBEBUILDER_ASSETS/$name" ]; then
    src="$KUBEBUILDER_ASSETS/$name"
    log "$name: using $src (KUBEBUILDER_ASSETS)"
  else
    src="$bindir/$name-$version"
    if [ -x "$src" ]; then
      log "$name: cached $src"
    else
      if [ "$name" = kube-apiserver ]; then log "  (a first, cold build of kube-apiserver takes about 8-10 min on 2 cores)"; fi
      go_build "$name" "$version" "$here/$moddir" "$pkg" "$ldflags"
    fi
  fi
  link_current "$current" "$name" "$src"
done

echo "$current"
