import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ApiError } from '../../../sidecar/errors.js';
import type { ChatCompletionChunk, ChatRequest } from '../../../sidecar/openai-schema.js';
import { cohereAdapter, usageFromCohere } from '../../../sidecar/providers/cohere.js';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { type TargetContext } from '../../../sidecar/providers/types.js';
import { SseParser } from '../../../sidecar/sse.js';
import { COHERE_PREAMBLE_TOKENS, cohereResponder } from '../../support/fake-cohere.js';
import type { RecordedRequest } from '../../support/fake-upstream.js';
import { chatRequest, describeRecordedExchanges, fixtures, translateStream } from '../../support/recorded-exchanges.js';

/**
 * Issue 13: Cohere's Chat API v2, translated natively (sidecar/providers/cohere.ts). Exchanges
 * are recorded from Cohere's own documentation (the fixtures' `_docs` fields name the pages):
 * non-stream text, tool call and tool results, stream text and tool calls, an error event and
 * error bodies.
 */

const FIXTURES = join(import.meta.dirname, 'fixtures/cohere');
const { raw } = fixtures(FIXTURES);

const ctx = (model = 'command-a-03-2025', over: Partial<TargetContext> = {}): TargetContext => ({
  model,
  baseURL: 'https://api.cohere.com',
  apiKey: 'test-key',
  created: 1750000000,
  responseId: 'chatcmpl-req-1',
  ...over,
});

const chat = chatRequest('paygo-cohere');
const nativeBody = (req: ChatRequest, stream = false) => JSON.parse(cohereAdapter.chatRequest(req, ctx(), stream).body) as Record<string, unknown>;
const user = [{ role: 'user', content: 'Hi' }];
const weather = { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } };
const time = { type: 'function', function: { name: 'get_time', description: 'the time' } };

describeRecordedExchanges({
  name: 'cohere',
  adapter: cohereAdapter,
  dir: FIXTURES,
  cases: [
    ['chat-text.json', 'command-a-03-2025'],
    ['chat-tools.json', 'command-r-plus-08-2024'],
    ['chat-tool-results.json', 'command-r-plus-08-2024'],
  ],
  ctx: (model) => ctx(model),
  headers: { 'content-type': 'application/json', accept: 'application/json', authorization: 'Bearer test-key' },
  routeModel: 'paygo-cohere',
});

