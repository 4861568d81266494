import { describe, expect, it } from 'vitest';
import { MAX_PROVIDER_BACKOFF_MS, parseGoDuration, parseResetTime, providerSignal } from '../../../sidecar/ratelimit/provider-signals.js';

const NOW = Date.parse('2026-03-10T12:00:00Z');
const at = (s: number) => new Date(NOW + s * 1000).toISOString().replace('.000Z', 'Z');

describe('parseGoDuration (OpenAI x-ratelimit-reset-*)', () => {
  it.each([
    ['6ms', 6],
    ['20ms', 20],
    ['1s', 1_000],
    ['1.5s', 1_500],
    ['6m0s', 360_000],
    ['1h2m3s', 3_723_000],
    ['2m59.56s', 179_560],
    ['0s', 0],
    ['0', 0],
    ['.5s', 500],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['2000000ns', 2],
    [' 7s ', 7_000],
  ])('%s → %d ms', (text, ms) => {
    expect(parseGoDuration(text)).toBeCloseTo(ms, 9);
  });

  it.each(['', 's', '6', '-1s', '+1s', '1x', '1s2', '1 s', 'ms', '1e3s', 'NaNs', 'Infinitys', '1.2.3s', `${'9'.repeat(80)}s`, '1h 2m'])('garbage %j → undefined', (text) => {
    expect(parseGoDuration(text)).toBeUndefined();
  });
});

describe('parseResetTime (Anthropic anthropic-ratelimit-*-reset)', () => {
  it('RFC 3339 times, as ms from now (negative when past)', () => {
    expect(parseResetTime('2026-03-10T12:00:20Z', NOW)).toBe(20_000);
    expect(parseResetTime('2026-03-10T12:00:20.250Z', NOW)).toBe(20_250);
    expect(parseResetTime('2026-03-10T14:00:20+02:00', NOW)).toBe(20_000);
    expect(parseResetTime('2026-03-10T11:59:50Z', NOW)).toBe(-10_000);
  });

  it.each(['20', 'tomorrow', 'Tue, 10 Mar 2026 12:00:20 GMT', '2026-03-10', '2026-03-10T12:00:20', '2026-13-10T12:00:20Z', `2026-03-10T12:00:20${'0'.repeat(70)}Z`])('garbage %j → undefined', (text) => {
    expect(parseResetTime(text, NOW)).toBeUndefined();
  });
});

