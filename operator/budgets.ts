import type { CoreV1Api, CustomObjectsApi } from '@kubernetes/client-node';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import type { Gauge } from 'prom-client';
import { BUDGET_SYNC_PATH, BudgetSchema, BudgetSyncRequestSchema, GROUP, VERSION, formatIssues, type Budget, type BudgetStatus, type BudgetSyncResponse, type Condition } from '../crds/src/index.js';
import { formatUsd, parseUsd } from '../crds/src/money.js';
import type { TokenAuthenticator } from './auth.js';
import { BudgetLedger, bookFromStatus, bookToStatus, ledgerTotals, type PeriodLedger } from './budget-ledger.js';
import type { ClusterCache, RawObject } from './cache.js';
import { setCondition } from './conditions.js';
import { answeringErrors } from './internal-error.js';
import { identifySidecar } from './sidecar-caller.js';
import { checkBudget } from './snapshots.js';

/** Silent processes' pods are looked up every this many 1 s ticks. */
const POD_CHECK_EVERY_TICKS = 5;

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
      /** Period of the book-keeping tick (default 1 s; tests shorten it). */
      tickMs?: number;
    },
  ) {
    this.ledger = new BudgetLedger({ now: () => o.now().getTime(), ttlMs: o.ttlMs, graceMs: o.graceMs });
  }

  register(app: FastifyInstance): void {
    app.post(BUDGET_SYNC_PATH, (req, reply) => answeringErrors(reply, this.o.logger, () => this.sync(req, reply)));
  }

  /** Periodic work: flush spend, mark ended processes Lost, fold ended ones into totals. */
  start(): void {
    let ticks = 0;
    this.flushTimer = setInterval(() => {
      if (!this.o.isLeader()) return;
      if (++ticks % POD_CHECK_EVERY_TICKS === 0) void this.checkSilentPods();
      for (const key of this.ledger.expire()) this.dirty.add(key);
      for (const key of [...this.dirty]) void this.persist(key).catch((err: unknown) => this.o.logger.warn({ budget: key, error: (err as Error).message }, 'budget status write failed'));
    }, this.o.tickMs ?? 1000);
    this.flushTimer.unref();
  }

  stop(): void {
    clearInterval(this.flushTimer);
  }

  /**
   * Processes whose allowance expired unrenewed: is their pod still there? A pod that is gone
   * (deleted, or re-created under another UID) will never report again, so its processes are
   * Lost now rather than after the grace.
   */
  private async checkSilentPods(): Promise<void> {
    for (const h of this.ledger.silentHolders()) {
      let gone: boolean;
      try {
        const pod = await this.o.core.readNamespacedPod({ name: h.pod, namespace: h.namespace });
        gone = pod.metadata?.uid !== h.uid;
      } catch (err) {
        if ((err as { code?: number }).code !== 404) continue; // unknown: ask again later
        gone = true;
      }
      if (gone) for (const key of this.ledger.podGone(h.namespace, h.uid)) this.dirty.add(key);
    }
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
      const status = (raw.status ?? {}) as BudgetStatus;
      const ns = b.metadata.namespace ?? 'default';
      const current = this.ledger.current(ns, b.metadata.name, b.spec);
      if (status.periodStart !== current.periodStart) continue;
      const l = bookFromStatus(ns, b.metadata.name, current.periodStart, parseUsd(b.spec.limit), status);
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
    const id = await identifySidecar(req, reply, this.o);
    if (!id) return;
    const parsed = BudgetSyncRequestSchema.safeParse(req.body);
    if (!parsed.success) {
      await reply.code(400).send({ error: { message: formatIssues(parsed.error), code: 'invalid_sync' } });
      return;
    }
    const out: BudgetSyncResponse = { entries: [] };
    const durable = new Set<string>();
    const { seq, boot, final } = parsed.data;
    for (const e of parsed.data.entries) {
      const raw = this.o.cache.budgets.get(e.name, id.namespace);
      // Only the pod's own namespace, and only budgets that cover it; anything else gets nothing.
      const budget = raw ? checkBudget(raw) : undefined;
      const answer = this.ledger.answer(id.namespace, budget?.spec, { name: id.podName, uid: id.podUid, boot: boot ?? '' }, { seq, final }, e);
      out.entries.push(answer.entry);
      if (!answer.applied) continue;
      const key = BudgetLedger.key(id.namespace, e.name);
      this.dirty.add(key);
      if (answer.durable || final) durable.add(key);
    }
    // Money handed out is written down before the sidecar may spend it, and a process's final
    // report before it exits (a new leader must not take it for a lost process).
    await Promise.all([...durable].map((k) => this.persist(k)));
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
    const { committed, reported, unreported, outstanding } = ledgerTotals(l);
    // Money a process held when it ended without saying what it spent may have been billed.
    const spent = reported + unreported;
    const remaining = l.limit > committed ? l.limit - committed : 0n;
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
    this.o.gauges.reserved.set(labels, Number(outstanding) / 1e9);
    this.o.gauges.remaining.set(labels, l.limit > 0n ? Number(remaining) / Number(l.limit) : 0);
    return {
      observedGeneration: raw.metadata?.generation,
      periodStart: l.periodStart,
      spent: formatUsd(spent),
      unreported: formatUsd(unreported),
      reserved: formatUsd(outstanding),
      remaining: formatUsd(remaining),
      state,
      conditions,
      ...bookToStatus(l),
    };
  }

  /** One Event per alert threshold crossed per period. */
  private async thresholdEvents(budget: Budget, raw: RawObject, l: PeriodLedger): Promise<void> {
    const totals = ledgerTotals(l);
    const spent = totals.reported + totals.unreported;
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
