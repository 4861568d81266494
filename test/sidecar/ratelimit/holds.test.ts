import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../sidecar/errors.js';
import { ProviderQuotaGate, requestDemand, reserveConsumer, usedBy } from '../../../sidecar/ratelimit/holds.js';
import { DEFAULT_RATE_LIMIT_MAX_TOKENS, RateLimiter, takeAll, type Limit } from '../../../sidecar/ratelimit/limits.js';
import type { RuntimeRoute, RuntimeTarget } from '../../../sidecar/router/runtime.js';
import { testLimit, testRoute, testTarget } from '../../support/runtime.js';

const limit = testLimit;

function limiter() {
  let now = 0;
  const events: string[] = [];
  const l = new RateLimiter(() => now, { onLimited: (lim, reason) => events.push(`${reason} ${lim.name} ${lim.resource}`) });
  return { l, events, at: (ms: number) => (now = ms) };
}

describe('reserveConsumer', () => {
  it('refuses with 429 rate_limit_exceeded naming the RateLimit and the limit, Retry-After and the x-ratelimit headers', () => {
    const { l, events } = limiter();
    const tpm = limit('consumer', 'team-a/chat', 'tokens', 'minute', 200_000);
    const rpm = limit('consumer', 'team-a/chat', 'requests', 'minute', 60);
    tpm.bucket.take(199_690, 0);
    let err: unknown;
    try {
      reserveConsumer(l, [rpm, tpm], { inputTokens: 200, outputTokens: 1_000 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    const e = err as ApiError;
    expect(e.status).toBe(429);
    expect(e.toJSON()).toEqual({
      error: {
        message: 'Rate limit reached: RateLimit team-a/chat, tokens per minute: limit 200000, requested 1200, remaining 310; retry in 1 s.',
        type: 'tokens',
        param: null,
        code: 'rate_limit_exceeded',
      },
    });
    // 890 tokens at 200000 per minute: 267 ms.
    expect(e.headers).toEqual({
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '60',
      'x-ratelimit-reset-requests': '0s',
      'x-ratelimit-limit-tokens': '200000',
      'x-ratelimit-remaining-tokens': '310',
      'x-ratelimit-reset-tokens': '59.907s',
      'retry-after': '1',
      'retry-after-ms': '267',
    });
    expect(rpm.bucket.available(0)).toBe(60); // nothing taken
    expect(events).toEqual(['limited team-a/chat tokens']);
  });

  it('a fleet limit without a valid share: 503 ratelimit_unavailable, Retry-After 5, nothing taken', () => {
    const { l, events } = limiter();
    const rpm = limit('consumer', 'team-a/chat', 'requests', 'minute', 60);
    rpm.fleet = { usable: () => false, used: () => {}, short: () => {} };
    let err: unknown;
    try {
      reserveConsumer(l, [rpm], { inputTokens: 1, outputTokens: 1 });
    } catch (e) {
      err = e;
    }
    const e = err as ApiError;
    expect(e.status).toBe(503);
    expect(e.code).toBe('ratelimit_unavailable');
    expect(e.message).toBe('RateLimit team-a/chat is enforced across the fleet by the paygo operator, which could not be reached; the request was not sent. Retry shortly.');
    expect(e.headers).toEqual({ 'retry-after': '5' });
    expect(rpm.bucket.available(0)).toBe(60);
    expect(events).toEqual(['limited team-a/chat requests']);
    const quota = limit('provider', 'team-a/chat/primary', 'requests', 'minute', 60);
    quota.fleet = rpm.fleet;
    const gate = new ProviderQuotaGate(l, { inputTokens: 1, outputTokens: 1 });
    const short = takeAll([quota], gate.demand!, 0)!;
    const pe = gate.exhausted({ name: 'chat' } as RuntimeRoute, short);
    expect([pe.status, pe.code, pe.message]).toEqual([503, 'ratelimit_unavailable', 'the quota of target team-a/chat/primary is enforced across the fleet by the paygo operator, which could not be reached; the request was not sent. Retry shortly.']);
  });

  it('says when the request alone exceeds the limit, and that retrying will not help', () => {
    const { l } = limiter();
    const tpm = limit('consumer', 'ns/small', 'tokens', 'minute', 1_000);
    const e = (() => {
      try {
        reserveConsumer(l, [tpm], { inputTokens: 500, outputTokens: 4096 });
      } catch (err) {
        return err as ApiError;
      }
    })()!;
    expect(e.message).toBe('Rate limit reached: RateLimit ns/small, tokens per minute: limit 1000, requested 4596, remaining 1000; the request alone exceeds the limit.');
    expect(e.headers['x-should-retry']).toBe('false');
    expect(e.headers['retry-after']).toBeUndefined();
  });

  it('names a requests-per-day limit with type requests and a Retry-After in whole seconds', () => {
    const { l } = limiter();
    const rpd = limit('consumer', 'ns/daily', 'requests', 'day', 10);
    rpd.bucket.take(10, 0);
    const e = (() => {
      try {
        reserveConsumer(l, [rpd], { inputTokens: 1, outputTokens: 1 });
      } catch (err) {
        return err as ApiError;
      }
    })()!;
    expect(e.message).toBe('Rate limit reached: RateLimit ns/daily, requests per day: limit 10, requested 1, remaining 0; retry in 8640 s.');
    expect(e.type).toBe('requests');
    expect(e.headers['retry-after']).toBe('8640');
    expect(e.headers['x-ratelimit-reset-requests']).toBe('24h0m0s');
  });

  it('holds the demand until settled with the usage; the headers show what is left', () => {
    const { l, at } = limiter();
    const tpm = limit('consumer', 'ns/a', 'tokens', 'minute', 10_000);
    const rpm = limit('consumer', 'ns/a', 'requests', 'minute', 10);
    const hold = reserveConsumer(l, [tpm, rpm], { inputTokens: 1_000, outputTokens: 4_000 });
    expect(hold.headers).toEqual({
      'x-ratelimit-limit-requests': '10',
      'x-ratelimit-remaining-requests': '9',
      'x-ratelimit-reset-requests': '6s',
      'x-ratelimit-limit-tokens': '10000',
      'x-ratelimit-remaining-tokens': '5000',
      'x-ratelimit-reset-tokens': '30s',
    });
    at(6_000);
    hold.settle({ inputTokens: 1_000, outputTokens: 500 });
    hold.settle({ inputTokens: 0, outputTokens: 0 }); // once only
    expect([tpm.bucket.available(6_000), rpm.bucket.available(6_000)]).toEqual([9_500, 10]); // 5000 + 1000 refilled + 3500 unused back
  });

  it('a request never sent gives everything back', () => {
    const { l } = limiter();
    const rpm = limit('consumer', 'ns/a', 'requests', 'minute', 10);
    reserveConsumer(l, [rpm], { inputTokens: 1, outputTokens: 1 }).settle(undefined);
    expect(rpm.bucket.available(0)).toBe(10);
  });
});

describe('ProviderQuotaGate', () => {
  function gate(targets: Record<string, Limit[]>) {
    const { l, events } = limiter();
    (l as unknown as { target: (t: RuntimeTarget) => Limit[] | undefined }).target = (t) => targets[t.name];
    return { g: new ProviderQuotaGate(l, { inputTokens: 100, outputTokens: 50 }), events };
  }

  it('takes per attempt; a failed attempt gives back its tokens and keeps its request (or gives it back when nothing was sent)', () => {
    const rpm = limit('provider', 'ns/r/a', 'requests', 'minute', 10);
    const tpm = limit('provider', 'ns/r/a', 'tokens', 'minute', 1_000);
    const { g } = gate({ a: [rpm, tpm] });
    expect(g.take(testTarget('a'), 0)).toBeUndefined();
    expect([rpm.bucket.available(0), tpm.bucket.available(0)]).toEqual([9, 850]);
    g.failed(true, 0);
    expect([rpm.bucket.available(0), tpm.bucket.available(0)]).toEqual([9, 1_000]);
    g.take(testTarget('a'), 0);
    g.failed(false, 0);
    expect([rpm.bucket.available(0), tpm.bucket.available(0)]).toEqual([9, 1_000]);
    g.failed(true, 0); // nothing held
    expect(rpm.bucket.available(0)).toBe(9);
  });

  it('settles the committed attempt with the usage; a target without quota takes nothing', () => {
    const tpm = limit('provider', 'ns/q', 'output_tokens', 'minute', 1_000);
    const { g } = gate({ a: [tpm] });
    expect(g.take(testTarget('b'), 0)).toBeUndefined();
    g.take(testTarget('a'), 0);
    g.settle({ inputTokens: 100, outputTokens: 80 }, 0);
    expect(tpm.bucket.available(0)).toBe(920);
    g.settle({ inputTokens: 100, outputTokens: 80 }, 0);
    expect(tpm.bucket.available(0)).toBe(920);
  });

  it('reports a shortage, counts it, and answers 429 naming the quota', () => {
    const rpm = limit('provider', 'team-a/openai-key', 'requests', 'minute', 60);
    rpm.bucket.take(60, 0);
    const { g, events } = gate({ a: [rpm] });
    const short = g.take(testTarget('a'), 0)!;
    expect(short).toEqual({ limit: rpm, requested: 1, remaining: 0, waitMs: 1_000 });
    g.limited(short, 'failed_over');
    expect(events).toEqual(['failed_over team-a/openai-key requests']);
    const e = g.exhausted(testRoute([]), short);
    expect([e.status, e.code, e.type]).toEqual([429, 'rate_limit_exceeded', 'requests']);
    expect(e.message).toBe('Provider rate limit reached: no target of route "r" has room; the soonest is ProviderQuota team-a/openai-key, requests per minute: limit 60, requested 1, remaining 0; retry in 1 s.');
    expect(e.headers).toEqual({ 'retry-after': '1', 'retry-after-ms': '1000' });
    const own = limit('provider', 'team-a/chat/primary', 'input_tokens', 'minute', 60);
    expect(g.exhausted(testRoute([]), { limit: own, requested: 100, remaining: 60, waitMs: Infinity }).message).toBe(
      'Provider rate limit reached: no target of route "r" has room; the soonest is the quota of target team-a/chat/primary, input tokens per minute: limit 60, requested 100, remaining 60; the request alone exceeds the limit.',
    );
  });
});

describe('requestDemand and usedBy', () => {
  it('counts the prompt with the first target’s tokenizer and reserves the output cap, or the default', async () => {
    const route = testRoute([testTarget('gpt-4o')]);
    const req = { model: 'm', messages: [{ role: 'user' as const, content: 'hello world' }] };
    expect(await requestDemand(route, req)).toEqual({ inputTokens: 8, outputTokens: DEFAULT_RATE_LIMIT_MAX_TOKENS }) // 2 of text, 3 + 3 of framing;
    expect((await requestDemand(route, { ...req, max_tokens: 50 })).outputTokens).toBe(50);
    expect((await requestDemand(route, { ...req, max_tokens: 50, max_completion_tokens: 70 })).outputTokens).toBe(70);
  });

  it('a request sent nowhere used nothing; one sent used its usage (0 when none)', () => {
    expect(usedBy({ target: undefined, usage: undefined })).toBeUndefined();
    expect(usedBy({ target: 'a', usage: undefined })).toEqual({ inputTokens: 0, outputTokens: 0 });
    expect(usedBy({ target: 'a', usage: { inputTokens: 5, outputTokens: 7, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 } })).toEqual({ inputTokens: 5, outputTokens: 7 });
  });
});
