import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EventStreamCodec } from '@smithy/core/event-streams';
import { fromUtf8, toUtf8 } from '@smithy/core/serde';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ModelRouteSpecSchema } from '../../../crds/src/modelroute.js';
import { Cancel } from '../../../sidecar/cancel.js';
import { loadCatalog, Pricer } from '../../../sidecar/metering/pricing.js';
import { ApiError } from '../../../sidecar/errors.js';
import type { ChatCompletionChunk, ChatRequest } from '../../../sidecar/openai-schema.js';
import { bedrockAdapter, DEFAULT_BASE_URL, EventStreamDecoder, signRequest, usageFromBedrock } from '../../../sidecar/providers/bedrock.js';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { type TargetContext, type UpstreamRequest } from '../../../sidecar/providers/types.js';
import { UpstreamHttpError } from '../../../sidecar/providers/errors.js';
import { TransportError } from '../../../sidecar/transport.js';
import { bedrockResponder, encodeEvents, fixtureEvents, startFakeSts, STS_EXAMPLE_CREDENTIALS, verifySigV4, type FakeSts } from '../../support/fake-bedrock.js';
import type { RecordedRequest } from '../../support/fake-upstream.js';
import { chatRequest, describeRecordedExchanges, fixtures } from '../../support/recorded-exchanges.js';

/**
 * Amazon Bedrock Converse / ConverseStream, translated natively and signed with SigV4
 * (sidecar/providers/bedrock.ts). Exchanges are recorded from AWS's own documentation (the
 * fixtures' `_docs` fields name the pages and what was adapted): non-stream text, a forced tool
 * call and its tool result, the ConverseStream example, tool-call and reasoning streams built from
 * the documented event shapes, in-stream exceptions, error bodies and usage with prompt-cache
 * reads and writes. Stream fixtures are the documented JSON events, encoded to event-stream
 * messages by test/support/fake-bedrock.ts with @smithy/core's EventStreamCodec.
 */

const FIXTURES = join(import.meta.dirname, 'fixtures/bedrock');
const { json: fixture, raw } = fixtures(FIXTURES);

const KEY = { accessKeyId: 'AKIAIOSFODNN7EXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY' };

const ctx = (model = 'anthropic.claude-3-5-haiku-20241022-v1:0', over: Partial<TargetContext> = {}): TargetContext => ({
  model,
  baseURL: DEFAULT_BASE_URL,
  apiKey: KEY.secretAccessKey,
  created: 1750000000,
  responseId: 'chatcmpl-req-1',
  settings: { region: 'us-east-1', credentialParts: { accessKeyId: KEY.accessKeyId } },
  ...over,
});

const chat = chatRequest('paygo-bedrock');
const nativeBody = (req: ChatRequest, stream = false) => JSON.parse(bedrockAdapter.chatRequest(req, ctx(), stream).body) as Record<string, unknown>;
const user = [{ role: 'user', content: 'Hi' }];
const weather = { type: 'function', function: { name: 'get_weather', description: 'the weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } };
const time = { type: 'function', function: { name: 'get_time' } };
const weatherSpec = { toolSpec: { name: 'get_weather', description: 'the weather', inputSchema: { json: weather.function.parameters } } };
const timeSpec = { toolSpec: { name: 'get_time', inputSchema: { json: { type: 'object', properties: {} } } } };
const toolTurn = [
  { role: 'user', content: 'Weather in Paris?' },
  { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }] },
  { role: 'tool', tool_call_id: 'call_1', content: 'Sunny' },
];

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  return undefined;
}

describeRecordedExchanges({
  name: 'bedrock',
  adapter: bedrockAdapter,
  dir: FIXTURES,
  cases: [
    ['chat-text.json', 'anthropic.claude-3-sonnet-20240229-v1:0'],
    ['chat-tools.json', 'anthropic.claude-3-haiku-20240307-v1:0'],
    ['chat-tool-results.json', 'anthropic.claude-3-haiku-20240307-v1:0'],
  ],
  ctx: (model) => ctx(model),
  headers: { 'content-type': 'application/json' },
  routeModel: 'paygo-bedrock',
});

