import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { pino } from 'pino';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { ADAPTERS } from '../../sidecar/providers/index.js';
import type { UpstreamRequest } from '../../sidecar/providers/types.js';
import { CircuitBreaker } from '../../sidecar/router/breaker.js';
import type { RuntimeConfig, RuntimeRoute } from '../../sidecar/router/runtime.js';
import { buildApp } from '../../sidecar/server.js';
import { createTracing } from '../../sidecar/tracing-sdk.js';
import type { Transport } from '../../sidecar/transport.js';
import { testRoute, testTarget } from '../support/runtime.js';

/**
 * The SDK wiring (sidecar/tracing-sdk.ts) in process: buildApp with tracing, a fake transport
 * that records what goes upstream, and an exporter that keeps the finished spans.
 */
const ROOT = resolve(import.meta.dirname, '../..');
const KEY = 'sk-unit-4Fh8Qm2Xr7Tk9Lp3';
const PROMPT = 'the confidential prompt text of this request';

const exported: ReadableSpan[] = [];
const exporter: SpanExporter = {
  export: (spans, done) => {
    exported.push(...spans);
    done({ code: 0 });
  },
  shutdown: async () => {},
};
process.env.OTEL_BSP_SCHEDULE_DELAY = '20'; // read by the BatchSpanProcessor when it is built, just below
const tracing = createTracing({ url: 'http://127.0.0.1:9/v1/traces' }, pino({ level: 'silent' }), exporter);

/** Upstream answers, taken in order (then 200 with a completion); every request sent is kept. */
const sent: UpstreamRequest[] = [];
const answers: number[] = [];
const transport: Transport = {
  async send(req) {
    sent.push(req);
    const status = answers.shift() ?? 200;
    const body =
      status === 200
        ? { id: 'c1', object: 'chat.completion', created: 1, model: 'm-2024', choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }], usage: { prompt_tokens: 9, completion_tokens: 1, total_tokens: 10 } }
        : { error: { message: `busy: ${PROMPT}`, type: 'server_error' } };
    return { status, headers: {}, body: Readable.from([Buffer.from(JSON.stringify(body))]) };
  },
  async close() {},
};

const target = testTarget('a', {
  provider: 'openai',
  model: 'gpt-4o-mini',
  baseURL: 'http://upstream.test:8080/v1',
  apiKey: KEY,
  adapter: ADAPTERS.openai,
  transport,
  health: { breaker: new CircuitBreaker(1000, 10_000), latencyMs: undefined },
});
const route: RuntimeRoute = { ...testRoute([target], { attempts: 2, initialBackoffMs: 0, maxBackoffMs: 0 }), cache: { ttlSeconds: 60, maxEntries: 10, maxBytes: 1 << 20 } };
const config: RuntimeConfig = { version: 'v1', byModel: new Map([['bot', route]]), snapshot: { version: 'v1', routes: [], budgets: [] } };
const meter = { record: () => ({ costNano: 2_500n, priced: true }), flush: () => {} };
const app = buildApp({ getConfig: () => config, meter, logger: pino({ level: 'silent' }), bodyLimit: 1_000_000, tracing });
const plainApp = buildApp({ getConfig: () => config, meter, logger: pino({ level: 'silent' }), bodyLimit: 1_000_000 });
afterAll(async () => {
  await app.close();
  await plainApp.close();
  await tracing.shutdown(1_000);
});

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const APP_SPAN = '00f067aa0ba902b7';
const headers = { 'content-type': 'application/json', traceparent: `00-${TRACE_ID}-${APP_SPAN}-01`, tracestate: 'app=1' };
const ask = (a = app, payload: unknown = { model: 'bot', messages: [{ role: 'user', content: PROMPT }] }) =>
  a.inject({ method: 'POST', url: '/v1/chat/completions', headers, payload: typeof payload === 'string' ? payload : JSON.stringify(payload) });

