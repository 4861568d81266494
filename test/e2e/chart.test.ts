import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { V1Container, V1Pod } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHART, findAll, findOne, flag, parseManifests, type DeploymentObject, type K8sObject, type WebhookConfigObject } from '../support/chart.js';
import { until } from '../support/cluster-env.js';
import { helm, kubectl, startControlPlane, waitCrdsEstablished, type ControlPlane } from '../support/controlplane/controlplane.js';
import { OPERATOR_BIN, startOperator, type OperatorProcess } from '../support/operator-process.js';
import { ROOT, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * The Helm chart on a real kube-apiserver + etcd (no nodes: pods stay Pending).
 *
 * 1. `helm install`: every object is accepted, the CRDs are Established and explainable.
 * 2. With no operator reachable the webhook fails closed, and the API server itself applies
 *    the selectors: labelled namespace OR labelled pod, never kube-system or the release namespace.
 * 3. The real operator process, started with the Deployment's own args and authenticated as the
 *    chart's ServiceAccount (so with exactly the chart's RBAC), creates its certificate, sets the
 *    caBundle, injects pods through the chart's MutatingWebhookConfiguration (the Service is
 *    pointed at 127.0.0.1, the only thing changed), writes route and budget status; a sidecar
 *    started from the injected container's args and env gets its config and answers a completion
 *    — what `make kind-e2e` does in a real cluster, minus kubelet and cluster DNS.
 * 4. `helm upgrade` keeps the operator's caBundle; failurePolicy Ignore admits pods while the
 *    operator is down; `helm uninstall` removes everything it installed.
 * 5. With the Prometheus Operator and cert-manager APIs served, `auto` and certManager mode
 *    render and install ServiceMonitor, PodMonitor, Issuers and Certificates.
 */
const NS = 'paygo-system';
/** The chart's webhook clientConfig port; the operator listens there on 127.0.0.1. */
const WEBHOOK_PORT = 8443;

let cp: ControlPlane;
let work: string;
let installed: K8sObject[] = [];
let operator: OperatorProcess | undefined;
let sidecar: SidecarProcess | undefined;

async function k(args: string[], stdin?: string): Promise<string> {
  const r = await kubectl(cp, args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function h(args: string[]): Promise<string> {
  const r = await helm(cp, args, { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`helm ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** `kubectl get` argument for a rendered object: kind.group, name, and -n when namespaced. */
function ref(o: K8sObject): string[] {
  const group = o.apiVersion.includes('/') ? `.${o.apiVersion.split('/')[0]}` : '';
  return [`${o.kind.toLowerCase()}${group}`, o.metadata.name, ...(o.metadata.namespace ? ['-n', o.metadata.namespace] : [])];
}

const pod = (namespace: string, name: string, labels: Record<string, string> = {}): V1Pod => ({
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: { name, namespace, labels },
  spec: { serviceAccountName: 'app', automountServiceAccountToken: false, containers: [{ name: 'app', image: 'example.invalid/app:1' }] },
});

/** Admission only (--dry-run=server: webhooks with sideEffects None are called, nothing is stored). */
async function admit(p: V1Pod): Promise<{ admitted: boolean; injected: boolean; stderr: string; pod?: V1Pod }> {
  const r = await kubectl(cp, ['create', '-f', '-', '-o', 'json', '--dry-run=server'], JSON.stringify(p), { timeoutMs: 30_000 });
  if (r.code !== 0) return { admitted: false, injected: false, stderr: r.stderr };
  const stored = JSON.parse(r.stdout) as V1Pod;
  return { admitted: true, injected: isInjected(stored), stderr: r.stderr, pod: stored };
}
const isInjected = (p: V1Pod) => (p.spec?.initContainers ?? []).some((c) => c.name === 'paygo-sidecar');

async function namespace(name: string, labels: Record<string, string> = {}): Promise<void> {
  if ((await kubectl(cp, ['get', 'namespace', name])).code !== 0) await k(['create', 'namespace', name]);
  if (Object.keys(labels).length > 0) await k(['label', 'namespace', name, '--overwrite', ...Object.entries(labels).map(([key, v]) => `${key}=${v}`)]);
  // No controller-manager here: create the ServiceAccounts pods name (the admission plugin checks them).
  for (const sa of ['app', 'default']) if ((await kubectl(cp, ['get', 'serviceaccount', sa, '-n', name])).code !== 0) await k(['create', 'serviceaccount', sa, '-n', name]);
}

async function assertPortFree(port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const s = createServer();
    s.once('error', (err) => reject(new Error(`127.0.0.1:${port} is in use; the chart's webhook port must be free for this test (${err.message})`)));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve()));
  });
}

/** A kubeconfig that authenticates as the chart's ServiceAccount: the operator gets exactly the chart's RBAC. */
async function serviceAccountKubeconfig(sa: string): Promise<string> {
  const token = (await k(['create', 'token', sa, '-n', NS, '--duration', '2h'])).trim();
  const file = join(work, `${sa}.kubeconfig`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'cp', cluster: { server: cp.server, 'certificate-authority': cp.caCertPath } }],
      users: [{ name: sa, user: { token } }],
      contexts: [{ name: 'sa', context: { cluster: 'cp', user: sa } }],
      'current-context': 'sa',
    }),
  );
  return file;
}

