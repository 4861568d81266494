import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The sidecar's Prometheus metrics, on a private Registry. Names follow the OpenTelemetry GenAI
 * semantic conventions where one exists (gen_ai_*), paygo_* otherwise. Every label is bounded
 * by configuration (namespace, route, target, provider, model) or by an enum — never user content.
 */
// api: the API the request came in on (chat, responses, messages, embeddings).
const ROUTE_LABELS = ['namespace', 'route', 'target', 'provider', 'model', 'api'] as const;
const GENAI_LABELS = ['gen_ai_operation_name', 'gen_ai_provider_name', 'gen_ai_request_model', 'gen_ai_response_model', 'namespace', 'route'] as const;

export type SidecarMetrics = ReturnType<typeof createMetrics>;

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) {
    collectDefaultMetrics({ register: registry });
    // prom-client names these gauges *_total, which Prometheus reserves for counters
    // (promtool check metrics rejects them); their *_total-free twins stay.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  }
  return {
    registry,
    tokenUsage: new Histogram({
      name: 'gen_ai_client_token_usage',
      help: 'Number of input and output tokens used per operation.',
      labelNames: [...GENAI_LABELS, 'gen_ai_token_type'],
      // OTel GenAI advisory buckets.
      buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864],
      registers: [registry],
    }),
    operationDuration: new Histogram({
      name: 'gen_ai_client_operation_duration_seconds',
      help: 'GenAI operation duration, as seen by the sidecar (request in to last byte out).',
      labelNames: [...GENAI_LABELS, 'error_type'],
      buckets: [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92],
      registers: [registry],
    }),
    timeToFirstToken: new Histogram({
      name: 'gen_ai_server_time_to_first_token_seconds',
      help: 'Time from request to the first response chunk reaching the client (streams).',
      labelNames: [...GENAI_LABELS],
      buckets: [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10],
      registers: [registry],
    }),
    requests: new Counter({
      name: 'paygo_requests_total',
      help: 'Requests by route, target and outcome; priced="false" marks models with no known price.',
      labelNames: [...ROUTE_LABELS, 'outcome', 'estimated', 'priced'],
      registers: [registry],
    }),
    cost: new Counter({
      name: 'paygo_cost_usd_total',
      help: 'Money spent in US dollars (exact: kept in integer nano-dollars and exported as their decimal value).',
      labelNames: [...ROUTE_LABELS],
      registers: [registry],
    }),
    tokens: new Counter({
      name: 'paygo_tokens_total',
      help: 'Tokens by type: input (all prompt tokens), output (all completion tokens), cache_read, cache_write and reasoning (parts of input / output).',
      labelNames: [...ROUTE_LABELS, 'type'],
      registers: [registry],
    }),
    cacheRequests: new Counter({
      name: 'paygo_cache_requests_total',
      help: 'Requests on routes with a response cache, by result: hit (answered from the cache, no upstream call) or miss.',
      labelNames: ['namespace', 'route', 'result'],
      registers: [registry],
    }),
    failovers: new Counter({
      name: 'paygo_failovers_total',
      help: 'Times a request moved on from a failing target to the next one.',
      labelNames: ['namespace', 'route', 'target', 'provider', 'reason'],
      registers: [registry],
    }),
    retries: new Counter({
      name: 'paygo_retries_total',
      help: 'Retries of the same target after a retryable failure.',
      labelNames: ['namespace', 'route', 'target', 'provider', 'reason'],
      registers: [registry],
    }),
    circuitOpen: new Gauge({
      name: 'paygo_circuit_open',
      help: '1 while the circuit breaker of a target is open or half-open, else 0.',
      labelNames: ['namespace', 'route', 'target', 'provider'],
      registers: [registry],
    }),
    costPerSuccess: new Gauge({
      name: 'paygo_target_cost_per_success_usd',
      help: 'Average cost of a successful response per target (for A/B comparison).',
      labelNames: ['namespace', 'route', 'target', 'provider'],
      registers: [registry],
    }),
    budgetLimit: new Gauge({ name: 'paygo_budget_limit_usd', help: 'Budget limit per period in USD.', labelNames: ['namespace', 'budget', 'period'], registers: [registry] }),
    budgetSpent: new Gauge({ name: 'paygo_budget_spent_usd', help: 'Spend in the current budget period in USD, as this process knows it.', labelNames: ['namespace', 'budget', 'period'], registers: [registry] }),
    budgetReserved: new Gauge({ name: 'paygo_budget_reserved_usd', help: 'Worst-case cost reserved by in-flight requests in USD.', labelNames: ['namespace', 'budget', 'period'], registers: [registry] }),
    budgetRemaining: new Gauge({ name: 'paygo_budget_remaining_ratio', help: 'Share of the budget limit not yet spent or reserved (0-1).', labelNames: ['namespace', 'budget', 'period'], registers: [registry] }),
    budgetRefused: new Counter({
      name: 'paygo_budget_refused_requests_total',
      help: 'Requests a budget refused (action block) or moved to the cheaper route (action downgrade).',
      labelNames: ['namespace', 'budget', 'action'],
      registers: [registry],
    }),
    budgetOverLimit: new Counter({
      name: 'paygo_budget_over_limit_requests_total',
      help: 'Requests served while an alert-only budget was over its limit.',
      labelNames: ['namespace', 'budget'],
      registers: [registry],
    }),
    rateLimitRemaining: new Gauge({
      name: 'paygo_ratelimit_remaining',
      help: 'What a rate-limit bucket holds now: requests or tokens a request could still take (provider quotas and consumer RateLimits; standalone only so far).',
      labelNames: ['kind', 'limit', 'resource', 'window'],
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'paygo_ratelimit_limited_requests_total',
      help: 'Requests a rate limit refused (limited), held until a provider quota had room (waited), or sent past a target whose provider quota had none (failed_over); kind provider_backoff: because the provider asked to back off.',
      labelNames: ['kind', 'limit', 'resource', 'reason'],
      registers: [registry],
    }),
    rateLimitBackoff: new Gauge({
      name: 'paygo_ratelimit_provider_backoff_seconds',
      help: 'Seconds until a credential may be sent to again, as its provider asked (rate-limit headers or a 429 Retry-After, seen by this sidecar or, in operator mode, by another of the namespace); limit is the credential reference, never a key.',
      labelNames: ['limit'],
      registers: [registry],
    }),
    configInfo: new Gauge({
      name: 'paygo_config_info',
      help: 'The configuration version the sidecar serves (value 1).',
      labelNames: ['version', 'source'],
      registers: [registry],
    }),
  };
}
