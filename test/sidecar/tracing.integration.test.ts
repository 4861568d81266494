import { randomBytes } from 'node:crypto';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { costFromPerMillion, formatUsd, parseUsd } from '../../crds/src/money.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { BOT_KEY_REF, botRouteConfig, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';
import { attrs, SPAN_KIND, startJaeger, STATUS, type Jaeger, type OtlpSpan } from '../support/tracing/jaeger.js';

/**
 * Tracing (README "Tracing"): the built sidecar exports over OTLP/HTTP to a real Jaeger (built
 * from its Go module, test/support/tracing/install.sh); the app calls it through the official
 * openai SDK with a W3C traceparent; the trace is read back from Jaeger's query API (v3).
 */
const KEY = 'sk-trace-7Hq2Lm9Xv4Rt8Kp3Zc6Nb1Jw5Dg0Ys';
const PROMPT = 'Draft the quarterly report on the Fabrikam merger for the audit committee.';
/** USD per million tokens on every target: cost = input × 1 + output × 2, per million. */
const PRICING = 'pricing: { input: "1", output: "2" }';

let jaeger: Jaeger;
let first: FakeUpstream;
let second: FakeUpstream;
let sidecar: SidecarProcess;
let client: OpenAI;

beforeAll(async () => {
  jaeger = await startJaeger();
  first = await startFakeUpstream(openaiResponder());
  second = await startFakeUpstream(openaiResponder());
  sidecar = await startSidecar(
    botRouteConfig(
      [
        `{ name: first, provider: openai, model: gpt-4o-mini, baseURL: ${first.url}/v1, ${PRICING}, ${BOT_KEY_REF} }`,
        `{ name: second, provider: deepseek, model: deepseek-chat, baseURL: ${second.url}/v1, ${PRICING}, ${BOT_KEY_REF} }`,
      ],
      { apiKey: KEY, spec: ['retry: { attempts: 1 }', 'circuitBreaker: { consecutiveFailures: 1000, cooldownMs: 100 }'] },
    ) +
      `---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: open }
spec:
  model: open-bot
  tracing: { recordContent: true }
  targets:
    - { name: only, provider: openai, model: gpt-4o-mini, baseURL: ${first.url}/v1, ${PRICING}, ${BOT_KEY_REF} }
`,
    { args: ['--otlp-endpoint', jaeger.otlpUrl], env: { OTEL_BSP_SCHEDULE_DELAY: '50' } },
  );
  client = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([first?.close(), second?.close(), jaeger?.stop()]);
});

/** A new app span: its trace id, span id and the traceparent header that carries them. */
function appSpan(): { traceId: string; spanId: string; traceparent: string } {
  const traceId = randomBytes(16).toString('hex');
  const spanId = randomBytes(8).toString('hex');
  return { traceId, spanId, traceparent: `00-${traceId}-${spanId}-01` };
}

const serverSpans = (spans: OtlpSpan[]) => spans.filter((s) => s.kind === SPAN_KIND.server);
const clientSpans = (spans: OtlpSpan[]) => spans.filter((s) => s.kind === SPAN_KIND.client).sort((a, b) => Number(attrs(a)['paygo.attempt.number']) - Number(attrs(b)['paygo.attempt.number']));
/** Waits for the request span and `attempts` attempt spans. */
const complete = (attempts: number) => (spans: OtlpSpan[]) => serverSpans(spans).length === 1 && clientSpans(spans).length === attempts;

/** Every way the key or the prompt could show in a trace. */
function leaks(spans: OtlpSpan[]): string[] {
  const text = JSON.stringify(spans);
  const pieces = [KEY, ...[0, 8, 16, 24].map((i) => KEY.slice(i, i + 12)), ...[0, 16, 32, 48].map((i) => PROMPT.slice(i, i + 16))];
  return pieces.filter((p) => text.includes(p));
}

const costOf = (input: number, output: number) => formatUsd(costFromPerMillion([{ quantity: BigInt(input), nanoPerMillion: parseUsd('1') }, { quantity: BigInt(output), nanoPerMillion: parseUsd('2') }]));

