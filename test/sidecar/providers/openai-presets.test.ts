import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { RetrySchema } from '../../../crds/src/index.js';
import { Cancel } from '../../../sidecar/cancel.js';
import { ApiError } from '../../../sidecar/errors.js';
import type { ChatCompletion } from '../../../sidecar/openai-schema.js';
import { CircuitBreaker } from '../../../sidecar/router/breaker.js';
import { dispatch } from '../../../sidecar/router/dispatch.js';
import type { RuntimeRoute, RuntimeTarget } from '../../../sidecar/router/runtime.js';
import { ADAPTERS } from '../../../sidecar/providers/index.js';
import { createOpenAIAdapter, usageFromPerplexity, usageFromXAI } from '../../../sidecar/providers/openai.js';
import { UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { type TargetContext } from '../../../sidecar/providers/types.js';
import { chatRequest, fixtures, translateStream } from '../../support/recorded-exchanges.js';

/**
 * Issue 13: the OpenAI-compatible presets xai, groq, together, fireworks, cerebras and
 * perplexity. Each is a dialect of the OpenAI wire format (sidecar/providers/openai.ts DIALECTS):
 * default base URL, max-tokens field, stream usage option, documented unsupported parameters,
 * usage and finish_reason quirks. Usage of each preset's recorded non-stream and stream exchange
 * is also checked field by field in test/sidecar/usage.test.ts (test/support/usage-exchanges.ts).
 */

const PRESETS = ['xai', 'groq', 'together', 'fireworks', 'cerebras', 'perplexity'] as const;
type Preset = (typeof PRESETS)[number];

const FIXTURES = join(import.meta.dirname, 'fixtures');
const chat = chatRequest('paygo-route');
const user = [{ role: 'user', content: 'Hello!' }];

const ctx = (model: string, over: Partial<TargetContext> = {}): TargetContext => ({
  model,
  baseURL: ADAPTERS.xai.defaultBaseURL!,
  apiKey: 'test-key',
  created: 1750000000,
  responseId: 'chatcmpl-req-1',
  ...over,
});

const MODELS: Record<Preset, string> = {
  xai: 'grok-4-0709',
  groq: 'llama-3.3-70b-versatile',
  together: 'meta-llama/Llama-3.3-70B-Instruct-Turbo',
  fireworks: 'accounts/fireworks/models/llama-v3p1-8b-instruct',
  cerebras: 'llama3.1-8b',
  perplexity: 'sonar',
};

function body(preset: Preset, req: Record<string, unknown>, stream = false, model = MODELS[preset]): Record<string, unknown> {
  const a = ADAPTERS[preset];
  return JSON.parse(a.chatRequest(chat(req), ctx(model, { baseURL: a.defaultBaseURL! }), stream).body) as Record<string, unknown>;
}

function refusal(preset: Preset, req: Record<string, unknown>, model = MODELS[preset]): ApiError {
  try {
    body(preset, req, false, model);
  } catch (e) {
    expect(e).toBeInstanceOf(ApiError);
    return e as ApiError;
  }
  throw new Error(`${preset} took ${JSON.stringify(req)}`);
}

describe('OpenAI-compatible presets: endpoints and request shape', () => {
  it.each([
    ['xai', 'https://api.x.ai/v1', 'max_completion_tokens', true],
    ['groq', 'https://api.groq.com/openai/v1', 'max_completion_tokens', true],
    ['together', 'https://api.together.xyz/v1', 'max_tokens', true],
    ['fireworks', 'https://api.fireworks.ai/inference/v1', 'max_tokens', false],
    ['cerebras', 'https://api.cerebras.ai/v1', 'max_completion_tokens', true],
    ['perplexity', 'https://api.perplexity.ai', 'max_tokens', false],
  ] as const)('%s: POST %s/chat/completions with Bearer auth, %s, stream usage option %s', (preset, base, maxField, streamUsage) => {
    const a = ADAPTERS[preset];
    expect(a.provider).toBe(preset);
    expect(a.defaultBaseURL).toBe(base);
    const up = a.chatRequest(chat({ messages: user, max_tokens: 64, stream_options: { include_usage: false } }), ctx(MODELS[preset], { baseURL: base }), true);
    expect(up.url).toBe(`${base}/chat/completions`);
    expect(up.headers).toEqual({ 'content-type': 'application/json', accept: 'application/json', authorization: 'Bearer test-key' });
    const sent = JSON.parse(up.body) as Record<string, unknown>;
    expect(sent).toMatchObject({ model: MODELS[preset], messages: user, stream: true, [maxField]: 64 });
    expect(Object.keys(sent).filter((k) => k.startsWith('max_'))).toEqual([maxField]);
    // The client's own stream_options never goes upstream; paygo asks for usage where the provider takes it.
    if (streamUsage) expect(sent.stream_options).toEqual({ include_usage: true });
    else expect(sent).not.toHaveProperty('stream_options');
  });

  it('a target baseURL override is honoured (trailing slash included)', () => {
    expect(ADAPTERS.groq.chatRequest(chat({ messages: user }), ctx('m', { baseURL: 'http://127.0.0.1:9999/groq/v1/' }), false).url).toBe('http://127.0.0.1:9999/groq/v1/chat/completions');
  });

  it.each([
    ['xai', false],
    ['groq', false],
    ['together', true],
    ['fireworks', true],
    ['cerebras', false],
    ['perplexity', false],
  ] as const)('%s embeddings: %s', (preset, offered) => {
    const a = ADAPTERS[preset];
    expect(a.embeddingsRequest !== undefined).toBe(offered);
    if (offered) {
      const up = a.embeddingsRequest!({ model: 'e', input: ['a'] }, ctx('embed-model', { baseURL: a.defaultBaseURL! }));
      expect(up.url).toBe(`${a.defaultBaseURL}/embeddings`);
      expect(JSON.parse(up.body)).toEqual({ model: 'embed-model', input: ['a'] });
    }
  });

  it('passes fields the provider understands and the schema does not know (reasoning_effort, search options) through', () => {
    expect(body('perplexity', { messages: user, search_domain_filter: ['nasa.gov'], web_search_options: { search_context_size: 'high' } })).toMatchObject({
      search_domain_filter: ['nasa.gov'],
      web_search_options: { search_context_size: 'high' },
    });
    expect(body('groq', { messages: user, reasoning_effort: 'low', reasoning_format: 'parsed' }, false, 'openai/gpt-oss-20b')).toMatchObject({ reasoning_effort: 'low', reasoning_format: 'parsed' });
  });
});

describe('OpenAI-compatible presets: documented unsupported parameters', () => {
  // [preset, model, request, refused param]
  const refused: Array<[Preset, string, Record<string, unknown>, string]> = [
    // xAI: "presencePenalty, frequencyPenalty and stop parameters are not supported by reasoning models"; logit_bias "(Unsupported)".
    ['xai', 'grok-4-0709', { presence_penalty: 0.5 }, 'presence_penalty'],
    ['xai', 'grok-3-mini', { frequency_penalty: 0.2 }, 'frequency_penalty'],
    ['xai', 'grok-4-fast-reasoning', { stop: ['END'] }, 'stop'],
    ['xai', 'grok-code-fast-1', { stop: 'END' }, 'stop'],
    ['xai', 'grok-3', { logit_bias: { '42': 10 } }, 'logit_bias'],
    // Groq: logprobs, logit_bias, top_logprobs, n ≠ 1 answer 400; penalties "not yet supported by any of our models".
    ['groq', MODELS.groq, { n: 2 }, 'n'],
    ['groq', MODELS.groq, { logprobs: true }, 'logprobs'],
    ['groq', MODELS.groq, { top_logprobs: 3 }, 'top_logprobs'],
    ['groq', MODELS.groq, { logit_bias: { '50256': -100 } }, 'logit_bias'],
    ['groq', MODELS.groq, { presence_penalty: 1 }, 'presence_penalty'],
    ['groq', MODELS.groq, { frequency_penalty: -1 }, 'frequency_penalty'],
    // Together: logprobs is a top-k count with its own response shape.
    ['together', MODELS.together, { logprobs: true }, 'logprobs'],
    ['together', MODELS.together, { top_logprobs: 2 }, 'top_logprobs'],
    // Fireworks: "not yet supported: presence_penalty, frequency_penalty".
    ['fireworks', MODELS.fireworks, { presence_penalty: 0.1 }, 'presence_penalty'],
    ['fireworks', MODELS.fireworks, { frequency_penalty: 0.1 }, 'frequency_penalty'],
    // Cerebras: these "will result in a 400 error".
    ['cerebras', MODELS.cerebras, { frequency_penalty: 0.3 }, 'frequency_penalty'],
    ['cerebras', MODELS.cerebras, { presence_penalty: 0.3 }, 'presence_penalty'],
    ['cerebras', MODELS.cerebras, { logit_bias: { '1': 1 } }, 'logit_bias'],
    ['cerebras', MODELS.cerebras, { parallel_tool_calls: false }, 'parallel_tool_calls'],
    ['cerebras', MODELS.cerebras, { service_tier: 'flex' }, 'service_tier'],
    // Perplexity: no function calling, one choice.
    ['perplexity', MODELS.perplexity, { tools: [{ type: 'function', function: { name: 'f' } }] }, 'tools'],
    ['perplexity', MODELS.perplexity, { tool_choice: 'required' }, 'tool_choice'],
    ['perplexity', MODELS.perplexity, { n: 3 }, 'n'],
  ];

  it.each(refused)('%s (%s) refuses %j with 400 unsupported_parameter naming it', (preset, model, req, param) => {
    const err = refusal(preset, { messages: user, ...req }, model);
    expect(err.status).toBe(400);
    expect(err.type).toBe('invalid_request_error');
    expect(err.code).toBe('unsupported_parameter');
    expect(err.param).toBe(param);
    expect(err.message).toContain(`"${param}" is not supported by the ${preset} provider`);
  });

  it('Groq refuses messages[].name (documented 400) and names the message', () => {
    const err = refusal('groq', { messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Hi', name: 'alice' }] });
    expect(err.code).toBe('unsupported_parameter');
    expect(err.param).toBe('messages[1].name');
  });

  // [preset, model, request, fields that must not reach the provider]
  const neutral: Array<[Preset, string, Record<string, unknown>, string[]]> = [
    ['groq', MODELS.groq, { n: 1, logprobs: false, top_logprobs: 0, logit_bias: {}, presence_penalty: 0, frequency_penalty: null }, ['n', 'logprobs', 'top_logprobs', 'logit_bias', 'presence_penalty', 'frequency_penalty']],
    ['cerebras', MODELS.cerebras, { presence_penalty: 0, frequency_penalty: 0, parallel_tool_calls: true, service_tier: 'auto', logit_bias: {} }, ['presence_penalty', 'frequency_penalty', 'parallel_tool_calls', 'service_tier', 'logit_bias']],
    ['perplexity', MODELS.perplexity, { tools: [], tool_choice: 'none', n: 1 }, ['tools', 'tool_choice', 'n']],
    ['xai', 'grok-4-0709', { stop: [], presence_penalty: 0 }, ['stop', 'presence_penalty']],
  ];

  it.each(neutral)('%s (%s): values that ask for nothing are left out instead of refused', (preset, model, req, absent) => {
    const sent = body(preset, { messages: user, ...req }, false, model);
    for (const field of absent) expect(sent).not.toHaveProperty(field);
  });

  it.each(['grok-3', 'grok-4-fast-non-reasoning', 'grok-4-1-fast-non-reasoning', 'grok-2-1212'])('xAI %s (not a reasoning model) takes penalties and stop as they are', (model) => {
    expect(body('xai', { messages: user, presence_penalty: 0.5, frequency_penalty: 0.25, stop: ['END'] }, false, model)).toMatchObject({ presence_penalty: 0.5, frequency_penalty: 0.25, stop: ['END'] });
  });

  it('the other presets take what they document (Together/Groq tools, Fireworks logprobs, penalties on Together)', () => {
    const tools = [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: {} } } }];
    expect(body('groq', { messages: user, tools, tool_choice: 'required', parallel_tool_calls: false })).toMatchObject({ tools, tool_choice: 'required', parallel_tool_calls: false });
    expect(body('together', { messages: user, presence_penalty: 0.4, n: 2 })).toMatchObject({ presence_penalty: 0.4, n: 2 });
    expect(body('fireworks', { messages: user, logprobs: true, top_logprobs: 2 })).toMatchObject({ logprobs: true, top_logprobs: 2 });
  });
});