describe('providerSignal', () => {
  it('a limit with nothing remaining backs off until one unit is back: its reset (the time until it is whole) / its limit', () => {
    // 600 a minute, empty: whole again in 60 s, one request back every 100 ms.
    expect(providerSignal(200, { 'x-ratelimit-limit-requests': '600', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m0s' }, NOW)).toEqual({ waitMs: 100, resource: 'requests' });
    expect(providerSignal(200, { 'x-ratelimit-limit-requests': '5', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1m0s' }, NOW)).toEqual({ waitMs: 12_000, resource: 'requests' });
    expect(
      providerSignal(200, { 'anthropic-ratelimit-requests-limit': '50', 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': at(60) }, NOW),
    ).toEqual({ waitMs: 1_200, resource: 'requests' });
    // A limit that is not a whole number above 0 is no limit: the whole reset.
    for (const limit of ['0', 'x', '-5', '1.5']) {
      expect(providerSignal(200, { 'x-ratelimit-limit-requests': limit, 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '4s' }, NOW)).toEqual({ waitMs: 4_000, resource: 'requests' });
    }
  });

  it('OpenAI, without a limit header: a limit with nothing remaining backs off until its reset', () => {
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '1.5s', 'x-ratelimit-remaining-tokens': '1200', 'x-ratelimit-reset-tokens': '30s' }, NOW)).toEqual({
      waitMs: 1_500,
      resource: 'requests',
    });
    expect(providerSignal(200, { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '12s' }, NOW)).toEqual({ waitMs: 12_000, resource: 'tokens' });
  });

  it('Anthropic, without a limit header: each limit (requests, tokens, input and output tokens) with nothing remaining backs off until its reset time', () => {
    for (const [header, resource] of [
      ['requests', 'requests'],
      ['tokens', 'tokens'],
      ['input-tokens', 'input_tokens'],
      ['output-tokens', 'output_tokens'],
    ] as const) {
      expect(providerSignal(200, { [`anthropic-ratelimit-${header}-remaining`]: '0', [`anthropic-ratelimit-${header}-reset`]: at(9) }, NOW)).toEqual({ waitMs: 9_000, resource });
    }
  });

  it('the longest of several exhausted limits wins', () => {
    const h = {
      'anthropic-ratelimit-requests-remaining': '0',
      'anthropic-ratelimit-requests-reset': at(2),
      'anthropic-ratelimit-output-tokens-remaining': '0',
      'anthropic-ratelimit-output-tokens-reset': at(7),
      'anthropic-ratelimit-input-tokens-remaining': '40000',
      'anthropic-ratelimit-input-tokens-reset': at(50),
    };
    expect(providerSignal(200, h, NOW)).toEqual({ waitMs: 7_000, resource: 'output_tokens' });
  });

  it('remaining above 0, or no reset, asks for nothing', () => {
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': '1', 'x-ratelimit-reset-requests': '59s' }, NOW)).toBeUndefined();
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': '0' }, NOW)).toBeUndefined();
    expect(providerSignal(200, { 'anthropic-ratelimit-tokens-remaining': '0', 'anthropic-ratelimit-tokens-reset': at(-5) }, NOW)).toBeUndefined();
    expect(providerSignal(200, {}, NOW)).toBeUndefined();
  });

  it('429: retry-after-ms (finer) before retry-after, in seconds or as an HTTP date', () => {
    expect(providerSignal(429, { 'retry-after-ms': '1250', 'retry-after': '2' }, NOW)).toEqual({ waitMs: 1_250, resource: 'any' });
    expect(providerSignal(429, { 'retry-after': '20' }, NOW)).toEqual({ waitMs: 20_000, resource: 'any' });
    expect(providerSignal(429, { 'retry-after': new Date(NOW + 30_000).toUTCString() }, NOW)).toEqual({ waitMs: 30_000, resource: 'any' });
    expect(providerSignal(429, {}, NOW)).toBeUndefined();
    expect(providerSignal(429, { 'retry-after': '0' }, NOW)).toBeUndefined();
  });

  it('429 with an exhausted limit too: the limit names the resource, the longest wait wins', () => {
    expect(providerSignal(429, { 'retry-after': '20', 'anthropic-ratelimit-tokens-remaining': '0', 'anthropic-ratelimit-tokens-reset': at(20) }, NOW)).toEqual({ waitMs: 20_000, resource: 'tokens' });
    expect(providerSignal(429, { 'retry-after': '25', 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '3s' }, NOW)).toEqual({ waitMs: 25_000, resource: 'any' });
  });

  it('Retry-After outside a 429 (503, 529) is not a rate limit', () => {
    expect(providerSignal(503, { 'retry-after': '20' }, NOW)).toBeUndefined();
    expect(providerSignal(529, { 'retry-after': '20' }, NOW)).toBeUndefined();
  });

  it('clamps: never longer than MAX_PROVIDER_BACKOFF_MS (60 s), never longer than the provider named', () => {
    expect(MAX_PROVIDER_BACKOFF_MS).toBe(60_000);
    expect(providerSignal(200, { 'x-ratelimit-remaining-tokens': '0', 'x-ratelimit-reset-tokens': '6m0s' }, NOW)).toEqual({ waitMs: 60_000, resource: 'tokens' });
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '24h0m0s' }, NOW)!.waitMs).toBe(60_000);
    expect(providerSignal(200, { 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': '2099-01-01T00:00:00Z' }, NOW)!.waitMs).toBe(60_000);
    expect(providerSignal(429, { 'retry-after': '86400' }, NOW)!.waitMs).toBe(60_000);
    expect(providerSignal(429, { 'retry-after-ms': '99999999999999999999' }, NOW)!.waitMs).toBe(60_000);
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '6ms' }, NOW)).toEqual({ waitMs: 6, resource: 'requests' });
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': '0.4ms' }, NOW)).toEqual({ waitMs: 1, resource: 'requests' });
  });

  it('ignores garbage: remaining that is not a whole number, resets that do not parse, values too long, repeated headers beyond the first', () => {
    const garbage = ['', '-0', '0.0', 'zero', '0x0', '0 0', ' ', '0'.repeat(100), 'NaN'];
    for (const remaining of garbage) {
      expect(providerSignal(200, { 'x-ratelimit-remaining-requests': remaining, 'x-ratelimit-reset-requests': '20s' }, NOW)).toBeUndefined();
    }
    for (const reset of ['20', '-20s', 'soon', '1e9s', `${'1'.repeat(70)}s`, at(20)]) {
      expect(providerSignal(200, { 'x-ratelimit-remaining-requests': '0', 'x-ratelimit-reset-requests': reset }, NOW)).toBeUndefined();
    }
    for (const reset of ['20s', '1700000000', 'next week']) {
      expect(providerSignal(200, { 'anthropic-ratelimit-requests-remaining': '0', 'anthropic-ratelimit-requests-reset': reset }, NOW)).toBeUndefined();
    }
    for (const ra of ['-5', 'soon', '1e3', `${'9'.repeat(70)}`]) expect(providerSignal(429, { 'retry-after': ra }, NOW)).toBeUndefined();
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': ['0', '5'], 'x-ratelimit-reset-requests': ['2s', 'x'] }, NOW)).toEqual({ waitMs: 2_000, resource: 'requests' });
    expect(providerSignal(200, { 'x-ratelimit-remaining-requests': ['5', '0'], 'x-ratelimit-reset-requests': '2s' }, NOW)).toBeUndefined();
  });
});
