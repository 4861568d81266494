# paygo — entry points. `make run` and `make test` install whatever is missing first.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CONFIG ?=
PORT ?= 4000
HOST ?= 127.0.0.1
NODE_MODULES_STAMP := node_modules/.paygo-installed

.PHONY: help deps build run test test-unit test-integration test-e2e fuzz mutation typecheck tools controlplane clean crds crds-check dev-cluster dev-cluster-down images chart-lint kind-up kind-e2e kind-down bench

help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# --- installation -----------------------------------------------------------------------------
$(NODE_MODULES_STAMP): package.json package-lock.json
	@command -v node >/dev/null || { echo "paygo: Node.js >= 20.18 is required but 'node' is not on PATH" >&2; exit 1; }
	@node -e 'const [a,b]=process.versions.node.split(".").map(Number); if (!(a>20||(a===20&&b>=18))) { console.error("paygo: Node.js >= 20.18 is required; found " + process.version); process.exit(1) }'
	npm ci --no-audit --no-fund
	@touch $@

deps: $(NODE_MODULES_STAMP) ## install npm dependencies (npm ci)

tools: ## install system tools the tests use (promtool from Debian's prometheus package)
	@test/support/install-tools.sh

controlplane: ## build (once, cached in ~/.cache/paygo) kube-apiserver, etcd, kubectl and helm from Go modules
	@command -v go >/dev/null || { echo "paygo: the control-plane tests need Go (https://go.dev/dl) to build kube-apiserver, etcd and helm" >&2; exit 1; }
	test/support/controlplane/install.sh >/dev/null

.PHONY: jaeger
jaeger: ## build (once, cached in ~/.cache/paygo) Jaeger v2 from its Go module, the tracing tests' backend (≈ 6 min)
	@command -v go >/dev/null || test -x /usr/local/go/bin/go || { echo "paygo: the tracing tests need Go (https://go.dev/dl) to build Jaeger" >&2; exit 1; }
	test/support/tracing/install.sh >/dev/null

# --- build and run ------------------------------------------------------------------------------
build: deps ## compile TypeScript to dist/ (the two programs executable, as their bin entries need)
	npm run --silent build

run: build ## start the sidecar standalone (CONFIG=file PORT=n; default: examples/standalone.yaml on 127.0.0.1:4000)
	node dist/sidecar/main.js $(if $(CONFIG),--config $(CONFIG)) --port $(PORT) --host $(HOST)

crds: build ## regenerate the CRD manifests crds/*.yaml from the zod schemas in crds/src
	node dist/crds/src/crd-gen-cli.js

crds-check: build ## fail if the checked-in crds/*.yaml are stale
	node dist/crds/src/crd-gen-cli.js --check

# --- tests --------------------------------------------------------------------------------------
typecheck: deps
	npx tsc -p tsconfig.json --noEmit

REPORTS := .paygo/test-reports
VITEST_JSON = --reporter=default --reporter=json --outputFile.json=$(REPORTS)/$(1).json
# A failed tier ends with its failures in brief (the last lines are what a CI log shows).
FAILED_TESTS = node test/support/failed-tests.mjs $(REPORTS)/$(1).json

test: build tools controlplane jaeger ## every test tier: unit, integration (real sidecar processes), e2e (real kube-apiserver), e2e-node (real pods; root on Linux)
	@rm -rf $(REPORTS) && mkdir -p $(REPORTS)
	npx vitest run --project unit $(call VITEST_JSON,unit) || { $(call FAILED_TESTS,unit); exit 1; }
	npx vitest run --project integration $(call VITEST_JSON,integration) || { $(call FAILED_TESTS,integration); exit 1; }
	npx vitest run --project e2e $(call VITEST_JSON,e2e) || { $(call FAILED_TESTS,e2e); exit 1; }
	@$(E2E_NODE_TIER)
	@node -e 'const fs=require("fs");let p=0,f=0,s=0,tiers=[];for(const t of ["unit","integration","e2e","e2e-node"]){const file="$(REPORTS)/"+t+".json";if(!fs.existsSync(file))continue;const r=JSON.parse(fs.readFileSync(file,"utf8"));tiers.push(t+" "+r.numPassedTests);p+=r.numPassedTests;f+=r.numFailedTests;s+=r.numPendingTests+r.numTodoTests}console.log("tests: "+p+" passed, "+f+" failed, "+s+" skipped ("+tiers.join(", ")+")")'

# The e2e-node tier needs root on Linux (containerd, kubelet, iptables). Elsewhere make test says
# it did not run it; CI (CI=true) must run it. down.sh runs whether the tests passed or not.
define E2E_NODE_TIER
if [ "$$(id -u)" = 0 ] && [ "$$(uname -s)" = Linux ]; then \
  rc=0; npx vitest run --project e2e-node $(call VITEST_JSON,e2e-node) || rc=$$?; \
  if [ -z "$${PAYGO_NODE_KUBECONFIG:-}" ]; then test/support/node/down.sh >/dev/null || rc=1; fi; \
  if [ $$rc != 0 ]; then $(call FAILED_TESTS,e2e-node); fi; exit $$rc; \
elif [ -n "$${CI:-}" ]; then \
  echo "paygo: the e2e-node tier needs root on Linux (containerd, kubelet, iptables); CI must run it" >&2; exit 1; \
