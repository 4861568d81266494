import { CustomObjectsApi } from '@kubernetes/client-node';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Condition } from '../../crds/src/index.js';
import { ClusterCache } from '../../operator/cache.js';
import { RateLimitLedger } from '../../operator/ratelimit-ledger.js';
import { RateLimitStatusWriter } from '../../operator/ratelimit-status.js';
import { FakeKube, PROVIDER_QUOTAS, RATE_LIMITS, ROUTES, until, type KubeObject } from '../support/fake-kube.js';
import { TestClock, route, silent } from '../support/operator-fixtures.js';

let kube: FakeKube;
let clock: TestClock;
let cache: ClusterCache;
let leader: boolean;
let ledger: RateLimitLedger;
let writer: RateLimitStatusWriter;

const A1 = { pod: 'a-1', uid: 'uid-a1', boot: 'b1', namespace: 'a' };
const A2 = { pod: 'a-2', uid: 'uid-a2', boot: 'b1', namespace: 'a' };

function rateLimit(name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'paygo.dev/v1alpha1', kind: 'RateLimit', metadata: { name, namespace: 'a' }, spec };
}

function providerQuota(name: string, spec: Record<string, unknown> = {}): KubeObject {
  return { apiVersion: 'paygo.dev/v1alpha1', kind: 'ProviderQuota', metadata: { name, namespace: 'a' }, spec: { credentials: { secretRef: { name: 'openai', key: 'api-key' } }, limits: { tokensPerMinute: 30_000 }, ...spec } };
}

/** Puts an object and waits until the cache has this version of it. */
async function put(resource: string, obj: KubeObject): Promise<void> {
  kube.put(resource, obj);
  await synced(resource, obj.metadata.name!);
}

async function synced(resource: string, name: string): Promise<void> {
  const list = resource === RATE_LIMITS ? cache.rateLimits : resource === PROVIDER_QUOTAS ? cache.providerQuotas : cache.routes;
  await until(() => list.get(name, 'a')?.metadata?.resourceVersion === kube.get(resource, 'a', name)?.metadata.resourceVersion, 'the cache');
}

const status = (resource: string, name: string) => kube.get(resource, 'a', name)?.status as { observedGeneration?: number; conditions?: Condition[]; limits?: unknown[]; targets?: number } | undefined;
const ready = (resource: string, name: string) => status(resource, name)?.conditions?.find((c) => c.type === 'Ready');
const writes = (resource?: string) => kube.calls({ verb: 'update', subresource: 'status' }).filter((w) => resource === undefined || w.resource === resource);

/** One tick, then the cache catches up with what it wrote. */
async function tick(): Promise<void> {
  await writer.tick();
  for (const [resource, list] of [
    [RATE_LIMITS, cache.rateLimits],
    [PROVIDER_QUOTAS, cache.providerQuotas],
  ] as const)
    for (const o of list.list('a')) await synced(resource, o.metadata!.name!);
}

beforeEach(async () => {
  kube = await new FakeKube().start();
  clock = new TestClock();
  kube.put(ROUTES, route('a', 'chat', { secrets: ['openai', 'other'] }));
  kube.put(ROUTES, route('a', 'batch', { secrets: ['openai'] }));
  kube.put(ROUTES, route('a', 'anthropic', { spec: { targets: [{ name: 'c', provider: 'anthropic', model: 'claude-sonnet-4', credentials: { secretRef: { name: 'openai', key: 'api-key' } } }] } }));
  kube.put(ROUTES, route('a', 'broken', { spec: { strategy: 'nonsense' } }));
  cache = new ClusterCache(kube.kubeConfig(), silent);
  await cache.start();
  leader = true;
  ledger = new RateLimitLedger({ now: clock.nowMs });
  writer = new RateLimitStatusWriter({
    cache,
    custom: kube.kubeConfig().makeApiClient(CustomObjectsApi),
    ledger,
    isLeader: () => leader,
    now: clock.nowMs,
    logger: silent,
    fieldManager: 'fm-test',
  });
});

