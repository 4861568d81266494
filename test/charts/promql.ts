/**
 * Helpers for the dashboard tests: walk a Grafana dashboard's panels and queries, pull metric
 * names and template variables out of PromQL, substitute variables, and read which metrics the
 * sidecar exports (sidecar/metering/metrics.ts) and documents (README "Metrics").
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Dashboard, Panel, RowPanel, VariableModel } from '@grafana/grafana-foundation-sdk/dashboard';
import { ROOT } from '../support/sidecar-process.js';

export interface PanelQuery {
  panel: string;
  refId: string;
  expr: string;
  instant: boolean;
}

/** Every non-row panel, including those nested in collapsed rows. */
export function panelsOf(d: Dashboard): Panel[] {
  const out: Panel[] = [];
  for (const p of d.panels ?? []) {
    if (p.type === 'row') out.push(...((p as RowPanel).panels ?? []));
    else out.push(p as Panel);
  }
  return out;
}

export function queriesOf(d: Dashboard): PanelQuery[] {
  return panelsOf(d).flatMap((p) =>
    (p.targets ?? []).map((t) => {
      const q = t as { refId?: string; expr?: string; instant?: boolean };
      return { panel: p.title ?? '', refId: q.refId ?? '', expr: q.expr ?? '', instant: q.instant === true };
    }),
  );
}

export function variablesOf(d: Dashboard): VariableModel[] {
  return d.templating?.list ?? [];
}

/** Variables Grafana itself defines. */
export const BUILTIN_VARIABLES = new Set(['__rate_interval', '__interval', '__interval_ms', '__range', '__range_s', '__range_ms', '__from', '__to', '__dashboard', '__org', '__user']);

const VARIABLE = /\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]/g;

/** Names of the template variables an expression uses ($x, ${x}, ${x:fmt}, [[x]]). */
export function variablesIn(expr: string): string[] {
  return [...new Set([...expr.matchAll(VARIABLE)].map((m) => (m[1] ?? m[2] ?? m[3])!))];
}

/** Replaces every template variable with its value; throws on one without a value. */
export function substitute(expr: string, values: Record<string, string>): string {
  return expr.replace(VARIABLE, (whole, a?: string, b?: string, c?: string) => {
    const name = (a ?? b ?? c)!;
    const v = values[name];
    if (v === undefined) throw new Error(`no value for variable ${whole} in ${expr}`);
    return v;
  });
}

const KEYWORDS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan', 'start', 'end']);

/**
 * Metric names in a PromQL expression: identifiers that are not functions or aggregations
 * (followed by "("), keywords, label names (inside {…} or grouping clauses), durations
 * (inside […]), strings or template variables.
 */
export function metricNames(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""') // strings
    .replace(VARIABLE, ' ') // template variables
    .replace(/\{[^}]*\}/g, ' ') // label matchers
    .replace(/\[[^\]]*\]/g, ' ') // ranges and subqueries
    .replace(/\boffset\s+-?[0-9a-z]+|@\s*(?:start\(\)|end\(\)|[0-9.]+)/gi, ' ') // offset and @ modifiers
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' '); // label lists
  s = s.replace(/\b\d+(?:\.\d+)?(?:e[+-]?\d+)?\b/gi, ' '); // numbers
  const names = new Set<string>();
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const rest = s.slice(m.index + m[0].length);
    if (/^\s*\(/.test(rest)) continue; // function or aggregation
    if (KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  return [...names].sort();
}

export interface KnownMetric {
  name: string;
  type: string;
}

/** Metrics sidecar/metering/metrics.ts registers (name and prom-client class). */
export function exportedMetrics(): KnownMetric[] {
  const src = readFileSync(join(ROOT, 'sidecar/metering/metrics.ts'), 'utf8');
  return [...src.matchAll(/new (Counter|Gauge|Histogram|Summary)\(\{\s*name: '([a-z_:][a-z0-9_:]*)'/g)].map((m) => ({ name: m[2]!, type: m[1]!.toLowerCase() }));
}

/** Metrics the README "Metrics" table documents. */
export function documentedMetrics(): KnownMetric[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('### Metrics'));
  const table = section.slice(0, section.search(/\n#{1,3} /) >= 0 ? section.search(/\n#{1,3} /) : undefined);
  // Rows: | `name` (or `a`, `b`, …) | type | labels | meaning |
  return [...table.matchAll(/^\| ((?:`[a-z_:][a-z0-9_:]*`(?:, )?)+) \| (\w+) \|/gm)].flatMap((m) =>
    [...m[1]!.matchAll(/`([^`]+)`/g)].map((n) => ({ name: n[1]!, type: m[2]! })),
  );
}

/** The series names a metric has in the exposition format (histograms: _bucket, _sum, _count). */
export function seriesNames(m: KnownMetric): string[] {
  return m.type === 'histogram' ? [`${m.name}_bucket`, `${m.name}_sum`, `${m.name}_count`] : [m.name];
}