describe('bedrock adapter: request', () => {
  it('streams from /converse-stream; the region fills the default base URL; model ids, inference profiles and ARNs are URL-encoded', () => {
    expect(bedrockAdapter.chatRequest(chat({ messages: user }), ctx('us.amazon.nova-lite-v1:0'), true).url).toBe('https://bedrock-runtime.us-east-1.amazonaws.com/model/us.amazon.nova-lite-v1%3A0/converse-stream');
    const arn = 'arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.anthropic.claude-3-5-sonnet-20240620-v1:0';
    expect(bedrockAdapter.chatRequest(chat({ messages: user }), ctx(arn, { settings: { region: 'eu-west-1' } }), false).url).toBe(
      'https://bedrock-runtime.eu-west-1.amazonaws.com/model/arn%3Aaws%3Abedrock%3Aeu-west-1%3A123456789012%3Ainference-profile%2Feu.anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse',
    );
  });

  it('a baseURL override (a VPC endpoint, a fake) replaces the default; {region} in it is filled in too', () => {
    const vpce = 'https://vpce-0a1b2c3d4e5f-abcdefgh.bedrock-runtime.us-east-1.vpce.amazonaws.com';
    expect(bedrockAdapter.chatRequest(chat({ messages: user }), ctx('amazon.nova-micro-v1:0', { baseURL: vpce }), false).url).toBe(`${vpce}/model/amazon.nova-micro-v1%3A0/converse`);
    expect(bedrockAdapter.chatRequest(chat({ messages: user }), ctx('m', { baseURL: 'http://127.0.0.1:9999/{region}/' }), false).url).toBe('http://127.0.0.1:9999/us-east-1/model/m/converse');
    const e = caught(() => bedrockAdapter.chatRequest(chat({ messages: user }), ctx('m', { settings: {} }), false));
    expect(e).toBeInstanceOf(UpstreamHttpError);
    expect((e as UpstreamHttpError).status).toBe(401);
  });

  it('system and developer texts become system blocks; a request with only system text is refused', () => {
    const body = nativeBody(chat({ messages: [{ role: 'system', content: 'Be brief.' }, ...user, { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }, { type: 'text', text: '' }] }] }));
    expect(body.system).toEqual([{ text: 'Be brief.' }, { text: 'Answer in French.' }]);
    expect(body.messages).toEqual([{ role: 'user', content: [{ text: 'Hi' }] }]);
    const e = caught(() => nativeBody(chat({ messages: [{ role: 'system', content: 'only me' }] })));
    expect((e as ApiError).param).toBe('messages');
  });

  it('merges consecutive turns of one role (Converse alternates roles) and leaves out empty texts and empty assistant turns', () => {
    const body = nativeBody(
      chat({
        messages: [
          { role: 'user', content: 'First' },
          { role: 'user', content: [{ type: 'text', text: 'Second' }, { type: 'text', text: '' }] },
          { role: 'assistant', content: '' },
          { role: 'assistant', content: 'Reply' },
          { role: 'user', content: 'Third' },
        ],
      }),
    );
    expect(body.messages).toEqual([
      { role: 'user', content: [{ text: 'First' }, { text: 'Second' }] },
      { role: 'assistant', content: [{ text: 'Reply' }] },
      { role: 'user', content: [{ text: 'Third' }] },
    ]);
  });

  it('tool calls become toolUse, results of parallel calls one user turn of toolResult blocks (joined with the next user text); foreign ids are mapped into [a-zA-Z0-9_-]', () => {
    const body = nativeBody(
      chat({
        messages: [
          { role: 'user', content: 'Weather and time?' },
          {
            role: 'assistant',
            content: 'Checking.',
            tool_calls: [
              { id: 'functions.get_weather:0', type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } },
              { id: 'call_2', type: 'function', function: { name: 'get_time', arguments: '' } },
            ],
          },
          { role: 'tool', tool_call_id: 'functions.get_weather:0', content: 'Sunny' },
          { role: 'tool', tool_call_id: 'call_2', content: [{ type: 'text', text: '12:00' }, { type: 'text', text: ' UTC' }] },
          { role: 'user', content: 'Thanks' },
        ],
        tools: [weather, time],
      }),
    );
    expect(body.messages).toEqual([
      { role: 'user', content: [{ text: 'Weather and time?' }] },
      {
        role: 'assistant',
        content: [
          { text: 'Checking.' },
          { toolUse: { toolUseId: 'functions_get_weather_0', name: 'get_weather', input: { location: 'Paris' } } },
          { toolUse: { toolUseId: 'call_2', name: 'get_time', input: {} } },
        ],
      },
      {
        role: 'user',
        content: [
          { toolResult: { toolUseId: 'functions_get_weather_0', content: [{ text: 'Sunny' }] } },
          { toolResult: { toolUseId: 'call_2', content: [{ text: '12:00 UTC' }] } },
          { text: 'Thanks' },
        ],
      },
    ]);
    expect(body.toolConfig).toEqual({ tools: [weatherSpec, timeSpec] });
  });

  it('images from base64 data URLs become image blocks with their format', () => {
    const body = nativeBody(
      chat({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'Compare' },
              { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0KGgo=', detail: 'high' } },
              { type: 'image_url', image_url: { url: 'data:image/jpg;base64,/9j/4AAQ' } },
              { type: 'image_url', image_url: { url: 'data:image/webp;base64,UklGRg==' } },
            ],
          },
        ],
      }),
    );
    expect(body.messages).toEqual([
      {
        role: 'user',
        content: [
          { text: 'Compare' },
          { image: { format: 'png', source: { bytes: 'iVBORw0KGgo=' } } },
          { image: { format: 'jpeg', source: { bytes: '/9j/4AAQ' } } },
          { image: { format: 'webp', source: { bytes: 'UklGRg==' } } },
        ],
      },
    ]);
  });

  it('maps max_completion_tokens (over max_tokens), temperature, top_p and stop into inferenceConfig; nothing asked, no inferenceConfig', () => {
    expect(nativeBody(chat({ messages: user, max_completion_tokens: 50, max_tokens: 99, temperature: 0.2, top_p: 0.9, stop: 'END' })).inferenceConfig).toEqual({
      maxTokens: 50,
      temperature: 0.2,
      topP: 0.9,
      stopSequences: ['END'],
    });
    expect(nativeBody(chat({ messages: user, max_tokens: 7, stop: ['a', 'b'] })).inferenceConfig).toEqual({ maxTokens: 7, stopSequences: ['a', 'b'] });
    const plain = nativeBody(chat({ messages: user, stop: [], temperature: null, n: 1, seed: null, presence_penalty: 0, logprobs: false, user: 'u1', store: true, stream_options: { include_usage: true }, response_format: { type: 'text' }, parallel_tool_calls: true }));
    expect(Object.keys(plain)).toEqual(['messages']);
  });

  it.each([
    ['auto', { auto: {} }],
    ['required', { any: {} }],
    [{ type: 'function', function: { name: 'get_time' } }, { tool: { name: 'get_time' } }],
  ])('maps tool_choice %j to toolChoice %j', (choice, native) => {
    expect(nativeBody(chat({ messages: user, tools: [weather, time], tool_choice: choice })).toolConfig).toEqual({ tools: [weatherSpec, timeSpec], toolChoice: native });
  });

  it('tool_choice none declares no tools (Converse has no "none"); with tool calls in the conversation it is refused', () => {
    expect(nativeBody(chat({ messages: user, tools: [weather], tool_choice: 'none' }))).not.toHaveProperty('toolConfig');
    const e = caught(() => nativeBody(chat({ messages: toolTurn, tools: [weather], tool_choice: 'none' })));
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 400, code: 'unsupported_parameter', param: 'tool_choice' });
    expect(nativeBody(chat({ messages: user, tool_choice: 'required' }))).not.toHaveProperty('toolConfig');
  });

  describe('refuses what Converse cannot take with a 400 naming the parameter', () => {
    const cases: Array<[string, Record<string, unknown>, string, string]> = [
      ['n > 1', { messages: user, n: 2 }, 'n', 'unsupported_parameter'],
      ['logprobs', { messages: user, logprobs: true }, 'logprobs', 'unsupported_parameter'],
      ['top_logprobs', { messages: user, top_logprobs: 2 }, 'top_logprobs', 'unsupported_parameter'],
      ['logit_bias', { messages: user, logit_bias: { '1': 2 } }, 'logit_bias', 'unsupported_parameter'],
      ['presence_penalty', { messages: user, presence_penalty: 0.5 }, 'presence_penalty', 'unsupported_parameter'],
      ['frequency_penalty', { messages: user, frequency_penalty: -0.5 }, 'frequency_penalty', 'unsupported_parameter'],
      ['seed', { messages: user, seed: 42 }, 'seed', 'unsupported_parameter'],
      ['temperature above 1', { messages: user, temperature: 1.5 }, 'temperature', 'unsupported_parameter'],
      ['response_format json_object', { messages: user, response_format: { type: 'json_object' } }, 'response_format.type', 'unsupported_parameter'],
      ['response_format json_schema', { messages: user, response_format: { type: 'json_schema', json_schema: { name: 'x', schema: {} } } }, 'response_format.type', 'unsupported_parameter'],
      ['reasoning_effort', { messages: user, reasoning_effort: 'low' }, 'reasoning_effort', 'unsupported_parameter'],
      ['parallel_tool_calls false', { messages: user, tools: [weather], parallel_tool_calls: false }, 'parallel_tool_calls', 'unsupported_parameter'],
      ['audio output', { messages: user, modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }, 'audio', 'unsupported_parameter'],
      ['web search options', { messages: user, web_search_options: {} }, 'web_search_options', 'unsupported_parameter'],
      ['legacy functions', { messages: user, functions: [{ name: 'f' }] }, 'functions', 'unsupported_parameter'],
      ['an image by web URL', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }] }, 'messages[0].content[0].image_url.url', 'unsupported_parameter'],
      ['an image type Converse does not take', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/tiff;base64,AAAA' } }] }] }, 'messages[0].content[0].image_url.url', 'unsupported_parameter'],
      ['an audio content part', { messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: 'AA', format: 'wav' } }] }] }, 'messages[0].content[0].type', 'unsupported_parameter'],
      ['an image in a system message', { messages: [{ role: 'system', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AA' } }] }, ...user] }, 'messages[0].content[0].type', 'unsupported_parameter'],
      ['an image data URL that is not base64', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png,raw' } }] }] }, 'messages[0].content[0].image_url.url', 'invalid_request'],
      ['a tool result for an unknown call', { messages: [...user, { role: 'tool', tool_call_id: 'nope', content: 'x' }] }, 'messages[1].tool_call_id', 'invalid_request'],
      ['tool_choice naming an undeclared tool', { messages: user, tools: [weather], tool_choice: { type: 'function', function: { name: 'nope' } } }, 'tool_choice.function.name', 'invalid_request'],
      ['tool call arguments that are not a JSON object', { messages: [...user, { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '[1]' } }] }] }, 'messages[1].tool_calls[0].function.arguments', 'invalid_request'],
    ];

    it.each(cases)('%s', (_name, body, param, code) => {
      const e = caught(() => bedrockAdapter.chatRequest(chat(body), ctx(), false));
      expect(e).toBeInstanceOf(ApiError);
      expect((e as ApiError).status).toBe(400);
      expect((e as ApiError).param).toBe(param);
      expect((e as ApiError).code).toBe(code);
    });
  });
});

