/**
 * Cancellation of one request (the client left) or one attempt (the route's deadline passed).
 *
 * Not an AbortController: each EventTarget-based AbortSignal on the request path cost ~50 µs of
 * CPU per request (measured with `make bench`; see test/bench/README.md). Not an EventEmitter
 * either: a request makes three of these and listens on each, and on a stream's first byte after
 * a model's pause the emitter's machinery cost ≈ 6 µs more than this list of callbacks.
 */
export class Cancel {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Array<() => void> | undefined = undefined;

  /** Aborts once: every listener is called once, in order, with `reason` set. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = undefined;
    if (listeners) for (const fn of listeners) fn();
  }

  /** Calls fn once on abort (at once when already aborted); returns what removes it. */
  onAbort(fn: () => void): () => void {
    if (this.aborted) {
      fn();
      return noop;
    }
    (this.listeners ??= []).push(fn);
    return () => {
      const i = this.listeners?.indexOf(fn) ?? -1;
      if (i >= 0) this.listeners!.splice(i, 1);
    };
  }

  /** How many are waiting for the abort (for tests: nothing may be left behind). */
  listenerCount(_event: 'abort'): number {
    return this.listeners?.length ?? 0;
  }

  /** A Cancel aborted with this one (same reason), or on its own. dispose() unlinks it. */
  child(): { cancel: Cancel; dispose(): void } {
    const cancel = new Cancel();
    const dispose = this.onAbort(() => cancel.abort(this.reason));
    return { cancel, dispose };
  }
}

/** What the request path reads and listens to (undici listens too); only the owner aborts. */
export type CancelSignal = Omit<Cancel, 'abort'>;

function noop(): void {}

/** Waits ms, or less when cancelled (then resolves too: the caller checks `aborted`). */
export function sleep(ms: number, signal: CancelSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    const off = signal.onAbort(done);
    function done() {
      clearTimeout(timer);
      off();
      resolve();
    }
  });
}
