import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { ResponseStore } from '../../../sidecar/apis/response-store.js';
import { deleteStoredResponse, getStoredResponse, parseResponsesRequest, type ResponsesTurn } from '../../../sidecar/apis/responses.js';
import type { ResponseObject } from '../../../sidecar/apis/responses-types.js';
import type { CallerCost } from '../../../sidecar/apis/types.js';
import { ApiError } from '../../../sidecar/errors.js';
import type { ChatCompletion, ChatCompletionChunk, FinishReason } from '../../../sidecar/openai-schema.js';
import type { Usage } from '../../../sidecar/usage.js';

const NOW_MS = 1_700_000_000_500;
const CREATED = 1_700_000_000;
const USAGE: Usage = { inputTokens: 120, outputTokens: 30, cacheReadTokens: 100, cacheWriteTokens: 4, reasoningTokens: 7 };
const PRICED: CallerCost = { usd: 0.0012, estimated: false };
const UNPRICED: CallerCost = { usd: undefined, estimated: true };
const RESPONSE_USAGE = {
  input_tokens: 120,
  input_tokens_details: { cached_tokens: 100, cache_write_tokens: 4 },
  output_tokens: 30,
  output_tokens_details: { reasoning_tokens: 7 },
  total_tokens: 150,
  cost: 0.0012,
};

/** The n-th id the injected randomness hands out (48 hex digits). */
const hex = (n: number) => n.toString(16).padStart(48, '0');

function setup() {
  const store = new ResponseStore({ maxEntries: 100, maxBytes: 10_000_000, ttlMs: 86_400_000, now: () => NOW_MS });
  let n = 0;
  const ids = { random: (bytes: number) => (++n).toString(16).padStart(bytes * 2, '0'), now: () => NOW_MS };
  return { store, parse: (body: unknown): ResponsesTurn => parseResponsesRequest(body, store, ids) };
}

function completion(message: ChatCompletion['choices'][0]['message'], finish: FinishReason = 'stop'): ChatCompletion {
  return { id: 'chatcmpl-1', object: 'chat.completion', created: 1, model: 'gpt-x', choices: [{ index: 0, message, finish_reason: finish }] };
}

const chunk = (delta: ChatCompletionChunk['choices'][0]['delta'], finish: FinishReason | null = null): ChatCompletionChunk => ({
  id: 'chatcmpl-1',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'gpt-x',
  choices: [{ index: 0, delta, finish_reason: finish }],
});

/** A Response object with OpenAI's defaults for every echoed field. */
function responseWith(o: Partial<ResponseObject>): ResponseObject {
  return {
    id: `resp_${hex(1)}`,
    object: 'response',
    created_at: CREATED,
    status: 'completed',
    background: false,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model: 'gpt-x',
    output: [],
    parallel_tool_calls: true,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: null,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: [],
    top_p: null,
    truncation: 'disabled',
    usage: null,
    user: null,
    metadata: {},
    ...o,
  };
}

const text = (t: string) => ({ type: 'output_text' as const, text: t, annotations: [], logprobs: [] });

/** The SSE text as its events; each event's name must equal its data's type. */
function events(sse: string): Array<Record<string, unknown>> {
  return sse
    .split('\n\n')
    .filter(Boolean)
    .map((block) => {
      const [eventLine, dataLine, ...rest] = block.split('\n');
      expect(rest).toEqual([]);
      const data = JSON.parse(dataLine!.replace(/^data: /, '')) as Record<string, unknown>;
      expect(eventLine).toBe(`event: ${String(data.type)}`);
      return data;
    });
}

function apiError(fn: () => unknown): { status: number; body: unknown } {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return { status: err.status, body: err.toJSON() };
    throw err;
  }
  throw new Error('no error thrown');
}