describe('a request through a failover: the trace in Jaeger', () => {
  let spans: OtlpSpan[];
  let app: ReturnType<typeof appSpan>;
  let usage: OpenAI.CompletionUsage;
  let cost: string | null;

  beforeAll(async () => {
    app = appSpan();
    first.fault({ kind: 'status', status: 503, body: JSON.stringify({ error: { message: 'overloaded, try later', type: 'server_error', code: null } }) });
    const { data, response } = await client.chat.completions
      .create({ model: 'bot', messages: [{ role: 'user', content: PROMPT }], max_tokens: 50, temperature: 0.3 }, { headers: { traceparent: app.traceparent } })
      .withResponse();
    expect(response.headers.get('x-paygo-target')).toBe('second');
    usage = data.usage!;
    cost = response.headers.get('x-paygo-cost-usd');
    spans = await jaeger.trace(app.traceId, complete(2));
  });

  it('one request span, the child of the app span, named after the model the app asked for', () => {
    const [request] = serverSpans(spans);
    expect(spans).toHaveLength(3);
    expect(request!.traceId).toBe(app.traceId);
    expect(request!.parentSpanId).toBe(app.spanId);
    expect(request!.name).toBe('chat bot');
    expect(request!.resource['service.name']).toBe('paygo-sidecar');
  });

  it('the request span carries the GenAI attributes, the route, the target that served and the cost of the header', () => {
    const [request] = serverSpans(spans);
    expect(attrs(request!)).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'deepseek',
      'gen_ai.request.model': 'bot',
      'gen_ai.request.max_tokens': 50,
      'gen_ai.request.temperature': 0.3,
      'gen_ai.response.model': 'deepseek-chat-2024-07-18',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.input_tokens': usage.prompt_tokens,
      'gen_ai.usage.output_tokens': usage.completion_tokens,
      'paygo.route': 'r',
      'paygo.namespace': 'default',
      'paygo.target': 'second',
      'paygo.attempts': 2,
      'paygo.outcome': 'success',
      'paygo.usage.estimated': false,
      'paygo.cost_usd': cost,
      'http.response.status_code': 200,
    });
    expect(cost).toBe(costOf(usage.prompt_tokens, usage.completion_tokens));
    expect(request!.status?.code ?? STATUS.unset).toBe(STATUS.unset);
  });

  it('one attempt span per attempt, children of the request span: the 503 as overloaded, then the success with its usage and cost', () => {
    const [request] = serverSpans(spans);
    const [failed, served] = clientSpans(spans);
    expect(failed!.parentSpanId).toBe(request!.spanId);
    expect(served!.parentSpanId).toBe(request!.spanId);
    expect(failed!.name).toBe('chat gpt-4o-mini');
    expect(attrs(failed!)).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'openai',
      'gen_ai.request.model': 'gpt-4o-mini',
      'server.address': '127.0.0.1',
      'server.port': Number(new URL(first.url).port),
      'paygo.route': 'r',
      'paygo.target': 'first',
      'paygo.attempt.number': 1,
      'paygo.attempt.outcome': 'overloaded',
      'error.type': 'overloaded',
      'http.response.status_code': 503,
    });
    expect(failed!.status).toEqual({ code: STATUS.error, message: 'first (openai) answered 503: overloaded, try later' });
    expect(served!.name).toBe('chat deepseek-chat');
    expect(attrs(served!)).toEqual({
      'gen_ai.operation.name': 'chat',
      'gen_ai.provider.name': 'deepseek',
      'gen_ai.request.model': 'deepseek-chat',
      'gen_ai.response.model': 'deepseek-chat-2024-07-18',
      'gen_ai.response.finish_reasons': ['stop'],
      'gen_ai.usage.input_tokens': usage.prompt_tokens,
      'gen_ai.usage.output_tokens': usage.completion_tokens,
      'server.address': '127.0.0.1',
      'server.port': Number(new URL(second.url).port),
      'paygo.route': 'r',
      'paygo.target': 'second',
      'paygo.attempt.number': 2,
      'paygo.attempt.outcome': 'success',
      'paygo.usage.estimated': false,
      'paygo.cost_usd': cost,
    });
    expect(served!.status?.code ?? STATUS.unset).toBe(STATUS.unset);
  });

  it('each provider received the traceparent of its own attempt span, in the app trace', () => {
    const [failed, served] = clientSpans(spans);
    expect(first.requests.at(-1)!.headers.traceparent).toBe(`00-${app.traceId}-${failed!.spanId}-01`);
    expect(second.requests.at(-1)!.headers.traceparent).toBe(`00-${app.traceId}-${served!.spanId}-01`);
  });

  it('neither the prompt nor the key is in any attribute, event or status (the route does not record content)', () => {
    expect(leaks(spans)).toEqual([]);
    expect(spans.flatMap((s) => Object.keys(attrs(s))).filter((k) => k.startsWith('gen_ai.input') || k.startsWith('gen_ai.output'))).toEqual([]);
    expect(spans.flatMap((s) => s.events ?? [])).toEqual([]);
  });
});