/** Is the release "paygo" installed? */
async function releaseInstalled(): Promise<boolean> {
  return (await helm(cp, ['status', 'paygo', '-n', NS], { timeoutMs: 60_000 })).code === 0;
}

/** `helm install` with the chart's defaults; records what it installed. */
async function install(): Promise<string> {
  const out = await h(['install', 'paygo', CHART, '-n', NS, '--create-namespace', '--wait=false']);
  installed = parseManifests(await h(['get', 'manifest', 'paygo', '-n', NS]));
  return out;
}

/** Each test sets up what it needs, so each also runs alone (`vitest -t`). */
async function ensureInstalled(): Promise<void> {
  if (!(await releaseInstalled())) await install();
  else if (installed.length === 0) installed = parseManifests(await h(['get', 'manifest', 'paygo', '-n', NS]));
}

/** The application namespaces: "shop" labelled for injection, "plain" not. */
async function appNamespaces(): Promise<void> {
  await namespace('shop', { 'paygo.dev/inject': 'enabled' });
  await namespace('plain');
}

async function stopOperator(): Promise<void> {
  await sidecar?.stop();
  sidecar = undefined;
  await operator?.stop();
  operator = undefined;
}

/**
 * The real operator process with the installed Deployment's args, authenticated as the chart's
 * ServiceAccount, serving the chart's webhook; returns once it injects pods.
 */
async function startChartOperator(): Promise<{ args: string[]; caPem: string }> {
  await assertPortFree(WEBHOOK_PORT);
  // The one change to what the chart installed: the Service resolves to 127.0.0.1, where the
  // operator runs. The API server still calls https://paygo-operator.paygo-system.svc (TLS name).
  await k(['patch', 'service', 'paygo-operator', '-n', NS, '--type', 'merge', '-p', JSON.stringify({ spec: { type: 'ExternalName', externalName: 'localhost' } })]);

  const deploy = findOne<DeploymentObject>(installed, 'Deployment');
  const args = deploy.spec.template.spec.containers[0]!.args.filter((a) => !a.startsWith('--listen') && !a.startsWith('--health'));
  const kubeconfig = await serviceAccountKubeconfig(deploy.spec.template.spec.serviceAccountName);
  operator = await startOperator(kubeconfig, { port: WEBHOOK_PORT, identity: 'paygo-operator-0', namespace: NS, args });

  // Its own CA and serving certificate, in the Secret the chart's Role lets it create.
  const caPem = Buffer.from(await k(['get', 'secret', 'paygo-operator-tls', '-n', NS, '-o', 'jsonpath={.data.ca\\.crt}']), 'base64').toString();
  expect(caPem).toContain('BEGIN CERTIFICATE');
  const bundles = await until(
    'caBundle on both webhooks',
    async () => (JSON.parse(await k(['get', 'mutatingwebhookconfiguration', 'paygo-inject', '-o', 'json'])) as WebhookConfigObject).webhooks.map((w) => w.clientConfig.caBundle ?? ''),
    (b) => b.every((x) => x !== ''),
  );
  expect(bundles.value.map((b) => Buffer.from(b, 'base64').toString())).toEqual([caPem, caPem]);
  await until('leader lease', () => k(['get', 'lease', 'paygo-operator', '-n', NS, '-o', 'jsonpath={.spec.holderIdentity}']), (id) => id === 'paygo-operator-0', 30_000);

  // The API server picks up the Service and caBundle changes through informers.
  await until('injection through the chart webhook', () => admit(pod('shop', 'probe')), (r) => r.injected, 30_000);
  return { args, caPem };
}

