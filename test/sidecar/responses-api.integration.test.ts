import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import type { FunctionTool, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { anthropicResponderWith } from '../support/fake-anthropic.js';
import { geminiResponderWith } from '../support/fake-gemini.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest, sentDuring } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess, singleTargetRoute } from '../support/sidecar-process.js';

/**
 * OpenAI's Responses API front door on the built sidecar process, driven by the official `openai`
 * SDK (v6) unchanged but for its base URL: `responses.create` (non-streamed and `stream: true`),
 * `responses.stream(...).finalResponse()`, `retrieve` and `delete`, with a function-tool round
 * trip (function_call → function_call_output + previous_response_id → text) against three
 * providers' wire formats: OpenAI Chat Completions, Anthropic Messages and Gemini
 * generateContent (test/support/fake-*.ts, each with a model that calls the first offered tool
 * while the user has the last word). Also: usage and usage.cost against the usage log line of
 * the same x-request-id, the api label in /metrics and the log, refused requests that never
 * reach a provider and are never metered, and the ResponseStore surviving a restart of the
 * process on the same --state-dir.
 */

const QUESTION = 'What is the weather in Paris?';
const TOOL_OUTPUT = '{"temperature_c":18,"sky":"clear"}';
const WEATHER: FunctionTool = {
  type: 'function',
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { location: { type: 'string' }, prompt: { type: 'string' } } },
  strict: false,
};
/** How the Response echoes WEATHER. */
const WEATHER_ECHO = { type: 'function', name: 'get_weather', description: 'The weather in a city', parameters: WEATHER.parameters, strict: false };

const ROUTE_KEYS = { openai: 'sk-openai-route-key', anthropic: 'sk-ant-route-key', gemini: 'gemini-route-key' };
const CLIENT_KEY = 'sk-client-key-never-forwarded';

let openai: FakeUpstream;
let anthropic: FakeUpstream;
let gemini: FakeUpstream;
let sidecar: SidecarProcess;
let client: OpenAI;


function config(): string {
  const openaiTarget = `{ provider: openai, model: gpt-4o-mini, baseURL: "${openai.url}/v1", credentials: { secretRef: { name: keys, key: openai } } }`;
  return [
    `
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { openai: ${ROUTE_KEYS.openai}, anthropic: ${ROUTE_KEYS.anthropic}, gemini: ${ROUTE_KEYS.gemini} }
`,
    singleTargetRoute('gpt', openaiTarget),
    singleTargetRoute('claude', `{ provider: anthropic, model: claude-3-5-haiku-latest, baseURL: "${anthropic.url}", credentials: { secretRef: { name: keys, key: anthropic } } }`),
    singleTargetRoute('gemini', `{ provider: gemini, model: gemini-2.0-flash, baseURL: "${gemini.url}", credentials: { secretRef: { name: keys, key: gemini } } }`),
    // Served only by the metrics test, so its series count exactly what that test sent.
    singleTargetRoute('metered', openaiTarget),
  ].join('---\n');
}

beforeAll(async () => {
  openai = await startFakeUpstream(openaiResponder({ autoToolCalls: true, cachedTokens: 2, reasoningTokens: 3 }));
  anthropic = await startFakeUpstream(anthropicResponderWith({ autoToolUse: true, cacheReadTokens: 5 }));
  gemini = await startFakeUpstream(geminiResponderWith({ autoFunctionCalls: true }));
  sidecar = await startSidecar(config());
  client = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([openai?.close(), anthropic?.close(), gemini?.close()]);
});

/** The usage log line of a request (x-request-id), once the meter published it. */

/** A unique x-request-id per call. */
let seq = 0;
const rid = (what: string) => `responses-${what}-${++seq}`;

interface Tokens {
  input: number;
  output: number;
  cacheRead: number;
  reasoning: number;
}

/** The Responses usage object the client must get for these metered tokens and cost. */
function responseUsage(t: Tokens, costUsd: string) {
  return {
    input_tokens: t.input,
    input_tokens_details: { cached_tokens: t.cacheRead, cache_write_tokens: 0 },
    output_tokens: t.output,
    output_tokens_details: { reasoning_tokens: t.reasoning },
    total_tokens: t.input + t.output,
    cost: Number(costUsd),
  };
}

