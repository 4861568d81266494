import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { BudgetFunds, Reservation } from './funds.js';

interface Entry {
  spent: bigint;
  reserved: bigint;
}

/**
 * Standalone budgets: the sidecar is the only spender, so the ledger is local. Spend is
 * persisted to a JSON file (atomically, debounced) so a restart in the same period continues
 * where it stopped; reservations are in-flight requests and die with the process.
 */
export class LocalFunds implements BudgetFunds {
  private readonly entries = new Map<string, Entry>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly file: string,
    private readonly logger: Logger,
    private readonly flushMs = 500,
  ) {
    try {
      const saved = JSON.parse(readFileSync(file, 'utf8')) as { spentNano?: Record<string, string> };
      for (const [key, spent] of Object.entries(saved.spentNano ?? {})) this.entries.set(key, { spent: BigInt(spent), reserved: 0n });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') logger.warn({ file, error: (err as Error).message }, 'budget state unreadable; starting from zero');
    }
  }

  private entry(key: string): Entry {
    let e = this.entries.get(key);
    if (!e) {
      e = { spent: 0n, reserved: 0n };
      this.entries.set(key, e);
    }
    return e;
  }

  async reserve(key: string, limitNano: bigint, amount: bigint): Promise<Reservation> {
    const e = this.entry(key);
    if (e.spent + e.reserved + amount > limitNano) return 'exhausted';
    e.reserved += amount;
    return 'reserved';
  }

  settle(key: string, reserved: bigint, actual: bigint): void {
    const e = this.entry(key);
    e.reserved -= reserved;
    e.spent += actual;
    this.schedule();
  }

  record(key: string, actual: bigint): void {
    this.entry(key).spent += actual;
    this.schedule();
  }

  view(key: string): { spent: bigint; reserved: bigint } {
    const e = this.entries.get(key);
    return { spent: e?.spent ?? 0n, reserved: e?.reserved ?? 0n };
  }

  private schedule(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush();
    }, this.flushMs);
  }

  flush(): void {
    const spentNano: Record<string, string> = {};
    for (const [key, e] of this.entries) spentNano[key] = e.spent.toString();
    try {
      mkdirSync(dirname(this.file), { recursive: true });
      const tmp = `${this.file}.tmp`;
      writeFileSync(tmp, JSON.stringify({ spentNano }));
      renameSync(tmp, this.file);
    } catch (err) {
      this.logger.warn({ file: this.file, error: (err as Error).message }, 'could not persist budget state');
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flush();
  }
}
