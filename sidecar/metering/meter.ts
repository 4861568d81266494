import type { Logger } from 'pino';
import type { ProviderName, Pricing } from '../../crds/src/index.js';
import type { Usage } from '../usage.js';
import type { SidecarMetrics } from './metrics.js';
import { formatUsd } from '../../crds/src/money.js';
import type { Meter, MeterResult, RequestRecord } from './record.js';

export interface PriceFn {
  (provider: ProviderName, model: string, usage: Usage, override: Pricing | undefined, at: Date): { costNano: bigint; known: boolean };
}

/** Per-target totals, for A/B comparison (metrics now, ModelRoute status via the operator). */
export interface TargetStats {
  namespace: string;
  route: string;
  target: string;
  provider: string;
  requests: number;
  successes: number;
  errors: number;
  costNano: bigint;
}

const MAX_CACHED_SERIES = 10_000;

interface Series {
  route: Record<string, string>;
  genai: Record<string, string>;
  genaiInput: Record<string, string>;
  genaiOutput: Record<string, string>;
  tokens: Record<'input' | 'output' | 'cache_read' | 'cache_write' | 'reasoning', Record<string, string>>;
  /** By outcome|estimated|priced. */
  requests: Map<string, Record<string, string>>;
  /** By error_type. */
  duration: Map<string, Record<string, string>>;
  /** By cache result. */
  cache: Map<string, Record<string, string>>;
  cost: { labels: Record<string, string>; nano: bigint };
}

function memo<V>(map: Map<string, V>, key: string, make: () => V): V {
  let v = map.get(key);
  if (v === undefined) map.set(key, (v = make()));
  return v;
}

/**
 * Meters each finished request: prices its usage, updates Prometheus metrics and writes one
 * usage log line. Money is summed in integer nano-dollars; the cost counter exports the exact
 * decimal value of that integer at scrape time, so metrics and logs agree to the nano-dollar.
 *
 * Pricing happens at once (the response carries the cost); metrics and the log line are
 * published right after the response went out (setImmediate, in batches), so they are off the
 * request's latency. flush() publishes what is pending; scrapes and shutdown call it.
 */
export class UsageMeter implements Meter {
  private readonly costByLabels = new Map<string, { labels: Record<string, string>; nano: bigint }>();
  /** Label sets built once per series: prom-client hashes and checks label objects on every call, and fixed-shape objects make that cheap. */
  private readonly series = new Map<string, Series>();
  readonly targets = new Map<string, TargetStats>();
  private pending: Array<{ r: RequestRecord; costNano: bigint; priced: boolean }> = [];
  private flushScheduled = false;
  private readonly scheduledFlush = () => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(
    private readonly metrics: SidecarMetrics,
    private readonly price: PriceFn,
    private readonly usageLog: Logger,
    private readonly clock: () => Date = () => new Date(),
    /** Called after each published batch: the usage log's buffered lines go out in one write. */
    private readonly afterPublish?: () => void,
  ) {
    const self = this;
    // Re-export exact totals on every scrape instead of accumulating floats.
    (metrics.cost as unknown as { collect?: () => void }).collect = function collect() {
      self.flush();
      metrics.cost.reset();
      for (const { labels, nano } of self.costByLabels.values()) {
        // A series with nothing priced yet stays absent: an unknown price must not read as $0.
        if (nano > 0n) metrics.cost.inc(labels, Number(nano) / 1e9);
      }
    };
    (metrics.costPerSuccess as unknown as { collect?: () => void }).collect = function collect() {
      self.flush();
      metrics.costPerSuccess.reset();
      for (const t of self.targets.values()) {
        if (t.successes > 0) {
          metrics.costPerSuccess.set({ namespace: t.namespace, route: t.route, target: t.target, provider: t.provider }, Number(t.costNano) / 1e9 / t.successes);
        }
      }
    };
  }

  private seriesOf(r: RequestRecord): Series {
    const target = r.target ?? 'none';
    const provider = r.provider ?? 'none';
    const responseModel = r.responseModel ?? r.providerModel ?? 'none';
    const key = `${r.api}\u0000${r.operation}\u0000${r.namespace}\u0000${r.route}\u0000${target}\u0000${provider}\u0000${r.requestModel}\u0000${responseModel}`;
    let s = this.series.get(key);
    if (s) return s;
    // Bounded by configuration, except responseModel, which the provider names: cap the cache.
    if (this.series.size >= MAX_CACHED_SERIES) this.series.clear();
    const route = { namespace: r.namespace, route: r.route, target, provider, model: r.requestModel, api: r.api };
    const genai = {
      gen_ai_operation_name: r.operation === 'chat' ? 'chat' : 'embeddings',
      gen_ai_provider_name: provider,
      gen_ai_request_model: r.requestModel,
      gen_ai_response_model: responseModel,
      namespace: r.namespace,
      route: r.route,
    };
    const costKey = `${r.api}\u0000${r.namespace}\u0000${r.route}\u0000${target}\u0000${provider}\u0000${r.requestModel}`;
    let cost = this.costByLabels.get(costKey);
    if (!cost) this.costByLabels.set(costKey, (cost = { labels: route, nano: 0n }));
    s = {
      route,
      genai,
      genaiInput: { ...genai, gen_ai_token_type: 'input' },
      genaiOutput: { ...genai, gen_ai_token_type: 'output' },
      tokens: { input: { ...route, type: 'input' }, output: { ...route, type: 'output' }, cache_read: { ...route, type: 'cache_read' }, cache_write: { ...route, type: 'cache_write' }, reasoning: { ...route, type: 'reasoning' } },
      requests: new Map(),
      duration: new Map(),
      cache: new Map(),
      cost,
    };
    this.series.set(key, s);
    return s;
  }