/** The finished spans of the trace (the BatchSpanProcessor is flushed by waiting for the export). */
async function spansOf(count: number): Promise<ReadableSpan[]> {
  const deadline = Date.now() + 10_000;
  while (exported.length < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  return [...exported];
}

beforeEach(() => {
  exported.length = 0;
  sent.length = 0;
  answers.length = 0;
});

describe('spans of one request, in process', () => {
  it('a retry on the same target: the request span (child of the app span) and two attempt spans; each upstream request carries its own attempt', async () => {
    answers.push(503);
    const res = await ask(app, { model: 'bot', messages: [{ role: 'user', content: PROMPT }], temperature: 1 });
    expect(res.statusCode).toBe(200);
    const spans = await spansOf(3);
    const request = spans.find((s) => s.name === 'chat bot')!;
    const attempts = spans.filter((s) => s.name === 'chat gpt-4o-mini');
    expect(spans).toHaveLength(3);
    expect(request.spanContext().traceId).toBe(TRACE_ID);
    expect(request.parentSpanContext?.spanId).toBe(APP_SPAN);
    expect(attempts.map((s) => s.parentSpanContext?.spanId)).toEqual([request.spanContext().spanId, request.spanContext().spanId]);
    expect(attempts.map((s) => s.attributes['paygo.attempt.outcome'])).toEqual(['overloaded', 'success']);
    expect(attempts[0]!.status).toEqual({ code: 2, message: 'a (openai) answered 503: busy: [redacted]' });
    expect(attempts[1]!.attributes['paygo.cost_usd']).toBe('0.000002500');
    expect(sent.map((r) => r.headers.traceparent)).toEqual(attempts.map((s) => `00-${TRACE_ID}-${s.spanContext().spanId}-01`));
    expect(sent.map((r) => r.headers.tracestate)).toEqual(['app=1', 'app=1']);
    expect(request.attributes).toMatchObject({ 'paygo.attempts': 2, 'gen_ai.request.temperature': 1, 'gen_ai.usage.input_tokens': 9, 'paygo.cache': 'miss' });
    expect(JSON.stringify(spans.map((s) => [s.attributes, s.events, s.status]))).not.toMatch(/confidential|sk-unit/);
  });

  it('a cache hit: the request span says so and costs 0; no attempt span', async () => {
    await ask(app, { model: 'bot', messages: [{ role: 'user', content: 'cache me' }] });
    await spansOf(2);
    exported.length = 0;
    const res = await ask(app, { model: 'bot', messages: [{ role: 'user', content: 'cache me' }] });
    expect(res.headers['x-paygo-cache']).toBe('hit');
    const spans = await spansOf(1);
    expect(spans).toHaveLength(1);
    expect(spans[0]!.attributes).toMatchObject({ 'paygo.cache': 'hit', 'paygo.attempts': 0, 'paygo.outcome': 'success' });
  });

  it('a body that is not JSON is traced with the code only: JSON.parse would quote the prompt', async () => {
    const res = await ask(app, `{"model":"bot","messages":${PROMPT}}`);
    expect(res.statusCode).toBe(400);
    expect(res.body).not.toContain('the confide'); // nor to the client: an error body can end up in its logs
    const [span] = await spansOf(1);
    expect(span!.name).toBe('chat');
    expect(span!.status).toEqual({ code: 2, message: 'invalid_json' });
    expect(span!.attributes).toEqual({ 'gen_ai.operation.name': 'chat', 'error.type': 'invalid_json', 'http.response.status_code': 400 });
  });

  it('a body refused unread (415) is traced too', async () => {
    const res = await app.inject({ method: 'POST', url: '/v1/embeddings', headers: { ...headers, 'content-type': 'text/plain' }, payload: 'x' });
    expect(res.statusCode).toBe(415);
    const [span] = await spansOf(1);
    expect(span!.name).toBe('embeddings');
    expect(span!.attributes['error.type']).toBe('unsupported_media_type');
  });

  it('GET /v1/models and the health routes are not traced', async () => {
    await app.inject({ method: 'GET', url: '/v1/models', headers });
    await app.inject({ method: 'GET', url: '/healthz', headers });
    await ask(app);
    const spans = await spansOf(2);
    expect(spans.map((s) => s.name).sort()).toEqual(['chat bot', 'chat gpt-4o-mini']);
  });

  it("tracing off: the app's traceparent and tracestate do not go upstream", async () => {
    const res = await ask(plainApp, { model: 'bot', messages: [{ role: 'user', content: 'plain' }] });
    expect(res.statusCode).toBe(200);
    expect(sent).toHaveLength(1);
    expect(sent[0]!.headers.traceparent).toBeUndefined();
    expect(sent[0]!.headers.tracestate).toBeUndefined();
  });
});

describe('the SDK is loaded only when tracing is on', () => {
  const files = readdirSync(join(ROOT, 'sidecar'), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)).split(sep).join('/'));
  const text = (f: string) => readFileSync(join(ROOT, f), 'utf8');

  it('only sidecar/tracing-sdk.ts imports @opentelemetry packages', () => {
    expect(files.filter((f) => /from '@opentelemetry\//.test(text(f)))).toEqual(['sidecar/tracing-sdk.ts']);
  });

  it('and only main.ts imports it, dynamically', () => {
    expect(files.filter((f) => text(f).includes('tracing-sdk.js'))).toEqual(['sidecar/main.ts']);
    expect(text('sidecar/main.ts')).toContain("await import('./tracing-sdk.js')");
    expect(text('sidecar/main.ts')).not.toMatch(/from '\.\/tracing-sdk\.js'/);
  });
});
