import { describe, expect, it } from 'vitest';
import { buildSnapshot, parseConfigDocuments } from '../../../crds/src/index.js';
import { ConfigCompiler, type RuntimeConfig } from '../../../sidecar/router/runtime.js';
import { TokenBucket } from '../../../sidecar/ratelimit/bucket.js';
import { amountOf, FLEET_UNAVAILABLE_WAIT_MS, FLEET_WAIT_MS, RateLimiter, settleAll, takeAll, type Fleet, type Limit } from '../../../sidecar/ratelimit/limits.js';
import type { Transport } from '../../../sidecar/transport.js';

const CONFIG = `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: chat, namespace: team-a }
spec:
  model: [gpt, gpt-mini]
  targets:
    - { name: primary, provider: openai, model: gpt-4o, credentials: { secretRef: { name: openai, key: api-key } }, quota: { requestsPerMinute: 500, tokensPerMinute: 30000 } }
    - { name: backup, provider: openai, model: gpt-4o, baseURL: "https://other.example/v1", credentials: { secretRef: { name: openai, key: api-key } } }
    - { name: other-key, provider: openai, model: gpt-4o, credentials: { secretRef: { name: openai, key: key-2 } } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: claude, namespace: team-a }
spec:
  model: claude
  targets:
    - { name: anthropic, provider: anthropic, model: claude-sonnet-4-5, credentials: { secretRef: { name: openai, key: api-key } } }
---
apiVersion: paygo.dev/v1alpha1
kind: ProviderQuota
metadata: { name: openai-key, namespace: team-a }
spec:
  credentials: { secretRef: { name: openai, key: api-key } }
  provider: openai
  limits: { inputTokensPerMinute: 150000, outputTokensPerMinute: 50000 }
---
apiVersion: paygo.dev/v1alpha1
kind: ProviderQuota
metadata: { name: elsewhere, namespace: team-b }
spec:
  credentials: { secretRef: { name: openai, key: api-key } }
  limits: { requestsPerMinute: 1 }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: team-a, namespace: team-a }
spec:
  limits: { tokensPerMinute: 200000, requestsPerDay: 10000 }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: mini, namespace: team-a }
spec:
  scope: { models: [gpt-mini], routes: [chat], podSelector: { matchLabels: { app: x } }, serviceAccounts: [x] }
  limits: { requestsPerMinute: 60 }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: other-route, namespace: team-a }
spec:
  scope: { routes: [nope] }
  limits: { requestsPerMinute: 1 }
`;

function compile(text = CONFIG): RuntimeConfig {
  const snapshot = buildSnapshot({ ...parseConfigDocuments(text), env: { OPENAI_API_KEY: 'k', OPENAI_KEY_2: 'k' } });
  return new ConfigCompiler({} as Transport).compile(snapshot);
}
const describeLimit = (l: Limit) => `${l.kind} ${l.name} ${l.resource}/${l.window} ${l.bucket.capacity}`;

