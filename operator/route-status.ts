import type { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { canonicalJson } from '../crds/src/canonical-json.js';
import { GROUP, VERSION, targetName, type Condition } from '../crds/src/index.js';
import { formatUsd } from '../crds/src/money.js';
import type { ClusterCache, RawObject } from './cache.js';
import { conditionStatus, setCondition } from './conditions.js';
import type { RouteSync } from './distribution.js';
import { checkRoute, unresolvedRefs } from './snapshots.js';
import type { TargetCounts } from './target-totals.js';

/** Per-target totals as status shows them (money as decimal USD strings). */
export interface TargetStatus {
  name: string;
  requests: number;
  errors: number;
  cost: string;
  costPerSuccess?: string;
}

export interface RouteStatus {
  observedGeneration?: number;
  conditions: Condition[];
  sidecars: { desired: number; synced: number; rejected: number };
  targetCount: number;
  targets?: TargetStatus[];
}

/** Totals of one target of a route, as the sidecars reported them. */
export type TargetTotalsFn = (namespace: string, route: string, target: string) => TargetCounts;

/**
 * The status a ModelRoute should have, from the cache and the sidecars' ACKs alone
 * (level-triggered: the same state always gives the same status).
 */
export function desiredRouteStatus(cache: ClusterCache, raw: RawObject, sync: RouteSync, now: Date, totals?: TargetTotalsFn): RouteStatus {
  const old = (raw.status ?? {}) as Partial<RouteStatus>;
  const generation = raw.metadata?.generation;
  const checked = checkRoute(raw);
  let conditions = old.conditions ?? [];
  const targets = (raw.spec as { targets?: unknown[] } | undefined)?.targets;
  const targetCount = Array.isArray(targets) ? targets.length : 0;
  const cond = (type: string, ok: boolean, reason: string, message: string) => {
    conditions = setCondition(conditions, { type, status: ok ? 'True' : 'False', reason, message, observedGeneration: generation }, now);
  };
  if (checked.error !== undefined) {
    cond('Accepted', false, 'Invalid', checked.error);
    cond('ResolvedRefs', false, 'Invalid', 'the route is invalid');
    cond('Ready', false, 'Invalid', 'the route is invalid and is not sent to sidecars');
  } else {
    cond('Accepted', true, 'Accepted', 'the route is valid');
    const missing = unresolvedRefs(cache, checked.route);
    cond('ResolvedRefs', missing.length === 0, missing.length === 0 ? 'Resolved' : 'SecretNotFound', missing.length === 0 ? 'every credentials.secretRef resolves' : missing.join('; '));
    if (sync.rejected > 0) cond('Ready', false, 'SidecarRejected', `${sync.rejected} of ${sync.desired} sidecars rejected the configuration: ${sync.rejectReason ?? ''}`.trim());
    else if (missing.length > 0) cond('Ready', false, 'SecretNotFound', 'some targets have no credentials and are skipped by sidecars');
    else if (sync.synced < sync.desired) cond('Ready', false, 'Syncing', `${sync.synced} of ${sync.desired} sidecars have the current configuration`);
    else cond('Ready', true, 'Synced', `${sync.synced} of ${sync.desired} sidecars have the current configuration`);
  }
  const namespace = raw.metadata?.namespace ?? 'default';
  const name = raw.metadata?.name ?? '';
  const targetStatus =
    totals && checked.error === undefined
      ? checked.route.spec.targets.map((t, i): TargetStatus => {
          const target = targetName(t, i);
          const c = totals(namespace, name, target);
          return {
            name: target,
            requests: c.requests,
            errors: c.errors,
            cost: formatUsd(c.costNano),
            ...(c.successes > 0 ? { costPerSuccess: formatUsd(c.costNano / BigInt(c.successes)) } : {}),
          };
        })
      : undefined;
  return {
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
    conditions,
    sidecars: { desired: sync.desired, synced: sync.synced, rejected: sync.rejected },
    targetCount,
    ...(targetStatus ? { targets: targetStatus } : {}),
  };
}

/** The API server returns objects with keys in its own order. */
function sameStatus(a: unknown, b: unknown): boolean {
  return canonicalJson(a ?? {}) === canonicalJson(b ?? {});
}

export interface RouteStatusWriterOptions {
  cache: ClusterCache;
  custom: CustomObjectsApi;
  core: CoreV1Api;
  routeSync(namespace: string, name: string): RouteSync;
  /** Per-target totals the sidecars reported (status.targets). */
  targetTotals?: TargetTotalsFn;
  now: () => Date;
  logger: Logger;
  /** Field manager of status writes (names the replica, so managedFields shows who wrote). */
  fieldManager: string;
}

/** Writes ModelRoute status (the leader only calls it) and records Events on transitions. */
export class RouteStatusWriter {
  constructor(private readonly o: RouteStatusWriterOptions) {}

  async reconcile(namespace: string, name: string): Promise<void> {
    const raw = this.o.cache.routes.get(name, namespace);
    if (!raw) return; // deleted: nothing to write
    const status = desiredRouteStatus(this.o.cache, raw, this.o.routeSync(namespace, name), this.o.now(), this.o.targetTotals);
    const old = raw.status as Partial<RouteStatus> | undefined;
    const keep = (old ?? {}) as Record<string, unknown>;
    // Fields this writer does not own are kept.
    const next = { ...keep, ...status };
    if (sameStatus(old, next)) return;
    await this.o.custom.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      namespace,
      plural: 'modelroutes',
      name,
      body: { ...raw, status: next },
      fieldManager: this.o.fieldManager,
    });
    const wasReady = conditionStatus(old?.conditions, 'Ready');
    const ready = status.conditions.find((c) => c.type === 'Ready')!;
    if (wasReady !== ready.status) await this.event(raw, ready.status === 'True' ? 'Normal' : 'Warning', ready.reason, ready.message);
  }

  private async event(raw: RawObject, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = this.o.now();
    const namespace = raw.metadata?.namespace ?? 'default';
    try {
      await this.o.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { generateName: `${raw.metadata?.name}.`, namespace },
          involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: 'ModelRoute', name: raw.metadata?.name, namespace, uid: raw.metadata?.uid, resourceVersion: raw.metadata?.resourceVersion },
          reason,
          message: message.slice(0, 1024),
          type,
          source: { component: 'paygo-operator' },
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
          reportingComponent: 'paygo.dev/operator',
          reportingInstance: 'paygo-operator',
        },
      });
    } catch (err) {
      this.o.logger.warn({ error: (err as Error).message, reason }, 'could not record an Event');
    }
  }
}
