import { hostname } from 'node:os';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { formatIssues } from '../crds/src/index.js';
import { DEFAULT_SIDECAR_RESOURCES } from './webhook.js';

/** A Kubernetes resource quantity such as 50m, 96Mi or 0.5 (the API server's own syntax). */
const quantity = z.string().regex(/^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$/, 'must be a Kubernetes quantity such as 50m or 96Mi');

/** The variables --sidecar-otel-env may set in injected sidecars. */
const OTEL_ENV_NAME = /^OTEL_[A-Z0-9_]+$/;

const OptionsSchema = z.object({
  kubeconfig: z.string().optional(),
  namespace: z.string().min(1),
  listenHost: z.string().min(1),
  listenPort: z.coerce.number().int().min(0).max(65535),
  healthHost: z.string().min(1),
  healthPort: z.coerce.number().int().min(0).max(65535),
  identity: z.string().min(1),
  leaderElect: z.boolean(),
  leaseName: z.string().min(1),
  tlsSecret: z.string().min(1),
  tlsCertFile: z.string().optional(),
  tlsKeyFile: z.string().optional(),
  tlsCaFile: z.string().optional(),
  serviceName: z.string().min(1),
  tlsSans: z.array(z.string().min(1)),
  logLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  sidecarImage: z.string().min(1),
  sidecarImagePullPolicy: z.enum(['Always', 'IfNotPresent', 'Never']).optional(),
  sidecarLogLevel: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).optional(),
  sidecarCpuRequest: quantity,
  sidecarMemoryRequest: quantity,
  sidecarMemoryLimit: quantity,
  sidecarOtlpEndpoint: z.url({ protocol: /^https?$/ }).optional(),
  sidecarOtelEnv: z.record(z.string().regex(OTEL_ENV_NAME), z.string()),
  operatorURL: z.url().optional(),
  webhookConfigName: z.string().min(1).optional(),
});
export type OperatorOptions = z.infer<typeof OptionsSchema>;

export const USAGE = `Usage: paygo-operator [options]
  --kubeconfig FILE       kubeconfig (default: KUBECONFIG, ~/.kube/config, or in-cluster)
  --namespace NS          the operator's own namespace: Lease and TLS Secret (default: POD_NAMESPACE or paygo-system)
  --listen HOST:PORT      config distribution (HTTPS) listener (default 0.0.0.0:8443)
  --health HOST:PORT      /healthz, /readyz, /metrics listener (default 0.0.0.0:8081)
  --identity ID           leader election identity (default: POD_NAME or hostname)
  --leader-elect BOOL     elect a leader with a Lease (default true)
  --lease-name NAME       Lease name (default paygo-operator)
  --tls-secret NAME       Secret holding the self-managed CA and serving certificate (default paygo-operator-tls)
  --tls-cert-file FILE    serving certificate to use instead (with --tls-key-file, optional --tls-ca-file)
  --service-name NAME     Service name the certificate covers (default paygo-operator)
  --tls-san NAME          extra certificate name or IP (repeatable; 127.0.0.1 and localhost always)
  --log-level LEVEL       fatal|error|warn|info|debug|trace|silent (default info)
  --sidecar-image IMAGE   image of the injected sidecar (default ghcr.io/paygo-dev/paygo-sidecar:0.1.0)
  --sidecar-image-pull-policy POLICY   Always|IfNotPresent|Never (default: the cluster's)
  --sidecar-log-level L   log level of injected sidecars
  --sidecar-cpu-request Q     CPU request of injected sidecars (default 50m; no CPU limit is set)
  --sidecar-memory-request Q  memory request of injected sidecars (default 96Mi: the measured idle RSS)
  --sidecar-memory-limit Q    memory limit of injected sidecars (default 192Mi: the measured peak RSS under load + 20%)
  --sidecar-otlp-endpoint URL  injected sidecars export OpenTelemetry traces over OTLP/HTTP to this base URL
                          (their PAYGO_OTLP_ENDPOINT; default: off)
  --sidecar-otel-env NAME=VALUE  an OTEL_* variable for injected sidecars, e.g. OTEL_TRACES_SAMPLER_ARG=0.1 (repeatable)
  --operator-url URL      URL injected sidecars stream from (default https://<service-name>.<namespace>.svc:8443)
  --webhook-config-name N MutatingWebhookConfiguration whose caBundle the operator keeps set to its CA`;

function hostPort(v: string, what: string): [string, string] {
  const i = v.lastIndexOf(':');
  if (i <= 0) throw new Error(`${what} must be HOST:PORT, got "${v}"`);
  return [v.slice(0, i), v.slice(i + 1)];
}