describe('RateLimiter.apply', () => {
  it('compiles every limit to one bucket each', () => {
    const limiter = new RateLimiter(() => 0);
    expect(limiter.active).toBe(false);
    limiter.apply(compile());
    expect(limiter.active).toBe(true);
    expect(limiter.all().map(describeLimit)).toEqual([
      'provider team-a/openai-key input_tokens/minute 150000',
      'provider team-a/openai-key output_tokens/minute 50000',
      'provider team-b/elsewhere requests/minute 1',
      'consumer team-a/team-a tokens/minute 200000',
      'consumer team-a/team-a requests/day 10000',
      'consumer team-a/mini requests/minute 60',
      'consumer team-a/other-route requests/minute 1',
      'provider team-a/chat/primary requests/minute 500',
      'provider team-a/chat/primary tokens/minute 30000',
    ]);
  });

  it('puts a target under its own quota and every ProviderQuota of its namespace, key and provider', () => {
    const limiter = new RateLimiter(() => 0);
    const config = compile();
    limiter.apply(config);
    const chat = config.byModel.get('gpt')!;
    const [primary, backup, otherKey] = chat.targets;
    expect(limiter.target(primary!)!.map(describeLimit)).toEqual([
      'provider team-a/chat/primary requests/minute 500',
      'provider team-a/chat/primary tokens/minute 30000',
      'provider team-a/openai-key input_tokens/minute 150000',
      'provider team-a/openai-key output_tokens/minute 50000',
    ]);
    // Shared: the very same buckets.
    expect(limiter.target(backup!)![0]!.bucket).toBe(limiter.target(primary!)![2]!.bucket);
    expect(limiter.target(otherKey!)).toBeUndefined();
    // Same key, other provider: the quota names openai.
    expect(limiter.target(config.byModel.get('claude')!.targets[0]!)).toBeUndefined();
    expect(limiter.routeHasQuota(chat)).toBe(true);
    expect(limiter.routeHasQuota(config.byModel.get('claude')!)).toBe(false);
  });

  it('selects consumer limits by route and model name; podSelector and serviceAccounts match in standalone', () => {
    const limiter = new RateLimiter(() => 0);
    const config = compile();
    limiter.apply(config);
    const chat = config.byModel.get('gpt')!;
    expect(limiter.consumer(chat, 'gpt').map(describeLimit)).toEqual(['consumer team-a/team-a tokens/minute 200000', 'consumer team-a/team-a requests/day 10000']);
    expect(limiter.consumer(chat, 'gpt-mini').map((l) => l.name)).toEqual(['team-a/team-a', 'team-a/team-a', 'team-a/mini']);
    expect(limiter.consumer(config.byModel.get('claude')!, 'claude').map((l) => l.name)).toEqual(['team-a/team-a', 'team-a/team-a']);
    expect(limiter.consumer(chat, 'unknown')).toEqual([]);
  });

  it('keeps a bucket across a reload of the same limit (resized when the limit changed); apply(undefined) clears all', () => {
    let now = 0;
    const limiter = new RateLimiter(() => now);
    limiter.apply(compile());
    const rpd = limiter.all().find((l) => l.resource === 'requests' && l.window === 'day')!;
    rpd.bucket.take(100, 0);
    limiter.apply(compile(CONFIG.replace('requestsPerDay: 10000', 'requestsPerDay: 20000')));
    const again = limiter.all().find((l) => l.resource === 'requests' && l.window === 'day')!;
    expect(again.bucket).toBe(rpd.bucket);
    expect(again.bucket.available(0)).toBe(19_900);
    limiter.apply(undefined);
    expect(limiter.active).toBe(false);
    expect(limiter.all()).toEqual([]);
  });
});

/** A fleet that records what the limiter tells it; `usable` per limit name + resource. */
function fakeFleet() {
  const log: string[] = [];
  const tracked: string[][] = [];
  const usable = new Set<string>();
  const id = (l: Limit) => `${l.name} ${l.resource}`;
  const fleet: Fleet = {
    track: (limits) => void tracked.push(limits.map(({ limit }) => id(limit))),
    share: (l) => ({ usable: () => usable.has(id(l)), used: (n) => log.push(`used ${id(l)} ${n}`), short: (n) => log.push(`short ${id(l)} ${n}`) }),
  };
  return { fleet, log, tracked, usable };
}

