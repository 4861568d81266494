import { createAnthropic } from '@ai-sdk/anthropic';
import { createOpenAI } from '@ai-sdk/openai';
import { generateText, jsonSchema, stepCountIs, streamText, tool, type LanguageModel, type ModelMessage } from 'ai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { anthropicResponderWith } from '../support/fake-anthropic.js';
import { bedrockResponder } from '../support/fake-bedrock.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess, singleTargetRoute } from '../support/sidecar-process.js';

/**
 * The Vercel AI SDK (`ai` v6) against the built sidecar process, its providers unchanged but for
 * the base URL: `@ai-sdk/openai`'s default model (the Responses API, store: true, so earlier
 * assistant text goes back as item_reference) and `@ai-sdk/anthropic` (the Messages API).
 * `generateText` and `streamText` run a multi-step tool loop (a tool with `execute`,
 * `stopWhen: stepCountIs(3)`) against a route to an OpenAI-wire fake and one to an
 * Anthropic-wire fake (test/support/fake-*.ts, models that call the first offered tool while
 * the user has the last word), and plain text against Amazon Bedrock (Converse, SigV4-checked),
 * whose fake reports the system prompt as cache reads. Every HTTP call of the SDK gets its own
 * x-request-id (a fetch wrapper), so each step's usage is checked against its usage log line.
 */

const QUESTION = 'What is the weather in Paris?';
const FOLLOW_UP = 'Thanks! And tomorrow?';
const SYSTEM = 'You are a terse weather bot.';
const WEATHER_RESULT = { temperature_c: 18, sky: 'clear' };
const CLIENT_KEY = 'sk-client-key-never-forwarded';
const ROUTE_KEYS = { openai: 'sk-openai-route-key', anthropic: 'sk-ant-route-key' };
const BEDROCK_KEY_ID = 'AKIAPAYGOAISDK7EXAMP';
const BEDROCK_SECRET = 'aIsDk/SeCrEt+bPxRfiCYEXAMPLEKEY0000000';
const BEDROCK_MODEL = 'anthropic.claude-3-5-haiku-20241022-v1:0';

let openai: FakeUpstream;
let anthropic: FakeUpstream;
let bedrock: FakeUpstream;
let sidecar: SidecarProcess;


beforeAll(async () => {
  openai = await startFakeUpstream(openaiResponder({ autoToolCalls: true, cachedTokens: 2, reasoningTokens: 3 }));
  anthropic = await startFakeUpstream(anthropicResponderWith({ autoToolUse: true, cacheReadTokens: 5, cacheWriteTokens: 7 }));
  bedrock = await startFakeUpstream(bedrockResponder({ region: 'us-east-1', keys: { [BEDROCK_KEY_ID]: { secretAccessKey: BEDROCK_SECRET } } }));
  sidecar = await startSidecar(
    [
      `
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { openai: ${ROUTE_KEYS.openai}, anthropic: ${ROUTE_KEYS.anthropic}, AWS_ACCESS_KEY_ID: ${BEDROCK_KEY_ID}, AWS_SECRET_ACCESS_KEY: "${BEDROCK_SECRET}" }
`,
      singleTargetRoute('gpt', `{ provider: openai, model: gpt-4o-mini, baseURL: "${openai.url}/v1", credentials: { secretRef: { name: keys, key: openai } } }`),
      singleTargetRoute('claude', `{ provider: anthropic, model: claude-3-5-haiku-latest, baseURL: "${anthropic.url}", credentials: { secretRef: { name: keys, key: anthropic } } }`),
      singleTargetRoute(
        'bedrock',
        `{ provider: bedrock, model: "${BEDROCK_MODEL}", region: us-east-1, baseURL: "${bedrock.url}", credentials: { secretRef: { name: keys, key: AWS_SECRET_ACCESS_KEY }, accessKeyIdRef: { name: keys, key: AWS_ACCESS_KEY_ID } } }`,
      ),
    ].join('---\n'),
  );
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([openai?.close(), anthropic?.close(), bedrock?.close()]);
});


let seq = 0;

/** One HTTP call the SDK made through the recording fetch. */
interface Call {
  url: string;
  requestId: string;
  body: Record<string, unknown>;
  status: number;
  headers: Record<string, string>;
}