describe('bedrock adapter: response', () => {
  const response = (over: Record<string, unknown>) => ({ output: { message: { role: 'assistant', content: [{ text: 'ok' }] } }, stopReason: 'end_turn', ...over });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['tool_use', 'tool_calls'],
    ['guardrail_intervened', 'content_filter'],
    ['content_filtered', 'content_filter'],
    ['something_new', 'stop'],
  ])('maps stopReason %s to finish_reason %s', (native, finish) => {
    expect(bedrockAdapter.chatResponse(response({ stopReason: native }), ctx()).completion.choices[0]!.finish_reason).toBe(finish);
  });

  it('joins text blocks around tool calls and leaves reasoningContent out', () => {
    const { completion } = bedrockAdapter.chatResponse(
      response({
        output: {
          message: {
            role: 'assistant',
            content: [
              { reasoningContent: { reasoningText: { text: 'hmm', signature: 'sig' } } },
              { text: 'Let me check.' },
              { toolUse: { toolUseId: 'tooluse_1', name: 'get_time', input: {} } },
              { text: ' One moment.' },
            ],
          },
        },
        stopReason: 'tool_use',
      }),
      ctx(),
    );
    expect(completion.choices[0]!.message).toEqual({
      role: 'assistant',
      content: 'Let me check. One moment.',
      tool_calls: [{ id: 'tooluse_1', type: 'function', function: { name: 'get_time', arguments: '{}' } }],
    });
  });

  it('usage: every prompt token in prompt_tokens (inputTokens excludes cache reads and writes), reads and writes in the details', () => {
    const { completion, usage } = bedrockAdapter.chatResponse(fixture('usage.json'), ctx());
    expect(usage).toEqual({ inputTokens: 24 + 3034 + 512, outputTokens: 11, cacheReadTokens: 3034, cacheWriteTokens: 512, reasoningTokens: 0 });
    expect(completion.usage).toEqual({
      prompt_tokens: 3570,
      completion_tokens: 11,
      total_tokens: 3581,
      prompt_tokens_details: { cached_tokens: 3034, cache_write_tokens: 512 },
      completion_tokens_details: { reasoning_tokens: 0 },
    });
    expect(usageFromBedrock({ inputTokens: 3, outputTokens: 1, totalTokens: 4 })).toEqual({ inputTokens: 3, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect(usageFromBedrock(undefined)).toBeUndefined();
  });

  it('is a protocol error when the body is not a Converse response', () => {
    expect(() => bedrockAdapter.chatResponse({ message: 'hi' }, ctx())).toThrow(UpstreamProtocolError);
    expect(() => bedrockAdapter.chatResponse({ output: { message: { content: 'text' } } }, ctx())).toThrow(UpstreamProtocolError);
    expect(() => bedrockAdapter.chatResponse([], ctx())).toThrow(UpstreamProtocolError);
  });

  it('reads Bedrock error bodies ({"message": ...}); a signature error keeps its first paragraph only (the canonical request after it holds the session token)', () => {
    expect(bedrockAdapter.errorInfo(raw('error-429.json').toString('utf8'), ctx(), {}).message).toBe('Too many tokens, please wait before trying again.');
    expect(bedrockAdapter.errorInfo(raw('error-400.json').toString('utf8'), ctx(), {}).message).toBe('A conversation must start with a user message. Try again with a conversation that starts with a user message.');
    const token = 'IQoJb3JpZ2luX2VjEXAMPLETOKEN';
    const signature = JSON.stringify({
      message: `The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\nThe Canonical String for this request should have been\n'POST\n/model/m/converse\n\nhost:bedrock-runtime.us-east-1.amazonaws.com\nx-amz-date:20250101T000000Z\nx-amz-security-token:${token}\n'`,
    });
    const message = bedrockAdapter.errorInfo(signature, ctx(), {}).message!;
    expect(message).toMatch(/^The request signature we calculated does not match/);
    expect(message).not.toContain(token);
    expect(bedrockAdapter.errorInfo('{"Message":"User is not authorized"}', ctx(), {}).message).toBe('User is not authorized');
    expect(bedrockAdapter.errorInfo('{"error":{"message":"not Bedrock"}}', ctx(), {}).message).toBeUndefined();
    expect(bedrockAdapter.errorInfo('<html>bad gateway</html>', ctx(), {}).message).toBeUndefined();
  });
});

