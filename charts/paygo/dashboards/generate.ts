/**
 * Generates paygo's Grafana dashboards from code (@grafana/grafana-foundation-sdk) and writes
 * them as JSON next to this file: charts/paygo/dashboards/<uid>.json.
 *
 *   node dist/charts/paygo/dashboards/generate.js           # (re)write the JSON files
 *   node dist/charts/paygo/dashboards/generate.js --check   # exit 1 when a file is stale
 *
 * Every query uses the datasource variable `${DS_PROMETHEUS}` (a Grafana `datasource`
 * variable of type prometheus, so the same JSON works when imported by hand and when
 * provisioned from a ConfigMap). Output is deterministic: fixed uids, fixed panel ids, no
 * timestamps; `buildDashboards()` is what the tests compare the checked-in files with.
 *
 * Metric names are those of sidecar/metering/metrics.ts (README "Metrics").
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as bargauge from '@grafana/grafana-foundation-sdk/bargauge';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

export interface GeneratedDashboard {
  /** File name inside charts/paygo/dashboards/. */
  file: string;
  dashboard: dashboard.Dashboard;
}

/** The datasource every panel and query uses: the dashboard's `DS_PROMETHEUS` variable. */
export const DATASOURCE: common.DataSourceRef = { type: 'prometheus', uid: '${DS_PROMETHEUS}' };

// --- query and panel helpers ------------------------------------------------------------------

interface Query {
  expr: string;
  legend: string;
  /** Instant query (one value at the end of the range), for stats and bar gauges. */
  instant?: boolean;
}

function target(q: Query, index = 0): prometheus.DataqueryBuilder {
  const b = new prometheus.DataqueryBuilder().refId(String.fromCharCode(65 + index)).datasource(DATASOURCE).expr(q.expr).legendFormat(q.legend);
  return q.instant ? b.instant() : b.range();
}

interface PanelSpec {
  title: string;
  description: string;
  unit: string;
  queries: Query[];
  /** Grid width (of 24) and height. */
  span?: number;
  height?: number;
}

function timeSeries(p: PanelSpec & { stacked?: boolean; min?: number; max?: number }): timeseries.PanelBuilder {
  const b = new timeseries.PanelBuilder()
    .title(p.title)
    .description(p.description)
    .datasource(DATASOURCE)
    .unit(p.unit)
    .span(p.span ?? 12)
    .height(p.height ?? 8)
    .fillOpacity(p.stacked ? 30 : 10)
    .lineWidth(1)
    .showPoints(common.VisibilityMode.Never)
    .legend(new common.VizLegendOptionsBuilder().showLegend(true).displayMode(common.LegendDisplayMode.Table).placement(common.LegendPlacement.Bottom).calcs(['mean', 'lastNotNull', 'max']))
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
  if (p.stacked) b.stacking(new common.StackingConfigBuilder().mode(common.StackingMode.Normal));
  if (p.min !== undefined) b.min(p.min);
  if (p.max !== undefined) b.max(p.max);
  p.queries.forEach((q, i) => b.withTarget(target(q, i)));
  return b;
}

function statPanel(p: PanelSpec & { decimals?: number }): stat.PanelBuilder {
  const b = new stat.PanelBuilder()
    .title(p.title)
    .description(p.description)
    .datasource(DATASOURCE)
    .unit(p.unit)
    .span(p.span ?? 6)
    .height(p.height ?? 4)
    .graphMode(common.BigValueGraphMode.Area)
    .colorMode(common.BigValueColorMode.Value)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
  if (p.decimals !== undefined) b.decimals(p.decimals);
  p.queries.forEach((q, i) => b.withTarget(target(q, i)));
  return b;
}

function barGauge(p: PanelSpec & { min?: number; max?: number }): bargauge.PanelBuilder {
  const b = new bargauge.PanelBuilder()
    .title(p.title)
    .description(p.description)
    .datasource(DATASOURCE)
    .unit(p.unit)
    .span(p.span ?? 12)
    .height(p.height ?? 8)
    .displayMode(common.BarGaugeDisplayMode.Gradient)
    .orientation(common.VizOrientation.Horizontal)
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).values(false));
  if (p.min !== undefined) b.min(p.min);
  if (p.max !== undefined) b.max(p.max);
  p.queries.forEach((q, i) => b.withTarget(target(q, i)));
  return b;
}

