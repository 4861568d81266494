import { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ACK_PATH, TARGET_REPORT_PATH, type TargetReport } from '../../crds/src/index.js';
import { TokenAuthenticator, type PodIdentity } from '../../operator/auth.js';
import { ClusterCache } from '../../operator/cache.js';
import { Distributor } from '../../operator/distribution.js';
import { snapshotForPod } from '../../operator/snapshots.js';
import { BUDGETS, FakeKube, PODS, ROUTES, SECRETS, until } from '../support/fake-kube.js';
import { budget, openStream, pod, post, route, secret, silent, type TestStream } from '../support/operator-fixtures.js';

let kube: FakeKube;
let cache: ClusterCache;
let distributor: Distributor;
let app: FastifyInstance;
let base: string;
let leader: boolean;
let syncChanged: string[];
let reports: Array<{ pod: string; report: TargetReport }>;
const streams: TestStream[] = [];

beforeEach(async () => {
  kube = await new FakeKube().start();
  // Two pods in namespace a (one labelled for the "special" route), one in b.
  kube.put(PODS, pod('a', 'a-1', 'uid-a1', { app: 'chat' }));
  kube.put(PODS, pod('a', 'a-2', 'uid-a2', { app: 'other' }));
  kube.put(PODS, pod('b', 'b-1', 'uid-b1'));
  kube.registerToken('tok-a1', { namespace: 'a', podName: 'a-1', podUid: 'uid-a1' });
  kube.registerToken('tok-a2', { namespace: 'a', podName: 'a-2', podUid: 'uid-a2' });
  kube.registerToken('tok-b1', { namespace: 'b', podName: 'b-1', podUid: 'uid-b1' });
  kube.put(SECRETS, secret('a', 'openai', 'sk-namespace-a'));
  kube.put(SECRETS, secret('b', 'openai', 'sk-namespace-b'));
  kube.put(ROUTES, route('a', 'chat'));
  kube.put(ROUTES, route('a', 'special', { podSelector: { app: 'chat' } }));
  kube.put(ROUTES, route('b', 'chat'));
  kube.put(BUDGETS, budget('a', 'daily'));
  const kc = kube.kubeConfig();
  cache = new ClusterCache(kc, silent);
  leader = true;
  syncChanged = [];
  reports = [];
  distributor = new Distributor({
    authenticator: new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api), { now: Date.now }),
    snapshotFor: (id: PodIdentity) => snapshotForPod(cache, id.namespace, id.labels),
    isLeader: () => leader,
    onNamespaceSyncChanged: (ns) => syncChanged.push(ns),
    onTargetReport: (id, report) => reports.push({ pod: `${id.namespace}/${id.podName}`, report }),
    logger: silent,
  });
  cache.onNamespaceChanged((ns) => distributor.refresh(ns));
  await cache.start();
  await until(() => cache.secretKnown('a', 'openai') && cache.secretKnown('b', 'openai'), 'secret lists');
  app = Fastify();
  distributor.register(app);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  distributor.stop();
  await app.close();
  await cache.stop();
  await kube.stop();
});

async function connect(token: string): Promise<TestStream> {
  const s = await openStream(base, token);
  streams.push(s);
  return s;
}

async function connected(token: string, n = 1): Promise<TestStream> {
  const s = await connect(token);
  await until(() => s.snapshots.length >= n, 'the first snapshot');
  return s;
}

const ack = (token: string, version: string, accepted = true, reason?: string) => post(base, ACK_PATH, token, { version, accepted, ...(reason ? { reason } : {}) });
const routeNames = (s: TestStream) => s.snapshots.at(-1)!.routes.map((r) => `${r.namespace}/${r.name}`);

