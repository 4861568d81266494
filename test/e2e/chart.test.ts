import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { helm, kubectl, startControlPlane, type ControlPlane } from '../support/controlplane/controlplane.js';
import { ROOT } from '../support/sidecar-process.js';

/**
 * `helm install` of the chart into a real kube-apiserver: every object must be accepted.
 * (There are no nodes here, so the operator's pods stay Pending; kind-e2e covers running them.)
 */
let cp: ControlPlane;
const CHART = join(ROOT, 'charts/paygo');

async function k(args: string[]): Promise<string> {
  const r = await kubectl(cp, args);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

beforeAll(async () => {
  cp = await startControlPlane();
});
afterAll(async () => {
  await cp?.stop();
});

describe('helm install into a real API server', () => {
  it('installs; every rendered object exists; CRDs are Established and explainable', async () => {
    const install = await helm(cp, ['install', 'paygo', CHART, '-n', 'paygo-system', '--create-namespace', '--wait=false']);
    expect(install.code, install.stderr).toBe(0);
    const manifest = await helm(cp, ['get', 'manifest', 'paygo', '-n', 'paygo-system']);
    const objects = [...manifest.stdout.matchAll(/^kind: (\w+)\n(?:.*\n)*?metadata:\n(?:\s+.*\n)*?\s+name: ([\w.-]+)/gm)].map((m) => [m[1]!, m[2]!] as const);
    expect(objects.length).toBeGreaterThanOrEqual(12);
    for (const [kind, name] of objects) {
      const namespaced = !['ClusterRole', 'ClusterRoleBinding', 'MutatingWebhookConfiguration'].includes(kind);
      await k(['get', kind.toLowerCase(), name, ...(namespaced ? ['-n', 'paygo-system'] : [])]);
    }
    await k(['wait', '--for', 'condition=Established', 'crd/modelroutes.paygo.dev', 'crd/budgets.paygo.dev', '--timeout', '60s']);
    const explain = await k(['explain', 'modelroute.spec.targets']);
    expect(explain).toMatch(/provider/);
    expect(explain).toMatch(/Which provider API the target speaks/);
    const columns = await k(['get', 'crd', 'budgets.paygo.dev', '-o', 'jsonpath={.spec.versions[0].additionalPrinterColumns[*].name}']);
    expect(columns).toBe('Period Limit Spent Remaining State Age'); // kubectl prints them upper-cased
  });

  it('upgrades with changed values and uninstalls cleanly', async () => {
    const up = await helm(cp, ['upgrade', 'paygo', CHART, '-n', 'paygo-system', '--set', 'operator.replicas=3', '--set', 'webhook.failurePolicy=Ignore', '--wait=false']);
    expect(up.code, up.stderr).toBe(0);
    expect(await k(['get', 'deployment', 'paygo-operator', '-n', 'paygo-system', '-o', 'jsonpath={.spec.replicas}'])).toBe('3');
    expect(await k(['get', 'mutatingwebhookconfiguration', 'paygo-inject', '-o', 'jsonpath={.webhooks[0].failurePolicy}'])).toBe('Ignore');
    const un = await helm(cp, ['uninstall', 'paygo', '-n', 'paygo-system']);
    expect(un.code, un.stderr).toBe(0);
    expect((await kubectl(cp, ['get', 'mutatingwebhookconfiguration', 'paygo-inject'])).code).not.toBe(0);
    expect((await kubectl(cp, ['get', 'clusterrole', 'paygo-operator'])).code).not.toBe(0);
  });
});