function row(title: string): dashboard.RowBuilder {
  return new dashboard.RowBuilder(title);
}

// --- template variables -------------------------------------------------------------------------

function datasourceVariable(): dashboard.DatasourceVariableBuilder {
  return new dashboard.DatasourceVariableBuilder('DS_PROMETHEUS').label('Data source').type('prometheus');
}

/** A multi-value label variable with "All" = `.*`, filled by `label_values(selector, label)`. */
function labelVariable(name: string, label: string, selector: string): dashboard.QueryVariableBuilder {
  const query = `label_values(${selector}, ${name})`;
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(DATASOURCE)
    .query({ qryType: 1, query, refId: 'PrometheusVariableQueryEditor-VariableQuery' })
    .definition(query)
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .sort(dashboard.VariableSort.AlphabeticalAsc)
    .multi(true)
    .includeAll(true)
    .allValue('.*')
    .current({ selected: true, text: ['All'], value: ['$__all'] });
}

/** A single-value custom variable whose options are `text : value` pairs. */
function customVariable(name: string, label: string, options: Array<{ text: string; value: string }>, selected: string, description: string): dashboard.CustomVariableBuilder {
  const current = options.find((o) => o.text === selected)!;
  return new dashboard.CustomVariableBuilder(name)
    .label(label)
    .description(description)
    .values(options.map((o) => (o.text === o.value ? o.value : `${o.text} : ${o.value}`)).join(','))
    .options(options.map((o) => ({ selected: o.text === selected, text: o.text, value: o.value })))
    .current({ selected: true, text: current.text, value: current.value });
}

function baseDashboard(uid: string, title: string, description: string): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(title)
    .uid(uid)
    .id(null)
    .description(description)
    .tags(['paygo'])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .time({ from: 'now-6h', to: 'now' })
    .refresh('30s')
    .timezone('browser')
    .link(new dashboard.DashboardLinkBuilder('paygo').type(dashboard.DashboardLinkType.Dashboards).tags(['paygo']).asDropdown(true).includeVars(true).keepTime(true))
    .withVariable(datasourceVariable());
}

// --- paygo-cost ---------------------------------------------------------------------------------

/** Label matchers of the namespace/route variables, for the route-labelled metrics. */
const ROUTE_FILTER = 'namespace=~"$namespace", route=~"$route"';
const RATE = '[$__rate_interval]';
/** Rate limits are named namespace/name (or namespace/route/target): filtered by the namespace variable. */
const RATE_LIMIT_FILTER = 'limit=~"($namespace)/.*"';

