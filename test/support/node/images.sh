#!/usr/bin/env bash
# Builds the container images of the single-node test cluster with Debian's buildah (no Docker
# daemon, no registry), and writes each as a docker-archive tarball that `ctr images import`
# takes. Progress on stderr; stdout: one line per archive written.
#
#   images.sh --out DIR [--bin-dir DIR] [--no-paygo]
#
# Images (the local ones are made from files of this machine, never pulled):
#   localhost/paygo-base/nodejs20:nonroot  the final stage's base, laid out like
#       gcr.io/distroless/nodejs20-debian12:nonroot: this machine's Node 20 at /nodejs/bin/node
#       with the shared libraries it links, uid/gid 65532 "nonroot", CA bundle, no shell.
#   localhost/paygo-base/node20:build      the build stage's base, in place of
#       node:20-bookworm-slim: node + npm (/usr/local/bin), dash as /bin/sh, a few coreutils.
#   localhost/paygo/pause:3.10             the pod sandbox image (pause/ built with Go).
#   localhost/paygo/coredns:<version>      the coredns binary from install.sh, from scratch.
#   localhost/paygo/echo:1                 a tiny HTTP server on the nodejs20 base (smoke tests).
#   ghcr.io/paygo-dev/paygo-operator:<package.json version>  operator/Dockerfile
#   ghcr.io/paygo-dev/paygo-sidecar:<package.json version>   sidecar/Dockerfile
#       (the two bases passed as build args; `npm ci` inside needs the npm registry for what
#       the host's npm cache, mounted into the build, does not hold.)
#
# buildah runs as root with --isolation chroot (no user namespaces needed) and the overlay
# storage driver (vfs where the kernel has no overlayfs; PAYGO_BUILDAH_DRIVER overrides); its
# store is ${PAYGO_CACHE_DIR:-~/.cache/paygo}/buildah/root-<driver>, so the bases and the
# `npm ci` layer are reused (--layers), and a paygo image whose sources (what the Dockerfile
# COPYs) did not change is not rebuilt at all. Reset: rm -rf ~/.cache/paygo/buildah.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../../.." && pwd)"
cache="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}"
out="" bin_dir="" paygo=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$2"; shift 2 ;;
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --no-paygo) paygo=0; shift ;;
    *) echo "images.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$out" ] || { echo "images.sh: --out is required" >&2; exit 2; }
mkdir -p "$out"
[ -n "$bin_dir" ] || bin_dir="$("$here/install.sh")"

log() { echo "node/images: $*" >&2; }
store="$cache/buildah"
mkdir -p "$store"
# One build at a time per store (buildah's own locks are per image, not per build).
exec 8>"$store/.lock"
flock -w 1800 8 || { log "error: timed out waiting for $store/.lock"; exit 1; }
# overlay where the kernel has it (layers stored as diffs: ~1.8 GB for everything here),
# else vfs (a full copy per layer: ~15 GB after a few builds).
if [ -z "${PAYGO_BUILDAH_DRIVER:-}" ] && grep -qw overlay /proc/filesystems; then driver=overlay; else driver="${PAYGO_BUILDAH_DRIVER:-vfs}"; fi
B=(buildah --root "$store/root-$driver" --runroot "$store/run-$driver" --storage-driver "$driver")

has_image() { "${B[@]}" inspect --type image "$1" >/dev/null 2>&1; }
# Working containers an interrupted earlier run left behind (the store is ours, and locked).
"${B[@]}" rm --all >/dev/null 2>&1 || true

