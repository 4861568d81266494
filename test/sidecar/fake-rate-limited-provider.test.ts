import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { goDuration, openaiPromptTokens, startRateLimitedProvider, type RateLimitedProvider } from '../support/fake-rate-limited-provider.js';

/**
 * The rate-limited fake provider the fleet e2e test and the bench use (test/support): its buckets,
 * its token counting and its 429 in OpenAI's wire format, read by the official SDK.
 */
let provider: RateLimitedProvider | undefined;
afterEach(async () => {
  await provider?.close();
  provider = undefined;
});

const ask = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'hello there' }], max_tokens: 10 };
const post = (p: RateLimitedProvider, body: unknown = ask) => fetch(`${p.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('fake rate-limited provider', () => {
  it('writes durations as OpenAI does (Go format, to the millisecond)', () => {
    expect([0, 6, 999, 1000, 1500, 20_250, 60_000, 90_500, 360_000].map(goDuration)).toEqual(['0s', '6ms', '999ms', '1s', '1.5s', '20.25s', '1m0s', '1m30.5s', '6m0s']);
  });

  it('counts a chat prompt as OpenAI does: o200k tokens, 3 per message, 3 to prime the reply', () => {
    // "hello there" is 2 tokens in o200k_base.
    expect(openaiPromptTokens(ask)).toBe(3 + 3 + 2);
  });

  it('serves the whole limit at once, then refills continuously; beyond it, 429 in OpenAI’s format, taking nothing', async () => {
    let t = 1_000_000;
    const p = (provider = await startRateLimitedProvider({ now: () => t }));
    p.limit('gpt-4o-mini', { requestsPerMinute: 3, tokensPerMinute: 1_000 });
    for (let i = 0; i < 3; i++) {
      const res = await post(p);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number }; choices: Array<{ finish_reason: string }> };
      expect(body.usage).toMatchObject({ prompt_tokens: 8, completion_tokens: 10 });
      expect(body.choices[0]!.finish_reason).toBe('length');
      expect(res.headers.get('x-ratelimit-remaining-requests')).toBe(String(2 - i));
      expect(res.headers.get('x-ratelimit-remaining-tokens')).toBe(String(1_000 - 18 * (i + 1)));
    }
    const refused = await post(p);
    expect(refused.status).toBe(429);
    expect(await refused.json()).toEqual({
      error: {
        message:
          'Rate limit reached for gpt-4o-mini in organization org-fake on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit https://platform.openai.com/account/rate-limits to learn more.',
        type: 'requests',
        param: null,
        code: 'rate_limit_exceeded',
      },
    });
    expect(Object.fromEntries([...refused.headers].filter(([k]) => k.startsWith('x-ratelimit') || k === 'retry-after'))).toEqual({
      'x-ratelimit-limit-requests': '3',
      'x-ratelimit-remaining-requests': '0',
      'x-ratelimit-reset-requests': '1m0s',
      'x-ratelimit-limit-tokens': '1000',
      'x-ratelimit-remaining-tokens': '946',
      'x-ratelimit-reset-tokens': '3.24s',
      'retry-after': '20',
    });
    t += 20_000; // one request refilled (3 per minute)
    expect((await post(p)).status).toBe(200);
    expect((await post(p)).status).toBe(429);
    expect(p.stats('gpt-4o-mini')).toMatchObject({ served: 4, refused: 2, over: 0, tokens: 4 * 18, refusedBy: { requests: 2 } });
  });

  it('reserves prompt + max_tokens of the tokens limit, and names it when that is short', async () => {
    const t = 0;
    const p = (provider = await startRateLimitedProvider({ now: () => t }));
    p.limit('gpt-4o-mini', { tokensPerMinute: 100 });
    expect((await post(p, { ...ask, max_tokens: 80 })).status).toBe(200); // 88
    const res = await post(p, { ...ask, max_tokens: 80 });
    expect(res.status).toBe(429);
    const body = (await res.json()) as { error: { type: string; message: string } };
    expect(body.error.type).toBe('tokens');
    expect(body.error.message).toContain('on tokens per min (TPM): Limit 100, Used 88, Requested 88. Please try again in 45.6s.');
  });

  it('observing instead of enforcing: serves everything and counts what would not have fit', async () => {
    const t = 0;
    const p = (provider = await startRateLimitedProvider({ now: () => t }));
    p.limit('gpt-4o', { requestsPerMinute: 2 }, { enforce: false });
    for (let i = 0; i < 5; i++) expect((await post(p, { ...ask, model: 'gpt-4o' })).status).toBe(200);
    expect(p.stats('gpt-4o')).toMatchObject({ served: 5, refused: 0, over: 3 });
  });

  it('the official SDK reads its 429 as a RateLimitError with the provider’s headers', async () => {
    const p = (provider = await startRateLimitedProvider());
    p.limit('gpt-4o-mini', { requestsPerMinute: 1 });
    const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${p.url}/v1`, maxRetries: 0 });
    await client.chat.completions.create(ask);
    const err = await client.chat.completions.create(ask).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const e = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(e.status).toBe(429);
    expect(e.code).toBe('rate_limit_exceeded');
    expect(e.type).toBe('requests');
    expect(e.headers.get('x-ratelimit-limit-requests')).toBe('1');
    expect(Number(e.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  });
});
