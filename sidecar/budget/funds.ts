/**
 * Where budget reservations draw money from. Amounts are integer nano-USD. A key names one
 * budget in one period ("namespace/name@periodStartISO"), so a new period starts from zero.
 */
export type Reservation = 'reserved' | 'exhausted' | 'unavailable' | 'draining';

export interface BudgetFunds {
  /**
   * Reserves `amount` against the limit. `exhausted`: it does not fit; `unavailable`: whether it
   * fits is unknown (the fleet's ledger could not be reached); `draining`: the process is
   * shutting down and holds too little. Nothing is reserved unless `reserved`.
   */
  reserve(key: string, limitNano: bigint, amount: bigint): Promise<Reservation>;
  /** Turns a reservation into spend: `actual` is spent, the rest of `reserved` comes back. */
  settle(key: string, reserved: bigint, actual: bigint): void;
  /** Spend that was never reserved (action alert: over the limit on purpose). */
  record(key: string, actual: bigint): void;
  /** What this view knows: spent and currently reserved. */
  view(key: string): { spent: bigint; reserved: bigint };
  /** Shutting down: no new money is asked for (requests still reserve what is at hand). */
  drain?(): void;
  /** Last words, after every reservation settled: persist or report spend, give back the rest. */
  close(withinMs?: number): Promise<void>;
}

export function budgetKey(namespace: string, name: string, periodStart: Date): string {
  return `${namespace}/${name}@${periodStart.toISOString()}`;
}
