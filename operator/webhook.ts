import { createHash } from 'node:crypto';
import type { CoreV1Api, V1Container, V1EnvVar, V1Pod, V1ResourceRequirements, V1Volume } from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import type { Logger } from 'pino';
import { z } from 'zod';
import { canonicalJson } from '../crds/src/canonical-json.js';
import { TOKEN_AUDIENCE } from '../crds/src/index.js';

/**
 * Sidecar injection (DESIGN.md "Control plane" → Injection): a mutating admission webhook adds
 * the paygo sidecar as a native sidecar (an init container with `restartPolicy: Always`, so it
 * starts before and stops after the app), a projected ServiceAccount token (audience paygo) the
 * sidecar authenticates to the operator with, and OPENAI_BASE_URL in the app containers.
 *
 * The mutation is a pure function of (pod, config) so it can be tested without an API server;
 * the HTTP handler only decodes the AdmissionReview and encodes the answer.
 */

export const SIDECAR_NAME = 'paygo-sidecar';
export const TOKEN_VOLUME = 'paygo-token';
export const STATE_VOLUME = 'paygo-state';
export const TOKEN_DIR = '/var/run/secrets/paygo';
export const STATE_DIR = '/var/lib/paygo';
/** Label (objectSelector of the MutatingWebhookConfiguration) or annotation; "false" opts a pod out. */
export const INJECT_KEY = 'paygo.dev/inject';
export const INJECTED_ANNOTATION = 'paygo.dev/injected';
export const INJECTED_LABEL = 'paygo.dev/injected';
export const HASH_ANNOTATION = 'paygo.dev/injection-hash';
export const MUTATE_PATH = '/mutate-pods';
export const OUTDATED_REASON = 'InjectionOutdated';

export interface InjectionConfig {
  image: string;
  imagePullPolicy?: string;
  /** The operator's distribution endpoint, e.g. https://paygo-operator.paygo-system.svc:8443 */
  operatorURL: string;
  /** The CA that signed the operator's serving certificate (PEM), passed to the sidecar by env. */
  caPem: string;
  resources?: V1ResourceRequirements;
  /** The sidecar's OpenAI-compatible listener on 127.0.0.1 (4000). */
  port: number;
  /** The sidecar's metrics + health listener (9464); kubelet probes it. */
  metricsPort: number;
  logLevel?: string;
  /** OTLP/HTTP base URL the sidecar exports traces to (PAYGO_OTLP_ENDPOINT); absent: tracing off. */
  otlpEndpoint?: string;
  /** Further OTEL_* variables for the sidecar (sampler, headers, resource attributes…). */
  otelEnv?: Record<string, string>;
}

/** RFC 6902 operations; the webhook only emits `add`, the others exist for callers and tests. */
export type JsonPatchOp =
  | { op: 'add' | 'replace' | 'test'; path: string; value: unknown }
  | { op: 'remove'; path: string }
  | { op: 'move' | 'copy'; from: string; path: string };

/** What injection does to one pod: the patch, and notes for the user (AdmissionResponse warnings). */
export interface InjectionPlan {
  ops: JsonPatchOp[];
  warnings: string[];
}

// From `make bench`: ≈ 90 MB RSS idle, ≈ 160 MB peak under 32 concurrent requests. No CPU
// limit on purpose: CFS throttling adds latency to every request, and the sidecar's CPU use is
// bounded by the app's request rate anyway. The operator's --sidecar-* flags override these.
export const DEFAULT_SIDECAR_RESOURCES: V1ResourceRequirements = {
  requests: { cpu: '50m', memory: '96Mi' },
  limits: { memory: '192Mi' },
};

/** The user id of distroless "nonroot"; the sidecar image runs as it. */
const NONROOT_UID = 65532;

// ---------------------------------------------------------------------------------------------
// The template

function assertValidConfig(cfg: InjectionConfig): void {
  const port = (n: number) => Number.isInteger(n) && n >= 1 && n <= 65535;
  // A metrics port of 0 ("off" for the sidecar) would leave the probes nothing to call.
  if (!port(cfg.port) || !port(cfg.metricsPort)) throw new Error(`invalid injection config: ports must be 1..65535 (port ${cfg.port}, metricsPort ${cfg.metricsPort})`);
  if (cfg.port === cfg.metricsPort) throw new Error('invalid injection config: port and metricsPort must differ');
  if (!cfg.image) throw new Error('invalid injection config: image is empty');
  if (!cfg.operatorURL.startsWith('https://')) throw new Error('invalid injection config: operatorURL must be https://');
  if (!cfg.caPem.includes('BEGIN CERTIFICATE')) throw new Error('invalid injection config: caPem is not a PEM certificate');
}

