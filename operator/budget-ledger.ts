import { parseUsd } from '../crds/src/money.js';
import { periodBounds } from '../crds/src/period.js';
import type { BudgetAllowance, BudgetSpec, BudgetStatus, BudgetSyncRequest, BudgetSyncResponse } from '../crds/src/index.js';

/**
 * Where a holder (one sidecar process) stands:
 * - Active: it reports; what it was granted and has not reported spent is reserved for it.
 * - Closed: its final report came (after its last request settled); nothing more will come.
 * - Lost: it went away without a final report (a new process of its pod appeared, or it was
 *   silent past its allowance's expiry plus the grace). What it held beyond its reported spend
 *   may have been billed, so it stays spent, unless the process proves otherwise by reporting.
 */
export type HolderState = 'Active' | 'Closed' | 'Lost';

/** One sidecar process's allowance in one budget period. Amounts in nano-USD. */
export interface Holder {
  pod: string;
  uid: string;
  /** The process (incarnation) of the pod: a restarted sidecar is another holder. */
  boot: string;
  /** Allowance granted to this process for the period: the most it may ever have spent. */
  granted: bigint;
  /** Cumulative spend the process reported. */
  spent: bigint;
  /** Highest sync sequence applied (duplicates and stale retries are ignored). */
  seq: number;
  /** The allowance is valid until then unless renewed. */
  expires: number;
  state: HolderState;
  /** When the holder became Closed or Lost. */
  endedAt?: number;
  /**
   * This process has ended for good: a later process of its pod reported (a pod runs one
   * sidecar process at a time), or its pod is gone.
   */
  replaced?: boolean;
}

/** Holders that ended and were folded into totals (their allowances are never granted again). */
export interface Retired {
  processes: number;
  /** Spend they reported. */
  spent: bigint;
  /** What they held beyond their reported spend when they ended: counted as spent. */
  unreported: bigint;
}

export interface PeriodLedger {
  namespace: string;
  name: string;
  periodStart: string;
  limit: bigint;
  /** By holder key (`uid/boot`). */
  holders: Map<string, Holder>;
  retired: Retired;
  /** A sidecar asked for more than was left. */
  exhausted: boolean;
}

/** One budget entry of a process's sync (amounts in nano-USD; see BUDGET_SYNC_PATH). */
export interface SyncReport {
  seq: number;
  /** The process's cumulative spend this period. */
  spent: bigint;
  /** Allowance the process keeps; the rest of its grant comes back. */
  keep: bigint;
  /** Extra allowance asked for. */
  want: bigint;
  /** Least extra allowance worth granting (below it, nothing is granted). */
  need: bigint;
  /** The process's last report: every request it admitted has settled (or `keep` still covers it). */
  final?: boolean;
}

export interface EntryResult {
  granted: bigint;
  expires: number;
  /** Must this change be persisted before answering (a grant grew, or a holder closed)? */
  durable: boolean;
}

export interface HolderId {
  name: string;
  uid: string;
  /** Empty for sidecars that do not name their process (one holder per pod). */
  boot: string;
}

export function holderKey(uid: string, boot: string): string {
  return `${uid}/${boot}`;
}

export interface LedgerTotals {
  /** Σ granted of live holders plus everything retired holders consumed: what the limit must cover. */
  committed: bigint;
  /** Spend reported by every process. */
  reported: bigint;
  /** What ended processes held beyond their reported spend (counted as spent). */
  unreported: bigint;
  /** Allowance of Active holders not yet reported spent (money that may still come back). */
  outstanding: bigint;
}

export function ledgerTotals(l: PeriodLedger): LedgerTotals {
  let committed = l.retired.spent + l.retired.unreported;
  let reported = l.retired.spent;
  let unreported = l.retired.unreported;
  let outstanding = 0n;
  for (const h of l.holders.values()) {
    committed += h.granted;
    reported += h.spent;
    const held = h.granted > h.spent ? h.granted - h.spent : 0n;
    if (h.state === 'Active') outstanding += held;
    else unreported += held;
  }
  return { committed, reported, unreported, outstanding };
}

/** The book as Budget.status keeps it (`allowances`, `retired`): what a new leader restores. */
export function bookToStatus(l: PeriodLedger): Required<Pick<BudgetStatus, 'allowances' | 'retired'>> {
  return {
    allowances: [...l.holders.values()]
      .sort((a, b) => a.pod.localeCompare(b.pod) || (a.endedAt ?? Infinity) - (b.endedAt ?? Infinity))
      .map((h) => ({
        pod: h.pod,
        uid: h.uid,
        ...(h.boot ? { boot: h.boot } : {}),
        state: h.state,
        granted: h.granted.toString(),
        spent: h.spent.toString(),
        seq: h.seq,
        expires: new Date(h.expires).toISOString(),
        ...(h.endedAt !== undefined ? { endedAt: new Date(h.endedAt).toISOString() } : {}),
        ...(h.replaced ? { replaced: true } : {}),
      })),
    retired: { processes: l.retired.processes, spent: l.retired.spent.toString(), unreported: l.retired.unreported.toString() },
  };
}

