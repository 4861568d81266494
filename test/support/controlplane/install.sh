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
cache="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}"
bindir="$cache/bin"
current="$bindir/current"
jobs="${PAYGO_BUILD_JOBS:-2}"

log() { echo "controlplane/install: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The version a go.mod requires for a module (the require line, not a replace line).
modver() { awk -v m="$2" '($1==m || ($1=="require" && $2==m)) && $0 !~ /=>/ { v = ($1=="require") ? $3 : $2 } END { if (v=="") exit 1; print v }' "$1"; }

kube_version="$(modver "$here/kube/go.mod" k8s.io/kubernetes)" || die "no k8s.io/kubernetes in kube/go.mod"
etcd_version="$(modver "$here/etcd/go.mod" go.etcd.io/etcd/server/v3)" || die "no etcd server in etcd/go.mod"
helm_version="$(modver "$here/helm/go.mod" helm.sh/helm/v3)" || die "no helm in helm/go.mod"

# "1.37" from "v1.37.2"; helm's "1.37" from the k8s.io/client-go it is built with.
kube_major="$(echo "$kube_version" | sed -E 's/^v([0-9]+)\..*/\1/')"
kube_minor="$(echo "$kube_version" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')"
helm_k8s="$(modver "$here/helm/go.mod" k8s.io/client-go)" || die "no k8s.io/client-go in helm/go.mod"
helm_k8s_minor="$(echo "$helm_k8s" | sed -E 's/^v0\.([0-9]+)\..*/\1/')"

kube_ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  kube_ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=$kube_major"
  kube_ldflags+=" -X $pkg.gitMinor=$kube_minor -X $pkg.gitTreeState=clean"
done
helm_ldflags="-s -w -X helm.sh/helm/v3/internal/version.version=$helm_version"
helm_ldflags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  helm_ldflags+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$helm_k8s_minor"
done

# name | version | module dir | package | ldflags
specs=(
  "etcd|$etcd_version|etcd|go.etcd.io/etcd/server/v3|-s -w"
  "kube-apiserver|$kube_version|kube|k8s.io/kubernetes/cmd/kube-apiserver|$kube_ldflags"
  "kubectl|$kube_version|kube|k8s.io/kubernetes/cmd/kubectl|$kube_ldflags"
  "helm|$helm_version|helm|helm.sh/helm/v3/cmd/helm|$helm_ldflags"
)

find_go() {
  if command -v go >/dev/null 2>&1; then return 0; fi
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; return 0; fi
  die "Go is needed to build the control-plane binaries (go.mod files ask for go $(awk '$1=="go"{print $2}' "$here/kube/go.mod")); install it or set KUBEBUILDER_ASSETS"
}

build() { # name version moddir pkg ldflags
  local name="$1" version="$2" moddir="$3" pkg="$4" ldflags="$5"
  local out="$bindir/$name-$version" tmp start
  find_go
  tmp="$(mktemp "$bindir/.$name-$version.XXXXXX")"
  start=$(date +%s)
  log "building $name $version from $pkg (go build -p $jobs) ..."
  if [ "$name" = kube-apiserver ]; then log "  (a first, cold build of kube-apiserver takes about 8-10 min on 2 cores)"; fi
  # Static binaries, as upstream ships them; -mod=readonly: go.sum is the pinned truth.
  if ! (cd "$here/$moddir" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
        go build -p "$jobs" -trimpath -ldflags="$ldflags" -o "$tmp" "$pkg"); then
    rm -f "$tmp"; die "building $name failed"
  fi
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out"
  log "built $name in $(( $(date +%s) - start ))s -> $out"
}

mkdir -p "$bindir" "$current"

# Serialise concurrent installs (two test runs must not build the same thing twice at once).
if command -v flock >/dev/null 2>&1; then
  exec 9>"$bindir/.install.lock"
  if ! flock -n 9; then
    log "another install is running; waiting for it (up to 60 min) ..."
    flock -w 3600 9 || die "timed out waiting for $bindir/.install.lock"
  fi
fi

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
      build "$name" "$version" "$moddir" "$pkg" "$ldflags"
    fi
  fi
  # Replace the link atomically (rename), and only when it changes: other test runs may be
  # executing these links right now.
  if [ "$(readlink "$current/$name" 2>/dev/null || true)" != "$src" ]; then
    ln -sfn "$src" "$current/.$name.$$"
    mv -fT "$current/.$name.$$" "$current/$name"
  fi
done

echo "$current"