/** What the usage log line says about a successful request. */
function meteredLine(c: ProviderCase, requestId: string, stream: boolean, t: Tokens) {
  return {
    requestId,
    operation: 'chat',
    api: 'responses',
    route: c.model,
    model: c.model,
    provider: c.provider,
    stream,
    outcome: 'success',
    status: 200,
    tokens: { input: t.input, output: t.output, cacheRead: t.cacheRead, cacheWrite: 0, reasoning: t.reasoning },
    priced: true,
    estimated: false,
    attempts: 1,
  };
}

/** The Response object as OpenAI shapes it, with this suite's request fields echoed. */
function responseObject(o: { model: string; output: unknown[]; usage: unknown; previous?: string | null; outputText: string; tools?: unknown[] }) {
  return {
    id: expect.stringMatching(/^resp_[0-9a-f]{48}$/),
    object: 'response',
    created_at: expect.any(Number),
    status: 'completed',
    background: false,
    error: null,
    incomplete_details: null,
    instructions: null,
    max_output_tokens: null,
    model: o.model,
    output: o.output,
    parallel_tool_calls: true,
    previous_response_id: o.previous ?? null,
    reasoning: { effort: null, summary: null },
    store: true,
    temperature: null,
    text: { format: { type: 'text' } },
    tool_choice: 'auto',
    tools: o.tools ?? [WEATHER_ECHO],
    top_p: null,
    truncation: 'disabled',
    usage: o.usage,
    user: null,
    metadata: {},
    // The SDK's convenience (computed client-side from the output's text).
    output_text: o.outputText,
  };
}

const functionCallItem = (c: ProviderCase, callId: unknown) => ({
  type: 'function_call',
  id: expect.stringMatching(/^fc_[0-9a-f]{48}$/),
  call_id: callId,
  name: 'get_weather',
  arguments: c.arguments,
  status: 'completed',
});

const messageItem = (text: string) => ({
  type: 'message',
  id: expect.stringMatching(/^msg_[0-9a-f]{48}$/),
  status: 'completed',
  role: 'assistant',
  content: [{ type: 'output_text', text, annotations: [], logprobs: [] }],
});

interface ProviderCase {
  /** The route (model name the client sends). */
  model: string;
  provider: 'openai' | 'anthropic' | 'gemini';
  upstream: () => FakeUpstream;
  /** The model the provider answers with. */
  responseModel: string;
  callId: unknown;
  /** The fake's tool arguments, as the function_call item carries them. */
  arguments: string;
  /** The fake's text once it has the tool result. */
  afterTool: string;
  /** Metered tokens of the first turn (the call) and of the second (the text), as the fake reports them. */
  turn1: Tokens;
  turn2: Tokens;
  /** The provider's credentials header, as the fake received it. */
  auth: (req: RecordedRequest) => unknown;
  authExpected: unknown;
  /** The conversation of the second turn as the provider received it (its own wire format). */
  secondTurnSent: (req: RecordedRequest) => unknown;
  secondTurnExpected: (callId: string) => unknown;
}