/** A fetch that gives each call its own x-request-id and records what the SDK sent. */
function recordingFetch(calls: Call[]): typeof fetch {
  return async (input, init) => {
    const requestId = `ai-sdk-${++seq}`;
    const headers = new Headers(init?.headers);
    headers.set('x-request-id', requestId);
    const res = await fetch(input, { ...init, headers });
    calls.push({ url: String(input), requestId, body: JSON.parse(String(init?.body)) as Record<string, unknown>, status: res.status, headers: Object.fromEntries(headers) });
    return res;
  };
}

type Api = 'responses' | 'messages';

function model(api: Api, name: string, calls: Call[]): LanguageModel {
  const fetch = recordingFetch(calls);
  return api === 'responses'
    ? createOpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: CLIENT_KEY, fetch })(name)
    : createAnthropic({ baseURL: `${sidecar.url}/v1`, apiKey: CLIENT_KEY, fetch })(name);
}

/** The weather tool, run by the SDK itself; its inputs are recorded. */
function weatherTool(inputs: unknown[]) {
  return tool({
    description: 'The weather in a city',
    inputSchema: jsonSchema<Record<string, unknown>>({ type: 'object', properties: { location: { type: 'string' }, prompt: { type: 'string' } } }),
    execute: async (input) => {
      inputs.push(input);
      return WEATHER_RESULT;
    },
  });
}

interface Tokens {
  input: number;
  output: number;
  cacheRead: number;
  cacheWrite: number;
  reasoning: number;
}

/**
 * The AI SDK's usage of one step, for these metered tokens. Anthropic's usage has no reasoning
 * count (the SDK reads one only from output_tokens_details.thinking_tokens, which paygo does not
 * send): reasoning tokens are in output_tokens there.
 */
function sdkUsage(api: Api, t: Tokens) {
  return {
    inputTokens: t.input,
    outputTokens: t.output,
    totalTokens: t.input + t.output,
    cachedInputTokens: t.cacheRead,
    reasoningTokens: api === 'responses' ? t.reasoning : undefined,
  };
}

interface RouteCase {
  api: Api;
  model: 'gpt' | 'claude';
  provider: 'openai' | 'anthropic';
  upstream: () => FakeUpstream;
  toolInput: Record<string, unknown>;
  afterTool: string;
  afterFollowUp: string;
  /** Metered tokens of the tool-call step and of the text step. */
  step1: Tokens;
  step2: Tokens;
  auth: (r: RecordedRequest) => unknown;
  authExpected: string;
  /** The follow-up turn's conversation as the provider received it. */
  followUpSent: (r: RecordedRequest) => unknown;
  followUpExpected: (api: Api, callId: string) => unknown;
}

const TOOL_OUTPUT = JSON.stringify(WEATHER_RESULT);

const textParts = (text: string) => [{ type: 'text', text }];

const CASES: RouteCase[] = [
  {
    api: 'responses',
    model: 'gpt',
    provider: 'openai',
    upstream: () => openai,
    toolInput: { location: 'Paris' },
    // fake-openai echoes a user message whose content is a string; the AI SDK sends content parts.
    afterTool: 'echo: hello',
    afterFollowUp: 'echo: hello',
    // fake-openai: prompt_tokens = 3 + Σ(words of string content, else 1; + 3) per message; completion = reply words + 3 reasoning.
    step1: { input: 7, output: 5, cacheRead: 2, cacheWrite: 0, reasoning: 3 },
    step2: { input: 15, output: 5, cacheRead: 2, cacheWrite: 0, reasoning: 3 },
    auth: (r) => r.headers.authorization,
    authExpected: `Bearer ${ROUTE_KEYS.openai}`,
    followUpSent: (r) => (r.body as { messages: unknown }).messages,
    // Both front doors give the chat pipeline the SDK's user content parts as text parts.
    followUpExpected: (_api, callId) => [
      { role: 'user', content: textParts(QUESTION) },
      { role: 'assistant', content: null, tool_calls: [{ id: callId, type: 'function', function: { name: 'get_weather', arguments: '{"location":"Paris"}' } }] },
      { role: 'tool', tool_call_id: callId, content: TOOL_OUTPUT },
      { role: 'assistant', content: 'echo: hello' },
      { role: 'user', content: textParts(FOLLOW_UP) },
    ],
  },
  {
    api: 'responses',
    model: 'claude',
    provider: 'anthropic',
    upstream: () => anthropic,
    toolInput: { prompt: QUESTION },
    afterTool: 'Claude received the tool results.',
    afterFollowUp: `Claude echo: ${FOLLOW_UP}`,
    // fake-anthropic: input_tokens = prompt words (+1 per non-text block), plus 5 cache reads and 7 cache writes.
    step1: { input: 18, output: 3, cacheRead: 5, cacheWrite: 7, reasoning: 0 },
    step2: { input: 20, output: 5, cacheRead: 5, cacheWrite: 7, reasoning: 0 },
    auth: (r) => r.headers['x-api-key'],
    authExpected: ROUTE_KEYS.anthropic,
    followUpSent: (r) => (r.body as { messages: unknown }).messages,
    followUpExpected: (api, callId) =>
      api === 'messages'
        ? // Passed through: the body as the AI SDK sent it.
          [
            { role: 'user', content: textParts(QUESTION) },
            { role: 'assistant', content: [{ type: 'tool_use', id: callId, name: 'get_weather', input: { prompt: QUESTION } }] },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: callId, content: TOOL_OUTPUT }] },
            { role: 'assistant', content: textParts('Claude received the tool results.') },
            { role: 'user', content: textParts(FOLLOW_UP) },
          ]
        : // Translated from the Responses items, the stored text (item_reference) included.
          [
            { role: 'user', content: QUESTION },
            { role: 'assistant', content: [{ type: 'tool_use', id: callId, name: 'get_weather', input: { prompt: QUESTION } }] },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: callId, content: TOOL_OUTPUT }] },
            { role: 'assistant', content: 'Claude received the tool results.' },
            { role: 'user', content: FOLLOW_UP },
          ],
  },
];