describe('RateLimiter in operator mode (fleet shares)', () => {
  it('every bucket starts with no share and is handed to the fleet; a reload keeps buckets and leaves their capacity to the fleet', () => {
    const { fleet, tracked } = fakeFleet();
    const limiter = new RateLimiter(() => 0, {}, fleet);
    limiter.apply(compile());
    expect(limiter.all().every((l) => l.bucket.capacity === 0 && l.fleet !== undefined)).toBe(true);
    expect(limiter.all().find((l) => l.resource === 'requests' && l.window === 'day')!.ceiling).toBe(10_000);
    expect(tracked[0]).toHaveLength(9);
    const rpd = limiter.all().find((l) => l.resource === 'requests' && l.window === 'day')!;
    rpd.bucket.setShare(5_000, 5_000, 0);
    limiter.apply(compile(CONFIG.replace('requestsPerDay: 10000', 'requestsPerDay: 20000')));
    const again = limiter.all().find((l) => l.resource === 'requests' && l.window === 'day')!;
    expect(again.bucket).toBe(rpd.bucket);
    expect([again.bucket.capacity, again.ceiling]).toEqual([5_000, 20_000]);
    expect(tracked).toHaveLength(2);
    // One Limit per bucket: a ProviderQuota shared by two targets is one share.
    const chat = compile();
    limiter.apply(chat);
    const [primary, backup] = chat.byModel.get('gpt')!.targets;
    expect(limiter.target(backup!)![0]).toBe(limiter.target(primary!)![2]);
  });

  it('takeAll: no valid share is unavailable (fail closed); more than the share but within the limit waits for a rebalance; use and refusals go to the fleet', () => {
    const { fleet, log, usable } = fakeFleet();
    const share = (name: string, resource: Limit['resource'], ceiling: number, cap: number): Limit => {
      const l: Limit = { kind: 'consumer', name, resource, window: 'minute', ceiling, bucket: new TokenBucket(0, 60_000, 0) };
      l.bucket.setShare(cap, cap, 0);
      l.fleet = fleet.share(l);
      return l;
    };
    const rpm = share('ns/a', 'requests', 60, 10);
    const tpm = share('ns/a', 'tokens', 10_000, 1_000);
    const d = { inputTokens: 500, outputTokens: 1_000 };
    expect(takeAll([rpm, tpm], d, 0)).toEqual({ limit: rpm, requested: 1, remaining: 0, waitMs: FLEET_UNAVAILABLE_WAIT_MS, unavailable: true });
    usable.add('ns/a requests');
    usable.add('ns/a tokens');
    expect(takeAll([rpm, tpm], d, 0)).toEqual({ limit: tpm, requested: 1_500, remaining: 1_000, waitMs: FLEET_WAIT_MS });
    expect(log).toEqual(['short ns/a tokens 1500']);
    expect(takeAll([rpm, tpm], { inputTokens: 500, outputTokens: 10_000 }, 0)!.waitMs).toBe(Infinity); // above the whole limit
    log.length = 0;
    expect(takeAll([rpm, tpm], { inputTokens: 100, outputTokens: 400 }, 0)).toBeUndefined();
    expect(log).toEqual(['used ns/a requests 1', 'used ns/a tokens 500']);
    expect(tpm.bucket.available(0)).toBe(500);
  });
});

describe('takeAll and settleAll', () => {
  const mk = (resource: Limit['resource'], capacity: number): Limit => ({ kind: 'provider', name: 'ns/q', resource, window: 'minute', ceiling: capacity, bucket: new TokenBucket(capacity, 60_000, 0) });
  it('counts requests, tokens, input and output tokens', () => {
    const d = { inputTokens: 100, outputTokens: 20 };
    expect([amountOf('requests', d), amountOf('tokens', d), amountOf('input_tokens', d), amountOf('output_tokens', d)]).toEqual([1, 120, 100, 20]);
  });

  it('takes from all or from none, naming the limit that keeps the request waiting longest', () => {
    const rpm = mk('requests', 60);
    const tpm = mk('tokens', 600);
    const out = mk('output_tokens', 100);
    tpm.bucket.take(550, 0);
    out.bucket.take(95, 0);
    const short = takeAll([rpm, tpm, out], { inputTokens: 50, outputTokens: 20 }, 0);
    expect(short).toEqual({ limit: out, requested: 20, remaining: 5, waitMs: 9_000 });
    expect([rpm.bucket.available(0), tpm.bucket.available(0), out.bucket.available(0)]).toEqual([60, 50, 5]);
    expect(takeAll([rpm, tpm], { inputTokens: 30, outputTokens: 20 }, 0)).toBeUndefined();
    expect([rpm.bucket.available(0), tpm.bucket.available(0)]).toEqual([59, 0]);
  });

  it('settles to what was used: the unused part back, an overrun taken', () => {
    const rpm = mk('requests', 60);
    const tpm = mk('tokens', 1_000);
    const reserved = { inputTokens: 100, outputTokens: 400 };
    takeAll([rpm, tpm], reserved, 0);
    settleAll([rpm, tpm], reserved, { inputTokens: 90, outputTokens: 10 }, true, 0);
    expect([rpm.bucket.available(0), tpm.bucket.available(0)]).toEqual([59, 900]);
    takeAll([rpm, tpm], reserved, 0);
    settleAll([rpm, tpm], reserved, { inputTokens: 100, outputTokens: 900 }, true, 0);
    expect([rpm.bucket.available(0), tpm.bucket.available(0)]).toEqual([58, -100]);
    takeAll([rpm], reserved, 0);
    settleAll([rpm], reserved, { inputTokens: 0, outputTokens: 0 }, false, 0);
    expect(rpm.bucket.available(0)).toBe(58);
  });
});

