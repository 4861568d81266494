import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { Pricing } from '../../../crds/src/index.js';
import { UsageMeter, type PriceFn } from '../../../sidecar/metering/meter.js';
import { createMetrics } from '../../../sidecar/metering/metrics.js';
import type { RequestRecord } from '../../../sidecar/metering/record.js';
import type { Usage } from '../../../sidecar/usage.js';

/** The meter's series, labels and values read from prom-client exactly; the usage log line field by field. */

const u = (inputTokens: number, outputTokens: number, cacheReadTokens = 0, cacheWriteTokens = 0, reasoningTokens = 0): Usage => ({
  inputTokens,
  outputTokens,
  cacheReadTokens,
  cacheWriteTokens,
  reasoningTokens,
});

const AT = new Date('2026-03-04T05:06:07Z');

function setup(price?: PriceFn) {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const metrics = createMetrics({ defaultMetrics: false });
  const calls: unknown[][] = [];
  // 1,000 nano-USD per input token and 2,000 per output token; "mystery" has no price.
  const fn: PriceFn =
    price ??
    ((...args) => {
      calls.push(args);
      const [, model, usage] = args;
      return model === 'mystery' ? { costNano: 0n, known: false } : { costNano: BigInt(usage.inputTokens * 1000 + usage.outputTokens * 2000), known: true };
    });
  const meter = new UsageMeter(metrics, fn, pino({ base: undefined, timestamp: false }, sink), () => AT);
  return { meter, metrics, lines, calls };
}

