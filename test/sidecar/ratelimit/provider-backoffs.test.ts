import { describe, expect, it } from 'vitest';
import { buildSnapshot, parseConfigDocuments, providerBackoffKey, ProviderBackoffSchema, RateLimitSyncRequestSchema, RateLimitSyncResponseSchema, readableBackoffs } from '../../../crds/src/index.js';
import { ApiError } from '../../../sidecar/errors.js';
import { createMetrics } from '../../../sidecar/metering/metrics.js';
import { collectRateLimitGauges, countLimited } from '../../../sidecar/ratelimit/gauges.js';
import { ProviderQuotaGate } from '../../../sidecar/ratelimit/holds.js';
import { RateLimiter } from '../../../sidecar/ratelimit/limits.js';
import { MAX_BACKOFF_ENTRIES, MAX_REPORTED_BACKOFFS, MIN_REPORTED_BACKOFF_MS, ProviderBackoffs } from '../../../sidecar/ratelimit/provider-backoffs.js';
import { ConfigCompiler, type RuntimeRoute } from '../../../sidecar/router/runtime.js';
import type { Transport } from '../../../sidecar/transport.js';
import { testTarget } from '../../support/runtime.js';

const K = 'team/secret/openai/api-key/openai/gpt-4o-mini';
const exhausted = (resetS: number) => ({ 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': `${resetS}s` });

function store() {
  const clock = { ms: 1_000_000 };
  const b = new ProviderBackoffs(() => clock.ms);
  let own = 0;
  b.onOwn(() => own++);
  return { b, clock, owns: () => own };
}

describe('providerBackoffKey', () => {
  it('names the credential (a Secret reference, never its value), provider and model; a target without credentials is its own', () => {
    const ref = { secretRef: { name: 'openai', key: 'api-key' } };
    expect(providerBackoffKey('team', 'chat', { provider: 'openai', model: 'gpt-4o', credentials: ref }, 0)).toBe('team/secret/openai/api-key/openai/gpt-4o');
    // Two routes with the same key and model share it; another model or provider does not.
    expect(providerBackoffKey('team', 'batch', { name: 'x', provider: 'openai', model: 'gpt-4o', credentials: ref }, 3)).toBe('team/secret/openai/api-key/openai/gpt-4o');
    expect(providerBackoffKey('team', 'chat', { provider: 'openai', model: 'gpt-4o-mini', credentials: ref }, 0)).not.toBe('team/secret/openai/api-key/openai/gpt-4o');
    expect(providerBackoffKey('team', 'chat', { provider: 'vertex', model: 'gemini-2.5-pro' }, 1)).toBe('team/target/chat/vertex-1');
    expect(providerBackoffKey('team', 'chat', { name: 'wi', provider: 'bedrock', model: 'm' }, 1)).toBe('team/target/chat/wi');
  });

  it('the compiler gives every target its key', () => {
    const docs = parseConfigDocuments(`
apiVersion: v1
kind: Secret
metadata: { name: openai, namespace: team }
stringData: { api-key: sk-test }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: chat, namespace: team }
spec:
  model: m
  targets:
    - { name: a, provider: openai, model: gpt-4o, credentials: { secretRef: { name: openai, key: api-key } } }
    - { name: b, provider: simulate, model: sim }
`);
    const cfg = new ConfigCompiler({} as Transport).compile(buildSnapshot({ ...docs, env: {} }));
    expect(cfg.byModel.get('m')!.targets.map((t) => t.backoffKey)).toEqual(['team/secret/openai/api-key/openai/gpt-4o', 'team/target/chat/b']);
  });
});

describe('ProviderBackoffs', () => {
  it('a provider that said nothing remains backs off its credential until the reset; then it is gone', () => {
    const { b, clock } = store();
    b.observe(K, 200, exhausted(20));
    expect(b.check(K, clock.ms)).toEqual({ key: K, resource: 'requests', waitMs: 20_000 });
    expect(b.check('team/secret/other/api-key/openai/gpt-4o-mini', clock.ms)).toBeUndefined();
    expect(b.check(K, clock.ms + 19_999)!.waitMs).toBe(1);
    expect(b.check(K, clock.ms + 20_000)).toBeUndefined();
    expect(b.live(clock.ms + 20_000)).toEqual([]);
  });

  it('answers that ask for nothing change nothing; a later backoff never shortens an earlier one', () => {
    const { b, clock } = store();
    b.observe(K, 200, { 'x-ratelimit-remaining-requests': '10', 'x-ratelimit-reset-requests': '1s' });
    expect(b.live(clock.ms)).toEqual([]);
    b.observe(K, 429, { 'retry-after': '30' });
    b.observe(K, 200, exhausted(5));
    expect(b.check(K, clock.ms)).toEqual({ key: K, resource: 'any', waitMs: 30_000 });
  });

  it('tells its listener of a new backoff worth reporting (≥ 1 s, or one that extends), not of shorter or older ones', () => {
    const { b, clock, owns } = store();
    b.observe(K, 200, exhausted(0.5));
    expect(owns()).toBe(0);
    expect(b.check(K, clock.ms)!.waitMs).toBe(500);
    b.observe(K, 429, { 'retry-after': '10' });
    expect(owns()).toBe(1);
    b.observe(K, 429, { 'retry-after': '5' });
    expect(owns()).toBe(1);
    clock.ms += 1_000;
    b.observe(K, 429, { 'retry-after': '10' });
    expect(owns()).toBe(2);
  });

  it('reports what it saw itself (ms from now, ≥ MIN_REPORTED_BACKOFF_MS), not what the fleet told it; busy until reported and while live', () => {
    const { b, clock } = store();
    expect(b.busy(clock.ms)).toBe(false);
    b.receive([{ key: 'team/secret/k2/api-key/anthropic/claude', ms: 40_000, resource: 'tokens' }]);
    expect(b.report(clock.ms).backoffs).toEqual([]);
    b.observe(K, 200, exhausted(20));
    const r = b.report(clock.ms + 5_000);
    expect(r.backoffs).toEqual([{ key: K, ms: 15_000, resource: 'requests' }]);
    expect(b.busy(clock.ms)).toBe(true);
    b.reported(r.mark);
    expect(b.busy(clock.ms)).toBe(true); // still live
    expect(b.report(clock.ms + 20_000 - MIN_REPORTED_BACKOFF_MS + 1).backoffs).toEqual([]);
    expect(b.busy(clock.ms + 40_000)).toBe(false);
  });

  it('a backoff seen while a report was under way stays unreported (busy) after that report is answered', () => {
    const { b, clock } = store();
    b.observe(K, 429, { 'retry-after': '2' });
    const r = b.report(clock.ms);
    b.observe('team/secret/k2/api-key/openai/gpt-4o', 429, { 'retry-after': '3' });
    b.reported(r.mark);
    clock.ms += 5_000; // both are over, but the second was never reported
    expect(b.busy(clock.ms)).toBe(true);
    b.reported(b.report(clock.ms).mark);
    expect(b.busy(clock.ms)).toBe(false);
  });

  it('applies the fleet’s backoffs like its own, clamped to 60 s; the latest until wins either way', () => {
    const { b, clock } = store();
    b.receive([
      { key: K, ms: 3_600_000, resource: 'tokens' },
      { key: 'team/target/chat/sim', ms: 0 },
    ]);
    expect(b.check(K, clock.ms)).toEqual({ key: K, resource: 'tokens', waitMs: 60_000 });
    expect(b.check('team/target/chat/sim', clock.ms)).toBeUndefined();
    b.receive([{ key: 'team/target/chat/sim', ms: 2_000 }]);
    expect(b.check('team/target/chat/sim', clock.ms)).toEqual({ key: 'team/target/chat/sim', resource: 'any', waitMs: 2_000 });
    b.observe('team/target/chat/sim', 429, { 'retry-after': '1' });
    expect(b.check('team/target/chat/sim', clock.ms)!.waitMs).toBe(2_000);
  });

  it('holds at most MAX_BACKOFF_ENTRIES credentials (ended ones make room); a report carries at most MAX_REPORTED_BACKOFFS', () => {
    const { b, clock } = store();
    for (let i = 0; i < MAX_BACKOFF_ENTRIES + 10; i++) b.observe(`team/target/r/t${i}`, 429, { 'retry-after': String(5 + (i % 3)) });
    expect(b.live(clock.ms)).toHaveLength(MAX_BACKOFF_ENTRIES);
    expect(b.report(clock.ms).backoffs).toHaveLength(MAX_REPORTED_BACKOFFS);
    clock.ms += 6_000; // those of 5 s are over
    b.observe('team/target/r/late', 429, { 'retry-after': '5' });
    expect(b.check('team/target/r/late', clock.ms)!.waitMs).toBe(5_000);
  });
});

describe('ProviderQuotaGate with provider backoffs', () => {
  function gate() {
    const clock = { ms: 0 };
    const events: string[] = [];
    const backoffs = new ProviderBackoffs(() => clock.ms);
    const limiter = new RateLimiter(() => clock.ms, { onLimited: (by, reason) => events.push(`${reason} ${by.kind} ${by.name} ${by.resource}`) }, undefined, backoffs);
    return { g: new ProviderQuotaGate(limiter, undefined), backoffs, events, clock };
  }

  it('a target whose credential backs off has no room until then; others do', () => {
    const { g, backoffs } = gate();
    const a = testTarget('a', { backoffKey: K });
    const b = testTarget('b', { backoffKey: K });
    const c = testTarget('c');
    backoffs.observe(K, 429, { 'retry-after': '12' });
    expect(g.take(a, 0)).toMatchObject({ waitMs: 12_000, target: a, backoff: { key: K, resource: 'any' } });
    expect(g.take(b, 0)).toMatchObject({ waitMs: 12_000, target: b }); // same key, another route's target
    expect(g.take(c, 0)).toBeUndefined();
    expect(g.take(a, 12_000)).toBeUndefined();
  });

  it('counts skips, waits and refusals as kind provider_backoff under the credential reference, and refuses with 429 rate_limit_exceeded and the time left', () => {
    const { g, backoffs, events } = gate();
    const a = testTarget('a', { backoffKey: K, provider: 'openai' });
    backoffs.observe(K, 200, exhausted(7.2));
    const short = g.take(a, 0)!;
    g.limited(short, 'failed_over');
    g.limited(short, 'limited');
    expect(events).toEqual([`failed_over provider_backoff ${K} requests`, `limited provider_backoff ${K} requests`]);
    const err = g.exhausted({ name: 'chat' } as RuntimeRoute, short);
    expect(err).toBeInstanceOf(ApiError);
    expect([err.status, err.type, err.code]).toEqual([429, 'requests', 'rate_limit_exceeded']);
    expect(err.message).toBe('Provider rate limit reached: no target of route "chat" has room; the soonest is target "a" (openai), whose provider asked to back off (its requests limit is used up); retry in 8 s.');
    expect(err.message).not.toContain('api-key');
    expect(err.headers).toEqual({ 'retry-after': '8', 'retry-after-ms': '7200' });
  });

  it('a tokens backoff is OpenAI error type tokens', () => {
    const { g, backoffs, clock } = gate();
    clock.ms = Date.parse('2026-03-10T12:00:00Z');
    backoffs.observe(K, 200, { 'anthropic-ratelimit-output-tokens-remaining': '0', 'anthropic-ratelimit-output-tokens-reset': '2026-03-10T12:00:03Z' });
    const err = g.exhausted({ name: 'chat' } as RuntimeRoute, g.take(testTarget('a', { backoffKey: K, provider: 'anthropic' }), clock.ms)!);
    expect([err.type, err.headers['retry-after']]).toEqual(['tokens', '3']);
    expect(err.message).toContain('(its output tokens limit is used up)');
  });

  it('RateLimiter.apply: the store watches (operator mode syncs) only while the config has routes', () => {
    const backoffs = new ProviderBackoffs(() => 0);
    const limiter = new RateLimiter(() => 0, {}, undefined, backoffs);
    limiter.apply(new ConfigCompiler({} as Transport).compile(buildSnapshot({ ...parseConfigDocuments('apiVersion: paygo.dev/v1alpha1\nkind: ModelRoute\nmetadata: { name: r }\nspec: { model: m, targets: [{ provider: simulate, model: x }] }\n'), env: {} })));
    expect(limiter.active).toBe(false);
    expect(backoffs.watching).toBe(true);
    limiter.apply(undefined);
    expect(backoffs.watching).toBe(false);
  });
});

describe('provider backoff metrics', () => {
  it('paygo_ratelimit_provider_backoff_seconds per credential at scrape time; limited requests counted with kind provider_backoff', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const clock = { ms: 0 };
    const backoffs = new ProviderBackoffs(() => clock.ms);
    const limiter = new RateLimiter(() => clock.ms, { onLimited: countLimited(metrics) }, undefined, backoffs);
    collectRateLimitGauges(metrics, limiter);
    backoffs.observe(K, 429, { 'retry-after-ms': '2500' });
    new ProviderQuotaGate(limiter, undefined).limited({ backoff: { key: K, resource: 'any', waitMs: 2_500 }, target: testTarget('a'), waitMs: 2_500 }, 'waited');
    const text = await metrics.registry.metrics();
    expect(text).toContain(`paygo_ratelimit_provider_backoff_seconds{limit="${K}"} 2.5\n`);
    expect(text).toContain(`paygo_ratelimit_limited_requests_total{kind="provider_backoff",limit="${K}",resource="any",reason="waited"} 1\n`);
    clock.ms = 2_500;
    expect(await metrics.registry.metrics()).not.toContain('paygo_ratelimit_provider_backoff_seconds{');
  });
});

describe('the backoffs field of the rate-limit sync (compatible both ways)', () => {
  const sync = { boot: 'b', seq: 1, entries: [] };
  it('is optional: syncs without it parse, and parse the same', () => {
    expect(RateLimitSyncRequestSchema.parse(sync)).toEqual(sync);
    expect(RateLimitSyncResponseSchema.parse({ entries: [] })).toEqual({ entries: [] });
  });

  it('an entry a peer cannot read is dropped, never the sync; a field it cannot read at all is ignored', () => {
    const parsed = RateLimitSyncRequestSchema.parse({
      ...sync,
      backoffs: [{ key: K, ms: 5_000, resource: 'requests' }, { key: 'pq/team/x', ms: 1 }, { key: K, ms: -1 }, { key: K, ms: 1, resource: 'futons' }, 'junk', { key: 'team/target/r/t', ms: 2_000 }],
    });
    expect(readableBackoffs(parsed.backoffs)).toEqual([{ key: K, ms: 5_000, resource: 'requests' }, { key: 'team/target/r/t', ms: 2_000 }]);
    expect(RateLimitSyncResponseSchema.parse({ entries: [], backoffs: 'a future format' }).backoffs).toBeUndefined();
    expect(RateLimitSyncResponseSchema.parse({ entries: [], backoffs: new Array(300).fill({ key: K, ms: 1 }) }).backoffs).toBeUndefined();
    expect(ProviderBackoffSchema.safeParse({ key: 'Team/secret/x', ms: 1 }).success).toBe(false);
    expect(ProviderBackoffSchema.safeParse({ key: 'team/secret/x\n', ms: 1 }).success).toBe(false);
  });
});
