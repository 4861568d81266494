import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError } from '../../../sidecar/errors.js';
import type { ChatCompletionChunk, ChatRequest } from '../../../sidecar/openai-schema.js';
import { geminiAdapter } from '../../../sidecar/providers/gemini.js';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { type TargetContext } from '../../../sidecar/providers/types.js';
import { SseParser, type SseEvent } from '../../../sidecar/sse.js';
import { geminiError, geminiResponder } from '../../support/fake-gemini.js';
import { chatRequest, describeRecordedExchanges, fixtures, translateStream } from '../../support/recorded-exchanges.js';
import { startFakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';

const FIXTURES = join(import.meta.dirname, 'fixtures/gemini');
const { json: fixture, raw } = fixtures(FIXTURES);

const ctx = (model = 'gemini-2.5-flash', over: Partial<TargetContext> = {}): TargetContext => ({
  model,
  baseURL: 'https://generativelanguage.googleapis.com',
  apiKey: 'test-key',
  created: 1750000000,
  responseId: 'chatcmpl-req-1',
  ...over,
});

const chat = chatRequest('paygo-gemini');
const nativeBody = (req: ChatRequest, c = ctx()) => JSON.parse(geminiAdapter.chatRequest(req, c, false).body) as Record<string, unknown>;

describeRecordedExchanges({
  name: 'gemini',
  adapter: geminiAdapter,
  dir: FIXTURES,
  cases: [
    ['chat-text.json', 'gemini-2.5-flash'],
    ['chat-tools.json', 'gemini-3-flash-preview'],
    ['chat-multimodal.json', 'gemini-2.5-flash'],
    ['chat-blocked.json', 'gemini-2.5-flash'],
  ],
  ctx: (model) => ctx(model),
  headers: { 'content-type': 'application/json', accept: 'application/json', 'x-goog-api-key': 'test-key' },
  routeModel: 'paygo-gemini',
});

describe('gemini adapter: request', () => {
  const user = [{ role: 'user', content: 'Hi' }];

  it('streams from :streamGenerateContent?alt=sse with the key in a header, never in the URL', () => {
    const up = geminiAdapter.chatRequest(chat({ messages: user, stream: true }), ctx(), true);
    expect(up.url).toBe('https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse');
    expect(up.headers).toEqual({ 'content-type': 'application/json', accept: 'text/event-stream', 'x-goog-api-key': 'test-key' });
    expect(up.url).not.toContain('key=');
  });

  it('builds the URL from the target base and model resource name; no key, no header', () => {
    const c = ctx('tunedModels/my-tune', { baseURL: 'http://127.0.0.1:9999/', apiKey: undefined });
    const up = geminiAdapter.chatRequest(chat({ messages: user }), c, false);
    expect(up.url).toBe('http://127.0.0.1:9999/v1beta/tunedModels/my-tune:generateContent');
    expect(up.headers).not.toHaveProperty('x-goog-api-key');
    expect(geminiAdapter.chatRequest(chat({ messages: user }), ctx('models/gemini-2.0-flash'), false).url).toBe(
      'https://generativelanguage.googleapis.com/v1beta/models/gemini-2.0-flash:generateContent',
    );
  });

  it('omits generationConfig when nothing is set and passes stop arrays as they are', () => {
    expect(nativeBody(chat({ messages: user }))).toEqual({ contents: [{ role: 'user', parts: [{ text: 'Hi' }] }] });
    expect(nativeBody(chat({ messages: user, stop: ['a', 'b'], max_tokens: 5 })).generationConfig).toEqual({ stopSequences: ['a', 'b'], maxOutputTokens: 5 });
    expect(nativeBody(chat({ messages: user, stop: [], temperature: null }))).not.toHaveProperty('generationConfig');
  });

  it.each([
    ['auto', { mode: 'AUTO' }],
    ['none', { mode: 'NONE' }],
    ['required', { mode: 'ANY' }],
    [{ type: 'function', function: { name: 'get_time' } }, { mode: 'ANY', allowedFunctionNames: ['get_time'] }],
  ])('maps tool_choice %j', (choice, config) => {
    const tools = [{ type: 'function', function: { name: 'get_time' } }];
    expect(nativeBody(chat({ messages: user, tools, tool_choice: choice })).toolConfig).toEqual({ functionCallingConfig: config });
  });

  it('sends no toolConfig without tools', () => {
    expect(nativeBody(chat({ messages: user, tool_choice: 'required' }))).not.toHaveProperty('toolConfig');
  });

  it('merges consecutive assistant turns and signs only the first replayed call of a model turn', () => {
    const body = nativeBody(
      chat({
        messages: [
          { role: 'user', content: 'Time?' },
          { role: 'assistant', content: 'Checking.' },
          { role: 'assistant', content: '', tool_calls: [{ id: 't1', type: 'function', function: { name: 'get_time', arguments: '' } }] },
          { role: 'tool', tool_call_id: 't1', content: '[1,2]' },
        ],
      }),
    );
    expect(body.contents).toEqual([
      { role: 'user', parts: [{ text: 'Time?' }] },
      { role: 'model', parts: [{ text: 'Checking.' }, { functionCall: { name: 'get_time', args: {} }, thoughtSignature: 'skip_thought_signature_validator' }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_time', response: { output: '[1,2]' } } }] },
    ]);
  });

  describe('rejects what Gemini cannot take with a 400 naming the parameter', () => {
    const cases: Array<[string, Record<string, unknown>, string]> = [
      [
        'tool-call arguments that are not JSON',
        { messages: [user[0], { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":' } }] }] },
        'messages[1].tool_calls[0].function.arguments',
      ],
      [
        'tool-call arguments that are not an object',
        { messages: [user[0], { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '[1]' } }] }] },
        'messages[1].tool_calls[0].function.arguments',
      ],
      ['a tool result for an unknown call', { messages: [user[0], { role: 'tool', tool_call_id: 'nope', content: 'x' }] }, 'messages[1].tool_call_id'],
      [
        'an http image URL with no known image extension',
        { messages: [{ role: 'user', content: [{ type: 'text', text: 'x' }, { type: 'image_url', image_url: { url: 'https://example.com/image' } }] }] },
        'messages[0].content[1].image_url.url',
      ],
      [
        'a malformed http URL',
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://exa mple.com/a.png' } }] }] },
        'messages[0].content[0].image_url.url',
      ],
      [
        'a data: URL that is not base64',
        { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png,abc' } }] }] },
        'messages[0].content[0].image_url.url',
      ],
      [
        'an unsupported content part',
        { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } }] }] },
        'messages[0].content[0].type',
      ],
      [
        'an image in a system message',
        { messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }] }, user[0]] },
        'messages[0].content[0].type',
      ],
      ['a json_schema format without a schema', { messages: user, response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema'],
      ['an unknown response_format', { messages: user, response_format: { type: 'grammar' } }, 'response_format.type'],
      ['no user or assistant message', { messages: [{ role: 'system', content: 'Be nice.' }] }, 'messages'],
    ];

    it.each(cases)('%s', (_name, body, param) => {
      let caught: unknown;
      try {
        geminiAdapter.chatRequest(chat(body), ctx(), false);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(ApiError);
      expect((caught as ApiError).status).toBe(400);
      expect((caught as ApiError).param).toBe(param);
    });
  });
});

