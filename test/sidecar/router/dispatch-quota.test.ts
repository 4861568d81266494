import { describe, expect, it } from 'vitest';
import { Cancel } from '../../../sidecar/cancel.js';
import { ApiError, invalidRequest } from '../../../sidecar/errors.js';
import { UpstreamHttpError } from '../../../sidecar/providers/errors.js';
import { TokenBucket } from '../../../sidecar/ratelimit/bucket.js';
import { ProviderQuotaGate } from '../../../sidecar/ratelimit/holds.js';
import { RateLimiter, type Limit } from '../../../sidecar/ratelimit/limits.js';
import { ProviderBackoffs } from '../../../sidecar/ratelimit/provider-backoffs.js';
import { dispatch, MAX_QUOTA_WAIT_MS, type DispatchOptions } from '../../../sidecar/router/dispatch.js';
import type { RuntimeTarget } from '../../../sidecar/router/runtime.js';
import { testRoute, testTarget } from '../../support/runtime.js';

/**
 * Provider quotas (and provider backoffs) in dispatch: skipped like an open circuit, a bounded
 * wait when none has room, then 429.
 */
function harness(perMinute: Record<string, number>) {
  let now = 0;
  const sleeps: number[] = [];
  const events: string[] = [];
  const buckets: Record<string, Limit> = {};
  for (const [name, n] of Object.entries(perMinute)) buckets[name] = { kind: 'provider', name: `default/r/${name}`, resource: 'requests', window: 'minute', ceiling: n, bucket: new TokenBucket(n, 60_000, 0) };
  const backoffs = new ProviderBackoffs(() => now);
  const limiter = new RateLimiter(() => now, { onLimited: (l, reason) => events.push(`${reason} ${l.name}`) }, undefined, backoffs);
  (limiter as unknown as { target: (t: RuntimeTarget) => Limit[] | undefined }).target = (t) => (buckets[t.name] ? [buckets[t.name]!] : undefined);
  const gate = () => new ProviderQuotaGate(limiter, { inputTokens: 10, outputTokens: 10 });
  const o = (): DispatchOptions => ({
    signal: new Cancel(),
    now: () => now,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
    unitPrice: () => undefined,
    quota: gate(),
    hooks: { onFailover: (_r, t, k) => events.push(`failover ${t.name} ${k}`) },
  });
  return { o, sleeps, events, buckets, backoffs, advance: (ms: number) => (now += ms) };
}

const left = (l: Limit) => l.bucket.available(0);

