import { createSign } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClusterEnv, until, type ClusterEnv } from '../support/cluster-env.js';
import { kubectl } from '../support/controlplane/controlplane.js';
import { startOperator } from '../support/operator-process.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream } from '../support/fake-upstream.js';
import { postChat, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * The control plane for real: a kube-apiserver + etcd, the CRDs, the operator process and
 * sidecar processes that authenticate with real pod-bound ServiceAccount tokens.
 */
let env: ClusterEnv;
const sidecars: SidecarProcess[] = [];
let intruder: SidecarProcess;

async function models(s: SidecarProcess): Promise<string[]> {
  try {
    const res = await fetch(`${s.url}/v1/models`);
    const body = (await res.json()) as { data: Array<{ id: string }> };
    return body.data.map((m) => m.id).sort();
  } catch {
    return [];
  }
}

const route = (name: string, model: string, extra = '') => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name}, namespace: team-a }
spec:
  model: ${model}
  targets:
    - { name: sim, provider: simulate, model: sim-1, pricing: { input: "1.00", output: "2.00" } }
${extra}`;

interface RouteObject {
  metadata: { generation: number; managedFields?: Array<{ manager: string; subresource?: string }> };
  status?: {
    observedGeneration?: number;
    sidecars?: { desired: number; synced: number; rejected: number };
    conditions?: Array<{ type: string; status: string; reason: string; message: string }>;
    targets?: Array<{ name: string; requests: number; errors: number; cost: string; costPerSuccess?: string }>;
  };
}

async function getRoute(name: string): Promise<RouteObject> {
  return JSON.parse(await k(['get', 'modelroute', name, '-n', 'team-a', '-o', 'json'])) as RouteObject;
}
const cond = (r: RouteObject, type: string) => r.status?.conditions?.find((c) => c.type === type);

const k = (args: string[], stdin?: string) => env.k(args, stdin);
const apply = (yaml: string) => env.apply(yaml);

beforeAll(async () => {
  env = await startClusterEnv(['team-a', 'team-b']);
  for (let i = 1; i <= 3; i++) sidecars.push(await env.sidecarFor(await env.podWithToken('team-a', `app-${i}`, { app: 'web', replica: String(i) }), { args: ['--target-report-interval-ms', '300'] }));
  intruder = await env.sidecarFor(await env.podWithToken('team-b', 'other', { app: 'web' }));
});

afterAll(async () => {
  await Promise.allSettled([...sidecars, intruder].filter(Boolean).map((s) => s.stop()));
  await env?.stop();
});

describe('operator on a real API server', () => {
  it('rejects invalid ModelRoutes at the API server with a message naming the field', async () => {
    const bad = await kubectl(env.cp, ['apply', '-f', '-'], route('bad', 'x').replace('strategy: fallback', '').replace('  targets:', '  strategy: weighted\n  targets:'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/weight/);
    const badProvider = await kubectl(env.cp, ['apply', '-f', '-'], route('bad2', 'x').replace('provider: simulate', 'provider: nope'));
    expect(badProvider.code).not.toBe(0);
    expect(badProvider.stderr).toMatch(/spec\.targets\[0\]\.provider/);
  });

  it('a valid route reaches every sidecar, and its status says so', async () => {
    await until('sidecars connected', async () => (await fetch(`${env.operator.healthUrl}/metrics`)).text(), (t) => /paygo_operator_connected_sidecars 4/.test(t), 30_000);
    await apply(route('support', 'support-bot'));
    // How fast is make bench's business (test/bench/propagation.ts); here only that it arrives.
    const { ms } = await until('route on all sidecars', () => Promise.all(sidecars.map(models)), (all) => all.every((m) => m.includes('support-bot')), 30_000);
    console.log(`[operator] route on all 3 sidecars ${ms} ms after apply`);
    const res = await fetch(`${sidecars[0]!.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'support-bot', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    const { value } = await until('status synced', () => getRoute('support'), (r) => r.status?.sidecars?.synced === 3);
    expect(value.status).toMatchObject({ observedGeneration: value.metadata.generation, sidecars: { desired: 3, synced: 3, rejected: 0 } });
    expect(cond(value, 'Accepted')?.status).toBe('True');
    expect(cond(value, 'ResolvedRefs')?.status).toBe('True');
    expect(cond(value, 'Ready')).toMatchObject({ status: 'True', reason: 'Synced' });
    const table = await k(['get', 'modelroutes', '-n', 'team-a']);
    expect(table).toMatch(/support\s+support-bot\s+fallback\s+1\s+3\s+True/);
  });

  it('status.targets sums what each target served across the sidecars', async () => {
    await apply(route('counted', 'counted-bot'));
    await until('route on all sidecars', () => Promise.all(sidecars.map(models)), (all) => all.every((m) => m.includes('counted-bot')), 5_000);
    let cost = 0n;
    for (const s of [sidecars[0]!, sidecars[0]!, sidecars[1]!]) {
      const res = await postChat(s, { model: 'counted-bot', messages: [{ role: 'user', content: 'count me' }] });
      expect(res.status).toBe(200);
      cost += BigInt(res.headers.get('x-paygo-cost-usd')!.replace('.', ''));
    }
    const { value } = await until('targets counted', () => getRoute('counted'), (r) => r.status?.targets?.[0]?.requests === 3, 15_000);
    const usd = (nano: bigint) => `${nano / 1_000_000_000n}.${(nano % 1_000_000_000n).toString().padStart(9, '0')}`;
    expect(value.status!.targets).toEqual([{ name: 'sim', requests: 3, errors: 0, cost: usd(cost), costPerSuccess: usd(cost / 3n) }]);
  });

  it('pushes catalog prices with the route: a sidecar meters a catalog-priced target without loading the catalog', async () => {
    const upstream = await startFakeUpstream(openaiResponder());
    try {
      await apply(`
apiVersion: v1
kind: Secret
metadata: { name: openai, namespace: team-a }
stringData: { api-key: sk-e2e }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: listed, namespace: team-a }
spec:
  model: listed-bot
  targets:
    - { name: mini, provider: openai, model: gpt-4o-mini, baseURL: ${upstream.url}/v1, credentials: { secretRef: { name: openai, key: api-key } } }
`);
      // the Secret may reach the operator's cache after the route: served once both are pushed
      const { value: res } = await until(
        'route served with its credentials',
        () => postChat(sidecars[2]!, { model: 'listed-bot', messages: [{ role: 'user', content: 'what does this cost' }] }),
        (r) => r.status === 200,
        5_000,
      );
      const { usage } = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
      // the catalog's gpt-4o-mini: $0.15 input, $0.60 output per million tokens, in nano-USD
      const nano = BigInt(usage.prompt_tokens * 150 + usage.completion_tokens * 600);
      expect(res.headers.get('x-paygo-cost-usd')).toBe(`0.${nano.toString().padStart(9, '0')}`);
      for (const s of sidecars) expect(s.lines.join('\n')).not.toContain('price catalog loaded');
    } finally {
      await upstream.close();
    }
  });

  it('serves a sidecar of another namespace nothing of this one', async () => {
    await apply(route('support', 'support-bot'));
    await until('route on all sidecars of team-a', () => Promise.all(sidecars.map(models)), (all) => all.every((m) => m.includes('support-bot')), 30_000);
    await until('the intruder connected', async () => (await fetch(`${env.operator.healthUrl}/metrics`)).text(), (t) => /paygo_operator_connected_sidecars 4/.test(t), 30_000);
    expect(await models(intruder)).toEqual([]);
    expect(intruder.lines.join('\n')).not.toContain('support-bot');
  });

  it('refuses forged, expired, wrong-audience and orphaned tokens', async () => {
    const call = (token: string) => undiciFetch(`https://127.0.0.1:${env.operatorPort}/v1/stream`, { headers: { authorization: `Bearer ${token}` }, dispatcher: insecure });
    expect((await call('eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl')).status).toBe(401);
    const wrongAudience = readFileSync(await env.podWithToken('team-a', 'aud-pod', { app: 'x' }, 'kubernetes'), 'utf8');
    expect((await call(wrongAudience)).status).toBe(401);
    // An expired token, signed with the cluster's real ServiceAccount key: TokenRequest cannot
    // issue one shorter than 10 minutes, so a real token's header and claims are re-signed with
    // only the times changed. The same re-signed token, unexpired, is accepted.
    const real = readFileSync(await env.podWithToken('team-a', 'app-1', { app: 'web', replica: '1' }), 'utf8').trim();
    const [head, payload] = real.split('.') as [string, string];
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const mint = (exp: number) => {
      const body = Buffer.from(JSON.stringify({ ...claims, exp, iat: exp - 3600, nbf: exp - 3600 })).toString('base64url');
      // The harness's ServiceAccount key is EC P-256: ES256, with the JOSE (r||s) signature encoding.
      const signature = createSign('SHA256')
        .update(`${head}.${body}`)
        .sign({ key: readFileSync(join(env.cp.dataDir, 'pki', 'sa.key')), dsaEncoding: 'ieee-p1363' }, 'base64url');
      return `${head}.${body}.${signature}`;
    };
    const now = Math.floor(Date.now() / 1000);
    const fresh = await call(mint(now + 600));
    expect(fresh.status).toBe(200);
    await fresh.body?.cancel();
    expect((await call(mint(now - 60))).status).toBe(401);
    const orphanFile = await env.podWithToken('team-a', 'short-lived', { app: 'x' });
    await k(['delete', 'pod', 'short-lived', '-n', 'team-a', '--wait=false']);
    const orphan = readFileSync(orphanFile, 'utf8');
    expect([401, 403]).toContain((await call(orphan)).status);
  });

  it('an edit reaches every sidecar; a delete removes the route everywhere', async () => {
    await apply(route('support', '[support-bot, helpdesk]'));
    await until('edit everywhere', () => Promise.all(sidecars.map(models)), (all) => all.every((m) => m.includes('helpdesk')));
    await k(['delete', 'modelroute', 'support', '-n', 'team-a']);
    await until('delete everywhere', () => Promise.all(sidecars.map(models)), (all) => all.every((m) => !m.includes('support-bot')));
  });

  it('a snapshot a sidecar rejects is NACKed and the reason shows in status', async () => {
    await apply(route('one', 'shared-name'));
    await apply(route('two', 'shared-name'));
    const { value } = await until('NACK in status', () => getRoute('two'), (r) => cond(r, 'Ready')?.reason === 'SidecarRejected');
    expect(cond(value, 'Ready')?.message).toMatch(/claimed by both/);
    expect(value.status?.sidecars?.rejected).toBe(3);
    await k(['delete', 'modelroute', 'two', '-n', 'team-a']);
    await until('recovers', () => getRoute('one'), (r) => cond(r, 'Ready')?.status === 'True');
  });

  it('sidecars keep serving while the operator is down and resync when it is back', async () => {
    await apply(route('before', 'served-while-down'));
    await until('route on all sidecars', () => Promise.all(sidecars.map(models)), (all) => all.every((m) => m.includes('served-while-down')), 30_000);
    await env.operator.stop();
    for (const s of sidecars) expect(await models(s)).toContain('served-while-down');
    const res = await fetch(`${sidecars[1]!.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'served-while-down', messages: [{ role: 'user', content: 'hi' }] }) });
    expect(res.status).toBe(200);
    await apply(route('later', 'added-while-down'));
    await env.restartOperator();
    await until('resync', () => Promise.all(sidecars.map(models)), (all) => all.every((m) => m.includes('added-while-down')), 20_000);
  });

  it('a restarted sidecar serves its last good snapshot before the operator answers', async () => {
    await apply(route('remembered', 'remembered-bot'));
    const stateDir = mkdtempSync(join(env.work, 'state-'));
    const token = await env.podWithToken('team-a', 'restarter', { app: 'web' });
    const first = await env.sidecarFor(token, { stateDir });
    await until('first sync', () => models(first), (m) => m.includes('remembered-bot'), 30_000);
    await first.stop();
    await env.operator.stop();
    const second = await env.sidecarFor(token, { stateDir });
    try {
      await until('served from disk', () => models(second), (m) => m.includes('remembered-bot'), 30_000);
    } finally {
      await second.stop();
      await env.restartOperator();
    }
  });

  it('with two replicas exactly one is leader and only it writes status', async () => {
    const standby = await startOperator(env.cp.kubeconfigPath, { identity: 'op-b' });
    try {
      await apply(route('leadership', 'leader-test'));
      await until('status written', () => getRoute('leadership'), (r) => r.status?.sidecars?.synced === 3, 15_000);
      const lease = JSON.parse(await k(['get', 'lease', 'paygo-operator', '-n', 'paygo-system', '-o', 'json'])) as { spec: { holderIdentity: string } };
      expect(lease.spec.holderIdentity).toBe('op-a');
      const withFields = JSON.parse(await k(['get', 'modelroute', 'leadership', '-n', 'team-a', '-o', 'json', '--show-managed-fields'])) as RouteObject;
      const managers = withFields.metadata.managedFields!.filter((f) => f.subresource === 'status').map((f) => f.manager);
      expect(managers).toEqual(['paygo-operator-op-a']);
      expect((await fetch(`${standby.healthUrl}/metrics`).then((r) => r.text())).match(/^paygo_operator_leader (\d)$/m)?.[1]).toBe('0');
      // The standby refuses streams so that sidecars find the leader.
      const refused = await undiciFetch(`${standby.url}/v1/stream`, { dispatcher: insecure });
      expect(refused.status).toBe(503);
    } finally {
      await standby.stop();
    }
  });
});

describe('injection webhook served by the operator', () => {
  it('sets the caBundle of its webhook configuration and injects labelled pods through the API server', async () => {
    const port = (await import('../support/sidecar-process.js')).freePort;
    const webhookPort = await port();
    await apply(`
apiVersion: admissionregistration.k8s.io/v1
kind: MutatingWebhookConfiguration
metadata: { name: paygo-e2e }
webhooks:
  - name: inject.paygo.dev
    clientConfig: { url: "https://127.0.0.1:${webhookPort}/mutate-pods" }
    rules: [{ apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [pods] }]
    objectSelector: { matchLabels: { paygo.dev/inject: "true" } }
    sideEffects: None
    admissionReviewVersions: [v1]
    failurePolicy: Fail
    timeoutSeconds: 5
`);
    const replica = await startOperator(env.cp.kubeconfigPath, { identity: 'op-w', port: webhookPort, args: ['--webhook-config-name', 'paygo-e2e', '--sidecar-image', 'example.invalid/paygo-sidecar:test'] });
    try {
      const cfg = JSON.parse(await k(['get', 'mutatingwebhookconfiguration', 'paygo-e2e', '-o', 'json'])) as { webhooks: Array<{ clientConfig: { caBundle?: string } }> };
      expect(Buffer.from(cfg.webhooks[0]!.clientConfig.caBundle ?? '', 'base64').toString()).toBe(readFileSync(env.caFile, 'utf8'));
      await apply(`
apiVersion: v1
kind: Pod
metadata: { name: injected, namespace: team-a, labels: { paygo.dev/inject: "true" } }
spec:
  serviceAccountName: app
  containers: [{ name: app, image: example.invalid/app:1 }]
`);
      const pod = JSON.parse(await k(['get', 'pod', 'injected', '-n', 'team-a', '-o', 'json'])) as {
        metadata: { annotations: Record<string, string> };
        spec: { initContainers: Array<{ name: string; image: string; restartPolicy: string; args: string[] }>; containers: Array<{ env: Array<{ name: string; value: string }> }> };
      };
      expect(pod.spec.initContainers[0]).toMatchObject({ name: 'paygo-sidecar', image: 'example.invalid/paygo-sidecar:test', restartPolicy: 'Always' });
      expect(pod.spec.initContainers[0]!.args).toContain('https://paygo-operator.paygo-system.svc:8443');
      expect(pod.spec.containers[0]!.env).toContainEqual({ name: 'OPENAI_BASE_URL', value: 'http://127.0.0.1:4000/v1' });
      expect(pod.metadata.annotations['paygo.dev/injected']).toBe('true');
    } finally {
      await replica.stop();
    }
  });
});

/** For direct probes of the operator: its certificate is checked by the sidecars' tests. */
const insecure = new Agent({ connect: { rejectUnauthorized: false } });
