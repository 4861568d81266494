import { AuthenticationV1Api, CoreV1Api } from '@kubernetes/client-node';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { RATELIMIT_SYNC_PATH, type RateLimitSyncResponse } from '../../crds/src/index.js';
import { TokenAuthenticator } from '../../operator/auth.js';
import { ClusterCache } from '../../operator/cache.js';
import { RateLimitService, limitFor } from '../../operator/ratelimits.js';
import { FakeKube, PODS, PROVIDER_QUOTAS, RATE_LIMITS, ROUTES, type KubeObject } from '../support/fake-kube.js';
import { TestClock, pod, post, route, silent } from '../support/operator-fixtures.js';

let kube: FakeKube;
let clock: TestClock;
let cache: ClusterCache;
let leader: boolean;
let svc: RateLimitService;
let app: FastifyInstance;
let base: string;

function rateLimit(namespace: string, name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'paygo.dev/v1alpha1', kind: 'RateLimit', metadata: { name, namespace }, spec };
}

function providerQuota(namespace: string, name: string, limits: Record<string, number>): KubeObject {
  return { apiVersion: 'paygo.dev/v1alpha1', kind: 'ProviderQuota', metadata: { name, namespace }, spec: { credentials: { secretRef: { name: 'openai', key: 'api-key' } }, limits } };
}

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  kube.put(PODS, pod('a', 'a-1', 'uid-a1', { app: 'chat' }));
  kube.put(PODS, pod('a', 'a-2', 'uid-a2', { app: 'batch' }));
  kube.put(PODS, pod('b', 'b-1', 'uid-b1', { app: 'chat' }));
  kube.registerToken('tok-a1', { namespace: 'a', podName: 'a-1', podUid: 'uid-a1', serviceAccount: 'chat' });
  kube.registerToken('tok-a2', { namespace: 'a', podName: 'a-2', podUid: 'uid-a2' });
  kube.registerToken('tok-b1', { namespace: 'b', podName: 'b-1', podUid: 'uid-b1', serviceAccount: 'chat' });
  kube.put(RATE_LIMITS, rateLimit('a', 'team', { limits: { requestsPerMinute: 600, tokensPerDay: 1_000_000 } }));
  kube.put(RATE_LIMITS, rateLimit('a', 'chat-only', { scope: { podSelector: { matchLabels: { app: 'chat' } } }, limits: { requestsPerMinute: 100 } }));
  kube.put(RATE_LIMITS, rateLimit('a', 'sa-only', { scope: { serviceAccounts: ['chat'] }, limits: { tokensPerMinute: 5_000 } }));
  kube.put(PROVIDER_QUOTAS, providerQuota('a', 'openai-key', { tokensPerMinute: 30_000 }));
  kube.put(ROUTES, route('a', 'chat', { podSelector: { app: 'chat' }, spec: { targets: [{ name: 'primary', provider: 'openai', model: 'gpt-4o-mini', credentials: { secretRef: { name: 'openai', key: 'api-key' } }, quota: { requestsPerMinute: 60 } }] } }));
  cache = new ClusterCache(kube.kubeConfig(), silent);
  await cache.start();
  leader = true;
  const kc = kube.kubeConfig();
  svc = new RateLimitService({
    cache,
    authenticator: new TokenAuthenticator(kc.makeApiClient(AuthenticationV1Api), kc.makeApiClient(CoreV1Api), { now: clock.nowMs }),
    isLeader: () => leader,
    now: clock.nowMs,
    logger: silent,
  });
  app = Fastify();
  svc.register(app);
  base = await app.listen({ host: '127.0.0.1', port: 0 });
});

afterEach(async () => {
  svc.stop();
  await app.close();
  await cache.stop();
  await kube.stop();
});

type E = { key: string; field: string; used?: number; demand?: number; keep?: number };
const body = (seq: number, entries: E[], boot = 'boot-1') => ({ boot, seq, entries: entries.map((e) => ({ used: 0, demand: 0, keep: 0, ...e })) });

