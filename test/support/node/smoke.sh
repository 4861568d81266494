#!/usr/bin/env bash
# Smoke test of a cluster from up.sh: a Deployment of 2 echo pods (localhost/paygo/echo:1) and a
# Service; one pod reaches the pods through the Service's DNS name (CoreDNS + kube-proxy), both
# by its full name and by its short name (search domains). With --paygo, also the path of
# test/kind/e2e.sh: a namespace labelled for injection, the demo ModelRoute, a client pod whose
# injected sidecar (native sidecar) gets its config from the operator and answers a completion.
#
#   KUBECONFIG=/tmp/paygo-node/kubeconfig smoke.sh [--paygo]
# Cleans up what it created (namespace paygo-node-smoke); exit code 0 when all passed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
[ -n "${KUBECONFIG:-}" ] || { echo "smoke.sh: set KUBECONFIG (up.sh prints it)" >&2; exit 2; }
export PATH="${PAYGO_CACHE_DIR:-$HOME/.cache/paygo}/bin/current:$PATH"
ns=paygo-node-smoke
log() { echo "node/smoke: $*" >&2; }
trap 'log FAILED; kubectl -n $ns get pods -o wide >&2 || true' ERR

kubectl delete namespace "$ns" --ignore-not-found --wait=true >/dev/null
kubectl create namespace "$ns" >/dev/null
kubectl -n "$ns" apply -f - >/dev/null <<'EOF'
apiVersion: apps/v1
kind: Deployment
metadata: { name: echo }
spec:
  replicas: 2
  selector: { matchLabels: { app: echo } }
  template:
    metadata: { labels: { app: echo } }
    spec:
      containers:
      - name: echo
        image: localhost/paygo/echo:1
        imagePullPolicy: IfNotPresent
        ports: [{ containerPort: 8080 }]
        readinessProbe: { httpGet: { path: /, port: 8080 }, periodSeconds: 1 }
---
apiVersion: v1
kind: Service
metadata: { name: echo }
spec:
  selector: { app: echo }
  ports: [{ port: 80, targetPort: 8080 }]
EOF
kubectl -n "$ns" rollout status deployment/echo --timeout=90s >&2
read -r -a pods <<<"$(kubectl -n "$ns" get pods -l app=echo -o jsonpath='{.items[*].metadata.name}')"
[ "${#pods[@]}" = 2 ] || { log "expected 2 pods, got ${#pods[*]}"; false; }
# kube-proxy programs a new Service's endpoints within about a second (its min sync period).
for i in $(seq 1 30); do
  kubectl -n "$ns" exec "${pods[0]}" -- /nodejs/bin/node /app/server.js get "http://echo.$ns.svc.cluster.local/" >/dev/null 2>&1 && break
  [ "$i" -lt 30 ] || { log "Service echo did not answer within 30 tries"; false; }
  sleep 0.5
done
seen=""
for i in $(seq 1 20); do
  url="http://echo.$ns.svc.cluster.local/"; [ $((i % 2)) = 0 ] && url="http://echo/"
  out="$(kubectl -n "$ns" exec "${pods[0]}" -- /nodejs/bin/node /app/server.js get "$url")"
  grep -q '^200 hello from echo-' <<<"$out" || { log "unexpected answer from $url: $out"; false; }
  seen="$seen $(awk '{print $4}' <<<"$out")"
done
n="$(tr ' ' '\n' <<<"$seen" | sort -u | grep -c .)"
log "20 requests from ${pods[0]} through Service echo (DNS names): answered by $n distinct pods"
[ "$n" = 2 ] || { log "expected both pods to answer"; false; }

if [ "${1:-}" = --paygo ]; then
  kubectl label namespace "$ns" paygo.dev/inject=enabled >/dev/null
  kubectl -n "$ns" apply -f "$here/../../kind/modelroute-demo.yaml" >/dev/null
  kubectl -n "$ns" wait --for=condition=Accepted modelroute/demo --timeout=60s >/dev/null
  kubectl -n "$ns" apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Pod
metadata: { name: client }
spec:
  restartPolicy: Never
  containers:
  - name: client
    image: localhost/paygo/echo:1
    imagePullPolicy: IfNotPresent
    command: ["/nodejs/bin/node", "-e"]
    args:
    - |
      const url = process.env.OPENAI_BASE_URL + '/chat/completions';
      (async () => {
        for (let i = 0; i < 60; i++) {
          try {
            const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' },
              body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hello from paygo-node' }] }) });
            const t = await r.text(); if (r.ok) { console.log(t); return; } console.error(r.status, t);
          } catch (e) { console.error(String(e.cause ?? e)); }
          await new Promise((res) => setTimeout(res, 2000));
        }
        process.exit(1);
      })();
EOF
  first="$(kubectl -n "$ns" get pod client -o jsonpath='{.spec.initContainers[0].name}/{.spec.initContainers[0].restartPolicy}')"
  [ "$first" = paygo-sidecar/Always ] || { log "client was not injected with a native sidecar ($first)"; false; }
  kubectl -n "$ns" wait --for=jsonpath='{.status.phase}'=Succeeded pod/client --timeout=180s >/dev/null
  kubectl -n "$ns" logs client -c client | grep -q '"object":"chat.completion"' || { log "no completion"; false; }
  kubectl -n "$ns" wait --for=condition=Ready modelroute/demo --timeout=60s >/dev/null
  log "paygo: sidecar injected, config from the operator, completion answered"
fi

kubectl delete namespace "$ns" --wait=false >/dev/null
log "ok"
