import type { Logger } from 'pino';
import type { ProviderName, Pricing } from '../../crds/src/index.js';
import type { Usage } from '../usage.js';
import type { SidecarMetrics } from './metrics.js';
import { formatUsd } from './money.js';
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

/**
 * Meters each finished request: prices its usage, updates Prometheus metrics and writes one
 * usage log line. Money is summed in integer nano-dollars; the cost counter exports the exact
 * decimal value of that integer at scrape time, so metrics and logs agree to the nano-dollar.
 */
export class UsageMeter implements Meter {
  private readonly costByLabels = new Map<string, { labels: Record<string, string>; nano: bigint }>();
  readonly targets = new Map<string, TargetStats>();

  constructor(
    private readonly metrics: SidecarMetrics,
    private readonly price: PriceFn,
    private readonly usageLog: Logger,
    private readonly clock: () => Date = () => new Date(),
  ) {
    const self = this;
    // Re-export exact totals on every scrape instead of accumulating floats.
    (metrics.cost as unknown as { collect?: () => void }).collect = function collect() {
      metrics.cost.reset();
      for (const { labels, nano } of self.costByLabels.values()) metrics.cost.inc(labels, Number(nano) / 1e9);
    };
    (metrics.costPerSuccess as unknown as { collect?: () => void }).collect = function collect() {
      metrics.costPerSuccess.reset();
      for (const t of self.targets.values()) {
        if (t.successes > 0) {
          metrics.costPerSuccess.set({ namespace: t.namespace, route: t.route, target: t.target, provider: t.provider }, Number(t.costNano) / 1e9 / t.successes);
        }
      }
    };
  }

  record(r: RequestRecord): MeterResult {
    const at = this.clock();
    let costNano = 0n;
    let priced = false;
    if (r.usage && r.provider && r.providerModel) {
      const q = this.price(r.provider, r.providerModel, r.usage, r.pricingOverride, at);
      costNano = q.costNano;
      priced = q.known;
    }
    const labels = {
      namespace: r.namespace,
      route: r.route,
      target: r.target ?? 'none',
      provider: r.provider ?? 'none',
      model: r.requestModel,
    };
    const m = this.metrics;
    const servedByTarget = r.target !== undefined;
    m.requests.inc({ ...labels, outcome: r.outcome, estimated: String(r.estimated), priced: String(priced) });
    if (costNano > 0n) {
      const key = `${labels.namespace}\u0000${labels.route}\u0000${labels.target}\u0000${labels.provider}\u0000${labels.model}`;
      const entry = this.costByLabels.get(key);
      if (entry) entry.nano += costNano;
      else this.costByLabels.set(key, { labels, nano: costNano });
    }
    const genai = {
      gen_ai_operation_name: r.operation === 'chat' ? 'chat' : 'embeddings',
      gen_ai_provider_name: r.provider ?? 'none',
      gen_ai_request_model: r.requestModel,
      gen_ai_response_model: r.responseModel ?? r.providerModel ?? 'none',
      namespace: r.namespace,
      route: r.route,
    };
    if (r.usage) {
      const u = r.usage;
      m.tokenUsage.observe({ ...genai, gen_ai_token_type: 'input' }, u.inputTokens);
      if (r.operation === 'chat') m.tokenUsage.observe({ ...genai, gen_ai_token_type: 'output' }, u.outputTokens);
      m.tokens.inc({ ...labels, type: 'input' }, u.inputTokens);
      m.tokens.inc({ ...labels, type: 'output' }, u.outputTokens);
      if (u.cacheReadTokens) m.tokens.inc({ ...labels, type: 'cache_read' }, u.cacheReadTokens);
      if (u.cacheWriteTokens) m.tokens.inc({ ...labels, type: 'cache_write' }, u.cacheWriteTokens);
      if (u.reasoningTokens) m.tokens.inc({ ...labels, type: 'reasoning' }, u.reasoningTokens);
    }
    m.operationDuration.observe({ ...genai, error_type: r.outcome === 'success' ? '' : (r.errorType ?? r.outcome) }, r.durationMs / 1000);
    if (r.stream && r.ttftMs !== undefined && servedByTarget) m.timeToFirstToken.observe(genai, r.ttftMs / 1000);
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
        latencyMs: Math.round(r.durationMs * 1000) / 1000,
        ttftMs: r.ttftMs === undefined ? undefined : Math.round(r.ttftMs * 1000) / 1000,
      },
      'usage',
    );
    return { costNano, priced };
  }
}