async function sync(token: string, seq: number, entries: E[], boot?: string) {
  const r = await post(base, RATELIMIT_SYNC_PATH, token, body(seq, entries, boot));
  return { status: r.status, entries: (r.json as RateLimitSyncResponse | undefined)?.entries, json: r.json };
}

describe('RateLimitService', () => {
  it('grants shares of the limits that apply to the pod, with the expiry', async () => {
    const r = await sync('tok-a1', 1, [
      { key: 'rl/a/team', field: 'requestsPerMinute' },
      { key: 'rl/a/team', field: 'tokensPerDay' },
      { key: 'pq/a/openai-key', field: 'tokensPerMinute' },
      { key: 'tq/a/chat/primary', field: 'requestsPerMinute' },
    ]);
    expect(r.status).toBe(200);
    const expires = new Date(clock.ms + 15_000).toISOString();
    expect(r.entries).toEqual([
      { key: 'rl/a/team', field: 'requestsPerMinute', share: 600, target: 600, credit: 600, expires },
      { key: 'rl/a/team', field: 'tokensPerDay', share: 1_000_000, target: 1_000_000, credit: 1_000_000, expires },
      { key: 'pq/a/openai-key', field: 'tokensPerMinute', share: 30_000, target: 30_000, credit: 30_000, expires },
      { key: 'tq/a/chat/primary', field: 'requestsPerMinute', share: 60, target: 60, credit: 60, expires },
    ]);
    expect(svc.ledger.get('rl/a/team', 'tokensPerDay')!.windowMs).toBe(86_400_000);
  });

  it('two pods share a limit: the second gets only what is free, the first is told to lower', async () => {
    await sync('tok-a1', 1, [{ key: 'rl/a/team', field: 'requestsPerMinute', used: 600 }]);
    const second = await sync('tok-a2', 1, [{ key: 'rl/a/team', field: 'requestsPerMinute', demand: 600 }]);
    expect(second.entries![0]).toMatchObject({ share: 0, target: 30 + 270 });
    const first = await sync('tok-a1', 2, [{ key: 'rl/a/team', field: 'requestsPerMinute', used: 600, keep: 600 }]);
    expect(first.entries![0]).toMatchObject({ share: 600, target: 300 });
    await sync('tok-a1', 3, [{ key: 'rl/a/team', field: 'requestsPerMinute', used: 600, keep: 300 }]);
    expect((await sync('tok-a2', 2, [{ key: 'rl/a/team', field: 'requestsPerMinute', demand: 600 }])).entries![0]).toMatchObject({ share: 300 });
  });

  it('scope: another namespace, a podSelector or serviceAccounts that leave the pod out, an unknown field or target: nothing', async () => {
    const none = { share: 0, target: 0, credit: 0 };
    const r = await sync('tok-a2', 1, [
      { key: 'rl/a/chat-only', field: 'requestsPerMinute' },
      { key: 'rl/a/sa-only', field: 'tokensPerMinute' },
      { key: 'tq/a/chat/primary', field: 'requestsPerMinute' },
      { key: 'rl/a/team', field: 'tokensPerMinute' },
      { key: 'rl/a/missing', field: 'requestsPerMinute' },
    ]);
    expect(r.entries!.map(({ share, target, credit }) => ({ share, target, credit }))).toEqual([none, none, none, none, none]);
    const b = await sync('tok-b1', 1, [
      { key: 'rl/a/team', field: 'requestsPerMinute' },
      { key: 'pq/a/openai-key', field: 'tokensPerMinute' },
    ]);
    expect(b.entries!.map((e) => e.share)).toEqual([0, 0]);
    // The pod they do select.
    const a1 = await sync('tok-a1', 1, [
      { key: 'rl/a/chat-only', field: 'requestsPerMinute' },
      { key: 'rl/a/sa-only', field: 'tokensPerMinute' },
      { key: 'tq/a/chat/secondary', field: 'requestsPerMinute' },
    ]);
    expect(a1.entries!.map((e) => e.share)).toEqual([100, 5_000, 0]);
    expect(svc.ledger.entries.size).toBe(2);
  });

  it('refuses unauthenticated callers (401), invalid bodies and keys (400), and serves nothing unless leader (503 not_leader)', async () => {
    expect((await sync('tok-nobody', 1, [{ key: 'rl/a/team', field: 'requestsPerMinute' }])).status).toBe(401);
    expect((await post(base, RATELIMIT_SYNC_PATH, 'tok-a1', { boot: 'x', seq: 0, entries: [] })).status).toBe(400);
    const bad = await post(base, RATELIMIT_SYNC_PATH, 'tok-a1', body(1, [{ key: 'xx/a/team', field: 'requestsPerMinute' }]));
    expect(bad.status).toBe(400);
    expect((bad.json as { error: { code: string } }).error.code).toBe('invalid_sync');
    leader = false;
    const r = await post(base, RATELIMIT_SYNC_PATH, 'tok-a1', body(1, [{ key: 'rl/a/team', field: 'requestsPerMinute' }]));
    expect(r.status).toBe(503);
    expect(r.headers.get('retry-after')).toBe('1');
    expect((r.json as { error: { code: string } }).error.code).toBe('not_leader');
    expect(svc.ledger.entries.size).toBe(0);
  });

  it('after lead(): adopts what sidecars keep, grants nothing new until the quiet period is over', async () => {
    svc.lead();
    expect((await sync('tok-a1', 1, [{ key: 'rl/a/team', field: 'requestsPerMinute', keep: 250 }])).entries![0]).toMatchObject({ share: 250, credit: 0 });
    expect((await sync('tok-a2', 1, [{ key: 'rl/a/team', field: 'requestsPerMinute', demand: 100 }])).entries![0]).toMatchObject({ share: 0 });
    clock.advance(20_000);
    expect((await sync('tok-a2', 2, [{ key: 'rl/a/team', field: 'requestsPerMinute', demand: 100 }])).entries![0]).toMatchObject({ share: 350, target: 570, credit: 0 });
  });

  it('limitFor follows the cache: a changed limit applies to the next sync', async () => {
    const id = { namespace: 'a', serviceAccount: 'default', podName: 'a-2', podUid: 'uid-a2', labels: { app: 'batch' } };
    expect(limitFor(cache, id, 'rl/a/team', 'requestsPerMinute')).toEqual({ limit: 600, windowMs: 60_000 });
    kube.put(RATE_LIMITS, rateLimit('a', 'team', { limits: { requestsPerMinute: 60 } }));
    await until(() => limitFor(cache, id, 'rl/a/team', 'requestsPerMinute')?.limit === 60);
    expect(limitFor(cache, id, 'rl/a/team', 'tokensPerDay')).toBeUndefined();
  });
});

