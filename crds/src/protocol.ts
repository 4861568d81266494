import { z } from 'zod';
import { nanoUsd } from './meta.js';
import { SnapshotSchema } from './snapshot.js';
import { targetName, type Target } from './modelroute.js';

/**
 * The config distribution protocol between a sidecar and the operator (HTTPS):
 *
 *   GET  /v1/stream   Authorization: Bearer <pod's projected ServiceAccount token, audience "paygo">
 *                     → text/event-stream of `event: snapshot` frames (data: SnapshotMessage),
 *                       the current one first, then one per change; `: keepalive` comments.
 *   POST /v1/ack      same Authorization; body AckMessage → 204.
 *
 * The operator serves a pod only its own namespace's routes, budgets and secrets.
 */
export const STREAM_PATH = '/v1/stream';
export const ACK_PATH = '/v1/ack';
export const TOKEN_AUDIENCE = 'paygo';

export const SnapshotMessageSchema = z.object({
  snapshot: SnapshotSchema,
});
export type SnapshotMessage = z.infer<typeof SnapshotMessageSchema>;

export const AckMessageSchema = z.object({
  version: z.string().min(1).max(128),
  accepted: z.boolean(),
  /** Why the sidecar refused the snapshot (it keeps serving its previous one). */
  reason: z.string().max(2048).optional(),
});
export type AckMessage = z.infer<typeof AckMessageSchema>;

/**
 * Budget allowances: POST /v1/budget/sync (same Authorization). A sidecar may spend, per budget
 * and period, at most the allowance the operator granted it; the operator never grants more
 * than the limit minus what every sidecar holds. Amounts are integer nano-USD as decimal
 * strings. Reports are cumulative and sequence-numbered, so a retried or duplicated sync is
 * never counted twice: `spent` is the pod's total spend in the period so far; `keep` is the
 * allowance it keeps (spent + in-flight reservations; the rest goes back); `want` is extra
 * allowance it asks for; `need` is the least extra allowance worth having (a waiting request
 * cannot use less, so the operator grants nothing rather than strand money with a pod that
 * cannot spend it).
 *
 * Allowances belong to a sidecar process, not a pod: `boot` names the process (a restarted
 * sidecar is a new holder that starts from zero), and its `final` sync, sent once every request
 * it admitted has settled, closes its allowances. The operator never takes back an allowance a
 * process did not give back itself: a process that ends without a final report keeps what it
 * held as spent (docs/architecture.md, section 5).
 */
export const BUDGET_SYNC_PATH = '/v1/budget/sync';


export const BudgetSyncRequestSchema = z.object({
  seq: z.number().int().min(1),
  /** The sidecar process (random per start); absent from older sidecars (one holder per pod). */
  boot: z.string().min(1).max(64).optional(),
  /** The process's last sync: it admits nothing more; `keep` covers whatever is still unsettled. */
  final: z.boolean().optional(),
  entries: z
    .array(
      z.object({
        name: z.string().min(1).max(253),
        periodStart: z.iso.datetime(),
        spent: nanoUsd,
        keep: nanoUsd,
        want: nanoUsd,
        need: nanoUsd.optional(),
      }),
    )
    .max(256),
});
export type BudgetSyncRequest = z.infer<typeof BudgetSyncRequestSchema>;

export const BudgetSyncResponseSchema = z.object({
  entries: z.array(
    z.object({
      name: z.string(),
      periodStart: z.string(),
      /** The process's total allowance for the period (absolute, so a lost answer costs nothing). */
      granted: nanoUsd,
      /** The process's spend as the operator recorded it. */
      spent: nanoUsd,
      /** Allowance granted fleet-wide and not yet spent: money that may still come back. */
      outstanding: nanoUsd,
      /** What is left to grant (limit minus every allowance); when 0, sidecars keep no cushion. */
      available: nanoUsd,
      /** The allowance stops being valid at this time unless renewed by another sync. */
      expires: z.iso.datetime(),
    }),
  ),
});
export type BudgetSyncResponse = z.infer<typeof BudgetSyncResponseSchema>;

/**
 * Per-target totals for ModelRoute status (A/B comparison): POST /v1/targets/report (same
 * Authorization). A sidecar process reports, now and then, what each target of its routes served
 * since the process started: cumulative, so a lost or repeated report costs nothing. `boot`
 * names the process (a restarted sidecar starts from zero under a new one).
 */
export const TARGET_REPORT_PATH = '/v1/targets/report';

export const TargetReportSchema = z.object({
  boot: z.string().min(1).max(64),
  targets: z
    .array(
      z.object({
        route: z.string().min(1).max(253),
        target: z.string().min(1).max(253),
        requests: z.number().int().min(0),
        successes: z.number().int().min(0),
        errors: z.number().int().min(0),
        cost: nanoUsd,
      }),
    )
    .max(4096),
});
export type TargetReport = z.infer<typeof TargetReportSchema>;

