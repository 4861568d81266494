/**
 * Runs an async task one run at a time: a caller while a run is in flight gets the single next
 * run, shared with every other such caller (what they asked for is covered by a run that starts
 * after they asked). The operator syncs of budgets and rate-limit shares use it.
 */
export class SerialRun {
  private inflight: Promise<void> | undefined;
  private next: Promise<void> | undefined;

  constructor(private readonly task: () => Promise<void>) {}

  /** Whether a run is in flight now. */
  get running(): boolean {
    return this.inflight !== undefined;
  }

  run(): Promise<void> {
    if (this.next) return this.next;
    const start = (): Promise<void> => {
      this.next = undefined;
      const p = this.task().finally(() => {
        if (this.inflight === p) this.inflight = undefined;
      });
      this.inflight = p;
      return p;
    };
    if (!this.inflight) return start();
    this.next = this.inflight.then(start, start);
    return this.next;
  }
}