tmp="$(mktemp -d)"
cleanup() {
  [ -n "${ctr:-}" ] && "${B[@]}" rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Copies files (following symlinks) and the shared libraries they link into a root fs.
add_files() { # rootfs file...
  local rf="$1" f lib; shift
  for f in "$@"; do
    cp -L --parents "$f" "$rf/"
    ldd "$f" 2>/dev/null | awk '$2=="=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
      while read -r lib; do [ -e "$rf$lib" ] || cp -L --parents "$lib" "$rf/"; done
  done
}
etc_files() { # rootfs: passwd/group with root and nonroot (65532), CA bundle, nsswitch
  local rf="$1"
  mkdir -p "$rf/etc/ssl/certs" "$rf/tmp" "$rf/root" "$rf/home/nonroot"
  chmod 1777 "$rf/tmp"; chmod 0700 "$rf/root" "$rf/home/nonroot"; chown 65532:65532 "$rf/home/nonroot"
  printf 'root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' >"$rf/etc/passwd"
  printf 'root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n' >"$rf/etc/group"
  printf 'hosts: files dns\n' >"$rf/etc/nsswitch.conf"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rf/etc/ssl/certs/ca-certificates.crt"
}
commit_rootfs() { # rootfs image-name config-args...
  local rf="$1" name="$2"; shift 2
  ctr="$("${B[@]}" from scratch)"
  "${B[@]}" copy "$ctr" "$rf/" / >/dev/null
  "${B[@]}" config "$@" "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$name" >/dev/null
  ctr=""
  log "built $name"
}

node_bin="$(readlink -f "$(command -v node)")"
node_ver="$("$node_bin" --version)"
case "$node_ver" in v20.*) ;; *) log "error: the local Node.js base needs Node 20 (found $node_ver)"; exit 1 ;; esac
npm_dir="$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")"  # .../node_modules/npm
[ -f "$npm_dir/package.json" ] || { log "error: npm not found next to node"; exit 1; }
# Rebuild the bases when this machine's node changes.
base_tag="$node_ver-$(sha256sum "$node_bin" "$here/images.sh" | sha256sum | cut -c1-12)"
runtime_base="localhost/paygo-base/nodejs20:nonroot-$base_tag"
build_base="localhost/paygo-base/node20:build-$base_tag"

if ! has_image "$runtime_base"; then
  rf="$tmp/runtime"; mkdir -p "$rf"
  etc_files "$rf"
  add_files "$rf" "$node_bin"
  mkdir -p "$rf/nodejs/bin"; mv "$rf$node_bin" "$rf/nodejs/bin/node"
  commit_rootfs "$rf" "$runtime_base" --user 65532:65532 --workingdir /home/nonroot \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    --entrypoint '["/nodejs/bin/node"]' --cmd ''
fi
"${B[@]}" tag "$runtime_base" localhost/paygo-base/nodejs20:nonroot

if ! has_image "$build_base"; then
  rf="$tmp/build"; mkdir -p "$rf"
  etc_files "$rf"
  add_files "$rf" "$node_bin"
  mkdir -p "$rf/usr/local/bin" "$rf/usr/local/lib/node_modules"
  mv "$rf$node_bin" "$rf/usr/local/bin/node" 2>/dev/null || true
  cp -a "$npm_dir" "$rf/usr/local/lib/node_modules/npm"
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rf/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rf/usr/local/bin/npx"
  # A shell for RUN and npm's lifecycle scripts, and the tools such scripts commonly call.
  tools=(/bin/dash)
  for t in env ls cat mkdir rm cp mv chmod chown ln touch uname sed grep tar gzip find xargs true false sleep head tail wc sort dirname basename readlink; do
    p="$(type -P "$t" || true)"; [ -n "$p" ] && tools+=("$(readlink -f "$p")")
  done
  add_files "$rf" "${tools[@]}"
  mkdir -p "$rf/bin" "$rf/usr/bin"
  ln -sf dash "$rf/bin/sh" 2>/dev/null || ln -sf /usr/bin/dash "$rf/bin/sh"
  [ -e "$rf/usr/bin/env" ] || ln -s "$(readlink -f "$(command -v env)")" "$rf/usr/bin/env"
  # npm in the build reaches the registry as this machine's npm does: the same CA bundle
  # (copied above; it may hold a proxy's CA) and the same registry URL.
  npm_env=(--env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
           --env npm_config_cafile=/etc/ssl/certs/ca-certificates.crt
           --env npm_config_update_notifier=false)
  reg="$(npm config get registry 2>/dev/null || true)"
  case "$reg" in ""|https://registry.npmjs.org/) ;; *) npm_env+=(--env "npm_config_registry=$reg") ;; esac
  commit_rootfs "$rf" "$build_base" --user 0:0 --workingdir / \
    --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env NODE_VERSION="${node_ver#v}" "${npm_env[@]}" --cmd '["node"]'
fi
"${B[@]}" tag "$build_base" localhost/paygo-base/node20:build