describe('gemini adapter: response', () => {
  it('maps finish reasons; a filtered candidate has empty content', () => {
    const body = {
      candidates: [
        { finishReason: 'SAFETY', index: 0 },
        { content: { parts: [{ text: 'x' }], role: 'model' }, finishReason: 'MALFORMED_FUNCTION_CALL', index: 1 },
        { content: { parts: [{ text: 'y' }], role: 'model' }, finishReason: 'RECITATION', index: 2 },
      ],
    };
    const { completion, usage } = geminiAdapter.chatResponse(body, ctx());
    expect(completion.id).toBe('chatcmpl-req-1');
    expect(completion.model).toBe('gemini-2.5-flash');
    expect(completion.choices.map((c) => [c.message.content, c.finish_reason])).toEqual([
      ['', 'content_filter'],
      ['x', 'stop'],
      ['y', 'content_filter'],
    ]);
    expect(usage).toBeUndefined();
    expect(completion).not.toHaveProperty('usage');
  });

  it('counts tool-use prompt tokens as input', () => {
    const body = { candidates: [{ content: { parts: [{ text: 'x' }] }, finishReason: 'STOP' }], usageMetadata: { promptTokenCount: 10, toolUsePromptTokenCount: 5, candidatesTokenCount: 2, totalTokenCount: 17 } };
    expect(geminiAdapter.chatResponse(body, ctx()).usage).toEqual({ inputTokens: 15, outputTokens: 2, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it.each([null, 'text', {}, { candidates: 'x' }])('throws UpstreamProtocolError on %j', (body) => {
    expect(() => geminiAdapter.chatResponse(body, ctx())).toThrow(UpstreamProtocolError);
  });

  it('reads Google error bodies, bare or wrapped in an array', () => {
    const body = '{\n  "error": {\n    "code": 429,\n    "message": "Resource has been exhausted (e.g. check quota).",\n    "status": "RESOURCE_EXHAUSTED"\n  }\n}\n';
    expect(geminiAdapter.errorInfo(body, ctx(), {}).message).toBe('Resource has been exhausted (e.g. check quota).');
    expect(geminiAdapter.errorInfo(`[${body}]`, ctx(), {}).message).toBe('Resource has been exhausted (e.g. check quota).');
    expect(geminiAdapter.errorInfo('{"error":{"code":500,"status":"INTERNAL"}}', ctx(), {}).message).toBe('INTERNAL');
    expect(geminiAdapter.errorInfo('<html>502</html>', ctx(), {}).message).toBeUndefined();
    expect(geminiAdapter.errorInfo('{"message":"x"}', ctx(), {}).message).toBeUndefined();
  });
});

const translate = (bytes: Uint8Array, size: number, c = ctx()) => translateStream(geminiAdapter, bytes, size, c);

interface StreamExpectation {
  chunks: ChatCompletionChunk[];
  usage: unknown;
  responseModel: string;
}

describe('gemini adapter: stream', () => {
  it('the recorded streams use Google\'s CRLF framing', () => {
    for (const f of ['stream-text.sse', 'stream-tools.sse', 'stream-error.sse']) {
      const text = raw(f).toString('utf8');
      expect(text.startsWith('data: {')).toBe(true);
      expect(text.endsWith('}\r\n\r\n')).toBe(true);
      expect(text.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
    }
  });

  it.each([
    ['stream-text', 'gemini-2.5-flash'],
    ['stream-tools', 'gemini-3-flash-preview'],
  ])('%s: translates byte by byte and whole, identically', (name, model) => {
    const expected = fixture<StreamExpectation>(`${name}.expected.json`);
    const bytes = raw(`${name}.sse`);
    for (const size of [1, bytes.length]) {
      const { chunks, translator, finishedAt } = translate(bytes, size, ctx(model));
      expect(chunks).toEqual(expected.chunks);
      expect(translator.usage).toEqual(expected.usage);
      expect(translator.responseModel).toBe(expected.responseModel);
      expect(translator.finished).toBe(true);
      // Gemini has no [DONE]: only the event carrying finishReason completes the stream.
      expect(finishedAt).toEqual([false, false, true]);
    }
  });

  it('throws UpstreamStreamError on an error chunk', () => {
    const bytes = raw('stream-error.sse');
    for (const size of [1, bytes.length]) {
      const t = geminiAdapter.chatStream(ctx());
      const parser = new SseParser();
      const events = [...parser.push(bytes.subarray(0, size)), ...parser.push(bytes.subarray(size))];
      expect(t.push(events[0] as SseEvent).map((c) => c.choices[0]?.delta)).toEqual([{ role: 'assistant', content: 'Once upon' }]);
      let caught: unknown;
      try {
        t.push(events[1] as SseEvent);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(UpstreamStreamError);
      expect((caught as UpstreamStreamError).message).toBe('The model is overloaded. Please try again later.');
      expect((caught as UpstreamStreamError).errorType).toBe('UNAVAILABLE');
      expect(t.finished).toBe(false);
    }
  });

  it('throws UpstreamProtocolError on an event that is not JSON', () => {
    expect(() => geminiAdapter.chatStream(ctx()).push({ data: 'not json' })).toThrow(UpstreamProtocolError);
  });

  it('answers a blocked prompt with one filtered, empty chunk and finishes', () => {
    const t = geminiAdapter.chatStream(ctx());
    const chunks = t.push({ data: '{"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"},"usageMetadata": {"promptTokenCount": 7,"totalTokenCount": 7},"modelVersion": "gemini-2.5-flash","responseId": "abc"}' });
    expect(chunks).toEqual([
      { id: 'abc', object: 'chat.completion.chunk', created: 1750000000, model: 'gemini-2.5-flash', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: 'content_filter', logprobs: null }] },
    ]);
    expect(t.finished).toBe(true);
    expect(t.usage).toEqual({ inputTokens: 7, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it('tracks several candidates and finishes only when each has a finishReason', () => {
    const t = geminiAdapter.chatStream(ctx());
    const first = t.push({ data: '{"candidates": [{"content": {"parts": [{"text": "a"}],"role": "model"},"index": 0},{"content": {"parts": [{"text": "b"}],"role": "model"},"index": 1}]}' });
    expect(first.map((c) => c.choices[0])).toEqual([
      { index: 0, delta: { role: 'assistant', content: 'a' }, finish_reason: null, logprobs: null },
      { index: 1, delta: { role: 'assistant', content: 'b' }, finish_reason: null, logprobs: null },
    ]);
    const second = t.push({ data: '{"candidates": [{"content": {"parts": [{"text": ""}],"role": "model"},"finishReason": "STOP","index": 0}]}' });
    expect(second.map((c) => c.choices[0])).toEqual([{ index: 0, delta: {}, finish_reason: 'stop', logprobs: null }]);
    expect(t.finished).toBe(false);
    t.push({ data: '{"candidates": [{"content": {"parts": [{"text": "c"}],"role": "model"},"finishReason": "MAX_TOKENS","index": 1}]}' });
    expect(t.finished).toBe(true);
    // No responseId upstream: the sidecar's id, and the target model until one is reported.
    expect(first[0]?.id).toBe('chatcmpl-req-1');
    expect(first[0]?.model).toBe('gemini-2.5-flash');
  });

  it('leaves thought-summary parts out of the content', () => {
    const t = geminiAdapter.chatStream(ctx());
    const chunks = t.push({ data: '{"candidates": [{"content": {"parts": [{"text": "thinking...","thought": true}],"role": "model"},"index": 0}]}' });
    expect(chunks.map((c) => c.choices[0]?.delta)).toEqual([{ role: 'assistant' }]);
    expect(t.push({ data: '{"candidates": [{"content": {"parts": [{"text": "Hi"}],"role": "model"},"index": 0}]}' }).map((c) => c.choices[0]?.delta)).toEqual([{ content: 'Hi' }]);
  });
});

describe('gemini adapter against the fake Gemini upstream', () => {
  let up: FakeUpstream;
  beforeAll(async () => {
    up = await startFakeUpstream(geminiResponder);
  });
  afterAll(async () => {
    await up.close();
  });

  const send = async (req: ChatRequest, stream: boolean, c: TargetContext) => {
    const native = geminiAdapter.chatRequest(req, c, stream);
    return fetch(native.url, { method: 'POST', headers: native.headers, body: native.body });
  };
  const fakeCtx = (over: Partial<TargetContext> = {}) => ctx('gemini-2.5-flash', { baseURL: up.url, ...over });

  it('answers generateContent natively', async () => {
    const res = await send(chat({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }] }), false, fakeCtx());
    expect(res.status).toBe(200);
    const { completion, usage } = geminiAdapter.chatResponse(await res.json(), fakeCtx());
    expect(completion.choices).toEqual([{ index: 0, message: { role: 'assistant', content: 'Gemini echo: hello there' }, finish_reason: 'stop', logprobs: null }]);
    expect(completion.model).toBe('gemini-2.5-flash');
    expect(usage).toEqual({ inputTokens: 4, outputTokens: 4, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect(up.requests.at(-1)?.headers['x-goog-api-key']).toBe('test-key');
  });

  it('streams SSE with CRLF framing, cut at maxOutputTokens', async () => {
    const res = await send(chat({ messages: [{ role: 'user', content: 'one two three' }], max_tokens: 3, stream: true }), true, fakeCtx());
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    expect(new TextDecoder().decode(bytes)).toMatch(/^data: \{"candidates": \[.*\}\r\n\r\ndata: /s);
    const { chunks, translator } = translate(bytes, 7, fakeCtx());
    expect(chunks.map((c) => c.choices[0]?.delta.content).join('')).toBe('Gemini echo: one');
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('length');
    expect(translator.finished).toBe(true);
    expect(translator.usage).toEqual({ inputTokens: 3, outputTokens: 3, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it('calls a function when the request forces one', async () => {
    const tools = [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: { prompt: { type: 'string' } } } } }];
    const req = chat({ messages: [{ role: 'user', content: 'find cats' }], tools, tool_choice: 'required' });
    const { completion } = geminiAdapter.chatResponse(await (await send(req, false, fakeCtx())).json(), fakeCtx());
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
    expect(completion.choices[0]?.message.tool_calls).toEqual([
      { id: 'call_37173b255a076f7109358d36_0_0', type: 'function', function: { name: 'lookup', arguments: '{"prompt":"find cats"}' } },
    ]);
    const { chunks } = translate(new Uint8Array(await (await send(req, true, fakeCtx())).arrayBuffer()), 1, fakeCtx());
    expect(chunks.map((c) => c.choices[0]?.finish_reason)).toEqual(['tool_calls']);
  });

  it('rejects a request without a key the way Google does, and the helper builds Google error bodies', async () => {
    const res = await send(chat({ messages: [{ role: 'user', content: 'x' }] }), false, fakeCtx({ apiKey: undefined }));
    expect(res.status).toBe(403);
    expect(geminiAdapter.errorInfo(await res.text(), ctx(), {}).message).toMatch(/unregistered callers/);
    up.fault({ kind: 'status', status: 429, body: geminiError(429, 'RESOURCE_EXHAUSTED', 'Resource has been exhausted (e.g. check quota).') });
    const limited = await send(chat({ messages: [{ role: 'user', content: 'x' }] }), false, fakeCtx());
    expect(limited.status).toBe(429);
    const text = await limited.text();
    expect(JSON.parse(text)).toEqual({ error: { code: 429, message: 'Resource has been exhausted (e.g. check quota).', status: 'RESOURCE_EXHAUSTED' } });
    expect(geminiAdapter.errorInfo(text, ctx(), {}).message).toBe('Resource has been exhausted (e.g. check quota).');
  });
});