afterEach(async () => {
  writer.stop();
  await cache.stop();
  await kube.stop();
});

describe('RateLimitStatusWriter', () => {
  it('limits[]: the limit, the fleet use over the last window from the reported rates, what the pool holds; Ready, observedGeneration', async () => {
    await put(RATE_LIMITS, rateLimit('team', { limits: { requestsPerMinute: 600, tokensPerDay: 1_000_000 } }));
    // One process uses 600 requests a minute for 10 s, then ends keeping 300 (its share stays until it expires at 15 s).
    ledger.answer({ limit: 600, windowMs: 60_000 }, A1, 'rl/a/team', 'requestsPerMinute', { seq: 1, used: 600, demand: 0, keep: 0 });
    await tick();
    for (let i = 0; i < 10; i++) {
      clock.advance(1_000);
      await writer.tick();
    }
    ledger.answer({ limit: 600, windowMs: 60_000 }, A1, 'rl/a/team', 'requestsPerMinute', { seq: 2, used: 600, demand: 0, keep: 300, final: true });
    for (let i = 0; i < 20; i++) {
      clock.advance(1_000);
      await writer.tick();
    }
    await synced(RATE_LIMITS, 'team');
    const s = status(RATE_LIMITS, 'team')!;
    expect(s.observedGeneration).toBe(1);
    expect(s.limits).toEqual([
      // 600/min for the 15 s its rate counted; the pool refills 300/min from 10 s on: 100 at 30 s.
      { resource: 'requests', window: 'minute', limit: 600, used: 150, remaining: 100 },
      { resource: 'tokens', window: 'day', limit: 1_000_000, used: 0, remaining: 1_000_000 },
    ]);
    expect(ready(RATE_LIMITS, 'team')).toMatchObject({ status: 'True', reason: 'Enforcing', observedGeneration: 1 });
    // The use leaves the window a minute later.
    for (let i = 0; i < 60; i++) {
      clock.advance(1_000);
      await writer.tick();
    }
    await synced(RATE_LIMITS, 'team');
    expect(status(RATE_LIMITS, 'team')!.limits![0]).toEqual({ resource: 'requests', window: 'minute', limit: 600, used: 0, remaining: 300 });
  });

  it('ProviderQuota: targets it selects in valid ModelRoutes (secret key, optional provider); two holders share the limit', async () => {
    await put(PROVIDER_QUOTAS, providerQuota('openai-key'));
    await put(PROVIDER_QUOTAS, providerQuota('openai-only', { provider: 'openai', limits: { requestsPerMinute: 100, tokensPerMinute: 10_000 } }));
    ledger.answer({ limit: 30_000, windowMs: 60_000 }, A1, 'pq/a/openai-key', 'tokensPerMinute', { seq: 1, used: 6_000, demand: 0, keep: 0 });
    ledger.answer({ limit: 30_000, windowMs: 60_000 }, A2, 'pq/a/openai-key', 'tokensPerMinute', { seq: 1, used: 6_000, demand: 0, keep: 0 });
    // 12,000 tokens a minute together, for 10 s; they hold the whole limit between them.
    await tick();
    for (let i = 0; i < 5; i++) {
      clock.advance(1_000);
      await writer.tick();
    }
    clock.advance(5_000);
    await tick();
    expect(status(PROVIDER_QUOTAS, 'openai-key')).toMatchObject({ targets: 3, limits: [{ resource: 'tokens', window: 'minute', limit: 30_000, used: 2_000, remaining: 0 }] });
    expect(status(PROVIDER_QUOTAS, 'openai-only')).toMatchObject({
      targets: 2,
      limits: [
        { resource: 'requests', window: 'minute', limit: 100, used: 0, remaining: 100 },
        { resource: 'tokens', window: 'minute', limit: 10_000, used: 0, remaining: 10_000 },
      ],
    });
    expect(ready(PROVIDER_QUOTAS, 'openai-only')!.message).toBe('the limits are enforced across the fleet on 2 targets');
  });

  it('Invalid: Ready=False naming the field, no limits; valid again: Enforcing', async () => {
    await put(RATE_LIMITS, rateLimit('bad', { scope: { serviceAccounts: ['Not_A_Name'] }, limits: { requestsPerMinute: 10 } }));
    await tick();
    expect(ready(RATE_LIMITS, 'bad')).toMatchObject({ status: 'False', reason: 'Invalid', observedGeneration: 1 });
    expect(ready(RATE_LIMITS, 'bad')!.message).toContain('spec.scope.serviceAccounts');
    expect(ready(RATE_LIMITS, 'bad')!.message).toContain('(the RateLimit is not enforced)');
    expect(status(RATE_LIMITS, 'bad')!.limits).toBeUndefined();
    await put(RATE_LIMITS, rateLimit('bad', { scope: { serviceAccounts: ['web'] }, limits: { requestsPerMinute: 10 } }));
    clock.advance(5_000);
    await tick();
    expect(ready(RATE_LIMITS, 'bad')).toMatchObject({ status: 'True', reason: 'Enforcing', observedGeneration: 2 });
    expect(status(RATE_LIMITS, 'bad')).toMatchObject({ observedGeneration: 2, limits: [{ resource: 'requests', limit: 10, used: 0, remaining: 10 }] });
  });

  it('no write when nothing changed; a change is written at most once per interval', async () => {
    await put(RATE_LIMITS, rateLimit('team', { limits: { requestsPerMinute: 600 } }));
    await put(PROVIDER_QUOTAS, providerQuota('openai-key'));
    await tick();
    expect(writes().length).toBe(2);
    for (let i = 0; i < 10; i++) {
      clock.advance(1_000);
      await tick();
    }
    expect(writes().length).toBe(2);
    // A use rate changes `used` every tick: one write per 5 s.
    ledger.answer({ limit: 600, windowMs: 60_000 }, A1, 'rl/a/team', 'requestsPerMinute', { seq: 1, used: 60, demand: 0, keep: 0 });
    for (let i = 0; i < 10; i++) {
      clock.advance(1_000);
      await tick();
    }
    expect(writes(RATE_LIMITS).length).toBe(3);
    expect(writes(PROVIDER_QUOTAS).length).toBe(1);
  });

  it('leader only; nothing after stop()', async () => {
    await put(RATE_LIMITS, rateLimit('team', { limits: { requestsPerMinute: 600 } }));
    leader = false;
    await tick();
    expect(writes()).toEqual([]);
    leader = true;
    writer.stop();
    await tick();
    expect(writes()).toEqual([]);
  });

  it('a 409 re-reads the object and writes again; another error is logged and retried at a later tick', async () => {
    await put(RATE_LIMITS, rateLimit('team', { limits: { requestsPerMinute: 600 } }));
    kube.fail({ match: (r) => r.subresource === 'status', status: 409 });
    await tick();
    expect(writes().map((w) => w.status)).toEqual([409, 200]);
    expect(kube.calls({ verb: 'get', resource: RATE_LIMITS, name: 'team' }).length).toBe(1);
    expect(ready(RATE_LIMITS, 'team')).toMatchObject({ status: 'True', reason: 'Enforcing' });

    await put(RATE_LIMITS, rateLimit('team', { limits: { requestsPerMinute: 60 } }));
    kube.fail({ match: (r) => r.subresource === 'status', status: 500 });
    clock.advance(5_000);
    await tick();
    expect(writes().map((w) => w.status)).toEqual([409, 200, 500]);
    clock.advance(5_000);
    await tick();
    expect(writes().map((w) => w.status)).toEqual([409, 200, 500, 200]);
    expect(status(RATE_LIMITS, 'team')).toMatchObject({ observedGeneration: 2, limits: [{ limit: 60 }] });
  });
});
