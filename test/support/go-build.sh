# Shared by the install scripts that build test infrastructure from Go modules
# (controlplane/install.sh, node/install.sh, tracing/install.sh, ../e2e-node/prometheus/install.sh).
# Source it after setting GO_BUILD_WHO (the prefix of progress lines); it sets:
#   cache   ${PAYGO_CACHE_DIR:-~/.cache/paygo}      bindir  $cache/bin (created)
#   jobs    ${PAYGO_BUILD_JOBS:-2}
# and defines log, die, modver, find_go, install_lock, go_build and link_current.
# Progress goes to stderr: the scripts print only their result on stdout.

cache="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}"
bindir="$cache/bin"
jobs="${PAYGO_BUILD_JOBS:-2}"
mkdir -p "$bindir"

log() { echo "${GO_BUILD_WHO:-install}: $*" >&2; }
die() { log "error: $*"; exit 1; }

# The version a go.mod requires for a module (the require line, not a replace line).
modver() { awk -v m="$2" '($1==m || ($1=="require" && $2==m)) && $0 !~ /=>/ { v = ($1=="require") ? $3 : $2 } END { if (v=="") exit 1; print v }' "$1"; }

# Puts go on PATH (it may be installed in /usr/local/go without being on PATH); $1 says what
# else the user can do instead.
find_go() {
  if command -v go >/dev/null 2>&1; then return 0; fi
  if [ -x /usr/local/go/bin/go ]; then export PATH="/usr/local/go/bin:$PATH"; return 0; fi
  die "Go is needed to build ${1:-this}; install it (https://go.dev/dl)"
}

# Serialises installs sharing lock file $1 (two test runs must not build the same thing twice
# at once); waits at most $2 seconds. A no-op without flock.
install_lock() {
  command -v flock >/dev/null 2>&1 || return 0
  exec 9>"$bindir/$1"
  if ! flock -n 9; then
    log "another install is running; waiting for it (up to $(( $2 / 60 )) min) ..."
    flock -w "$2" 9 || die "timed out waiting for $bindir/$1"
  fi
}

# go_build NAME VERSION MODDIR PKG LDFLAGS [TAGS]: builds PKG in module directory MODDIR into
# $bindir/NAME-VERSION (written to a temporary name, then renamed: a half-built binary is never
# seen). Static (CGO_ENABLED=0), as upstream ships them; -mod=readonly: go.sum is the pinned truth.
go_build() {
  local name="$1" version="$2" moddir="$3" pkg="$4" ldflags="$5" tags="${6:-}"
  local out="$bindir/$name-$version" tmp start
  find_go "$name"
  tmp="$(mktemp "$bindir/.$name-$version.XXXXXX")"
  start=$(date +%s)
  log "building $name $version from $pkg (go build -p $jobs) ..."
  if ! (cd "$moddir" && CGO_ENABLED=0 GOFLAGS="${GOFLAGS:-} -mod=readonly" \
        go build -p "$jobs" -trimpath -tags "$tags" -ldflags="$ldflags" -o "$tmp" "$pkg"); then
    rm -f "$tmp"; die "building $name failed"
  fi
  chmod 0755 "$tmp"
  mv -f "$tmp" "$out"
  log "built $name in $(( $(date +%s) - start ))s -> $out"
}

# link_current DIR NAME SRC: DIR/NAME -> SRC, replaced atomically (rename) and only when it
# changes: other test runs may be executing these links right now.
link_current() {
  local dir="$1" name="$2" src="$3"
  mkdir -p "$dir"
  if [ "$(readlink "$dir/$name" 2>/dev/null || true)" != "$src" ]; then
    ln -sfn "$src" "$dir/.$name.$$"
    mv -fT "$dir/.$name.$$" "$dir/$name"
  fi
}

# The ldflags that stamp a Kubernetes binary's version as upstream's release builds do.
kube_ldflags() {
  local version="$1" major minor flags="-s -w" pkg
  major="$(echo "$version" | sed -E 's/^v([0-9]+)\..*/\1/')"
  minor="$(echo "$version" | sed -E 's/^v[0-9]+\.([0-9]+)\..*/\1/')"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=$major"
    flags+=" -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean"
  done
  echo "$flags"
}
