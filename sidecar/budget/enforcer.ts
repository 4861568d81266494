import type { Logger } from 'pino';
import type { SnapshotBudget } from '../../crds/src/index.js';
import { parseUsd } from '../../crds/src/money.js';
import { budgetKey, type BudgetFunds } from './funds.js';
import { periodBounds } from '../../crds/src/period.js';

/** What a request holds against its budgets until it settles. */
export interface BudgetHold {
  reservations: Array<{ key: string; reserved: bigint }>;
  /** Keys of alert-only budgets: spend is recorded, never refused. */
  alertKeys: Array<{ key: string; budget: SnapshotBudget }>;
  settled: boolean;
}

export class BudgetExceededError extends Error {
  override readonly name = 'BudgetExceededError';
  constructor(
    readonly budget: SnapshotBudget,
    /** Seconds until the next period starts. */
    readonly retryAfterSeconds: number,
    readonly periodEnd: Date,
  ) {
    super(`budget ${budget.namespace}/${budget.name} is exhausted for this ${budget.spec.period} period`);
  }
}

/** A hard budget's fleet-wide ledger (the operator) could not be reached: the request is refused unserved. */
export class BudgetUnavailableError extends Error {
  override readonly name = 'BudgetUnavailableError';
  constructor(readonly budget: SnapshotBudget) {
    super(`budget ${budget.namespace}/${budget.name}: the operator that keeps its ledger could not be reached`);
  }
}

/** The sidecar is shutting down and holds too little allowance for the request: refused unserved. */
export class BudgetDrainingError extends Error {
  override readonly name = 'BudgetDrainingError';
  constructor(readonly budget: SnapshotBudget) {
    super(`budget ${budget.namespace}/${budget.name}: the sidecar is shutting down`);
  }
}

export interface BudgetEvents {
  onRefused?(budget: SnapshotBudget, action: 'block' | 'downgrade'): void;
  onOverLimit?(budget: SnapshotBudget): void;
}

/**
 * Budget admission: a request reserves its worst-case cost in every hard budget that covers
 * it before any upstream call, and settles with its real cost afterwards (what it did not
 * spend comes back). Reservations are all-or-nothing across budgets.
 */
export class BudgetEnforcer {
  private budgets: SnapshotBudget[] = [];
  /** Holds admitted and not yet settled (a drain waits for them). */
  private open = 0;
  private onIdle: Array<() => void> = [];

  constructor(
    private readonly funds: BudgetFunds,
    private readonly o: { now: () => Date; logger: Logger; events?: BudgetEvents },
  ) {}

  setBudgets(budgets: SnapshotBudget[]): void {
    this.budgets = budgets;
  }

  all(): SnapshotBudget[] {
    return this.budgets;
  }

  /** Budgets whose scope covers a request to this route with this model name. */
  covering(namespace: string, route: string, model: string): SnapshotBudget[] {
    return this.budgets.filter((b) => {
      if (b.namespace !== namespace) return false;
      const scope = b.spec.scope;
      if (scope.routes && !scope.routes.includes(route)) return false;
      if (scope.models && !scope.models.includes(model)) return false;
      return true;
    });
  }

  /** The tightest per-request output cap the budgets set, if any. */
  outputCap(budgets: SnapshotBudget[]): number | undefined {
    const caps = budgets.map((b) => b.spec.maxOutputTokensPerRequest).filter((c): c is number => c !== undefined);
    return caps.length ? Math.min(...caps) : undefined;
  }

  key(b: SnapshotBudget, now = this.o.now()): { key: string; end: Date } {
    const { start, end } = periodBounds(b.spec.period, b.spec.timeZone, now);
    return { key: budgetKey(b.namespace, b.name, start), end };
  }

  limitNano(b: SnapshotBudget): bigint {
    return parseUsd(b.spec.limit);
  }

  /** Reserves `worstCase` in each hard budget; throws BudgetExceededError naming the first that cannot take it. */
  async admit(budgets: SnapshotBudget[], worstCase: bigint): Promise<BudgetHold> {
    const hold: BudgetHold = { reservations: [], alertKeys: [], settled: false };
    const now = this.o.now();
    for (const b of budgets) {
      const { key, end } = this.key(b, now);
      if (b.spec.action === 'alert') {
        hold.alertKeys.push({ key, budget: b });
        continue;
      }
      const outcome = await this.funds.reserve(key, this.limitNano(b), worstCase);
      if (outcome === 'reserved') {
        hold.reservations.push({ key, reserved: worstCase });
        continue;
      }
      this.release(hold);
      // Fail closed, but say why: a ledger out of reach is not a spent budget, nor is a drain.
      if (outcome === 'unavailable') throw new BudgetUnavailableError(b);
      if (outcome === 'draining') throw new BudgetDrainingError(b);
      this.o.events?.onRefused?.(b, b.spec.action === 'downgrade' ? 'downgrade' : 'block');
      throw new BudgetExceededError(b, Math.max(1, Math.ceil((end.getTime() - now.getTime()) / 1000)), end);
    }
    this.open++;
    return hold;
  }

  /** Settles a hold with the request's real cost. Safe to call once; later calls do nothing. */
  settle(hold: BudgetHold, actual: bigint): void {
    if (hold.settled) return;
    hold.settled = true;
    if (--this.open === 0) for (const resolve of this.onIdle.splice(0)) resolve();
    for (const r of hold.reservations) this.funds.settle(r.key, r.reserved, actual);
    for (const a of hold.alertKeys) {
      this.funds.record(a.key, actual);
      const { spent } = this.funds.view(a.key);
      if (spent > this.limitNano(a.budget)) this.o.events?.onOverLimit?.(a.budget);
    }
  }

  /** Holds admitted and not settled yet. */
  get unsettled(): number {
    return this.open;
  }

  /** Resolves once every admitted hold has settled. */
  settled(): Promise<void> {
    return this.open === 0 ? Promise.resolve() : new Promise((resolve) => this.onIdle.push(resolve));
  }

  private release(hold: BudgetHold): void {
    for (const r of hold.reservations) this.funds.settle(r.key, r.reserved, 0n);
    hold.reservations = [];
    hold.settled = true;
  }
}
