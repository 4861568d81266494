import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../sidecar/errors.js';
import type { ChatCompletionChunk, ChatRequest } from '../../../sidecar/openai-schema.js';
import { anthropicAdapter } from '../../../sidecar/providers/anthropic.js';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { type TargetContext } from '../../../sidecar/providers/types.js';
import { SseParser } from '../../../sidecar/sse.js';
import { anthropicError, anthropicOverloaded, anthropicResponder } from '../../support/fake-anthropic.js';
import { chatRequest, describeRecordedExchanges, fixtures, translateStream } from '../../support/recorded-exchanges.js';
import { startFakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';

const FIXTURES = join(import.meta.dirname, 'fixtures/anthropic');
const { json: fixture, raw } = fixtures(FIXTURES);

const ctx = (model = 'claude-opus-4-6', over: Partial<TargetContext> = {}): TargetContext => ({
  model,
  baseURL: 'https://api.anthropic.com',
  apiKey: 'test-key',
  created: 1750000000,
  responseId: 'chatcmpl-req-1',
  ...over,
});

const chat = chatRequest('paygo-claude');
const nativeBody = (req: ChatRequest, c = ctx()) => JSON.parse(anthropicAdapter.chatRequest(req, c, false).body) as Record<string, unknown>;
const user = [{ role: 'user', content: 'Hi' }];

describeRecordedExchanges({
  name: 'anthropic',
  adapter: anthropicAdapter,
  dir: FIXTURES,
  cases: [
    ['chat-text.json', 'claude-opus-4-6'],
    ['chat-tools.json', 'claude-sonnet-4-5'],
    ['chat-tool-results.json', 'claude-sonnet-4-5'],
    ['chat-multimodal.json', 'claude-opus-4-6'],
  ],
  ctx: (model) => ctx(model),
  headers: { 'x-api-key': 'test-key', 'anthropic-version': '2023-06-01', 'content-type': 'application/json' },
  routeModel: 'paygo-claude',
});

describe('anthropic adapter: request', () => {
  it('streams from the same URL with stream: true; no key, no header; the target base URL is honoured', () => {
    const up = anthropicAdapter.chatRequest(chat({ messages: user, stream: true }), ctx('claude-haiku-4-5', { baseURL: 'http://127.0.0.1:9999/', apiKey: undefined }), true);
    expect(up.url).toBe('http://127.0.0.1:9999/v1/messages');
    expect(up.headers).toEqual({ 'anthropic-version': '2023-06-01', 'content-type': 'application/json' });
    expect(JSON.parse(up.body)).toEqual({ model: 'claude-haiku-4-5', max_tokens: 4096, messages: [{ role: 'user', content: 'Hi' }], stream: true });
  });

  it('sends the minimum body and passes stop arrays as they are', () => {
    expect(nativeBody(chat({ messages: user }))).toEqual({ model: 'claude-opus-4-6', max_tokens: 4096, messages: [{ role: 'user', content: 'Hi' }] });
    expect(nativeBody(chat({ messages: user, stop: ['a', 'b'], max_tokens: 5 }))).toMatchObject({ stop_sequences: ['a', 'b'], max_tokens: 5 });
    const empty = nativeBody(chat({ messages: user, stop: [], temperature: null, top_p: null }));
    expect(Object.keys(empty).sort()).toEqual(['max_tokens', 'messages', 'model']);
  });

  it('keeps a single system message as a string', () => {
    const body = nativeBody(chat({ messages: [{ role: 'developer', content: 'Be terse.' }, ...user] }));
    expect(body.system).toBe('Be terse.');
  });

  it.each([
    ['auto', undefined, { type: 'auto' }],
    ['required', undefined, { type: 'any' }],
    ['none', undefined, { type: 'none' }],
    [{ type: 'function', function: { name: 'get_time' } }, undefined, { type: 'tool', name: 'get_time' }],
    [{ type: 'function', function: { name: 'get_time' } }, false, { type: 'tool', name: 'get_time', disable_parallel_tool_use: true }],
    [undefined, false, { type: 'auto', disable_parallel_tool_use: true }],
    ['none', false, { type: 'none' }],
    ['auto', true, { type: 'auto' }],
  ])('maps tool_choice %j with parallel_tool_calls %j', (choice, parallel, native) => {
    const tools = [{ type: 'function', function: { name: 'get_time' } }];
    const body = nativeBody(chat({ messages: user, tools, tool_choice: choice, parallel_tool_calls: parallel }));
    expect(body.tool_choice).toEqual(native);
  });

  it('sends no tool_choice without tools, and none when the client chose nothing', () => {
    expect(nativeBody(chat({ messages: user, tool_choice: 'required' }))).not.toHaveProperty('tool_choice');
    expect(nativeBody(chat({ messages: user, tools: [{ type: 'function', function: { name: 'f' } }] }))).not.toHaveProperty('tool_choice');
  });

  it('maps json_schema output, reasoning effort and safety_identifier', () => {
    const schema = { type: 'object', properties: { answer: { type: 'number' } }, required: ['answer'], additionalProperties: false };
    const body = nativeBody(
      chat({ messages: user, response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } }, reasoning_effort: 'high', safety_identifier: 'hash-1' }),
    );
    expect(body.output_config).toEqual({ format: { type: 'json_schema', schema }, effort: 'high' });
    expect(body.metadata).toEqual({ user_id: 'hash-1' });
  });

  it('merges assistant turns, drops empty texts, and keeps a trailing assistant message as a prefill', () => {
    const body = nativeBody(
      chat({
        messages: [
          { role: 'user', content: 'Time?' },
          { role: 'assistant', content: '' },
          { role: 'assistant', content: null, tool_calls: [{ id: 't1', type: 'function', function: { name: 'get_time', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 't1', content: '' },
          { role: 'assistant', content: [{ type: 'text', text: 'It is' }] },
        ],
      }),
    );
    expect(body.messages).toEqual([
      { role: 'user', content: 'Time?' },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'get_time', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1' }] },
      { role: 'assistant', content: 'It is' },
    ]);
  });

  it('a parameter Anthropic has no counterpart for is 400 unsupported_parameter (the router tries the next target)', () => {
    expect(() => anthropicAdapter.chatRequest(chat({ messages: user, n: 2 }), ctx(), false)).toThrow(
      expect.objectContaining({ status: 400, code: 'unsupported_parameter', param: 'n' }),
    );
  });

  describe('rejects what Anthropic cannot take with a 400 naming the parameter', () => {
    const call = (args: string) => ({ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: args } }] });
    const cases: Array<[string, Record<string, unknown>, string]> = [
      ['tool-call arguments that are not JSON', { messages: [user[0], call('{"a":')] }, 'messages[1].tool_calls[0].function.arguments'],
      ['tool-call arguments that are not an object', { messages: [user[0], call('[1]')] }, 'messages[1].tool_calls[0].function.arguments'],
      ['a tool result for an unknown call', { messages: [user[0], { role: 'tool', tool_call_id: 'nope', content: 'x' }] }, 'messages[1].tool_call_id'],
      ['n > 1', { messages: user, n: 2 }, 'n'],
      ['logprobs', { messages: user, logprobs: true }, 'logprobs'],
      ['top_logprobs', { messages: user, top_logprobs: 3 }, 'top_logprobs'],
      ['logit_bias', { messages: user, logit_bias: { '50256': -100 } }, 'logit_bias'],
      ['a presence penalty', { messages: user, presence_penalty: 0.5 }, 'presence_penalty'],
      ['a frequency penalty', { messages: user, frequency_penalty: -0.5 }, 'frequency_penalty'],
      ['temperature above 1', { messages: user, temperature: 1.5 }, 'temperature'],
      ['json_object output', { messages: user, response_format: { type: 'json_object' } }, 'response_format.type'],
      ['a json_schema format without a schema', { messages: user, response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema'],
      ['reasoning_effort minimal', { messages: user, reasoning_effort: 'minimal' }, 'reasoning_effort'],
      ['audio output', { messages: user, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }, 'audio'],
      ['legacy functions', { messages: user, functions: [{ name: 'f' }] }, 'functions'],
      ['web search options', { messages: user, web_search_options: {} }, 'web_search_options'],
      ['a non-default verbosity', { messages: user, verbosity: 'low' }, 'verbosity'],
      [
        'an image of a type Anthropic does not read',
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/heic;base64,AAAA' } }] }] },
        'messages[0].content[0].image_url.url',
      ],
      ['a data: URL that is not base64', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png,abc' } }] }] }, 'messages[0].content[0].image_url.url'],
      ['an ftp image URL', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://example.com/a.png' } }] }] }, 'messages[0].content[0].image_url.url'],
      ['an unsupported content part', { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] }, 'messages[0].content[0].type'],
      ['an image in a system message', { messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }] }, user[0]] }, 'messages[0].content[0].type'],
      ['an image in a tool result', { messages: [user[0], call('{}'), { role: 'tool', tool_call_id: 'c', content: [{ type: 'image_url', image_url: { url: 'https://x/a.png' } }] }] }, 'messages[2].content[0].type'],
      ['no user or assistant message', { messages: [{ role: 'system', content: 'Be nice.' }] }, 'messages'],
    ];

    it.each(cases)('%s', (_name, body, param) => {
      let caught: unknown;
      try {
        anthropicAdapter.chatRequest(chat(body), ctx(), false);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ApiError);
      expect((caught as ApiError).status).toBe(400);
      expect((caught as ApiError).type).toBe('invalid_request_error');
      expect((caught as ApiError).param).toBe(param);
    });
  });
});

