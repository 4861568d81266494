#!/usr/bin/env bash
# Makes everything the single-node test cluster needs available, and prints the directory of
# symlinks to the binaries (stdout: that one line; progress goes to stderr).
#
#   1. Debian packages, installed with apt-get when missing (needs root):
#        runc, containernetworking-plugins (bridge, host-local, loopback, portmap in
#        /usr/lib/cni), iptables, nftables (nft: down.sh deletes the tables iptables-nft
#        created), conntrack, buildah.
#   2. The control plane's binaries (kube-apiserver, etcd, kubectl, helm):
#        ../controlplane/install.sh.
#   3. Built from their Go modules through the Go module proxy (never prebuilt downloads), and
#      cached as ${PAYGO_CACHE_DIR:-~/.cache/paygo}/bin/<name>-<version>, like the control plane:
#        kubelet, kube-proxy, kube-scheduler, kube-controller-manager   (kube/go.mod)
#        containerd, containerd-shim-runc-v2, ctr                      (containerd/go.mod)
#        coredns                                                       (coredns/go.mod)
#
# Versions come from the go.mod files beside this script; a new version gets a new cache file
# name. Idempotent; concurrent runs wait for each other (flock, the control plane's lock file).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
GO_BUILD_WHO=node/install
# shellcheck source=../go-build.sh
. "$here/../go-build.sh"
current="$bindir/current"

# --- 1. Debian packages ------------------------------------------------------------------------
apt_pkgs=(runc containernetworking-plugins iptables nftables conntrack buildah)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "needs root to apt-get install ${missing[*]}"
  log "apt-get install ${missing[*]} ..."
  export DEBIAN_FRONTEND=noninteractive
  # An empty package list (a fresh machine) makes install fail: update once, then retry.
  if ! apt-get install -y --no-install-recommends "${missing[@]}" >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends "${missing[@]}" >&2
  fi
fi
for f in /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/lib/cni/portmap; do
  [ -x "$f" ] || die "$f is missing (package containernetworking-plugins)"
done

# --- 2. control plane ----------------------------------------------------------------------------
"$here/../controlplane/install.sh" >/dev/null

# --- 3. node binaries from Go modules ---------------------------------------------------------------
kube_version="$(modver "$here/kube/go.mod" k8s.io/kubernetes)" || die "no k8s.io/kubernetes in kube/go.mod"
ctrd_version="$(modver "$here/containerd/go.mod" github.com/containerd/containerd/v2)" || die "no containerd in containerd/go.mod"
coredns_version="$(modver "$here/coredns/go.mod" github.com/coredns/coredns)" || die "no coredns in coredns/go.mod"

kube_flags="$(kube_ldflags "$kube_version")"
ctrd_pkg=github.com/containerd/containerd/v2
ctrd_ldflags="-s -w -X $ctrd_pkg/version.Version=$ctrd_version -X $ctrd_pkg/version.Package=$ctrd_pkg"
ctrd_tags="no_btrfs no_zfs no_devmapper urfave_cli_no_docs"
coredns_ldflags="-s -w -X github.com/coredns/coredns/coremain.GitCommit=$coredns_version"

# name | version | module dir | package | ldflags | tags
specs=(
  "containerd|$ctrd_version|containerd|$ctrd_pkg/cmd/containerd|$ctrd_ldflags|$ctrd_tags"
  "containerd-shim-runc-v2|$ctrd_version|containerd|$ctrd_pkg/cmd/containerd-shim-runc-v2|$ctrd_ldflags|$ctrd_tags"
  "ctr|$ctrd_version|containerd|$ctrd_pkg/cmd/ctr|$ctrd_ldflags|$ctrd_tags"
  "kubelet|$kube_version|kube|k8s.io/kubernetes/cmd/kubelet|$kube_flags|"
  "kube-proxy|$kube_version|kube|k8s.io/kubernetes/cmd/kube-proxy|$kube_flags|"
  "kube-scheduler|$kube_version|kube|k8s.io/kubernetes/cmd/kube-scheduler|$kube_flags|"
  "kube-controller-manager|$kube_version|kube|k8s.io/kubernetes/cmd/kube-controller-manager|$kube_flags|"
  "coredns|$coredns_version|coredns|github.com/coredns/coredns|$coredns_ldflags|"
)

install_lock .install.lock 3600

for spec in "${specs[@]}"; do
  IFS='|' read -r name version moddir pkg ldflags tags <<<"$spec"
  src="$bindir/$name-$version"
  if [ -x "$src" ]; then log "$name: cached $src"; else go_build "$name" "$version" "$here/$moddir" "$pkg" "$ldflags" "$tags"; fi
  link_current "$current" "$name" "$src"
done

echo "$current"