describe('Distributor and snapshotForPod', () => {
  it('sends each pod its own namespace\'s routes, budgets and keys, filtered by podSelector', async () => {
    const a1 = await connected('tok-a1');
    const a2 = await connected('tok-a2');
    const b1 = await connected('tok-b1');
    expect(routeNames(a1)).toEqual(['a/chat', 'a/special']);
    expect(routeNames(a2)).toEqual(['a/chat']);
    expect(routeNames(b1)).toEqual(['b/chat']);
    expect(a1.snapshots[0]!.routes[0]!.credentials).toEqual({ openai: 'sk-namespace-a' });
    expect(b1.snapshots[0]!.routes[0]!.credentials).toEqual({ openai: 'sk-namespace-b' });
    expect(a1.snapshots[0]!.budgets.map((b) => `${b.namespace}/${b.name}`)).toEqual(['a/daily']);
    expect(b1.snapshots[0]!.budgets).toEqual([]);
    // Another namespace's key never reaches a sidecar, in any field.
    expect(JSON.stringify(b1.snapshots)).not.toContain('sk-namespace-a');
    expect(JSON.stringify([a1.snapshots, a2.snapshots])).not.toContain('sk-namespace-b');
    expect(distributor.connections.size).toBe(3);
  });

  it('pushes a new snapshot only when its version changes, and only to the namespace that changed', async () => {
    const a1 = await connected('tok-a1');
    const b1 = await connected('tok-b1');
    const first = a1.snapshots[0]!.version;
    distributor.refresh('a'); // nothing changed: nothing sent
    kube.put(SECRETS, secret('b', 'openai', 'sk-b-rotated'));
    await until(() => b1.snapshots.length === 2, 'b\'s new key');
    expect(b1.snapshots[1]!.routes[0]!.credentials).toEqual({ openai: 'sk-b-rotated' });
    kube.put(ROUTES, route('a', 'chat', { spec: { retry: { attempts: 3 } } }));
    await until(() => a1.snapshots.length === 2, 'a\'s changed route');
    expect(a1.snapshots[1]!.version).not.toBe(first);
    expect(a1.snapshots[1]!.routes.find((r) => r.name === 'chat')!.spec.retry).toMatchObject({ attempts: 3 });
    await new Promise((r) => setTimeout(r, 30));
    expect(a1.snapshots).toHaveLength(2);
    expect(b1.snapshots).toHaveLength(2);
  });

  it('counts a route synced only when every sidecar it reaches ACKed the version last sent', async () => {
    const a1 = await connected('tok-a1');
    const a2 = await connected('tok-a2');
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 0, rejected: 0, rejectReason: undefined });
    expect(distributor.routeSync('a', 'special')).toEqual({ desired: 1, synced: 0, rejected: 0, rejectReason: undefined });
    syncChanged.length = 0;
    expect((await ack('tok-a1', a1.snapshots[0]!.version)).status).toBe(204);
    expect(syncChanged).toEqual(['a']);
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 1, rejected: 0, rejectReason: undefined });
    expect(distributor.routeSync('a', 'special')).toEqual({ desired: 1, synced: 1, rejected: 0, rejectReason: undefined });
    expect((await ack('tok-a2', a2.snapshots[0]!.version)).status).toBe(204);
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 2, rejected: 0, rejectReason: undefined });

    // A new version: the earlier ACKs no longer count, and an ACK of the old version is refused.
    kube.put(ROUTES, route('a', 'chat', { spec: { retry: { attempts: 2 } } }));
    await until(() => a1.snapshots.length === 2 && a2.snapshots.length === 2, 'the new version');
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 0, rejected: 0, rejectReason: undefined });
    syncChanged.length = 0;
    expect((await ack('tok-a1', a1.snapshots[0]!.version)).status).toBe(409);
    expect(syncChanged).toEqual([]);
    expect(distributor.routeSync('a', 'chat').synced).toBe(0);
    // Another pod cannot ACK for this one.
    expect((await ack('tok-b1', a1.snapshots[1]!.version)).status).toBe(409);
    expect(distributor.routeSync('a', 'chat').synced).toBe(0);
  });

  it('records a NACK with the first reason', async () => {
    const a1 = await connected('tok-a1');
    const a2 = await connected('tok-a2');
    expect((await ack('tok-a1', a1.snapshots[0]!.version, false, 'model "chat" is claimed twice')).status).toBe(204);
    await ack('tok-a2', a2.snapshots[0]!.version);
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 1, rejected: 1, rejectReason: 'pod a-1: model "chat" is claimed twice' });
    expect(distributor.routeSync('a', 'special')).toEqual({ desired: 1, synced: 0, rejected: 1, rejectReason: 'pod a-1: model "chat" is claimed twice' });
  });

  it('forgets a sidecar when its stream closes', async () => {
    const a1 = await connected('tok-a1');
    await connected('tok-a2');
    syncChanged.length = 0;
    a1.close();
    await until(() => distributor.connections.size === 1, 'the disconnect');
    expect(syncChanged).toEqual(['a']);
    expect(distributor.routeSync('a', 'chat').desired).toBe(1);
    expect(distributor.routeSync('a', 'special').desired).toBe(0);
  });

  it('closeAll ends every stream (sidecars reconnect to the new leader)', async () => {
    const a1 = await connected('tok-a1');
    const b1 = await connected('tok-b1');
    distributor.closeAll();
    await Promise.all([a1.ended, b1.ended]);
    await until(() => distributor.connections.size === 0, 'no connections');
  });

  it('refuses callers that are not authenticated, bodies that are invalid, and everything when not the leader', async () => {
    expect((await connect('tok-unknown')).status).toBe(401);
    expect((await ack('tok-unknown', 'v')).status).toBe(401);
    const bad = await post(base, ACK_PATH, 'tok-a1', { version: '', accepted: 'yes' });
    expect(bad.status).toBe(400);
    expect((bad.json as { error: { code: string } }).error.code).toBe('invalid_ack');
    leader = false;
    const refused = await connect('tok-a1');
    expect(refused.status).toBe(503);
    const answer = await ack('tok-a1', 'v');
    expect(answer.status).toBe(503);
    expect(answer.headers.get('retry-after')).toBe('1');
    expect((answer.json as { error: { code: string } }).error.code).toBe('not_leader');
    expect(distributor.connections.size).toBe(0);
  });

  it('answers a failed TokenReview (a long API error, answered chunked) with a clean 500', async () => {
    kube.fail({ match: (r) => r.resource === 'authentication.k8s.io/v1/tokenreviews', status: 500, message: 'etcd: '.repeat(600), times: 2 });
    for (const r of [await ack('tok-a1', 'v'), await post(base, TARGET_REPORT_PATH, 'tok-a1', { boot: 'b', targets: [] })]) {
      expect(r.status).toBe(500);
      expect(r.json).toEqual({ error: { message: 'internal error: the Kubernetes API answered 500', code: 'internal_error' } });
    }
    kube.fail({ match: (r) => r.resource === 'authentication.k8s.io/v1/tokenreviews', status: 500, message: 'etcd: '.repeat(600) });
    expect((await connect('tok-a1')).status).toBe(500);
  });

  it('passes per-target reports on with the reporting pod', async () => {
    const report = { boot: 'boot-1', targets: [{ route: 'chat', target: 'openai', requests: 3, successes: 2, errors: 1, cost: '1500' }] };
    expect((await post(base, TARGET_REPORT_PATH, 'tok-a1', report)).status).toBe(204);
    expect(reports).toEqual([{ pod: 'a/a-1', report }]);
    expect((await post(base, TARGET_REPORT_PATH, 'tok-a1', { boot: '' })).status).toBe(400);
  });
});