/** Decodes event-stream bytes fed in pieces of `size` and translates the events. */
function translate(bytes: Uint8Array, size: number, c: TargetContext = ctx()) {
  const decoder = bedrockAdapter.streamDecoder!();
  const t = bedrockAdapter.chatStream(c);
  const chunks: ChatCompletionChunk[] = [];
  const finishedAt: boolean[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    for (const ev of decoder.push(bytes.subarray(i, i + size))) {
      chunks.push(...t.push(ev));
      finishedAt.push(t.finished);
    }
  }
  decoder.end();
  return { chunks, translator: t, finishedAt };
}

describe('bedrock adapter: stream', () => {
  const deltas = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]!.delta);
  const text = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]!.delta.content ?? '').join('');

  it.each([1, 7, 1 << 20])('the documented ConverseStream example (fed %i bytes at a time): role chunk, one chunk per non-empty delta, finish at messageStop, complete at metadata', (size) => {
    const { chunks, translator, finishedAt } = translate(encodeEvents(fixtureEvents('stream-text.events.json')), size);
    expect(translator.finished).toBe(true);
    expect(finishedAt).toEqual([false, false, false, false, false, false, true]);
    expect(deltas(chunks)).toEqual([{ role: 'assistant', content: '' }, { content: ' Title' }, { content: ':' }, { content: ' The' }, {}]);
    expect(chunks.at(-1)!.choices[0]).toEqual({ index: 0, delta: {}, finish_reason: 'length', logprobs: null });
    expect(chunks.every((c) => c.id === 'chatcmpl-req-1' && c.object === 'chat.completion.chunk' && c.model === 'anthropic.claude-3-5-haiku-20241022-v1:0' && c.created === 1750000000)).toBe(true);
    expect(translator.usage).toEqual({ inputTokens: 47, outputTokens: 20, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it.each([1, 7, 1 << 20])('a tool call (fed %i bytes at a time): text, then the call with its id and name, its input in argument deltas', (size) => {
    const { chunks, translator } = translate(encodeEvents(fixtureEvents('stream-tools.events.json')), size);
    expect(translator.finished).toBe(true);
    expect(text(chunks)).toBe('Let me look up the top song on WZPZ.');
    const calls = new Map<number, { id?: string; name?: string; args: string }>();
    for (const d of deltas(chunks)) {
      for (const call of d.tool_calls ?? []) {
        const c = calls.get(call.index) ?? { args: '' };
        if (call.id) c.id = call.id;
        if (call.function?.name) c.name = call.function.name;
        c.args += call.function?.arguments ?? '';
        calls.set(call.index, c);
      }
    }
    expect([...calls.entries()].map(([i, c]) => [i, c.id, c.name, JSON.parse(c.args)])).toEqual([[0, 'tooluse_kZJMlvQmRJ6eAyJE5GIl7Q', 'top_song', { sign: 'WZPZ' }]]);
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(translator.usage).toEqual({ inputTokens: 412, outputTokens: 58, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it.each([1, 7])('reasoning deltas are left out; usage with cache reads and writes counts every prompt token (fed %i bytes at a time)', (size) => {
    const { chunks, translator } = translate(encodeEvents(fixtureEvents('stream-reasoning.events.json')), size);
    expect(text(chunks)).toBe('Paris.');
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('stop');
    expect(translator.usage).toEqual({ inputTokens: 12 + 3024 + 120, outputTokens: 41, cacheReadTokens: 3024, cacheWriteTokens: 120, reasoningTokens: 0 });
  });

  it('a throttlingException before any output is an overloaded_error (the router fails over as for a 503)', () => {
    const e = caught(() => translate(encodeEvents(fixtureEvents('stream-throttled.events.json')), 7));
    expect(e).toBeInstanceOf(UpstreamStreamError);
    expect(e).toMatchObject({ errorType: 'overloaded_error', message: 'Too many tokens, please wait before trying again.' });
    const unavailable = caught(() => translate(encodeEvents([{ serviceUnavailableException: { message: 'Bedrock is unable to process your request.' } }]), 1 << 20));
    expect(unavailable).toMatchObject({ errorType: 'overloaded_error' });
  });

  it('a modelStreamErrorException after text ends the stream with an upstream stream error of that type', () => {
    const decoder = new EventStreamDecoder();
    const t = bedrockAdapter.chatStream(ctx());
    const out: ChatCompletionChunk[] = [];
    const e = caught(() => {
      for (const ev of decoder.push(encodeEvents(fixtureEvents('stream-error.events.json')))) out.push(...t.push(ev));
    });
    expect(e).toBeInstanceOf(UpstreamStreamError);
    expect(e).toMatchObject({ errorType: 'modelStreamErrorException', message: 'The model encountered an error while streaming.' });
    expect(text(out)).toBe('Partly');
    expect(t.finished).toBe(false);
  });

  it('the decoder: event, exception and error messages; corrupted, oversized and truncated frames are protocol errors', () => {
    const codec = new EventStreamCodec(toUtf8, fromUtf8);
    const frame = encodeEvents([{ messageStart: { role: 'assistant' } }]);
    expect(new EventStreamDecoder().push(frame)).toEqual([{ event: 'messageStart', data: '{"role":"assistant"}' }]);
    const error = codec.encode({
      headers: { ':message-type': { type: 'string', value: 'error' }, ':error-code': { type: 'string', value: 'InternalFailure' }, ':error-message': { type: 'string', value: 'An internal error occurred.' } },
      body: new Uint8Array(0),
    });
    const [ev] = new EventStreamDecoder().push(error);
    expect(ev).toEqual({ event: 'error', data: '{"message":"An internal error occurred.","code":"InternalFailure"}' });
    expect(caught(() => bedrockAdapter.chatStream(ctx()).push(ev!))).toMatchObject({ errorType: 'error', message: 'An internal error occurred.' });

    const corrupted = Buffer.from(frame);
    corrupted[corrupted.length - 6] = corrupted[corrupted.length - 6]! ^ 0xff;
    expect(() => new EventStreamDecoder().push(corrupted)).toThrow(UpstreamProtocolError);
    expect(() => new EventStreamDecoder().push(Uint8Array.from([0x7f, 0xff, 0xff, 0xff]))).toThrow(UpstreamProtocolError);
    const d = new EventStreamDecoder();
    expect(d.push(frame.subarray(0, 10))).toEqual([]);
    expect(() => d.end()).toThrow(UpstreamProtocolError);
  });

  it('a call without parameters gets "{}" at contentBlockStop; messageStart and unknown events are ignored; metadata without messageStop still finishes', () => {
    const t = bedrockAdapter.chatStream(ctx());
    const push = (event: string, data: unknown) => t.push({ event, data: JSON.stringify(data) });
    expect(push('messageStart', { role: 'assistant', p: 'abcdefgh' })).toEqual([]);
    const start = push('contentBlockStart', { start: { toolUse: { toolUseId: 'tooluse_t', name: 'get_time' } }, contentBlockIndex: 0 });
    expect(deltas(start)).toEqual([{ role: 'assistant', content: '' }, { tool_calls: [{ index: 0, id: 'tooluse_t', type: 'function', function: { name: 'get_time', arguments: '' } }] }]);
    expect(deltas(push('contentBlockStop', { contentBlockIndex: 0 }))).toEqual([{ tool_calls: [{ index: 0, function: { arguments: '{}' } }] }]);
    expect(push('somethingNew', {})).toEqual([]);
    expect(t.finished).toBe(false);
    expect(push('metadata', { usage: { inputTokens: 1, outputTokens: 2, totalTokens: 3 } }).map((c) => c.choices[0]!.finish_reason)).toEqual(['stop']);
    expect(t.finished).toBe(true);
    expect(() => t.push({ event: 'contentBlockDelta', data: 'not json' })).toThrow(UpstreamProtocolError);
  });
});

// ---------------------------------------------------------------------------------------------
// Signing

/** AWS Signature Version 4 test suite (aws-c-auth tests/aws-signing-test-suite/v4, also in the AWS General Reference). */
const SUITE_KEY = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
const SUITE_DATE = new Date('2015-08-30T12:36:00Z');
const SUITE_TOKEN =
  'AQoDYXdzEPT//////////wEXAMPLEtc764bNrC9SAPBSM22wDOk4x4HIZ8j4FZTwdQWLWsKWHGBuFqwAeMicRXmxfpSPfIeoIYRqTflfKD8YUuwthAx7mSEI/qkPpKPi/kMcGdQrmGdeehM4IC1NtBmUpp2wUE8phUZampKsburEDy0KPkyQDYwT7WZ0wq5VSXDvp75YU9HFvlRd8Tx6q6fE8YQcHNVXAkiY9q6d+xo0rKwT38xVqr7ZD0u0iPPkUL64lIZbqBAz+scqKmlzm8FDrypNC9Yjc8fPOLn9FX9KSYvKTr4rvx3iSIlTJabIQwj2ICCR/oLxBA==';
const SCOPE = 'AKIDEXAMPLE/20150830/us-east-1/service/aws4_request';
const SUITE: Array<{ name: string; method: string; headers: Record<string, string>; body: string; token?: string; authorization: string }> = [
  { name: 'get-vanilla', method: 'GET', headers: {}, body: '', authorization: `AWS4-HMAC-SHA256 Credential=${SCOPE}, SignedHeaders=host;x-amz-date, Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31` },
  { name: 'post-vanilla', method: 'POST', headers: {}, body: '', authorization: `AWS4-HMAC-SHA256 Credential=${SCOPE}, SignedHeaders=host;x-amz-date, Signature=5da7c1a2acd57cee7505fc6676e4e544621c30862966e37dddb68e92efbe5d6b` },
  {
    name: 'post-x-www-form-urlencoded',
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: 'Param1=value1',
    authorization: `AWS4-HMAC-SHA256 Credential=${SCOPE}, SignedHeaders=content-type;host;x-amz-date, Signature=ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a`,
  },
  {
    name: 'post-sts-header-before',
    method: 'POST',
    headers: {},
    body: '',
    token: SUITE_TOKEN,
    authorization: `AWS4-HMAC-SHA256 Credential=${SCOPE}, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature=85d96828115b5dc0cfc3bd16ad9e210dd772bbebba041836c64533a82be05ead`,
  },
];

describe('bedrock adapter: SigV4', () => {
  it.each(SUITE)('signRequest reproduces the AWS SigV4 test suite: $name', async (v) => {
    const signed = await signRequest({ url: 'https://example.amazonaws.com/', headers: v.headers, body: v.body }, { ...SUITE_KEY, sessionToken: v.token }, 'us-east-1', { service: 'service', date: SUITE_DATE, method: v.method });
    expect(signed.headers.authorization).toBe(v.authorization);
    expect(signed.headers['x-amz-date']).toBe('20150830T123600Z');
    expect(signed.headers.host).toBe('example.amazonaws.com');
    if (v.token) expect(signed.headers['x-amz-security-token']).toBe(v.token);
  });

  it.each(SUITE)("the fake's independent verifier accepts the test suite's signature for $name, and refuses it once the request changes", (v) => {
    const headers = { ...v.headers, host: 'example.amazonaws.com', 'x-amz-date': '20150830T123600Z', authorization: v.authorization, ...(v.token ? { 'x-amz-security-token': v.token } : {}) };
    const keys = () => ({ secretAccessKey: SUITE_KEY.secretAccessKey, ...(v.token ? { sessionToken: v.token } : {}) });
    expect(verifySigV4({ method: v.method, path: '/', headers, body: v.body }, keys, { service: 'service', region: 'us-east-1' })).toMatchObject({ ok: true, accessKeyId: 'AKIDEXAMPLE' });
    expect(verifySigV4({ method: v.method, path: '/', headers, body: `${v.body}x` }, keys, { service: 'service', region: 'us-east-1' })).toMatchObject({ ok: false, status: 403, type: 'InvalidSignatureException' });
    expect(verifySigV4({ method: v.method, path: '/', headers: { ...headers, host: 'evil.example.com' }, body: v.body }, keys, { service: 'service', region: 'us-east-1' })).toMatchObject({ ok: false });
    expect(verifySigV4({ method: v.method, path: '/', headers, body: v.body }, keys, { service: 'bedrock', region: 'us-east-1' })).toMatchObject({ ok: false });
  });

  const signed = (c: TargetContext, stream = false) => bedrockAdapter.authorize!(bedrockAdapter.chatRequest(chat({ messages: user }), c, stream), c, new Cancel());
  const verify = (up: UpstreamRequest, keys: Record<string, { secretAccessKey: string; sessionToken?: string }>, region = 'us-east-1') => {
    const url = new URL(up.url);
    return verifySigV4({ method: 'POST', path: url.pathname + url.search, headers: up.headers, body: up.body }, (id) => keys[id], { service: 'bedrock', region, now: new Date() });
  };

  it("authorize signs for service bedrock in the target's region with the Secret's key pair over host, content-type and x-amz-date; the body and URL are unchanged", async () => {
    const c = ctx('anthropic.claude-3-5-haiku-20241022-v1:0');
    const plain = bedrockAdapter.chatRequest(chat({ messages: user }), c, false);
    const up = await signed(c);
    expect(up.url).toBe(plain.url);
    expect(up.body).toBe(plain.body);
    expect(up.headers.host).toBe('bedrock-runtime.us-east-1.amazonaws.com');
    expect(up.headers['content-type']).toBe('application/json');
    expect(up.headers.authorization).toMatch(/^AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE\/\d{8}\/us-east-1\/bedrock\/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=[0-9a-f]{64}$/);
    expect(up.headers).not.toHaveProperty('x-amz-security-token');
    expect(verify(up, { [KEY.accessKeyId]: { secretAccessKey: KEY.secretAccessKey } })).toMatchObject({ ok: true });
    // The model id's ':' is %3A on the wire and %253A in the canonical request (SigV4 encodes non-S3 paths twice).
    expect(verify(up, { [KEY.accessKeyId]: { secretAccessKey: 'another secret' } })).toMatchObject({ ok: false, type: 'InvalidSignatureException' });
  });

  it('temporary credentials: the session token is sent and signed', async () => {
    const c = ctx('us.amazon.nova-lite-v1:0', { settings: { region: 'eu-central-1', credentialParts: { accessKeyId: 'ASIAEXAMPLETEMPKEY', sessionToken: 'FwoGZXIvYXdzEXAMPLE' } } });
    const up = await signed(c, true);
    expect(up.url).toBe('https://bedrock-runtime.eu-central-1.amazonaws.com/model/us.amazon.nova-lite-v1%3A0/converse-stream');
    expect(up.headers['x-amz-security-token']).toBe('FwoGZXIvYXdzEXAMPLE');
    expect(up.headers.authorization).toContain('/eu-central-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token,');
    expect(verify(up, { ASIAEXAMPLETEMPKEY: { secretAccessKey: KEY.secretAccessKey, sessionToken: 'FwoGZXIvYXdzEXAMPLE' } }, 'eu-central-1')).toMatchObject({ ok: true });
  });

  it('unusable credentials are a 401 (fails over, no retry) whose message names the field and never the secret', async () => {
    const noId = await rejected(signed(ctx('m', { settings: { region: 'us-east-1' } })));
    expect(noId).toBeInstanceOf(UpstreamHttpError);
    expect(noId).toMatchObject({ status: 401 });
    expect((noId as Error).message).toContain('accessKeyIdRef');
    expect((noId as Error).message).not.toContain(KEY.secretAccessKey);
    const noRegion = await rejected(bedrockAdapter.authorize!({ url: 'https://x/model/m/converse', headers: {}, body: '{}' }, ctx('m', { settings: { credentialParts: { accessKeyId: KEY.accessKeyId } } }), new Cancel()));
    expect(noRegion).toMatchObject({ status: 401 });
    expect((noRegion as Error).message).toContain('region');
  });
});

// ---------------------------------------------------------------------------------------------
// Web identity (IRSA) against a fake STS

describe('bedrock adapter: web identity', () => {
  const ROLE = 'arn:aws:iam::123456789012:role/paygo-bedrock';
  const TOKEN = 'eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDpwYXlnbyJ9.c2lnbmF0dXJl';
  const saved: Record<string, string | undefined> = {};
  const ENV = ['AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ENDPOINT_URL_STS', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_REGION', 'AWS_PROFILE'];
  let sts: FakeSts;
  let tokenFile: string;
  const anonymous = (region: string) => ctx('amazon.nova-micro-v1:0', { apiKey: undefined, settings: { region } });
  const sign = (c: TargetContext) => bedrockAdapter.authorize!(bedrockAdapter.chatRequest(chat({ messages: user }), c, false), c, new Cancel());

  beforeAll(async () => {
    for (const k of ENV) saved[k] = process.env[k];
    sts = await startFakeSts({ roleArn: ROLE, token: TOKEN });
    tokenFile = join(mkdtempSync(join(tmpdir(), 'paygo-irsa-')), 'token');
    writeFileSync(tokenFile, TOKEN);
    Object.assign(process.env, { AWS_ROLE_ARN: ROLE, AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ENDPOINT_URL_STS: sts.url, AWS_CONFIG_FILE: join(tokenFile, '..', 'none'), AWS_SHARED_CREDENTIALS_FILE: join(tokenFile, '..', 'none') });
    delete process.env.AWS_REGION;
    delete process.env.AWS_PROFILE;
  });
  afterAll(async () => {
    for (const k of ENV) {
      if (saved[k] === undefined) delete process.env[k];
      else process.env[k] = saved[k];
    }
    await sts?.close();
  });

  it('without credentials the pod web identity is exchanged at STS once, cached, and its temporary key signs every request', async () => {
    const before = sts.calls;
    const [a, b] = await Promise.all([sign(anonymous('us-west-2')), sign(anonymous('us-west-2'))]);
    const c = await sign(anonymous('us-west-2'));
    expect(sts.calls - before).toBe(1);
    const keys: Record<string, { secretAccessKey: string; sessionToken: string }> = { [STS_EXAMPLE_CREDENTIALS.accessKeyId]: { secretAccessKey: STS_EXAMPLE_CREDENTIALS.secretAccessKey, sessionToken: STS_EXAMPLE_CREDENTIALS.sessionToken } };
    for (const up of [a!, b!, c]) {
      expect(up.headers['x-amz-security-token']).toBe(STS_EXAMPLE_CREDENTIALS.sessionToken);
      const url = new URL(up.url);
      expect(verifySigV4({ method: 'POST', path: url.pathname, headers: up.headers, body: up.body }, (id) => keys[id], { service: 'bedrock', region: 'us-west-2', now: new Date() })).toMatchObject({ ok: true });
    }
  });

  it('a refused web identity token is a 401 naming the STS error, never the token', async () => {
    sts.refuse = true;
    try {
      const e = await rejected(sign(anonymous('ap-south-1')));
      expect(e).toBeInstanceOf(UpstreamHttpError);
      expect(e).toMatchObject({ status: 401 });
      expect((e as Error).message).toContain('InvalidIdentityToken');
      expect((e as Error).message).not.toContain(TOKEN);
    } finally {
      sts.refuse = false;
    }
    // Not cached: the next request asks STS again and succeeds.
    await expect(sign(anonymous('ap-south-1'))).resolves.toMatchObject({ headers: { 'x-amz-security-token': STS_EXAMPLE_CREDENTIALS.sessionToken } });
  });

  it('STS out of reach is a connect failure (retried like the provider); an unreadable token file or no web identity at all is a 401', async () => {
    process.env.AWS_ENDPOINT_URL_STS = 'http://127.0.0.1:9';
    try {
      const e = await rejected(sign(anonymous('sa-east-1')));
      expect(e).toBeInstanceOf(TransportError);
      expect(e).toMatchObject({ failure: 'connect' });
      expect((e as Error).message).not.toContain(TOKEN);
    } finally {
      process.env.AWS_ENDPOINT_URL_STS = sts.url;
    }
    process.env.AWS_WEB_IDENTITY_TOKEN_FILE = join(tokenFile, '..', 'missing-token');
    try {
      const e = await rejected(sign(anonymous('me-south-1')));
      expect(e).toMatchObject({ status: 401 });
      expect((e as Error).message).toBe('bedrock web identity: cannot read the token file (ENOENT)');
    } finally {
      process.env.AWS_WEB_IDENTITY_TOKEN_FILE = tokenFile;
    }
    delete process.env.AWS_ROLE_ARN;
    try {
      const e = await rejected(sign(anonymous('eu-north-1')));
      expect(e).toMatchObject({ status: 401 });
      expect((e as Error).message).toContain('AWS_ROLE_ARN');
    } finally {
      process.env.AWS_ROLE_ARN = ROLE;
    }
  }, 20_000);
});

// ---------------------------------------------------------------------------------------------

describe('the fake Bedrock server speaks what the adapter expects (round trip)', () => {
  const fake = bedrockResponder({ region: 'us-east-1', keys: { [KEY.accessKeyId]: { secretAccessKey: KEY.secretAccessKey } } });
  const recorded = (up: UpstreamRequest): RecordedRequest => {
    const url = new URL(up.url);
    return { method: 'POST', url: url.pathname + url.search, headers: up.headers, body: JSON.parse(up.body), rawBody: up.body };
  };
  const send = async (req: ChatRequest, stream: boolean, c = ctx('amazon.nova-lite-v1:0', { baseURL: 'http://fake' })) => fake(recorded(await bedrockAdapter.authorize!(bedrockAdapter.chatRequest(req, c, stream), c, new Cancel())));

  it('non-stream and stream text agree on text and usage (system words reported as cache reads)', async () => {
    const req = chat({ messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hello there' }] });
    const plain = await send(req, false);
    if (plain.kind !== 'json') throw new Error('expected JSON');
    const { completion, usage } = bedrockAdapter.chatResponse(plain.body, ctx());
    expect(completion.choices[0]!.message.content).toBe('Bedrock echo: hello there');
    expect(usage).toEqual({ inputTokens: 2 + 2, outputTokens: 4, cacheReadTokens: 2, cacheWriteTokens: 0, reasoningTokens: 0 });

    const streamed = await send(req, true);
    if (streamed.kind !== 'raw') throw new Error('expected an event stream');
    const { chunks, translator } = translate(streamed.body as Uint8Array, 5);
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Bedrock echo: hello there');
    expect(translator.usage).toEqual(usage);
  });

  it('a forced tool becomes a tool call; an unsigned or wrongly signed request gets 403 with Bedrock\'s error body', async () => {
    const reply = await send(chat({ messages: [{ role: 'user', content: 'weather in Paris' }], tools: [weather], tool_choice: 'required' }), false);
    if (reply.kind !== 'json') throw new Error('expected JSON');
    const { completion } = bedrockAdapter.chatResponse(reply.body, ctx());
    expect(completion.choices[0]!.finish_reason).toBe('tool_calls');
    expect(JSON.parse(completion.choices[0]!.message.tool_calls![0]!.function.arguments)).toEqual({ query: 'weather in Paris' });

    const unsigned = fake(recorded(bedrockAdapter.chatRequest(chat({ messages: user }), ctx(), false)));
    expect(unsigned).toMatchObject({ kind: 'raw', status: 403, headers: { 'x-amzn-errortype': 'MissingAuthenticationTokenException:http://internal.amazon.com/coral/com.amazon.bedrock/' } });
    const wrong = ctx('m', { apiKey: 'not the secret' });
    const bad = fake(recorded(await bedrockAdapter.authorize!(bedrockAdapter.chatRequest(chat({ messages: user }), wrong, false), wrong, new Cancel())));
    expect(bad).toMatchObject({ status: 403 });
    expect(bedrockAdapter.errorInfo(String((bad as { body: string }).body), ctx(), {}).message).toMatch(/^The request signature we calculated does not match/);
  });
});

// ---------------------------------------------------------------------------------------------

describe('bedrock targets: validation and catalog prices', () => {
  const parse = (target: Record<string, unknown>) => ModelRouteSpecSchema.safeParse({ model: 'm', targets: [{ provider: 'bedrock', model: 'us.amazon.nova-lite-v1:0', ...target }] });
  const messages = (target: Record<string, unknown>) => {
    const r = parse(target);
    return r.success ? [] : r.error.issues.map((i) => i.message);
  };
  const ref = (key: string) => ({ name: 'aws', key });

  it('region is required; credentials need accessKeyIdRef beside secretRef; without credentials (web identity) none are needed', () => {
    expect(messages({})).toEqual(['spec.targets[0].region is required for provider bedrock (the AWS region, e.g. us-east-1)']);
    expect(messages({ region: 'us-east-1', credentials: { secretRef: ref('AWS_SECRET_ACCESS_KEY') } })).toEqual([
      'spec.targets[0].credentials.accessKeyIdRef is required for provider bedrock with credentials (secretRef is the secret access key)',
    ]);
    expect(parse({ region: 'us-east-1' }).success).toBe(true);
    expect(parse({ region: 'us-east-1', credentials: { secretRef: ref('AWS_SECRET_ACCESS_KEY'), accessKeyIdRef: ref('AWS_ACCESS_KEY_ID'), sessionTokenRef: ref('AWS_SESSION_TOKEN') } }).success).toBe(true);
  });

  it.each([
    ['anthropic.claude-3-5-haiku-20241022-v1:0', 'regional.anthropic.claude-3-5-haiku-20241022-v1:0', '4.800000000'],
    ['us.anthropic.claude-3-5-haiku-20241022-v1:0', 'regional.anthropic.claude-3-5-haiku-20241022-v1:0', '4.800000000'],
    ['us.amazon.nova-lite-v1:0', 'amazon.nova-lite-v1:0', '0.300000000'],
    ['arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.amazon.nova-lite-v1:0', 'amazon.nova-lite-v1:0', '0.300000000'],
  ])('%s is priced from the catalog provider "aws" (%s)', async (model, catalogModel, usd) => {
    await loadCatalog();
    const q = new Pricer({ clock: () => new Date('2025-09-01T12:00:00Z') }).price('bedrock', model, { inputTokens: 1_000_000, outputTokens: 1_000_000, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect(q).toMatchObject({ known: true, source: 'catalog', breakdown: { catalogProvider: 'aws', catalogModel } });
    expect((Number(q.costNano) / 1e9).toFixed(9)).toBe(usd);
  });
});
