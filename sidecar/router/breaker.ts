/**
 * Per-target circuit breaker: opens after N consecutive failures, lets one probe through after
 * the cooldown (half-open), closes on the probe's success and re-opens on its failure.
 */
export type BreakerState = 'closed' | 'open' | 'half-open';

export class CircuitBreaker {
  private failures = 0;
  private openedAt = 0;
  private probing = false;
  state: BreakerState = 'closed';

  constructor(
    public threshold: number,
    public cooldownMs: number,
  ) {}

  /** May a request go to this target now? Reserves the half-open probe when it says yes to one. */
  tryAcquire(now: number): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open') {
      if (now - this.openedAt < this.cooldownMs) return false;
      this.state = 'half-open';
      this.probing = false;
    }
    if (this.probing) return false;
    this.probing = true;
    return true;
  }

  /** Would tryAcquire say yes (without reserving anything)? */
  available(now: number): boolean {
    if (this.state === 'closed') return true;
    if (this.state === 'open') return now - this.openedAt >= this.cooldownMs;
    return !this.probing;
  }

  onSuccess(): void {
    this.failures = 0;
    this.probing = false;
    this.state = 'closed';
  }

  /** Returns true when this failure opened the circuit. */
  onFailure(now: number): boolean {
    this.failures++;
    if (this.state === 'half-open' || (this.state === 'closed' && this.failures >= this.threshold)) {
      this.state = 'open';
      this.openedAt = now;
      this.probing = false;
      return true;
    }
    return false;
  }

  /** Releases a half-open probe reservation without judging the target (e.g. client aborted). */
  release(): void {
    this.probing = false;
  }
}
