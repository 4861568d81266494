#!/usr/bin/env bash
# End-to-end on a kind cluster (needs Docker, kind, kubectl): run after `make kind-up`, which
# installed the chart from charts/paygo with images built from this checkout.
#
#   KIND_CONTEXT=kind-paygo test/kind/e2e.sh
#
# A namespace labelled for injection gets the demo ModelRoute (simulate provider: no key, no
# network) and a curl pod. The webhook must inject the sidecar, the sidecar must get its config
# from the operator over the Service, and the pod's request to $OPENAI_BASE_URL must come back
# as a completion; the route's status must then count the sidecar as synced.
#
# This cannot run in paygo's CI (no container runtime). test/e2e/chart.test.ts covers the same
# path on a real kube-apiserver: chart install, the operator under the chart's RBAC, injection
# of this very client-pod.yaml through the chart's webhook configuration, the sidecar built
# from the injected container getting this modelroute-demo.yaml from the operator and
# answering a completion. Only kubelet (images, probes, native-sidecar start order) and cluster
# DNS/Service routing are left to this script.
set -euo pipefail

ctx="${KIND_CONTEXT:-kind-paygo}"
release_ns="${PAYGO_NAMESPACE:-paygo-system}"
ns="${E2E_NAMESPACE:-paygo-kind-e2e}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
k() { kubectl --context "$ctx" "$@"; }
log() { printf 'kind-e2e: %s\n' "$*" >&2; }

diagnose() {
  log "FAILED; diagnostics follow"
  k -n "$ns" get pods,modelroutes -o wide || true
  k -n "$ns" describe pod client || true
  k -n "$ns" logs client -c paygo-sidecar --tail=50 || true
  k -n "$ns" logs client -c client --tail=50 || true
  k -n "$release_ns" get pods -o wide || true
  k -n "$release_ns" logs deployment/paygo-operator --tail=80 || true
  k get mutatingwebhookconfiguration -l app.kubernetes.io/name=paygo -o yaml || true
}
trap diagnose ERR

log "operator ready?"
k -n "$release_ns" rollout status deployment/paygo-operator --timeout=180s

log "namespace $ns, labelled for injection"
k create namespace "$ns" --dry-run=client -o yaml | k apply -f -
k label namespace "$ns" paygo.dev/inject=enabled --overwrite

log "demo route (simulate provider)"
k -n "$ns" apply -f "$here/modelroute-demo.yaml"
k -n "$ns" wait --for=condition=Accepted modelroute/demo --timeout=60s

log "client pod"
k -n "$ns" delete pod client --ignore-not-found --wait=true
k -n "$ns" apply -f "$here/client-pod.yaml"

# Injected by the webhook: the sidecar is the first init container (a native sidecar).
first_init="$(k -n "$ns" get pod client -o jsonpath='{.spec.initContainers[0].name}')"
[ "$first_init" = paygo-sidecar ] || { log "pod client was not injected (first init container: '$first_init')"; false; }
restart_policy="$(k -n "$ns" get pod client -o jsonpath='{.spec.initContainers[0].restartPolicy}')"
[ "$restart_policy" = Always ] || { log "the sidecar is not a native sidecar (restartPolicy '$restart_policy')"; false; }

log "waiting for the client to get a completion"
k -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=240s
out="$(k -n "$ns" logs client -c client)"
grep -q '"object":"chat.completion"' <<<"$out" || { log "no completion in the client's output: $out"; false; }

log "route status"
k -n "$ns" wait --for=condition=Ready modelroute/demo --timeout=60s
k -n "$ns" get modelroute demo

trap - ERR
log "ok"
