// Journey 1: after `helm install` (global setup: up.sh --install-paygo) the operator is Ready
// through its probes, its webhook serves, its certificate Secret exists, and kubectl prints the
// CRDs' columns.
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runProgram } from '../support/run-program.js';
import { apply, deleteNamespaces, k, kjson, namespace, node, record } from './lib.js';

const SYS = 'paygo-system';
let ns: string | undefined;
afterAll(() => deleteNamespaces(ns));

describe('journey 1: helm install', () => {
  it('operator Ready through its probes, webhook serving, certificate Secret, kubectl columns', async () => {
    const n = node();
    const status = await runProgram(join(n.binDir, 'helm'), ['--kubeconfig', n.kubeconfig, 'status', 'paygo', '-n', SYS, '-o', 'json'], { timeoutMs: 60_000 });
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).info.status).toBe('deployed');

    // The operator: every replica Ready, and Ready means its readiness probe passed.
    const dep = await kjson(['get', 'deployment', 'paygo-operator', '-n', SYS]);
    const c = dep.spec.template.spec.containers[0];
    expect(c.readinessProbe?.httpGet, 'readiness probe').toBeDefined();
    expect(c.livenessProbe?.httpGet, 'liveness probe').toBeDefined();
    await k(['rollout', 'status', '-n', SYS, 'deployment/paygo-operator', '--timeout=180s'], undefined, 200_000);
    const sel = Object.entries(dep.spec.selector.matchLabels as Record<string, string>).map(([a, b]) => `${a}=${b}`).join(',');
    const pods = (await kjson(['get', 'pods', '-n', SYS, '-l', sel])).items.filter((p: any) => !p.metadata.deletionTimestamp);
    expect(pods.length).toBe(dep.spec.replicas);
    for (const p of pods) {
      expect(p.status.conditions.find((x: any) => x.type === 'Ready')?.status, p.metadata.name).toBe('True');
      expect(p.status.containerStatuses[0].ready).toBe(true);
    }
    record('1-install', { operatorPods: pods.map((p: any) => p.metadata.name), replicas: dep.spec.replicas });

    // The certificate Secret, and the webhook's caBundle is its CA.
    const secret = await kjson(['get', 'secret', 'paygo-operator-tls', '-n', SYS]);
    for (const key of ['tls.crt', 'tls.key', 'ca.crt']) expect(secret.data?.[key], key).toBeTruthy();
    const hooks = (await kjson(['get', 'mutatingwebhookconfigurations'])).items.filter((h: any) => h.webhooks?.some((w: any) => w.clientConfig?.service?.namespace === SYS));
    expect(hooks.length).toBeGreaterThan(0);
    for (const w of hooks[0].webhooks) expect(w.clientConfig.caBundle).toBe(secret.data['ca.crt']);

    // The webhook serves: the API server calls it on a (server-side dry-run) pod create.
    ns = await namespace('install');
    const out = await k(
      ['create', '--dry-run=server', '-n', ns, '-o', 'json', '-f', '-'],
      JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'probe' }, spec: { containers: [{ name: 'app', image: n.appImage }] } }),
    );
    const injected = JSON.parse(out);
    expect(injected.spec.initContainers?.[0]?.name).toBe('paygo-sidecar');
    expect(injected.spec.initContainers[0].restartPolicy).toBe('Always');

    // kubectl prints the CRDs' columns.
    await apply(
      ns,
      `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: demo }
spec:
  model: demo
  targets: [{ name: sim, provider: simulate, model: sim-1, pricing: { input: "1.00", output: "2.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: demo }
spec: { scope: { routes: [demo] }, period: monthly, limit: "1.00", action: block }
`,
    );
    const table = await k(['get', 'modelroutes,budgets', '-n', ns]);
    console.log(table);
    expect(table).toMatch(/^NAME\s+MODEL\s+STRATEGY\s+TARGETS\s+SYNCED\s+READY\s+AGE\s*$/m);
    expect(table).toMatch(/^NAME\s+PERIOD\s+LIMIT\s+SPENT\s+REMAINING\s+STATE\s+AGE\s*$/m);
    expect(table).toMatch(/^modelroute\.paygo\.dev\/demo\s+demo\s+fallback\s/m);
    expect(table).toMatch(/^budget\.paygo\.dev\/demo\s+monthly\s+1\.00\s/m);
  });
});