/** The URL apps send OpenAI-style requests to: the sidecar on the pod's loopback. */
export function sidecarBaseURL(cfg: InjectionConfig): string {
  return `http://127.0.0.1:${cfg.port}/v1`;
}

/** The native sidecar container (an init container that kubelet keeps running). */
export function sidecarContainer(cfg: InjectionConfig): V1Container {
  const probe = (path: string, periodSeconds: number, failureThreshold: number) => ({
    httpGet: { path, port: cfg.metricsPort, scheme: 'HTTP' },
    periodSeconds,
    failureThreshold,
    timeoutSeconds: 2,
  });
  const env: V1EnvVar[] = [{ name: 'PAYGO_OPERATOR_CA_PEM', value: cfg.caPem }];
  if (cfg.logLevel) env.push({ name: 'PAYGO_LOG_LEVEL', value: cfg.logLevel });
  if (cfg.otlpEndpoint) env.push({ name: 'PAYGO_OTLP_ENDPOINT', value: cfg.otlpEndpoint });
  for (const name of Object.keys(cfg.otelEnv ?? {}).sort()) env.push({ name, value: cfg.otelEnv![name]! });
  return {
    name: SIDECAR_NAME,
    image: cfg.image,
    ...(cfg.imagePullPolicy ? { imagePullPolicy: cfg.imagePullPolicy } : {}),
    restartPolicy: 'Always',
    args: ['--operator', cfg.operatorURL, '--token-file', `${TOKEN_DIR}/token`, '--state-dir', STATE_DIR, '--port', String(cfg.port), '--metrics-port', String(cfg.metricsPort)],
    env,
    ports: [{ name: 'paygo-metrics', containerPort: cfg.metricsPort, protocol: 'TCP' }],
    // Startup waits for the listeners (/healthz), not for the config: kubelet starts the app
    // containers only once this succeeds, and an operator outage must not hold apps back (or
    // make kubelet kill a sidecar that would serve its last good snapshot once it has one).
    startupProbe: probe('/healthz', 1, 60),
    // Readiness is "has a configuration": a native sidecar's readiness counts towards the
    // pod's, so Services send no traffic to a pod whose sidecar cannot route yet.
    readinessProbe: probe('/readyz', 5, 2),
    livenessProbe: probe('/healthz', 10, 3),
    securityContext: {
      runAsNonRoot: true,
      runAsUser: NONROOT_UID,
      runAsGroup: NONROOT_UID,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      // Set explicitly so that pods in namespaces enforcing the "restricted" Pod Security
      // Standard are not rejected because of our container.
      seccompProfile: { type: 'RuntimeDefault' },
    },
    resources: cfg.resources ?? DEFAULT_SIDECAR_RESOURCES,
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true },
      { name: STATE_VOLUME, mountPath: STATE_DIR },
    ],
    terminationMessagePolicy: 'FallbackToLogsOnError',
  };
}

/** The pod volumes the sidecar mounts. */
export function sidecarVolumes(): V1Volume[] {
  return [
    // A token bound to the pod, for the operator only (audience paygo), rotated by kubelet.
    { name: TOKEN_VOLUME, projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: 3600, path: 'token' } }] } },
    { name: STATE_VOLUME, emptyDir: {} },
  ];
}

/** The env an app container gets, each only where the container does not set it already. */
export function appEnv(cfg: InjectionConfig): V1EnvVar[] {
  const url = sidecarBaseURL(cfg);
  return [
    { name: 'OPENAI_BASE_URL', value: url },
    // The name older SDKs (openai-python < 1, LangChain) read.
    { name: 'OPENAI_API_BASE', value: url },
    // SDKs refuse to start without a key; the sidecar ignores it and uses the route's credentials.
    { name: 'OPENAI_API_KEY', value: 'paygo' },
  ];
}

/**
 * A short digest of everything injection puts into a pod. It hashes the rendered template, not
 * just the config, so a paygo upgrade that changes the template (probes, args, …) also marks
 * the pods injected by the old version as outdated.
 */
export function injectionHash(cfg: InjectionConfig): string {
  const rendered = canonicalJson({ container: sidecarContainer(cfg), volumes: sidecarVolumes(), env: appEnv(cfg) });
  return createHash('sha256').update(rendered).digest('hex').slice(0, 16);
}

// ---------------------------------------------------------------------------------------------
// The patch