else \
  echo "paygo: e2e-node tier NOT RUN: it needs root on Linux (containerd, kubelet, iptables); run make e2e-node as root" >&2; \
fi
endef

test-unit: deps controlplane ## unit tests only (the chart tests use the cached helm)
	npx vitest run --project unit

test-integration: build tools jaeger ## the built sidecar against fake upstreams and real clients
	npx vitest run --project integration

test-e2e: build controlplane ## control-plane tests on a real kube-apiserver + etcd (built from Go modules, cached)
	npx vitest run --project e2e

FUZZ_RUNS ?= 20000
ifndef FUZZ_SEED
FUZZ_SEED := $(shell date +%s)
endif
FUZZ_FILES := test/sidecar/sse.fuzz.test.ts test/sidecar/providers/streams.fuzz.test.ts test/operator/budget-ledger.property.test.ts
fuzz: deps ## the property tests (SSE, Bedrock event-stream, every stream translator, the budget ledger) with FUZZ_RUNS cases each (default 20000) and a new FUZZ_SEED (default: the clock)
	@echo "paygo fuzz: FUZZ_SEED=$(FUZZ_SEED) FUZZ_RUNS=$(FUZZ_RUNS) (make fuzz FUZZ_SEED=… repeats a run)"
	FUZZ_RUNS=$(FUZZ_RUNS) FUZZ_SEED=$(FUZZ_SEED) npx vitest run --project unit --testTimeout=0 $(FUZZ_FILES)

MUTATE ?=
mutation: deps ## StrykerJS mutation testing of routing, metering, budgets, chat and the operator's logic against the unit tier (incremental; MUTATE=glob,glob narrows it; report in .paygo/mutation/report.html; not in make test)
	MUTATE="$(MUTATE)" npx stryker run test/mutation/stryker.config.mjs

dev-cluster: build controlplane ## start a local kube-apiserver + etcd with the CRDs; prints the KUBECONFIG to use
	test/support/controlplane/dev-cluster.sh up

dev-cluster-down: ## stop the local control plane
	test/support/controlplane/dev-cluster.sh down

.PHONY: node-cluster node-cluster-down
node-cluster: ## (root) a real single-node cluster (containerd, kubelet, kube-proxy, CoreDNS; built and cached) with paygo installed from the chart; prints KUBECONFIG=… (test/support/node/README.md)
	test/support/node/up.sh --install-paygo

node-cluster-down: ## remove everything node-cluster started: processes, mounts, bridge, iptables rules, cgroups, files
	test/support/node/down.sh

.PHONY: e2e-node
e2e-node: build controlplane ## (root) the user journeys in real pods on a node cluster (up.sh --install-paygo, then down.sh; PAYGO_NODE_KUBECONFIG=… reuses a running one); the last tier of make test; results in test/e2e-node/results/
	@rc=0; npx vitest run --project e2e-node || rc=$$?; \
	  if [ -z "$${PAYGO_NODE_KUBECONFIG:-}" ]; then test/support/node/down.sh || rc=1; fi; exit $$rc

# --- images, Helm and kind (need Docker; not runnable in this project's CI, see README) --------
IMAGE_TAG ?= $(shell node -p 'require("./package.json").version')
OPERATOR_IMAGE ?= ghcr.io/paygo-dev/paygo-operator:$(IMAGE_TAG)
SIDECAR_IMAGE ?= ghcr.io/paygo-dev/paygo-sidecar:$(IMAGE_TAG)
KIND_CLUSTER ?= paygo

images: ## build the operator and sidecar container images
	docker build -f operator/Dockerfile -t $(OPERATOR_IMAGE) .
	docker build -f sidecar/Dockerfile -t $(SIDECAR_IMAGE) .

chart-lint: controlplane ## helm lint the chart
	$$HOME/.cache/paygo/bin/current/helm lint --strict charts/paygo

kind-up: images ## kind cluster with paygo installed from the chart and the examples applied
	kind get clusters | grep -qx $(KIND_CLUSTER) || kind create cluster --name $(KIND_CLUSTER)
	kind load docker-image --name $(KIND_CLUSTER) $(OPERATOR_IMAGE) $(SIDECAR_IMAGE)
	helm upgrade --install paygo charts/paygo -n paygo-system --create-namespace --kube-context kind-$(KIND_CLUSTER) \
	  --set operator.image.pullPolicy=Never --set sidecar.image.pullPolicy=Never
	kubectl --context kind-$(KIND_CLUSTER) -n paygo-system rollout status deployment/paygo-operator --timeout=180s

kind-e2e: ## end-to-end on the kind cluster (after kind-up)
	KIND_CONTEXT=kind-$(KIND_CLUSTER) test/kind/e2e.sh

kind-down: ## delete the kind cluster
	kind delete cluster --name $(KIND_CLUSTER)

BASELINE ?=
bench: build ## benchmarks: direct / nginx / Portkey / bare Node.js / paygo data plane, then config propagation (~6-9 min); BASELINE=<git ref> also runs that commit's sidecar; results in test/bench/results/
	bash test/bench/install-tools.sh
	$(if $(BASELINE),BENCH_BASELINE="$$(test/bench/baseline.sh $(BASELINE))" BENCH_BASELINE_REF="$(BASELINE) ($$(git rev-parse --short $(BASELINE)))") node dist/test/bench/run.js

clean: ## remove build output
	rm -rf dist
