import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Logger } from 'pino';
import { Agent } from 'undici';
import { BUDGET_SYNC_PATH, BudgetSyncResponseSchema, type BudgetSyncRequest } from '../../crds/src/protocol.js';
import type { BudgetFunds, Reservation } from './funds.js';
import { SerialRun } from '../serial-run.js';

interface Allowance {
  name: string;
  periodStart: string;
  granted: bigint;
  spent: bigint;
  reserved: bigint;
  /** Local time after which the allowance must not be used (renewed by every sync). */
  validUntil: number;
  /** Fleet-wide allowance not yet spent: money that may still come back. */
  outstanding: bigint;
  /** What the operator had left to grant at the last sync. */
  available: bigint;
  /** Amounts of the requests here waiting for allowance. */
  waiting: bigint[];
  /** Typical reservation, for the cushion kept between syncs. */
  lastAmount: bigint;
  /** Whether the operator's answer to the latest sync covered this allowance. */
  answered: boolean;
}

export interface RemoteFundsOptions {
  url: string;
  tokenFile: string;
  ca: string | undefined;
  logger: Logger;
  now?: () => number;
  /** Batch window for spend reports. */
  syncDelayMs?: number;
  /** Heartbeat renewing allowances while idle. */
  heartbeatMs?: number;
  /** How long a request may wait for in-flight money to come back before it is refused. */
  waitMs?: number;
  /** Names this process to the operator (random per start by default). */
  boot?: string;
}

/** Syncs a waiting request tries before it is refused as unavailable (~0.7 s in all). */
const SYNC_ATTEMPTS = 4;

/** Reservations this many ms before the allowance expires are refused (clock skew, latency). */
const EXPIRY_MARGIN_MS = 5_000;

/**
 * Fleet-wide budget funds: the sidecar spends only allowance the operator granted it. It asks
 * for more when a reservation does not fit, gives back what it does not need, and reports
 * cumulative spend with sequence numbers (a retried sync is never counted twice). When money
 * is only tied up in other requests' reservations, a request waits (bounded) for it to come
 * back instead of being refused early. Allowances belong to this process (`boot`): its final
 * report, once its last request has settled, closes them; without one, the operator counts
 * whatever this process held as spent.
 */
export class RemoteFunds implements BudgetFunds {
  readonly boot: string;
  private readonly agent: Agent;
  private readonly entries = new Map<string, Allowance>();
  private seq: number;
  private timer: NodeJS.Timeout | undefined;
  private readonly heartbeat: NodeJS.Timeout;
  private readonly now: () => number;
  /** Shutting down: no more allowance is asked for; only what is held can still be reserved. */
  private draining = false;
  /** The final report is being sent (or was): nothing is kept beyond what is unsettled. */
  private closed = false;

  constructor(private readonly o: RemoteFundsOptions) {
    this.now = o.now ?? Date.now;
    this.boot = o.boot ?? randomUUID();
    // Time-based: an operator that keys allowances by pod (no boot) must see a restarted
    // sidecar continue above its predecessor's sequence.
    this.seq = this.now();
    this.agent = new Agent({ connect: o.ca ? { ca: o.ca } : {}, headersTimeout: 10_000, bodyTimeout: 10_000 });
    this.heartbeat = setInterval(() => {
      if (this.entries.size > 0) void this.sync().catch(() => {});
    }, o.heartbeatMs ?? 5_000);
    this.heartbeat.unref();
  }

  private entry(key: string): Allowance {
    let e = this.entries.get(key);
    if (!e) {
      const at = key.lastIndexOf('@');
      const name = key.slice(key.indexOf('/') + 1, at);
      e = { name, periodStart: key.slice(at + 1), granted: 0n, spent: 0n, reserved: 0n, validUntil: 0, outstanding: 0n, available: 1n, waiting: [], lastAmount: 0n, answered: false };
      // Allowances of past periods are dropped: their keys never come back.
      for (const [k, old] of this.entries) if (old.name === name && old.periodStart !== e.periodStart && old.reserved === 0n) this.entries.delete(k);
      this.entries.set(key, e);
    }
    return e;
  }