/** RFC 6901: `~` → `~0` then `/` → `~1` (order matters). */
export function escapePointer(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

/** Opted out by annotation (or by label, for namespace-wide injection selected by namespaceSelector). */
export function optedOut(pod: V1Pod): boolean {
  return pod.metadata?.annotations?.[INJECT_KEY] === 'false' || pod.metadata?.labels?.[INJECT_KEY] === 'false';
}

/**
 * Already injected. Container names are unique across init and app containers, so a
 * `paygo-sidecar` anywhere means injecting again would at best duplicate and at worst make the
 * API server reject the pod.
 */
export function alreadyInjected(pod: V1Pod): boolean {
  const all = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])];
  return all.some((c) => c.name === SIDECAR_NAME);
}

/** Ops that append `items` to the array at `path`, creating it when absent. */
function appendAll(path: string, existing: unknown[] | undefined, items: unknown[]): JsonPatchOp[] {
  if (items.length === 0) return [];
  if (existing === undefined) return [{ op: 'add', path, value: items }];
  return items.map((value) => ({ op: 'add', path: `${path}/-`, value }));
}

function initContainerOps(pod: V1Pod, cfg: InjectionConfig): JsonPatchOp[] {
  const sidecar = sidecarContainer(cfg);
  // Index 0: init containers start in order, so ours runs before the user's, which can use it.
  if (pod.spec?.initContainers === undefined) return [{ op: 'add', path: '/spec/initContainers', value: [sidecar] }];
  return [{ op: 'add', path: '/spec/initContainers/0', value: sidecar }];
}

function volumeOps(pod: V1Pod, warnings: string[]): JsonPatchOp[] {
  const taken = new Set((pod.spec?.volumes ?? []).map((v) => v.name));
  const missing = sidecarVolumes().filter((v) => {
    // The user's volume of the same name wins (duplicate names would make the pod invalid).
    if (taken.has(v.name)) warnings.push(`paygo: the pod already has a volume "${v.name}"; the sidecar mounts it as is`);
    return !taken.has(v.name);
  });
  return appendAll('/spec/volumes', pod.spec?.volumes, missing);
}

function envOps(pod: V1Pod, cfg: InjectionConfig, warnings: string[]): JsonPatchOp[] {
  const ops: JsonPatchOp[] = [];
  (pod.spec?.containers ?? []).forEach((c, i) => {
    const set = new Set((c.env ?? []).map((e) => e.name));
    // Never override what the user set: the variable may point somewhere on purpose.
    const add = appEnv(cfg).filter((e) => !set.has(e.name));
    if (set.has('OPENAI_BASE_URL')) warnings.push(`paygo: container "${c.name}" sets OPENAI_BASE_URL; kept, so its requests may bypass the sidecar`);
    ops.push(...appendAll(`/spec/containers/${i}/env`, c.env, add));
  });
  return ops;
}

/**
 * Annotations (injected, template hash) and the label `paygo.dev/injected: "true"`, which lets
 * a PodMonitor select every injected pod, however injection was triggered.
 */
function metadataOps(pod: V1Pod, cfg: InjectionConfig): JsonPatchOp[] {
  const annotations = { [INJECTED_ANNOTATION]: 'true', [HASH_ANNOTATION]: injectionHash(cfg) };
  const labels = { [INJECTED_LABEL]: 'true' };
  if (pod.metadata === undefined) return [{ op: 'add', path: '/metadata', value: { annotations, labels } }];
  const members = (field: 'annotations' | 'labels', values: Record<string, string>): JsonPatchOp[] =>
    pod.metadata![field] === undefined
      ? [{ op: 'add', path: `/metadata/${field}`, value: values }]
      : // `add` on an existing member replaces it (RFC 6902 4.1), e.g. a stale copy from a template.
        Object.entries(values).map(([k, value]) => ({ op: 'add', path: `/metadata/${field}/${escapePointer(k)}`, value }));
  return [...members('annotations', annotations), ...members('labels', labels)];
}

/** Port clashes the API server cannot see: they only show once the pod runs. */
function portWarnings(pod: V1Pod, cfg: InjectionConfig): string[] {
  const ours = new Set([cfg.port, cfg.metricsPort]);
  const clashes = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].flatMap((c) => (c.ports ?? []).filter((p) => ours.has(p.containerPort)).map((p) => `${c.name}:${p.containerPort}`));
  const warnings = clashes.length > 0 ? [`paygo: ports ${clashes.join(', ')} are also the sidecar's (${cfg.port}, ${cfg.metricsPort}); one of them will fail to listen`] : [];
  if (pod.spec?.hostNetwork) warnings.push(`paygo: hostNetwork pod: the sidecar listens on the node's ports ${cfg.port} and ${cfg.metricsPort}`);
  return warnings;
}