/** usage.cost of a step's answer, as the provider package kept the answer's usage (usage.raw). */
function rawCost(step: { usage: unknown }): unknown {
  return (step.usage as { raw?: { cost?: unknown } }).raw?.cost;
}

/** Each call's metered line: the API, the route, and the step's tokens. */
async function expectMetered(calls: Call[], api: Api, c: RouteCase, stream: boolean, steps: Tokens[]): Promise<Array<Record<string, unknown>>> {
  expect(calls.map((x) => x.status)).toEqual(steps.map(() => 200));
  const lines = await Promise.all(calls.map((x) => sidecar.usageLine(x.requestId)));
  expect(lines).toMatchObject(
    steps.map((t) => ({ api, route: c.model, provider: c.provider, stream, outcome: 'success', estimated: false, priced: true, tokens: t })),
  );
  return lines;
}

describe.each(CASES.flatMap((c) => (['responses', 'messages'] as const).map((api) => ({ ...c, api }))))(
  'AI SDK ($api API) → route $model (provider $provider)',
  (c) => {
    it('generateText: a two-step tool loop, then a follow-up turn carrying the whole conversation', async () => {
      const calls: Call[] = [];
      const inputs: unknown[] = [];
      const before = c.upstream().requests.length;
      const result = await generateText({
        model: model(c.api, c.model, calls),
        prompt: QUESTION,
        maxOutputTokens: 256,
        tools: { get_weather: weatherTool(inputs) },
        stopWhen: stepCountIs(3),
      });
      expect(result.steps.map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
      expect(inputs).toEqual([c.toolInput]);
      expect(result.text).toBe(c.afterTool);
      expect(result.steps[0]!.toolResults.map((r) => ({ name: r.toolName, input: r.input, output: r.output }))).toEqual([{ name: 'get_weather', input: c.toolInput, output: WEATHER_RESULT }]);
      expect(calls.map((x) => x.url)).toEqual([`${sidecar.url}/v1/${c.api}`, `${sidecar.url}/v1/${c.api}`]);
      const lines = await expectMetered(calls, c.api, c, false, [c.step1, c.step2]);
      expect(result.steps.map((s) => s.usage)).toMatchObject([sdkUsage(c.api, c.step1), sdkUsage(c.api, c.step2)]);
      // The answer's own usage (the SDK keeps it as usage.raw) carries the metered cost.
      expect(result.steps.map(rawCost)).toEqual(lines.map((l) => Number(l.costUsd)));
      if (c.api === 'responses') {
        // store: true (the SDK's default): the last step's response is kept by the sidecar.
        const id = result.steps[1]!.providerMetadata?.openai?.responseId;
        const stored = await fetch(`${sidecar.url}/v1/responses/${String(id)}`);
        expect(stored.status).toBe(200);
        expect(await stored.json()).toMatchObject({ id, status: 'completed', store: true, output: [{ type: 'message', content: [{ type: 'output_text', text: c.afterTool }] }] });
      }

      // The providers got the route key, never the client's.
      const sent = c.upstream().requests.slice(before);
      expect(sent.map(c.auth)).toEqual([c.authExpected, c.authExpected]);
      for (const r of sent) expect(JSON.stringify(r.headers) + r.rawBody).not.toContain(CLIENT_KEY);

      // A follow-up turn with the conversation so far: on the Responses API the stored assistant
      // text goes back as an item_reference, which the sidecar resolves from its store.
      const followCalls: Call[] = [];
      // (response.messages are the messages the call produced: the prompt is not among them.)
      const messages: ModelMessage[] = [{ role: 'user', content: QUESTION }, ...result.response.messages, { role: 'user', content: FOLLOW_UP }];
      const followBefore = c.upstream().requests.length;
      const follow = await generateText({
        model: model(c.api, c.model, followCalls),
        messages,
        maxOutputTokens: 256,
        tools: { get_weather: weatherTool(inputs) },
        toolChoice: 'none',
      });
      expect(follow.text).toBe(c.afterFollowUp);
      const callId = result.steps[0]!.toolCalls[0]!.toolCallId;
      if (c.api === 'responses') {
        const itemId = (result.steps[1]!.content.find((p) => p.type === 'text')?.providerMetadata?.openai as { itemId?: string } | undefined)?.itemId;
        expect(itemId).toEqual(expect.stringMatching(/^msg_[0-9a-f]{48}$/));
        expect(followCalls[0]!.body.input).toContainEqual({ type: 'item_reference', id: itemId });
      }
      const provider = c.upstream().requests.slice(followBefore);
      expect(provider).toHaveLength(1);
      expect(c.followUpSent(provider[0]!)).toEqual(c.followUpExpected(c.api, callId));
    });

    it('streamText: the same tool loop streamed, each step metered as a stream', async () => {
      const calls: Call[] = [];
      const inputs: unknown[] = [];
      const result = streamText({
        model: model(c.api, c.model, calls),
        prompt: QUESTION,
        maxOutputTokens: 256,
        tools: { get_weather: weatherTool(inputs) },
        stopWhen: stepCountIs(3),
      });
      let streamed = '';
      for await (const piece of result.textStream) streamed += piece;
      expect(streamed).toBe(c.afterTool);
      const steps = await result.steps;
      expect(steps.map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
      expect(inputs).toEqual([c.toolInput]);
      const lines = await expectMetered(calls, c.api, c, true, [c.step1, c.step2]);
      expect(steps.map((s) => s.usage)).toMatchObject([sdkUsage(c.api, c.step1), sdkUsage(c.api, c.step2)]);
      expect(steps.map(rawCost)).toEqual(lines.map((l) => Number(l.costUsd)));
      expect(await result.totalUsage).toMatchObject(sdkUsage(c.api, {
        input: c.step1.input + c.step2.input,
        output: c.step1.output + c.step2.output,
        cacheRead: c.step1.cacheRead + c.step2.cacheRead,
        cacheWrite: 0,
        reasoning: c.step1.reasoning + c.step2.reasoning,
      }));
    });
  },
);

describe('AI SDK → Amazon Bedrock (Converse)', () => {
  // fake-bedrock: the system prompt's words are cache reads, the other prompt words inputTokens.
  const tokens = (output: number): Tokens => ({ input: 6 + 6, output, cacheRead: 6, cacheWrite: 0, reasoning: 0 });

  it.each(['responses', 'messages'] as const)('generateText and streamText through the %s API', async (api) => {
    const calls: Call[] = [];
    const text = await generateText({ model: model(api, 'bedrock', calls), system: SYSTEM, prompt: QUESTION, maxOutputTokens: 256 });
    expect(text.text).toBe(`Bedrock echo: ${QUESTION}`);
    expect(text.usage).toMatchObject(sdkUsage(api, tokens(8)));
    const streamed = streamText({ model: model(api, 'bedrock', calls), system: SYSTEM, prompt: QUESTION, maxOutputTokens: 256 });
    expect(await streamed.text).toBe(`Bedrock echo: ${QUESTION}`);
    expect(await streamed.usage).toMatchObject(sdkUsage(api, tokens(8)));
    const lines = await Promise.all(calls.map((x) => sidecar.usageLine(x.requestId)));
    expect(lines).toMatchObject([false, true].map((stream) => ({ api, route: 'bedrock', provider: 'bedrock', stream, outcome: 'success', priced: true, tokens: tokens(8) })));
    expect([rawCost(text), rawCost({ usage: await streamed.usage })]).toEqual(lines.map((l) => Number(l.costUsd)));
  });
});
