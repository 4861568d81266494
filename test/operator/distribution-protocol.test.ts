import { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { Agent, fetch } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ACK_PATH, STREAM_PATH, TARGET_REPORT_PATH } from '../../crds/src/index.js';
import { TokenAuthenticator, type PodIdentity } from '../../operator/auth.js';
import { ClusterCache } from '../../operator/cache.js';
import { Distributor, type DistributorOptions } from '../../operator/distribution.js';
import { snapshotForPod } from '../../operator/snapshots.js';
import { FakeKube, PODS, ROUTES, SECRETS, until } from '../support/fake-kube.js';
import { openStream, pod, post, route, secret, type TestStream } from '../support/operator-fixtures.js';

let kube: FakeKube;
let cache: ClusterCache;
let distributor: Distributor;
let app: FastifyInstance;
let base: string;
let syncChanged: string[];
let logs: Array<Record<string, unknown>>;
const streams: TestStream[] = [];
const cleanups: Array<() => void> = [];

async function start(o: Partial<DistributorOptions> = {}): Promise<void> {
  const kc = kube.kubeConfig();
  distributor = new Distributor({
    authenticator: new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api), { now: Date.now }),
    snapshotFor: (id: PodIdentity) => snapshotForPod(cache, id.namespace, id.labels),
    isLeader: () => true,
    onNamespaceSyncChanged: (ns) => syncChanged.push(ns),
    logger: pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }),
    ...o,
  });
  cache.onNamespaceChanged((ns) => distributor.refresh(ns));
  app = Fastify();
  distributor.register(app);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
}

beforeEach(async () => {
  kube = await new FakeKube().start();
  kube.put(PODS, pod('a', 'a-1', 'uid-a1', { app: 'chat' }));
  kube.registerToken('tok-a1', { namespace: 'a', podName: 'a-1', podUid: 'uid-a1' });
  kube.registerToken('tok-gone', { namespace: 'a', podName: 'a-9', podUid: 'uid-a9' });
  kube.put(SECRETS, secret('a', 'openai', 'sk-a'));
  kube.put(ROUTES, route('a', 'chat'));
  cache = new ClusterCache(kube.kubeConfig(), pino({ level: 'silent' }));
  syncChanged = [];
  logs = [];
  await cache.start();
  await until(() => cache.secretKnown('a', 'openai'), 'secret lists');
});

afterEach(async () => {
  for (const s of streams.splice(0)) s.close();
  for (const c of cleanups.splice(0)) c();
  distributor?.stop();
  await app?.close();
  await cache.stop();
  await kube.stop();
});