  private fits(e: Allowance, amount: bigint): boolean {
    return this.now() < e.validUntil - EXPIRY_MARGIN_MS && e.spent + e.reserved + amount <= e.granted;
  }

  private take(e: Allowance, amount: bigint): 'reserved' {
    e.reserved += amount;
    return 'reserved';
  }

  async reserve(key: string, _limitNano: bigint, amount: bigint): Promise<Reservation> {
    // After the final report this process holds nothing it could still spend.
    if (this.closed) return 'draining';
    const e = this.entry(key);
    e.lastAmount = amount;
    if (this.fits(e, amount)) return this.take(e, amount);
    // A draining process asks for nothing more: whatever it got would only go back at once.
    if (this.draining) return 'draining';
    // Waiting requests are part of what the next sync asks for, so one round trip serves them all.
    e.waiting.push(amount);
    try {
      const waitMs = this.o.waitMs ?? 10_000;
      const deadline = this.now() + waitMs;
      for (let failures = 0; ; ) {
        try {
          await this.sync();
        } catch (err) {
          if (this.fits(e, amount)) return this.take(e, amount);
          // A replica that is not the leader, or one restarting: a few quick retries (each on a
          // new connection after a 503). Then whether the request fits is unknown, not "no":
          // refused (fail closed) as unavailable, so the client retries soon.
          if (++failures < SYNC_ATTEMPTS && this.now() < deadline && !this.draining) {
            await new Promise((r) => setTimeout(r, 100 * 2 ** (failures - 1)));
            continue;
          }
          this.o.logger.warn({ budget: e.name, error: (err as Error).message }, 'budget sync with the operator failed; request refused');
          return 'unavailable';
        }
        if (this.fits(e, amount)) return this.take(e, amount);
        if (this.draining) return 'draining';
        if (!e.answered) {
          this.o.logger.warn({ budget: e.name }, 'the operator did not answer for this budget; request refused');
          return 'unavailable';
        }
        // The limit minus the fleet's spend: if even that cannot take the request, nothing that
        // comes back ever will. Otherwise reservations in flight may settle below their worst case.
        if (e.available + e.outstanding < amount) return 'exhausted';
        if (this.now() >= deadline) {
          // Money may still come back, but not soon enough: a slow operator or long requests.
          this.o.logger.warn({ budget: e.name, waitedMs: waitMs }, 'budget allowance did not arrive in time; request refused');
          return 'exhausted';
        }
        await new Promise((r) => setTimeout(r, 25));
        if (this.fits(e, amount)) return this.take(e, amount);
        if (this.draining) return 'draining';
      }
    } finally {
      e.waiting.splice(e.waiting.indexOf(amount), 1);
    }
  }

  settle(key: string, reserved: bigint, actual: bigint): void {
    const e = this.entry(key);
    e.reserved -= reserved;
    e.spent += actual;
    this.schedule();
  }

  record(key: string, actual: bigint): void {
    const e = this.entry(key);
    e.spent += actual;
    this.schedule();
  }

  view(key: string): { spent: bigint; reserved: bigint } {
    const e = this.entries.get(key);
    return { spent: e?.spent ?? 0n, reserved: e?.reserved ?? 0n };
  }

