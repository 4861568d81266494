import type { V1Container, V1Pod } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCA, issueServingCert } from '../../operator/certs.js';
import { injectionHash, registerWebhook, type InjectionConfig } from '../../operator/webhook.js';
import { kubectl, startControlPlane, type ControlPlane } from '../support/controlplane/controlplane.js';

/**
 * The injection webhook called by a real kube-apiserver: the API server decides which pods
 * reach it (objectSelector), sends real AdmissionReviews, applies the JSONPatch, defaults and
 * validates the result — a patch the API server would reject fails here, not in a cluster.
 */
const NS = 'inject-e2e';
let cp: ControlPlane;
let webhook: FastifyInstance;
let cfg: InjectionConfig;
/** Names of the pods the API server sent to the webhook, in order. */
const reviewed: string[] = [];

async function k(args: string[], stdin?: string): Promise<{ stdout: string; stderr: string }> {
  const r = await kubectl(cp, args, stdin);
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r;
}

function podManifest(name: string, labels: Record<string, string>, annotations: Record<string, string> = {}): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels, annotations },
    spec: {
      serviceAccountName: 'app',
      // Keeps the comparison to what the webhook adds (no kube-api-access volume).
      automountServiceAccountToken: false,
      initContainers: [{ name: 'migrate', image: 'example.invalid/migrate:1' }],
      containers: [
        { name: 'app', image: 'example.invalid/app:1', env: [{ name: 'MODE', value: 'web' }] },
        { name: 'direct', image: 'example.invalid/direct:1', env: [{ name: 'OPENAI_BASE_URL', value: 'https://api.openai.com/v1' }] },
      ],
    },
  };
}

/** Creates a pod through the API server (or only admits it, with dryRun) and returns what it stored. */
async function createPod(pod: V1Pod, dryRun = false): Promise<{ pod: V1Pod; stderr: string }> {
  const r = await k(['create', '-f', '-', '-o', 'json', ...(dryRun ? ['--dry-run=server'] : [])], JSON.stringify(pod));
  return { pod: JSON.parse(r.stdout) as V1Pod, stderr: r.stderr };
}

async function getPod(name: string): Promise<V1Pod> {
  return JSON.parse((await k(['get', 'pod', name, '-n', NS, '-o', 'json'])).stdout) as V1Pod;
}

const envOf = (c: V1Container | undefined) => Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value]));
const isInjected = (p: V1Pod) => (p.spec?.initContainers ?? []).some((c) => c.name === 'paygo-sidecar');

