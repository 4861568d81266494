import Anthropic from '@anthropic-ai/sdk';
import type { Message, MessageParam, MessageStreamEvent, Tool } from '@anthropic-ai/sdk/resources/messages';
import { countTokens as o200kTokens } from 'gpt-tokenizer/encoding/o200k_base';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { anthropicResponderWith } from '../support/fake-anthropic.js';
import { geminiResponderWith } from '../support/fake-gemini.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest, sentDuring } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess, singleTargetRoute } from '../support/sidecar-process.js';

/**
 * Anthropic's Messages API front door on the built sidecar process, driven by the official
 * `@anthropic-ai/sdk` unchanged but for its base URL: `messages.create`, `messages.stream(...)`
 * with `finalMessage()`, `messages.countTokens`, and a tool round trip (tool_use → tool_result →
 * text) against three providers' wire formats: OpenAI Chat Completions, Anthropic Messages and
 * Gemini generateContent (test/support/fake-*.ts, each with a model that calls the first offered
 * tool while the user has the last word). Also: the client's credentials (x-api-key, or
 * authToken as Authorization: Bearer) and anthropic-beta are accepted and never reach the
 * provider, which gets the route's key from the Secret; errors in Anthropic's shape; usage and
 * usage.cost against the usage log line; the api label in /metrics; refused requests that never
 * reach a provider and are never metered.
 */

const QUESTION = 'What is the weather in Paris?';
const TOOL_OUTPUT = '{"temperature_c":18,"sky":"clear"}';
const WEATHER: Tool = {
  name: 'get_weather',
  description: 'The weather in a city',
  input_schema: { type: 'object', properties: { location: { type: 'string' }, prompt: { type: 'string' } } },
};

const ROUTE_KEYS = { openai: 'sk-openai-route-key', anthropic: 'sk-ant-route-key', gemini: 'gemini-route-key' };
const CLIENT_KEY = 'sk-ant-client-key-never-forwarded';
const CLIENT_TOKEN = 'client-bearer-token-never-forwarded';

let openai: FakeUpstream;
let anthropic: FakeUpstream;
let gemini: FakeUpstream;
let sidecar: SidecarProcess;
let client: Anthropic;


beforeAll(async () => {
  openai = await startFakeUpstream(openaiResponder({ autoToolCalls: true, cachedTokens: 2, reasoningTokens: 3 }));
  anthropic = await startFakeUpstream(anthropicResponderWith({ autoToolUse: true, cacheReadTokens: 5, cacheWriteTokens: 7 }));
  gemini = await startFakeUpstream(geminiResponderWith({ autoFunctionCalls: true }));
  const anthropicTarget = `{ provider: anthropic, model: claude-3-5-haiku-latest, baseURL: "${anthropic.url}", credentials: { secretRef: { name: keys, key: anthropic } } }`;
  sidecar = await startSidecar(
    [
      `
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { openai: ${ROUTE_KEYS.openai}, anthropic: ${ROUTE_KEYS.anthropic}, gemini: ${ROUTE_KEYS.gemini} }
`,
      singleTargetRoute('gpt', `{ provider: openai, model: gpt-4o-mini, baseURL: "${openai.url}/v1", credentials: { secretRef: { name: keys, key: openai } } }`),
      singleTargetRoute('claude', anthropicTarget),
      singleTargetRoute('gemini', `{ provider: gemini, model: gemini-2.0-flash, baseURL: "${gemini.url}", credentials: { secretRef: { name: keys, key: gemini } } }`),
      // Served only by the metrics test, so its series count exactly what that test sent.
      singleTargetRoute('metered', anthropicTarget),
    ].join('---\n'),
  );
  client = new Anthropic({ baseURL: sidecar.url, apiKey: CLIENT_KEY, maxRetries: 0 });
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([openai?.close(), anthropic?.close(), gemini?.close()]);
});


let seq = 0;
const rid = (what: string) => `messages-${what}-${++seq}`;

/** No header or body byte the provider received carries the client's credentials. */
function expectNoClientCredentials(sent: RecordedRequest[]): void {
  for (const r of sent) {
    const seen = JSON.stringify(r.headers) + r.rawBody;
    expect(seen).not.toContain(CLIENT_KEY);
    expect(seen).not.toContain(CLIENT_TOKEN);
  }
}

interface Tokens {
  /** All prompt tokens, as paygo meters them (cache reads and writes included). */
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  reasoning: number;
}

