import { describe, expect, it } from 'vitest';
import { consumerLimitExceeded, providerQuotaExceeded, retryAfterSeconds, shortageText } from '../../../sidecar/ratelimit/errors.js';
import type { Limit, Shortage } from '../../../sidecar/ratelimit/limits.js';
import { testLimit } from '../../support/runtime.js';

const limit = (name: string, resource: Limit['resource'], window: Limit['window'], capacity: number): Limit => testLimit('consumer', name, resource, window, capacity);
const short = (l: Limit, requested: number, remaining: number, waitMs: number): Shortage => ({ limit: l, requested, remaining, waitMs });

describe('rate-limit refusals', () => {
  it('Retry-After is whole seconds, rounded up, at least 1', () => {
    expect([retryAfterSeconds(1), retryAfterSeconds(999), retryAfterSeconds(1_000), retryAfterSeconds(1_001), retryAfterSeconds(3_600_000)]).toEqual([1, 1, 1, 2, 3_600]);
  });

  it('names the resource, window, limit, request, what is left and when to retry', () => {
    const tpm = limit('team-a/chat', 'tokens', 'minute', 200_000);
    expect(shortageText(short(tpm, 1_200, 310, 3_200))).toBe('tokens per minute: limit 200000, requested 1200, remaining 310; retry in 4 s');
    expect(shortageText(short(limit('ns/q', 'output_tokens', 'minute', 10), 20, 10, Infinity))).toBe('output tokens per minute: limit 10, requested 20, remaining 10; the request alone exceeds the limit');
    expect(shortageText(short(limit('ns/q', 'input_tokens', 'day', 10), 2, 1, 10))).toBe('input tokens per day: limit 10, requested 2, remaining 1; retry in 1 s');
  });

  it('a consumer refusal is 429 rate_limit_exceeded with OpenAI\'s type, never a key or prompt', () => {
    const rpm = limit('team-a/chat', 'requests', 'minute', 60);
    rpm.bucket.take(60, 0);
    const e = consumerLimitExceeded(short(rpm, 1, 0, 1_000), [rpm], 0);
    expect([e.status, e.type, e.code, e.param]).toEqual([429, 'requests', 'rate_limit_exceeded', null]);
    expect(e.message).toBe('Rate limit reached: RateLimit team-a/chat, requests per minute: limit 60, requested 1, remaining 0; retry in 1 s.');
    expect(e.headers).toEqual({
      'x-ratelimit-limit-requests': '60',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '1m0s',
      'retry-after': '1',
      'retry-after-ms': '1000',
    });
  });

  it('a provider refusal names a ProviderQuota or a target quota', () => {
    const pq = { ...limit('team-a/openai-key', 'tokens', 'minute', 1_000), kind: 'provider' as const };
    expect(providerQuotaExceeded('chat', short(pq, 500, 100, 24_000)).message).toBe(
      'Provider rate limit reached: no target of route "chat" has room; the soonest is ProviderQuota team-a/openai-key, tokens per minute: limit 1000, requested 500, remaining 100; retry in 24 s.',
    );
    const own = { ...limit('team-a/chat/primary', 'requests', 'minute', 1), kind: 'provider' as const };
    const e = providerQuotaExceeded('chat', short(own, 1, 0, 60_000));
    expect(e.message).toContain('the soonest is the quota of target team-a/chat/primary, requests per minute');
    expect(e.headers).toEqual({ 'retry-after': '60', 'retry-after-ms': '60000' });
  });
});