describe('a stream', () => {
  it('one request span and one attempt span with the usage the fake streamed, the cost the meter computed, the finish reason', async () => {
    const app = appSpan();
    const stream = await client.chat.completions.create(
      { model: 'bot', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: PROMPT }] },
      { headers: { traceparent: app.traceparent } },
    );
    let usage: OpenAI.CompletionUsage | undefined;
    let text = '';
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe(`echo: ${PROMPT}`);
    const spans = await jaeger.trace(app.traceId, complete(1));
    const [request] = serverSpans(spans);
    const [attempt] = clientSpans(spans);
    expect(request!.parentSpanId).toBe(app.spanId);
    expect(attempt!.parentSpanId).toBe(request!.spanId);
    const cost = costOf(usage!.prompt_tokens, usage!.completion_tokens);
    expect(attrs(request!)).toMatchObject({
      'gen_ai.request.model': 'bot',
      'gen_ai.response.model': 'gpt-4o-mini-2024-07-18',
      'gen_ai.usage.input_tokens': usage!.prompt_tokens,
      'gen_ai.usage.output_tokens': usage!.completion_tokens,
      'gen_ai.response.finish_reasons': ['stop'],
      'paygo.stream': true,
      'paygo.target': 'first',
      'paygo.attempts': 1,
      'paygo.cost_usd': cost,
      'paygo.usage.estimated': false,
    });
    expect(attrs(attempt!)).toMatchObject({ 'paygo.attempt.outcome': 'success', 'gen_ai.usage.output_tokens': usage!.completion_tokens, 'paygo.cost_usd': cost });
    expect(first.requests.at(-1)!.headers.traceparent).toBe(`00-${app.traceId}-${attempt!.spanId}-01`);
    expect(leaks(spans)).toEqual([]);
  });
});

describe('content opt-in (spec.tracing.recordContent)', () => {
  it('a route that opts in records the prompt and the completion as gen_ai.input.messages / gen_ai.output.messages; never the key', async () => {
    const app = appSpan();
    const { data } = await client.chat.completions
      .create({ model: 'open-bot', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: PROMPT }] }, { headers: { traceparent: app.traceparent } })
      .withResponse();
    const spans = await jaeger.trace(app.traceId, complete(1));
    const request = attrs(serverSpans(spans)[0]!);
    expect(JSON.parse(String(request['gen_ai.input.messages']))).toEqual([
      { role: 'system', parts: [{ type: 'text', content: 'Be brief.' }] },
      { role: 'user', parts: [{ type: 'text', content: PROMPT }] },
    ]);
    expect(JSON.parse(String(request['gen_ai.output.messages']))).toEqual([{ role: 'assistant', parts: [{ type: 'text', content: data.choices[0]!.message.content }], finish_reason: 'stop' }]);
    expect(leaks(spans)).toEqual([PROMPT.slice(0, 16), PROMPT.slice(16, 32), PROMPT.slice(32, 48), PROMPT.slice(48, 64)]); // the check finds the prompt when it is there
    expect(JSON.stringify(spans)).not.toContain(KEY.slice(0, 12));
  });
});