/** Rebuilds a period's book from Budget.status (holders written by older operators are Active, one per pod). */
export function bookFromStatus(namespace: string, name: string, periodStart: string, limit: bigint, status: Pick<BudgetStatus, 'allowances' | 'retired'>): PeriodLedger {
  const l = BudgetLedger.empty(namespace, name, periodStart, limit);
  for (const a of status.allowances ?? []) {
    const boot = a.boot ?? '';
    l.holders.set(holderKey(a.uid, boot), {
      pod: a.pod,
      uid: a.uid,
      boot,
      granted: BigInt(a.granted),
      spent: BigInt(a.spent),
      seq: a.seq,
      expires: Date.parse(a.expires),
      state: a.state ?? 'Active',
      ...(a.endedAt ? { endedAt: Date.parse(a.endedAt) } : {}),
      ...(a.replaced ? { replaced: true } : {}),
    });
  }
  if (status.retired) l.retired = { processes: status.retired.processes, spent: BigInt(status.retired.spent), unreported: BigInt(status.retired.unreported) };
  return l;
}

/**
 * The operator's budget book: per budget and period, what each sidecar process was granted and
 * reported. The rule (docs/architecture.md, section 5): a holder's grant shrinks only by its own
 * report (`keep`), never by the operator's guess; a process that ends without saying what it
 * spent keeps its whole grant as spent. So Σ committed ≤ limit holds whatever the order,
 * duplication or loss of messages, and whatever processes crash; the fleet's billed spend is at
 * most Σ committed.
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

  static empty(namespace: string, name: string, periodStart: string, limit: bigint): PeriodLedger {
    return { namespace, name, periodStart, limit, holders: new Map(), retired: { processes: 0, spent: 0n, unreported: 0n }, exhausted: false };
  }

  /** The ledger of the budget's current period (a new period starts empty). */
  current(namespace: string, name: string, spec: BudgetSpec): PeriodLedger {
    const key = BudgetLedger.key(namespace, name);
    const periodStart = periodBounds(spec.period, spec.timeZone, new Date(this.o.now())).start.toISOString();
    const limit = parseUsd(spec.limit);
    let l = this.ledgers.get(key);
    if (!l || l.periodStart !== periodStart) {
      l = BudgetLedger.empty(namespace, name, periodStart, limit);
      this.ledgers.set(key, l);
    }
    l.limit = limit; // a lowered limit grants nothing more; granted allowances stay valid
    return l;
  }

  get(namespace: string, name: string): PeriodLedger | undefined {
    return this.ledgers.get(BudgetLedger.key(namespace, name));
  }

  /** Replaces a budget's book with the one persisted in Budget.status (after a restart or a leader change). */
  restore(l: PeriodLedger): void {
    this.ledgers.set(BudgetLedger.key(l.namespace, l.name), l);
  }

  /** Applies one sync entry of a process and grants what fits. */
  apply(l: PeriodLedger, id: HolderId, report: SyncReport): EntryResult {
    const now = this.o.now();
    const key = holderKey(id.uid, id.boot);
    let h = l.holders.get(key);
    if (!h) {
      h = { pod: id.name, uid: id.uid, boot: id.boot, granted: 0n, spent: 0n, seq: 0, expires: 0, state: 'Active' };
      l.holders.set(key, h);
    }
    // Duplicates, stale retries, and anything after a process's final report change nothing.
    if (report.seq <= h.seq || h.state === 'Closed') return { granted: h.granted, expires: h.expires, durable: false };
    h.seq = report.seq;
    // A pod runs one sidecar process at a time: the one reporting now means every other process
    // of the pod has ended (checked on every report, so it also holds after a book was restored
    // from before the new process appeared); those that did not close lose what they held.
    if (!h.replaced) {
      for (const other of l.holders.values()) {
        if (other === h || other.uid !== id.uid || other.replaced) continue;
        other.replaced = true;
        if (other.state === 'Active') this.end(other, 'Lost', now);
      }
    }
    if (h.state === 'Lost') {
      // It was alive after all: its report is the truth again.
      h.state = 'Active';
      h.endedAt = undefined;
    }
    if (report.spent > h.spent) h.spent = report.spent;
    // Giving back: only what the process itself says it does not hold, never below its spend.
    const kept = report.keep > h.spent ? report.keep : h.spent;
    if (kept < h.granted) h.granted = kept;
    if (h.granted < h.spent) h.granted = h.spent; // reported spend beyond the allowance is still counted
    if (report.final) {
      this.end(h, 'Closed', now);
      return { granted: h.granted, expires: h.expires, durable: true };
    }
    let durable = false;
    if (report.want > 0n) {
      const { committed } = ledgerTotals(l);
      const available = l.limit > committed ? l.limit - committed : 0n;
      const fits = available > 0n && available >= report.need;
      const give = !fits ? 0n : report.want < available ? report.want : available;
      if (give > 0n) {
        h.granted += give;
        durable = true;
      }
      l.exhausted = give < report.want;
    }
    h.expires = now + this.ttlMs;
    return { granted: h.granted, expires: h.expires, durable };
  }

  private end(h: Holder, state: 'Closed' | 'Lost', now: number): void {
    h.state = state;
    h.endedAt = now;
  }

  /**
   * Answers one entry of a process's sync against the budget's current period: applies it and
   * tells the process its allowance, what is outstanding fleet-wide and what is left to grant.
   * An entry for another period (or no budget: `spec` undefined) gets nothing.
   */
  answer(
    namespace: string,
    spec: BudgetSpec | undefined,
    id: HolderId,
    sync: { seq: number; final?: boolean },
    e: BudgetSyncRequest['entries'][number],
  ): { entry: BudgetSyncResponse['entries'][number]; applied: boolean; durable: boolean } {
    const nothing = { name: e.name, periodStart: e.periodStart, granted: '0', spent: '0', outstanding: '0', available: '0', expires: new Date(this.o.now()).toISOString() };
    if (!spec) return { entry: nothing, applied: false, durable: false };
    const l = this.current(namespace, e.name, spec);
    if (l.periodStart !== e.periodStart) return { entry: nothing, applied: false, durable: false };
    const r = this.apply(l, id, { seq: sync.seq, spent: BigInt(e.spent), keep: BigInt(e.keep), want: BigInt(e.want), need: BigInt(e.need ?? '0'), final: sync.final });
    const totals = ledgerTotals(l);
    const entry = {
      name: e.name,
      periodStart: l.periodStart,
      granted: r.granted.toString(),
      spent: (l.holders.get(holderKey(id.uid, id.boot))?.spent ?? 0n).toString(),
      outstanding: totals.outstanding.toString(),
      available: (l.limit > totals.committed ? l.limit - totals.committed : 0n).toString(),
      expires: new Date(r.expires).toISOString(),
    };
    return { entry, applied: true, durable: r.durable };
  }

  /** Active holders whose allowance expired: their process is silent, perhaps because its pod is gone. */
  silentHolders(): Array<{ namespace: string; pod: string; uid: string }> {
    const now = this.o.now();
    const out = new Map<string, { namespace: string; pod: string; uid: string }>();
    for (const l of this.ledgers.values()) {
      for (const h of l.holders.values()) {
        if (h.state === 'Active' && h.expires < now) out.set(`${l.namespace}/${h.uid}`, { namespace: l.namespace, pod: h.pod, uid: h.uid });
      }
    }
    return [...out.values()];
  }

  /**
   * The pod with this UID no longer exists. The API server removes a pod only once its
   * containers have stopped, so its processes have ended for good: those that did not close
   * are Lost, what they held stays spent. Returns the budgets that changed.
   */
  podGone(namespace: string, uid: string): string[] {
    const now = this.o.now();
    const changed: string[] = [];
    for (const [key, l] of this.ledgers) {
      if (l.namespace !== namespace) continue;
      for (const h of l.holders.values()) {
        if (h.uid !== uid || h.replaced) continue;
        h.replaced = true;
        if (h.state === 'Active') this.end(h, 'Lost', now);
        changed.push(key);
      }
    }
    return [...new Set(changed)];
  }

  /**
   * Periodic book-keeping; returns the budgets that changed. An Active holder silent past its
   * expiry plus the grace is Lost: its grant stays committed. A holder that can never report
   * again (Closed, or replaced by a later process of its pod) is folded into the retired totals
   * a grace after it ended (by then no retry of its last report can still arrive), which keeps
   * Budget.status small. A Lost holder that was not replaced stays listed: it may only have been
   * cut off from the operator, and its report would still be the truth.
   */
  expire(): string[] {
    const now = this.o.now();
    const changed: string[] = [];
    for (const [key, l] of this.ledgers) {
      for (const [hk, h] of l.holders) {
        if (h.state === 'Active' && h.expires + this.graceMs < now) {
          this.end(h, 'Lost', now);
          changed.push(key);
        } else if ((h.state === 'Closed' || (h.state === 'Lost' && h.replaced)) && (h.endedAt ?? 0) + this.graceMs < now) {
          l.retired.processes += 1;
          l.retired.spent += h.spent;
          l.retired.unreported += h.granted > h.spent ? h.granted - h.spent : 0n;
          l.holders.delete(hk);
          changed.push(key);
        }
      }
    }
    return [...new Set(changed)];
  }
}
