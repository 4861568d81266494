import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { parseOptions } from '../../operator/options.js';
import { INJECTED_LABEL, MUTATE_PATH, sidecarContainer } from '../../operator/webhook.js';
import {
  CHART,
  findAll,
  findOne,
  flag,
  parseManifests,
  selectorMatches,
  type BindingObject,
  type DeploymentObject,
  type K8sObject,
  type RoleObject,
  type ServiceObject,
  type WebhookConfigObject,
} from '../support/chart.js';
import { ensureBinaries } from '../support/controlplane/controlplane.js';
import { ROOT } from '../support/sidecar-process.js';

/**
 * charts/paygo rendered by the real helm binary (built from its Go module by the control-plane
 * harness and cached): lint, the main value combinations, least-privilege RBAC, the webhook's
 * selectors, and that every flag the chart passes is one the operator accepts.
 * test/e2e/chart.test.ts installs the same chart into a real API server.
 */
const run = promisify(execFile);
let helmBin: string;

// A fresh machine builds helm (and the control plane) from Go modules first: ~15 min on 2 cores.
beforeAll(async () => {
  helmBin = join(await ensureBinaries(), 'helm');
}, 45 * 60_000);

async function template(args: string[] = [], release = 'paygo', namespace = 'paygo-system'): Promise<K8sObject[]> {
  const { stdout } = await run(helmBin, ['template', release, CHART, '-n', namespace, ...args], { maxBuffer: 64 * 1024 * 1024 });
  return parseManifests(stdout);
}

/** helm's stderr for values it must refuse. */
async function refusal(args: string[]): Promise<string> {
  try {
    await template(args);
  } catch (err) {
    return (err as { stderr?: string }).stderr ?? String(err);
  }
  throw new Error(`helm template ${args.join(' ')} succeeded; it should have failed`);
}

const rule = (r: RoleObject['rules'][number]) => `${r.apiGroups.join(',')}|${r.resources.join(',')}|${r.verbs.join(',')}|${(r.resourceNames ?? []).join(',')}`;
const operatorContainer = (objs: K8sObject[]) => findOne<DeploymentObject>(objs, 'Deployment').spec.template.spec.containers[0]!;

const packageVersion = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