/**
 * Fleet-wide rate limits: POST /v1/ratelimit/sync (same Authorization). Each limit field of a
 * ProviderQuota (`pq/<ns>/<name>`), a target's own quota (`tq/<ns>/<route>/<target>`) or a
 * RateLimit (`rl/<ns>/<name>`) is shared out as *shares*: a sidecar process (`boot`) holding a
 * share runs a token bucket of capacity = share refilling share per window, and the operator
 * keeps Σ shares ≤ the limit. A process lowers its own share to `keep` before it reports (what it
 * gives back is gone at once); only then may the operator hand the freed part to others. `used`
 * and `demand` are rates in the limit's own unit per window (what the process took recently, and
 * what it was refused or is waiting for); the operator moves shares towards `target`, in
 * proportion to demand. A share stops being valid at `expires` unless renewed; a process that
 * has none for a limit refuses the requests under it (fail closed). `credit` is how much of an
 * increase comes already filled (the rest fills at the share's refill rate), so a share moved
 * from one process to another never brings a burst the fleet has already used
 * (docs/architecture.md, section 5a).
 *
 * Provider backoffs ride on the same syncs (optional `backoffs`, both ways; peers without them
 * ignore the field): a sidecar reports the credentials whose provider told it to hold back
 * (rate-limit headers with nothing remaining, a 429's Retry-After) and for how much longer;
 * every answer carries all live ones of the caller's namespace, and nothing of another.
 */
export const RATELIMIT_SYNC_PATH = '/v1/ratelimit/sync';

export const RATELIMIT_KEY_PATTERN = /^(pq|rl)\/[a-z0-9][-a-z0-9.]{0,252}\/[a-z0-9][-a-z0-9.]{0,252}$|^tq\/[a-z0-9][-a-z0-9.]{0,252}\/[a-z0-9][-a-z0-9.]{0,252}\/[^/\s]{1,253}$/;

/**
 * What a provider's own rate-limit signals apply to (its `x-ratelimit-*` /
 * `anthropic-ratelimit-*` headers, a 429's Retry-After): the key the target calls with and the
 * model it calls (providers limit a key per model), `<ns>/secret/<secret>/<key>/<provider>/<model>`
 * with the Secret *reference* of `credentials.secretRef` (never its value), so every target of
 * the namespace using that key for that model backs off together; a target without credentials
 * (workload identity, simulate) is its own: `<ns>/target/<route>/<target>`. Namespace first, like
 * the `limit` label of the other rate-limit metrics.
 */
export function providerBackoffKey(namespace: string, route: string, t: Pick<Target, 'name' | 'provider' | 'model' | 'credentials'>, index: number): string {
  const ref = t.credentials?.secretRef;
  return ref ? `${namespace}/secret/${ref.name}/${ref.key}/${t.provider}/${t.model}` : `${namespace}/target/${route}/${targetName(t, index)}`;
}

/** The namespace a provider backoff key belongs to (its first segment). */
export function providerBackoffNamespace(key: string): string {
  return key.split('/', 1)[0]!;
}

/** What a provider said ran out; `any`: a 429 whose Retry-After names nothing. */
export const PROVIDER_BACKOFF_RESOURCES = ['requests', 'tokens', 'input_tokens', 'output_tokens', 'any'] as const;
export type ProviderBackoffResource = (typeof PROVIDER_BACKOFF_RESOURCES)[number];

/**
 * One provider backoff on the wire: the credential it applies to, and for how many more ms
 * (relative, so sidecar and operator clocks need not agree). Receivers clamp `ms` to their
 * own bound; an entry they cannot read is dropped, never the sync.
 */
export const ProviderBackoffSchema = z.object({
  key: z.string().max(1024).regex(/^[a-z0-9][-a-z0-9]{0,62}\/(secret|target)\/[^\x00-\x1f\x7f]+$/),
  ms: z.number().int().min(0).max(86_400_000),
  resource: z.enum(PROVIDER_BACKOFF_RESOURCES).optional(),
});
export type ProviderBackoff = z.infer<typeof ProviderBackoffSchema>;

/** An optional list of backoffs that never fails the message it is in (older and newer peers stay compatible). */
const providerBackoffs = z.array(ProviderBackoffSchema.nullable().catch(null)).max(256).optional().catch(undefined);

/** The readable entries of a `backoffs` field. */
export function readableBackoffs(list: ReadonlyArray<ProviderBackoff | null> | undefined): ProviderBackoff[] {
  return (list ?? []).filter((b): b is ProviderBackoff => b !== null);
}

const rateAmount = z.number().int().min(0).max(1_000_000_000_000);

export const RateLimitSyncRequestSchema = z.object({
  /** The sidecar process (random per start). */
  boot: z.string().min(1).max(64),
  seq: z.number().int().min(1),
  /** The process is ending: it keeps nothing (`keep` 0) and wants nothing more. */
  final: z.boolean().optional(),
  entries: z
    .array(
      z.object({
        key: z.string().regex(RATELIMIT_KEY_PATTERN),
        /** The spec field, e.g. `tokensPerMinute`. */
        field: z.string().min(1).max(64),
        used: rateAmount,
        demand: rateAmount,
        keep: rateAmount,
      }),
    )
    .max(512),
  /** Provider backoffs this process saw itself (version 2; older operators ignore the field). */
  backoffs: providerBackoffs,
});
export type RateLimitSyncRequest = z.infer<typeof RateLimitSyncRequestSchema>;

export const RateLimitSyncResponseSchema = z.object({
  entries: z.array(
    z.object({
      key: z.string(),
      field: z.string(),
      /** The process's share (absolute): its bucket's capacity and refill per window. */
      share: rateAmount,
      /** Where the operator wants this process's share; above it, the process lowers to it. */
      target: rateAmount,
      /** Of the increase over what the process had, how much comes filled (at most the increase). */
      credit: rateAmount,
      /** The share stops being valid at this time unless renewed by another sync. */
      expires: z.iso.datetime(),
    }),
  ),
  /** Every live provider backoff of the caller's namespace (version 2; older sidecars ignore the field). */
  backoffs: providerBackoffs,
});
export type RateLimitSyncResponse = z.infer<typeof RateLimitSyncResponseSchema>;