beforeAll(async () => {
  if (!existsSync(OPERATOR_BIN)) throw new Error(`${OPERATOR_BIN} is missing: run make build (npx tsc -p tsconfig.json) first`);
  cp = await startControlPlane();
  work = mkdtempSync(join(tmpdir(), 'paygo-chart-e2e-'));
});

afterAll(async () => {
  await sidecar?.stop();
  await operator?.stop();
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('charts/paygo on a real API server', () => {
  it('helm install: every rendered object is accepted; CRDs Established and explainable; NOTES printed', async () => {
    if (await releaseInstalled()) await h(['uninstall', 'paygo', '-n', NS, '--wait']);
    const out = await install();
    expect(out).toMatch(/STATUS: deployed/);
    expect(out).toContain('kubectl label namespace my-app paygo.dev/inject=enabled');
    expect(out).toContain('Never injected: kube-system, kube-public, kube-node-lease, paygo-system.');

    expect([...new Set(installed.map((o) => o.kind))].sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    for (const o of installed) {
      const stored = JSON.parse(await k(['get', ...ref(o), '-o', 'json'])) as K8sObject;
      expect(stored.metadata.annotations?.['meta.helm.sh/release-name'], `${o.kind}/${o.metadata.name}`).toBe('paygo');
      expect(stored.metadata.labels).toEqual(expect.objectContaining(o.metadata.labels ?? {}));
    }
    // What the API server stored is what was rendered (no field silently dropped or rewritten).
    const stored = JSON.parse(await k(['get', 'mutatingwebhookconfiguration', 'paygo-inject', '-o', 'json'])) as WebhookConfigObject;
    const rendered = findOne<WebhookConfigObject>(installed, 'MutatingWebhookConfiguration');
    expect(stored.webhooks.map((w) => [w.name, w.namespaceSelector, w.objectSelector, w.failurePolicy, w.clientConfig.service])).toEqual(
      rendered.webhooks.map((w) => [w.name, w.namespaceSelector, w.objectSelector, w.failurePolicy, w.clientConfig.service]),
    );
    expect(JSON.parse(await k(['get', 'clusterrole', 'paygo-operator', '-o', 'jsonpath={.rules}']))).toEqual(findOne<K8sObject & { rules: unknown }>(installed, 'ClusterRole').rules);
    expect(await k(['get', 'deployment', 'paygo-operator', '-n', NS, '-o', 'jsonpath={.spec.replicas}'])).toBe('2');

    await waitCrdsEstablished(cp, ['modelroutes.paygo.dev', 'budgets.paygo.dev']);
    const explain = await k(['explain', 'modelroute.spec.targets']);
    expect(explain).toMatch(/Which provider API the target speaks/);
    expect(await k(['get', 'crd', 'budgets.paygo.dev', '-o', 'jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}'])).toBe('Period Limit Spent Remaining State Age');
  });

  it('fails closed while the operator is unreachable; the API server applies the selectors as designed', async () => {
    await ensureInstalled();
    await stopOperator();
    await appNamespaces();
    for (const ns of ['kube-system', NS]) await namespace(ns, { 'paygo.dev/inject': 'enabled' });
    // The Service has a ClusterIP nobody routes here: every call the API server makes fails.
    const cases: Array<[V1Pod, string | null]> = [
      [pod('shop', 'a'), 'namespace.inject.paygo.dev'],
      [pod('plain', 'b', { 'paygo.dev/inject': 'true' }), 'pod.inject.paygo.dev'],
      [pod('plain', 'c'), null],
      [pod('shop', 'd', { 'paygo.dev/inject': 'false' }), null],
      [pod('kube-system', 'e', { 'paygo.dev/inject': 'true' }), null],
      [pod(NS, 'f', { 'paygo.dev/inject': 'true' }), null],
    ];
    const results = await Promise.all(cases.map(([p]) => admit(p)));
    cases.forEach(([p, webhook], i) => {
      const r = results[i]!;
      const what = `${p.metadata?.namespace}/${p.metadata?.name} ${JSON.stringify(p.metadata?.labels)}`;
      if (webhook === null) expect(r.admitted, `${what}: ${r.stderr}`).toBe(true);
      else {
        expect(r.admitted, what).toBe(false);
        expect(r.stderr, what).toContain(`failed calling webhook "${webhook}"`);
      }
    });
    await k(['label', 'namespace', 'kube-system', 'paygo.dev/inject-']);
  });

  it('the real operator with only the chart’s RBAC: certificate, caBundle, injection through the chart’s webhook, status, a completion', async () => {
    await ensureInstalled();
    await appNamespaces();
    await stopOperator();
    const { args, caPem } = await startChartOperator();
    const viaPodLabel = await admit(pod('plain', 'labelled', { 'paygo.dev/inject': 'true' }));
    expect(viaPodLabel.injected, viaPodLabel.stderr).toBe(true);
    expect((await admit(pod('plain', 'unlabelled'))).injected).toBe(false);
    expect((await admit(pod(NS, 'own', { 'paygo.dev/inject': 'true' }))).injected).toBe(false);

    // What make kind-e2e applies, in the same files.
    await k(['apply', '-n', 'shop', '-f', join(ROOT, 'test/kind/modelroute-demo.yaml')]);
    await k(['apply', '-n', 'shop', '-f', join(ROOT, 'test/kind/client-pod.yaml')]);
    const client = JSON.parse(await k(['get', 'pod', 'client', '-n', 'shop', '-o', 'json'])) as V1Pod;
    const injected = client.spec?.initContainers?.[0] as V1Container;
    expect(injected).toMatchObject({ name: 'paygo-sidecar', image: flag(args, '--sidecar-image'), imagePullPolicy: flag(args, '--sidecar-image-pull-policy'), restartPolicy: 'Always' });
    expect(flag(injected.args ?? [], '--operator')).toBe(flag(args, '--operator-url'));
    expect(injected.ports?.[0]).toMatchObject({ name: 'paygo-metrics', containerPort: 9464 });
    expect(client.spec?.containers[0]?.env).toContainEqual({ name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:4000/v1' });
    expect(client.metadata?.labels?.['paygo.dev/injected']).toBe('true'); // the PodMonitor's selector

    // README "Install with Helm": a Secret per provider, the example route and budget.
    for (const [name, key] of [['openai', 'sk-test'], ['anthropic', 'sk-ant-test']] as const) await k(['create', 'secret', 'generic', name, '-n', 'shop', `--from-literal=api-key=${key}`]);
    await k(['apply', '-n', 'shop', '-f', join(ROOT, 'examples/modelroute-support-bot.yaml')]);
    await k(['apply', '-n', 'shop', '-f', join(ROOT, 'examples/budget-monthly.yaml')]);
    const condition = async (kind: string, name: string, type: string) =>
      k(['get', kind, name, '-n', 'shop', '-o', `jsonpath={.status.conditions[?(@.type=="${type}")].status}`]);
    await until('demo route Accepted (status written by the operator)', () => condition('modelroute', 'demo', 'Accepted'), (s) => s === 'True', 20_000);
    await until('support-bot ResolvedRefs (Secrets watched)', () => condition('modelroute', 'support-bot', 'ResolvedRefs'), (s) => s === 'True', 20_000);

    // The sidecar as kubelet would start it: the injected args and env; only what needs a pod
    // (the token file, the state dir, the Service DNS name, the ports) is replaced.
    const token = (await k(['create', 'token', 'default', '-n', 'shop', '--audience', 'paygo', '--bound-object-kind', 'Pod', '--bound-object-name', 'client', '--duration', '1h'])).trim();
    const tokenFile = join(work, 'client.token');
    writeFileSync(tokenFile, token);
    const replace: Record<string, string> = { '--operator': `https://127.0.0.1:${WEBHOOK_PORT}`, '--token-file': tokenFile, '--state-dir': mkdtempSync(join(work, 'state-')) };
    const sidecarArgs: string[] = [];
    const injectedArgs = injected.args ?? [];
    for (let i = 0; i < injectedArgs.length; i += 2) {
      const [name, value] = [injectedArgs[i]!, injectedArgs[i + 1]!];
      if (name === '--port' || name === '--metrics-port') continue; // startSidecar picks free ones
      sidecarArgs.push(name, replace[name] ?? value);
    }
    const env = Object.fromEntries((injected.env ?? []).map((e) => [e.name, e.value ?? '']));
    expect(env.PAYGO_OPERATOR_CA_PEM).toBe(caPem);
    sidecar = await startSidecar(null, { args: sidecarArgs, env, waitReady: false });
    const s = sidecar;
    await until('sidecar ready (config from the operator)', async () => (await fetch(`${s.url}/readyz`)).status, (st) => st === 200, 20_000);
    const res = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'hello from the chart test' }] }) });
    const body = (await res.json()) as { object?: string };
    expect(res.status, JSON.stringify(body)).toBe(200);
    expect(body.object).toBe('chat.completion');
    expect(res.headers.get('x-paygo-route')).toBe('demo');
    const metrics = await (await fetch(s.metricsUrl)).text();
    expect(metrics).toMatch(/paygo_cost_usd_total\{namespace="shop",route="demo"[^}]*\} [0-9.e-]+/);
    await until('route Ready with the sidecar synced', () => k(['get', 'modelroute', 'demo', '-n', 'shop', '-o', 'jsonpath={.status.sidecars.synced}/{.status.conditions[?(@.type=="Ready")].status}']), (v) => v === '1/True', 20_000);
    // The budget covers the namespace: the sidecar spent an allowance the operator granted and
    // wrote to Budget.status (budgets/status under the chart's RBAC), then reported the spend.
    await until('the spend in Budget.status', () => k(['get', 'budget', 'monthly', '-n', 'shop', '-o', 'jsonpath={.status.state}/{.status.spent}']), (v) => /^Ok\/0\.0*[1-9]/.test(v), 30_000);
  });

  it('helm upgrade with changed values keeps the operator’s caBundle; the webhook keeps injecting', async () => {
    await ensureInstalled();
    await appNamespaces();
    if (!operator) await startChartOperator();
    const before = await k(['get', 'mutatingwebhookconfiguration', 'paygo-inject', '-o', 'jsonpath={.webhooks[*].clientConfig.caBundle}']);
    await h(['upgrade', 'paygo', CHART, '-n', NS, '--wait=false', '--set', 'operator.replicas=3', '--set', 'webhook.failurePolicy=Ignore', '--set', 'sidecar.image.tag=0.1.1']);
    expect(await k(['get', 'deployment', 'paygo-operator', '-n', NS, '-o', 'jsonpath={.spec.replicas}'])).toBe('3');
    const args = JSON.parse(await k(['get', 'deployment', 'paygo-operator', '-n', NS, '-o', 'jsonpath={.spec.template.spec.containers[0].args}'])) as string[];
    expect(flag(args, '--sidecar-image')).toBe('ghcr.io/paygo-dev/paygo-sidecar:0.1.1');
    expect(await k(['get', 'mutatingwebhookconfiguration', 'paygo-inject', '-o', 'jsonpath={.webhooks[*].failurePolicy}'])).toBe('Ignore Ignore');
    expect(await k(['get', 'mutatingwebhookconfiguration', 'paygo-inject', '-o', 'jsonpath={.webhooks[*].clientConfig.caBundle}'])).toBe(before);
    expect((await admit(pod('shop', 'after-upgrade'))).injected).toBe(true);
  });

  it('failurePolicy Ignore: with the operator down, labelled pods start without the sidecar', async () => {
    await ensureInstalled();
    await appNamespaces();
    await h(['upgrade', 'paygo', CHART, '-n', NS, '--wait=false', '--reuse-values', '--set', 'webhook.failurePolicy=Ignore']);
    await stopOperator();
    const r = await admit(pod('shop', 'operator-down'));
    expect(r.admitted, r.stderr).toBe(true);
    expect(r.injected).toBe(false);
  });

  it('helm uninstall removes every object it installed; the CRDs and what the operator created stay', async () => {
    await ensureInstalled();
    await appNamespaces();
    // What the operator creates when it runs (its TLS Secret, its Lease) must outlive the release.
    const operatorHasRun = (await kubectl(cp, ['get', 'lease', 'paygo-operator', '-n', NS])).code === 0;
    if (!operatorHasRun) await startChartOperator();
    await stopOperator();
    await h(['uninstall', 'paygo', '-n', NS, '--wait']);
    for (const o of installed) expect((await kubectl(cp, ['get', ...ref(o)])).code, `${o.kind}/${o.metadata.name} still exists`).not.toBe(0);
    // Helm never deletes CRDs (that would delete every ModelRoute and Budget); the operator's
    // Secret and Lease are not Helm's: `kubectl delete namespace paygo-system` removes them.
    await k(['get', 'crd', 'modelroutes.paygo.dev', 'budgets.paygo.dev']);
    await k(['get', 'secret', 'paygo-operator-tls', '-n', NS]);
    await k(['get', 'lease', 'paygo-operator', '-n', NS]);
    expect((await admit(pod('shop', 'after-uninstall'))).admitted).toBe(true);
  });

  it('with the Prometheus Operator and cert-manager APIs served: auto monitors and certManager mode install', async () => {
    // Stand-ins for the real CRDs (served, schema-less): what is checked here is helm's API
    // detection and that the API server stores the objects; their fields are checked in
    // test/charts/chart.test.ts against the documented shapes.
    const standIn = (group: string, kind: string, plural: string) => ({
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: `${plural}.${group}` },
      spec: {
        group,
        scope: 'Namespaced',
        names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
        versions: [{ name: 'v1', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    });
    const crds = [standIn('monitoring.coreos.com', 'ServiceMonitor', 'servicemonitors'), standIn('monitoring.coreos.com', 'PodMonitor', 'podmonitors'), standIn('cert-manager.io', 'Issuer', 'issuers'), standIn('cert-manager.io', 'Certificate', 'certificates')];
    await k(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: crds }));
    await waitCrdsEstablished(cp, crds.map((c) => c.metadata.name));

    await h(['install', 'obs', CHART, '-n', 'obs-system', '--create-namespace', '--wait=false', '--set', 'certificates.mode=certManager']);
    const objs = parseManifests(await h(['get', 'manifest', 'obs', '-n', 'obs-system']));
    expect(findAll(objs, 'ServiceMonitor').map((o) => o.metadata.name)).toEqual(['obs-paygo-operator']);
    expect(findAll(objs, 'PodMonitor').map((o) => o.metadata.name)).toEqual(['obs-paygo-sidecars']);
    expect(findAll(objs, 'Certificate').map((o) => o.metadata.name).sort()).toEqual(['obs-paygo-operator', 'obs-paygo-operator-ca']);
    expect(findAll(objs, 'Issuer').map((o) => o.metadata.name).sort()).toEqual(['obs-paygo-operator-ca', 'obs-paygo-operator-selfsigned']);
    for (const o of objs) await k(['get', ...ref(o)]);
    expect(await k(['get', 'mutatingwebhookconfiguration', 'obs-paygo-inject', '-o', 'jsonpath={.metadata.annotations.cert-manager\\.io/inject-ca-from}'])).toBe('obs-system/obs-paygo-operator');
    await h(['uninstall', 'obs', '-n', 'obs-system', '--wait']);
    for (const o of objs) expect((await kubectl(cp, ['get', ...ref(o)])).code).not.toBe(0);
  });
});