const CASES: ProviderCase[] = [
  {
    model: 'gpt',
    provider: 'openai',
    upstream: () => openai,
    responseModel: 'gpt-4o-mini-2024-07-18',
    callId: expect.stringMatching(/^call_auto\d+$/),
    arguments: '{"location":"Paris"}',
    afterTool: `echo: ${QUESTION}`,
    // fake-openai: prompt_tokens = 3 + Σ(words or 1, + 3) per message; completion_tokens = reply words + 3 reasoning.
    turn1: { input: 12, output: 10, cacheRead: 2, reasoning: 3 },
    turn2: { input: 20, output: 10, cacheRead: 2, reasoning: 3 },
    auth: (r) => r.headers.authorization,
    authExpected: `Bearer ${ROUTE_KEYS.openai}`,
    secondTurnSent: (r) => (r.body as { messages: unknown }).messages,
    secondTurnExpected: (callId) => [
      { role: 'user', content: QUESTION },
      { role: 'assistant', content: null, tool_calls: [{ id: callId, type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }] },
      { role: 'tool', tool_call_id: callId, content: TOOL_OUTPUT },
    ],
  },
  {
    model: 'claude',
    provider: 'anthropic',
    upstream: () => anthropic,
    responseModel: 'claude-3-5-haiku-latest',
    callId: expect.stringMatching(/^toolu_01[0-9a-f]{22}$/),
    arguments: JSON.stringify({ prompt: QUESTION }),
    afterTool: 'Claude received the tool results.',
    // fake-anthropic: input_tokens = prompt words (+1 per non-text block), plus 5 cache reads; output = deltas.
    turn1: { input: 11, output: 3, cacheRead: 5, reasoning: 0 },
    turn2: { input: 13, output: 5, cacheRead: 5, reasoning: 0 },
    auth: (r) => r.headers['x-api-key'],
    authExpected: ROUTE_KEYS.anthropic,
    secondTurnSent: (r) => (r.body as { messages: unknown }).messages,
    secondTurnExpected: (callId) => [
      { role: 'user', content: QUESTION },
      { role: 'assistant', content: [{ type: 'tool_use', id: callId, name: 'get_weather', input: { prompt: QUESTION } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: callId, content: TOOL_OUTPUT }] },
    ],
  },
  {
    model: 'gemini',
    provider: 'gemini',
    upstream: () => gemini,
    responseModel: 'gemini-2.0-flash',
    callId: expect.any(String),
    arguments: JSON.stringify({ prompt: QUESTION }),
    afterTool: 'Gemini received the function results.',
    // fake-gemini: promptTokenCount = text words + 1 per other part; candidatesTokenCount = streamed steps.
    turn1: { input: 6, output: 1, cacheRead: 0, reasoning: 0 },
    turn2: { input: 8, output: 5, cacheRead: 0, reasoning: 0 },
    auth: (r) => r.headers['x-goog-api-key'],
    authExpected: ROUTE_KEYS.gemini,
    secondTurnSent: (r) => (r.body as { contents: unknown }).contents,
    secondTurnExpected: () => [
      { role: 'user', parts: [{ text: QUESTION }] },
      // A call replayed without Gemini's own signature carries the documented placeholder.
      { role: 'model', parts: [{ functionCall: { name: 'get_weather', args: { prompt: QUESTION } }, thoughtSignature: 'skip_thought_signature_validator' }] },
      { role: 'user', parts: [{ functionResponse: { name: 'get_weather', response: JSON.parse(TOOL_OUTPUT) } }] },
    ],
  },
];

/** The event types of a stream, runs of the same delta event collapsed into one. */
function eventTypes(events: ResponseStreamEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) if (!(e.type.endsWith('.delta') && out.at(-1) === e.type)) out.push(e.type);
  return out;
}

const FUNCTION_CALL_EVENTS = [
  'response.created',
  'response.in_progress',
  'response.output_item.added',
  'response.function_call_arguments.delta',
  'response.function_call_arguments.done',
  'response.output_item.done',
  'response.completed',
];
const TEXT_EVENTS = [
  'response.created',
  'response.in_progress',
  'response.output_item.added',
  'response.content_part.added',
  'response.output_text.delta',
  'response.output_text.done',
  'response.content_part.done',
  'response.output_item.done',
  'response.completed',
];