# --- pause, coredns, echo ------------------------------------------------------------------------
pause_img=localhost/paygo/pause:3.10
command -v go >/dev/null 2>&1 || export PATH="/usr/local/go/bin:$PATH"
pause_sum="$(cat "$here/pause/main.go" "$here/pause/go.mod" | sha256sum | cut -c1-12)"
if ! has_image "$pause_img-$pause_sum"; then
  rf="$tmp/pause"; mkdir -p "$rf"
  (cd "$here/pause" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=3.10-paygo" -o "$rf/pause" .)
  commit_rootfs "$rf" "$pause_img-$pause_sum" --user 65535:65535 --entrypoint '["/pause"]' --cmd ''
fi
"${B[@]}" tag "$pause_img-$pause_sum" "$pause_img"

coredns_bin="$(readlink -f "$bin_dir/coredns")"
coredns_img="localhost/paygo/coredns:$("$coredns_bin" -version | awk -F- 'NR==1{print $2}' | tr -d '[:space:]')"
if ! has_image "$coredns_img"; then
  rf="$tmp/coredns"; mkdir -p "$rf"
  cp "$coredns_bin" "$rf/coredns"
  etc_files "$rf"
  commit_rootfs "$rf" "$coredns_img" --entrypoint '["/coredns"]' --cmd ''
fi

echo_img=localhost/paygo/echo:1
rf="$tmp/echo"; mkdir -p "$rf/app"
echo_src="$(sed -n '/^cat >"$rf\/app\/server.js"/,/^EOF$/p' "${BASH_SOURCE[0]}" | sha256sum | cut -c1-12)"
cat >"$rf/app/server.js" <<'EOF'
// Answers every request with this pod's hostname; `server.js get URL` fetches URL and prints it.
const http = require('node:http');
const os = require('node:os');
if (process.argv[2] === 'get') {
  fetch(process.argv[3]).then(async (r) => { console.log(r.status, await r.text()); })
    .catch((e) => { console.error(String(e.cause ?? e)); process.exit(1); });
} else {
  const port = Number(process.env.PORT || 8080);
  http.createServer((req, res) => res.end(`hello from ${os.hostname()}\n`)).listen(port, () => console.log(`listening on ${port}`));
}
EOF
if ! has_image "$echo_img-$base_tag-$echo_src"; then
  ctr="$("${B[@]}" from "$runtime_base")"
  "${B[@]}" copy "$ctr" "$rf/app/server.js" /app/server.js >/dev/null
  "${B[@]}" config --workingdir /app --cmd '["/app/server.js"]' "$ctr"
  "${B[@]}" commit --quiet --rm "$ctr" "$echo_img-$base_tag-$echo_src" >/dev/null; ctr=""
  log "built $echo_img"
fi
"${B[@]}" tag "$echo_img-$base_tag-$echo_src" "$echo_img"

images=("$pause_img" "$coredns_img" "$echo_img")

# --- paygo's own images ------------------------------------------------------------------------
if [ "$paygo" = 1 ]; then
  version="$(node -p 'require(process.argv[1]).version' "$repo/package.json")"
  npm_cache="$(npm config get cache)"
  mkdir -p "$npm_cache"
  # What the Dockerfiles COPY (see .dockerignore): unchanged sources, no rebuild.
  src_sum="$(cd "$repo" && find package.json package-lock.json tsconfig.json crds/src sidecar operator \
    examples/standalone.yaml -type f ! -name '*.log' -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
  for what in operator sidecar; do
    name="ghcr.io/paygo-dev/paygo-$what:$version"
    key="$name-$base_tag-$src_sum"
    images+=("$name")
    if has_image "$key"; then
      "${B[@]}" tag "$key" "$name"; log "$name: sources unchanged, cached"; continue
    fi
    start=$(date +%s)
    log "building $name from $what/Dockerfile (buildah, local bases) ..."
    # The host's npm cache (filled by the host's `npm ci` of the same lock file) is mounted where
    # npm in the build stage looks (root's ~/.npm) for the build only — never part of a layer — so
    # `npm ci` there fetches nothing it already has (a cold build: 140–350 s without it).
    "${B[@]}" build --isolation chroot --layers --pull=never --quiet \
      --volume "$npm_cache:/root/.npm" \
      --build-arg "BUILD_IMAGE=$build_base" --build-arg "RUNTIME_IMAGE=$runtime_base" \
      -f "$repo/$what/Dockerfile" -t "$name" "$repo" >"$tmp/$what.build.log" 2>&1 ||
      { tail -n 40 "$tmp/$what.build.log" >&2; log "error: building $name failed"; exit 1; }
    log "built $name in $(( $(date +%s) - start ))s"
    # Drop the keys of earlier builds of this image (their layers stay as build cache).
    "${B[@]}" images --format '{{.Name}}:{{.Tag}}' | grep -F "$name-" | grep -vxF "$key" |
      while read -r old; do "${B[@]}" rmi "$old" >/dev/null 2>&1 || true; done || true
    "${B[@]}" tag "$name" "$key"
  done
fi

for img in "${images[@]}"; do
  f="$out/$(echo "$img" | tr '/:' '__').tar"
  rm -f "$f"
  "${B[@]}" push --quiet "$img" "docker-archive:$f:$img" >/dev/null
  echo "$f"
done