describe('parseResponsesRequest: the request as a chat request', () => {
  it('a string input is one user message; instructions open the chat as a system message; every parameter maps to its chat counterpart', () => {
    const { parse } = setup();
    const turn = parse({
      model: 'fast',
      instructions: 'Be brief.',
      input: 'What is 2+2?',
      max_output_tokens: 256,
      temperature: 0.2,
      top_p: 0.9,
      tools: [{ type: 'function', name: 'add', description: 'Adds.', parameters: { type: 'object', properties: { a: { type: 'number' } } }, strict: true }],
      tool_choice: { type: 'function', name: 'add' },
      parallel_tool_calls: false,
      user: 'user-1',
      text: { format: { type: 'json_schema', name: 'sum', schema: { type: 'object' }, strict: true, description: 'A sum.' }, verbosity: 'low' },
      reasoning: { effort: 'low', summary: 'auto' },
      stream: true,
      store: true,
      metadata: { app: 'demo' },
      // tolerated, not forwarded:
      include: ['message.output_text.logprobs'],
      service_tier: 'auto',
      prompt_cache_key: 'k',
      safety_identifier: 'h',
      truncation: 'auto',
      max_tool_calls: 3,
      stream_options: { include_obfuscation: false },
    });
    expect(turn.chat).toEqual({
      model: 'fast',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is 2+2?' },
      ],
      stream: true,
      max_completion_tokens: 256,
      temperature: 0.2,
      top_p: 0.9,
      tools: [{ type: 'function', function: { name: 'add', description: 'Adds.', parameters: { type: 'object', properties: { a: { type: 'number' } } }, strict: true } }],
      tool_choice: { type: 'function', function: { name: 'add' } },
      parallel_tool_calls: false,
      user: 'user-1',
      response_format: { type: 'json_schema', json_schema: { name: 'sum', schema: { type: 'object' }, strict: true, description: 'A sum.' } },
      reasoning_effort: 'low',
    });
    expect([turn.stream, turn.responseId]).toEqual([true, `resp_${hex(1)}`]);
  });

  it('json_object and text formats; tool_choice and parallel_tool_calls only go with tools; nulls are absent', () => {
    const { parse } = setup();
    expect(parse({ model: 'm', input: 'x', text: { format: { type: 'json_object' } }, tool_choice: 'required', parallel_tool_calls: true, temperature: null, stream: false }).chat).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_object' },
    });
    expect(parse({ model: 'm', input: 'x', text: { format: { type: 'text' } }, tools: [{ type: 'function', name: 'f' }], tool_choice: 'none', reasoning: { effort: null } }).chat).toEqual({
      model: 'm',
      messages: [{ role: 'user', content: 'x' }],
      tools: [{ type: 'function', function: { name: 'f' } }],
      tool_choice: 'none',
    });
  });

  it('message items, with or without type "message": every role, text and image parts, assistant output_text and refusal parts joined', () => {
    const { parse } = setup();
    const turn = parse({
      model: 'm',
      input: [
        { role: 'developer', content: 'dev rules' },
        { type: 'message', role: 'system', content: [{ type: 'input_text', text: 'sys rules' }] },
        {
          role: 'user',
          content: [
            { type: 'input_text', text: 'Look:' },
            { type: 'input_image', image_url: 'https://example.com/a.png', detail: 'high' },
            { type: 'input_image', image_url: 'data:image/png;base64,AAAA', detail: 'original' },
          ],
        },
        { type: 'message', role: 'assistant', id: 'msg_earlier', status: 'completed', content: [text('I see '), { type: 'refusal', refusal: 'but cannot say.' }] },
        { role: 'assistant', content: 'plain' },
      ],
    });
    expect(turn.chat.messages).toEqual([
      { role: 'developer', content: 'dev rules' },
      { role: 'system', content: [{ type: 'text', text: 'sys rules' }] },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Look:' },
          { type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'high' } },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
        ],
      },
      { role: 'assistant', content: 'I see but cannot say.' },
      { role: 'assistant', content: 'plain' },
    ]);
  });

  it('function calls join the assistant message before them, consecutive calls make one message, outputs become tool messages, reasoning is dropped', () => {
    const { parse } = setup();
    const turn = parse({
      model: 'm',
      input: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        { type: 'reasoning', id: 'rs_1', summary: [{ type: 'summary_text', text: 'thinking' }] },
        { type: 'message', role: 'assistant', content: [text('Checking.')] },
        { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'weather', arguments: '{"city":"Paris"}', status: 'completed' },
        { type: 'function_call', call_id: 'call_2', name: 'weather', arguments: '{"city":"Rome"}' },
        { type: 'function_call_output', call_id: 'call_1', output: 'sunny' },
        { type: 'function_call_output', call_id: 'call_2', output: [{ type: 'input_text', text: 'rain' }, { type: 'input_text', text: 'y' }] },
        { type: 'function_call', call_id: 'call_3', name: 'weather', arguments: '{}' },
        { type: 'function_call_output', id: 'fco_3', call_id: 'call_3', output: '' },
      ],
    });
    expect(turn.chat.messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_2', type: 'function', function: { name: 'weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
      { role: 'tool', tool_call_id: 'call_2', content: 'rainy' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_3', type: 'function', function: { name: 'weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_3', content: '' },
    ]);
  });

  const SECRET = 'SECRET prompt text';
  const refusals: Array<[string, unknown, number, { message: string; type: string; param: string | null; code: string }]> = [
    ['a body that is not an object', [SECRET], 400, { message: 'The request body must be a JSON object.', type: 'invalid_request_error', param: null, code: 'invalid_request' }],
    ['no model', { input: SECRET }, 400, { message: 'Invalid request: model: Invalid input: expected string, received undefined', type: 'invalid_request_error', param: 'model', code: 'invalid_request' }],
    ['temperature out of range', { model: 'm', input: SECRET, temperature: 3 }, 400, { message: 'Invalid request: temperature: Too big: expected number to be <=2', type: 'invalid_request_error', param: 'temperature', code: 'invalid_request' }],
    ['nothing to say', { model: 'm', input: [] }, 400, { message: 'Invalid request: input must contain at least one item.', type: 'invalid_request_error', param: 'input', code: 'invalid_request' }],
    [
      'a hosted tool',
      { model: 'm', input: SECRET, tools: [{ type: 'function', name: 'f' }, { type: 'web_search_preview' }] },
      400,
      { message: 'The tool type "web_search_preview" is not supported: paygo serves function tools only (hosted tools run inside OpenAI).', type: 'invalid_request_error', param: 'tools.1.type', code: 'unsupported_parameter' },
    ],
    ['a function tool without a name', { model: 'm', input: SECRET, tools: [{ type: 'function', description: SECRET }] }, 400, { message: 'Invalid request: tools.0.name: Invalid input: expected string, received undefined', type: 'invalid_request_error', param: 'tools.0.name', code: 'invalid_request' }],
    ['a hosted tool choice', { model: 'm', input: SECRET, tool_choice: { type: 'file_search' } }, 400, { message: 'The tool_choice type "file_search" is not supported: paygo serves function tools only.', type: 'invalid_request_error', param: 'tool_choice.type', code: 'unsupported_parameter' }],
    [
      'an image by file id',
      { model: 'm', input: [{ role: 'user', content: [{ type: 'input_text', text: SECRET }, { type: 'input_image', file_id: 'file-1' }] }] },
      400,
      { message: 'Images by file_id are not supported: paygo has no file storage; send image_url (a URL or a data URL).', type: 'invalid_request_error', param: 'input.0.content.1.file_id', code: 'unsupported_parameter' },
    ],
    [
      'a file',
      { model: 'm', input: [{ role: 'user', content: [{ type: 'input_file', file_data: SECRET }] }] },
      400,
      { message: 'input_file is not supported: paygo has no file storage and not every provider reads files.', type: 'invalid_request_error', param: 'input.0.content.0.type', code: 'unsupported_parameter' },
    ],
    ['an image in an assistant message', { model: 'm', input: [{ role: 'assistant', content: [{ type: 'input_image', image_url: SECRET }] }] }, 400, { message: 'The content type "input_image" is not supported here.', type: 'invalid_request_error', param: 'input.0.content.0.type', code: 'unsupported_parameter' }],
    ['an unknown role', { model: 'm', input: [{ role: 'tool', content: SECRET }] }, 400, { message: 'Invalid request: input.0.role: Invalid option: expected one of "user"|"assistant"|"system"|"developer"', type: 'invalid_request_error', param: 'input.0.role', code: 'invalid_request' }],
    [
      'a hosted tool call item',
      { model: 'm', input: [{ role: 'user', content: SECRET }, { type: 'web_search_call', id: 'ws_1', status: 'completed' }] },
      400,
      { message: 'The input item type "web_search_call" is not supported: paygo serves messages and function calls only.', type: 'invalid_request_error', param: 'input.1.type', code: 'unsupported_parameter' },
    ],
    [
      'a call id that is not a string',
      { model: 'm', input: [{ role: 'user', content: SECRET }, { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' }, { type: 'function_call_output', call_id: 7, output: SECRET }] },
      400,
      { message: 'Invalid request: input.2.call_id: Invalid input: expected string, received number', type: 'invalid_request_error', param: 'input.2.call_id', code: 'invalid_request' },
    ],
    ['a call without arguments', { model: 'm', input: [{ type: 'function_call', call_id: 'c', name: SECRET }] }, 400, { message: 'Invalid request: input.0.arguments: Invalid input: expected string, received undefined', type: 'invalid_request_error', param: 'input.0.arguments', code: 'invalid_request' }],
    [
      'an image in a tool output',
      { model: 'm', input: [{ type: 'function_call_output', call_id: 'c', output: [{ type: 'input_image', image_url: SECRET }] }] },
      400,
      { message: 'The tool output type "input_image" is not supported: chat tool results carry text only.', type: 'invalid_request_error', param: 'input.0.output.0.type', code: 'unsupported_parameter' },
    ],
    ['an item of neither type nor role', { model: 'm', input: [{ content: SECRET }] }, 400, { message: 'Invalid request: each input item needs a type (or a role, for a message).', type: 'invalid_request_error', param: 'input.0.type', code: 'invalid_request' }],
    ['an unknown text format', { model: 'm', input: SECRET, text: { format: { type: 'yaml' } } }, 400, { message: "Invalid request: text.format.type: Invalid discriminator value. Expected 'text' | 'json_object' | 'json_schema'", type: 'invalid_request_error', param: 'text.format.type', code: 'invalid_request' }],
    ['a conversation', { model: 'm', input: SECRET, conversation: 'conv_1' }, 400, { message: 'conversation is not supported: paygo keeps responses, not conversations; chain them with previous_response_id.', type: 'invalid_request_error', param: 'conversation', code: 'unsupported_parameter' }],
    ['a stored prompt', { model: 'm', input: SECRET, prompt: { id: 'pmpt_1' } }, 400, { message: 'prompt (a stored prompt template) is not supported: send instructions and input instead.', type: 'invalid_request_error', param: 'prompt', code: 'unsupported_parameter' }],
    ['background', { model: 'm', input: SECRET, background: true }, 400, { message: 'background responses are not supported.', type: 'invalid_request_error', param: 'background', code: 'unsupported_parameter' }],
    ['top_logprobs', { model: 'm', input: SECRET, top_logprobs: 2 }, 400, { message: 'top_logprobs is not supported on /v1/responses.', type: 'invalid_request_error', param: 'top_logprobs', code: 'unsupported_parameter' }],
  ];

  it.each(refusals)('refuses %s, naming the parameter and never quoting the prompt', (_name, body, status, error) => {
    const { parse } = setup();
    const got = apiError(() => parse(body));
    expect(got).toEqual({ status, body: { error } });
    expect(JSON.stringify(got)).not.toContain('SECRET');
  });
});

describe('state: previous_response_id and item_reference', () => {
  it('chains three turns: each sees the whole earlier conversation; instructions are not inherited', () => {
    const { store, parse } = setup();
    const t1 = parse({ model: 'm', instructions: 'Rules one.', input: 'q1' });
    const r1 = t1.respond(completion({ role: 'assistant', content: 'a1' }), USAGE, PRICED);

    const t2 = parse({ model: 'm', previous_response_id: r1.id, instructions: 'Rules two.', input: [{ role: 'user', content: 'q2' }], tools: [{ type: 'function', name: 'lookup' }] });
    expect(t2.chat.messages).toEqual([
      { role: 'system', content: 'Rules two.' },
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: 'a1' },
      { role: 'user', content: 'q2' },
    ]);
    const r2 = t2.respond(completion({ role: 'assistant', content: null, tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'lookup', arguments: '{"q":2}' } }] }, 'tool_calls'), USAGE, PRICED);
    expect(r2.previous_response_id).toBe(r1.id);

    const t3 = parse({ model: 'm', previous_response_id: r2.id, input: [{ type: 'function_call_output', call_id: 'call_9', output: '42' }] });
    const history = [
      { role: 'user', content: 'q1' },
      { role: 'assistant', content: 'a1' },
      { role: 'user', content: 'q2' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'lookup', arguments: '{"q":2}' } }] },
      { role: 'tool', tool_call_id: 'call_9', content: '42' },
    ];
    expect(t3.chat.messages).toEqual(history);
    const r3 = t3.respond(completion({ role: 'assistant', content: 'It is 42.' }), USAGE, PRICED);
    expect(store.get(r3.id)?.conversation).toEqual([...history, { role: 'assistant', content: 'It is 42.' }]);
  });

  it('an unknown previous_response_id is OpenAI\'s 400 previous_response_not_found; a store: false response cannot be chained', () => {
    const { parse } = setup();
    expect(apiError(() => parse({ model: 'm', input: 'x', previous_response_id: 'resp_gone' }))).toEqual({
      status: 400,
      body: { error: { message: "Previous response with id 'resp_gone' not found.", type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' } },
    });
    const unstored = parse({ model: 'm', input: 'x', store: false }).respond(completion({ role: 'assistant', content: 'y' }), USAGE, PRICED);
    expect(unstored.store).toBe(false);
    expect(apiError(() => parse({ model: 'm', input: 'x', previous_response_id: unstored.id })).status).toBe(400);
    expect(apiError(() => parse({ model: 'm', input: 'x', previous_response_id: 'resp_<script>' })).body).toEqual({
      error: { message: 'Previous response with id not found.', type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' },
    });
  });

  it('item_reference finds our output items and the items the client gave with ids (the AI SDK tool loop, store: true)', () => {
    const { parse } = setup();
    const t1 = parse({ model: 'm', input: [{ type: 'message', id: 'msg_client', role: 'user', content: [{ type: 'input_text', text: 'Weather?' }] }], tools: [{ type: 'function', name: 'weather' }] });
    const r1 = t1.respond(completion({ role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{}' } }] }, 'tool_calls'), USAGE, PRICED);
    const [message, call] = r1.output;

    // What @ai-sdk/openai sends for the next step: the user's message again (here by reference),
    // assistant text by item_reference, the function call in full, and its output.
    const t2 = parse({
      model: 'm',
      input: [
        { type: 'item_reference', id: 'msg_client' },
        { type: 'item_reference', id: message!.id },
        { type: 'function_call', call_id: 'call_1', name: 'weather', arguments: '{}' },
        { type: 'function_call_output', call_id: 'call_1', output: 'sunny' },
      ],
    });
    const expected = [
      { role: 'user', content: [{ type: 'text', text: 'Weather?' }] },
      { role: 'assistant', content: 'Checking.', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'sunny' },
    ];
    expect(t2.chat.messages).toEqual(expected);

    // The same with the call by reference ({id} alone is an item_reference too).
    const t3 = parse({ model: 'm', input: [{ id: 'msg_client' }, { type: 'item_reference', id: message!.id }, { id: call!.id }, { type: 'function_call_output', call_id: 'call_1', output: 'sunny' }] });
    expect(t3.chat.messages).toEqual(expected);
  });

  it('ids survive a restart: a new store on the same directory chains and references what the old one answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'paygo-responses-'));
    try {
      const options = { maxEntries: 10, maxBytes: 1_000_000, ttlMs: 86_400_000, dir };
      const before = new ResponseStore(options);
      const r1 = parseResponsesRequest({ model: 'm', input: 'q1' }, before).respond(completion({ role: 'assistant', content: 'a1' }), USAGE, PRICED);
      await before.close();

      const after = new ResponseStore(options);
      expect(getStoredResponse(after, r1.id)).toEqual(r1);
      const t2 = parseResponsesRequest({ model: 'm', previous_response_id: r1.id, input: [{ type: 'item_reference', id: r1.output[0]!.id }, { role: 'user', content: 'q2' }] }, after);
      expect(t2.chat.messages).toEqual([
        { role: 'user', content: 'q1' },
        { role: 'assistant', content: 'a1' },
        { role: 'assistant', content: 'a1' },
        { role: 'user', content: 'q2' },
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('an unknown item_reference is a 404 naming input.N.id', () => {
    const { parse } = setup();
    expect(apiError(() => parse({ model: 'm', input: [{ role: 'user', content: 'x' }, { type: 'item_reference', id: 'msg_unknown' }] }))).toEqual({
      status: 404,
      body: { error: { message: "Item with id 'msg_unknown' not found.", type: 'invalid_request_error', param: 'input.1.id', code: 'item_not_found' } },
    });
  });
});

describe('respond: the completion as a Response object', () => {
  it('a text answer: the Response with every echoed field, usage with cost; stored with its conversation', () => {
    const { store, parse } = setup();
    const turn = parse({ model: 'fast', instructions: 'Be brief.', input: 'hi', temperature: 0.5, max_output_tokens: 100, metadata: { k: 'v' }, user: 'u', truncation: 'auto', reasoning: { effort: 'high', summary: 'auto' }, text: { format: { type: 'json_object' }, verbosity: 'low' } });
    const response = turn.respond(completion({ role: 'assistant', content: 'Hello!' }), USAGE, PRICED);
    expect(response).toEqual(
      responseWith({
        instructions: 'Be brief.',
        max_output_tokens: 100,
        output: [{ type: 'message', id: `msg_${hex(2)}`, status: 'completed', role: 'assistant', content: [text('Hello!')] }],
        reasoning: { effort: 'high', summary: 'auto' },
        temperature: 0.5,
        text: { format: { type: 'json_object' }, verbosity: 'low' },
        truncation: 'auto',
        usage: RESPONSE_USAGE,
        user: 'u',
        metadata: { k: 'v' },
      }),
    );
    expect(store.get(response.id)).toEqual({ response, conversation: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Hello!' }], inputItems: [] });
  });

  it('tool calls: one function_call item per call (call_id = the chat tool call id), no message when there is no text', () => {
    const { parse } = setup();
    const tools = [{ type: 'function', name: 'f', description: 'F.', parameters: { type: 'object' }, strict: false }];
    const turn = parse({ model: 'm', input: 'go', tools, tool_choice: 'required', parallel_tool_calls: true });
    const response = turn.respond(
      completion(
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'f', arguments: '{"x":1}' } },
            { id: 'call_b', type: 'function', function: { name: 'f', arguments: '{"x":2}' } },
          ],
        },
        'tool_calls',
      ),
      USAGE,
      UNPRICED,
    );
    const { cost: _cost, ...unpricedUsage } = RESPONSE_USAGE;
    expect(response).toEqual(
      responseWith({
        output: [
          { type: 'function_call', id: `fc_${hex(2)}`, call_id: 'call_a', name: 'f', arguments: '{"x":1}', status: 'completed' },
          { type: 'function_call', id: `fc_${hex(3)}`, call_id: 'call_b', name: 'f', arguments: '{"x":2}', status: 'completed' },
        ],
        tool_choice: 'required',
        tools: [{ type: 'function', name: 'f', description: 'F.', parameters: { type: 'object' }, strict: false }],
        usage: unpricedUsage,
      }),
    );
  });

  it('a length cut is incomplete (max_output_tokens), a content filter incomplete (content_filter); the last item is marked incomplete', () => {
    const { parse } = setup();
    const cut = parse({ model: 'm', input: 'x' }).respond(completion({ role: 'assistant', content: 'Once upon' }, 'length'), USAGE, PRICED);
    expect([cut.status, cut.incomplete_details, cut.output]).toEqual(['incomplete', { reason: 'max_output_tokens' }, [{ type: 'message', id: `msg_${hex(2)}`, status: 'incomplete', role: 'assistant', content: [text('Once upon')] }]]);
    const filtered = parse({ model: 'm', input: 'x' }).respond(completion({ role: 'assistant', content: '' }, 'content_filter'), USAGE, PRICED);
    expect([filtered.status, filtered.incomplete_details, filtered.output]).toEqual(['incomplete', { reason: 'content_filter' }, [{ type: 'message', id: `msg_${hex(4)}`, status: 'incomplete', role: 'assistant', content: [text('')] }]]);
  });

  it('a refusal is a refusal part; store: false keeps nothing', () => {
    const { store, parse } = setup();
    const response = parse({ model: 'm', input: 'x', store: false }).respond(completion({ role: 'assistant', content: null, refusal: 'I cannot help with that.' }), USAGE, PRICED);
    expect(response.output).toEqual([{ type: 'message', id: `msg_${hex(2)}`, status: 'completed', role: 'assistant', content: [{ type: 'refusal', refusal: 'I cannot help with that.' }] }]);
    expect([response.store, store.size]).toEqual([false, 0]);
  });

  it('GET and DELETE: the stored response, {id, object, deleted}, then 404 "Response with id … not found."', () => {
    const { store, parse } = setup();
    const response = parse({ model: 'm', input: 'x' }).respond(completion({ role: 'assistant', content: 'y' }), USAGE, PRICED);
    expect(getStoredResponse(store, response.id)).toEqual(response);
    expect(deleteStoredResponse(store, response.id)).toEqual({ id: response.id, object: 'response', deleted: true });
    const notFound = { status: 404, body: { error: { message: `Response with id '${response.id}' not found.`, type: 'invalid_request_error', param: null, code: 'response_not_found' } } };
    expect(apiError(() => getStoredResponse(store, response.id))).toEqual(notFound);
    expect(apiError(() => deleteStoredResponse(store, response.id))).toEqual(notFound);
  });
});

describe('encoder: chat chunks as Responses streaming events', () => {
  const created = (o: Partial<ResponseObject> = {}) => responseWith({ status: 'in_progress', ...o });
  const msgId = `msg_${hex(2)}`;

  it('text: created, in_progress, the message item with its part and deltas, completed; stored like respond', () => {
    const { store, parse } = setup();
    const turn = parse({ model: 'fast', input: 'hi', stream: true });
    const encoder = turn.encoder();
    const sse = encoder.push([chunk({ role: 'assistant', content: '' }), chunk({ content: 'Hel' })]) + encoder.push([]) + encoder.push([chunk({ content: 'lo' }), chunk({}, 'stop')]) + encoder.finish(USAGE, PRICED);
    const done = { type: 'message' as const, id: msgId, status: 'completed' as const, role: 'assistant' as const, content: [text('Hello')] };
    const final = responseWith({ output: [done], usage: RESPONSE_USAGE });
    expect(events(sse)).toEqual([
      { type: 'response.created', sequence_number: 0, response: created() },
      { type: 'response.in_progress', sequence_number: 1, response: created() },
      { type: 'response.output_item.added', sequence_number: 2, output_index: 0, item: { type: 'message', id: msgId, status: 'in_progress', role: 'assistant', content: [] } },
      { type: 'response.content_part.added', sequence_number: 3, item_id: msgId, output_index: 0, content_index: 0, part: text('') },
      { type: 'response.output_text.delta', sequence_number: 4, item_id: msgId, output_index: 0, content_index: 0, delta: 'Hel', logprobs: [] },
      { type: 'response.output_text.delta', sequence_number: 5, item_id: msgId, output_index: 0, content_index: 0, delta: 'lo', logprobs: [] },
      { type: 'response.output_text.done', sequence_number: 6, item_id: msgId, output_index: 0, content_index: 0, text: 'Hello', logprobs: [] },
      { type: 'response.content_part.done', sequence_number: 7, item_id: msgId, output_index: 0, content_index: 0, part: text('Hello') },
      { type: 'response.output_item.done', sequence_number: 8, output_index: 0, item: done },
      { type: 'response.completed', sequence_number: 9, response: final },
    ]);
    expect(store.get(turn.responseId)).toEqual({ response: final, conversation: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'Hello' }], inputItems: [] });
  });

  it('text then two tool calls with arguments in pieces: each item opened, streamed and closed in turn', () => {
    const { store, parse } = setup();
    const turn = parse({ model: 'fast', input: 'weather?', stream: true, tools: [{ type: 'function', name: 'weather' }] });
    const encoder = turn.encoder();
    const sse =
      encoder.push([chunk({ role: 'assistant', content: 'Checking.' })]) +
      encoder.push([chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'weather', arguments: '' } }] }), chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] })]) +
      encoder.push([chunk({ tool_calls: [{ index: 0, function: { arguments: '"Paris"}' } }] })]) +
      encoder.push([chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'weather', arguments: '{"city":' } }] }), chunk({ tool_calls: [{ index: 1, function: { arguments: '"Rome"}' } }] }, 'tool_calls')]) +
      encoder.finish(USAGE, PRICED);
    const fcA = `fc_${hex(3)}`;
    const fcB = `fc_${hex(4)}`;
    const message = { type: 'message', id: msgId, status: 'completed', role: 'assistant', content: [text('Checking.')] };
    const callA = { type: 'function_call', id: fcA, call_id: 'call_a', name: 'weather', arguments: '{"city":"Paris"}', status: 'completed' };
    const callB = { type: 'function_call', id: fcB, call_id: 'call_b', name: 'weather', arguments: '{"city":"Rome"}', status: 'completed' };
    const tools = [{ type: 'function' as const, name: 'weather', description: null, parameters: null, strict: null }];
    const final = responseWith({ output: [message, callA, callB] as ResponseObject['output'], tools, usage: RESPONSE_USAGE });
    expect(events(sse)).toEqual([
      { type: 'response.created', sequence_number: 0, response: created({ tools }) },
      { type: 'response.in_progress', sequence_number: 1, response: created({ tools }) },
      { type: 'response.output_item.added', sequence_number: 2, output_index: 0, item: { type: 'message', id: msgId, status: 'in_progress', role: 'assistant', content: [] } },
      { type: 'response.content_part.added', sequence_number: 3, item_id: msgId, output_index: 0, content_index: 0, part: text('') },
      { type: 'response.output_text.delta', sequence_number: 4, item_id: msgId, output_index: 0, content_index: 0, delta: 'Checking.', logprobs: [] },
      { type: 'response.output_text.done', sequence_number: 5, item_id: msgId, output_index: 0, content_index: 0, text: 'Checking.', logprobs: [] },
      { type: 'response.content_part.done', sequence_number: 6, item_id: msgId, output_index: 0, content_index: 0, part: text('Checking.') },
      { type: 'response.output_item.done', sequence_number: 7, output_index: 0, item: message },
      { type: 'response.output_item.added', sequence_number: 8, output_index: 1, item: { ...callA, arguments: '', status: 'in_progress' } },
      { type: 'response.function_call_arguments.delta', sequence_number: 9, item_id: fcA, output_index: 1, delta: '{"city":' },
      { type: 'response.function_call_arguments.delta', sequence_number: 10, item_id: fcA, output_index: 1, delta: '"Paris"}' },
      { type: 'response.function_call_arguments.done', sequence_number: 11, item_id: fcA, output_index: 1, name: 'weather', arguments: '{"city":"Paris"}' },
      { type: 'response.output_item.done', sequence_number: 12, output_index: 1, item: callA },
      { type: 'response.output_item.added', sequence_number: 13, output_index: 2, item: { ...callB, arguments: '', status: 'in_progress' } },
      { type: 'response.function_call_arguments.delta', sequence_number: 14, item_id: fcB, output_index: 2, delta: '{"city":' },
      { type: 'response.function_call_arguments.delta', sequence_number: 15, item_id: fcB, output_index: 2, delta: '"Rome"}' },
      { type: 'response.function_call_arguments.done', sequence_number: 16, item_id: fcB, output_index: 2, name: 'weather', arguments: '{"city":"Rome"}' },
      { type: 'response.output_item.done', sequence_number: 17, output_index: 2, item: callB },
      { type: 'response.completed', sequence_number: 18, response: final },
    ]);
    expect(store.get(turn.responseId)?.conversation).toEqual([
      { role: 'user', content: 'weather?' },
      {
        role: 'assistant',
        content: 'Checking.',
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'weather', arguments: '{"city":"Rome"}' } },
        ],
      },
    ]);
  });

  it('a length cut ends with response.incomplete and the open item closed incomplete', () => {
    const { parse } = setup();
    const encoder = parse({ model: 'm', input: 'x', stream: true }).encoder();
    const all = events(encoder.push([chunk({ content: 'Once' }, 'length')]) + encoder.finish(USAGE, PRICED));
    const item = { type: 'message', id: msgId, status: 'incomplete', role: 'assistant', content: [text('Once')] };
    expect(all.slice(-2)).toEqual([
      { type: 'response.output_item.done', sequence_number: 7, output_index: 0, item },
      { type: 'response.incomplete', sequence_number: 8, response: responseWith({ status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' }, output: [item] as ResponseObject['output'], usage: RESPONSE_USAGE }) },
    ]);
  });

  it('a stream with no output gets one empty message; a refusal streams in a refusal part', () => {
    const { parse } = setup();
    const empty = parse({ model: 'm', input: 'x', stream: true }).encoder();
    expect(events(empty.push([chunk({ role: 'assistant', content: '' }, 'stop')]) + empty.finish(USAGE, PRICED)).map((e) => e.type)).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);

    const refusing = parse({ model: 'm', input: 'x', stream: true }).encoder();
    const id = `msg_${hex(4)}`;
    const all = events(refusing.push([chunk({ refusal: 'No' }), chunk({ refusal: '.' }, 'stop')]) + refusing.finish(USAGE, PRICED));
    expect(all.slice(3, 8)).toEqual([
      { type: 'response.content_part.added', sequence_number: 3, item_id: id, output_index: 0, content_index: 0, part: { type: 'refusal', refusal: '' } },
      { type: 'response.refusal.delta', sequence_number: 4, item_id: id, output_index: 0, content_index: 0, delta: 'No' },
      { type: 'response.refusal.delta', sequence_number: 5, item_id: id, output_index: 0, content_index: 0, delta: '.' },
      { type: 'response.refusal.done', sequence_number: 6, item_id: id, output_index: 0, content_index: 0, refusal: 'No.' },
      { type: 'response.content_part.done', sequence_number: 7, item_id: id, output_index: 0, content_index: 0, part: { type: 'refusal', refusal: 'No.' } },
    ]);
  });

  it('a piece of a call that arrives after the next call began still reaches the final response', () => {
    const { store, parse } = setup();
    const turn = parse({ model: 'm', input: 'x', stream: true, tools: [{ type: 'function', name: 'f' }] });
    const encoder = turn.encoder();
    const all = events(
      encoder.push([
        chunk({ tool_calls: [{ index: 0, id: 'call_a', function: { name: 'f', arguments: '{"a":' } }] }),
        chunk({ tool_calls: [{ index: 1, id: 'call_b', function: { name: 'f', arguments: '{}' } }] }),
        chunk({ tool_calls: [{ index: 0, function: { arguments: '1}' } }] }, 'tool_calls'),
      ]) + encoder.finish(USAGE, PRICED),
    );
    expect(all.filter((e) => e.type === 'response.function_call_arguments.done').map((e) => e.arguments)).toEqual(['{"a":', '{}']);
    const calls = [
      { type: 'function_call', id: `fc_${hex(2)}`, call_id: 'call_a', name: 'f', arguments: '{"a":1}', status: 'completed' },
      { type: 'function_call', id: `fc_${hex(3)}`, call_id: 'call_b', name: 'f', arguments: '{}', status: 'completed' },
    ];
    expect((all.at(-1)!.response as ResponseObject).output).toEqual(calls);
    expect(store.get(turn.responseId)?.response.output).toEqual(calls);
  });

  it('a failure: response.failed with error {code, message} and the partial output; nothing stored; opens the stream if nothing did', () => {
    const { store, parse } = setup();
    const encoder = parse({ model: 'm', input: 'x', stream: true }).encoder();
    const all = events(encoder.push([chunk({ content: 'Hal' })]) + encoder.fail({ message: 'upstream stream broke', type: 'upstream_error', code: 'upstream_stream_error' }));
    expect(all.at(-1)).toEqual({
      type: 'response.failed',
      sequence_number: 5,
      response: responseWith({ status: 'failed', error: { code: 'upstream_stream_error', message: 'upstream stream broke' }, output: [{ type: 'message', id: msgId, status: 'incomplete', role: 'assistant', content: [text('Hal')] }] }),
    });
    expect(store.size).toBe(0);

    const early = parse({ model: 'early', input: 'x', stream: true }).encoder();
    expect(events(early.fail({ message: 'm', type: 't', code: 'c' })).map((e) => [e.type, (e.response as ResponseObject).model])).toEqual([
      ['response.created', 'early'],
      ['response.in_progress', 'early'],
      ['response.failed', 'early'],
    ]);
  });

  it('the openai SDK reads our stream and our JSON (its output_text is computed from our output)', async () => {
    const { parse } = setup();
    const turn = parse({ model: 'fast', input: 'weather?', stream: true, tools: [{ type: 'function', name: 'weather' }] });
    const encoder = turn.encoder();
    const sse =
      encoder.push([chunk({ content: 'Let me ' }), chunk({ content: 'check.' })]) +
      encoder.push([chunk({ tool_calls: [{ index: 0, id: 'call_a', function: { name: 'weather', arguments: '{"c' } }] }), chunk({ tool_calls: [{ index: 0, function: { arguments: '":1}' } }] }, 'tool_calls')]) +
      encoder.finish(USAGE, PRICED);
    const ours = events(sse).at(-1)!.response as ResponseObject;
    const client = new OpenAI({ apiKey: 'k', baseURL: 'http://paygo.invalid/v1', fetch: async () => new Response(sse, { headers: { 'content-type': 'text/event-stream' } }) });
    const stream = client.responses.stream({ model: 'fast', input: 'weather?' });
    const seen: string[] = [];
    stream.on('response.output_text.delta', (e) => seen.push(e.snapshot));
    stream.on('response.function_call_arguments.delta', (e) => seen.push(e.snapshot));
    const final = await stream.finalResponse();
    // The SDK adds its conveniences (output_text, parsed fields) to our JSON.
    const [message, call] = ours.output;
    expect(final).toEqual({
      ...ours,
      output: [{ ...message, content: [{ ...text('Let me check.'), parsed: null }] }, { ...call, parsed_arguments: null }],
      output_text: 'Let me check.',
      output_parsed: null,
    });
    expect(seen).toEqual(['Let me ', 'Let me check.', '{"c', '{"c":1}']);

    const json = parse({ model: 'fast', input: 'hi' }).respond(completion({ role: 'assistant', content: 'Hello!' }), USAGE, PRICED);
    const jsonClient = new OpenAI({ apiKey: 'k', baseURL: 'http://paygo.invalid/v1', fetch: async () => Response.json(json) });
    const got = await jsonClient.responses.create({ model: 'fast', input: 'hi' });
    expect(got.output_text).toBe('Hello!');
    expect(got.id).toBe(json.id);
  });
});