describe('a refused parameter makes the router try the next target, without penalty', () => {
  function target(name: string, provider: 'groq' | 'openai' | 'cerebras'): RuntimeTarget {
    return {
      name,
      provider,
      model: 'm',
      baseURL: ADAPTERS[provider].defaultBaseURL!,
      apiKey: 'k',
      settings: {},
      unavailableReason: undefined,
      adapter: ADAPTERS[provider],
      transport: {} as RuntimeTarget['transport'],
      timeoutMs: 1000,
      weight: 1,
      pricing: undefined,
      health: { breaker: new CircuitBreaker(1, 10_000), latencyMs: undefined },
      backoffKey: `default/target/r/${name}`,
    };
  }
  const route = (targets: RuntimeTarget[]): RuntimeRoute => ({
    id: 'default/r',
    name: 'r',
    namespace: 'default',
    strategy: 'fallback',
    targets,
    retry: { ...RetrySchema.parse({}), attempts: 2 },
    limits: undefined,
    cache: undefined,
    requirePricing: false,
    recordContent: false,
  });
  const options = { signal: new Cancel(), now: () => 0, random: () => 0.5, sleep: async () => {}, unitPrice: () => undefined };
  const attempt = (req: Record<string, unknown>) => async (t: RuntimeTarget) => {
    t.adapter.chatRequest(chat(req), ctx(t.model, { baseURL: t.baseURL }), false);
    return t.name;
  };

  it('n: 2 skips Groq (one attempt, breaker untouched) and is served by OpenAI', async () => {
    const groq = target('groq', 'groq');
    const out = await dispatch(route([groq, target('openai', 'openai')]), attempt({ messages: user, n: 2 }), options);
    expect(out.value).toBe('openai');
    expect(out.attempts).toBe(2);
    // a breaker with threshold 1 would be open after one counted failure
    expect(groq.health.breaker.tryAcquire(0)).toBe(true);
  });

  it('when no target can take it, the client gets the first refusal (400 unsupported_parameter)', async () => {
    const err = (await dispatch(route([target('groq', 'groq'), target('cerebras', 'cerebras')]), attempt({ messages: user, logit_bias: { '1': 5 } }), options).catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect(err.status).toBe(400);
    expect(err.code).toBe('unsupported_parameter');
    expect(err.param).toBe('logit_bias');
    expect(err.message).toContain('groq');
  });
});

describe('OpenAI-compatible presets: recorded responses', () => {
  const load = (preset: Preset) => fixtures(join(FIXTURES, preset));

  it.each(PRESETS)('%s non-stream: the completion passes through with its own fields kept', (preset) => {
    const native = load(preset).json<ChatCompletion & Record<string, unknown>>('usage.json');
    const before = JSON.parse(JSON.stringify(native)) as Record<string, unknown>;
    const { completion, usage } = ADAPTERS[preset].chatResponse(native, ctx(MODELS[preset]));
    expect(completion.id).toBe(before.id);
    expect(completion.choices[0]!.message.content).toBe((before.choices as ChatCompletion['choices'])[0]!.message.content);
    expect(['stop', 'length', 'tool_calls']).toContain(completion.choices[0]!.finish_reason);
    expect(usage!.inputTokens).toBeGreaterThan(0);
    // provider extras outside usage stay (Groq x_groq, Cerebras time_info, Perplexity citations)
    for (const key of Object.keys(before).filter((k) => k !== 'usage' && k !== 'choices')) expect((completion as unknown as Record<string, unknown>)[key]).toEqual(before[key]);
  });

  it.each(PRESETS.flatMap((p) => [1, 13].map((size) => [p, size] as const)))('%s stream (fed %i bytes at a time): text, finish and completion of the stream', (preset, size) => {
    const raw = load(preset).raw('usage.sse');
    const { chunks, translator, finishedAt } = translateStream(ADAPTERS[preset], raw, size, ctx(MODELS[preset]));
    expect(translator.finished).toBe(true);
    expect(finishedAt.indexOf(true)).toBeGreaterThanOrEqual(0);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    expect(text.length).toBeGreaterThan(0);
    const finishes = chunks.map((c) => c.choices[0]?.finish_reason).filter((f) => f != null);
    expect(finishes).toEqual(['stop']);
    expect(chunks.every((c) => JSON.parse(JSON.stringify(c)).usage === undefined)).toBe(true);
    // the provider's model id, as its chunks report it
    const recorded = (JSON.parse(/^data: (.*)$/m.exec(raw.toString('utf8'))![1]!) as { model: string }).model;
    expect(translator.responseModel).toBe(recorded);
  });

  it('Together: finish_reason "eos" becomes "stop", non-stream and streamed', () => {
    const { completion } = ADAPTERS.together.chatResponse(load('together').json('usage.json'), ctx(MODELS.together));
    expect(completion.choices[0]!.finish_reason).toBe('stop');
    const { chunks } = translateStream(ADAPTERS.together, load('together').raw('usage.sse'), 1 << 20, ctx(MODELS.together));
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
    expect(JSON.stringify(chunks)).not.toContain('"eos"');
  });

  it('Groq: stream usage read from x_groq.usage on the final chunk, and kept out of the chunk the client gets', () => {
    const { chunks, translator } = translateStream(ADAPTERS.groq, load('groq').raw('usage.sse'), 1 << 20, ctx(MODELS.groq));
    expect(translator.usage).toEqual({ inputTokens: 38, outputTokens: 4, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    const last = JSON.parse(JSON.stringify(chunks.at(-1))) as { x_groq: Record<string, unknown> };
    expect(last.x_groq).toEqual({ id: 'req_01kfk38ha1ey6bw3b68mcaeddg' });
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Hello World!');
  });

  it('Groq: an x_groq.error in the stream is an upstream stream error; top-level usage wins over x_groq.usage', () => {
    const t = ADAPTERS.groq.chatStream(ctx(MODELS.groq));
    const chunk = (extra: Record<string, unknown>) => ({ data: JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [], ...extra }) });
    t.push(chunk({ usage: { prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 }, x_groq: { usage: { prompt_tokens: 99, completion_tokens: 99 } } }));
    expect(t.usage).toMatchObject({ inputTokens: 5, outputTokens: 2 });
    expect(() => t.push(chunk({ x_groq: { id: 'req_1', error: 'stream stopped: model overloaded' } }))).toThrow(UpstreamStreamError);
    // other presets do not read x_groq
    const other = ADAPTERS.together.chatStream(ctx(MODELS.together));
    other.push(chunk({ x_groq: { usage: { prompt_tokens: 99, completion_tokens: 99 } } }));
    expect(other.usage).toBeUndefined();
  });

  it('Perplexity: the stream is complete at the chunk with finish_reason (no [DONE]); usage is cumulative', () => {
    const { translator, finishedAt, chunks } = translateStream(ADAPTERS.perplexity, load('perplexity').raw('usage.sse'), 1 << 20, ctx(MODELS.perplexity));
    expect(finishedAt).toEqual([false, false, true]);
    expect(translator.usage).toMatchObject({ inputTokens: 14, outputTokens: 18 });
    // citations and search results of the last chunk reach the client
    expect((chunks.at(-1) as unknown as { citations: string[] }).citations).toHaveLength(1);
    // other presets still wait for [DONE]
    const { finishedAt: openai } = translateStream(createOpenAIAdapter('openai'), load('perplexity').raw('usage.sse'), 1 << 20, ctx('gpt-4o'));
    expect(openai).toEqual([false, false, false]);
  });

  it('Fireworks: usage arrives on the finish_reason chunk without stream_options', () => {
    const { translator, chunks } = translateStream(ADAPTERS.fireworks, load('fireworks').raw('usage.sse'), 1 << 20, ctx(MODELS.fireworks));
    expect(translator.usage).toEqual({ inputTokens: 20, outputTokens: 10, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
  });
});

describe('usage quirks', () => {
  it('xAI: reasoning outside completion_tokens (total says so) joins the output', () => {
    const raw = { prompt_tokens: 663, completion_tokens: 50, total_tokens: 837, prompt_tokens_details: { cached_tokens: 654 }, completion_tokens_details: { reasoning_tokens: 124 } };
    expect(usageFromXAI(raw)).toEqual({ inputTokens: 663, outputTokens: 174, cacheReadTokens: 654, cacheWriteTokens: 0, reasoningTokens: 124 });
  });

  it('xAI: reasoning already inside completion_tokens (total = prompt + completion) is not counted twice', () => {
    const raw = { prompt_tokens: 686, completion_tokens: 123, total_tokens: 809, prompt_tokens_details: { cached_tokens: 679 }, completion_tokens_details: { reasoning_tokens: 112 } };
    expect(usageFromXAI(raw)).toEqual({ inputTokens: 686, outputTokens: 123, cacheReadTokens: 679, cacheWriteTokens: 0, reasoningTokens: 112 });
  });

  it('xAI: the client usage of a completion is consistent (completion includes reasoning, total = prompt + completion)', () => {
    const { completion } = ADAPTERS.xai.chatResponse(fixtures(join(FIXTURES, 'xai')).json('usage.json'), ctx('grok-4-0709'));
    const u = completion.usage!;
    expect(u.total_tokens).toBe(u.prompt_tokens + u.completion_tokens);
    expect(u.completion_tokens_details?.reasoning_tokens).toBe(94);
  });

  it('Perplexity: top-level reasoning_tokens join the output, citation_tokens the prompt; without them usage is OpenAI\'s', () => {
    expect(usageFromPerplexity({ prompt_tokens: 19, completion_tokens: 3114, total_tokens: 3133, citation_tokens: 14783, reasoning_tokens: 58201, num_search_queries: 21 })).toEqual({
      inputTokens: 19 + 14783,
      outputTokens: 3114 + 58201,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      reasoningTokens: 58201,
    });
    expect(usageFromPerplexity({ prompt_tokens: 14, completion_tokens: 23, total_tokens: 37, search_context_size: 'low' })).toEqual({
      inputTokens: 14,
      outputTokens: 23,
      cacheReadTokens: 0,
      cacheWriteTokens: 0,
      reasoningTokens: 0,
    });
    expect(usageFromPerplexity(null)).toBeUndefined();
  });
});
