/**
 * A de-duplicating work queue keyed by string (namespace/name): a key added while pending is
 * not added twice; a key added while being processed runs once more afterwards. Failed keys are
 * retried with exponential backoff. One worker: reconcilers are cheap and ordering per key holds.
 */
export class WorkQueue {
  private readonly pending = new Set<string>();
  private readonly dirtyWhileRunning = new Set<string>();
  private running: string | undefined;
  private readonly failures = new Map<string, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private stopped = false;
  private idleWaiters: Array<() => void> = [];

  constructor(
    private readonly process: (key: string) => Promise<void>,
    private readonly onError: (key: string, err: unknown) => void,
    private readonly maxBackoffMs = 30_000,
  ) {}

  add(key: string): void {
    if (this.stopped) return;
    if (this.running === key) {
      this.dirtyWhileRunning.add(key);
      return;
    }
    if (this.pending.has(key)) return;
    this.pending.add(key);
    this.kick();
  }

  private addAfter(key: string, ms: number): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.add(key);
    }, ms);
    this.timers.add(t);
  }

  private kick(): void {
    if (this.running !== undefined || this.stopped) return;
    const next = this.pending.values().next();
    if (next.done) {
      for (const w of this.idleWaiters.splice(0)) w();
      return;
    }
    const key = next.value;
    this.pending.delete(key);
    this.running = key;
    this.process(key).then(
      () => {
        this.failures.delete(key);
        this.finish(key);
      },
      (err: unknown) => {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        this.onError(key, err);
        this.addAfter(key, Math.min(this.maxBackoffMs, 100 * 2 ** (n - 1)));
        this.finish(key);
      },
    );
  }

  private finish(key: string): void {
    this.running = undefined;
    if (this.dirtyWhileRunning.delete(key)) this.pending.add(key);
    setImmediate(() => this.kick());
  }

  /** Resolves when nothing is pending or running (timers for retries may still be set). */
  idle(): Promise<void> {
    if (this.running === undefined && this.pending.size === 0) return Promise.resolve();
    return new Promise((r) => this.idleWaiters.push(r));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.pending.clear();
  }
}