describe.each(CASES)('openai SDK responses API → route $model (provider $provider)', (c) => {
  it('create: a function_call, then function_call_output with previous_response_id gives text; usage and cost are the metered ones', async () => {
    const firstId = rid(`${c.model}-call`);
    const first = await sentDuring(c.upstream(), () =>
      client.responses.create({ model: c.model, input: QUESTION, tools: [WEATHER] }, { headers: { 'x-request-id': firstId } }).withResponse(),
    );
    expect(first.sent).toHaveLength(1);
    // The provider got the route's key from the Secret, never the client's.
    expect(c.auth(first.sent[0]!)).toEqual(c.authExpected);
    expect(first.sent[0]!.rawBody).not.toContain(CLIENT_KEY);
    expect(JSON.stringify(first.sent[0]!.headers)).not.toContain(CLIENT_KEY);

    const line1 = await sidecar.usageLine(firstId);
    expect(line1).toMatchObject(meteredLine(c, firstId, false, c.turn1));
    expect(line1.costUsd).toEqual(expect.stringMatching(/^0\.\d+$/));
    const r1 = first.value.data;
    expect(first.value.response.headers.get('x-paygo-cost-usd')).toBe(line1.costUsd);
    expect(first.value.response.headers.get('x-request-id')).toBe(firstId);
    expect(r1).toEqual(responseObject({ model: c.responseModel, output: [functionCallItem(c, c.callId)], usage: responseUsage(c.turn1, line1.costUsd as string), outputText: '' }));
    const call = r1.output[0]!;
    if (call.type !== 'function_call') throw new Error('expected a function_call');

    const secondId = rid(`${c.model}-text`);
    const second = await sentDuring(c.upstream(), () =>
      client.responses
        .create(
          { model: c.model, previous_response_id: r1.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: TOOL_OUTPUT }], tools: [WEATHER] },
          { headers: { 'x-request-id': secondId } },
        )
        .withResponse(),
    );
    expect(second.sent).toHaveLength(1);
    // The stored conversation came first: the provider saw the question, its call and the result.
    expect(c.secondTurnSent(second.sent[0]!)).toEqual(c.secondTurnExpected(call.call_id));
    const line2 = await sidecar.usageLine(secondId);
    expect(line2).toMatchObject(meteredLine(c, secondId, false, c.turn2));
    expect(second.value.response.headers.get('x-paygo-cost-usd')).toBe(line2.costUsd);
    expect(second.value.data).toEqual(
      responseObject({ model: c.responseModel, output: [messageItem(c.afterTool)], usage: responseUsage(c.turn2, line2.costUsd as string), previous: r1.id, outputText: c.afterTool }),
    );
  });

  it('stream: true iteration and responses.stream().finalResponse() over the same round trip', async () => {
    const firstId = rid(`${c.model}-stream-call`);
    const events: ResponseStreamEvent[] = [];
    const first = await sentDuring(c.upstream(), async () => {
      const stream = await client.responses.create({ model: c.model, input: QUESTION, tools: [WEATHER], stream: true }, { headers: { 'x-request-id': firstId } });
      for await (const event of stream) events.push(event);
    });
    expect(first.sent).toHaveLength(1);
    expect(eventTypes(events)).toEqual(FUNCTION_CALL_EVENTS);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const done = events.at(-1)!;
    if (done.type !== 'response.completed') throw new Error('expected response.completed last');
    const line1 = await sidecar.usageLine(firstId);
    expect(line1).toMatchObject(meteredLine(c, firstId, true, c.turn1));
    const { output_text: _, ...withoutText } = responseObject({ model: c.responseModel, output: [functionCallItem(c, c.callId)], usage: responseUsage(c.turn1, line1.costUsd as string), outputText: '' });
    expect(done.response).toEqual(withoutText);
    // What the stream's response.completed said is what the sidecar stored.
    expect(await client.responses.retrieve(done.response.id)).toEqual({ ...done.response, output_text: '' });
    const call = done.response.output[0]!;
    if (call.type !== 'function_call') throw new Error('expected a function_call');
    // The argument deltas add up to the arguments.
    const deltas = events.flatMap((e) => (e.type === 'response.function_call_arguments.delta' ? [e.delta] : []));
    expect(deltas.join('')).toBe(c.arguments);

    const secondId = rid(`${c.model}-stream-text`);
    const textEvents: string[] = [];
    const second = await sentDuring(c.upstream(), async () => {
      const stream = client.responses.stream(
        { model: c.model, previous_response_id: done.response.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: TOOL_OUTPUT }], tools: [WEATHER] },
        { headers: { 'x-request-id': secondId } },
      );
      stream.on('event', (e) => textEvents.push(e.type));
      return stream.finalResponse();
    });
    expect(second.sent).toHaveLength(1);
    expect(c.secondTurnSent(second.sent[0]!)).toEqual(c.secondTurnExpected(call.call_id));
    expect(eventTypes(textEvents.map((type) => ({ type }) as ResponseStreamEvent))).toEqual(TEXT_EVENTS);
    const line2 = await sidecar.usageLine(secondId);
    expect(line2).toMatchObject(meteredLine(c, secondId, true, c.turn2));
    // finalResponse() is the SDK's parsed response: output_parsed and each text part's parsed (null without a text format).
    const parsedText = { ...messageItem(c.afterTool), content: [{ type: 'output_text', text: c.afterTool, annotations: [], logprobs: [], parsed: null }] };
    expect(second.value).toEqual({
      ...responseObject({ model: c.responseModel, output: [parsedText], usage: responseUsage(c.turn2, line2.costUsd as string), previous: done.response.id, outputText: c.afterTool }),
      output_parsed: null,
    });
  });

  it('retrieve returns the stored response; delete, then retrieve and delete are 404', async () => {
    const created = await client.responses.create({ model: c.model, input: 'hello there' });
    expect(created.status).toBe('completed');
    expect(await client.responses.retrieve(created.id)).toEqual(created);

    const deleted = await client.responses.delete(created.id).withResponse();
    expect(deleted.response.status).toBe(200);
    expect(deleted.data).toEqual({ id: created.id, object: 'response', deleted: true });

    const gone = await client.responses.retrieve(created.id).catch((e: unknown) => e);
    expect(gone).toBeInstanceOf(OpenAI.NotFoundError);
    expect((gone as InstanceType<typeof OpenAI.NotFoundError>).error).toEqual({
      message: `Response with id '${created.id}' not found.`,
      type: 'invalid_request_error',
      param: null,
      code: 'response_not_found',
    });
    await expect(client.responses.delete(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
  });
});