describe('dispatch with provider quotas', () => {
  it('takes one request from the target it sends to', async () => {
    const h = harness({ a: 2 });
    const out = await dispatch(testRoute([testTarget('a')]), async (t) => t.name, h.o());
    expect(out.value).toBe('a');
    expect(left(h.buckets.a!)).toBe(1);
  });

  it('skips a target without room like an open circuit: the next one serves', async () => {
    const h = harness({ a: 1 });
    const r = testRoute([testTarget('a'), testTarget('b')]);
    await dispatch(r, async (t) => t.name, h.o());
    const out = await dispatch(r, async (t) => t.name, h.o());
    expect(out).toMatchObject({ value: 'b', attempts: 1 });
    expect(h.events).toEqual(['failed_over default/r/a']);
    expect(h.sleeps).toEqual([]);
  });

  it('waits for the soonest quota when no target has room (within MAX_QUOTA_WAIT_MS), then sends', async () => {
    const h = harness({ a: 60, b: 30 });
    h.buckets.a!.bucket.take(60, 0);
    h.buckets.b!.bucket.take(30, 0);
    const out = await dispatch(testRoute([testTarget('a'), testTarget('b')]), async (t) => t.name, h.o());
    expect(out.value).toBe('a'); // a refills 1 request per second, b one per 2 s
    expect(h.sleeps).toEqual([1_000]);
    expect(h.events).toEqual(['failed_over default/r/a', 'waited default/r/a']);
  });

  it('answers 429 rate_limit_exceeded with Retry-After when the wait would be longer than the cap', async () => {
    const h = harness({ a: 10 });
    h.buckets.a!.bucket.take(10, 0); // one request per 6 s
    expect(MAX_QUOTA_WAIT_MS).toBe(2_000);
    const err = await dispatch(testRoute([testTarget('a')]), async (t) => t.name, h.o()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(429);
    expect((err as ApiError).code).toBe('rate_limit_exceeded');
    expect((err as ApiError).headers).toEqual({ 'retry-after': '6', 'retry-after-ms': '6000' });
    expect(h.sleeps).toEqual([]);
    expect(h.events).toEqual(['limited default/r/a']);
  });

  it('answers 429 when the wait would pass the route deadline', async () => {
    const h = harness({ a: 60 });
    h.buckets.a!.bucket.take(60, 0);
    const err = await dispatch(testRoute([testTarget('a')], { totalTimeoutMs: 500 }), async (t) => t.name, h.o()).catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(429);
    expect(h.sleeps).toEqual([]);
  });

  it('waits once only: a quota taken again meanwhile is a 429', async () => {
    const h = harness({ a: 60 });
    h.buckets.a!.bucket.take(60, 0);
    const o = h.o();
    const sleep = o.sleep;
    o.sleep = async (ms, s) => {
      await sleep(ms, s);
      h.buckets.a!.bucket.take(1, ms); // someone else got there first
    };
    const err = await dispatch(testRoute([testTarget('a')]), async (t) => t.name, o).catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(429);
    expect(h.sleeps).toEqual([1_000]);
    expect(h.events).toEqual(['waited default/r/a', 'limited default/r/a']);
  });

  it('a failed attempt keeps its request counted; a retry needs room again', async () => {
    const h = harness({ a: 1 });
    const calls: string[] = [];
    const out = await dispatch(
      testRoute([testTarget('a'), testTarget('b')], { attempts: 2, initialBackoffMs: 10, maxBackoffMs: 100 }),
      async (t) => {
        calls.push(t.name);
        if (t.name === 'a') throw new UpstreamHttpError(500, 'down', undefined);
        return t.name;
      },
      h.o(),
    );
    expect(out.value).toBe('b');
    expect(calls).toEqual(['a', 'b']); // no room for a's retry after its 5 ms backoff
    expect(h.sleeps).toEqual([5]);
    expect(h.buckets.a!.bucket.remaining(5)).toBe(0);
  });

  it('a target that refused the request before sending (translate) gives its request back', async () => {
    const h = harness({ a: 1 });
    await dispatch(
      testRoute([testTarget('a'), testTarget('b')]),
      async (t) => {
        if (t.name === 'a') throw invalidRequest('no', 'x', 'unsupported_parameter');
        return t.name;
      },
      h.o(),
    );
    expect(left(h.buckets.a!)).toBe(1);
  });

  it('an upstream failure with no quota shortage answers as before', async () => {
    const h = harness({ a: 5 });
    const err = await dispatch(testRoute([testTarget('a')], { attempts: 1 }), async () => {
      throw new UpstreamHttpError(500, 'down', undefined);
    }, h.o()).catch((e: unknown) => e);
    expect((err as ApiError).code).toBe('upstream_failed');
  });
});

/** Provider backoffs take the same path, keyed by credential. */
const KEY = 'default/secret/openai/api-key/openai/gpt-4o';

describe('dispatch with provider backoffs', () => {
  it('skips a target whose credential backs off (and every other target with that key): the next one serves, nothing is sent to it', async () => {
    const h = harness({});
    h.backoffs.observe(KEY, 429, { 'retry-after': '20' });
    const calls: string[] = [];
    const out = await dispatch(
      testRoute([testTarget('a', { backoffKey: KEY }), testTarget('a2', { backoffKey: KEY }), testTarget('b')]),
      async (t) => {
        calls.push(t.name);
        return t.name;
      },
      h.o(),
    );
    expect(out).toMatchObject({ value: 'b', attempts: 1 });
    expect(calls).toEqual(['b']);
    expect(h.events).toEqual([`failed_over ${KEY}`, `failed_over ${KEY}`]);
    expect(h.sleeps).toEqual([]);
  });

  it('when no target has room: waits once for the soonest if within MAX_QUOTA_WAIT_MS and the deadline, then sends', async () => {
    const h = harness({});
    h.backoffs.observe(KEY, 200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1.5s' });
    h.backoffs.observe('default/target/r/b', 429, { 'retry-after': '30' });
    const out = await dispatch(testRoute([testTarget('a', { backoffKey: KEY }), testTarget('b')]), async (t) => t.name, h.o());
    expect(out.value).toBe('a');
    expect(h.sleeps).toEqual([1_500]);
    expect(h.events).toEqual([`failed_over ${KEY}`, `waited ${KEY}`]);
  });

  it('otherwise 429 rate_limit_exceeded with the time the provider named, and nothing is sent', async () => {
    const h = harness({});
    h.backoffs.observe(KEY, 429, { 'retry-after': '20' });
    let sent = 0;
    const err = await dispatch(testRoute([testTarget('a', { backoffKey: KEY })]), async (t) => {
      sent++;
      return t.name;
    }, h.o()).catch((e: unknown) => e);
    expect(sent).toBe(0);
    expect(err).toBeInstanceOf(ApiError);
    expect([(err as ApiError).status, (err as ApiError).code, (err as ApiError).headers]).toEqual([429, 'rate_limit_exceeded', { 'retry-after': '20', 'retry-after-ms': '20000' }]);
    expect(h.events).toEqual([`limited ${KEY}`]);
  });

  it('a wait that would pass the route deadline is a 429 at once', async () => {
    const h = harness({});
    h.backoffs.observe(KEY, 429, { 'retry-after': '1' });
    const err = await dispatch(testRoute([testTarget('a', { backoffKey: KEY })], { totalTimeoutMs: 500 }), async (t) => t.name, h.o()).catch((e: unknown) => e);
    expect((err as ApiError).status).toBe(429);
    expect(h.sleeps).toEqual([]);
  });

  it('a 429 with a long Retry-After during the request: its target is failed over, and so is the next target with the same key', async () => {
    const h = harness({});
    const calls: string[] = [];
    const out = await dispatch(
      testRoute([testTarget('a', { backoffKey: KEY }), testTarget('a2', { backoffKey: KEY }), testTarget('b')], { attempts: 2 }),
      async (t) => {
        calls.push(t.name);
        if (t.name === 'a') {
          h.backoffs.observe(KEY, 429, { 'retry-after': '30' }); // what sendUpstream does with the answer's headers
          throw new UpstreamHttpError(429, 'slow down', 30_000);
        }
        return t.name;
      },
      h.o(),
    );
    expect(out.value).toBe('b');
    expect(calls).toEqual(['a', 'b']);
  });

  it('a target both backing off and out of quota: nothing is taken, and the longer of the two is the one waited for or named', async () => {
    const h = harness({ a: 60 });
    h.buckets.a!.bucket.take(60, 0); // one request back per second
    h.backoffs.observe(KEY, 429, { 'retry-after-ms': '300' });
    const a = testTarget('a', { backoffKey: KEY });
    const out = await dispatch(testRoute([a]), async (t) => t.name, h.o());
    expect(out.value).toBe('a');
    expect(h.sleeps).toEqual([1_000]); // the quota's wait, not the backoff's
    expect(h.events).toEqual(['waited default/r/a']);
    h.backoffs.observe(KEY, 429, { 'retry-after': '20' });
    const err = await dispatch(testRoute([a]), async (t) => t.name, h.o()).catch((e: unknown) => e);
    expect((err as ApiError).message).toContain('whose provider asked to back off');
    expect(h.buckets.a!.bucket.remaining(1_000)).toBe(0);
  });

  it('a backoff that ended is no obstacle', async () => {
    const h = harness({});
    h.backoffs.observe(KEY, 429, { 'retry-after': '2' });
    h.advance(2_000);
    const out = await dispatch(testRoute([testTarget('a', { backoffKey: KEY })]), async (t) => t.name, h.o());
    expect(out.value).toBe('a');
    expect(h.events).toEqual([]);
  });
});