describe('anthropic adapter: response', () => {
  const message = (over: Record<string, unknown>) => ({ id: 'msg_1', type: 'message', role: 'assistant', model: 'claude-opus-4-6', content: [], stop_reason: 'end_turn', ...over });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
    ['something_new', 'stop'],
    ['constructor', 'stop'],
  ])('maps stop_reason %s to %s', (stop, finish) => {
    expect(anthropicAdapter.chatResponse(message({ stop_reason: stop }), ctx()).completion.choices[0]?.finish_reason).toBe(finish);
  });

  it('leaves thinking and server-tool blocks out; only tool calls → content null', () => {
    const body = message({
      stop_reason: 'tool_use',
      content: [
        { type: 'thinking', thinking: 'Let me think', signature: 'sig' },
        { type: 'redacted_thinking', data: 'xyz' },
        { type: 'tool_use', id: 'toolu_1', name: 'noop', input: {} },
      ],
      usage: { input_tokens: 10, output_tokens: 50, output_tokens_details: { thinking_tokens: 30 } },
    });
    const { completion, usage } = anthropicAdapter.chatResponse(body, ctx());
    expect(completion.choices[0]?.message).toEqual({ role: 'assistant', content: null, tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'noop', arguments: '{}' } }] });
    expect(usage).toEqual({ inputTokens: 10, outputTokens: 50, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 30 });
  });

  it('falls back to the sidecar id and target model when Anthropic gives none', () => {
    const { completion } = anthropicAdapter.chatResponse({ content: [{ type: 'text', text: 'x' }] }, ctx());
    expect([completion.id, completion.model, completion.choices[0]?.message.content]).toEqual(['chatcmpl-req-1', 'claude-opus-4-6', 'x']);
  });

  it.each([null, 'text', {}, { content: 'x' }, JSON.parse(anthropicOverloaded)])('throws UpstreamProtocolError on %j', (body) => {
    expect(() => anthropicAdapter.chatResponse(body, ctx())).toThrow(UpstreamProtocolError);
  });

  it('reads Anthropic error bodies', () => {
    const notFound = '{"type":"error","error":{"type":"not_found_error","message":"The requested resource could not be found."},"request_id":"req_011CSHoEeqs5C35K2UUqR7Fy"}';
    expect(anthropicAdapter.errorInfo(notFound, ctx(), {}).message).toBe('The requested resource could not be found.');
    expect(anthropicAdapter.errorInfo(anthropicOverloaded, ctx(), {}).message).toBe('Overloaded');
    expect(anthropicAdapter.errorInfo('{"type":"error","error":{"type":"api_error"}}', ctx(), {}).message).toBe('api_error');
    expect(anthropicAdapter.errorInfo('<html>502</html>', ctx(), {}).message).toBeUndefined();
    expect(anthropicAdapter.errorInfo('{"message":"x"}', ctx(), {}).message).toBeUndefined();
  });

  it('has no embeddings', () => {
    expect(anthropicAdapter.embeddingsRequest).toBeUndefined();
  });
});