describe('cohere adapter: request', () => {
  it('streams from the same URL with stream: true and an SSE accept header; no key, no Authorization; the base URL is honoured', () => {
    const up = cohereAdapter.chatRequest(chat({ messages: user, stream: true }), ctx('command-r7b-12-2024', { baseURL: 'http://127.0.0.1:9999/', apiKey: undefined }), true);
    expect(up.url).toBe('http://127.0.0.1:9999/v2/chat');
    expect(up.headers).toEqual({ 'content-type': 'application/json', accept: 'text/event-stream' });
    expect(JSON.parse(up.body)).toEqual({ stream: true, model: 'command-r7b-12-2024', messages: [{ role: 'user', content: 'Hi' }] });
  });

  it('joins every system/developer text into one system message placed first', () => {
    const body = nativeBody(chat({ messages: [{ role: 'system', content: 'Be brief.' }, ...user, { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] }] }));
    expect(body.messages).toEqual([
      { role: 'system', content: [{ type: 'text', text: 'Be brief.' }, { type: 'text', text: 'Answer in French.' }] },
      { role: 'user', content: 'Hi' },
    ]);
  });

  it('passes user text and image parts in Cohere content parts', () => {
    const body = nativeBody(
      chat({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Describe this image' },
              { type: 'image_url', image_url: { url: 'https://cohere.com/favicon-32x32.png', detail: 'auto' } },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            ],
          },
        ],
      }),
    );
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Describe this image' },
          { type: 'image_url', image_url: { url: 'https://cohere.com/favicon-32x32.png', detail: 'auto' } },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
        ],
      },
    ]);
  });

  it('leaves out an assistant message that says nothing, keeps assistant text, and a tool call without parameters keeps "" arguments', () => {
    const body = nativeBody(
      chat({
        messages: [
          { role: 'user', content: 'Time?' },
          { role: 'assistant', content: '' },
          { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 't1', type: 'function', function: { name: 'get_time', arguments: '' } }] },
          { role: 'tool', tool_call_id: 't1', content: [{ type: 'text', text: '12:00' }, { type: 'text', text: 'UTC' }] },
        ],
      }),
    );
    expect(body.messages).toEqual([
      { role: 'user', content: 'Time?' },
      { role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 't1', type: 'function', function: { name: 'get_time', arguments: '' } }] },
      { role: 'tool', tool_call_id: 't1', content: [{ type: 'text', text: '12:00' }, { type: 'text', text: 'UTC' }] },
    ]);
  });

  it.each([
    ['auto', undefined, [weather, time]],
    ['none', 'NONE', [weather, time]],
    ['required', 'REQUIRED', [weather, time]],
    [{ type: 'function', function: { name: 'get_time' } }, 'REQUIRED', [time]],
  ])('maps tool_choice %j to %j and declares the tools it leaves', (choice, native, offered) => {
    const body = nativeBody(chat({ messages: user, tools: [weather, time], tool_choice: choice }));
    expect(body.tool_choice).toEqual(native);
    const expected = (offered as Array<typeof weather | typeof time>).map((t) => ({
      type: 'function',
      function: { name: t.function.name, ...('description' in t.function ? { description: t.function.description } : {}), parameters: 'parameters' in t.function ? t.function.parameters : { type: 'object', properties: {} } },
    }));
    expect(body.tools).toEqual(expected);
    expect(body).not.toHaveProperty('strict_tools');
  });

  it('sends strict_tools when every tool is strict, and no tool_choice without tools', () => {
    const strict = { type: 'function', function: { ...weather.function, strict: true } };
    expect(nativeBody(chat({ messages: user, tools: [strict] }))).toMatchObject({ strict_tools: true });
    expect(nativeBody(chat({ messages: user, tool_choice: 'required' }))).not.toHaveProperty('tool_choice');
  });

  it('maps max_completion_tokens, penalties within 0-1, top_p clamped to Cohere\'s 0.01-0.99, and response formats', () => {
    const schema = { type: 'object', properties: { title: { type: 'string' } }, required: ['title'] };
    expect(nativeBody(chat({ messages: user, max_completion_tokens: 50, max_tokens: 99, presence_penalty: 0.5, top_p: 0, response_format: { type: 'json_schema', json_schema: { name: 't', schema } } }))).toEqual({
      stream: false,
      model: 'command-a-03-2025',
      messages: [{ role: 'user', content: 'Hi' }],
      max_tokens: 50,
      presence_penalty: 0.5,
      p: 0.01,
      response_format: { type: 'json_object', json_schema: schema },
    });
    expect(nativeBody(chat({ messages: user, top_p: 0.75, frequency_penalty: 1, presence_penalty: 0, response_format: { type: 'json_object' } }))).toMatchObject({
      p: 0.75,
      frequency_penalty: 1,
      response_format: { type: 'json_object' },
    });
    const plain = nativeBody(chat({ messages: user, response_format: { type: 'text' }, stop: [], temperature: null, user: 'u1', store: true }));
    expect(Object.keys(plain).sort()).toEqual(['messages', 'model', 'stream']);
  });

  describe('refuses what Cohere cannot take with a 400 naming the parameter', () => {
    const cases: Array<[string, Record<string, unknown>, string, string]> = [
      ['n > 1', { messages: user, n: 2 }, 'n', 'unsupported_parameter'],
      ['logprobs', { messages: user, logprobs: true }, 'logprobs', 'unsupported_parameter'],
      ['top_logprobs', { messages: user, top_logprobs: 2 }, 'top_logprobs', 'unsupported_parameter'],
      ['logit_bias', { messages: user, logit_bias: { '1': 2 } }, 'logit_bias', 'unsupported_parameter'],
      ['parallel_tool_calls false', { messages: user, tools: [weather], parallel_tool_calls: false }, 'parallel_tool_calls', 'unsupported_parameter'],
      ['reasoning_effort', { messages: user, reasoning_effort: 'low' }, 'reasoning_effort', 'unsupported_parameter'],
      ['a negative penalty', { messages: user, frequency_penalty: -0.5 }, 'frequency_penalty', 'unsupported_parameter'],
      ['a penalty above 1', { messages: user, presence_penalty: 1.5 }, 'presence_penalty', 'unsupported_parameter'],
      ['both penalties (documented 400)', { messages: user, presence_penalty: 0.2, frequency_penalty: 0.2 }, 'presence_penalty', 'unsupported_parameter'],
      ['more than 5 stop sequences', { messages: user, stop: ['a', 'b', 'c', 'd', 'e', 'f'] }, 'stop', 'unsupported_parameter'],
      ['audio output', { messages: user, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }, 'audio', 'unsupported_parameter'],
      ['web search options', { messages: user, web_search_options: {} }, 'web_search_options', 'unsupported_parameter'],
      ['legacy functions', { messages: user, functions: [{ name: 'f' }] }, 'functions', 'unsupported_parameter'],
      ['an unknown response format', { messages: user, response_format: { type: 'grammar' } }, 'response_format.type', 'unsupported_parameter'],
      ['an audio content part', { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AA', format: 'wav' } }] }] }, 'messages[0].content[0].type', 'unsupported_parameter'],
      ['an image in a system message', { messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'https://x/a.png' } }] }, ...user] }, 'messages[0].content[0].type', 'unsupported_parameter'],
      ['a tool result for an unknown call', { messages: [...user, { role: 'tool', tool_call_id: 'nope', content: 'x' }] }, 'messages[1].tool_call_id', 'invalid_request'],
      ['tool_choice naming an undeclared tool', { messages: user, tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name', 'invalid_request'],
      ['a json_schema format without a schema', { messages: user, response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema', 'invalid_request'],
    ];

    it.each(cases)('%s', (_name, body, param, code) => {
      let caught: unknown;
      try {
        cohereAdapter.chatRequest(chat(body), ctx(), false);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ApiError);
      expect((caught as ApiError).status).toBe(400);
      expect((caught as ApiError).param).toBe(param);
      expect((caught as ApiError).code).toBe(code);
    });
  });
});