/**
 * A request the sidecar cannot translate (a hosted tool, an id it never issued) passes through to
 * a route's openai/azure targets since the Responses passthrough (README, "Responses API"): the
 * refusals below are on routes with no such target, where the 400/404 stands. (The passthrough
 * itself is tested in responses-passthrough.integration.test.ts, against a fake that speaks
 * OpenAI's Responses wire format; fake-openai here speaks Chat Completions only.)
 */
describe('openai SDK responses API: state, refusals and metrics', () => {
  it('the SDK delete() of a stored response succeeds, and the id can no longer be chained', async () => {
    const created = await client.responses.create({ model: 'claude', input: 'delete me' });
    await expect(client.responses.delete(created.id)).resolves.toEqual({ id: created.id, object: 'response', deleted: true });
    const chained = await client.responses.create({ model: 'claude', previous_response_id: created.id, input: 'and then?' }).catch((e: unknown) => e);
    expect(chained).toBeInstanceOf(OpenAI.BadRequestError);
    expect((chained as InstanceType<typeof OpenAI.BadRequestError>).error).toEqual({
      message: `Previous response with id '${created.id}' not found.`,
      type: 'invalid_request_error',
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
  });

  it('store: false keeps nothing: retrieve is 404 and previous_response_id is refused', async () => {
    const created = await client.responses.create({ model: 'claude', input: 'forget me', store: false });
    // (store is echoed; the SDK's Response type does not declare it.)
    expect(created).toMatchObject({ store: false });
    await expect(client.responses.retrieve(created.id)).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    await expect(client.responses.create({ model: 'claude', previous_response_id: created.id, input: 'and then?' })).rejects.toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('refused requests (hosted tool web_search, unknown previous_response_id or item_reference) reach no provider and are never metered', async () => {
    const sent = () => openai.requests.length + anthropic.requests.length + gemini.requests.length;
    const before = sent();
    const refusals: Array<{ id: string; body: Parameters<typeof client.responses.create>[0]; error: unknown }> = [
      {
        id: rid('refused-web-search'),
        body: { model: 'claude', input: QUESTION, tools: [{ type: 'web_search' }] },
        error: {
          message: 'The tool type "web_search" is not supported: paygo serves function tools only (hosted tools run inside OpenAI).',
          type: 'invalid_request_error',
          param: 'tools.0.type',
          code: 'unsupported_parameter',
        },
      },
      {
        id: rid('refused-previous'),
        body: { model: 'claude', input: QUESTION, previous_response_id: 'resp_0123456789abcdef' },
        error: { message: "Previous response with id 'resp_0123456789abcdef' not found.", type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' },
      },
      {
        id: rid('refused-stream-previous'),
        body: { model: 'gemini', input: QUESTION, previous_response_id: 'resp_fedcba9876543210', stream: true },
        error: { message: "Previous response with id 'resp_fedcba9876543210' not found.", type: 'invalid_request_error', param: 'previous_response_id', code: 'previous_response_not_found' },
      },
    ];
    for (const r of refusals) {
      const err = await client.responses.create(r.body, { headers: { 'x-request-id': r.id } }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.BadRequestError);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).error).toEqual(r.error);
      expect((err as InstanceType<typeof OpenAI.BadRequestError>).headers.get('x-paygo-cost-usd')).toBeNull();
    }
    // An item_reference the store does not hold is OpenAI's 404, refused the same way.
    const unknownItem = { id: rid('refused-item-reference'), body: { model: 'gemini', input: [{ type: 'item_reference' as const, id: 'msg_0123456789abcdef' }] } };
    const notFound = await client.responses.create(unknownItem.body, { headers: { 'x-request-id': unknownItem.id } }).catch((e: unknown) => e);
    expect(notFound).toBeInstanceOf(OpenAI.NotFoundError);
    expect((notFound as InstanceType<typeof OpenAI.NotFoundError>).error).toEqual({
      message: "Item with id 'msg_0123456789abcdef' not found.",
      type: 'invalid_request_error',
      param: 'input.0.id',
      code: 'item_not_found',
    });
    refusals.push({ ...unknownItem, error: undefined });
    expect(sent()).toBe(before);
    // The meter publishes in order: once a later request's line is out, a line for the refused
    // ones would be out too. There is none (refused before the chat pipeline: nothing to meter).
    const laterId = rid('after-refusals');
    await client.responses.create({ model: 'gpt', input: 'hello' }, { headers: { 'x-request-id': laterId } });
    await sidecar.usageLine(laterId);
    const ids = new Set(refusals.map((r) => r.id));
    expect(sidecar.lines.filter((l) => [...ids].some((id) => l.includes(id)))).toEqual([]);
  });

  it('/metrics counts responses requests under api="responses", and the usage log says api', async () => {
    const responsesId = rid('metrics-responses');
    const chatId = rid('metrics-chat');
    await client.responses.create({ model: 'metered', input: 'count me' }, { headers: { 'x-request-id': responsesId } });
    await client.chat.completions.create({ model: 'metered', messages: [{ role: 'user', content: 'count me' }] }, { headers: { 'x-request-id': chatId } });
    expect(await sidecar.usageLine(responsesId)).toMatchObject({ api: 'responses', route: 'metered' });
    expect(await sidecar.usageLine(chatId)).toMatchObject({ api: 'chat', route: 'metered' });
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    const series = metrics.split('\n').filter((l) => l.startsWith('paygo_requests_total{') && l.includes('route="metered"'));
    expect(series.sort()).toEqual(
      [
        'paygo_requests_total{namespace="default",route="metered",target="openai-0",provider="openai",model="metered",api="chat",outcome="success",estimated="false",priced="true"} 1',
        'paygo_requests_total{namespace="default",route="metered",target="openai-0",provider="openai",model="metered",api="responses",outcome="success",estimated="false",priced="true"} 1',
      ].sort(),
    );
  });
});

describe('the ResponseStore across a restart', () => {
  it('a stored response is still retrievable and chainable after the process restarts on the same --state-dir', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'paygo-responses-state-'));
    const args = ['--state-dir', stateDir];
    let first: SidecarProcess | undefined = await startSidecar(config(), { args });
    let second: SidecarProcess | undefined;
    try {
      const before = new OpenAI({ baseURL: `${first.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
      const r1 = await before.responses.create({ model: 'gpt', input: QUESTION, tools: [WEATHER] });
      const call = r1.output[0]!;
      if (call.type !== 'function_call') throw new Error('expected a function_call');
      expect(await first.stop()).toBe(0);
      first = undefined;
      expect(readdirSync(join(stateDir, 'responses'))).toEqual([`${r1.id}.json`]);

      second = await startSidecar(config(), { args });
      const after = new OpenAI({ baseURL: `${second.url}/v1`, apiKey: CLIENT_KEY, maxRetries: 0 });
      expect(await after.responses.retrieve(r1.id)).toEqual(r1);
      const sent = await sentDuring(openai, () =>
        after.responses.create({ model: 'gpt', previous_response_id: r1.id, input: [{ type: 'function_call_output', call_id: call.call_id, output: TOOL_OUTPUT }], tools: [WEATHER] }),
      );
      expect(sent.value.output_text).toBe(`echo: ${QUESTION}`);
      expect(sent.value.previous_response_id).toBe(r1.id);
      expect(CASES[0]!.secondTurnSent(sent.sent[0]!)).toEqual(CASES[0]!.secondTurnExpected(call.call_id));
    } finally {
      await first?.stop();
      await second?.stop();
    }
  });
});