/** Anthropic's usage for metered tokens: input_tokens excludes cache reads and writes, as Anthropic counts. */
function anthropicUsage(t: Tokens, costUsd?: string) {
  return {
    input_tokens: t.input - t.cacheRead - t.cacheWrite,
    cache_creation_input_tokens: t.cacheWrite,
    cache_read_input_tokens: t.cacheRead,
    output_tokens: t.output,
    ...(costUsd !== undefined && { cost: Number(costUsd) }),
  };
}

function meteredLine(c: ProviderCase, requestId: string, stream: boolean, t: Tokens) {
  return {
    requestId,
    operation: 'chat',
    api: 'messages',
    route: c.model,
    model: c.model,
    provider: c.provider,
    stream,
    outcome: 'success',
    status: 200,
    tokens: t,
    priced: true,
    estimated: false,
    attempts: 1,
  };
}

interface ProviderCase {
  model: string;
  provider: 'openai' | 'anthropic' | 'gemini';
  upstream: () => FakeUpstream;
  responseModel: string;
  /** The message id: the provider's when it is an Anthropic one, else paygo's msg_ + random. */
  messageId: unknown;
  toolUseId: unknown;
  toolInput: Record<string, unknown>;
  afterTool: string;
  turn1: Tokens;
  turn2: Tokens;
  auth: (req: RecordedRequest) => unknown;
  authExpected: unknown;
  /** The second turn's conversation as the provider received it. */
  secondTurnSent: (req: RecordedRequest) => unknown;
  secondTurnExpected: (toolUseId: string) => unknown;
}

const PAYGO_MESSAGE_ID = expect.stringMatching(/^msg_[A-Za-z0-9_-]{24}$/);

const CASES: ProviderCase[] = [
  {
    model: 'gpt',
    provider: 'openai',
    upstream: () => openai,
    responseModel: 'gpt-4o-mini-2024-07-18',
    messageId: PAYGO_MESSAGE_ID,
    toolUseId: expect.stringMatching(/^call_auto\d+$/),
    toolInput: { location: 'Paris' },
    afterTool: `echo: ${QUESTION}`,
    // fake-openai: prompt_tokens = 3 + Σ(words or 1, + 3) per message; completion_tokens = reply words + 3 reasoning.
    turn1: { input: 12, output: 10, cacheRead: 2, cacheWrite: 0, reasoning: 3 },
    turn2: { input: 20, output: 10, cacheRead: 2, cacheWrite: 0, reasoning: 3 },
    auth: (r) => r.headers.authorization,
    authExpected: `Bearer ${ROUTE_KEYS.openai}`,
    secondTurnSent: (r) => (r.body as { messages: unknown }).messages,
    secondTurnExpected: (id) => [
      { role: 'user', content: QUESTION },
      { role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }] },
      { role: 'tool', tool_call_id: id, content: TOOL_OUTPUT },
    ],
  },
  {
    model: 'claude',
    provider: 'anthropic',
    upstream: () => anthropic,
    responseModel: 'claude-3-5-haiku-latest',
    messageId: expect.stringMatching(/^msg_01[0-9a-f]{22}$/),
    toolUseId: expect.stringMatching(/^toolu_01[0-9a-f]{22}$/),
    toolInput: { prompt: QUESTION },
    afterTool: 'Claude received the tool results.',
    // fake-anthropic: input_tokens = prompt words (+1 per non-text block), plus 5 cache reads and 7 cache writes.
    turn1: { input: 18, output: 3, cacheRead: 5, cacheWrite: 7, reasoning: 0 },
    turn2: { input: 20, output: 5, cacheRead: 5, cacheWrite: 7, reasoning: 0 },
    auth: (r) => r.headers['x-api-key'],
    authExpected: ROUTE_KEYS.anthropic,
    secondTurnSent: (r) => (r.body as { messages: unknown }).messages,
    secondTurnExpected: (id) => [
      { role: 'user', content: QUESTION },
      { role: 'assistant', content: [{ type: 'tool_use', id, name: 'get_weather', input: { prompt: QUESTION } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: TOOL_OUTPUT }] },
    ],
  },
  {
    model: 'gemini',
    provider: 'gemini',
    upstream: () => gemini,
    responseModel: 'gemini-2.0-flash',
    messageId: PAYGO_MESSAGE_ID,
    toolUseId: expect.any(String),
    toolInput: { prompt: QUESTION },
    afterTool: 'Gemini received the function results.',
    // fake-gemini: promptTokenCount = text words + 1 per other part; candidatesTokenCount = streamed steps.
    turn1: { input: 6, output: 1, cacheRead: 0, cacheWrite: 0, reasoning: 0 },
    turn2: { input: 8, output: 5, cacheRead: 0, cacheWrite: 0, reasoning: 0 },
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

const toolUseMessage = (c: ProviderCase, usage: unknown) => ({
  id: c.messageId,
  type: 'message',
  role: 'assistant',
  model: c.responseModel,
  content: [{ type: 'tool_use', id: c.toolUseId, name: 'get_weather', input: c.toolInput }],
  stop_reason: 'tool_use',
  stop_sequence: null,
  usage,
});

const textMessage = (c: ProviderCase, usage: unknown) => ({
  id: c.messageId,
  type: 'message',
  role: 'assistant',
  model: c.responseModel,
  content: [{ type: 'text', text: c.afterTool }],
  stop_reason: 'end_turn',
  stop_sequence: null,
  usage,
});

/** The second turn: the question, the model's tool_use, and the tool's result. */
function withToolResult(first: Message): MessageParam[] {
  const use = first.content[0]!;
  if (use.type !== 'tool_use') throw new Error('expected a tool_use block');
  return [
    { role: 'user', content: QUESTION },
    { role: 'assistant', content: first.content },
    { role: 'user', content: [{ type: 'tool_result', tool_use_id: use.id, content: TOOL_OUTPUT }] },
  ];
}

/** Event types, runs of the same delta event collapsed into one. */
function eventTypes(events: MessageStreamEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) if (!(e.type === 'content_block_delta' && out.at(-1) === e.type)) out.push(e.type);
  return out;
}