/** The patch and the user-facing warnings; throws only on an invalid config. */
export function planInjection(pod: V1Pod, cfg: InjectionConfig): InjectionPlan {
  if (optedOut(pod) || alreadyInjected(pod)) return { ops: [], warnings: [] };
  assertValidConfig(cfg);
  const warnings = portWarnings(pod, cfg);
  const ops = [...initContainerOps(pod, cfg), ...volumeOps(pod, warnings), ...envOps(pod, cfg, warnings), ...metadataOps(pod, cfg)];
  return { ops, warnings };
}

/**
 * The RFC 6902 patch that injects paygo into `pod`: [] when the pod opted out
 * (`paygo.dev/inject: "false"`) or is already injected, so re-submitting a mutated pod
 * (reinvocation, `kubectl replace`, a dry run of an exported pod) changes nothing.
 */
export function mutatePod(pod: V1Pod, cfg: InjectionConfig): JsonPatchOp[] {
  return planInjection(pod, cfg).ops;
}

/**
 * Injected pods whose template differs from the current one (the operator's image, CA, ports or
 * the template itself changed), which the user should roll. Pods that are finished or being
 * deleted are left out: there is nothing to roll.
 */
export function outdatedPods(pods: V1Pod[], currentHash: string): V1Pod[] {
  return pods.filter((p) => {
    if (p.metadata?.annotations?.[INJECTED_ANNOTATION] !== 'true') return false;
    if (p.metadata.deletionTimestamp || p.status?.phase === 'Succeeded' || p.status?.phase === 'Failed') return false;
    return p.metadata.annotations[HASH_ANNOTATION] !== currentHash;
  });
}

// ---------------------------------------------------------------------------------------------
// The admission endpoint

const AdmissionReviewSchema = z.object({
  apiVersion: z.literal('admission.k8s.io/v1'),
  kind: z.literal('AdmissionReview'),
  request: z.object({
    uid: z.string().min(1),
    kind: z.object({ group: z.string(), version: z.string(), kind: z.string() }),
    operation: z.string(),
    namespace: z.string().optional(),
    name: z.string().optional(),
    subResource: z.string().optional(),
    dryRun: z.boolean().optional(),
    object: z.record(z.string(), z.unknown()).nullable().optional(),
  }),
});
type AdmissionRequest = z.infer<typeof AdmissionReviewSchema>['request'];

export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  status?: { code: number; message: string };
}

const isPodCreate = (r: AdmissionRequest): boolean =>
  r.kind.group === '' && r.kind.kind === 'Pod' && r.operation === 'CREATE' && !r.subResource && r.object !== null && r.object !== undefined;

/** The answer to one admission request. Exported for tests; the route is a thin wrapper. */
export function admit(req: AdmissionRequest, cfg: () => InjectionConfig, logger: Logger): AdmissionResponse {
  // The MutatingWebhookConfiguration only sends pod CREATEs; anything else is let through as is.
  if (!isPodCreate(req)) return { uid: req.uid, allowed: true };
  const pod = req.object as V1Pod;
  const who = `${req.namespace ?? pod.metadata?.namespace ?? ''}/${pod.metadata?.name || pod.metadata?.generateName || '?'}`;
  try {
    const plan = planInjection(pod, cfg());
    if (plan.ops.length === 0) return { uid: req.uid, allowed: true };
    logger.info({ pod: who, dryRun: req.dryRun ?? false, ops: plan.ops.length }, 'injecting the paygo sidecar');
    return {
      uid: req.uid,
      allowed: true,
      patchType: 'JSONPatch',
      patch: Buffer.from(JSON.stringify(plan.ops)).toString('base64'),
      ...(plan.warnings.length > 0 ? { warnings: plan.warnings } : {}),
    };
  } catch (err) {
    // Only a bug or a broken operator config gets here. The pod asked for paygo (it matched
    // the selector); admitting it without the sidecar would run the app pointed at nothing
    // (or straight at a provider, unmetered), so refuse with a message the user sees in the
    // ReplicaSet's events; controllers retry, so the pod is created once this is fixed.
    logger.error({ pod: who, error: (err as Error).message }, 'sidecar injection failed; pod refused');
    return { uid: req.uid, allowed: false, status: { code: 500, message: `paygo sidecar injection failed: ${(err as Error).message}` } };
  }
}

