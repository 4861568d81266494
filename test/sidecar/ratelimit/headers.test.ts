import { describe, expect, it } from 'vitest';
import { formatResetDuration, rateLimitHeaders, tightest } from '../../../sidecar/ratelimit/headers.js';
import type { Limit } from '../../../sidecar/ratelimit/limits.js';
import { testLimit } from '../../support/runtime.js';

const limit = (name: string, resource: Limit['resource'], window: Limit['window'], capacity: number): Limit => testLimit('consumer', name, resource, window, capacity);

describe('formatResetDuration (as OpenAI writes x-ratelimit-reset-*)', () => {
  it.each([
    [0, '0s'],
    [-5, '0s'],
    [20, '20ms'],
    [0.2, '1ms'],
    [999, '999ms'],
    [1_000, '1s'],
    [1_500, '1.5s'],
    [1_020, '1.02s'],
    [59_999, '59.999s'],
    [60_000, '1m0s'],
    [360_000, '6m0s'],
    [61_250, '1m1.25s'],
    [3_600_000, '1h0m0s'],
    [3_723_000, '1h2m3s'],
    [86_400_000, '24h0m0s'],
  ])('%d ms → %s', (ms, text) => {
    expect(formatResetDuration(ms)).toBe(text);
  });
});

describe('rateLimitHeaders', () => {
  it('takes each resource from the limit with the least left', () => {
    const rpm = limit('ns/a', 'requests', 'minute', 60);
    const rpd = limit('ns/a', 'requests', 'day', 1_000);
    const tpm = limit('ns/b', 'tokens', 'minute', 200_000);
    rpm.bucket.take(10, 0);
    rpd.bucket.take(995, 0);
    tpm.bucket.take(1_200, 0);
    expect(tightest([rpm, rpd, tpm], 'requests', 0)).toBe(rpd);
    expect(rateLimitHeaders([rpm, rpd, tpm], 0)).toEqual({
      'x-ratelimit-limit-requests': '1000',
      'x-ratelimit-remaining-requests': '5',
      'x-ratelimit-reset-requests': '23h52m48s', // 995 at 1000 per day
      'x-ratelimit-limit-tokens': '200000',
      'x-ratelimit-remaining-tokens': '198800',
      'x-ratelimit-reset-tokens': '360ms',
    });
  });

  it('on a tie names the smaller limit; leaves out a resource no limit counts', () => {
    const big = limit('ns/a', 'requests', 'day', 100);
    const small = limit('ns/b', 'requests', 'minute', 10);
    big.bucket.take(100, 0);
    small.bucket.take(10, 0);
    expect(tightest([big, small], 'requests', 0)).toBe(small);
    expect(rateLimitHeaders([big, small], 0)).toEqual({ 'x-ratelimit-limit-requests': '10', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m0s' });
    expect(rateLimitHeaders([], 0)).toEqual({});
  });
});
