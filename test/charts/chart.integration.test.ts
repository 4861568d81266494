import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { ensureBinaries } from '../support/controlplane/controlplane.js';
import { ROOT } from '../support/sidecar-process.js';

/** The Helm chart, rendered by the real helm binary (built from its Go module and cached). */
const run = promisify(execFile);
const CHART = join(ROOT, 'charts/paygo');
let helmBin: string;

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string>; labels?: Record<string, string> };
  [key: string]: unknown;
}

async function template(...args: string[]): Promise<K8sObject[]> {
  const { stdout } = await run(helmBin, ['template', 'paygo', CHART, '-n', 'paygo-system', ...args], { maxBuffer: 64 * 1024 * 1024 });
  return parseAllDocuments(stdout)
    .map((d) => d.toJS() as K8sObject | null)
    .filter((o): o is K8sObject => o !== null);
}

const find = (objs: K8sObject[], kind: string, name?: string) => objs.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));

beforeAll(async () => {
  helmBin = join(await ensureBinaries(), 'helm');
}, 30 * 60_000);

describe('charts/paygo', () => {
  it('passes helm lint --strict', async () => {
    const { stdout } = await run(helmBin, ['lint', '--strict', CHART]);
    expect(stdout).toMatch(/1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it('ships the generated CRDs byte for byte', () => {
    const generated = readdirSync(join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml'));
    expect(readdirSync(join(CHART, 'crds')).sort()).toEqual(generated.sort());
    for (const f of generated) expect(readFileSync(join(CHART, 'crds', f), 'utf8'), `charts/paygo/crds/${f} is stale: copy crds/${f}`).toBe(readFileSync(join(ROOT, 'crds', f), 'utf8'));
  });

  it('renders the defaults: 2 operator replicas with leader election, webhook failing closed, dashboards', async () => {
    const objs = await template();
    const [deploy] = find(objs, 'Deployment') as Array<K8sObject & { spec: { replicas: number; template: { spec: { containers: Array<{ args: string[]; image: string }> } } } }>;
    expect(deploy!.spec.replicas).toBe(2);
    const args = deploy!.spec.template.spec.containers[0]!.args;
    expect(args).toEqual(
      expect.arrayContaining([
        '--namespace=paygo-system',
        '--leader-elect=true',
        '--operator-url=https://paygo-operator.paygo-system.svc:8443',
        '--sidecar-image=ghcr.io/paygo-dev/paygo-sidecar:0.1.0',
        '--webhook-config-name=paygo-inject',
        '--tls-secret=paygo-operator-tls',
      ]),
    );
    expect(deploy!.spec.template.spec.containers[0]!.image).toBe('ghcr.io/paygo-dev/paygo-operator:0.1.0');
    const [hook] = find(objs, 'MutatingWebhookConfiguration') as Array<K8sObject & { webhooks: Array<{ failurePolicy: string; namespaceSelector: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> }; clientConfig: { caBundle?: string } }> }>;
    expect(hook!.webhooks).toHaveLength(2);
    for (const w of hook!.webhooks) {
      expect(w.failurePolicy).toBe('Fail');
      expect(w.clientConfig.caBundle).toBeUndefined(); // the operator sets it
      const excluded = w.namespaceSelector.matchExpressions.find((e) => e.key === 'kubernetes.io/metadata.name')!;
      expect(excluded.operator).toBe('NotIn');
      expect(excluded.values).toEqual(expect.arrayContaining(['kube-system', 'paygo-system']));
    }
    const dashboards = find(objs, 'ConfigMap').filter((c) => c.metadata.labels?.grafana_dashboard === '1');
    expect(dashboards.map((d) => d.metadata.name).sort()).toEqual(['paygo-dashboard-budgets', 'paygo-dashboard-cost', 'paygo-dashboard-traffic']);
    expect(find(objs, 'PodDisruptionBudget')).toHaveLength(1);
    expect(find(objs, 'ServiceMonitor')).toHaveLength(0); // no Prometheus Operator CRDs
  });

  it('grants least privilege', async () => {
    const objs = await template();
    const [role] = find(objs, 'ClusterRole') as Array<K8sObject & { rules: Array<{ apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] }> }>;
    const rules = role!.rules.map((r) => `${r.apiGroups.join(',')}|${r.resources.join(',')}|${r.verbs.join(',')}|${(r.resourceNames ?? []).join(',')}`);
    expect(rules).toEqual([
      'paygo.dev|modelroutes,budgets|get,list,watch|',
      'paygo.dev|modelroutes/status,budgets/status|update|',
      '|secrets|get,list,watch|',
      '|pods|get,list|',
      '|events|create|',
      'authentication.k8s.io|tokenreviews|create|',
      'admissionregistration.k8s.io|mutatingwebhookconfigurations|get,update|paygo-inject',
    ]);
    for (const r of role!.rules) expect(r.verbs).not.toContain('*');
    const [nsRole] = find(objs, 'Role') as Array<K8sObject & { rules: Array<{ resources: string[]; verbs: string[] }> }>;
    expect(nsRole!.metadata.namespace).toBe('paygo-system');
    expect(nsRole!.rules.map((r) => `${r.resources.join(',')}|${r.verbs.join(',')}`)).toEqual(['leases|get,create,update', 'secrets|create,update']);
  });

  it('cert-manager mode: Certificate, CA injection annotation, certificate files', async () => {
    const objs = await template('--set', 'certificates.mode=certManager');
    expect(find(objs, 'Certificate')).toHaveLength(1);
    expect(find(objs, 'Issuer')).toHaveLength(1);
    const [hook] = find(objs, 'MutatingWebhookConfiguration');
    expect(hook!.metadata.annotations?.['cert-manager.io/inject-ca-from']).toBe('paygo-system/paygo-operator');
    const deploy = find(objs, 'Deployment')[0] as K8sObject & { spec: { template: { spec: { containers: Array<{ args: string[] }> } } } };
    expect(deploy.spec.template.spec.containers[0]!.args).toEqual(expect.arrayContaining(['--tls-cert-file=/tls/tls.crt']));
    expect(deploy.spec.template.spec.containers[0]!.args.some((a) => a.startsWith('--webhook-config-name'))).toBe(false);
  });

  it('failurePolicy Ignore, monitors with the Prometheus Operator present, dashboards off', async () => {
    const objs = await template('--set', 'webhook.failurePolicy=Ignore', '--set', 'dashboards.enabled=false', '--api-versions', 'monitoring.coreos.com/v1');
    const [hook] = find(objs, 'MutatingWebhookConfiguration') as Array<K8sObject & { webhooks: Array<{ failurePolicy: string }> }>;
    expect(hook!.webhooks.every((w) => w.failurePolicy === 'Ignore')).toBe(true);
    expect(find(objs, 'ServiceMonitor')).toHaveLength(1);
    expect(find(objs, 'PodMonitor')).toHaveLength(1);
    expect(find(objs, 'ConfigMap')).toHaveLength(0);
  });

  it.each([
    [['--set', 'operator.replicas=-1'], /replicas/],
    [['--set', 'webhook.failurePolicy=Sometimes'], /failurePolicy/],
    [['--set', 'certificates.mode=magic'], /mode/],
    [['--set', 'operator.nosuchvalue=1'], /nosuchvalue|additional/i],
  ])('the schema rejects %j with a clear error', async (args, message) => {
    const err = await template(...args).catch((e: { stderr?: string }) => e);
    expect((err as { stderr?: string }).stderr).toMatch(message);
  });
});