async function connected(token: string, n = 1): Promise<TestStream> {
  const s = await openStream(base, token);
  streams.push(s);
  await until(() => s.snapshots.length >= n, 'the snapshot');
  return s;
}
const ack = (token: string, body: Record<string, unknown>) => post(base, ACK_PATH, token, body);
describe('Distributor: the wire protocol', () => {
  it('a stream is text/event-stream, uncached, and keeps itself alive with comments', async () => {
    await start({ keepaliveMs: 20 });
    const agent = new Agent();
    const controller = new AbortController();
    cleanups.push(() => {
      controller.abort();
      void agent.destroy();
    });
    const res = await fetch(`${base}${STREAM_PATH}`, { headers: { authorization: 'Bearer tok-a1' }, signal: controller.signal, dispatcher: agent });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(res.headers.get('cache-control')).toBe('no-cache');
    expect(res.headers.get('connection')).toBe('keep-alive');
    let text = '';
    const reader = (async () => {
      try {
        for await (const chunk of res.body as AsyncIterable<Uint8Array>) text += Buffer.from(chunk).toString('utf8');
      } catch {
        /* aborted */
      }
    })();
    await until(() => (text.match(/: keepalive\n\n/g) ?? []).length >= 2, 'two keepalives');
    expect(text).toMatch(/^event: snapshot\ndata: \{"snapshot":\{"version":"[0-9a-f]{16}",/);
    const events = text.split('\n\n').filter(Boolean);
    expect(events.slice(1).every((e) => e === ': keepalive')).toBe(true);
    controller.abort();
    await reader;
  });

  it('stop() ends every stream', async () => {
    await start({ keepaliveMs: 5 });
    const s = await connected('tok-a1');
    distributor.stop();
    await s.ended;
    await until(() => distributor.connections.size === 0, 'the close');
  });

  it('connecting counts as a sync change of the pod\'s namespace, and is logged with the pod', async () => {
    await start();
    await connected('tok-a1');
    await until(() => syncChanged.length === 1, 'the change');
    expect(syncChanged).toEqual(['a']);
    expect(logs.filter((l) => l.msg === 'sidecar connected').map((l) => l.pod)).toEqual(['a/a-1']);
    streams[0]!.close();
    await until(() => logs.some((l) => l.msg === 'sidecar disconnected'), 'the disconnect');
    expect(logs.filter((l) => l.msg === 'sidecar disconnected').map((l) => l.pod)).toEqual(['a/a-1']);
    expect(syncChanged).toEqual(['a', 'a']);
  });

  it('a 401 is "unauthenticated", a 403 "forbidden", each with the reason, and logged', async () => {
    await start();
    const unknown = await ack('tok-unknown', { version: 'v', accepted: true });
    expect(unknown).toMatchObject({ status: 401, json: { error: { message: 'token rejected: invalid bearer token', code: 'unauthenticated' } } });
    const gone = await ack('tok-gone', { version: 'v', accepted: true });
    expect(gone).toMatchObject({ status: 403, json: { error: { message: 'pod a/a-9 no longer exists', code: 'forbidden' } } });
    expect(logs.filter((l) => l.msg === 'sidecar refused').map((l) => [l.status, l.reason])).toEqual([
      [401, 'token rejected: invalid bearer token'],
      [403, 'pod a/a-9 no longer exists'],
    ]);
  });

  it('an invalid target report is a 400 "invalid_report" naming the field; without a report handler a valid one is still taken', async () => {
    await start({ onTargetReport: undefined });
    const bad = await post(base, TARGET_REPORT_PATH, 'tok-a1', { boot: 'b', targets: [{ route: 'r', target: 't', requests: -1, successes: 0, errors: 0, cost: '0' }] });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: { code: 'invalid_report' } });
    expect((bad.json as { error: { message: string } }).error.message).toMatch(/^targets\[0\]\.requests: /);
    expect((await post(base, TARGET_REPORT_PATH, 'tok-a1', { boot: 'b', targets: [] })).status).toBe(204);
  });

  it('an ACK goes to every stream of the pod holding that version; a NACK without a reason says "rejected" and is logged', async () => {
    await start();
    const one = await connected('tok-a1');
    const two = await connected('tok-a1');
    const version = one.snapshots[0]!.version;
    expect(two.snapshots[0]!.version).toBe(version);
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 0, rejected: 0, rejectReason: undefined });
    expect((await ack('tok-a1', { version, accepted: false })).status).toBe(204);
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 0, rejected: 2, rejectReason: 'pod a-1: rejected' });
    expect(logs.filter((l) => l.msg === 'sidecar rejected a snapshot').map((l) => [l.pod, l.version, l.reason])).toEqual([['a/a-1', version, undefined]]);
    expect((await ack('tok-a1', { version, accepted: true })).status).toBe(204);
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 2, synced: 2, rejected: 0, rejectReason: undefined });
    expect(logs.filter((l) => l.msg === 'sidecar rejected a snapshot')).toHaveLength(1);
  });

  it('routeSync counts only streams of the route\'s namespace whose snapshot carries it', async () => {
    await start();
    await connected('tok-a1');
    expect(distributor.routeSync('a', 'other')).toEqual({ desired: 0, synced: 0, rejected: 0, rejectReason: undefined });
    expect(distributor.routeSync('b', 'chat')).toEqual({ desired: 0, synced: 0, rejected: 0, rejectReason: undefined });
  });

  it('a refused caller reaches nothing: no stream, no ACK, no report handed on, no failure logged', async () => {
    const reports: unknown[] = [];
    let leader = true;
    await start({ onTargetReport: (id, r) => reports.push([id, r]), isLeader: () => leader });
    const own = await connected('tok-a1');
    const version = own.snapshots[0]!.version;
    const report = { boot: 'b', targets: [{ route: 'chat', target: 'openai', requests: 1, successes: 1, errors: 0, cost: '10' }] };
    const streamStatus = async (token: string) => {
      const s = await openStream(base, token);
      streams.push(s);
      return s.status;
    };
    for (const [token, status] of [['tok-unknown', 401], ['tok-gone', 403]] as const) {
      expect((await ack(token, { version, accepted: false })).status).toBe(status);
      expect((await post(base, TARGET_REPORT_PATH, token, report)).status).toBe(status);
      expect(await streamStatus(token)).toBe(status);
    }
    leader = false;
    expect((await ack('tok-a1', { version, accepted: false })).status).toBe(503);
    expect((await post(base, TARGET_REPORT_PATH, 'tok-a1', report)).status).toBe(503);
    expect(await streamStatus('tok-a1')).toBe(503);
    expect(reports).toEqual([]);
    expect(distributor.connections.size).toBe(1);
    expect(distributor.routeSync('a', 'chat')).toEqual({ desired: 1, synced: 0, rejected: 0, rejectReason: undefined });
    expect(logs.filter((l) => l.msg === 'sidecar call failed')).toEqual([]);
    expect(logs.filter((l) => l.msg === 'sidecar connected')).toHaveLength(1);
  });

  it('refresh(namespace) recomputes the snapshots of that namespace\'s streams only', async () => {
    kube.put(PODS, pod('b', 'b-1', 'uid-b1'));
    kube.registerToken('tok-b1', { namespace: 'b', podName: 'b-1', podUid: 'uid-b1' });
    const asked: string[] = [];
    await start({
      snapshotFor: (id: PodIdentity) => {
        asked.push(id.namespace);
        return snapshotForPod(cache, id.namespace, id.labels);
      },
    });
    await connected('tok-a1');
    await connected('tok-b1');
    asked.length = 0;
    distributor.refresh('a');
    expect(asked).toEqual(['a']);
    distributor.refresh('b');
    expect(asked).toEqual(['a', 'b']);
    distributor.refresh('c');
    expect(asked).toEqual(['a', 'b']);
  });
});
