import type { V1Container, V1Pod } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import {
  OutdatedPodReporter,
  escapePointer,
  injectionHash,
  mutatePod,
  outdatedPods,
  planInjection,
  registerWebhook,
  sidecarContainer,
  type InjectionConfig,
  type JsonPatchOp,
} from '../../operator/webhook.js';

const CA = '-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n';
const cfg: InjectionConfig = {
  image: 'ghcr.io/paygo/sidecar:0.1.0',
  imagePullPolicy: 'IfNotPresent',
  operatorURL: 'https://paygo-operator.paygo-system.svc:8443',
  caPem: CA,
  port: 4000,
  metricsPort: 9464,
  logLevel: 'info',
};
const silent = pino({ level: 'silent' });

// ---------------------------------------------------------------------------------------------
// A strict RFC 6902 applier (add/replace/remove/test): it throws where the API server's would,
// e.g. on an `add` whose parent does not exist, so a patch that forgets to create
// /spec/initContainers fails here too.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function parsePointer(path: string): string[] {
  if (!path.startsWith('/')) throw new Error(`bad pointer ${path}`);
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function parentOf(doc: Json, tokens: string[]): Json {
  let cur: Json = doc;
  for (const t of tokens) {
    if (Array.isArray(cur)) cur = cur[Number(t)] as Json;
    else if (cur && typeof cur === 'object' && t in cur) cur = cur[t] as Json;
    else throw new Error(`path does not exist at ${t}`);
    if (cur === undefined) throw new Error(`path does not exist at ${t}`);
  }
  return cur;
}

function applyPatch<T>(input: T, ops: JsonPatchOp[]): T {
  const doc = structuredClone(input) as Json;
  for (const op of ops) {
    const tokens = parsePointer(op.path);
    const last = tokens.pop()!;
    const parent = parentOf(doc, tokens);
    if (Array.isArray(parent)) {
      const i = last === '-' ? parent.length : Number(last);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw new Error(`bad index ${last}`);
      if (op.op === 'add') parent.splice(i, 0, op.value as Json);
      else if (op.op === 'replace') parent[i] = op.value as Json;
      else if (op.op === 'remove') parent.splice(i, 1);
      else if (op.op === 'test') expect(parent[i]).toEqual(op.value);
      else throw new Error(`unsupported ${op.op}`);
    } else if (parent && typeof parent === 'object') {
      if (op.op === 'add') parent[last] = op.value as Json;
      else if (op.op === 'replace' && last in parent) parent[last] = op.value as Json;
      else if (op.op === 'remove' && last in parent) delete parent[last];
      else if (op.op === 'test') expect(parent[last]).toEqual(op.value);
      else throw new Error(`cannot ${op.op} ${op.path}`);
    } else {
      throw new Error(`parent of ${op.path} is not a container`);
    }
  }
  return doc as T;
}

/** A pod as a Deployment's ReplicaSet creates it (no initContainers, volumes or annotations). */
function deploymentPod(): V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { generateName: 'web-7c9d8-', namespace: 'team-a', labels: { app: 'web', 'paygo.dev/inject': 'true', 'pod-template-hash': '7c9d8' } },
    spec: {
      serviceAccountName: 'web',
      containers: [
        { name: 'app', image: 'example.com/web:1', ports: [{ containerPort: 8080 }] },
        { name: 'worker', image: 'example.com/worker:1', env: [{ name: 'QUEUE', value: 'jobs' }] },
      ],
    },
  };
}

const envOf = (c: V1Container | undefined) => Object.fromEntries((c?.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));
const injected = (pod: V1Pod) => applyPatch(pod, mutatePod(pod, cfg));