  record(r: RequestRecord): MeterResult {
    const at = this.clock();
    let costNano = 0n;
    let priced = false;
    if (r.cache === 'hit') priced = true; // nothing was called: known to cost nothing
    else if (r.usage && r.provider && r.providerModel) {
      const q = this.price(r.provider, r.providerModel, r.usage, r.pricingOverride, at);
      costNano = q.costNano;
      priced = q.known;
    }
    this.pending.push({ r, costNano, priced });
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.scheduledFlush);
    }
    return { costNano, priced };
  }

  /** Publishes the metrics and log lines of every request recorded so far. */
  flush(): void {
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    for (const { r, costNano, priced } of batch) this.publish(r, costNano, priced);
    this.afterPublish?.();
  }

  private publish(r: RequestRecord, costNano: bigint, priced: boolean): void {
    const m = this.metrics;
    const s = this.seriesOf(r);
    const servedByTarget = r.target !== undefined;
    m.requests.inc(memo(s.requests, `${r.outcome}|${r.estimated}|${priced}`, () => ({ ...s.route, outcome: r.outcome, estimated: String(r.estimated), priced: String(priced) })));
    if (costNano > 0n) s.cost.nano += costNano;
    if (r.usage) {
      const u = r.usage;
      m.tokenUsage.observe(s.genaiInput, u.inputTokens);
      if (r.operation === 'chat') m.tokenUsage.observe(s.genaiOutput, u.outputTokens);
      m.tokens.inc(s.tokens.input, u.inputTokens);
      m.tokens.inc(s.tokens.output, u.outputTokens);
      if (u.cacheReadTokens) m.tokens.inc(s.tokens.cache_read, u.cacheReadTokens);
      if (u.cacheWriteTokens) m.tokens.inc(s.tokens.cache_write, u.cacheWriteTokens);
      if (u.reasoningTokens) m.tokens.inc(s.tokens.reasoning, u.reasoningTokens);
    }
    if (r.cache) m.cacheRequests.inc(memo(s.cache, r.cache, () => ({ namespace: r.namespace, route: r.route, result: r.cache! })));
    const errorType = r.outcome === 'success' ? '' : (r.errorType ?? r.outcome);
    m.operationDuration.observe(memo(s.duration, errorType, () => ({ ...s.genai, error_type: errorType })), r.durationMs / 1000);
    if (r.stream && r.ttftMs !== undefined && servedByTarget) m.timeToFirstToken.observe(s.genai, r.ttftMs / 1000);
    if (servedByTarget) {
      const key = `${r.namespace}/${r.route}/${r.target}`;
      let t = this.targets.get(key);
      if (!t) {
        t = { namespace: r.namespace, route: r.route, target: r.target!, provider: r.provider!, requests: 0, successes: 0, errors: 0, costNano: 0n };
        this.targets.set(key, t);
      }
      t.requests++;
      if (r.outcome === 'success') t.successes++;
      else t.errors++;
      t.costNano += costNano;
    }
    this.usageLog.info(
      {
        requestId: r.requestId,
        operation: r.operation,
        api: r.api,
        namespace: r.namespace,
        route: r.route,
        model: r.requestModel,
        target: r.target,
        provider: r.provider,
        providerModel: r.providerModel,
        responseModel: r.responseModel,
        stream: r.stream,
        outcome: r.outcome,
        status: r.status,
        errorType: r.errorType,
        tokens: r.usage
          ? { input: r.usage.inputTokens, output: r.usage.outputTokens, cacheRead: r.usage.cacheReadTokens, cacheWrite: r.usage.cacheWriteTokens, reasoning: r.usage.reasoningTokens }
          : undefined,
        costNanoUsd: priced ? Number(costNano) : null,
        costUsd: priced ? formatUsd(costNano) : null,
        priced,
        estimated: r.estimated,
        attempts: r.attempts,
        cache: r.cache,
        latencyMs: Math.round(r.durationMs * 1000) / 1000,
        ttftMs: r.ttftMs === undefined ? undefined : Math.round(r.ttftMs * 1000) / 1000,
      },
      'usage',
    );
  }
}
