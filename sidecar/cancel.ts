import { EventEmitter } from 'node:events';

/**
 * Cancellation of one request (the client left) or one attempt (the route's deadline passed).
 *
 * An EventEmitter, not an AbortController: undici takes either as a request signal, and on
 * the request path each EventTarget-based AbortSignal handed to undici cost ~50 µs of CPU per
 * request (measured with `make bench`; see test/bench/README.md), about a third of a whole
 * proxied request.
 */
export class Cancel extends EventEmitter {
  aborted = false;
  reason: unknown = undefined;

  /** Aborts once; undici rejects the in-flight request with `reason`. */
  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    this.emit('abort');
  }

  /** Calls fn once on abort (at once when already aborted); returns what removes it. */
  onAbort(fn: () => void): () => void {
    if (this.aborted) {
      fn();
      return noop;
    }
    this.once('abort', fn);
    return () => this.removeListener('abort', fn);
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