describe('mutatePod', () => {
  it('injects the native sidecar, volumes, env and annotations into a pod that has none of them', () => {
    const pod = deploymentPod();
    const out = injected(pod);
    expect(out.spec?.initContainers).toHaveLength(1);
    const sc = out.spec!.initContainers![0]!;
    expect(sc).toEqual(sidecarContainer(cfg));
    expect(sc).toMatchObject({
      name: 'paygo-sidecar',
      image: cfg.image,
      imagePullPolicy: 'IfNotPresent',
      restartPolicy: 'Always',
      args: ['--operator', cfg.operatorURL, '--token-file', '/var/run/secrets/paygo/token', '--state-dir', '/var/lib/paygo', '--port', '4000', '--metrics-port', '9464'],
      env: [
        { name: 'PAYGO_OPERATOR_CA_PEM', value: CA },
        { name: 'PAYGO_LOG_LEVEL', value: 'info' },
      ],
      ports: [{ name: 'paygo-metrics', containerPort: 9464, protocol: 'TCP' }],
      startupProbe: { httpGet: { path: '/healthz', port: 9464 } },
      readinessProbe: { httpGet: { path: '/readyz', port: 9464 } },
      livenessProbe: { httpGet: { path: '/healthz', port: 9464 } },
      securityContext: { runAsNonRoot: true, runAsUser: 65532, readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
      resources: { requests: { cpu: '50m', memory: '96Mi' }, limits: { memory: '192Mi' } },
      volumeMounts: [
        { name: 'paygo-token', mountPath: '/var/run/secrets/paygo', readOnly: true },
        { name: 'paygo-state', mountPath: '/var/lib/paygo' },
      ],
    });
    expect(out.spec?.volumes).toEqual([
      { name: 'paygo-token', projected: { sources: [{ serviceAccountToken: { audience: 'paygo', expirationSeconds: 3600, path: 'token' } }] } },
      { name: 'paygo-state', emptyDir: {} },
    ]);
    const base = 'http://127.0.0.1:4000/v1';
    expect(envOf(out.spec?.containers[0])).toEqual({ OPENAI_BASE_URL: base, OPENAI_API_BASE: base, OPENAI_API_KEY: 'paygo' });
    expect(envOf(out.spec?.containers[1])).toEqual({ QUEUE: 'jobs', OPENAI_BASE_URL: base, OPENAI_API_BASE: base, OPENAI_API_KEY: 'paygo' });
    expect(out.metadata?.annotations).toEqual({ 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': injectionHash(cfg) });
    expect(out.metadata?.labels).toEqual({ ...pod.metadata?.labels, 'paygo.dev/injected': 'true' });
    // Nothing else changed.
    expect({ ...out, spec: { ...out.spec, initContainers: undefined, volumes: undefined, containers: [] }, metadata: { ...out.metadata, annotations: undefined, labels: undefined } }).toEqual({
      ...pod,
      spec: { ...pod.spec, initContainers: undefined, volumes: undefined, containers: [] },
      metadata: { ...pod.metadata, annotations: undefined, labels: undefined },
    });
  });

  it('puts the sidecar before existing init containers and appends to existing volumes, leaving other init containers alone', () => {
    const pod = deploymentPod();
    pod.spec!.initContainers = [{ name: 'migrate', image: 'example.com/migrate:1' }];
    pod.spec!.volumes = [{ name: 'cache', emptyDir: {} }];
    const out = injected(pod);
    expect(out.spec?.initContainers?.map((c) => c.name)).toEqual(['paygo-sidecar', 'migrate']);
    expect(out.spec?.initContainers?.[1]).toEqual({ name: 'migrate', image: 'example.com/migrate:1' });
    expect(out.spec?.volumes?.map((v) => v.name)).toEqual(['cache', 'paygo-token', 'paygo-state']);
  });

  it('creates the array when the pod has an empty initContainers or env list', () => {
    const pod = deploymentPod();
    pod.spec!.initContainers = [];
    pod.spec!.containers[0]!.env = [];
    const out = injected(pod);
    expect(out.spec?.initContainers?.map((c) => c.name)).toEqual(['paygo-sidecar']);
    expect(Object.keys(envOf(out.spec?.containers[0]))).toEqual(['OPENAI_BASE_URL', 'OPENAI_API_BASE', 'OPENAI_API_KEY']);
  });

  it("never overrides a variable the user set, and warns when OPENAI_BASE_URL bypasses the sidecar", () => {
    const pod = deploymentPod();
    pod.spec!.containers[0]!.env = [
      { name: 'OPENAI_BASE_URL', value: 'https://api.openai.com/v1' },
      { name: 'OPENAI_API_KEY', valueFrom: { secretKeyRef: { name: 'openai', key: 'key' } } },
    ];
    const plan = planInjection(pod, cfg);
    const out = applyPatch(pod, plan.ops);
    expect(envOf(out.spec?.containers[0])).toEqual({
      OPENAI_BASE_URL: 'https://api.openai.com/v1',
      OPENAI_API_KEY: { secretKeyRef: { name: 'openai', key: 'key' } },
      OPENAI_API_BASE: 'http://127.0.0.1:4000/v1',
    });
    expect(envOf(out.spec?.containers[1]).OPENAI_BASE_URL).toBe('http://127.0.0.1:4000/v1');
    expect(plan.warnings).toEqual([expect.stringContaining('container "app" sets OPENAI_BASE_URL')]);
  });

  it('keeps a volume of the same name the user defined instead of making the pod invalid', () => {
    const pod = deploymentPod();
    pod.spec!.volumes = [{ name: 'paygo-state', persistentVolumeClaim: { claimName: 'state' } }];
    const plan = planInjection(pod, cfg);
    const out = applyPatch(pod, plan.ops);
    expect(out.spec?.volumes).toEqual([{ name: 'paygo-state', persistentVolumeClaim: { claimName: 'state' } }, expect.objectContaining({ name: 'paygo-token' })]);
    expect(plan.warnings).toEqual([expect.stringContaining('"paygo-state"')]);
  });

  it('warns about ports the sidecar would clash with', () => {
    const pod = deploymentPod();
    pod.spec!.containers[0]!.ports = [{ containerPort: 4000 }];
    pod.spec!.hostNetwork = true;
    const { ops, warnings } = planInjection(pod, cfg);
    expect(ops.length).toBeGreaterThan(0);
    expect(warnings).toEqual([expect.stringContaining('app:4000'), expect.stringContaining('hostNetwork')]);
  });

  it('adds annotations next to existing ones with "/" escaped as ~1', () => {
    const pod = deploymentPod();
    pod.metadata!.annotations = { 'kubectl.kubernetes.io/restartedAt': '2026-01-01T00:00:00Z' };
    const ops = mutatePod(pod, cfg);
    expect(ops).toContainEqual({ op: 'add', path: '/metadata/annotations/paygo.dev~1injected', value: 'true' });
    expect(ops).toContainEqual({ op: 'add', path: '/metadata/annotations/paygo.dev~1injection-hash', value: injectionHash(cfg) });
    expect(injected(pod).metadata?.annotations).toEqual({
      'kubectl.kubernetes.io/restartedAt': '2026-01-01T00:00:00Z',
      'paygo.dev/injected': 'true',
      'paygo.dev/injection-hash': injectionHash(cfg),
    });
    expect(escapePointer('a~b/c')).toBe('a~0b~1c');
  });

  it('creates metadata when the object has none', () => {
    const pod: V1Pod = { spec: { containers: [{ name: 'app', image: 'x' }] } };
    expect(injected(pod).metadata).toEqual({ annotations: { 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': injectionHash(cfg) }, labels: { 'paygo.dev/injected': 'true' } });
  });

  it('does nothing for a pod that opted out', () => {
    const pod = deploymentPod();
    pod.metadata!.annotations = { 'paygo.dev/inject': 'false' };
    expect(mutatePod(pod, cfg)).toEqual([]);
    const labelled = deploymentPod();
    labelled.metadata!.labels!['paygo.dev/inject'] = 'false';
    expect(mutatePod(labelled, cfg)).toEqual([]);
  });

  it('is idempotent: the mutated pod re-submitted gets no ops', () => {
    const once = injected(deploymentPod());
    expect(mutatePod(once, cfg)).toEqual([]);
    // Even with another config (an upgraded operator): the pod is reported as outdated instead.
    expect(mutatePod(once, { ...cfg, image: 'ghcr.io/paygo/sidecar:0.2.0' })).toEqual([]);
  });

  it('uses the configured resources and leaves PAYGO_LOG_LEVEL and imagePullPolicy out when unset', () => {
    const resources = { requests: { cpu: '10m', memory: '32Mi' }, limits: { memory: '64Mi' } };
    const sc = sidecarContainer({ ...cfg, logLevel: undefined, imagePullPolicy: undefined, resources });
    expect(sc.resources).toEqual(resources);
    expect(sc.env?.map((e) => e.name)).toEqual(['PAYGO_OPERATOR_CA_PEM']);
    expect(sc).not.toHaveProperty('imagePullPolicy');
  });

  it('tracing: PAYGO_OTLP_ENDPOINT and the OTEL_* variables (sorted by name) only when configured', () => {
    const sc = sidecarContainer({ ...cfg, otlpEndpoint: 'http://otel-collector.observability:4318', otelEnv: { OTEL_TRACES_SAMPLER_ARG: '0.1', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio' } });
    expect(sc.env).toEqual([
      { name: 'PAYGO_OPERATOR_CA_PEM', value: CA },
      { name: 'PAYGO_LOG_LEVEL', value: 'info' },
      { name: 'PAYGO_OTLP_ENDPOINT', value: 'http://otel-collector.observability:4318' },
      { name: 'OTEL_TRACES_SAMPLER', value: 'parentbased_traceidratio' },
      { name: 'OTEL_TRACES_SAMPLER_ARG', value: '0.1' },
    ]);
    expect(sidecarContainer(cfg).env?.map((e) => e.name)).toEqual(['PAYGO_OPERATOR_CA_PEM', 'PAYGO_LOG_LEVEL']);
  });

  it('refuses an invalid config (a metrics port of 0 would leave the probes nothing to call)', () => {
    expect(() => mutatePod(deploymentPod(), { ...cfg, metricsPort: 0 })).toThrow(/ports/);
    expect(() => mutatePod(deploymentPod(), { ...cfg, caPem: 'nope' })).toThrow(/caPem/);
  });
});

describe('injection hash and outdated pods', () => {
  it('is short, stable and changes with what the template depends on', () => {
    const h = injectionHash(cfg);
    expect(h).toMatch(/^[0-9a-f]{16}$/);
    expect(injectionHash({ ...cfg })).toBe(h);
    for (const change of [{ image: 'x:2' }, { caPem: `${CA}\n` }, { port: 4001 }, { metricsPort: 9465 }, { logLevel: 'debug' }, { operatorURL: 'https://other:8443' }, { otlpEndpoint: 'http://otel:4318' }, { otelEnv: { OTEL_TRACES_SAMPLER_ARG: '0.5' } }]) {
      expect(injectionHash({ ...cfg, ...change })).not.toBe(h);
    }
  });

  it('lists injected, live pods whose hash differs', () => {
    const pod = (name: string, annotations: Record<string, string> | undefined, extra: Partial<V1Pod> = {}): V1Pod => ({ metadata: { name, annotations }, ...extra });
    const h = injectionHash(cfg);
    const pods = [
      pod('current', { 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': h }),
      pod('old', { 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': 'abc' }),
      pod('no-hash', { 'paygo.dev/injected': 'true' }),
      pod('not-injected', undefined),
      pod('done', { 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': 'abc' }, { status: { phase: 'Succeeded' } }),
    ];
    expect(outdatedPods(pods, h).map((p) => p.metadata?.name)).toEqual(['old', 'no-hash']);
  });
});

describe('OutdatedPodReporter', () => {
  it('writes one Warning Event per outdated pod and template, retrying failed writes', async () => {
    const written: Array<{ name: string | undefined; reason: string; message: string }> = [];
    let fail = true;
    let hash = 'h2';
    const pods: V1Pod[] = [
      { metadata: { name: 'a', uid: 'u1', annotations: { 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': 'h1' } } },
      { metadata: { name: 'b', uid: 'u2', annotations: { 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': 'h1' } } },
      { metadata: { name: 'c', uid: 'u3', annotations: { 'paygo.dev/injected': 'true', 'paygo.dev/injection-hash': 'h2' } } },
    ];
    const reporter = new OutdatedPodReporter({
      listPods: () => pods,
      currentHash: () => hash,
      logger: silent,
      events: {
        async warning(pod, reason, message) {
          if (pod.metadata?.name === 'b' && fail) throw new Error('forbidden');
          written.push({ name: pod.metadata?.name, reason, message });
        },
      },
    });
    expect(await reporter.report()).toBe(1);
    expect(written).toEqual([{ name: 'a', reason: 'InjectionOutdated', message: expect.stringContaining('template h1, current h2') }]);
    fail = false;
    expect(await reporter.report()).toBe(1); // b, retried
    expect(await reporter.report()).toBe(0); // de-duplicated
    hash = 'h3'; // another upgrade: all three are outdated again
    expect(await reporter.report()).toBe(3);
    expect(written.map((w) => w.name)).toEqual(['a', 'b', 'a', 'b', 'c']);
  });
});

describe('POST /mutate-pods', () => {
  let app: FastifyInstance | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function server(config: () => InjectionConfig = () => cfg): Promise<FastifyInstance> {
    app = Fastify();
    registerWebhook(app, { config, logger: silent });
    await app.ready();
    return app;
  }

  const review = (object: unknown, extra: Record<string, unknown> = {}) => ({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '705ab4f5-6393-11e8-b7cc-42010a800002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      requestKind: { group: '', version: 'v1', kind: 'Pod' },
      requestResource: { group: '', version: 'v1', resource: 'pods' },
      namespace: 'team-a',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:replicaset-controller' },
      object,
      oldObject: null,
      dryRun: false,
      options: { apiVersion: 'meta.k8s.io/v1', kind: 'CreateOptions' },
      ...extra,
    },
  });

  interface ReviewOut {
    apiVersion: string;
    kind: string;
    response: { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[]; status?: { code: number; message: string } };
  }

  it('answers with the uid and a base64 JSONPatch that injects the pod', async () => {
    const a = await server();
    const pod = deploymentPod();
    const res = await a.inject({ method: 'POST', url: '/mutate-pods', payload: review(pod) });
    expect(res.statusCode).toBe(200);
    const body = res.json<ReviewOut>();
    expect(body).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true, patchType: 'JSONPatch' } });
    const ops = JSON.parse(Buffer.from(body.response.patch!, 'base64').toString('utf8')) as JsonPatchOp[];
    expect(ops).toEqual(mutatePod(pod, cfg));
    expect(applyPatch(pod, ops).spec?.initContainers?.[0]?.restartPolicy).toBe('Always');
    expect(body.response.warnings).toBeUndefined();
  });

  it('answers allowed without a patch when there is nothing to do', async () => {
    const a = await server();
    const mutated = injected(deploymentPod());
    for (const payload of [review(mutated), review(deploymentPod(), { operation: 'UPDATE' }), review({ metadata: { name: 'x' } }, { kind: { group: 'apps', version: 'v1', kind: 'Deployment' } })]) {
      const res = await a.inject({ method: 'POST', url: '/mutate-pods', payload });
      expect(res.statusCode).toBe(200);
      expect(res.json<ReviewOut>().response).toEqual({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true });
    }
  });

  it('passes warnings on to the user', async () => {
    const a = await server();
    const pod = deploymentPod();
    pod.spec!.containers[0]!.env = [{ name: 'OPENAI_BASE_URL', value: 'https://api.openai.com/v1' }];
    const res = await a.inject({ method: 'POST', url: '/mutate-pods', payload: review(pod) });
    expect(res.json<ReviewOut>().response).toMatchObject({ allowed: true, patchType: 'JSONPatch', warnings: [expect.stringContaining('OPENAI_BASE_URL')] });
  });

  it('refuses the pod with a message when injection fails unexpectedly', async () => {
    const a = await server(() => ({ ...cfg, metricsPort: 0 }));
    const res = await a.inject({ method: 'POST', url: '/mutate-pods', payload: review(deploymentPod()) });
    expect(res.statusCode).toBe(200);
    expect(res.json<ReviewOut>().response).toEqual({ uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: false, status: { code: 500, message: expect.stringContaining('paygo sidecar injection failed') } });
  });

  it('answers 400 to a malformed review', async () => {
    const a = await server();
    const bad = [
      { method: 'POST' as const, url: '/mutate-pods', payload: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' } },
      { method: 'POST' as const, url: '/mutate-pods', payload: { ...review(deploymentPod()), apiVersion: 'admission.k8s.io/v1beta1' } },
      { method: 'POST' as const, url: '/mutate-pods', payload: { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE' } } },
      { method: 'POST' as const, url: '/mutate-pods', payload: '{not json', headers: { 'content-type': 'application/json' } },
    ];
    for (const req of bad) expect((await a.inject(req)).statusCode).toBe(400);
  });
});