describe('cohere adapter: response', () => {
  const response = (over: Record<string, unknown>) => ({ id: 'r1', message: { role: 'assistant', content: [{ type: 'text', text: 'ok' }] }, finish_reason: 'COMPLETE', ...over });

  it.each([
    ['COMPLETE', 'stop'],
    ['STOP_SEQUENCE', 'stop'],
    ['MAX_TOKENS', 'length'],
    ['TOOL_CALL', 'tool_calls'],
    ['SOMETHING_NEW', 'stop'],
  ])('maps finish_reason %s to %s', (native, finish) => {
    expect(cohereAdapter.chatResponse(response({ finish_reason: native }), ctx()).completion.choices[0]!.finish_reason).toBe(finish);
  });

  it.each(['ERROR', 'TIMEOUT'])('a 200 body that finished with %s is an upstream failure (the router may retry or fail over)', (reason) => {
    expect(() => cohereAdapter.chatResponse(response({ finish_reason: reason }), ctx())).toThrow(UpstreamProtocolError);
  });

  it('joins text parts, leaves thinking parts and the tool plan out, and has no usage when Cohere gives none', () => {
    const { completion, usage } = cohereAdapter.chatResponse(
      response({ message: { role: 'assistant', tool_plan: 'I will answer.', content: [{ type: 'thinking', thinking: 'hmm' }, { type: 'text', text: 'Hello' }, { type: 'text', text: ' there' }] } }),
      ctx(),
    );
    expect(completion.choices[0]!.message).toEqual({ role: 'assistant', content: 'Hello there' });
    expect(usage).toBeUndefined();
    expect(completion).not.toHaveProperty('usage');
  });

  it('is a protocol error when the body is not a Cohere chat response', () => {
    expect(() => cohereAdapter.chatResponse({ text: 'v1 shape' }, ctx())).toThrow(UpstreamProtocolError);
    expect(() => cohereAdapter.chatResponse([], ctx())).toThrow(UpstreamProtocolError);
  });

  it('usage: billed units first, tokens otherwise, cached_tokens as cache reads capped at the prompt', () => {
    expect(usageFromCohere({ billed_units: { input_tokens: 17, output_tokens: 12 }, tokens: { input_tokens: 215, output_tokens: 12 }, cached_tokens: 5 })).toEqual({
      inputTokens: 17,
      outputTokens: 12,
      cacheReadTokens: 5,
      cacheWriteTokens: 0,
      reasoningTokens: 0,
    });
    expect(usageFromCohere({ tokens: { input_tokens: 1210, output_tokens: 33 }, cached_tokens: 1024 })).toEqual({ inputTokens: 1210, outputTokens: 33, cacheReadTokens: 1024, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect(usageFromCohere({ billed_units: { input_tokens: 10, output_tokens: 1 }, cached_tokens: 200 })?.cacheReadTokens).toBe(10);
    expect(usageFromCohere({})).toBeUndefined();
    expect(usageFromCohere(null)).toBeUndefined();
  });

  it('reads Cohere error bodies ({"message": ...}) and nothing else', () => {
    expect(cohereAdapter.errorInfo(raw('error-429.json').toString('utf8'), ctx(), {}).message).toBe('You are past the per minute request limit, please wait and try again later.');
    expect(cohereAdapter.errorInfo(raw('error-400.json').toString('utf8'), ctx(), {}).message).toBe('invalid request: cannot specify both frequency_penalty and presence_penalty.');
    expect(cohereAdapter.errorInfo('{"error":{"message":"not Cohere"}}', ctx(), {}).message).toBeUndefined();
    expect(cohereAdapter.errorInfo('<html>bad gateway</html>', ctx(), {}).message).toBeUndefined();
  });
});

describe('cohere adapter: stream', () => {
  const deltas = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]!.delta);

  it.each([1, 7, 1 << 20])('text (fed %i bytes at a time): role chunk, one chunk per content-delta, finish with usage', (size) => {
    const { chunks, translator, finishedAt } = translateStream(cohereAdapter, raw('stream-text.sse'), size, ctx());
    expect(translator.finished).toBe(true);
    expect(finishedAt.at(-1)).toBe(true);
    expect(finishedAt.slice(0, -1).every((f) => !f)).toBe(true);
    expect(deltas(chunks)[0]).toEqual({ role: 'assistant', content: '' });
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('A large language model (LLM) is a type of artificial neural network.');
    expect(chunks).toHaveLength(1 + 13 + 1);
    expect(chunks.at(-1)!.choices[0]).toEqual({ index: 0, delta: {}, finish_reason: 'stop', logprobs: null });
    expect(new Set(chunks.map((c) => c.id))).toEqual(new Set(['29f14a5a-11de-4cae-9800-25e4747408ea']));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'command-a-03-2025' && c.created === 1750000000)).toBe(true);
    expect(translator.usage).toEqual({ inputTokens: 7, outputTokens: 13, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it.each([1, 7, 1 << 20])('tool calls (fed %i bytes at a time): two calls in OpenAI tool-call deltas, the tool plan left out', (size) => {
    const { chunks, translator } = translateStream(cohereAdapter, raw('stream-tools.sse'), size, ctx('command-r-plus-08-2024'));
    expect(translator.finished).toBe(true);
    const calls = new Map<number, { id?: string; name?: string; args: string }>();
    for (const d of deltas(chunks)) {
      expect(d.content ?? '').toBe('');
      for (const call of d.tool_calls ?? []) {
        const c = calls.get(call.index) ?? { args: '' };
        if (call.id) c.id = call.id;
        if (call.function?.name) c.name = call.function.name;
        c.args += call.function?.arguments ?? '';
        calls.set(call.index, c);
      }
    }
    expect([...calls.entries()].map(([i, c]) => [i, c.id, c.name, JSON.parse(c.args)])).toEqual([
      [0, 'get_weather_p1t92w7gfgq7', 'get_weather', { location: 'Madrid' }],
      [1, 'get_weather_ay6nmvjgp9vn', 'get_weather', { location: 'Brasilia' }],
    ]);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(translator.usage).toEqual({ inputTokens: 37, outputTokens: 28, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it('a message-end with finish_reason ERROR is an upstream stream error carrying Cohere\'s error text', () => {
    const parser = new SseParser();
    const t = cohereAdapter.chatStream(ctx());
    const out: ChatCompletionChunk[] = [];
    let caught: unknown;
    try {
      for (const ev of parser.push(raw('stream-error.sse'))) out.push(...t.push(ev));
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(UpstreamStreamError);
    expect((caught as UpstreamStreamError).message).toBe('internal server error, this has been reported to our developers');
    expect((caught as UpstreamStreamError).errorType).toBe('error');
    expect(out.map((c) => c.choices[0]!.delta.content).join('')).toBe('A');
    expect(t.finished).toBe(false);
  });

  it('a call without parameters gets "{}" at tool-call-end; thinking blocks, citations and [DONE] are ignored', () => {
    const t = cohereAdapter.chatStream(ctx());
    const push = (data: Record<string, unknown>) => t.push({ event: String(data.type), data: JSON.stringify(data) });
    expect(push({ id: 'm1', type: 'message-start', delta: { message: { role: 'assistant' } } })).toEqual([]);
    expect(push({ type: 'content-start', index: 0, delta: { message: { content: { type: 'thinking', thinking: '' } } } })).toEqual([]);
    expect(push({ type: 'content-delta', index: 0, delta: { message: { content: { thinking: 'Let me think' } } } })).toEqual([]);
    expect(push({ type: 'citation-start', index: 0, delta: { message: { citations: { start: 0, end: 1, text: 'x', sources: [] } } } })).toEqual([]);
    const start = push({ type: 'tool-call-start', index: 0, delta: { message: { tool_calls: { id: 'get_time_1', type: 'function', function: { name: 'get_time', arguments: '' } } } } });
    expect(start.map((c) => c.choices[0]!.delta)).toEqual([{ role: 'assistant', content: '' }, { tool_calls: [{ index: 0, id: 'get_time_1', type: 'function', function: { name: 'get_time', arguments: '' } }] }]);
    expect(push({ type: 'tool-call-end', index: 0 }).map((c) => c.choices[0]!.delta)).toEqual([{ tool_calls: [{ index: 0, function: { arguments: '{}' } }] }]);
    expect(t.push({ data: '[DONE]' })).toEqual([]);
    expect(() => t.push({ data: 'not json' })).toThrow(UpstreamProtocolError);
  });
});

describe('the fake Cohere server speaks what the adapter expects (round trip)', () => {
  const recorded = (up: { url: string; headers: Record<string, string>; body: string }): RecordedRequest => ({
    method: 'POST',
    url: new URL(up.url).pathname,
    headers: up.headers,
    body: JSON.parse(up.body),
    rawBody: up.body,
  });

  it('non-stream text and stream text agree on text and usage', () => {
    const req = chat({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }] });
    const plain = cohereResponder(recorded(cohereAdapter.chatRequest(req, ctx('command-a-03-2025', { baseURL: 'http://fake' }), false)));
    if (plain.kind !== 'json') throw new Error('expected JSON');
    const { completion, usage } = cohereAdapter.chatResponse(plain.body, ctx());
    expect(completion.choices[0]!.message.content).toBe('Cohere echo: hello there');
    expect(usage).toEqual({ inputTokens: 4, outputTokens: 4, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect((plain.body as { usage: { tokens: { input_tokens: number } } }).usage.tokens.input_tokens).toBe(4 + COHERE_PREAMBLE_TOKENS);

    const streamed = cohereResponder(recorded(cohereAdapter.chatRequest(req, ctx('command-a-03-2025', { baseURL: 'http://fake' }), true)));
    if (streamed.kind !== 'sse') throw new Error('expected SSE');
    const { chunks, translator } = translateStream(cohereAdapter, Buffer.from(streamed.frames.join('')), 5, ctx());
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Cohere echo: hello there');
    expect(translator.usage).toEqual(usage);
  });

  it('a forced tool becomes a tool call, and a request without a key is refused with Cohere\'s error body', () => {
    const req = chat({ messages: [{ role: 'user', content: 'weather in Paris' }], tools: [weather], tool_choice: 'required' });
    const reply = cohereResponder(recorded(cohereAdapter.chatRequest(req, ctx(), false)));
    if (reply.kind !== 'json') throw new Error('expected JSON');
    const { completion } = cohereAdapter.chatResponse(reply.body, ctx());
    expect(completion.choices[0]!.finish_reason).toBe('tool_calls');
    expect(JSON.parse(completion.choices[0]!.message.tool_calls![0]!.function.arguments)).toEqual({ query: 'weather in Paris' });

    const anonymous = cohereResponder(recorded(cohereAdapter.chatRequest(req, ctx('command-a-03-2025', { apiKey: undefined }), false)));
    expect(anonymous).toMatchObject({ kind: 'json', status: 401 });
    expect(cohereAdapter.errorInfo(JSON.stringify((anonymous as { body: unknown }).body), ctx(), {}).message).toBe('no api key supplied');
  });
});