/**
 * `POST /mutate-pods`: admission.k8s.io/v1 AdmissionReview in, AdmissionReview out.
 *
 * Failure handling, by layer:
 * - a request that is not an AdmissionReview → 400 (the API server treats it as a webhook
 *   failure, so the MutatingWebhookConfiguration's failurePolicy applies);
 * - paygo's own choices (opt-out, already injected, user env kept) never deny a pod: allowed,
 *   with warnings where the user should know;
 * - injection failing unexpectedly → allowed: false with a status message (see `admit`);
 * - the webhook unreachable → failurePolicy (the chart uses Fail for the labelled pods: they
 *   asked for the sidecar, and the Deployment controller retries).
 */
export function registerWebhook(app: FastifyInstance, o: { config: () => InjectionConfig; logger: Logger }): void {
  // Pods can be large (many containers, big env); the API server caps requests at 3 MiB.
  app.post(MUTATE_PATH, { bodyLimit: 8 * 1024 * 1024 }, async (req, reply) => {
    const parsed = AdmissionReviewSchema.safeParse(req.body);
    if (!parsed.success) {
      return reply.code(400).send({ error: 'expected an admission.k8s.io/v1 AdmissionReview with a request', issues: parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`) });
    }
    const response = admit(parsed.data.request, o.config, o.logger);
    return reply.send({ apiVersion: parsed.data.apiVersion, kind: parsed.data.kind, response });
  });
}

// ---------------------------------------------------------------------------------------------
// Reporting outdated pods

/** Writes one Event about a pod. */
export interface PodEventWriter {
  warning(pod: V1Pod, reason: string, message: string): Promise<void>;
}

/** A PodEventWriter on core/v1 Events (the API `kubectl describe pod` and `kubectl events` show). */
export function coreEventWriter(core: CoreV1Api, now: () => Date = () => new Date()): PodEventWriter {
  return {
    async warning(pod, reason, message) {
      const namespace = pod.metadata?.namespace ?? 'default';
      const t = now();
      await core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${pod.metadata?.name ?? 'pod'}.`, namespace },
          involvedObject: { apiVersion: 'v1', kind: 'Pod', name: pod.metadata?.name, namespace, uid: pod.metadata?.uid, resourceVersion: pod.metadata?.resourceVersion },
          reason,
          message: message.slice(0, 1024),
          type: 'Warning',
          source: { component: 'paygo-operator' },
          firstTimestamp: t,
          lastTimestamp: t,
          count: 1,
          reportingComponent: 'paygo.dev/operator',
          reportingInstance: 'paygo-operator',
        },
      });
    },
  };
}

export interface OutdatedPodReporterOptions {
  /** The injected pods (e.g. from the operator's pod informer). */
  listPods(): V1Pod[] | Promise<V1Pod[]>;
  /** The hash of the template the webhook injects now. */
  currentHash(): string;
  events: PodEventWriter;
  logger: Logger;
}

/**
 * Tells users which pods run an outdated injected template: one Warning Event
 * `InjectionOutdated` per pod and template version. Events rather than an annotation: writing
 * Events needs no permission to patch users' pods, and Events show in `kubectl describe`.
 */
export class OutdatedPodReporter {
  /** `uid@hash` of pods already reported; pruned to the pods that still exist. */
  private readonly reported = new Set<string>();
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;

  constructor(private readonly o: OutdatedPodReporterOptions) {}

  /** One pass; returns how many Events it wrote. Failed writes are retried on the next pass. */
  async report(): Promise<number> {
    const hash = this.o.currentHash();
    const pods = await this.o.listPods();
    const key = (p: V1Pod) => `${p.metadata?.uid ?? `${p.metadata?.namespace}/${p.metadata?.name}`}@${hash}`;
    const live = new Set(pods.map(key));
    for (const k of this.reported) if (!live.has(k)) this.reported.delete(k);
    let written = 0;
    for (const pod of outdatedPods(pods, hash)) {
      const k = key(pod);
      if (this.reported.has(k)) continue;
      const old = pod.metadata?.annotations?.[HASH_ANNOTATION] ?? 'none';
      try {
        await this.o.events.warning(pod, OUTDATED_REASON, `the injected paygo sidecar is outdated (template ${old}, current ${hash}); restart the workload (e.g. kubectl rollout restart) to update it`);
        this.reported.add(k);
        written++;
      } catch (err) {
        this.o.logger.warn({ pod: `${pod.metadata?.namespace}/${pod.metadata?.name}`, error: (err as Error).message }, 'could not record an InjectionOutdated Event');
      }
    }
    return written;
  }

  /** Reports every `intervalMs` (passes never overlap) until stop(). */
  start(intervalMs = 60_000): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (this.running) return;
      this.running = this.report()
        .catch((err: unknown) => {
          this.o.logger.warn({ error: (err as Error).message }, 'outdated pod report failed');
          return 0;
        })
        .finally(() => {
          this.running = undefined;
        });
    }, intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
