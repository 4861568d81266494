import { describe, expect, it } from 'vitest';
import { createMetrics } from '../../../sidecar/metering/metrics.js';

/**
 * The sidecar's metric names, types, help, labels and buckets are what dashboards, alerts and
 * the operator's docs rely on (OTel GenAI names where one exists, the `api` label on every
 * route series): pinned here.
 */
const EXPECTED: Record<string, { name: string; type: string; help: string; labelNames: string[]; buckets?: number[] }> = {
  tokenUsage: { name: "gen_ai_client_token_usage", type: 'Histogram', help: "Number of input and output tokens used per operation.", labelNames: ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model", "namespace", "route", "gen_ai_token_type"], buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864] },
  operationDuration: { name: "gen_ai_client_operation_duration_seconds", type: 'Histogram', help: "GenAI operation duration, as seen by the sidecar (request in to last byte out).", labelNames: ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model", "namespace", "route", "error_type"], buckets: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92] },
  timeToFirstToken: { name: "gen_ai_server_time_to_first_token_seconds", type: 'Histogram', help: "Time from request to the first response chunk reaching the client (streams).", labelNames: ["gen_ai_operation_name", "gen_ai_provider_name", "gen_ai_request_model", "gen_ai_response_model", "namespace", "route"], buckets: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] },
  requests: { name: "paygo_requests_total", type: 'Counter', help: "Requests by route, target and outcome; priced=\"false\" marks models with no known price.", labelNames: ["namespace", "route", "target", "provider", "model", "api", "outcome", "estimated", "priced"] },
  cost: { name: "paygo_cost_usd_total", type: 'Counter', help: "Money spent in US dollars (exact: kept in integer nano-dollars and exported as their decimal value).", labelNames: ["namespace", "route", "target", "provider", "model", "api"] },
  tokens: { name: "paygo_tokens_total", type: 'Counter', help: "Tokens by type: input (all prompt tokens), output (all completion tokens), cache_read, cache_write and reasoning (parts of input / output).", labelNames: ["namespace", "route", "target", "provider", "model", "api", "type"] },
  cacheRequests: { name: "paygo_cache_requests_total", type: 'Counter', help: "Requests on routes with a response cache, by result: hit (answered from the cache, no upstream call) or miss.", labelNames: ["namespace", "route", "result"] },
  failovers: { name: "paygo_failovers_total", type: 'Counter', help: "Times a request moved on from a failing target to the next one.", labelNames: ["namespace", "route", "target", "provider", "reason"] },
  retries: { name: "paygo_retries_total", type: 'Counter', help: "Retries of the same target after a retryable failure.", labelNames: ["namespace", "route", "target", "provider", "reason"] },
  circuitOpen: { name: "paygo_circuit_open", type: 'Gauge', help: "1 while the circuit breaker of a target is open or half-open, else 0.", labelNames: ["namespace", "route", "target", "provider"] },
  costPerSuccess: { name: "paygo_target_cost_per_success_usd", type: 'Gauge', help: "Average cost of a successful response per target (for A/B comparison).", labelNames: ["namespace", "route", "target", "provider"] },
  budgetLimit: { name: "paygo_budget_limit_usd", type: 'Gauge', help: "Budget limit per period in USD.", labelNames: ["namespace", "budget", "period"] },
  budgetSpent: { name: "paygo_budget_spent_usd", type: 'Gauge', help: "Spend in the current budget period in USD, as this process knows it.", labelNames: ["namespace", "budget", "period"] },
  budgetReserved: { name: "paygo_budget_reserved_usd", type: 'Gauge', help: "Worst-case cost reserved by in-flight requests in USD.", labelNames: ["namespace", "budget", "period"] },
  budgetRemaining: { name: "paygo_budget_remaining_ratio", type: 'Gauge', help: "Share of the budget limit not yet spent or reserved (0-1).", labelNames: ["namespace", "budget", "period"] },
  budgetRefused: { name: "paygo_budget_refused_requests_total", type: 'Counter', help: "Requests a budget refused (action block) or moved to the cheaper route (action downgrade).", labelNames: ["namespace", "budget", "action"] },
  budgetOverLimit: { name: "paygo_budget_over_limit_requests_total", type: 'Counter', help: "Requests served while an alert-only budget was over its limit.", labelNames: ["namespace", "budget"] },
  rateLimitRemaining: { name: "paygo_ratelimit_remaining", type: 'Gauge', help: "What a rate-limit bucket holds now: requests or tokens a request could still take (provider quotas and consumer RateLimits; standalone only so far).", labelNames: ["kind", "limit", "resource", "window"] },
  rateLimited: { name: "paygo_ratelimit_limited_requests_total", type: 'Counter', help: "Requests a rate limit refused (limited), held until a provider quota had room (waited), or sent past a target whose provider quota had none (failed_over); kind provider_backoff: because the provider asked to back off.", labelNames: ["kind", "limit", "resource", "reason"] },
  rateLimitBackoff: { name: "paygo_ratelimit_provider_backoff_seconds", type: 'Gauge', help: "Seconds until a credential may be sent to again, as its provider asked (rate-limit headers or a 429 Retry-After, seen by this sidecar or, in operator mode, by another of the namespace); limit is the credential reference, never a key.", labelNames: ["limit"] },
  configInfo: { name: "paygo_config_info", type: 'Gauge', help: "The configuration version the sidecar serves (value 1).", labelNames: ["version", "source"] },
};

describe('createMetrics', () => {
  it('declares every metric with its name, type, help, labels and buckets', () => {
    const m = createMetrics({ defaultMetrics: false });
    const got: Record<string, unknown> = {};
    for (const [key, metric] of Object.entries(m)) {
      if (key === 'registry') continue;
      const x = metric as unknown as { name: string; help: string; labelNames: string[]; upperBounds?: number[] };
      got[key] = { name: x.name, type: metric.constructor.name, help: x.help, labelNames: x.labelNames, ...(x.upperBounds ? { buckets: x.upperBounds } : {}) };
    }
    expect(got).toEqual(EXPECTED);
    // every one of them on the private registry, nothing else
    expect(
      m.registry
        .getMetricsAsArray()
        .map((x) => x.name)
        .sort(),
    ).toEqual(Object.values(EXPECTED).map((e) => e.name).sort());
  });

  it('with the default metrics, without the *_total gauges promtool rejects', async () => {
    const names = createMetrics()
      .registry.getMetricsAsArray()
      .map((x) => x.name);
    expect(names).toContain('process_cpu_user_seconds_total');
    expect(names).toContain('nodejs_active_handles');
    expect(names).toContain('nodejs_active_requests');
    expect(names).toContain('nodejs_active_resources');
    expect(names).not.toContain('nodejs_active_handles_total');
    expect(names).not.toContain('nodejs_active_requests_total');
    expect(names).not.toContain('nodejs_active_resources_total');
    expect(createMetrics({}).registry.getMetricsAsArray().map((x) => x.name)).toContain('nodejs_active_handles');
  });
});
