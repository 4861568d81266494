#!/usr/bin/env bash
# End-to-end on a kind cluster (needs Docker): run after `make kind-up`. An injected pod calls
# its sidecar on 127.0.0.1:4000 and gets a completion from the simulate provider.
# This cannot run in paygo's CI (no container runtime); the same paths are covered there by
# test/e2e (real kube-apiserver: chart install, webhook injection, operator push, budgets).
set -euo pipefail
ctx="${KIND_CONTEXT:-kind-paygo}"
k() { kubectl --context "$ctx" "$@"; }
ns=paygo-kind-e2e
k create namespace "$ns" --dry-run=client -o yaml | k apply -f -
k label namespace "$ns" paygo.dev/inject=enabled --overwrite
k -n "$ns" apply -f - <<'YAML'
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: demo }
spec:
  model: demo
  targets: [{ provider: simulate, model: sim, pricing: { input: "1.00", output: "2.00" } }]
YAML
k -n "$ns" delete pod client --ignore-not-found --wait=true
k -n "$ns" apply -f - <<'YAML'
apiVersion: v1
kind: Pod
metadata: { name: client }
spec:
  restartPolicy: Never
  containers:
    - name: client
      image: curlimages/curl:8.10.1
      command: [sh, -c]
      args:
        - >
          for i in $(seq 1 30); do
            curl -sf "$OPENAI_BASE_URL/chat/completions" -H 'content-type: application/json'
            -d '{"model":"demo","messages":[{"role":"user","content":"hi"}]}' && exit 0; sleep 2;
          done; exit 1
YAML
k -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=180s
k -n "$ns" logs client -c client | grep -q '"object":"chat.completion"'
k -n "$ns" get pod client -o jsonpath='{.spec.initContainers[0].name}' | grep -qx paygo-sidecar
k -n "$ns" get modelroute demo -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' | grep -qx True
echo "kind e2e: ok"
