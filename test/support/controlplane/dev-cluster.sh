#!/usr/bin/env bash
# A long-lived local control plane for development (same startup as the tests: start.sh).
#
#   test/support/controlplane/dev-cluster.sh up       start (or report) it, apply crds/*.yaml,
#                                                     print `export KUBECONFIG=...`
#   test/support/controlplane/dev-cluster.sh down     stop it (data is kept: `up` resumes it)
#   test/support/controlplane/dev-cluster.sh reset    stop it and delete its data
#   test/support/controlplane/dev-cluster.sh status   exit 0 and print the env if it is up
#
#   eval "$(test/support/controlplane/dev-cluster.sh up)"; kubectl get crds
#
# State (PKI, etcd data, logs, pid files, kubeconfig) lives in ${PAYGO_DEV_DIR:-/tmp/paygo-dev-cluster}.
# kubectl and helm are in the directory install.sh prints (also in $PAYGO_DEV_DIR/env).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
dir="${PAYGO_DEV_DIR:-/tmp/paygo-dev-cluster}"
log() { echo "dev-cluster: $*" >&2; }

running() {
  [ -f "$dir/env" ] && [ -f "$dir/kube-apiserver.pid" ] && kill -0 "$(cat "$dir/kube-apiserver.pid")" 2>/dev/null
}

case "${1:-}" in
  up)
    bin_dir="$("$here/install.sh")"
    "$here/start.sh" --data-dir "$dir" --bin-dir "$bin_dir" >/dev/null
    kubeconfig="$dir/kubeconfig"
    shopt -s nullglob
    crds=("$root"/crds/*.yaml)
    if [ ${#crds[@]} -gt 0 ]; then
      for f in "${crds[@]}"; do
        "$bin_dir/kubectl" --kubeconfig "$kubeconfig" --request-timeout=30s apply --server-side --force-conflicts -f "$f" >&2
      done
      "$bin_dir/kubectl" --kubeconfig "$kubeconfig" --request-timeout=30s wait --for=condition=Established --timeout=30s crd --all >/dev/null
    else
      log "no crds/*.yaml to apply"
    fi
    log "up: $(grep '^PAYGO_CP_SERVER=' "$dir/env" | cut -d= -f2-) (logs: $dir/*.log; stop: $0 down)"
    echo "export KUBECONFIG=$kubeconfig"
    echo "export PATH=$bin_dir:\$PATH"
    ;;
  down)
    "$here/stop.sh" "$dir"
    log "down (data kept in $dir; '$0 reset' deletes it)"
    ;;
  reset)
    "$here/stop.sh" "$dir" --remove
    log "stopped and removed $dir"
    ;;
  status)
    if running; then cat "$dir/env"; else log "not running"; exit 1; fi
    ;;
  *)
    sed -n '2,14p' "${BASH_SOURCE[0]}" >&2
    exit 2
    ;;
esac