function rec(over: Partial<RequestRecord> = {}): RequestRecord {
  return {
    requestId: 'r1',
    operation: 'chat',
    api: 'chat',
    namespace: 'default',
    route: 'bot',
    requestModel: 'bot',
    target: 'a',
    provider: 'openai',
    providerModel: 'gpt-4o-mini',
    responseModel: 'gpt-4o-mini-2024-07-18',
    stream: false,
    outcome: 'success',
    status: 200,
    errorType: undefined,
    usage: u(10, 5),
    estimated: false,
    attempts: 1,
    durationMs: 12,
    ttftMs: 12,
    pricingOverride: undefined,
    ...over,
  };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

type Metric = { get(): Promise<{ values: Array<{ labels: Record<string, string | number>; value: number; metricName?: string }> }> };
async function values(m: unknown, suffix?: string) {
  const v = (await (m as Metric).get()).values;
  return v.filter((x) => suffix === undefined || x.metricName?.endsWith(suffix)).map((x) => ({ labels: x.labels, value: x.value }));
}

const ROUTE = { namespace: 'default', route: 'bot', target: 'a', provider: 'openai', model: 'bot', api: 'chat' };
const GENAI = {
  gen_ai_operation_name: 'chat',
  gen_ai_provider_name: 'openai',
  gen_ai_request_model: 'bot',
  gen_ai_response_model: 'gpt-4o-mini-2024-07-18',
  namespace: 'default',
  route: 'bot',
};

describe('UsageMeter pricing', () => {
  it('prices with provider, provider model, usage, override and the injected clock', () => {
    const { meter, calls } = setup();
    const pricing: Pricing = { input: '1', output: '2' };
    expect(meter.record(rec({ pricingOverride: pricing }))).toEqual({ costNano: 20_000n, priced: true });
    expect(calls).toEqual([['openai', 'gpt-4o-mini', u(10, 5), pricing, AT]]);
  });

  it('a cache hit is known to cost nothing (not priced); no usage, provider or model: unknown', () => {
    const { meter, calls } = setup();
    expect(meter.record(rec({ cache: 'hit' }))).toEqual({ costNano: 0n, priced: true });
    expect(meter.record(rec({ usage: undefined }))).toEqual({ costNano: 0n, priced: false });
    expect(meter.record(rec({ provider: undefined }))).toEqual({ costNano: 0n, priced: false });
    expect(meter.record(rec({ providerModel: undefined }))).toEqual({ costNano: 0n, priced: false });
    expect(calls).toEqual([]);
  });
});

describe('UsageMeter metrics', () => {
  it('requests, tokens by type (present parts only), token usage and duration, with the api label', async () => {
    const { meter, metrics } = setup();
    meter.record(rec({ usage: u(100, 40, 30, 0, 7), durationMs: 1500 }));
    meter.record(rec({ api: 'responses', usage: u(1, 2, 0, 5, 0), durationMs: 250, outcome: 'stream_error', errorType: 'server_error', estimated: true, stream: true, ttftMs: 40 }));
    meter.flush();
    expect(await values(metrics.requests)).toEqual([
      { labels: { ...ROUTE, outcome: 'success', estimated: 'false', priced: 'true' }, value: 1 },
      { labels: { ...ROUTE, api: 'responses', outcome: 'stream_error', estimated: 'true', priced: 'true' }, value: 1 },
    ]);
    expect(await values(metrics.tokens)).toEqual([
      { labels: { ...ROUTE, type: 'input' }, value: 100 },
      { labels: { ...ROUTE, type: 'output' }, value: 40 },
      { labels: { ...ROUTE, type: 'cache_read' }, value: 30 },
      { labels: { ...ROUTE, type: 'reasoning' }, value: 7 },
      { labels: { ...ROUTE, api: 'responses', type: 'input' }, value: 1 },
      { labels: { ...ROUTE, api: 'responses', type: 'output' }, value: 2 },
      { labels: { ...ROUTE, api: 'responses', type: 'cache_write' }, value: 5 },
    ]);
    expect(await values(metrics.tokenUsage, '_sum')).toEqual([
      { labels: { ...GENAI, gen_ai_token_type: 'input' }, value: 101 },
      { labels: { ...GENAI, gen_ai_token_type: 'output' }, value: 42 },
    ]);
    expect(await values(metrics.operationDuration, '_sum')).toEqual([
      { labels: { ...GENAI, error_type: '' }, value: 1.5 },
      { labels: { ...GENAI, error_type: 'server_error' }, value: 0.25 },
    ]);
    // only the stream has a time to first token
    expect(await values(metrics.timeToFirstToken, '_sum')).toEqual([{ labels: GENAI, value: 0.04 }]);
  });

  it('the cost counter: exact totals per route series (not per response model), not doubled by scrapes', async () => {
    const { meter, metrics } = setup();
    meter.record(rec());
    meter.record(rec({ responseModel: 'other-snapshot', usage: u(1, 0) }));
    meter.record(rec({ api: 'messages', usage: u(0, 1) }));
    meter.record(rec({ providerModel: 'mystery', target: 'b' }));
    // no flush: the scrape flushes first
    const want = [
      { labels: ROUTE, value: 0.000021 },
      { labels: { ...ROUTE, api: 'messages' }, value: 0.000002 },
    ];
    expect(await values(metrics.cost)).toEqual(want);
    expect(await values(metrics.cost)).toEqual(want);
    meter.record(rec({ usage: u(0, 3) }));
    expect(await values(metrics.cost)).toEqual([{ labels: ROUTE, value: 0.000027 }, want[1]]);
  });

  it('cost per success: a target\'s cost over its successes (errors cost, but are not successes); none without a success', async () => {
    const { meter, metrics } = setup();
    meter.record(rec({ usage: u(10, 0) }));
    meter.record(rec({ usage: u(20, 0) }));
    meter.record(rec({ outcome: 'stream_error', usage: u(30, 0) }));
    meter.record(rec({ target: 'b', outcome: 'upstream_error', usage: undefined }));
    meter.record(rec({ target: undefined, provider: undefined, outcome: 'refused', usage: undefined }));
    expect(await values(metrics.costPerSuccess)).toEqual([{ labels: { namespace: 'default', route: 'bot', target: 'a', provider: 'openai' }, value: 0.00003 }]);
    expect([...meter.targets.values()]).toEqual([
      { namespace: 'default', route: 'bot', target: 'a', provider: 'openai', requests: 3, successes: 2, errors: 1, costNano: 60_000n },
      { namespace: 'default', route: 'bot', target: 'b', provider: 'openai', requests: 1, successes: 0, errors: 1, costNano: 0n },
    ]);
  });

  it('a request served by no target: "none" labels, no time to first token, no per-target totals', async () => {
    const { meter, metrics } = setup();
    meter.record(rec({ target: undefined, provider: undefined, providerModel: undefined, responseModel: undefined, usage: undefined, outcome: 'refused', status: 402, errorType: undefined, stream: true, ttftMs: 5 }));
    meter.flush();
    expect(await values(metrics.requests)).toEqual([{ labels: { ...ROUTE, target: 'none', provider: 'none', outcome: 'refused', estimated: 'false', priced: 'false' }, value: 1 }]);
    expect(await values(metrics.operationDuration, '_count')).toEqual([
      { labels: { ...GENAI, gen_ai_provider_name: 'none', gen_ai_response_model: 'none', error_type: 'refused' }, value: 1 },
    ]);
    expect(await values(metrics.timeToFirstToken, '_count')).toEqual([]);
    expect(meter.targets.size).toBe(0);
  });

  it('the response model falls back to the provider model; a stream without ttft is not observed', async () => {
    const { meter, metrics } = setup();
    meter.record(rec({ responseModel: undefined, stream: true, ttftMs: undefined }));
    meter.flush();
    expect(await values(metrics.operationDuration, '_count')).toEqual([{ labels: { ...GENAI, gen_ai_response_model: 'gpt-4o-mini', error_type: '' }, value: 1 }]);
    expect(await values(metrics.timeToFirstToken, '_count')).toEqual([]);
  });

  it('embeddings: the embeddings operation, input tokens only in the token usage histogram', async () => {
    const { meter, metrics } = setup();
    meter.record(rec({ operation: 'embeddings', api: 'embeddings', usage: u(8, 0) }));
    meter.flush();
    expect(await values(metrics.tokenUsage, '_count')).toEqual([
      { labels: { ...GENAI, gen_ai_operation_name: 'embeddings', gen_ai_token_type: 'input' }, value: 1 },
    ]);
  });

  it('cache results by route; a hit counts with priced="true"', async () => {
    const { meter, metrics } = setup();
    meter.record(rec({ cache: 'hit', target: undefined, provider: undefined }));
    meter.record(rec({ cache: 'miss' }));
    meter.record(rec({ cache: 'miss' }));
    meter.record(rec());
    meter.flush();
    expect(await values(metrics.cacheRequests)).toEqual([
      { labels: { namespace: 'default', route: 'bot', result: 'hit' }, value: 1 },
      { labels: { namespace: 'default', route: 'bot', result: 'miss' }, value: 2 },
    ]);
  });

  it('keeps series of one label set apart by outcome, estimated and priced', async () => {
    const { meter, metrics } = setup();
    meter.record(rec());
    meter.record(rec({ estimated: true }));
    meter.record(rec({ providerModel: 'mystery' }));
    meter.record(rec({ outcome: 'client_error', errorType: 'x' }));
    meter.record(rec({ outcome: 'client_error', errorType: 'x' }));
    meter.flush();
    expect((await values(metrics.requests)).map((v) => [v.labels.outcome, v.labels.estimated, v.labels.priced, v.value])).toEqual([
      ['success', 'false', 'true', 1],
      ['success', 'true', 'true', 1],
      ['success', 'false', 'false', 1],
      ['client_error', 'false', 'true', 2],
    ]);
  });
});

describe('UsageMeter publishing', () => {
  it('every batch is published once, one after another', async () => {
    const { meter, metrics, lines } = setup();
    meter.record(rec({ requestId: 'a' }));
    await tick();
    meter.record(rec({ requestId: 'b' }));
    await tick();
    expect(lines.map((l) => l.requestId)).toEqual(['a', 'b']);
    expect(await values(metrics.requests)).toEqual([{ labels: { ...ROUTE, outcome: 'success', estimated: 'false', priced: 'true' }, value: 2 }]);
  });

  it('writes one usage line with every field', async () => {
    const { meter, lines } = setup();
    meter.record(
      rec({
        requestId: 'req-9',
        api: 'messages',
        stream: true,
        usage: u(10, 5, 3, 2, 1),
        durationMs: 12.34567,
        ttftMs: 3.00049,
        attempts: 2,
        estimated: true,
        cache: 'miss',
        status: 200,
      }),
    );
    meter.record(rec({ requestId: 'req-10', providerModel: 'mystery', usage: undefined, outcome: 'upstream_error', status: 502, errorType: 'upstream_failed', ttftMs: undefined }));
    await tick();
    expect(lines).toEqual([
      {
        level: 30,
        msg: 'usage',
        requestId: 'req-9',
        operation: 'chat',
        api: 'messages',
        namespace: 'default',
        route: 'bot',
        model: 'bot',
        target: 'a',
        provider: 'openai',
        providerModel: 'gpt-4o-mini',
        responseModel: 'gpt-4o-mini-2024-07-18',
        stream: true,
        outcome: 'success',
        status: 200,
        tokens: { input: 10, output: 5, cacheRead: 3, cacheWrite: 2, reasoning: 1 },
        costNanoUsd: 20_000,
        costUsd: '0.000020000',
        priced: true,
        estimated: true,
        attempts: 2,
        cache: 'miss',
        latencyMs: 12.346,
        ttftMs: 3,
      },
      {
        level: 30,
        msg: 'usage',
        requestId: 'req-10',
        operation: 'chat',
        api: 'chat',
        namespace: 'default',
        route: 'bot',
        model: 'bot',
        target: 'a',
        provider: 'openai',
        providerModel: 'mystery',
        responseModel: 'gpt-4o-mini-2024-07-18',
        stream: false,
        outcome: 'upstream_error',
        status: 502,
        errorType: 'upstream_failed',
        costNanoUsd: null,
        costUsd: null,
        priced: false,
        estimated: false,
        attempts: 1,
        latencyMs: 12,
      },
    ]);
  });
});
