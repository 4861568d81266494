import type { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Gauge } from 'prom-client';
import { BUDGET_SYNC_PATH, BudgetSchema, BudgetSyncRequestSchema, GROUP, VERSION, formatIssues, type Budget, type BudgetAllowance, type BudgetSyncResponse, type Condition } from '../crds/src/index.js';
import { formatUsd, parseUsd } from '../crds/src/money.js';
import { AuthError, type PodIdentity, type TokenAuthenticator } from './auth.js';
import { BudgetLedger, ledgerTotals, type PeriodLedger } from './budget-ledger.js';
import type { ClusterCache, RawObject } from './cache.js';
import { setCondition } from './conditions.js';
import { replyNotLeader } from './leader.js';
import { checkBudget } from './snapshots.js';

export interface BudgetGauges {
  limit: Gauge;
  spent: Gauge;
  reserved: Gauge;
  remaining: Gauge;
}

/**
 * Fleet-wide budgets on the operator: answers sidecars' allowance syncs from the ledger,
 * persists every allowance increase in Budget.status before answering (so a restart never
 * forgets money it handed out), writes spend, state and conditions, and records threshold
 * Events. Only the leader serves and writes.
 */
export class BudgetService {
  readonly ledger: BudgetLedger;
  private readonly writing = new Map<string, Promise<void>>();
  private readonly dirty = new Set<string>();
  private readonly alerted = new Map<string, Set<number>>();
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly o: {
      cache: ClusterCache;
      custom: CustomObjectsApi;
      core: CoreV1Api;
      authenticator: TokenAuthenticator;
      isLeader: () => boolean;
      now: () => Date;
      logger: Logger;
      fieldManager: string;
      gauges: BudgetGauges;
      ttlMs?: number;
      graceMs?: number;
    },
  ) {
    this.ledger = new BudgetLedger({ now: () => o.now().getTime(), ttlMs: o.ttlMs, graceMs: o.graceMs });
  }

  register(app: FastifyInstance): void {
    app.post(BUDGET_SYNC_PATH, (req, reply) => this.sync(req, reply));
  }

  /** Periodic work: flush spend, reclaim silent pods' allowances. */
  start(): void {
    this.flushTimer = setInterval(() => {
      if (!this.o.isLeader()) return;
      for (const key of this.ledger.reclaim()) this.dirty.add(key);
      for (const key of [...this.dirty]) void this.persist(key).catch((err: unknown) => this.o.logger.warn({ budget: key, error: (err as Error).message }, 'budget status write failed'));
    }, 1000);
    this.flushTimer.unref();
  }

  stop(): void {
    clearInterval(this.flushTimer);
  }

  /**
   * On becoming leader: the book is what Budget.status says (it is written before money is
   * handed out). Read fresh from the API server, not the cache, which may lag the last leader.
   */
  async restore(): Promise<void> {
    const list = (await this.o.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: 'budgets' })) as { items: RawObject[] };
    for (const raw of list.items) {
      const b = checkBudget(raw);
      if (!b) continue;
      const status = (raw.status ?? {}) as { periodStart?: string; allowances?: BudgetAllowance[] };
      const ns = b.metadata.namespace ?? 'default';
      const current = this.ledger.current(ns, b.metadata.name, b.spec);
      if (status.periodStart !== current.periodStart) continue;
      const l: PeriodLedger = { namespace: ns, name: b.metadata.name, periodStart: current.periodStart, limit: parseUsd(b.spec.limit), pods: new Map(), exhausted: false };
      for (const a of status.allowances ?? []) {
        l.pods.set(a.uid, { pod: a.pod, uid: a.uid, granted: BigInt(a.granted), spent: BigInt(a.spent), seq: a.seq, expires: Date.parse(a.expires) });
      }
      this.ledger.forget(ns, b.metadata.name);
      this.ledger.restore(l);
    }
  }

  /**
   * Level-triggered status of a namespace's Budgets, for what no sync reports: a Budget the API
   * server accepted but the full validation refuses (e.g. an unknown time zone) gets
   * Ready=False/Invalid naming the field, and is not enforced; a valid one whose status is not
   * of its current period and generation gets its book written, so kubectl shows it at once.
   */
  async reconcileNamespace(namespace: string): Promise<void> {
    if (!this.o.isLeader()) return;
    for (const raw of this.o.cache.budgets.list(namespace)) {
      const name = raw.metadata?.name;
      if (!name) continue;
      const parsed = BudgetSchema.safeParse(raw);
      if (!parsed.success) {
        await this.markInvalid(raw, formatIssues(parsed.error));
        continue;
      }
      const l = this.ledger.current(namespace, name, parsed.data.spec);
      const status = (raw.status ?? {}) as { periodStart?: string; observedGeneration?: number };
      if (status.periodStart !== l.periodStart || status.observedGeneration !== raw.metadata?.generation) await this.persist(BudgetLedger.key(namespace, name));
    }
  }

  private async markInvalid(raw: RawObject, message: string): Promise<void> {
    const generation = raw.metadata?.generation;
    const old = (raw.status ?? {}) as { conditions?: Condition[] };
    const full = `${message} (the budget is not enforced)`;
    const ready = old.conditions?.find((c) => c.type === 'Ready');
    if (ready?.reason === 'Invalid' && ready.message === full && ready.observedGeneration === generation) return;
    const conditions = setCondition(old.conditions, { type: 'Ready', status: 'False', reason: 'Invalid', message: full, observedGeneration: generation }, this.o.now());
    await this.o.custom.replaceNamespacedCustomObjectStatus({
      group: GROUP,
      version: VERSION,
      namespace: raw.metadata!.namespace!,
      plural: 'budgets',
      name: raw.metadata!.name!,
      body: { ...raw, status: { ...old, observedGeneration: generation, conditions } },
      fieldManager: this.o.fieldManager,
    });
  }

  private async sync(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    if (!this.o.isLeader()) {
      await replyNotLeader(reply);
      return;
    }
    let id: PodIdentity;
    try {
      id = await this.o.authenticator.authenticate(req.headers.authorization);
    } catch (err) {
      if (err instanceof AuthError) {
        await reply.code(err.status).send({ error: { message: err.message, code: 'unauthenticated' } });
        return;
      }
      throw err;
    }
    const parsed = BudgetSyncRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      await reply.code(400).send({ error: { message: formatIssues(parsed.error), code: 'invalid_sync' } });
      return;
    }
    const out: BudgetSyncResponse = { entries: [] };
    const grew = new Set<string>();
    for (const e of parsed.data.entries) {
      const raw = this.o.cache.budgets.get(e.name, id.namespace);
      // Only the pod's own namespace, and only budgets that cover it; anything else gets nothing.
      const budget = raw ? checkBudget(raw) : undefined;
      const answer = this.ledger.answer(id.namespace, budget?.spec, { name: id.podName, uid: id.podUid }, parsed.data.seq, e);
      out.entries.push(answer.entry);
      if (!answer.applied) continue;
      const key = BudgetLedger.key(id.namespace, e.name);
      this.dirty.add(key);
      if (answer.grew) grew.add(key);
    }
    // Money handed out is written down before the sidecar may spend it.
    await Promise.all([...grew].map((k) => this.persist(k)));
    await reply.send(out);
  }

  /**
   * Writes a budget's status. Group commit: callers during a running write all share the one
   * next write, which starts after it and covers all their changes.
   */
  persist(key: string): Promise<void> {
    const queued = this.queued.get(key);
    if (queued) return queued;
    const running = this.writing.get(key);
    const start = (): Promise<void> => {
      this.queued.delete(key);
      this.dirty.delete(key);
      const p = this.write(key).finally(() => {
        if (this.writing.get(key) === p) this.writing.delete(key);
      });
      this.writing.set(key, p);
      return p;
    };
    if (!running) return start();
    const next = running.then(start, start);
    this.queued.set(key, next);
    return next;
  }
  private readonly queued = new Map<string, Promise<void>>();

  private async write(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const l = this.ledger.get(namespace, name);
    if (!l) return;
    for (let attempt = 0; ; attempt++) {
      const raw = (await this.o.custom.getNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: 'budgets', name })) as RawObject;
      const budget = checkBudget(raw);
      if (!budget) return;
      const status = this.statusFor(budget, raw, l);
      try {
        await this.o.custom.replaceNamespacedCustomObjectStatus({
          group: GROUP,
          version: VERSION,
          namespace,
          plural: 'budgets',
          name,
          body: { ...raw, status },
          fieldManager: this.o.fieldManager,
        });
        await this.thresholdEvents(budget, raw, l);
        return;
      } catch (err) {
        if ((err as { code?: number }).code !== 409 || attempt >= 5) throw err;
      }
    }
  }

  private statusFor(budget: Budget, raw: RawObject, l: PeriodLedger): Record<string, unknown> {
    const { granted, spent } = ledgerTotals(l);
    const reserved = granted > spent ? granted - spent : 0n;
    const remaining = l.limit > granted ? l.limit - granted : 0n;
    const pct = l.limit > 0n ? Number((spent * 10000n) / l.limit) / 100 : 100;
    const lowest = Math.min(...budget.spec.alertThresholds, 100);
    const state = spent >= l.limit || (l.exhausted && remaining === 0n) ? 'Exceeded' : pct >= lowest ? 'Warning' : 'Ok';
    const old = (raw.status ?? {}) as { conditions?: [] };
    const now = this.o.now();
    const conditions = setCondition(
      old.conditions,
      {
        type: 'Ready',
        status: 'True',
        reason: state === 'Exceeded' ? 'LimitReached' : 'Enforcing',
        message: `${formatUsd(spent)} of ${budget.spec.limit} USD spent this ${budget.spec.period} period (${pct.toFixed(2)}%)`,
        observedGeneration: raw.metadata?.generation,
      },
      now,
    );
    const labels = { namespace: l.namespace, budget: l.name, period: budget.spec.period };
    this.o.gauges.limit.set(labels, Number(l.limit) / 1e9);
    this.o.gauges.spent.set(labels, Number(spent) / 1e9);
    this.o.gauges.reserved.set(labels, Number(reserved) / 1e9);
    this.o.gauges.remaining.set(labels, l.limit > 0n ? Number(remaining) / Number(l.limit) : 0);
    return {
      observedGeneration: raw.metadata?.generation,
      periodStart: l.periodStart,
      spent: formatUsd(spent),
      reserved: formatUsd(reserved),
      remaining: formatUsd(remaining),
      state,
      conditions,
      allowances: [...l.pods.values()]
        .sort((a, b) => a.pod.localeCompare(b.pod))
        .map((p) => ({ pod: p.pod, uid: p.uid, granted: p.granted.toString(), spent: p.spent.toString(), seq: p.seq, expires: new Date(p.expires).toISOString() })),
    };
  }

  /** One Event per alert threshold crossed per period. */
  private async thresholdEvents(budget: Budget, raw: RawObject, l: PeriodLedger): Promise<void> {
    const { spent } = ledgerTotals(l);
    const key = `${l.namespace}/${l.name}@${l.periodStart}`;
    let done = this.alerted.get(key);
    if (!done) {
      done = new Set();
      this.alerted.set(key, done);
    }
    for (const t of budget.spec.alertThresholds) {
      if (done.has(t) || spent * 100n < l.limit * BigInt(t)) continue;
      done.add(t);
      const now = this.o.now();
      try {
        await this.o.core.createNamespacedEvent({
          namespace: l.namespace,
          body: {
            metadata: { generateName: `${l.name}.`, namespace: l.namespace },
            involvedObject: { apiVersion: `${GROUP}/${VERSION}`, kind: 'Budget', name: l.name, namespace: l.namespace, uid: raw.metadata?.uid },
            reason: 'BudgetThreshold',
            message: `budget ${l.name} reached ${t}% of ${budget.spec.limit} USD (${formatUsd(spent)} spent) this ${budget.spec.period} period`,
            type: 'Warning',
            source: { component: 'paygo-operator' },
            firstTimestamp: now,
            lastTimestamp: now,
            count: 1,
          },
        });
      } catch (err) {
        this.o.logger.warn({ error: (err as Error).message }, 'could not record a budget Event');
      }
    }
  }
}