describe('embeddings, a request without traceparent, an error', () => {
  it('embeddings: a request span "embeddings bot" and its attempt, with the input tokens', async () => {
    const app = appSpan();
    const { data } = await client.embeddings.create({ model: 'bot', input: PROMPT }, { headers: { traceparent: app.traceparent } }).withResponse();
    const spans = await jaeger.trace(app.traceId, complete(1));
    const [request] = serverSpans(spans);
    expect(request!.name).toBe('embeddings bot');
    expect(attrs(request!)).toMatchObject({ 'gen_ai.operation.name': 'embeddings', 'gen_ai.usage.input_tokens': data.usage.prompt_tokens, 'paygo.target': 'first' });
    expect(clientSpans(spans)[0]!.name).toBe('embeddings gpt-4o-mini');
    expect(leaks(spans)).toEqual([]);
  });

  it('without a traceparent the request span starts a trace of its own, which the provider joins', async () => {
    await client.chat.completions.create({ model: 'bot', messages: [{ role: 'user', content: 'no parent' }] });
    const sent = String(first.requests.at(-1)!.headers.traceparent);
    const [, traceId, spanId] = sent.split('-');
    const spans = await jaeger.trace(traceId!, complete(1));
    const [request] = serverSpans(spans);
    expect(request!.parentSpanId ?? '').toBe('');
    expect(clientSpans(spans)[0]!.spanId).toBe(spanId);
  });

  it('an unknown model: the request span ends in error with the code, no attempt span', async () => {
    const app = appSpan();
    await expect(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: PROMPT }] }, { headers: { traceparent: app.traceparent } })).rejects.toThrow(/404/);
    const spans = await jaeger.trace(app.traceId, (s) => s.length === 1);
    expect(spans[0]!.name).toBe('chat nope');
    expect(attrs(spans[0]!)).toEqual({ 'gen_ai.operation.name': 'chat', 'gen_ai.request.model': 'nope', 'error.type': 'model_not_found', 'http.response.status_code': 404 });
    expect(spans[0]!.status).toEqual({ code: STATUS.error, message: 'The model "nope" does not exist or you do not have access to it.' });
  });
});

/** Route "bot" with one target, the first fake provider. */
const oneTarget = () => botRouteConfig([`{ name: first, provider: openai-compatible, model: m, baseURL: ${first.url}/v1 }`]);

describe('shutdown', () => {
  it('SIGTERM exports the spans still buffered (the batch delay is 60 s here: only the shutdown flush can send them)', async () => {
    const traced = await startSidecar(oneTarget(), { env: { OTEL_EXPORTER_OTLP_ENDPOINT: jaeger.otlpUrl, OTEL_BSP_SCHEDULE_DELAY: '60000' } });
    const app = appSpan();
    const res = await fetch(`${traced.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: app.traceparent },
      body: JSON.stringify({ model: 'bot', messages: [{ role: 'user', content: 'bye' }] }),
    });
    expect(res.status).toBe(200);
    expect(await traced.stop()).toBe(0);
    // Jaeger has them once the sidecar has exited (its own batch: 50 ms).
    const spans = await jaeger.trace(app.traceId, complete(1), 5_000);
    expect(serverSpans(spans)[0]!.parentSpanId).toBe(app.spanId);
    expect(traced.lines.some((l) => l.includes('"tracing on"') && l.includes('from OTEL_EXPORTER_OTLP_* variables'))).toBe(true);
  });
});

describe('tracing off', () => {
  it("the app's traceparent is not forwarded to the provider", async () => {
    const plain = await startSidecar(oneTarget());
    try {
      const app = appSpan();
      const res = await fetch(`${plain.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: app.traceparent, tracestate: 'app=1' },
        body: JSON.stringify({ model: 'bot', messages: [{ role: 'user', content: 'hi' }] }),
      });
      expect(res.status).toBe(200);
      expect(first.requests.at(-1)!.headers.traceparent).toBeUndefined();
      expect(first.requests.at(-1)!.headers.tracestate).toBeUndefined();
      expect(plain.lines.some((l) => l.includes('tracing on'))).toBe(false);
    } finally {
      await plain.stop();
    }
  });
});