describe('charts/paygo', { timeout: 60_000 }, () => {
  it('passes helm lint --strict (default values and cert-manager mode)', async () => {
    for (const extra of [[], ['--set', 'certificates.mode=certManager']]) {
      const { stdout } = await run(helmBin, ['lint', '--strict', CHART, ...extra]);
      expect(stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
      expect(stdout).not.toMatch(/\[(WARNING|ERROR)\]/);
    }
  });

  it('Chart.yaml: apiVersion v2, appVersion = package.json version, Kubernetes >= 1.29 (native sidecars)', async () => {
    const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { apiVersion: string; appVersion: string; kubeVersion: string };
    expect(chart.apiVersion).toBe('v2');
    expect(chart.appVersion).toBe(packageVersion);
    expect(chart.kubeVersion).toMatch(/^>=\s*1\.29/);
    const { stderr } = await run(helmBin, ['template', 'paygo', CHART, '--kube-version', '1.28.9']).catch((e: { stderr: string }) => e);
    expect(stderr).toMatch(/kubeVersion|incompatible/i);
  });

  it('ships the generated CRDs byte for byte (charts/paygo/crds = crds/*.yaml)', () => {
    const generated = readdirSync(join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml')).sort();
    expect(generated.length).toBeGreaterThan(0);
    expect(readdirSync(join(CHART, 'crds')).sort()).toEqual(generated);
    for (const f of generated) {
      expect(readFileSync(join(CHART, 'crds', f), 'utf8'), `charts/paygo/crds/${f} is stale: run make crds`).toBe(readFileSync(join(ROOT, 'crds', f), 'utf8'));
    }
  });

  it('helm package: the CRDs, templates and dashboard JSON, not the dashboards’ generator', async () => {
    const out = mkdtempSync(join(tmpdir(), 'paygo-chart-'));
    const chart = parseYaml(readFileSync(join(CHART, 'Chart.yaml'), 'utf8')) as { version: string };
    let stdout: string;
    try {
      await run(helmBin, ['package', CHART, '-d', out]);
      ({ stdout } = await run('tar', ['tzf', join(out, `paygo-${chart.version}.tgz`)]));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    const files = stdout.trim().split('\n').sort();
    expect(files).toEqual(expect.arrayContaining(['paygo/Chart.yaml', 'paygo/values.schema.json', 'paygo/crds/paygo.dev_modelroutes.yaml', 'paygo/crds/paygo.dev_budgets.yaml', 'paygo/dashboards/paygo-cost.json', 'paygo/templates/NOTES.txt']));
    expect(files.filter((f) => /\.(ts|js|map)$/.test(f))).toEqual([]);
  });

  it('renders the defaults: the objects, 2 replicas, images at appVersion, non-root read-only operator', async () => {
    const objs = await template();
    const kinds = objs.map((o) => o.kind).sort();
    expect([...new Set(kinds)]).toEqual(['ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'MutatingWebhookConfiguration', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'ServiceAccount']);
    for (const o of objs) {
      if (!['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'].includes(o.kind)) expect(o.metadata.namespace, `${o.kind}/${o.metadata.name}`).toBe('paygo-system');
      expect(o.metadata.labels?.['app.kubernetes.io/instance']).toBe('paygo');
    }
    const deploy = findOne<DeploymentObject>(objs, 'Deployment');
    expect(deploy.spec.replicas).toBe(2);
    const pod = deploy.spec.template.spec;
    const c = pod.containers[0]!;
    expect(c.image).toBe(`ghcr.io/paygo-dev/paygo-operator:${packageVersion}`);
    expect(flag(c.args, '--sidecar-image')).toBe(`ghcr.io/paygo-dev/paygo-sidecar:${packageVersion}`);
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532 });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(c.ports).toEqual([
      { name: 'https', containerPort: 8443 },
      { name: 'health', containerPort: 8081 },
    ]);
    expect(c.readinessProbe?.httpGet).toEqual({ path: '/readyz', port: 'health' });
    expect(c.livenessProbe?.httpGet).toEqual({ path: '/healthz', port: 'health' });
    expect(c.env).toEqual([
      { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
    ]);
    expect(pod.topologySpreadConstraints?.[0]?.topologyKey).toBe('kubernetes.io/hostname');
    expect(selectorMatches(pod.topologySpreadConstraints?.[0]?.labelSelector, deploy.spec.template.metadata.labels)).toBe(true);
    const pdb = findOne<K8sObject & { spec: { minAvailable: number; selector: { matchLabels: Record<string, string> } } }>(objs, 'PodDisruptionBudget');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(selectorMatches(pdb.spec.selector, deploy.spec.template.metadata.labels)).toBe(true);
    expect(findAll(objs, 'ServiceMonitor')).toHaveLength(0); // no Prometheus Operator CRDs
    expect(findAll(objs, 'PodMonitor')).toHaveLength(0);
    expect(findAll(objs, 'Certificate')).toHaveLength(0);
  });

  it('passes the operator exactly the flags it accepts (parsed by operator/options.ts)', async () => {
    const args = operatorContainer(await template()).args;
    expect(args).toEqual([
      '--namespace=paygo-system',
      '--listen=0.0.0.0:8443',
      '--health=0.0.0.0:8081',
      '--leader-elect=true',
      '--lease-name=paygo-operator',
      '--service-name=paygo-operator',
      '--operator-url=https://paygo-operator.paygo-system.svc:8443',
      `--sidecar-image=ghcr.io/paygo-dev/paygo-sidecar:${packageVersion}`,
      '--sidecar-image-pull-policy=IfNotPresent',
      '--sidecar-cpu-request=50m',
      '--sidecar-memory-request=96Mi',
      '--sidecar-memory-limit=192Mi',
      '--log-level=info',
      '--tls-secret=paygo-operator-tls',
      '--webhook-config-name=paygo-inject',
    ]);
    const opts = parseOptions(args, { POD_NAME: 'paygo-operator-abc', POD_NAMESPACE: 'paygo-system' });
    expect(opts).toMatchObject({
      namespace: 'paygo-system',
      listenPort: 8443,
      healthPort: 8081,
      identity: 'paygo-operator-abc',
      leaderElect: true,
      serviceName: 'paygo-operator',
      tlsSecret: 'paygo-operator-tls',
      operatorURL: 'https://paygo-operator.paygo-system.svc:8443',
      webhookConfigName: 'paygo-inject',
      sidecarImagePullPolicy: 'IfNotPresent',
      sidecarCpuRequest: '50m',
      sidecarMemoryRequest: '96Mi',
      sidecarMemoryLimit: '192Mi',
    });
    const custom = operatorContainer(
      await template([
        ...['--set', 'sidecar.image.repository=registry.example/paygo-sidecar', '--set', 'sidecar.image.tag=dev', '--set', 'sidecar.image.pullPolicy=Never', '--set', 'sidecar.logLevel=debug', '--set', 'operator.logLevel=warn'],
        ...['--set', 'sidecar.resources.requests.cpu=100m', '--set', 'sidecar.resources.requests.memory=128Mi', '--set', 'sidecar.resources.limits.memory=256Mi'],
      ]),
    ).args;
    expect(parseOptions(custom, {})).toMatchObject({
      sidecarImage: 'registry.example/paygo-sidecar:dev',
      sidecarImagePullPolicy: 'Never',
      sidecarLogLevel: 'debug',
      logLevel: 'warn',
      sidecarCpuRequest: '100m',
      sidecarMemoryRequest: '128Mi',
      sidecarMemoryLimit: '256Mi',
    });
    expect(() => parseOptions(['--sidecar-memory-limit=lots'], {})).toThrow(/sidecarMemoryLimit: must be a Kubernetes quantity/);
  });

  it('sidecar.tracing: the OTLP endpoint and OTEL_* variables reach the operator, which injects them (README "Tracing")', async () => {
    expect(parseOptions(operatorContainer(await template()).args, {})).toMatchObject({ sidecarOtelEnv: {} });
    expect(operatorContainer(await template()).args.filter((a) => a.includes('otlp') || a.includes('otel'))).toEqual([]);
    const args = operatorContainer(
      await template([
        ...['--set', 'sidecar.tracing.otlpEndpoint=http://otel-collector.observability:4318'],
        ...['--set', 'sidecar.tracing.env.OTEL_TRACES_SAMPLER=parentbased_traceidratio', '--set', 'sidecar.tracing.env.OTEL_TRACES_SAMPLER_ARG=0.1'],
        ...['--set-string', 'sidecar.tracing.env.OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod\\,team=ml'],
      ]),
    ).args;
    expect(args.filter((a) => a.includes('otlp') || a.includes('otel'))).toEqual([
      '--sidecar-otlp-endpoint=http://otel-collector.observability:4318',
      '--sidecar-otel-env=OTEL_RESOURCE_ATTRIBUTES=deployment.environment=prod,team=ml',
      '--sidecar-otel-env=OTEL_TRACES_SAMPLER=parentbased_traceidratio',
      '--sidecar-otel-env=OTEL_TRACES_SAMPLER_ARG=0.1',
    ]);
    expect(parseOptions(args, {})).toMatchObject({
      sidecarOtlpEndpoint: 'http://otel-collector.observability:4318',
      sidecarOtelEnv: { OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,team=ml', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.1' },
    });
    expect(() => parseOptions(['--sidecar-otel-env=PATH=/tmp'], {})).toThrow(/PATH is not an OTEL_\* variable name/);
    expect(() => parseOptions(['--sidecar-otel-env=OTEL_X'], {})).toThrow(/NAME=VALUE/);
  });

  it.each([
    ['paygo', 'paygo-system', 'operator'],
    ['shop', 'platform', 'operator'],
    ['shop', 'platform', 'certManager'],
  ])('names agree across objects (release %s in %s, certificates %s)', async (release, ns, mode) => {
    const objs = await template(['--set', `certificates.mode=${mode}`], release, ns);
    const deploy = findOne<DeploymentObject>(objs, 'Deployment');
    const args = deploy.spec.template.spec.containers[0]!.args;
    const opts = parseOptions(args, {});
    if (opts === 'help') throw new Error('unexpected --help');
    const svc = findOne<ServiceObject>(objs, 'Service');
    const sa = findOne(objs, 'ServiceAccount');
    const hook = findOne<WebhookConfigObject>(objs, 'MutatingWebhookConfiguration');
    const clusterRole = findOne<RoleObject>(objs, 'ClusterRole');
    const role = findOne<RoleObject>(objs, 'Role');
    expect(opts.namespace).toBe(ns);
    expect(opts.serviceName).toBe(svc.metadata.name);
    expect(opts.operatorURL).toBe(`https://${svc.metadata.name}.${ns}.svc:8443`);
    expect(deploy.spec.template.spec.serviceAccountName).toBe(sa.metadata.name);
    for (const b of [findOne<BindingObject>(objs, 'ClusterRoleBinding'), findOne<BindingObject>(objs, 'RoleBinding')]) {
      expect(b.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: ns }]);
      expect(b.roleRef.name).toBe(b.kind === 'RoleBinding' ? role.metadata.name : clusterRole.metadata.name);
    }
    // The Service reaches the operator pods on the port the webhook and the sidecars use.
    expect(svc.spec.selector).toEqual(deploy.spec.template.metadata.labels);
    expect(svc.spec.ports).toEqual([
      { name: 'https', port: 8443, targetPort: 'https' },
      { name: 'metrics', port: 8081, targetPort: 'health' },
    ]);
    expect(opts.listenPort).toBe(8443);
    for (const w of hook.webhooks) expect(w.clientConfig.service).toEqual({ name: svc.metadata.name, namespace: ns, path: MUTATE_PATH, port: 8443 });
    // The Lease and the TLS Secret the operator writes are the ones its Role names.
    expect(role.rules.filter((r) => r.resources.includes('leases') && r.resourceNames).flatMap((r) => r.resourceNames)).toEqual([opts.leaseName]);
    if (mode === 'operator') {
      expect(opts.webhookConfigName).toBe(hook.metadata.name);
      expect(clusterRole.rules.find((r) => r.resources.includes('mutatingwebhookconfigurations'))?.resourceNames).toEqual([hook.metadata.name]);
      expect(role.rules.find((r) => r.resources.includes('secrets') && r.resourceNames)?.resourceNames).toEqual([opts.tlsSecret]);
      expect(hook.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBeUndefined();
    } else {
      const cert = findOne<K8sObject & { spec: { secretName: string; dnsNames: string[] } }>(objs, 'Certificate', svc.metadata.name);
      expect(cert.spec.dnsNames).toContain(`${svc.metadata.name}.${ns}.svc`);
      expect(deploy.spec.template.spec.volumes).toEqual([{ name: 'tls', secret: { secretName: cert.spec.secretName } }]);
      expect(hook.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe(`${ns}/${cert.metadata.name}`);
      expect(opts.webhookConfigName).toBeUndefined();
      expect([opts.tlsCertFile, opts.tlsKeyFile, opts.tlsCaFile]).toEqual(['/tls/tls.crt', '/tls/tls.key', '/tls/ca.crt']);
    }
  });

  it('grants least privilege: exactly the API calls the operator makes, no wildcards', async () => {
    const objs = await template();
    expect(findOne<RoleObject>(objs, 'ClusterRole').rules.map(rule)).toEqual([
      'paygo.dev|modelroutes,budgets,providerquotas,ratelimits|get,list,watch|',
      'paygo.dev|modelroutes/status,budgets/status,providerquotas/status,ratelimits/status|update|',
      '|secrets|get,list,watch|',
      '|pods|get,list|',
      '|events|create|',
      'authentication.k8s.io|tokenreviews|create|',
      'admissionregistration.k8s.io|mutatingwebhookconfigurations|get,update|paygo-inject',
    ]);
    const role = findOne<RoleObject>(objs, 'Role');
    expect(role.metadata.namespace).toBe('paygo-system');
    expect(role.rules.map(rule)).toEqual([
      'coordination.k8s.io|leases|create|',
      'coordination.k8s.io|leases|get,update|paygo-operator',
      '|secrets|create|',
      '|secrets|update|paygo-operator-tls',
    ]);
    for (const r of [...findOne<RoleObject>(objs, 'ClusterRole').rules, ...role.rules]) {
      expect([...r.verbs, ...r.resources, ...r.apiGroups]).not.toContain('*');
      expect(r.verbs).not.toContain('delete');
    }
  });

  it('cert-manager mode: a CA chain, the serving Certificate, CA injection, mounted files, less RBAC', async () => {
    const objs = await template(['--set', 'certificates.mode=certManager']);
    const certs = findAll<K8sObject & { spec: { isCA?: boolean; secretName: string; issuerRef: { name: string; kind: string } } }>(objs, 'Certificate');
    expect(certs.map((c) => [c.metadata.name, c.spec.isCA ?? false, c.spec.issuerRef.name])).toEqual([
      ['paygo-operator-ca', true, 'paygo-operator-selfsigned'],
      ['paygo-operator', false, 'paygo-operator-ca'],
    ]);
    const issuers = findAll<K8sObject & { spec: { selfSigned?: object; ca?: { secretName: string } } }>(objs, 'Issuer');
    expect(issuers.map((i) => i.metadata.name)).toEqual(['paygo-operator-selfsigned', 'paygo-operator-ca']);
    expect(issuers[1]!.spec.ca).toEqual({ secretName: 'paygo-operator-ca' });
    const c = operatorContainer(objs);
    expect(c.volumeMounts).toEqual([{ name: 'tls', mountPath: '/tls', readOnly: true }]);
    expect(flag(c.args, '--tls-secret')).toBeUndefined();
    // cert-manager owns the caBundle and the Secret: the operator gets no right to either.
    expect(findOne<RoleObject>(objs, 'ClusterRole').rules.some((r) => r.resources.includes('mutatingwebhookconfigurations'))).toBe(false);
    expect(findOne<RoleObject>(objs, 'Role').rules.some((r) => r.resources.includes('secrets'))).toBe(false);

    const own = await template(['--set', 'certificates.mode=certManager', '--set', 'certificates.certManager.issuerRef.name=corp-ca', '--set', 'certificates.certManager.issuerRef.kind=ClusterIssuer']);
    expect(findAll(own, 'Issuer')).toHaveLength(0);
    expect(findOne<K8sObject & { spec: { issuerRef: object } }>(own, 'Certificate').spec.issuerRef).toEqual({ name: 'corp-ca', kind: 'ClusterIssuer' });
  });

  describe('webhook', () => {
    it('one pod CREATE rule, no side effects, v1 reviews, 5 s, never reinvoked, fails closed, caBundle left to the operator', async () => {
      const hook = findOne<WebhookConfigObject>(await template(), 'MutatingWebhookConfiguration');
      expect(hook.webhooks.map((w) => w.name)).toEqual(['namespace.inject.paygo.dev', 'pod.inject.paygo.dev']);
      for (const w of hook.webhooks) {
        expect(w.rules).toEqual([{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
        expect(w).toMatchObject({ sideEffects: 'None', admissionReviewVersions: ['v1'], timeoutSeconds: 5, reinvocationPolicy: 'Never', failurePolicy: 'Fail' });
        expect(w.clientConfig.caBundle).toBeUndefined();
        const excluded = w.namespaceSelector.matchExpressions?.find((e) => e.key === 'kubernetes.io/metadata.name');
        expect(excluded).toEqual({ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'kube-public', 'kube-node-lease', 'paygo-system'] });
      }
    });

    // [namespace, namespace labels, pod labels, the webhooks the API server would call]
    const cases: Array<[string, Record<string, string>, Record<string, string>, string[]]> = [
      ['shop', { 'paygo.dev/inject': 'enabled' }, {}, ['namespace.inject.paygo.dev']],
      ['shop', { 'paygo.dev/inject': 'enabled' }, { 'paygo.dev/inject': 'true' }, ['namespace.inject.paygo.dev']],
      ['shop', { 'paygo.dev/inject': 'enabled' }, { 'paygo.dev/inject': 'false' }, []],
      ['plain', {}, { 'paygo.dev/inject': 'true' }, ['pod.inject.paygo.dev']],
      ['plain', {}, {}, []],
      ['plain', {}, { 'paygo.dev/inject': 'false' }, []],
      ['off', { 'paygo.dev/inject': 'disabled' }, { 'paygo.dev/inject': 'true' }, ['pod.inject.paygo.dev']],
      ['kube-system', { 'paygo.dev/inject': 'enabled' }, { 'paygo.dev/inject': 'true' }, []],
      ['kube-public', {}, { 'paygo.dev/inject': 'true' }, []],
      ['kube-node-lease', {}, { 'paygo.dev/inject': 'true' }, []],
      ['paygo-system', { 'paygo.dev/inject': 'enabled' }, { 'paygo.dev/inject': 'true' }, []],
    ];
    it.each(cases)('namespace %s %j, pod %j → %j (a labelled namespace OR a labelled pod; never twice; never excluded namespaces)', async (ns, nsLabels, podLabels, expected) => {
      const hook = findOne<WebhookConfigObject>(await template(), 'MutatingWebhookConfiguration');
      const namespaceLabels = { ...nsLabels, 'kubernetes.io/metadata.name': ns };
      const called = hook.webhooks.filter((w) => selectorMatches(w.namespaceSelector, namespaceLabels) && selectorMatches(w.objectSelector, podLabels)).map((w) => w.name);
      expect(called).toEqual(expected);
    });

    it('excludes whatever namespace the release is in, and custom labels', async () => {
      const hook = findOne<WebhookConfigObject>(
        await template(['--set', 'webhook.namespaceLabel.key=example.com/llm', '--set', 'webhook.podLabel.key=example.com/llm-pod', '--set', 'webhook.excludedNamespaces={kube-system}'], 'paygo', 'llm-gateway'),
        'MutatingWebhookConfiguration',
      );
      const calls = (ns: string, nsLabels: Record<string, string>, podLabels: Record<string, string>) =>
        hook.webhooks.filter((w) => selectorMatches(w.namespaceSelector, { ...nsLabels, 'kubernetes.io/metadata.name': ns }) && selectorMatches(w.objectSelector, podLabels)).map((w) => w.name);
      expect(calls('llm-gateway', { 'example.com/llm': 'enabled' }, { 'example.com/llm-pod': 'true' })).toEqual([]);
      expect(calls('kube-public', { 'example.com/llm': 'enabled' }, {})).toEqual(['namespace.inject.paygo.dev']);
      expect(calls('shop', { 'example.com/llm': 'enabled' }, {})).toEqual(['namespace.inject.paygo.dev']);
      expect(calls('shop', {}, { 'example.com/llm-pod': 'true' })).toEqual(['pod.inject.paygo.dev']);
      expect(calls('shop', { 'paygo.dev/inject': 'enabled' }, { 'paygo.dev/inject': 'true' })).toEqual([]);
    });

    it('failurePolicy Ignore and timeoutSeconds apply to both entries', async () => {
      const hook = findOne<WebhookConfigObject>(await template(['--set', 'webhook.failurePolicy=Ignore', '--set', 'webhook.timeoutSeconds=10']), 'MutatingWebhookConfiguration');
      expect(hook.webhooks.map((w) => [w.failurePolicy, w.timeoutSeconds])).toEqual([
        ['Ignore', 10],
        ['Ignore', 10],
      ]);
    });
  });

  describe('monitoring and dashboards', () => {
    it('ServiceMonitor and PodMonitor only when monitoring.coreos.com/v1 exists (auto), keeping paygo’s namespace label', async () => {
      const objs = await template(['--api-versions', 'monitoring.coreos.com/v1']);
      const sm = findOne<K8sObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: Array<Record<string, unknown>> } }>(objs, 'ServiceMonitor');
      expect(selectorMatches(sm.spec.selector, findOne(objs, 'Service').metadata.labels ?? {})).toBe(true);
      expect(sm.spec.endpoints).toEqual([{ port: 'metrics', path: '/metrics', scheme: 'http', interval: '30s', honorLabels: true }]);
      const pm = findOne<K8sObject & { spec: { namespaceSelector: object; selector: { matchLabels: Record<string, string> }; podMetricsEndpoints: Array<Record<string, unknown>> } }>(objs, 'PodMonitor');
      // What the webhook puts on every injected pod and its sidecar container.
      const sidecarPort = sidecarContainer({ image: 'x', operatorURL: 'https://x', caPem: 'BEGIN CERTIFICATE', port: 4000, metricsPort: 9464 }).ports?.[0];
      expect(pm.spec.selector.matchLabels).toEqual({ [INJECTED_LABEL]: 'true' });
      expect(pm.spec.namespaceSelector).toEqual({ any: true });
      expect(pm.spec.podMetricsEndpoints).toEqual([{ port: sidecarPort?.name, path: '/metrics', scheme: 'http', interval: '30s', honorLabels: true }]);
      expect(sidecarPort?.containerPort).toBe(9464);
    });

    it('true renders without the CRDs, false never; extra labels for a Prometheus selector', async () => {
      const forced = await template(['--set', 'metrics.serviceMonitor.enabled=true', '--set', 'metrics.serviceMonitor.labels.release=kube-prometheus-stack']);
      expect(findOne(forced, 'ServiceMonitor').metadata.labels?.release).toBe('kube-prometheus-stack');
      expect(findAll(forced, 'PodMonitor')).toHaveLength(0);
      const off = await template(['--api-versions', 'monitoring.coreos.com/v1', '--set', 'metrics.serviceMonitor.enabled=false', '--set', 'metrics.podMonitor.enabled=false']);
      expect(findAll(off, 'ServiceMonitor')).toHaveLength(0);
      expect(findAll(off, 'PodMonitor')).toHaveLength(0);
    });

    it('one ConfigMap per dashboards/*.json, labelled grafana_dashboard, holding the file; off when disabled', async () => {
      const files = readdirSync(join(CHART, 'dashboards')).filter((f) => f.endsWith('.json')).sort();
      expect(files.length).toBeGreaterThan(0);
      const maps = findAll<K8sObject & { data: Record<string, string> }>(await template(), 'ConfigMap');
      expect(maps.map((m) => Object.keys(m.data)[0]).sort()).toEqual(files);
      for (const m of maps) {
        expect(m.metadata.labels?.grafana_dashboard).toBe('1');
        const [file, body] = Object.entries(m.data)[0]!;
        expect(JSON.parse(body)).toEqual(JSON.parse(readFileSync(join(CHART, 'dashboards', file), 'utf8')));
      }
      const elsewhere = findAll(await template(['--set', 'dashboards.namespace=monitoring']), 'ConfigMap');
      expect(elsewhere.map((m) => m.metadata.namespace)).toEqual(files.map(() => 'monitoring'));
      expect(findAll(await template(['--set', 'dashboards.enabled=false']), 'ConfigMap')).toHaveLength(0);
    });
  });

  it('other value combinations: 1 replica has no PDB; operator scheduling values pass through', async () => {
    const objs = await template(['--set', 'operator.replicas=1', '--set', 'operator.priorityClassName=system-cluster-critical', '--set', 'operator.imagePullSecrets[0].name=regcred', '--set', 'operator.nodeSelector.pool=system']);
    expect(findAll(objs, 'PodDisruptionBudget')).toHaveLength(0);
    const spec = findOne<DeploymentObject>(objs, 'Deployment').spec.template.spec as DeploymentObject['spec']['template']['spec'] & Record<string, unknown>;
    expect(spec.priorityClassName).toBe('system-cluster-critical');
    expect(spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    expect(spec.nodeSelector).toEqual({ pool: 'system' });
  });

  it.each([
    [['--set', 'operator.replicas=-1'], /\/operator\/replicas.*minimum/],
    [['--set', 'operator.replicas=two'], /\/operator\/replicas/],
    [['--set', 'webhook.failurePolicy=Sometimes'], /\/webhook\/failurePolicy.*'Fail', 'Ignore'/],
    [['--set', 'webhook.timeoutSeconds=60'], /\/webhook\/timeoutSeconds/],
    [['--set', 'certificates.mode=magic'], /\/certificates\/mode/],
    [['--set', 'certificates.certManager.issuerRef.kind=ClusterIssuer'], /issuerRef.*name/],
    [['--set', 'operator.nosuchvalue=1'], /nosuchvalue/],
    [['--set', 'operator.logLevel=verbose'], /\/operator\/logLevel/],
    [['--set', 'sidecar.tracing.otlpEndpoint=otel:4318'], /\/sidecar\/tracing\/otlpEndpoint/],
    [['--set', 'sidecar.tracing.env.PATH=/tmp'], /'PATH' does not match pattern/],
    [['--set', 'operator.resources.requests.cpu=lots'], /\/operator\/resources\/requests\/cpu/],
    [['--set', 'metrics.podMonitor.enabled=maybe'], /\/metrics\/podMonitor\/enabled/],
    [['--set', 'metrics.serviceMonitor.interval=soon'], /\/metrics\/serviceMonitor\/interval/],
    [['--set', 'webhook.podLabel.value=not ok'], /\/webhook\/podLabel\/value/],
    [['--set', 'webhook.excludedNamespaces={Kube_System}'], /\/webhook\/excludedNamespaces\/0/],
  ])('the schema rejects %j with an error naming the value', async (args, message) => {
    const stderr = await refusal(args);
    expect(stderr).toMatch(/values don't meet the specifications of the schema/);
    expect(stderr).toMatch(message);
  });
});