export function parseOptions(argv: string[], env: Record<string, string | undefined>): OperatorOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    options: {
      kubeconfig: { type: 'string' },
      namespace: { type: 'string' },
      listen: { type: 'string' },
      health: { type: 'string' },
      identity: { type: 'string' },
      'leader-elect': { type: 'string' },
      'lease-name': { type: 'string' },
      'tls-secret': { type: 'string' },
      'tls-cert-file': { type: 'string' },
      'tls-key-file': { type: 'string' },
      'tls-ca-file': { type: 'string' },
      'service-name': { type: 'string' },
      'tls-san': { type: 'string', multiple: true },
      'log-level': { type: 'string' },
      'sidecar-image': { type: 'string' },
      'sidecar-image-pull-policy': { type: 'string' },
      'sidecar-log-level': { type: 'string' },
      'sidecar-cpu-request': { type: 'string' },
      'sidecar-memory-request': { type: 'string' },
      'sidecar-memory-limit': { type: 'string' },
      'sidecar-otlp-endpoint': { type: 'string' },
      'sidecar-otel-env': { type: 'string', multiple: true },
      'operator-url': { type: 'string' },
      'webhook-config-name': { type: 'string' },
      help: { type: 'boolean' },
    },
    strict: true,
  });
  if (values.help) return 'help';
  const [listenHost, listenPort] = hostPort(values.listen ?? '0.0.0.0:8443', '--listen');
  const [healthHost, healthPort] = hostPort(values.health ?? '0.0.0.0:8081', '--health');
  const leaderElect = (values['leader-elect'] ?? 'true').toLowerCase();
  if (leaderElect !== 'true' && leaderElect !== 'false') throw new Error('--leader-elect must be true or false');
  const parsed = OptionsSchema.safeParse({
    kubeconfig: values.kubeconfig ?? env.KUBECONFIG,
    namespace: values.namespace ?? env.POD_NAMESPACE ?? 'paygo-system',
    listenHost,
    listenPort,
    healthHost,
    healthPort,
    identity: values.identity ?? env.POD_NAME ?? hostname(),
    leaderElect: leaderElect === 'true',
    leaseName: values['lease-name'] ?? 'paygo-operator',
    tlsSecret: values['tls-secret'] ?? 'paygo-operator-tls',
    tlsCertFile: values['tls-cert-file'],
    tlsKeyFile: values['tls-key-file'],
    tlsCaFile: values['tls-ca-file'],
    serviceName: values['service-name'] ?? 'paygo-operator',
    tlsSans: values['tls-san'] ?? [],
    logLevel: values['log-level'] ?? env.PAYGO_LOG_LEVEL ?? 'info',
    sidecarImage: values['sidecar-image'] ?? 'ghcr.io/paygo-dev/paygo-sidecar:0.1.0',
    sidecarImagePullPolicy: values['sidecar-image-pull-policy'],
    sidecarLogLevel: values['sidecar-log-level'],
    sidecarCpuRequest: values['sidecar-cpu-request'] ?? DEFAULT_SIDECAR_RESOURCES.requests!.cpu,
    sidecarMemoryRequest: values['sidecar-memory-request'] ?? DEFAULT_SIDECAR_RESOURCES.requests!.memory,
    sidecarMemoryLimit: values['sidecar-memory-limit'] ?? DEFAULT_SIDECAR_RESOURCES.limits!.memory,
    sidecarOtlpEndpoint: values['sidecar-otlp-endpoint'] || undefined,
    sidecarOtelEnv: Object.fromEntries((values['sidecar-otel-env'] ?? []).map((pair) => {
      const i = pair.indexOf('=');
      if (i <= 0) throw new Error(`--sidecar-otel-env must be NAME=VALUE, got "${pair}"`);
      const name = pair.slice(0, i);
      if (!OTEL_ENV_NAME.test(name)) throw new Error(`--sidecar-otel-env: ${name} is not an OTEL_* variable name`);
      return [name, pair.slice(i + 1)];
    })),
    operatorURL: values['operator-url'],
    webhookConfigName: values['webhook-config-name'],
  });
  if (!parsed.success) throw new Error(`invalid options: ${formatIssues(parsed.error)}`);
  if ((parsed.data.tlsCertFile === undefined) !== (parsed.data.tlsKeyFile === undefined)) throw new Error('--tls-cert-file and --tls-key-file go together');
  return parsed.data;
}
