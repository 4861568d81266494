import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../sidecar-process.js';

/**
 * A real Jaeger (v2, all-in-one, in-memory storage) built from its Go module by install.sh,
 * with its OTLP/HTTP receiver and query API on free 127.0.0.1 ports (and nothing else listening).
 */
export interface Jaeger {
  /** OTLP/HTTP base URL (…/v1/traces is the traces path). */
  otlpUrl: string;
  /** Query API base URL. */
  queryUrl: string;
  /** The trace's spans as Jaeger returns them (API v3, OTLP JSON), once `until` holds (bounded wait). */
  trace(traceId: string, until: (spans: OtlpSpan[]) => boolean, timeoutMs?: number): Promise<OtlpSpan[]>;
  stop(): Promise<void>;
}

export interface OtlpValue {
  stringValue?: string;
  intValue?: string;
  doubleValue?: number;
  boolValue?: boolean;
  arrayValue?: { values?: OtlpValue[] };
}

export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes?: Array<{ key: string; value: OtlpValue }>;
  events?: Array<{ name: string; attributes?: Array<{ key: string; value: OtlpValue }> }>;
  status?: { code?: number; message?: string };
  /** The resource's attributes, copied onto each span here. */
  resource: Record<string, unknown>;
}

/** OTLP span kinds (SPAN_KIND_SERVER, SPAN_KIND_CLIENT). */
export const SPAN_KIND = { server: 2, client: 3 } as const;
/** OTLP status codes. */
export const STATUS = { unset: 0, ok: 1, error: 2 } as const;

/** A span's attributes as plain values (arrays as arrays, int64 as numbers). */
export function attrs(span: Pick<OtlpSpan, 'attributes'>): Record<string, unknown> {
  return Object.fromEntries((span.attributes ?? []).filter((a) => !a.key.startsWith('@jaeger@')).map((a) => [a.key, plain(a.value)]));
}

function plain(v: OtlpValue): unknown {
  if (v.stringValue !== undefined) return v.stringValue;
  if (v.intValue !== undefined) return Number(v.intValue);
  if (v.doubleValue !== undefined) return v.doubleValue;
  if (v.boolValue !== undefined) return v.boolValue;
  if (v.arrayValue) return (v.arrayValue.values ?? []).map(plain);
  return undefined;
}

/** The cached Jaeger binary's path (builds it on first use: see install.sh). */
export function jaegerBinary(): string {
  return execFileSync(join(import.meta.dirname, 'install.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
}

export async function startJaeger(): Promise<Jaeger> {
  const bin = jaegerBinary();
  const [otlp, query, grpc] = [await freePort(), await freePort(), await freePort()];
  const dir = mkdtempSync(join(tmpdir(), 'paygo-jaeger-'));
  const config = join(dir, 'config.yaml');
  // Only the OTLP/HTTP receiver and the query API (HTTP, and its gRPC port, which Jaeger always
  // opens), all on 127.0.0.1; no internal metrics listener; spans batched for 50 ms at most.
  writeFileSync(
    config,
    `service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces: { receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter] }
  telemetry:
    metrics: { level: none }
    logs: { level: warn }
extensions:
  jaeger_query:
    storage: { traces: memstore }
    http: { endpoint: 127.0.0.1:${query} }
    grpc: { endpoint: 127.0.0.1:${grpc} }
  jaeger_storage:
    backends:
      memstore: { memory: { max_traces: 10000 } }
receivers:
  otlp:
    protocols:
      http: { endpoint: 127.0.0.1:${otlp} }
processors:
  batch: { timeout: 50ms }
exporters:
  jaeger_storage_exporter: { trace_storage: memstore }
`,
  );
  const child = spawn(bin, ['--config', `file:${config}`], { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } });
  let output = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (output += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (output += d));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const queryUrl = `http://127.0.0.1:${query}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`jaeger exited (${child.exitCode}):\n${output}`);
    try {
      const res = await fetch(`${queryUrl}/api/services`);
      if (res.ok) break;
    } catch {
      /* not listening yet */
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`jaeger did not become ready in 30 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    otlpUrl: `http://127.0.0.1:${otlp}`,
    queryUrl,
    async trace(traceId, until, timeoutMs = 15_000) {
      const end = Date.now() + timeoutMs;
      let spans: OtlpSpan[] = [];
      for (;;) {
        const res = await fetch(`${queryUrl}/api/v3/traces/${traceId}`);
        if (res.ok) {
          const body = (await res.json()) as { result?: { resourceSpans?: Array<{ resource?: { attributes?: OtlpSpan['attributes'] }; scopeSpans?: Array<{ spans?: Omit<OtlpSpan, 'resource'>[] }> }> } };
          spans = (body.result?.resourceSpans ?? []).flatMap((rs) => (rs.scopeSpans ?? []).flatMap((ss) => (ss.spans ?? []).map((s) => ({ ...s, resource: attrs({ attributes: rs.resource?.attributes }) }))));
          if (until(spans)) return spans;
        }
        if (Date.now() > end) throw new Error(`trace ${traceId}: the expected spans did not arrive in ${timeoutMs} ms; got ${JSON.stringify(spans.map((s) => s.name))}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async stop() {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
