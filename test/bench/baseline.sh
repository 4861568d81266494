#!/usr/bin/env bash
# Builds the sidecar of another commit for `make bench BASELINE=<git ref>`: a detached worktree
# under .paygo/, sharing this checkout's node_modules (same lock file assumed), compiled with tsc.
# Prints the worktree's path.
set -euo pipefail
ref="$1"
root="$(cd "$(dirname "$0")/../.." && pwd)"
sha="$(git -C "$root" rev-parse --short "$ref^{commit}")"
dir="$root/.paygo/baseline-$sha"
if [ ! -f "$dir/dist/sidecar/main.js" ]; then
  rm -rf "$dir"
  git -C "$root" worktree prune
  git -C "$root" worktree add --detach "$dir" "$sha" >&2
  ln -sfn "$root/node_modules" "$dir/node_modules"
  (cd "$dir" && "$root/node_modules/.bin/tsc" -p tsconfig.json >&2)
fi
echo "$dir"