const translate = (bytes: Uint8Array, size: number, c = ctx()) => translateStream(anthropicAdapter, bytes, size, c);

interface StreamExpectation {
  chunks: ChatCompletionChunk[];
  usage: unknown;
  responseModel: string;
  finishedAt: boolean[];
}

describe('anthropic adapter: stream', () => {
  it.each(['stream-text', 'stream-tools', 'stream-thinking', 'stream-cache'])('%s: translates byte by byte and whole, identically', (name) => {
    const expected = fixture<StreamExpectation>(`${name}.expected.json`);
    const bytes = raw(`${name}.sse`);
    for (const size of [1, bytes.length]) {
      const { chunks, translator, finishedAt } = translate(bytes, size);
      expect(chunks).toEqual(expected.chunks);
      expect(translator.usage ?? null).toEqual(expected.usage);
      expect(translator.responseModel).toBe(expected.responseModel);
      expect(finishedAt).toEqual(expected.finishedAt);
    }
  });

  it('stream-tools: the argument deltas rebuild the tool input', () => {
    const { chunks } = translate(raw('stream-tools.sse'), 3);
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls.map((c) => c.function?.arguments ?? '').join('')).toBe('{"location": "San Francisco, CA", "unit": "fahrenheit"}');
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe("Okay, let's check the weather for San Francisco, CA:");
  });

  it('throws UpstreamStreamError on an error event, after the text before it', () => {
    const bytes = raw('stream-error.sse');
    for (const size of [1, bytes.length]) {
      const parser = new SseParser();
      const t = anthropicAdapter.chatStream(ctx());
      const events = [];
      for (let i = 0; i < bytes.length; i += size) events.push(...parser.push(bytes.subarray(i, i + size)));
      expect(events.map((e) => e.event)).toEqual(['message_start', 'content_block_start', 'ping', 'content_block_delta', 'error']);
      const chunks = events.slice(0, 4).flatMap((e) => t.push(e));
      expect(chunks.map((c) => c.choices[0]?.delta)).toEqual([{ role: 'assistant', content: '' }, { content: 'Once upon' }]);
      let caught: unknown;
      try {
        t.push(events[4] as (typeof events)[number]);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(UpstreamStreamError);
      expect((caught as UpstreamStreamError).message).toBe('Overloaded');
      expect((caught as UpstreamStreamError).errorType).toBe('overloaded_error');
      expect(t.finished).toBe(false);
      // Input tokens are known from message_start even though the stream failed.
      expect(t.usage).toEqual({ inputTokens: 25, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    }
  });

  it('sends no chunk before the first output, so an early overload can still fail over', () => {
    const t = anthropicAdapter.chatStream(ctx());
    const start = '{"type":"message_start","message":{"id":"msg_x","type":"message","role":"assistant","model":"claude-opus-4-6","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":3,"output_tokens":1}}}';
    expect(t.push({ event: 'message_start', data: start })).toEqual([]);
    expect(t.push({ event: 'content_block_start', data: '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}' })).toEqual([]);
    expect(t.push({ event: 'ping', data: '{"type": "ping"}' })).toEqual([]);
    expect(() => t.push({ event: 'error', data: anthropicOverloaded })).toThrow(UpstreamStreamError);
  });

  it('numbers parallel tool calls 0, 1 and completes a call without arguments with {}', () => {
    const t = anthropicAdapter.chatStream(ctx());
    const ev = (data: Record<string, unknown>) => t.push({ event: String(data.type), data: JSON.stringify(data) });
    ev({ type: 'message_start', message: { id: 'msg_p', model: 'claude-sonnet-4-5', usage: { input_tokens: 9, output_tokens: 1 } } });
    const calls = [
      ...ev({ type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '' } }),
      ...ev({ type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'hmm' } }),
      ...ev({ type: 'content_block_stop', index: 0 }),
      ...ev({ type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_a', name: 'get_time', input: {} } }),
      ...ev({ type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } }),
      ...ev({ type: 'content_block_stop', index: 1 }),
      ...ev({ type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_b', name: 'get_weather', input: {} } }),
      ...ev({ type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{"city":"Paris"}' } }),
      ...ev({ type: 'content_block_stop', index: 2 }),
      ...ev({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 40 } }),
      ...ev({ type: 'message_stop' }),
    ].map((c) => c.choices[0]);
    expect(calls).toEqual([
      { index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null, logprobs: null },
      { index: 0, delta: { tool_calls: [{ index: 0, id: 'toolu_a', type: 'function', function: { name: 'get_time', arguments: '' } }] }, finish_reason: null, logprobs: null },
      { index: 0, delta: { tool_calls: [{ index: 0, function: { arguments: '{}' } }] }, finish_reason: null, logprobs: null },
      { index: 0, delta: { tool_calls: [{ index: 1, id: 'toolu_b', type: 'function', function: { name: 'get_weather', arguments: '' } }] }, finish_reason: null, logprobs: null },
      { index: 0, delta: { tool_calls: [{ index: 1, function: { arguments: '{"city":"Paris"}' } }] }, finish_reason: null, logprobs: null },
      { index: 0, delta: {}, finish_reason: 'tool_calls', logprobs: null },
    ]);
    expect(t.finished).toBe(true);
    expect(t.usage).toEqual({ inputTokens: 9, outputTokens: 40, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it('counts cache writes from message_start and keeps them when message_delta carries only output_tokens', () => {
    const t = anthropicAdapter.chatStream(ctx());
    t.push({ data: '{"type":"message_start","message":{"id":"msg_c","usage":{"input_tokens":21,"cache_creation_input_tokens":188086,"cache_read_input_tokens":0,"output_tokens":1}}}' });
    t.push({ data: '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":393}}' });
    expect(t.usage).toEqual({ inputTokens: 188107, outputTokens: 393, cacheReadTokens: 0, cacheWriteTokens: 188086, reasoningTokens: 0 });
  });

  it('ends the choice at message_stop even without a stop_reason, and ignores unknown events', () => {
    const t = anthropicAdapter.chatStream(ctx());
    expect(t.push({ event: 'future_event', data: '{"type":"future_event","x":1}' })).toEqual([]);
    const chunks = t.push({ event: 'message_stop', data: '{"type":"message_stop"}' });
    expect(chunks.map((c) => [c.id, c.model, c.choices[0]?.delta, c.choices[0]?.finish_reason])).toEqual([
      ['chatcmpl-req-1', 'claude-opus-4-6', { role: 'assistant', content: '' }, null],
      ['chatcmpl-req-1', 'claude-opus-4-6', {}, 'stop'],
    ]);
    expect(t.finished).toBe(true);
  });

  it('throws UpstreamProtocolError on an event that is not a JSON object', () => {
    expect(() => anthropicAdapter.chatStream(ctx()).push({ data: 'not json' })).toThrow(UpstreamProtocolError);
    expect(() => anthropicAdapter.chatStream(ctx()).push({ data: '[1]' })).toThrow(UpstreamProtocolError);
  });
});

describe('anthropic adapter against the fake Anthropic upstream', () => {
  let up: FakeUpstream;
  beforeAll(async () => {
    up = await startFakeUpstream(anthropicResponder);
  });
  afterAll(async () => {
    await up.close();
  });

  const send = async (req: ChatRequest, stream: boolean, c: TargetContext) => {
    const native = anthropicAdapter.chatRequest(req, c, stream);
    return fetch(native.url, { method: 'POST', headers: native.headers, body: native.body });
  };
  const fakeCtx = (over: Partial<TargetContext> = {}) => ctx('claude-sonnet-4-5', { baseURL: up.url, ...over });

  it('answers /v1/messages natively', async () => {
    const res = await send(chat({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }] }), false, fakeCtx());
    expect(res.status).toBe(200);
    expect(res.headers.get('request-id')).toMatch(/^req_01/);
    const { completion, usage } = anthropicAdapter.chatResponse(await res.json(), fakeCtx());
    expect(completion.id).toMatch(/^msg_01/);
    expect(completion.choices).toEqual([{ index: 0, message: { role: 'assistant', content: 'Claude echo: hello there' }, finish_reason: 'stop', logprobs: null }]);
    expect(completion.model).toBe('claude-sonnet-4-5');
    expect(usage).toEqual({ inputTokens: 4, outputTokens: 4, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    const recorded = up.requests.at(-1);
    expect(recorded?.headers['x-api-key']).toBe('test-key');
    expect(recorded?.headers['anthropic-version']).toBe('2023-06-01');
  });

  it('streams Anthropic SSE frames, cut at max_tokens', async () => {
    const res = await send(chat({ messages: [{ role: 'user', content: 'one two three' }], max_tokens: 3, stream: true }), true, fakeCtx());
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    const bytes = new Uint8Array(await res.arrayBuffer());
    const text = new TextDecoder().decode(bytes);
    expect(text).toMatch(/^event: message_start\ndata: \{"type":"message_start",/);
    expect([...text.matchAll(/^event: (\w+)$/gm)].map((m) => m[1])).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    const { chunks, translator } = translate(bytes, 7, fakeCtx());
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Claude echo: one');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('length');
    expect(translator.finished).toBe(true);
    expect(translator.usage).toEqual({ inputTokens: 3, outputTokens: 3, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it('stops at a stop sequence', async () => {
    const req = chat({ messages: [{ role: 'user', content: 'alpha beta gamma' }], stop: 'gamma' });
    const { completion } = anthropicAdapter.chatResponse(await (await send(req, false, fakeCtx())).json(), fakeCtx());
    expect([completion.choices[0]?.message.content, completion.choices[0]?.finish_reason]).toEqual(['Claude echo: alpha beta ', 'stop']);
  });

  it('calls a tool when the request forces one', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { prompt: { type: 'string' } } } } }];
    const req = chat({ messages: [{ role: 'user', content: 'find cats' }], tools, tool_choice: { type: 'function', function: { name: 'lookup' } } });
    const { completion } = anthropicAdapter.chatResponse(await (await send(req, false, fakeCtx())).json(), fakeCtx());
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
    const calls = completion.choices[0]?.message.tool_calls ?? [];
    expect(calls.map((c) => [c.id.slice(0, 8), c.function.name, c.function.arguments])).toEqual([['toolu_01', 'lookup', '{"prompt":"find cats"}']]);
    const { chunks } = translate(new Uint8Array(await (await send(req, true, fakeCtx())).arrayBuffer()), 1, fakeCtx());
    const streamed = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(streamed[0]).toEqual({ index: 0, id: expect.stringMatching(/^toolu_01/), type: 'function', function: { name: 'lookup', arguments: '' } });
    expect(streamed.map((c) => c.function?.arguments).join('')).toBe('{"prompt":"find cats"}');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('tool_calls');
  });

  it('answers the tool results after a round trip', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup' } }];
    const messages = [
      { role: 'user', content: 'find cats' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_x', type: 'function', function: { name: 'lookup', arguments: '{"prompt":"find cats"}' } }] },
      { role: 'tool', tool_call_id: 'toolu_x', content: '3 cats' },
    ];
    const { completion } = anthropicAdapter.chatResponse(await (await send(chat({ messages, tools }), false, fakeCtx())).json(), fakeCtx());
    expect(completion.choices[0]?.message.content).toBe('Claude received the tool results.');
  });

  it('rejects a request without a key the way Anthropic does, and serves the 529 overload body', async () => {
    const res = await send(chat({ messages: user }), false, fakeCtx({ apiKey: undefined }));
    expect(res.status).toBe(401);
    expect(anthropicAdapter.errorInfo(await res.text(), ctx(), {}).message).toBe('x-api-key header is required');
    up.fault({ kind: 'status', status: 529, body: anthropicOverloaded });
    const overloaded = await send(chat({ messages: user }), false, fakeCtx());
    expect(overloaded.status).toBe(529);
    const text = await overloaded.text();
    expect(JSON.parse(text)).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    expect(anthropicAdapter.errorInfo(text, ctx(), {}).message).toBe('Overloaded');
    expect(JSON.parse(anthropicError('rate_limit_error', 'slow down'))).toEqual({ type: 'error', error: { type: 'rate_limit_error', message: 'slow down' } });
  });
});