  private schedule(): void {
    if (this.timer || this.draining) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.sync().catch(() => {});
    }, this.o.syncDelayMs ?? 100);
  }

  /** One sync at a time; every caller during a running one shares the single next one. */
  private sync(): Promise<void> {
    return this.syncs.run();
  }
  private readonly syncs = new SerialRun(() => this.doSync());

  /**
   * What to keep, ask for and need of one allowance. While the operator has money left, keep
   * what is spent, reserved and waiting plus a cushion of about as much again as is busy (so a
   * busy sidecar does not sync per request), and top it up when it runs low. When the operator
   * has nothing left, keep no cushion (others may be waiting for exactly that money) and keep
   * free money only if a request waiting here can use it; ask for what waits, and accept no
   * less than the smallest waiting request needs.
   */
  private report(e: Allowance): BudgetSyncRequest['entries'][number] {
    const waiting = e.waiting.reduce((a, b) => a + b, 0n);
    const smallest = e.waiting.reduce<bigint | undefined>((a, b) => (a === undefined || b < a ? b : a), undefined);
    const plenty = e.available > 0n && !this.draining;
    const busy = e.reserved + waiting;
    const cushion = !plenty ? 0n : busy > e.lastAmount * 4n ? busy : e.lastAmount * 4n;
    const inUse = e.spent + e.reserved;
    const usable = !this.draining && smallest !== undefined && e.granted - inUse >= smallest;
    const kept = inUse + (plenty ? waiting + cushion : usable ? waiting : 0n);
    const keep = kept < e.granted ? kept : e.granted;
    // What goes back is gone from now on: the operator may hand it to another sidecar before its
    // answer reaches us, so no reservation may use it meanwhile.
    e.granted = keep;
    const free = keep - inUse;
    const runningLow = free < waiting + cushion / 2n;
    const want = runningLow && !this.draining ? waiting + cushion - free : 0n;
    const need = smallest !== undefined && smallest > free ? smallest - free : 0n;
    return { name: e.name, periodStart: e.periodStart, spent: e.spent.toString(), keep: keep.toString(), want: want.toString(), need: need.toString() };
  }

  private async doSync(): Promise<void> {
    if (this.entries.size === 0) return;
    this.seq = Math.max(this.seq + 1, this.now());
    const sent = [...this.entries.values()];
    const final = this.closed;
    const body: BudgetSyncRequest = { seq: this.seq, boot: this.boot, ...(final ? { final } : {}), entries: sent.map((e) => this.report(e)) };
    const token = readFileSync(this.o.tokenFile, 'utf8').trim();
    const res = await this.agent.request({
      origin: new URL(this.o.url).origin,
      path: BUDGET_SYNC_PATH,
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    const text = await res.body.text();
    for (const e of sent) e.answered = false;
    if (res.statusCode !== 200) {
      throw new Error(`operator answered ${res.statusCode} to a budget sync: ${text.slice(0, 200)}`);
    }
    const parsed = BudgetSyncResponseSchema.parse(JSON.parse(text));
    for (const r of parsed.entries) {
      const e = sent.find((x) => x.name === r.name && x.periodStart === r.periodStart);
      if (!e) continue;
      e.granted = BigInt(r.granted);
      // A restarted sidecar learns what it already spent this period.
      const recorded = BigInt(r.spent);
      if (recorded > e.spent) e.spent = recorded;
      e.outstanding = BigInt(r.outstanding);
      e.available = BigInt(r.available);
      e.validUntil = this.now() + Math.max(0, Date.parse(r.expires) - Date.now());
      e.answered = true;
    }
  }

  /**
   * Shutting down: from now on a reservation that does not fit what this process holds is
   * refused at once ('draining'), and every sync gives back all that is not in use.
   */
  drain(): void {
    this.draining = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * The final report, once every request has settled (or the shutdown grace is nearly over):
   * keeps exactly what is spent and still reserved, closes this process's allowances, and is
   * retried until the operator answers or `withinMs` is over. Without it, the operator keeps
   * everything this process held as spent.
   */
  close(withinMs = 5_000): Promise<void> {
    this.closing ??= this.finalReport(withinMs);
    return this.closing;
  }
  private closing: Promise<void> | undefined;

  private async finalReport(withinMs: number): Promise<void> {
    this.drain();
    this.closed = true;
    clearInterval(this.heartbeat);
    const deadline = Date.now() + withinMs;
    for (let attempt = 0; this.entries.size > 0; attempt++) {
      try {
        await this.sync();
        break;
      } catch (err) {
        const pause = Math.min(1_000, 100 * 2 ** attempt);
        if (Date.now() + pause >= deadline) {
          this.o.logger.warn({ error: (err as Error).message }, 'final budget report not delivered; the operator counts what this sidecar held as spent');
          break;
        }
        await new Promise((r) => setTimeout(r, pause));
      }
    }
    await this.agent.close().catch(() => {});
  }
}
