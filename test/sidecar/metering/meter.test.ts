import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { UsageMeter, type PriceFn } from '../../../sidecar/metering/meter.js';
import { createMetrics } from '../../../sidecar/metering/metrics.js';
import type { RequestRecord } from '../../../sidecar/metering/record.js';

function setup() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const metrics = createMetrics({ defaultMetrics: false });
  // 1,000 nano-USD per input token and 2,000 per output token; "mystery" has no price.
  const price: PriceFn = (_p, model, u) => (model === 'mystery' ? { costNano: 0n, known: false } : { costNano: BigInt(u.inputTokens * 1000 + u.outputTokens * 2000), known: true });
  const meter = new UsageMeter(metrics, price, pino({ base: { component: 'paygo-usage' } }, sink));
  return { meter, metrics, lines };
}

function rec(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    requestId: 'r1', operation: 'chat', api: 'chat', namespace: 'default', route: 'bot', requestModel: 'bot', target: 'a', provider: 'openai', providerModel: 'gpt-4o-mini',
    responseModel: 'gpt-4o-mini-2024-07-18', stream: false, outcome: 'success', status: 200, errorType: undefined,
    usage: { inputTokens: 10, outputTokens: 5, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 },
    estimated: false, attempts: 1, durationMs: 12, ttftMs: 12, pricingOverride: undefined, ...over,
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('UsageMeter', () => {
  it('prices at once and publishes metrics and the usage line right after, in one batch', async () => {
    const { meter, metrics, lines } = setup();
    expect(meter.record(rec({ requestId: 'r1' }))).toEqual({ costNano: 20_000n, priced: true });
    expect(meter.record(rec({ requestId: 'r2' }))).toEqual({ costNano: 20_000n, priced: true });
    expect(lines).toHaveLength(0); // not yet: the response goes out first
    await tick();
    expect(lines.map((l) => [l.requestId, l.costNanoUsd, l.component])).toEqual([
      ['r1', 20_000, 'paygo-usage'],
      ['r2', 20_000, 'paygo-usage'],
    ]);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/paygo_cost_usd_total\{namespace="default",route="bot",target="a",provider="openai",model="bot",api="chat"\} 0\.00004\n/);
    expect(text).toMatch(/paygo_requests_total\{[^}]*outcome="success",estimated="false",priced="true"\} 2\n/);
    expect(text).toMatch(/paygo_tokens_total\{[^}]*type="output"\} 10\n/);
  });

  it('after a published batch (not per line, not when nothing was pending) it lets the log write its buffer', async () => {
    const lines: string[] = [];
    const writes: number[] = [];
    const sink = new Writable({
      write(chunk, _enc, done) {
        lines.push(String(chunk));
        done();
      },
    });
    const meter = new UsageMeter(createMetrics({ defaultMetrics: false }), () => ({ costNano: 1n, known: true }), pino(sink), undefined, () => writes.push(lines.length));
    meter.record(rec({ requestId: 'a' }));
    meter.record(rec({ requestId: 'b' }));
    await tick();
    meter.flush(); // nothing pending: no call
    expect(writes).toEqual([2]);
  });

  it('a scrape sees what was recorded even before the batch ran', async () => {
    const { meter, metrics } = setup();
    meter.record(rec());
    meter.flush(); // what the /metrics handler does first
    expect(await metrics.registry.metrics()).toMatch(/paygo_requests_total\{[^}]*\} 1\n/);
    await tick(); // the scheduled flush finds nothing left: no double count
    expect(await metrics.registry.metrics()).toMatch(/paygo_requests_total\{[^}]*\} 1\n/);
  });

  it('an unknown price is absent from the cost counter, never $0', async () => {
    const { meter, metrics, lines } = setup();
    expect(meter.record(rec({ providerModel: 'mystery' }))).toEqual({ costNano: 0n, priced: false });
    await tick();
    const text = await metrics.registry.metrics();
    expect(text).not.toMatch(/^paygo_cost_usd_total\{/m);
    expect(text).toMatch(/paygo_requests_total\{[^}]*priced="false"\} 1\n/);
    expect(lines[0]).toMatchObject({ priced: false, costUsd: null, costNanoUsd: null });
  });

  it('keeps series apart by outcome and error type', async () => {
    const { meter, metrics } = setup();
    meter.record(rec());
    meter.record(rec({ outcome: 'upstream_error', status: 502, errorType: 'upstream_failed', usage: undefined }));
    meter.record(rec({ outcome: 'upstream_error', status: 504, errorType: 'upstream_timeout', usage: undefined }));
    await tick();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/paygo_requests_total\{[^}]*outcome="upstream_error"[^}]*\} 2\n/);
    expect(text).toMatch(/gen_ai_client_operation_duration_seconds_count\{[^}]*error_type="upstream_failed"\} 1\n/);
    expect(text).toMatch(/gen_ai_client_operation_duration_seconds_count\{[^}]*error_type="upstream_timeout"\} 1\n/);
    expect(text).toMatch(/gen_ai_client_operation_duration_seconds_count\{[^}]*error_type=""\} 1\n/);
  });
});