describe.each(CASES)('@anthropic-ai/sdk messages API → route $model (provider $provider)', (c) => {
  it('messages.create: tool_use, then tool_result gives text; usage and cost are the metered ones; the provider gets the route key', async () => {
    const firstId = rid(`${c.model}-tool-use`);
    const first = await sentDuring(c.upstream(), () =>
      client.messages.create({ model: c.model, max_tokens: 256, messages: [{ role: 'user', content: QUESTION }], tools: [WEATHER] }, { headers: { 'x-request-id': firstId } }).withResponse(),
    );
    expect(first.sent).toHaveLength(1);
    expect(c.auth(first.sent[0]!)).toEqual(c.authExpected);
    expectNoClientCredentials(first.sent);
    const line1 = await sidecar.usageLine(firstId);
    expect(line1).toMatchObject(meteredLine(c, firstId, false, c.turn1));
    expect(line1.costUsd).toEqual(expect.stringMatching(/^0\.\d+$/));
    expect(first.value.response.headers.get('x-paygo-cost-usd')).toBe(line1.costUsd);
    // Anthropic's clients read the request id from request-id.
    expect(first.value.response.headers.get('request-id')).toBe(firstId);
    expect(first.value.request_id).toBe(firstId);
    expect(first.value.data).toEqual(toolUseMessage(c, anthropicUsage(c.turn1, line1.costUsd as string)));

    const secondId = rid(`${c.model}-text`);
    const second = await sentDuring(c.upstream(), () =>
      client.messages.create({ model: c.model, max_tokens: 256, messages: withToolResult(first.value.data), tools: [WEATHER] }, { headers: { 'x-request-id': secondId } }).withResponse(),
    );
    expect(second.sent).toHaveLength(1);
    expect(c.secondTurnSent(second.sent[0]!)).toEqual(c.secondTurnExpected((first.value.data.content[0] as { id: string }).id));
    const line2 = await sidecar.usageLine(secondId);
    expect(line2).toMatchObject(meteredLine(c, secondId, false, c.turn2));
    expect(second.value.response.headers.get('x-paygo-cost-usd')).toBe(line2.costUsd);
    expect(second.value.data).toEqual(textMessage(c, anthropicUsage(c.turn2, line2.costUsd as string)));
  });

  it('messages.stream().finalMessage(): tool_use then text; message_delta carries the metered usage and cost', async () => {
    const firstId = rid(`${c.model}-stream-tool-use`);
    const events: MessageStreamEvent[] = [];
    const first = await sentDuring(c.upstream(), () => {
      const stream = client.messages.stream({ model: c.model, max_tokens: 256, messages: [{ role: 'user', content: QUESTION }], tools: [WEATHER] }, { headers: { 'x-request-id': firstId } });
      stream.on('streamEvent', (e) => events.push(e));
      return stream.finalMessage();
    });
    expect(first.sent).toHaveLength(1);
    expectNoClientCredentials(first.sent);
    expect(eventTypes(events)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    const line1 = await sidecar.usageLine(firstId);
    expect(line1).toMatchObject(meteredLine(c, firstId, true, c.turn1));
    const delta1 = events.find((e) => e.type === 'message_delta')!;
    expect(delta1).toEqual({ type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: anthropicUsage(c.turn1, line1.costUsd as string) });
    // The SDK's MessageStream keeps Anthropic's usage fields from message_delta (not paygo's cost),
    // and its final message has parsed_output (null without an output format).
    expect(first.value).toEqual({ ...toolUseMessage(c, anthropicUsage(c.turn1)), parsed_output: null });

    const secondId = rid(`${c.model}-stream-text`);
    const textEvents: MessageStreamEvent[] = [];
    const second = await sentDuring(c.upstream(), () => {
      const stream = client.messages.stream({ model: c.model, max_tokens: 256, messages: withToolResult(first.value), tools: [WEATHER] }, { headers: { 'x-request-id': secondId } });
      stream.on('streamEvent', (e) => textEvents.push(e));
      return stream.finalMessage();
    });
    expect(c.secondTurnSent(second.sent[0]!)).toEqual(c.secondTurnExpected((first.value.content[0] as { id: string }).id));
    expect(eventTypes(textEvents)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    const line2 = await sidecar.usageLine(secondId);
    expect(line2).toMatchObject(meteredLine(c, secondId, true, c.turn2));
    expect(textEvents.find((e) => e.type === 'message_delta')).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: anthropicUsage(c.turn2, line2.costUsd as string),
    });
    expect(second.value).toEqual({ ...textMessage(c, anthropicUsage(c.turn2)), parsed_output: null });
  });

  it('messages.countTokens counts with the route target tokenizer, reaches no provider and is not metered', async () => {
    const id = rid(`${c.model}-count`);
    const system = 'You are terse.';
    const { value, sent } = await sentDuring(c.upstream(), () =>
      client.messages.countTokens({ model: c.model, system, messages: [{ role: 'user', content: QUESTION }] }, { headers: { 'x-request-id': id } }).withResponse(),
    );
    expect(sent).toEqual([]);
    // countPromptTokens: 3 to prime the reply, 3 per message plus its text (o200k_base for these models).
    expect(value.data).toEqual({ input_tokens: 3 + (3 + o200kTokens(system)) + (3 + o200kTokens(QUESTION)) });
    expect(value.response.headers.get('request-id')).toBe(id);
    // A later request's line is out, so one for the count would be too: there is none.
    const laterId = rid(`${c.model}-after-count`);
    await client.messages.create({ model: c.model, max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-request-id': laterId } });
    await sidecar.usageLine(laterId);
    expect(sidecar.lines.filter((l) => l.includes(id))).toEqual([]);
  });
});

describe('@anthropic-ai/sdk: credentials, beta headers, errors, refusals and metrics', () => {
  it('authToken (Authorization: Bearer) is accepted; the providers get the route keys, never the token', async () => {
    const bearer = new Anthropic({ baseURL: sidecar.url, apiKey: null, authToken: CLIENT_TOKEN, maxRetries: 0 });
    for (const c of CASES) {
      const { value, sent } = await sentDuring(c.upstream(), () => bearer.messages.create({ model: c.model, max_tokens: 64, messages: [{ role: 'user', content: 'hello there' }] }));
      expect(value.stop_reason).toBe('end_turn');
      expect(sent).toHaveLength(1);
      expect(c.auth(sent[0]!)).toEqual(c.authExpected);
      expectNoClientCredentials(sent);
    }
  });

  it('anthropic-beta (client.beta.messages, ?beta=true) is accepted: passed on to an Anthropic target, not to others; never the client key', async () => {
    const beta = ['token-efficient-tools-2025-02-19'];
    // An Anthropic target gets the request passed through, with the betas the client asked for.
    const claude = await sentDuring(anthropic, () => client.beta.messages.create({ model: 'claude', max_tokens: 64, messages: [{ role: 'user', content: 'hello beta' }], betas: beta }).withResponse());
    expect(claude.value.response.status).toBe(200);
    expect(claude.value.data.content).toEqual([{ type: 'text', text: 'Claude echo: hello beta' }]);
    expect(claude.sent).toHaveLength(1);
    expect(claude.sent[0]!.url).toBe('/v1/messages');
    expect(claude.sent[0]!.headers['x-api-key']).toBe(ROUTE_KEYS.anthropic);
    expect(claude.sent[0]!.headers['anthropic-version']).toBe('2023-06-01');
    expect(claude.sent[0]!.headers['anthropic-beta']).toBe(beta[0]);
    expectNoClientCredentials(claude.sent);

    // Any other provider gets the translated request and no Anthropic header.
    const gpt = await sentDuring(openai, () => client.beta.messages.create({ model: 'gpt', max_tokens: 64, messages: [{ role: 'user', content: 'hello beta' }], betas: beta }).withResponse());
    expect(gpt.value.response.status).toBe(200);
    expect(gpt.value.data.content).toEqual([{ type: 'text', text: 'echo: hello beta' }]);
    expect(gpt.sent).toHaveLength(1);
    expect(gpt.sent[0]!.headers.authorization).toBe(`Bearer ${ROUTE_KEYS.openai}`);
    expect(Object.keys(gpt.sent[0]!.headers).filter((h) => h.startsWith('anthropic-') || h === 'x-api-key')).toEqual([]);
    expectNoClientCredentials(gpt.sent);
  });

  it('an unknown model is the SDK NotFoundError with Anthropic error body', async () => {
    const id = rid('unknown-model');
    const err = await client.messages.create({ model: 'nope', max_tokens: 16, messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-request-id': id } }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    const e = err as InstanceType<typeof Anthropic.NotFoundError>;
    expect(e.status).toBe(404);
    expect(e.requestID).toBe(id);
    expect(e.error).toEqual({ type: 'error', error: { type: 'not_found_error', message: 'The model "nope" does not exist or you do not have access to it.' } });
  });

  it('invalid JSON, a missing max_tokens and a server tool are 400 invalid_request_error in Anthropic shape, reach no provider and are not metered', async () => {
    const sentCount = () => openai.requests.length + anthropic.requests.length + gemini.requests.length;
    const before = sentCount();

    const badJsonId = rid('bad-json');
    const badJson = await fetch(`${sidecar.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': CLIENT_KEY, 'anthropic-version': '2023-06-01', 'x-request-id': badJsonId },
      body: '{"model": "claude", "max_tokens": 16, "messages": [',
    });
    expect(badJson.status).toBe(400);
    expect(badJson.headers.get('request-id')).toBe(badJsonId);
    // (No quote of the body: it is prompt text.)
    expect(await badJson.json()).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: 'We could not parse the JSON body of your request: it is not valid JSON.' } });

    const noMaxId = rid('no-max-tokens');
    const noMax = await client.messages
      .create({ model: 'claude', messages: [{ role: 'user', content: 'x' }] } as unknown as Parameters<typeof client.messages.create>[0], { headers: { 'x-request-id': noMaxId } })
      .catch((e: unknown) => e);
    expect(noMax).toBeInstanceOf(Anthropic.BadRequestError);
    expect((noMax as InstanceType<typeof Anthropic.BadRequestError>).error).toEqual({
      type: 'error',
      error: { type: 'invalid_request_error', message: 'max_tokens: Invalid input: expected number, received undefined' },
    });

    const serverToolId = rid('server-tool');
    const serverTool = await client.messages
      .create({ model: 'gpt', max_tokens: 16, messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, { headers: { 'x-request-id': serverToolId } })
      .catch((e: unknown) => e);
    expect(serverTool).toBeInstanceOf(Anthropic.BadRequestError);
    expect((serverTool as InstanceType<typeof Anthropic.BadRequestError>).error).toEqual({
      type: 'error',
      error: {
        type: 'invalid_request_error',
        message: 'tools.0.type: Tool type "web_search_20250305" is not supported: paygo serves custom tools (name, description, input_schema) only; Anthropic\'s server tools run on Anthropic\'s side.',
      },
    });

    expect(sentCount()).toBe(before);
    const laterId = rid('after-refusals');
    await client.messages.create({ model: 'claude', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-request-id': laterId } });
    await sidecar.usageLine(laterId);
    const refused = [badJsonId, noMaxId, serverToolId];
    expect(sidecar.lines.filter((l) => refused.some((id) => l.includes(id)))).toEqual([]);
  });

  it('/metrics counts Messages requests under api="messages", and the usage log says api', async () => {
    const streamId = rid('metrics-stream');
    const plainId = rid('metrics-plain');
    await client.messages.create({ model: 'metered', max_tokens: 16, messages: [{ role: 'user', content: 'count me' }] }, { headers: { 'x-request-id': plainId } });
    await client.messages.stream({ model: 'metered', max_tokens: 16, messages: [{ role: 'user', content: 'count me' }] }, { headers: { 'x-request-id': streamId } }).finalMessage();
    expect(await sidecar.usageLine(plainId)).toMatchObject({ api: 'messages', route: 'metered', stream: false });
    expect(await sidecar.usageLine(streamId)).toMatchObject({ api: 'messages', route: 'metered', stream: true });
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics.split('\n').filter((l) => l.startsWith('paygo_requests_total{') && l.includes('route="metered"'))).toEqual([
      'paygo_requests_total{namespace="default",route="metered",target="anthropic-0",provider="anthropic",model="metered",api="messages",outcome="success",estimated="false",priced="true"} 2',
    ]);
  });
});