function mutatingWebhookConfiguration(port: number, caPem: string): unknown {
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: 'paygo-sidecar-injector' },
    webhooks: [
      {
        name: 'inject.paygo.dev',
        clientConfig: { url: `https://127.0.0.1:${port}/mutate-pods`, caBundle: Buffer.from(caPem).toString('base64') },
        objectSelector: { matchLabels: { 'paygo.dev/inject': 'true' } },
        rules: [{ operations: ['CREATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }],
        sideEffects: 'None',
        admissionReviewVersions: ['v1'],
        failurePolicy: 'Fail',
        reinvocationPolicy: 'Never',
        timeoutSeconds: 10,
      },
    ],
  };
}

/** The API server picks webhook configurations up through an informer; wait until ours is live. */
async function waitForWebhook(timeoutMs = 30_000): Promise<void> {
  const start = Date.now();
  for (let i = 0; Date.now() - start < timeoutMs; i++) {
    const r = await kubectl(cp, ['create', '-f', '-', '-o', 'json', '--dry-run=server'], JSON.stringify(podManifest(`probe-${i}`, { 'paygo.dev/inject': 'true' })));
    if (r.code === 0 && isInjected(JSON.parse(r.stdout) as V1Pod)) return;
    await new Promise((res) => setTimeout(res, 200));
  }
  throw new Error('the MutatingWebhookConfiguration did not take effect');
}

beforeAll(async () => {
  cp = await startControlPlane();
  const now = new Date();
  const ca = generateCA('paygo-webhook-e2e', now);
  const serving = issueServingCert(ca, ['localhost'], ['127.0.0.1'], now);
  cfg = { image: 'ghcr.io/paygo/sidecar:e2e', operatorURL: 'https://paygo-operator.paygo-system.svc:8443', caPem: ca.certPem, port: 4000, metricsPort: 9464, logLevel: 'debug' };
  webhook = Fastify({ https: { cert: serving.certPem, key: serving.keyPem } });
  webhook.addHook('preHandler', async (req) => {
    const body = req.body as { request?: { object?: V1Pod } } | undefined;
    reviewed.push(body?.request?.object?.metadata?.name ?? '?');
  });
  registerWebhook(webhook, { config: () => cfg, logger: pino({ level: 'silent' }) });
  const address = await webhook.listen({ host: '127.0.0.1', port: 0 });
  const port = Number(new URL(address).port);
  await k(['apply', '-f', '-'], JSON.stringify(mutatingWebhookConfiguration(port, ca.certPem)));
  await k(['create', 'namespace', NS]);
  await k(['create', 'serviceaccount', 'app', '-n', NS]);
  await waitForWebhook();
});

afterAll(async () => {
  await webhook?.close();
  await cp?.stop();
});

describe('sidecar injection through a real API server', () => {
  let stored: V1Pod;

  it('mutates a labelled pod as it is created', async () => {
    const created = await createPod(podManifest('labelled', { app: 'web', 'paygo.dev/inject': 'true' }));
    // The webhook's warning reaches the user through the API server.
    expect(created.stderr).toMatch(/Warning: paygo: container "direct" sets OPENAI_BASE_URL/);
    stored = await getPod('labelled');
    const spec = stored.spec!;
    expect(spec.initContainers?.map((c) => c.name)).toEqual(['paygo-sidecar', 'migrate']);
    const sc = spec.initContainers![0]!;
    expect(sc).toMatchObject({
      image: cfg.image,
      restartPolicy: 'Always',
      args: ['--operator', cfg.operatorURL, '--token-file', '/var/run/secrets/paygo/token', '--state-dir', '/var/lib/paygo', '--port', '4000', '--metrics-port', '9464'],
      env: [
        { name: 'PAYGO_OPERATOR_CA_PEM', value: cfg.caPem },
        { name: 'PAYGO_LOG_LEVEL', value: 'debug' },
      ],
      ports: [{ name: 'paygo-metrics', containerPort: 9464, protocol: 'TCP' }],
      resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '192Mi' } },
      startupProbe: { httpGet: { path: '/healthz', port: 9464 } },
      readinessProbe: { httpGet: { path: '/readyz', port: 9464 } },
      livenessProbe: { httpGet: { path: '/healthz', port: 9464 } },
      securityContext: { runAsNonRoot: true, runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      volumeMounts: [
        { name: 'paygo-token', mountPath: '/var/run/secrets/paygo', readOnly: true },
        { name: 'paygo-state', mountPath: '/var/lib/paygo' },
      ],
    });
    expect(spec.volumes).toEqual(
      expect.arrayContaining([
        { name: 'paygo-token', projected: expect.objectContaining({ sources: [{ serviceAccountToken: { audience: 'paygo', expirationSeconds: 3600, path: 'token' } }] }) },
        { name: 'paygo-state', emptyDir: {} },
      ]),
    );
    const base = 'http://127.0.0.1:4000/v1';
    expect(envOf(spec.containers[0])).toEqual({ MODE: 'web', OPENAI_BASE_URL: base, OPENAI_API_BASE: base, OPENAI_API_KEY: 'paygo' });
    // The user's own OPENAI_BASE_URL is kept.
    expect(envOf(spec.containers[1])).toEqual({ OPENAI_BASE_URL: 'https://api.openai.com/v1', OPENAI_API_BASE: base, OPENAI_API_KEY: 'paygo' });
    // Other init containers get nothing.
    expect(spec.initContainers![1]!.env).toBeUndefined();
    expect(stored.metadata?.annotations).toMatchObject({ 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': injectionHash(cfg) });
  });

  it('does not send an unlabelled pod to the webhook, and the pod is unchanged', async () => {
    await createPod(podManifest('unlabelled', { app: 'web' }));
    const pod = await getPod('unlabelled');
    expect(reviewed).not.toContain('unlabelled');
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['migrate']);
    expect(pod.spec?.volumes).toBeUndefined();
    expect(envOf(pod.spec?.containers[0])).toEqual({ MODE: 'web' });
    expect(pod.metadata?.annotations?.['paygo.dev/injected']).toBeUndefined();
  });

  it('leaves a labelled pod that opted out by annotation alone', async () => {
    await createPod(podManifest('opted-out', { 'paygo.dev/inject': 'true' }, { 'paygo.dev/inject': 'false' }));
    const pod = await getPod('opted-out');
    expect(reviewed).toContain('opted-out');
    expect(pod.spec?.initContainers?.map((c) => c.name)).toEqual(['migrate']);
    expect(envOf(pod.spec?.containers[0])).toEqual({ MODE: 'web' });
  });

  it('leaves an already mutated pod unchanged when it is submitted again', async () => {
    // A mutated pod of its own (run alone, the first test has not made one).
    const stored = await createPod(podManifest('mutated-once', { app: 'web', 'paygo.dev/inject': 'true' })).then(() => getPod('mutated-once'));
    expect(stored.spec?.initContainers?.[0]?.name).toBe('paygo-sidecar');
    // The stored pod as a user would re-apply it: server-set metadata and status removed.
    const again: V1Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'labelled-again', namespace: NS, labels: stored.metadata?.labels, annotations: stored.metadata?.annotations },
      spec: stored.spec,
    };
    const { pod } = await createPod(again, true);
    expect(reviewed).toContain('labelled-again');
    expect(pod.spec?.initContainers).toEqual(stored.spec?.initContainers);
    expect(pod.spec?.initContainers?.filter((c) => c.name === 'paygo-sidecar')).toHaveLength(1);
    expect(pod.spec?.containers).toEqual(stored.spec?.containers);
    expect(pod.spec?.volumes).toEqual(stored.spec?.volumes);
    expect(pod.metadata?.annotations).toEqual(stored.metadata?.annotations);
  });
});