function costDashboard(): dashboard.Dashboard {
  const f = ROUTE_FILTER;
  const cost = `paygo_cost_usd_total{${f}}`;
  const reqs = (extra = '') => `paygo_requests_total{${f}${extra}}`;
  const perHour = (by: string) => `sum by (${by}) (rate(${cost}${RATE})) * 3600`;
  return baseDashboard('paygo-cost', 'paygo / Cost', 'LLM spend metered by the paygo sidecars: by namespace, route, model and provider; cost per request; tokens; A/B comparison of targets.')
    .withVariable(labelVariable('namespace', 'Namespace', 'paygo_requests_total'))
    .withVariable(labelVariable('route', 'Route', 'paygo_requests_total{namespace=~"$namespace"}'))
    .withRow(row('Spend'))
    .withPanel(
      statPanel({
        title: 'Spend in range',
        description: 'Money spent in the selected time range (exact nano-dollar totals from the sidecars).',
        unit: 'currencyUSD',
        decimals: 4,
        queries: [{ expr: `sum(increase(${cost}[$__range]))`, legend: 'spend', instant: true }],
      }),
    )
    .withPanel(
      statPanel({
        title: 'Spend rate',
        description: 'Current spend rate, in USD per hour.',
        unit: 'currencyUSD',
        decimals: 4,
        queries: [{ expr: `sum(rate(${cost}${RATE})) * 3600`, legend: 'USD/hour' }],
      }),
    )
    .withPanel(
      statPanel({
        title: 'Cost per 1K requests',
        description: 'Spend in the range divided by all requests in the range, times 1000. Requests whose model has no known price count as $0 here: watch "Successful requests with no known price".',
        unit: 'currencyUSD',
        decimals: 4,
        queries: [{ expr: `1000 * sum(increase(${cost}[$__range])) / sum(increase(${reqs()}[$__range]))`, legend: 'per 1K requests', instant: true }],
      }),
    )
    .withPanel(
      statPanel({
        title: 'Successful requests with no known price',
        description: 'Successful requests in the range whose cost is unknown (no catalog price and no pricing override): their spend is missing from every cost panel.',
        unit: 'short',
        decimals: 0,
        queries: [{ expr: `sum(increase(${reqs(', outcome="success", priced="false"')}[$__range]))`, legend: 'unpriced', instant: true }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Spend by namespace (USD/hour)',
        description: 'Spend rate per namespace.',
        unit: 'currencyUSD',
        stacked: true,
        queries: [{ expr: perHour('namespace'), legend: '{{namespace}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Spend by route (USD/hour)',
        description: 'Spend rate per ModelRoute.',
        unit: 'currencyUSD',
        stacked: true,
        queries: [{ expr: perHour('namespace, route'), legend: '{{namespace}}/{{route}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Spend by model (USD/hour)',
        description: 'Spend rate per model name, as the apps send it.',
        unit: 'currencyUSD',
        stacked: true,
        queries: [{ expr: perHour('model'), legend: '{{model}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Spend by provider (USD/hour)',
        description: 'Spend rate per upstream provider.',
        unit: 'currencyUSD',
        stacked: true,
        queries: [{ expr: perHour('provider'), legend: '{{provider}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Spend by API (USD/hour)',
        description: 'Spend rate by the API the apps called: chat (Chat Completions), responses (Responses API), messages (Anthropic Messages API), embeddings.',
        unit: 'currencyUSD',
        stacked: true,
        span: 24,
        queries: [{ expr: perHour('api'), legend: '{{api}}' }],
      }),
    )
    .withPanel(
      barGauge({
        title: 'Spend in range by route',
        description: 'Money spent per ModelRoute in the selected time range.',
        unit: 'currencyUSD',
        span: 12,
        queries: [{ expr: `sort_desc(sum by (namespace, route) (increase(${cost}[$__range])))`, legend: '{{namespace}}/{{route}}', instant: true }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Cost per 1K requests by route',
        description: 'Spend rate divided by request rate, times 1000, per route (all outcomes; unpriced requests count as $0).',
        unit: 'currencyUSD',
        queries: [
          {
            expr: `1000 * sum by (namespace, route) (rate(${cost}${RATE})) / sum by (namespace, route) (rate(${reqs()}${RATE}))`,
            legend: '{{namespace}}/{{route}}',
          },
        ],
      }),
    )
    .withRow(row('Tokens'))
    .withPanel(
      timeSeries({
        title: 'Tokens by type (tokens/s)',
        description: 'input counts every prompt token (cache_read and cache_write are parts of it); output counts every completion token (reasoning is part of it).',
        unit: 'short',
        queries: [{ expr: `sum by (type) (rate(paygo_tokens_total{${f}}${RATE}))`, legend: '{{type}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Tokens per request (p50, p95) by type',
        description: 'Distribution of tokens per operation (OpenTelemetry GenAI gen_ai.client.token.usage).',
        unit: 'short',
        queries: [
          { expr: `histogram_quantile(0.5, sum by (le, gen_ai_token_type) (rate(gen_ai_client_token_usage_bucket{${f}}${RATE})))`, legend: 'p50 {{gen_ai_token_type}}' },
          { expr: `histogram_quantile(0.95, sum by (le, gen_ai_token_type) (rate(gen_ai_client_token_usage_bucket{${f}}${RATE})))`, legend: 'p95 {{gen_ai_token_type}}' },
        ],
      }),
    )
    .withRow(row('A/B comparison of targets'))
    .withPanel(
      timeSeries({
        title: 'Cost per successful response by target',
        description: 'Spend of each target divided by its successful responses, over the rate window, across all sidecars: the A/B comparison of a weighted route.',
        unit: 'currencyUSD',
        queries: [
          {
            expr: `sum by (namespace, route, target, provider) (rate(${cost}${RATE})) / sum by (namespace, route, target, provider) (rate(${reqs(', outcome="success"')}${RATE}))`,
            legend: '{{namespace}}/{{route}} {{target}} ({{provider}})',
          },
        ],
      }),
    )
    .withPanel(
      barGauge({
        title: 'Cost per successful response by target (sidecar lifetime average)',
        description: 'paygo_target_cost_per_success_usd as each sidecar reports it since it started, averaged over sidecars (unweighted). Targets with no known price show $0 here.',
        unit: 'currencyUSD',
        queries: [{ expr: `avg by (namespace, route, target, provider) (paygo_target_cost_per_success_usd{${f}})`, legend: '{{namespace}}/{{route}} {{target}} ({{provider}})', instant: true }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Response cache hit ratio by route',
        description: 'Share of cacheable requests (non-stream, on routes with spec.cache) answered from the sidecar cache: no upstream call, no cost.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [
          {
            expr: `sum by (namespace, route) (rate(paygo_cache_requests_total{${f}, result="hit"}${RATE})) / sum by (namespace, route) (rate(paygo_cache_requests_total{${f}}${RATE}))`,
            legend: '{{namespace}}/{{route}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Traffic share by target',
        description: 'Share of each route\'s requests that each target served (target "none": no target answered).',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [
          {
            expr: `sum by (namespace, route, target) (rate(${reqs()}${RATE})) / on (namespace, route) group_left () sum by (namespace, route) (rate(${reqs()}${RATE}))`,
            legend: '{{namespace}}/{{route}} {{target}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Success ratio by target',
        description: 'Successful responses divided by all requests a target served.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [
          {
            expr: `sum by (namespace, route, target) (rate(${reqs(', outcome="success"')}${RATE})) / sum by (namespace, route, target) (rate(${reqs()}${RATE}))`,
            legend: '{{namespace}}/{{route}} {{target}}',
          },
        ],
      }),
    )
    .build();
}

// --- paygo-traffic ------------------------------------------------------------------------------

function quantiles(metric: string, filter: string, by = ''): Query[] {
  return [0.5, 0.95, 0.99].map((q) => ({
    expr: `histogram_quantile(${q}, sum by (le${by ? `, ${by}` : ''}) (rate(${metric}_bucket{${filter}}${RATE})))`,
    legend: `p${Math.round(q * 100)}`,
  }));
}

function trafficDashboard(): dashboard.Dashboard {
  const f = ROUTE_FILTER;
  const reqs = (extra = '') => `paygo_requests_total{${f}${extra}}`;
  return baseDashboard('paygo-traffic', 'paygo / Traffic and reliability', 'Requests and errors by outcome, latency and time to first token, retries, failovers and circuit breakers of the paygo sidecars.')
    .withVariable(labelVariable('namespace', 'Namespace', 'paygo_requests_total'))
    .withVariable(labelVariable('route', 'Route', 'paygo_requests_total{namespace=~"$namespace"}'))
    .withRow(row('Requests and errors'))
    .withPanel(
      timeSeries({
        title: 'Requests by outcome (req/s)',
        description: 'outcome: success, upstream_error, client_error, client_aborted, stream_error.',
        unit: 'reqps',
        stacked: true,
        queries: [{ expr: `sum by (outcome) (rate(${reqs()}${RATE}))`, legend: '{{outcome}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Errors by outcome (req/s)',
        description: 'Requests that did not succeed, by outcome.',
        unit: 'reqps',
        stacked: true,
        queries: [{ expr: `sum by (outcome) (rate(${reqs(', outcome!="success"')}${RATE}))`, legend: '{{outcome}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Error ratio by route',
        description: 'Share of a route\'s requests that did not succeed (0 when none failed).',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [
          {
            expr: `(sum by (namespace, route) (rate(${reqs(', outcome!="success"')}${RATE})) or 0 * sum by (namespace, route) (rate(${reqs()}${RATE}))) / sum by (namespace, route) (rate(${reqs()}${RATE}))`,
            legend: '{{namespace}}/{{route}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Errors by error type (req/s)',
        description: 'Failed operations by error code (e.g. upstream_failed, no_available_target, upstream_timeout, client_aborted).',
        unit: 'reqps',
        stacked: true,
        queries: [{ expr: `sum by (error_type) (rate(gen_ai_client_operation_duration_seconds_count{${f}, error_type!=""}${RATE}))`, legend: '{{error_type}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Requests by API (req/s)',
        description: 'Request rate by the API the apps called: chat, responses, messages, embeddings.',
        unit: 'reqps',
        stacked: true,
        span: 24,
        queries: [{ expr: `sum by (api) (rate(${reqs()}${RATE}))`, legend: '{{api}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Requests by route (req/s)',
        description: 'Request rate per ModelRoute.',
        unit: 'reqps',
        stacked: true,
        span: 24,
        queries: [{ expr: `sum by (namespace, route) (rate(${reqs()}${RATE}))`, legend: '{{namespace}}/{{route}}' }],
      }),
    )
    .withRow(row('Latency'))
    .withPanel(
      timeSeries({
        title: 'Request duration p50 / p95 / p99 (successful)',
        description: 'gen_ai_client_operation_duration_seconds of successful operations, request in to last byte out.',
        unit: 's',
        queries: quantiles('gen_ai_client_operation_duration_seconds', `${f}, error_type=""`),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Request duration p95 by route (successful)',
        description: 'p95 of gen_ai_client_operation_duration_seconds per route.',
        unit: 's',
        queries: [
          {
            expr: `histogram_quantile(0.95, sum by (le, namespace, route) (rate(gen_ai_client_operation_duration_seconds_bucket{${f}, error_type=""}${RATE})))`,
            legend: '{{namespace}}/{{route}}',
          },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Time to first token p50 / p95 / p99 (streams)',
        description: 'gen_ai_server_time_to_first_token_seconds: time from request to the first chunk reaching the client.',
        unit: 's',
        queries: quantiles('gen_ai_server_time_to_first_token_seconds', f),
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Time to first token p95 by provider (streams)',
        description: 'p95 of gen_ai_server_time_to_first_token_seconds per provider.',
        unit: 's',
        queries: [
          {
            expr: `histogram_quantile(0.95, sum by (le, gen_ai_provider_name) (rate(gen_ai_server_time_to_first_token_seconds_bucket{${f}}${RATE})))`,
            legend: '{{gen_ai_provider_name}}',
          },
        ],
      }),
    )
    .withRow(row('Retries, failovers and circuit breakers'))
    .withPanel(
      timeSeries({
        title: 'Failovers by reason (/s)',
        description: 'Requests moved on from a failing target to the next one. reason: 429, overloaded, 5xx, timeout, connect, protocol, auth.',
        unit: 'short',
        stacked: true,
        queries: [{ expr: `sum by (reason) (rate(paygo_failovers_total{${f}}${RATE}))`, legend: '{{reason}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Retries by reason (/s)',
        description: 'Retries of the same target after a retryable failure.',
        unit: 'short',
        stacked: true,
        queries: [{ expr: `sum by (reason) (rate(paygo_retries_total{${f}}${RATE}))`, legend: '{{reason}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Failovers and retries by target (/s)',
        description: 'Per target that failed (the one left behind on a failover).',
        unit: 'short',
        queries: [
          { expr: `sum by (namespace, route, target) (rate(paygo_failovers_total{${f}}${RATE}))`, legend: 'failover {{namespace}}/{{route}} {{target}}' },
          { expr: `sum by (namespace, route, target) (rate(paygo_retries_total{${f}}${RATE}))`, legend: 'retry {{namespace}}/{{route}} {{target}}' },
        ],
      }),
    )
    .withPanel(
      statPanel({
        title: 'Targets with an open circuit',
        description: 'Targets whose circuit breaker is open or half-open in at least one sidecar.',
        unit: 'short',
        decimals: 0,
        span: 12,
        height: 8,
        queries: [{ expr: `sum(max by (namespace, route, target) (paygo_circuit_open{${f}}))`, legend: 'open circuits' }],
      }),
    )
    .withPanel(
      new statetimeline.PanelBuilder()
        .title('Circuit state by target')
        .description('Open (or half-open) in at least one sidecar, else closed.')
        .datasource(DATASOURCE)
        .span(24)
        .height(8)
        .mappings([
          {
            type: dashboard.MappingType.ValueToText,
            options: { '0': { text: 'closed', color: 'green', index: 0 }, '1': { text: 'open', color: 'red', index: 1 } },
          },
        ])
        .showValue(common.VisibilityMode.Never)
        .withTarget(target({ expr: `max by (namespace, route, target) (paygo_circuit_open{${f}})`, legend: '{{namespace}}/{{route}} {{target}}' })),
    )
    .withRow(row('Rate limits'))
    .withPanel(
      timeSeries({
        title: 'Rate-limit room left',
        description:
          'paygo_ratelimit_remaining: requests or tokens a request could still take from each bucket (kind provider: a target quota, namespace/route/target, or a ProviderQuota; kind consumer: a RateLimit). Each standalone sidecar has its own buckets: the lowest one is shown.',
        unit: 'short',
        min: 0,
        queries: [{ expr: `min by (kind, limit, resource, window) (paygo_ratelimit_remaining{${RATE_LIMIT_FILTER}})`, legend: '{{kind}} {{limit}} {{resource}}/{{window}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Requests held back by rate limits (req/s)',
        description:
          'reason limited: refused with HTTP 429 rate_limit_exceeded; waited: held until a provider quota (or backoff) had room; failed_over: a target was skipped because its provider quota had none. kind provider_backoff: because the provider asked to back off (its rate-limit headers or a 429), limit is the credential reference.',
        unit: 'reqps',
        stacked: true,
        queries: [
          { expr: `sum by (kind, limit, resource, reason) (rate(paygo_ratelimit_limited_requests_total{${RATE_LIMIT_FILTER}}${RATE}))`, legend: '{{reason}} {{kind}} {{limit}} {{resource}}' },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Provider backoffs (seconds left)',
        description:
          'paygo_ratelimit_provider_backoff_seconds: how long each credential (namespace/secret/<secret>/<key>/<provider>/<model>, a Secret reference) is held back because its provider said nothing is left or answered 429 with Retry-After. In operator mode every sidecar of the namespace holds it: the longest is shown.',
        unit: 's',
        min: 0,
        span: 24,
        queries: [{ expr: `max by (limit) (paygo_ratelimit_provider_backoff_seconds{${RATE_LIMIT_FILTER}})`, legend: '{{limit}}' }],
      }),
    )
    .withRow(row('Sidecars'))
    .withPanel(
      barGauge({
        title: 'Sidecars by config version',
        description: 'How many sidecars serve each configuration version (paygo_config_info), e.g. during a rollout.',
        unit: 'short',
        span: 24,
        height: 6,
        queries: [{ expr: 'count by (version, source) (paygo_config_info)', legend: '{{source}} {{version}}', instant: true }],
      }),
    )
    .build();
}

// --- paygo-budgets ------------------------------------------------------------------------------

export type BudgetPeriod = 'daily' | 'weekly' | 'monthly';

/**
 * PromQL for the seconds from evaluation time to the end of the current calendar period, in
 * UTC (PromQL's date functions are UTC). Weeks start on Monday, as in crds/src/period.ts.
 * A Budget with another spec.timeZone ends its period off by that zone's UTC offset.
 */
export const PERIOD_END_SECONDS: Record<BudgetPeriod, string> = {
  daily: '86400 - time() % 86400',
  weekly: '((7 - scalar(day_of_week())) % 7) * 86400 + 86400 - time() % 86400',
  monthly: '(scalar(days_in_month()) - scalar(day_of_month())) * 86400 + 86400 - time() % 86400',
};

function budgetsDashboard(): dashboard.Dashboard {
  const f = 'namespace=~"$namespace", budget=~"$budget"';
  const by = 'namespace, budget, period';
  // Several processes export the same budget: in a cluster the operator exports the fleet-wide
  // spend and every sidecar its own part; a standalone sidecar enforces the limit on its own
  // ledger. The largest spend is the one to watch in both cases (max), never a sum of them.
  const limit = `max by (${by}) (paygo_budget_limit_usd{${f}})`;
  const spent = `max by (${by}) (paygo_budget_spent_usd{${f}})`;
  const reserved = `max by (${by}) (paygo_budget_reserved_usd{${f}})`;
  // predict_linear takes one horizon (a scalar) per query, so each period gets its own branch.
  const forecast = `max by (${by}) (${(['daily', 'weekly', 'monthly'] as const)
    .map((p) => `predict_linear(paygo_budget_spent_usd{${f}, period="${p}"}[$forecast_window], ${PERIOD_END_SECONDS[p]})`)
    .join(' or ')})`;
  const legend = '{{namespace}}/{{budget}} ({{period}})';
  return baseDashboard(
    'paygo-budgets',
    'paygo / Budgets',
    "Budget burn-down: spend against each Budget's limit with a predict_linear forecast to the end of its period, remaining share, reservations, refused and over-limit requests.",
  )
    .withVariable(labelVariable('namespace', 'Namespace', 'paygo_budget_limit_usd'))
    .withVariable(labelVariable('budget', 'Budget', 'paygo_budget_limit_usd{namespace=~"$namespace"}'))
    .withVariable(
      customVariable(
        'forecast_window',
        'Forecast fitted over',
        ['1h', '6h', '24h'].map((w) => ({ text: w, value: w })),
        '6h',
        'How much recent spend predict_linear fits its line to. Right after a period reset, pick a window shorter than the time since the reset.',
      ),
    )
    .withRow(row('Burn-down'))
    .withPanel(
      timeSeries({
        title: 'Spend vs limit, with end-of-period forecast',
        description:
          'Spend in the current period, the limit, and predict_linear of the spend to the end of the period (calendar period in UTC; weeks start on Monday). The largest value any process reports: the operator\'s fleet-wide spend in a cluster, the most-spent sidecar standalone.',
        unit: 'currencyUSD',
        span: 24,
        height: 10,
        queries: [
          { expr: spent, legend: `${legend} spent` },
          { expr: limit, legend: `${legend} limit` },
          { expr: forecast, legend: `${legend} forecast at period end` },
        ],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Remaining budget (burn-down)',
        description: 'Limit minus spend minus reservations (in a cluster: allowance granted to sidecars and not yet spent; standalone: worst case of in-flight requests), in the current period.',
        unit: 'currencyUSD',
        queries: [
          { expr: `${limit} - ${spent} - ${reserved}`, legend: `${legend} remaining` },
          { expr: reserved, legend: `${legend} reserved` },
        ],
      }),
    )
    .withPanel(
      barGauge({
        title: 'Forecast spend at period end (share of limit)',
        description: 'predict_linear of the spend to the end of the period, divided by the limit: above 100% the budget runs out before its period ends.',
        unit: 'percentunit',
        min: 0,
        max: 1.5,
        queries: [{ expr: `${forecast} / ${limit}`, legend, instant: true }],
      }),
    )
    .withPanel(
      barGauge({
        title: 'Remaining share of the limit',
        description: 'paygo_budget_remaining_ratio (neither spent nor reserved; 1 = untouched, 0 = exhausted), the lowest any process reports.',
        unit: 'percentunit',
        min: 0,
        max: 1,
        queries: [{ expr: `min by (${by}) (paygo_budget_remaining_ratio{${f}})`, legend, instant: true }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Time until the limit at the current burn rate',
        description: 'Remaining budget (0 once over the limit) divided by the spend rate (deriv over the forecast window); no value while nothing is spent.',
        unit: 's',
        queries: [{ expr: `clamp_min(${limit} - ${spent}, 0) / (max by (${by}) (deriv(paygo_budget_spent_usd{${f}}[$forecast_window])) > 0)`, legend }],
      }),
    )
    .withRow(row('Refused and over-limit requests'))
    .withPanel(
      timeSeries({
        title: 'Requests refused or downgraded by budget (req/s)',
        description: 'action block: refused with HTTP 429 budget_exceeded; action downgrade: moved to the cheaper route.',
        unit: 'reqps',
        stacked: true,
        queries: [{ expr: `sum by (namespace, budget, action) (rate(paygo_budget_refused_requests_total{${f}}${RATE}))`, legend: '{{namespace}}/{{budget}} {{action}}' }],
      }),
    )
    .withPanel(
      timeSeries({
        title: 'Requests served over an alert-only budget (req/s)',
        description: 'Requests served while a Budget with action alert was over its limit.',
        unit: 'reqps',
        stacked: true,
        queries: [{ expr: `sum by (namespace, budget) (rate(paygo_budget_over_limit_requests_total{${f}}${RATE}))`, legend: '{{namespace}}/{{budget}}' }],
      }),
    )
    .build();
}

// --- build, render, write -----------------------------------------------------------------------

/** Gives panels (rows included) stable ids 1, 2, … in order. */
function finish(d: dashboard.Dashboard): dashboard.Dashboard {
  let id = 0;
  for (const p of d.panels ?? []) p.id = ++id;
  return d;
}

export function buildDashboards(): GeneratedDashboard[] {
  return [
    { file: 'paygo-cost.json', dashboard: finish(costDashboard()) },
    { file: 'paygo-traffic.json', dashboard: finish(trafficDashboard()) },
    { file: 'paygo-budgets.json', dashboard: finish(budgetsDashboard()) },
  ];
}

/** The exact text of a checked-in dashboard file. */
export function renderDashboard(d: dashboard.Dashboard): string {
  return `${JSON.stringify(d, null, 2)}\n`;
}

/** charts/paygo/dashboards of the repository (found from this file, compiled or not). */
export function dashboardsDir(from = import.meta.dirname): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'paygo') return join(dir, 'charts/paygo/dashboards');
    if (dirname(dir) === dir) throw new Error(`no paygo package.json above ${from}`);
  }
}

/** Writes (or with check: compares) every dashboard file; returns the stale file names. */
export function writeDashboards(opts: { dir?: string; check?: boolean } = {}): string[] {
  const dir = opts.dir ?? dashboardsDir();
  const stale: string[] = [];
  for (const { file, dashboard: d } of buildDashboards()) {
    const path = join(dir, file);
    const text = renderDashboard(d);
    const current = existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    if (current === text) continue;
    stale.push(file);
    if (!opts.check) writeFileSync(path, text);
  }
  return stale;
}

function main(argv: string[]): number {
  const check = argv.includes('--check');
  const outIndex = argv.indexOf('--out');
  const dir = outIndex >= 0 ? argv[outIndex + 1] : undefined;
  const unknown = argv.filter((a, i) => a !== '--check' && a !== '--out' && !(outIndex >= 0 && i === outIndex + 1));
  if (unknown.length > 0 || (outIndex >= 0 && !dir)) {
    process.stderr.write('usage: generate.js [--check] [--out DIR]\n');
    return 2;
  }
  const stale = writeDashboards({ dir, check });
  if (check) {
    if (stale.length === 0) return 0;
    process.stderr.write(`stale dashboards (run: node dist/charts/paygo/dashboards/generate.js): ${stale.join(', ')}\n`);
    return 1;
  }
  process.stdout.write(stale.length ? `wrote ${stale.join(', ')}\n` : 'dashboards up to date\n');
  return 0;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.exitCode = main(process.argv.slice(2));
