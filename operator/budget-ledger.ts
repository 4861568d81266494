import { parseUsd } from '../crds/src/money.js';
import { periodBounds } from '../crds/src/period.js';
import type { BudgetSpec, BudgetSyncRequest, BudgetSyncResponse } from '../crds/src/index.js';

/** One pod's allowance in one budget period. Amounts in nano-USD. */
export interface PodAllowance {
  pod: string;
  uid: string;
  /** Total allowance granted for the period (what the pod may spend at most). */
  granted: bigint;
  /** Cumulative spend the pod reported. */
  spent: bigint;
  /** Highest sync sequence applied (duplicates and stale retries are ignored). */
  seq: number;
  /** The allowance is valid until then unless renewed; reclaimed after the grace. */
  expires: number;
}

export interface PeriodLedger {
  namespace: string;
  name: string;
  periodStart: string;
  limit: bigint;
  pods: Map<string, PodAllowance>;
  /** A sidecar asked for more than was left. */
  exhausted: boolean;
}

/** One budget entry of a pod's sync (amounts in nano-USD; see BUDGET_SYNC_PATH). */
export interface SyncReport {
  seq: number;
  /** The pod's cumulative spend this period. */
  spent: bigint;
  /** Allowance the pod keeps; the rest of its grant comes back. */
  keep: bigint;
  /** Extra allowance asked for. */
  want: bigint;
  /** Least extra allowance worth granting (below it, nothing is granted). */
  need: bigint;
}

export interface EntryResult {
  granted: bigint;
  expires: number;
  /** Did the granted total grow (must be persisted before answering)? */
  grew: boolean;
}

export function ledgerTotals(l: PeriodLedger): { granted: bigint; spent: bigint } {
  let granted = 0n;
  let spent = 0n;
  for (const p of l.pods.values()) {
    granted += p.granted;
    spent += p.spent;
  }
  return { granted, spent };
}

/**
 * The operator's budget book: per budget and period, what each pod was granted and spent.
 * Invariant: Σ granted ≤ limit, so the fleet can never spend more than the limit, whatever the
 * order or duplication of messages. Allowances expire unless renewed; an expired one is
 * reclaimed (reduced to what the pod spent) only after a grace that outlasts any request the
 * pod reserved before its allowance expired.
 */
export class BudgetLedger {
  private readonly ledgers = new Map<string, PeriodLedger>();

  constructor(
    private readonly o: { now: () => number; ttlMs?: number; graceMs?: number } = { now: Date.now },
  ) {}

  get ttlMs(): number {
    return this.o.ttlMs ?? 30_000;
  }

  private get graceMs(): number {
    return this.o.graceMs ?? 600_000;
  }

  static key(namespace: string, name: string): string {
    return `${namespace}/${name}`;
  }

  /** The ledger of the budget's current period (a new period starts empty). */
  current(namespace: string, name: string, spec: BudgetSpec): PeriodLedger {
    const key = BudgetLedger.key(namespace, name);
    const periodStart = periodBounds(spec.period, spec.timeZone, new Date(this.o.now())).start.toISOString();
    const limit = parseUsd(spec.limit);
    let l = this.ledgers.get(key);
    if (!l || l.periodStart !== periodStart) {
      l = { namespace, name, periodStart, limit, pods: new Map(), exhausted: false };
      this.ledgers.set(key, l);
    }
    l.limit = limit; // a lowered limit grants nothing more; granted allowances stay valid
    return l;
  }

  get(namespace: string, name: string): PeriodLedger | undefined {
    return this.ledgers.get(BudgetLedger.key(namespace, name));
  }

  /** Restores a ledger persisted in Budget.status (after a restart or a leader change). */
  restore(l: PeriodLedger): void {
    const key = BudgetLedger.key(l.namespace, l.name);
    const existing = this.ledgers.get(key);
    if (!existing || existing.periodStart !== l.periodStart) this.ledgers.set(key, l);
  }

  forget(namespace: string, name: string): void {
    this.ledgers.delete(BudgetLedger.key(namespace, name));
  }

  /** Applies one sync entry of a pod and grants what fits. */
  apply(l: PeriodLedger, pod: { name: string; uid: string }, report: SyncReport): EntryResult {
    const now = this.o.now();
    let p = l.pods.get(pod.uid);
    if (!p) {
      p = { pod: pod.name, uid: pod.uid, granted: 0n, spent: 0n, seq: 0, expires: 0 };
      l.pods.set(pod.uid, p);
    }
    if (report.seq <= p.seq) return { granted: p.granted, expires: p.expires, grew: false };
    p.seq = report.seq;
    if (report.spent > p.spent) p.spent = report.spent;
    // Giving back: never below what the pod spent.
    const kept = report.keep > p.spent ? report.keep : p.spent;
    if (kept < p.granted) p.granted = kept;
    if (p.granted < p.spent) p.granted = p.spent; // reported spend beyond the allowance is still counted
    let grew = false;
    if (report.want > 0n) {
      const available = l.limit - ledgerTotals(l).granted;
      const fits = available > 0n && available >= report.need;
      const give = !fits ? 0n : report.want < available ? report.want : available;
      if (give > 0n) {
        p.granted += give;
        grew = true;
      }
      l.exhausted = give < report.want;
    }
    p.expires = now + this.ttlMs;
    return { granted: p.granted, expires: p.expires, grew };
  }

  /**
   * Answers one entry of a pod's sync against the budget's current period: applies it and
   * tells the pod its allowance, what is outstanding fleet-wide and what is left to grant.
   * An entry for another period (or no budget: `spec` undefined) gets nothing.
   */
  answer(
    namespace: string,
    spec: BudgetSpec | undefined,
    pod: { name: string; uid: string },
    seq: number,
    e: BudgetSyncRequest['entries'][number],
  ): { entry: BudgetSyncResponse['entries'][number]; applied: boolean; grew: boolean } {
    const nothing = { name: e.name, periodStart: e.periodStart, granted: '0', spent: '0', outstanding: '0', available: '0', expires: new Date(this.o.now()).toISOString() };
    if (!spec) return { entry: nothing, applied: false, grew: false };
    const l = this.current(namespace, e.name, spec);
    if (l.periodStart !== e.periodStart) return { entry: nothing, applied: false, grew: false };
    const r = this.apply(l, pod, { seq, spent: BigInt(e.spent), keep: BigInt(e.keep), want: BigInt(e.want), need: BigInt(e.need ?? '0') });
    const totals = ledgerTotals(l);
    const entry = {
      name: e.name,
      periodStart: l.periodStart,
      granted: r.granted.toString(),
      spent: (l.pods.get(pod.uid)?.spent ?? 0n).toString(),
      outstanding: (totals.granted > totals.spent ? totals.granted - totals.spent : 0n).toString(),
      available: (l.limit > totals.granted ? l.limit - totals.granted : 0n).toString(),
      expires: new Date(r.expires).toISOString(),
    };
    return { entry, applied: true, grew: r.grew };
  }

  /** Reclaims allowances of pods silent past expiry + grace; returns the budgets that changed. */
  reclaim(): string[] {
    const now = this.o.now();
    const changed: string[] = [];
    for (const [key, l] of this.ledgers) {
      for (const p of l.pods.values()) {
        if (p.granted > p.spent && p.expires + this.graceMs < now) {
          p.granted = p.spent;
          changed.push(key);
        }
      }
    }
    return [...new Set(changed)];
  }
}
