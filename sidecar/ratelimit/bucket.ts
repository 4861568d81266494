/**
 * A token bucket with continuous refill: it holds at most `capacity` (the limit per window) and
 * refills at capacity / windowMs per millisecond, so a full bucket allows a burst of the whole
 * limit and an empty one recovers it over one window. Time comes from the caller (tests inject
 * it). Amounts are integers (requests, tokens); the level is a number that settlement may push
 * below zero when a request used more than it reserved (the debt is refilled before anything
 * else fits).
 */
export class TokenBucket {
  private level: number;
  private at: number;

  constructor(
    private cap: number,
    readonly windowMs: number,
    now: number,
  ) {
    this.level = cap;
    this.at = now;
  }

  get capacity(): number {
    return this.cap;
  }

  private refill(now: number): void {
    if (now <= this.at) return;
    // elapsed × capacity first, then one division: exact for whole-millisecond steps of a per-minute limit.
    this.level = Math.min(this.cap, this.level + ((now - this.at) * this.cap) / this.windowMs);
    this.at = now;
  }

  /** What the bucket holds now (may be negative after an overrun). */
  available(now: number): number {
    this.refill(now);
    return this.level;
  }

  /** Whole units available now, never below 0 (the x-ratelimit-remaining-* value). */
  remaining(now: number): number {
    return Math.max(0, Math.floor(this.available(now)));
  }

  /** Does `amount` fit now? */
  fits(amount: number, now: number): boolean {
    return this.available(now) >= amount;
  }

  /** Takes `amount` whether or not it fits (the bucket may go below zero). */
  take(amount: number, now: number): void {
    this.refill(now);
    this.level -= amount;
  }

  /** Gives `amount` back (never above capacity). */
  give(amount: number, now: number): void {
    this.refill(now);
    this.level = Math.min(this.cap, this.level + amount);
  }

  /** Milliseconds until `amount` fits: 0 when it fits now, Infinity when it exceeds the capacity. */
  waitMs(amount: number, now: number): number {
    const level = this.available(now);
    if (level >= amount) return 0;
    if (amount > this.cap) return Infinity;
    return Math.ceil(((amount - level) * this.windowMs) / this.cap);
  }

  /** Milliseconds until the bucket is full again (OpenAI's x-ratelimit-reset-*). */
  resetMs(now: number): number {
    const level = this.available(now);
    return level >= this.cap ? 0 : Math.ceil(((this.cap - level) * this.windowMs) / this.cap);
  }

  /**
   * A new fleet share (operator mode): a lower one keeps at most the new capacity (what is above
   * goes back with the share); a higher one comes filled only by `credit` (at most the increase:
   * the operator's unused pool), the rest fills at the new refill rate.
   */
  setShare(capacity: number, credit: number, now: number): void {
    this.refill(now);
    if (capacity > this.cap) this.level += Math.max(0, Math.min(credit, capacity - this.cap));
    else this.level = Math.min(this.level, capacity);
    this.cap = capacity;
  }

  /** A new limit (config reload): what was used stays used, the room changes by the difference. */
  resize(capacity: number, now: number): void {
    if (capacity === this.cap) return;
    this.refill(now);
    this.level = Math.min(capacity, this.level + capacity - this.cap);
    this.cap = capacity;
  }
}
