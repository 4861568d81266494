import { Readable, Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Cancel } from '../../sidecar/cancel.js';
import { completeChat, streamChat, type ChatContext, type ChatDeps } from '../../sidecar/chat.js';
import { ApiError } from '../../sidecar/errors.js';
import { UsageMeter } from '../../sidecar/metering/meter.js';
import { createMetrics } from '../../sidecar/metering/metrics.js';
import type { RequestRecord } from '../../sidecar/metering/record.js';
import { ADAPTERS } from '../../sidecar/providers/index.js';
import { CircuitBreaker } from '../../sidecar/router/breaker.js';
import type { RuntimeRoute, RuntimeTarget } from '../../sidecar/router/runtime.js';
import type { Transport } from '../../sidecar/transport.js';
import { testRoute, testTarget } from '../support/runtime.js';

/** A transport that answers every request with `status` and an OpenAI-wire error body. */
function answering(status: number): Transport & { sent: number } {
  const t = {
    sent: 0,
    async send() {
      t.sent++;
      return { status, headers: {}, body: Readable.from([Buffer.from(JSON.stringify({ error: { message: `fake ${status}`, type: 'requests', code: 'rate_limit_exceeded' } }))]) };
    },
    async close() {},
  };
  return t;
}

function target(name: string, provider: 'openai-compatible' | 'groq', transport: Transport): RuntimeTarget {
  return testTarget(name, {
    provider,
    model: `${name}-model`,
    baseURL: 'http://upstream.test/v1',
    apiKey: 'sk-test-key-0123456789',
    adapter: ADAPTERS[provider],
    transport,
    health: { breaker: new CircuitBreaker(1000, 10_000), latencyMs: undefined },
  });
}

const route = (targets: RuntimeTarget[]): RuntimeRoute => testRoute(targets, { attempts: 1 });

/** completeChat/streamChat with a real UsageMeter: the record and the paygo_requests_total series it produced. */
async function run(r: RuntimeRoute, stream: boolean, extra: Record<string, unknown> = {}) {
  const metrics = createMetrics({ defaultMetrics: false });
  const records: RequestRecord[] = [];
  const usage = new UsageMeter(metrics, () => ({ costNano: 0n, known: false }), pino(new Writable({ write: (_c, _e, done) => done() })));
  const deps: ChatDeps = {
    meter: { record: (rec) => (records.push(structuredClone(rec)), usage.record(rec)), flush: () => usage.flush() },
    now: () => 1_000,
    random: () => 0.5,
    sleep: async () => {},
    unitPrice: () => undefined,
  };
  const ctx = {
    requestId: 'req-1',
    route: r,
    req: { model: 'bot', stream, messages: [{ role: 'user' as const, content: 'hi' }], ...extra },
    signal: new Cancel(),
    raw: {} as ChatContext['raw'],
    startedAt: 1_000,
  } as ChatContext;
  const error = await (stream ? streamChat(ctx, deps) : completeChat(ctx, deps)).then(
    () => undefined,
    (e: unknown) => e,
  );
  usage.flush();
  const series = (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('paygo_requests_total{'));
  return { error: error as ApiError, records, series };
}

describe('a failed request is metered under the last target it reached', () => {
  it('non-stream: the only target answered 429 → target and provider of that target, not "none"', async () => {
    const out = await run(route([target('a', 'openai-compatible', answering(429))]), false);
    expect(out.error).toBeInstanceOf(ApiError);
    expect(out.error.status).toBe(429);
    expect(out.records).toHaveLength(1);
    expect(out.records[0]).toMatchObject({ target: 'a', provider: 'openai-compatible', providerModel: 'a-model', attempts: 1, status: 429, errorType: 'upstream_rate_limited' });
    expect(out.series).toEqual([
      'paygo_requests_total{namespace="default",route="r",target="a",provider="openai-compatible",model="bot",api="chat",outcome="upstream_error",estimated="false",priced="false"} 1',
    ]);
  });

  it('stream: two targets failed before anything was streamed → the second one, with both attempts', async () => {
    const out = await run(route([target('a', 'openai-compatible', answering(503)), target('b', 'openai-compatible', answering(500))]), true);
    expect(out.error.status).toBe(502);
    expect(out.records[0]).toMatchObject({ target: 'b', provider: 'openai-compatible', attempts: 2, status: 502, errorType: 'upstream_failed' });
    expect(out.series).toEqual([
      'paygo_requests_total{namespace="default",route="r",target="b",provider="openai-compatible",model="bot",api="chat",outcome="upstream_error",estimated="false",priced="false"} 1',
    ]);
  });

  it('a target that answered 429 after one whose adapter refused the request: the one that answered', async () => {
    const refusing = answering(200);
    const out = await run(route([target('groq', 'groq', refusing), target('a', 'openai-compatible', answering(429))]), false, { n: 2 });
    expect(refusing.sent).toBe(0);
    expect(out.records[0]).toMatchObject({ target: 'a', attempts: 2, status: 429 });
  });

  it('a request no target could take was sent nowhere: target "none", its attempts counted', async () => {
    const refusing = answering(200);
    const out = await run(route([target('groq', 'groq', refusing)]), false, { n: 2 });
    expect(out.error).toMatchObject({ status: 400, code: 'unsupported_parameter' });
    expect(refusing.sent).toBe(0);
    expect(out.records[0]).toMatchObject({ target: undefined, provider: undefined, attempts: 1 });
    expect(out.series).toEqual([
      'paygo_requests_total{namespace="default",route="r",target="none",provider="none",model="bot",api="chat",outcome="client_error",estimated="false",priced="false"} 1',
    ]);
  });
});
