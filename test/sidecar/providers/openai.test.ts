import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ChatRequest } from '../../../sidecar/openai-schema.js';
import { createOpenAIAdapter } from '../../../sidecar/providers/openai.js';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { type TargetContext } from '../../../sidecar/providers/types.js';
import { SseParser } from '../../../sidecar/sse.js';

const ctx = (over: Partial<TargetContext> = {}): TargetContext => ({
  model: 'gpt-4o-mini',
  baseURL: 'https://api.openai.com/v1',
  apiKey: 'sk-test',
  created: 1727000000,
  responseId: 'chatcmpl-x',
  ...over,
});

const request: ChatRequest = {
  model: 'support-bot',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'What is the weather in Paris?' },
  ],
  tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } }],
  max_tokens: 100,
  temperature: 0.2,
  stream_options: { include_usage: false },
};

describe('OpenAI-wire adapters: request', () => {
  it('openai: replaces the model, sends max_completion_tokens and always asks for stream usage', () => {
    const out = createOpenAIAdapter('openai').chatRequest(request, ctx(), true);
    expect(out.url).toBe('https://api.openai.com/v1/chat/completions');
    expect(out.headers).toEqual({ 'content-type': 'application/json', accept: 'application/json', authorization: 'Bearer sk-test' });
    expect(JSON.parse(out.body)).toEqual({
      model: 'gpt-4o-mini',
      messages: request.messages,
      tools: request.tools,
      max_completion_tokens: 100,
      temperature: 0.2,
      stream: true,
      stream_options: { include_usage: true },
    });
  });

  it('mistral: max_tokens and no stream_options (it rejects unknown fields and always reports usage)', () => {
    const out = createOpenAIAdapter('mistral').chatRequest(request, ctx({ baseURL: 'https://api.mistral.ai/v1', model: 'mistral-small-latest' }), true);
    const body = JSON.parse(out.body);
    expect(out.url).toBe('https://api.mistral.ai/v1/chat/completions');
    expect(body.max_tokens).toBe(100);
    expect(body).not.toHaveProperty('stream_options');
    expect(body).not.toHaveProperty('max_completion_tokens');
  });

  it.each([
    ['deepseek', 'https://api.deepseek.com/v1'],
    ['qwen', 'https://dashscope-intl.aliyuncs.com/compatible-mode/v1'],
    ['openrouter', 'https://openrouter.ai/api/v1'],
  ] as const)('%s has its documented default base URL', (name, base) => {
    const a = createOpenAIAdapter(name);
    expect(a.defaultBaseURL).toBe(base);
    expect(a.chatRequest(request, ctx({ baseURL: base }), false).url).toBe(`${base}/chat/completions`);
  });

  it('non-stream requests carry no stream_options and no key header when there is no key', () => {
    const out = createOpenAIAdapter('openai-compatible').chatRequest(request, ctx({ apiKey: undefined, baseURL: 'http://127.0.0.1:11434/v1' }), false);
    expect(out.headers).not.toHaveProperty('authorization');
    expect(JSON.parse(out.body)).toMatchObject({ stream: false });
    expect(JSON.parse(out.body)).not.toHaveProperty('stream_options');
  });

  it('embeddings go to /embeddings with the provider model', () => {
    const out = createOpenAIAdapter('openai').embeddingsRequest!({ model: 'embed', input: ['a', 'b'] }, ctx({ model: 'text-embedding-3-small' }));
    expect(out.url).toBe('https://api.openai.com/v1/embeddings');
    expect(JSON.parse(out.body)).toEqual({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    expect(createOpenAIAdapter('deepseek').embeddingsRequest).toBeUndefined();
  });
});

describe('OpenAI-wire adapters: responses', () => {
  it('passes a completion through and normalises usage (DeepSeek cache hits included)', () => {
    const body = {
      id: 'x',
      object: 'chat.completion',
      created: 1,
      model: 'deepseek-chat',
      choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 100, completion_tokens: 5, total_tokens: 105, prompt_cache_hit_tokens: 80, prompt_cache_miss_tokens: 20 },
    };
    const { completion, usage } = createOpenAIAdapter('deepseek').chatResponse(body, ctx());
    expect(completion).toBe(body);
    expect(usage).toEqual({ inputTokens: 100, outputTokens: 5, cacheReadTokens: 80, cacheWriteTokens: 0, reasoningTokens: 0 });
    // the client's usage: DeepSeek's own fields stay, OpenAI's are merged in
    expect(completion.usage).toEqual({
      prompt_tokens: 100,
      completion_tokens: 5,
      total_tokens: 105,
      prompt_cache_hit_tokens: 80,
      prompt_cache_miss_tokens: 20,
      prompt_tokens_details: { cached_tokens: 80, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
  });

  it('a chunk without choices is a protocol error unless it is a usage-only chunk (OpenRouter)', () => {
    const t = createOpenAIAdapter('openrouter').chatStream(ctx());
    expect(() => t.push({ data: '{"object":"chat.completion.chunk"}' })).toThrow(UpstreamProtocolError);
    expect(t.push({ data: '{"object":"chat.completion.chunk","usage":{"prompt_tokens":194,"completion_tokens":2,"prompt_tokens_details":{"cache_write_tokens":100}}}' })).toEqual([]);
    expect(t.usage).toEqual({ inputTokens: 194, outputTokens: 2, cacheReadTokens: 0, cacheWriteTokens: 100, reasoningTokens: 0 });
  });

  it('reads error messages of the OpenAI shape and others', () => {
    const a = createOpenAIAdapter('openai');
    expect(a.errorInfo('{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}', ctx(), {}).message).toBe('Rate limit reached');
    expect(a.errorInfo('{"message":"Unauthorized","request_id":"x"}', ctx(), {}).message).toBe('Unauthorized');
    expect(a.errorInfo('<html>', ctx(), {}).message).toBeUndefined();
  });

  it('translates a recorded stream with tool calls and usage, fed one byte at a time', () => {
    const raw = readFileSync(new URL('./fixtures/openai/stream-tools-usage.sse', import.meta.url));
    const translator = createOpenAIAdapter('openai').chatStream(ctx());
    const parser = new SseParser();
    const chunks = [];
    for (const byte of raw) for (const ev of parser.push(new Uint8Array([byte]))) chunks.push(...translator.push(ev));
    expect(translator.finished).toBe(true);
    expect(chunks).toHaveLength(4); // the usage-only chunk is withheld (the client decides)
    // what the client receives (the chunk as serialized) carries no usage
    expect(chunks.every((c) => !('usage' in JSON.parse(JSON.stringify(c))))).toBe(true);
    const args = chunks.flatMap((c) => c.choices[0]!.delta.tool_calls ?? []).map((t) => t.function?.arguments ?? '').join('');
    expect(JSON.parse(args)).toEqual({ location: 'Paris' });
    expect(chunks[3]!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(translator.usage).toEqual({ inputTokens: 82, outputTokens: 17, cacheReadTokens: 64, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect(translator.responseModel).toBe('gpt-4o-mini-2024-07-18');
  });

  it('throws on an error object inside the stream (OpenRouter mid-stream errors)', () => {
    const t = createOpenAIAdapter('openrouter').chatStream(ctx());
    expect(() => t.push({ data: '{"error":{"message":"Provider returned error","code":502}}' })).toThrow(UpstreamStreamError);
    expect(() => t.push({ data: 'not json' })).toThrow(/not JSON/);
  });
});
