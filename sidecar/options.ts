import { homedir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { formatIssues } from '../crds/src/meta.js';

/** The embedded default config: the standalone example (simulate provider, works offline). */
export const DEFAULT_CONFIG = fileURLToPath(new URL('../../examples/standalone.yaml', import.meta.url));

const OptionsSchema = z.object({
  config: z.string().min(1),
  host: z.string().min(1),
  port: z.coerce.number().int().min(0).max(65535),
  metricsHost: z.string().min(1),
  metricsPort: z.coerce.number().int().min(0).max(65535),
  bodyLimit: z.coerce.number().int().min(1024).max(100 * 1024 * 1024),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  shutdownGraceMs: z.coerce.number().int().min(0).max(600_000),
  seed: z.coerce.number().int().optional(),
  operator: z.url().optional(),
  tokenFile: z.string().min(1),
  operatorCa: z.string().min(1).optional(),
  operatorCaPem: z.string().includes('BEGIN CERTIFICATE').optional(),
  stateDir: z.string().min(1),
  targetReportIntervalMs: z.coerce.number().int().min(100).max(3_600_000),
  otlpEndpoint: z.url({ protocol: /^https?$/ }).optional(),
  responsesTtlSeconds: z.coerce.number().int().min(0).max(30 * 86_400),
  responsesMaxBytes: z.coerce.number().int().min(0).max(4 * 1024 * 1024 * 1024),
});
export type SidecarOptions = z.infer<typeof OptionsSchema>;

/**
 * Memory for stored /v1/responses answers, counted as their JSON length. The heap holds 2.5–3.5×
 * that (make bench, 2026-12-06: a full 64 MiB store took the sidecar's peak RSS 111 → 273 MB, a
 * 16 MiB one to 168 MB), so 16 MiB keeps a sidecar with a full store under the injected 192Mi limit.
 */
export const RESPONSES_MAX_BYTES_DEFAULT = 16 * 1024 * 1024;

export const USAGE = `Usage: paygo-sidecar [options]
  --config FILE          standalone config (multi-document YAML); default: the embedded examples/standalone.yaml
                         (env PAYGO_CONFIG)
  --host HOST            listen address (default 127.0.0.1; env PAYGO_HOST)
  --port N               listen port (default 4000; env PAYGO_PORT)
  --metrics-host HOST    Prometheus listener address (default 0.0.0.0; env PAYGO_METRICS_HOST)
  --metrics-port N       Prometheus listener port, 0 = off (default 9464; env PAYGO_METRICS_PORT)
  --max-body-bytes N     request body limit (default 10485760; env PAYGO_MAX_BODY_BYTES)
  --log-level LEVEL      fatal|error|warn|info|debug|trace|silent (default info; env PAYGO_LOG_LEVEL)
  --shutdown-grace-ms N  how long SIGTERM waits for in-flight requests (default 25000)
  --seed N               seed the routing draws (weighted split, backoff jitter) for reproducible runs
                         (env PAYGO_SEED)
  --operator URL         operator mode: stream config from the operator (https://...) instead of --config
                         (env PAYGO_OPERATOR_URL)
  --token-file FILE      projected ServiceAccount token, audience paygo (default /var/run/secrets/paygo/token;
                         env PAYGO_TOKEN_FILE)
  --operator-ca FILE     CA bundle of the operator's certificate (env PAYGO_OPERATOR_CA, or the PEM itself
                         in PAYGO_OPERATOR_CA_PEM as the injection webhook sets it)
  --state-dir DIR        state: the last good snapshot (operator mode), budget spend (file mode)
                         (default /var/lib/paygo in operator mode, ~/.local/state/paygo otherwise; env PAYGO_STATE_DIR)
  --target-report-interval-ms N
                         operator mode: how often per-target totals go to the operator (default 15000)
  --otlp-endpoint URL    export OpenTelemetry traces over OTLP/HTTP to this base URL (…/v1/traces is added;
                         env PAYGO_OTLP_ENDPOINT; default off, or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT /
                         OTEL_EXPORTER_OTLP_ENDPOINT when set; OTEL_SDK_DISABLED=true turns tracing off)
  --responses-ttl-seconds N
                         how long /v1/responses answers stay retrievable (previous_response_id, item
                         references, GET) (default 86400; 0 = none are kept; env PAYGO_RESPONSES_TTL_SECONDS)
  --responses-max-bytes N
                         memory for them, as their JSON length (the heap holds 2.5–3.5× that); the least
                         recently used go first (default 16777216; env PAYGO_RESPONSES_MAX_BYTES).
                         Kept in <state-dir>/responses too (mode 0600)
  --help                 print this text and exit`;

/** Parses argv and env once into validated options; throws an Error with a readable message. */
export function parseOptions(argv: string[], env: Record<string, string | undefined>): SidecarOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'metrics-host': { type: 'string' },
      'metrics-port': { type: 'string' },
      'max-body-bytes': { type: 'string' },
      'log-level': { type: 'string' },
      'shutdown-grace-ms': { type: 'string' },
      seed: { type: 'string' },
      operator: { type: 'string' },
      'token-file': { type: 'string' },
      'operator-ca': { type: 'string' },
      'state-dir': { type: 'string' },
      'target-report-interval-ms': { type: 'string' },
      'otlp-endpoint': { type: 'string' },
      'responses-ttl-seconds': { type: 'string' },
      'responses-max-bytes': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const parsed = OptionsSchema.safeParse({
    config: values.config ?? env.PAYGO_CONFIG ?? DEFAULT_CONFIG,
    host: values.host ?? env.PAYGO_HOST ?? '127.0.0.1',
    port: values.port ?? env.PAYGO_PORT ?? 4000,
    metricsHost: values['metrics-host'] ?? env.PAYGO_METRICS_HOST ?? '0.0.0.0',
    metricsPort: values['metrics-port'] ?? env.PAYGO_METRICS_PORT ?? 9464,
    bodyLimit: values['max-body-bytes'] ?? env.PAYGO_MAX_BODY_BYTES ?? 10 * 1024 * 1024,
    logLevel: values['log-level'] ?? env.PAYGO_LOG_LEVEL ?? 'info',
    shutdownGraceMs: values['shutdown-grace-ms'] ?? 25_000,
    seed: values.seed ?? env.PAYGO_SEED,
    operator: values.operator ?? env.PAYGO_OPERATOR_URL,
    tokenFile: values['token-file'] ?? env.PAYGO_TOKEN_FILE ?? '/var/run/secrets/paygo/token',
    operatorCa: values['operator-ca'] ?? env.PAYGO_OPERATOR_CA,
    operatorCaPem: env.PAYGO_OPERATOR_CA_PEM || undefined,
    stateDir:
      values['state-dir'] ??
      env.PAYGO_STATE_DIR ??
      (values.operator ?? env.PAYGO_OPERATOR_URL ? '/var/lib/paygo' : join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'paygo')),
    targetReportIntervalMs: values['target-report-interval-ms'] ?? 15_000,
    otlpEndpoint: values['otlp-endpoint'] ?? (env.PAYGO_OTLP_ENDPOINT || undefined),
    responsesTtlSeconds: values['responses-ttl-seconds'] ?? env.PAYGO_RESPONSES_TTL_SECONDS ?? 86_400,
    responsesMaxBytes: values['responses-max-bytes'] ?? env.PAYGO_RESPONSES_MAX_BYTES ?? RESPONSES_MAX_BYTES_DEFAULT,
  });
  if (!parsed.success) throw new Error(`invalid options: ${formatIssues(parsed.error)}`);
  if (parsed.data.operator && values.config) throw new Error('--config and --operator exclude each other');
  return parsed.data;
}
