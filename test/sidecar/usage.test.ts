import { describe, expect, it } from 'vitest';
import { ADAPTERS } from '../../sidecar/providers/index.js';
import type { TargetContext } from '../../sidecar/providers/types.js';
import { mergeOpenAIUsage, usageFromOpenAI, usageToOpenAI } from '../../sidecar/usage.js';
import { translateStream } from '../support/recorded-exchanges.js';
import { USAGE_CASES, readFixture, sseFrames } from '../support/usage-exchanges.js';

/**
 * Issue 11 point 2: every provider's cache reads, cache writes and reasoning tokens reach the
 * client as OpenAI's usage.prompt_tokens_details.cached_tokens / cache_write_tokens and
 * completion_tokens_details.reasoning_tokens, streamed and non-streamed, checked against a
 * recorded exchange from each provider's own documentation (test/support/usage-exchanges.ts).
 */

const ctx = (model: string): TargetContext => ({ model, baseURL: 'https://upstream.test', apiKey: 'k', created: 1750000000, responseId: 'chatcmpl-req-1' });

for (const c of USAGE_CASES) describe(`${c.provider} usage, recorded from ${c.docs}`, () => {
  const adapter = ADAPTERS[c.provider];

  it('non-stream: the client body carries OpenAI usage fields, provider extras kept', () => {
    const native: unknown = JSON.parse(readFixture(c, c.response).toString('utf8'));
    const { completion } = adapter.chatResponse(native, ctx(c.model));
    // What the client receives is the completion as serialized.
    const sent = JSON.parse(JSON.stringify(completion)) as { usage: unknown };
    expect(sent.usage).toEqual(c.nonStream);
  });

  it.each([1, 7, 1 << 20])('stream (fed %i bytes at a time): the usage chunk paygo sends carries the same fields', (size) => {
    const bytes = readFixture(c, c.stream);
    const { chunks, translator } = translateStream(adapter, bytes, size, ctx(c.model));
    expect(translator.finished).toBe(true);
    expect(chunks.length).toBeGreaterThan(0);
    // The provider's own usage never reaches the client inside a content chunk…
    expect(chunks.filter((ch) => JSON.parse(JSON.stringify(ch)).usage !== undefined)).toEqual([]);
    // …the client's usage chunk is built from the normalised usage (chat.ts: usageToOpenAI).
    expect(usageToOpenAI(translator.usage!)).toEqual(c.streamed);
  });

  it('the stream fixture frames back to its exact bytes', () => {
    const text = readFixture(c, c.stream).toString('utf8');
    expect(sseFrames(text).join('')).toBe(text);
    expect(sseFrames(text).length).toBeGreaterThan(2);
  });
});

describe('usageFromOpenAI reads every OpenAI-compatible provider\'s fields', () => {
  it.each([
    ['OpenAI cached_tokens', { prompt_tokens: 2006, completion_tokens: 300, prompt_tokens_details: { cached_tokens: 1920 } }, { inputTokens: 2006, outputTokens: 300, cacheReadTokens: 1920, cacheWriteTokens: 0, reasoningTokens: 0 }],
    ['DeepSeek prompt_cache_hit_tokens', { prompt_tokens: 100, completion_tokens: 5, prompt_cache_hit_tokens: 80, prompt_cache_miss_tokens: 20 }, { inputTokens: 100, outputTokens: 5, cacheReadTokens: 80, cacheWriteTokens: 0, reasoningTokens: 0 }],
    [
      'DeepSeek reasoner reasoning_tokens, with cached_tokens mirrored',
      { prompt_tokens: 100, completion_tokens: 50, prompt_tokens_details: { cached_tokens: 64 }, prompt_cache_hit_tokens: 64, completion_tokens_details: { reasoning_tokens: 40 } },
      { inputTokens: 100, outputTokens: 50, cacheReadTokens: 64, cacheWriteTokens: 0, reasoningTokens: 40 },
    ],
    [
      'Qwen explicit cache: prompt_tokens_details.cache_creation_input_tokens (first request of the context-cache guide: 1605 created, 13 neither)',
      { prompt_tokens: 1618, completion_tokens: 20, prompt_tokens_details: { cache_creation: { ephemeral_5m_input_tokens: 1605 }, cache_creation_input_tokens: 1605, cache_type: 'ephemeral', cached_tokens: 0 } },
      { inputTokens: 1618, outputTokens: 20, cacheReadTokens: 0, cacheWriteTokens: 1605, reasoningTokens: 0 },
    ],
    [
      'Qwen-VL implicit cache with null detail fields (context-cache guide)',
      { completion_tokens: 93, prompt_tokens: 1316, total_tokens: 1409, completion_tokens_details: null, prompt_tokens_details: { audio_tokens: null, cached_tokens: 1152 } },
      { inputTokens: 1316, outputTokens: 93, cacheReadTokens: 1152, cacheWriteTokens: 0, reasoningTokens: 0 },
    ],
    [
      'OpenRouter cache_write_tokens',
      { prompt_tokens: 194, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 100 } },
      { inputTokens: 194, outputTokens: 2, cacheReadTokens: 0, cacheWriteTokens: 100, reasoningTokens: 0 },
    ],
  ])('%s', (_name, raw, usage) => {
    expect(usageFromOpenAI(raw)).toEqual(usage);
  });

  it('is undefined without a usage object', () => {
    expect(usageFromOpenAI(null)).toBeUndefined();
    expect(usageFromOpenAI(undefined)).toBeUndefined();
    expect(usageFromOpenAI([1])).toBeUndefined();
  });
});

describe('mergeOpenAIUsage', () => {
  it('keeps the provider object and the keys inside its detail objects, and replaces null details', () => {
    const raw = { prompt_tokens: 1316, completion_tokens: 93, total_tokens: 1409, completion_tokens_details: null, prompt_tokens_details: { audio_tokens: null, cached_tokens: 1152 } };
    const merged = mergeOpenAIUsage(raw, usageFromOpenAI(raw)!);
    expect(merged).toEqual({
      prompt_tokens: 1316,
      completion_tokens: 93,
      total_tokens: 1409,
      completion_tokens_details: { reasoning_tokens: 0 },
      prompt_tokens_details: { audio_tokens: null, cached_tokens: 1152, cache_write_tokens: 0 },
    });
    // the provider's object is left as it was
    expect(raw.prompt_tokens_details).toEqual({ audio_tokens: null, cached_tokens: 1152 });
  });

  it('fills total_tokens when the provider gave none', () => {
    expect(mergeOpenAIUsage({ prompt_tokens: 3, completion_tokens: 4 }, usageFromOpenAI({ prompt_tokens: 3, completion_tokens: 4 })!).total_tokens).toBe(7);
  });
});
