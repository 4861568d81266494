#!/usr/bin/env bash
# Builds localhost/paygo-e2e/apps:1 (apps/*.mjs on the local Node base that
# test/support/node/images.sh made, with buildah) and imports it into the node cluster's
# containerd (namespace k8s.io). Rebuilt only when apps/ or the base changed.
#   images.sh <containerd socket>
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
sock="$1"
cache="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}"
bin="$cache/bin/current"
store="$cache/buildah"
exec 8>"$store/.lock"
flock -w 1800 8 || { echo "e2e-node/images: timed out waiting for $store/.lock" >&2; exit 1; }
if [ -z "${PAYGO_BUILDAH_DRIVER:-}" ] && grep -qw overlay /proc/filesystems; then driver=overlay; else driver="${PAYGO_BUILDAH_DRIVER:-vfs}"; fi
B=(buildah --root "$store/root-$driver" --runroot "$store/run-$driver" --storage-driver "$driver")
base=localhost/paygo-base/nodejs20:nonroot
name=localhost/paygo-e2e/apps:1
sum="$( (cat "$here"/apps/*.mjs; "${B[@]}" inspect --type image --format '{{.FromImageID}}' "$base") | sha256sum | cut -c1-12)"
if ! "${B[@]}" inspect --type image "$name-$sum" >/dev/null 2>&1; then
  ctr="$("${B[@]}" from "$base")"
  "${B[@]}" copy "$ctr" "$here/apps/" /app/ >/dev/null
  "${B[@]}" config --workingdir /app --cmd '["/app/app.mjs"]' "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$name-$sum" >/dev/null
  echo "e2e-node/images: built $name" >&2
fi
"${B[@]}" tag "$name-$sum" "$name"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
"${B[@]}" push --quiet "$name" "docker-archive:$tmp/apps.tar:$name" >/dev/null
"$bin/ctr" --address "$sock" --namespace k8s.io images import --local=false --no-unpack "$tmp/apps.tar" >/dev/null 2>&1 ||
  "$bin/ctr" --address "$sock" --namespace k8s.io images import "$tmp/apps.tar" >/dev/null
echo "$name"