async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  expect(cond()).toBe(true);
}

describe('RateLimitService: provider backoffs', () => {
  const KEY_A = 'a/secret/openai/api-key/openai/gpt-4o-mini';
  type B = { key: string; ms: number; resource?: string };
  async function syncBackoffs(token: string, seq: number, backoffs?: unknown, boot = 'boot-1') {
    const r = await post(base, RATELIMIT_SYNC_PATH, token, { boot, seq, entries: [], ...(backoffs === undefined ? {} : { backoffs }) });
    return { status: r.status, json: r.json as RateLimitSyncResponse & { backoffs?: B[] } };
  }

  it('a backoff one sidecar reports reaches every sidecar of its namespace in its next sync, and none of another namespace', async () => {
    const first = await syncBackoffs('tok-a1', 1, [{ key: KEY_A, ms: 20_000, resource: 'requests' }]);
    expect(first.status).toBe(200);
    expect(first.json.backoffs).toEqual([{ key: KEY_A, ms: 20_000, resource: 'requests' }]);
    clock.advance(2_000);
    // An older sidecar sends no backoffs: it is answered as before, the field beside (it ignores it).
    const other = await syncBackoffs('tok-a2', 1);
    expect(other.status).toBe(200);
    expect(other.json).toEqual({ entries: [], backoffs: [{ key: KEY_A, ms: 18_000, resource: 'requests' }] });
    expect((await syncBackoffs('tok-b1', 1)).json).toEqual({ entries: [] });
  });

  it('merges: the latest until wins, a shorter report does not shorten it, 60 s at most; ended ones are not handed back', async () => {
    await syncBackoffs('tok-a1', 1, [{ key: KEY_A, ms: 10_000 }]);
    await syncBackoffs('tok-a1', 2, [{ key: KEY_A, ms: 2_000, resource: 'tokens' }]);
    expect((await syncBackoffs('tok-a2', 1)).json.backoffs).toEqual([{ key: KEY_A, ms: 10_000, resource: 'any' }]);
    await syncBackoffs('tok-a1', 3, [{ key: KEY_A, ms: 3_600_000 }]);
    expect((await syncBackoffs('tok-a2', 2)).json.backoffs).toEqual([{ key: KEY_A, ms: 60_000, resource: 'any' }]);
    clock.advance(60_000);
    expect((await syncBackoffs('tok-a2', 3)).json.backoffs).toBeUndefined();
  });

  it('keeps only backoffs of credentials the pod calls with (its namespace, routes that select it); another namespace’s key never leaks', async () => {
    kube.put(ROUTES, route('b', 'chat', { spec: { targets: [{ name: 'primary', provider: 'openai', model: 'gpt-4o-mini', credentials: { secretRef: { name: 'openai', key: 'api-key' } } }] } }));
    await until(() => cache.routes.list('b').length === 1);
    const r = await syncBackoffs('tok-a1', 1, [
      { key: 'b/secret/openai/api-key/openai/gpt-4o-mini', ms: 20_000 }, // another namespace
      { key: 'a/secret/stolen/api-key/openai/gpt-4o-mini', ms: 20_000 }, // no route uses it
      { key: 'a/secret/openai/api-key/openai/gpt-4o', ms: 20_000 }, // another model
      { key: 'a/target/chat/primary', ms: 20_000 }, // that target has credentials
    ]);
    expect(r.json.backoffs).toBeUndefined();
    // a-2's labels are not selected by route a/chat: it cannot report its key.
    expect((await syncBackoffs('tok-a2', 1, [{ key: KEY_A, ms: 20_000 }])).json.backoffs).toBeUndefined();
    // b-1 reports its own namespace's key: namespace a does not hear of it.
    expect((await syncBackoffs('tok-b1', 1, [{ key: 'b/secret/openai/api-key/openai/gpt-4o-mini', ms: 20_000 }])).json.backoffs).toEqual([
      { key: 'b/secret/openai/api-key/openai/gpt-4o-mini', ms: 20_000, resource: 'any' },
    ]);
    expect((await syncBackoffs('tok-a1', 2)).json.backoffs).toBeUndefined();
    expect(svc.backoffs.size).toBe(1);
  });

  it('a backoffs field it cannot read never fails the share sync', async () => {
    const r = await post(base, RATELIMIT_SYNC_PATH, 'tok-a1', { boot: 'boot-1', seq: 1, entries: [{ key: 'rl/a/team', field: 'requestsPerMinute', used: 0, demand: 0, keep: 0 }], backoffs: { v: 3 } });
    expect(r.status).toBe(200);
    expect((r.json as RateLimitSyncResponse).entries[0]).toMatchObject({ share: 600 });
    const some = await syncBackoffs('tok-a1', 2, [{ key: KEY_A, ms: 5_000, resource: 'centuries' }, { key: KEY_A, ms: 4_000 }]);
    expect(some.json.backoffs).toEqual([{ key: KEY_A, ms: 4_000, resource: 'any' }]);
  });
});
