import type { IncomingHttpHeaders } from 'node:http';
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import type { CancelSignal } from './cancel.js';
import type { UpstreamRequest } from './providers/types.js';

/** A response body as the request path reads it: chunks, in order, and a way to stop early. */
export interface UpstreamBody extends AsyncIterable<Uint8Array> {
  /** Stops reading; the connection is closed unless the body had ended. */
  destroy(error?: Error): void;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: UpstreamBody;
}

export interface SendOptions {
  signal: CancelSignal;
  /** Time allowed until the response headers arrive. */
  headersTimeoutMs: number;
  /** Time allowed between two body chunks. */
  bodyTimeoutMs: number;
}

/** Sends a native request upstream. Rejects with TransportError on connect/timeout failures. */
export interface Transport {
  send(req: UpstreamRequest, opts: SendOptions): Promise<UpstreamResponse>;
  close(): Promise<void>;
}

export type TransportFailure = 'connect' | 'timeout' | 'aborted' | 'reset';

export class TransportError extends Error {
  override readonly name = 'TransportError';
  constructor(
    readonly failure: TransportFailure,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

function classify(err: unknown): TransportError {
  if (err instanceof TransportError) return err;
  const e = err as { code?: string; name?: string; message?: string };
  if (e?.name === 'AbortError' || e?.code === 'UND_ERR_ABORTED') return new TransportError('aborted', 'request aborted', { cause: err });
  if (err instanceof undiciErrors.HeadersTimeoutError || err instanceof undiciErrors.ConnectTimeoutError || err instanceof undiciErrors.BodyTimeoutError) {
    return new TransportError('timeout', 'upstream timed out', { cause: err });
  }
  if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN' || e?.code === 'EHOSTUNREACH') {
    return new TransportError('connect', `cannot connect to upstream (${e.code})`, { cause: err });
  }
  return new TransportError('reset', `upstream connection failed (${e?.code ?? e?.name ?? 'error'})`, { cause: err });
}

/** Buffered body bytes at which the socket is paused until the reader catches up (undici's Readable default). */
const BODY_HIGH_WATER = 64 * 1024;

/**
 * A response body that undici's dispatch handler pushes into and the request path pulls from.
 *
 * Why not undici's `request()` and its Readable body: after a model's pause between two events
 * the first chunk's way through the Readable, its async iterator and a generator around it took
 * ≈ 140 µs of a stream's first byte (test/bench/README.md); here a chunk that arrived with the
 * headers is already queued when the reader asks for it. Errors come out as TransportError.
 */
export class PushedBody implements UpstreamBody, AsyncIterator<Uint8Array> {
  private readonly chunks: Buffer[] = [];
  private head = 0;
  private buffered = 0;
  private ended = false;
  private error: TransportError | undefined;
  private waiting: { resolve(r: IteratorResult<Uint8Array>): void; reject(e: Error): void } | undefined;

  constructor(private readonly controller: Dispatcher.DispatchController) {}

  /** From the handler: one chunk of the body. */
  push(chunk: Buffer): void {
    if (this.ended || this.error) return;
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting.resolve({ value: chunk, done: false });
      return;
    }
    this.chunks.push(chunk);
    this.buffered += chunk.byteLength;
    if (this.buffered >= BODY_HIGH_WATER) this.controller.pause();
  }

  /** From the handler: the body is complete. */
  end(): void {
    if (this.ended || this.error) return;
    this.ended = true;
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.resolve({ value: undefined, done: true });
  }

  /** From the handler: the body failed (reset, body timeout, cancelled). Chunks already queued are still read first. */
  fail(err: unknown): void {
    if (this.ended || this.error) return;
    this.error = classify(err);
    const waiting = this.waiting;
    this.waiting = undefined;
    waiting?.reject(this.error);
  }

  next(): Promise<IteratorResult<Uint8Array>> {
    if (this.head < this.chunks.length) {
      const chunk = this.chunks[this.head]!;
      this.chunks[this.head++] = undefined as unknown as Buffer;
      if (this.head === this.chunks.length) {
        this.chunks.length = 0;
        this.head = 0;
      }
      this.buffered -= chunk.byteLength;
      if (this.controller.paused && this.buffered < BODY_HIGH_WATER) this.controller.resume();
      return Promise.resolve({ value: chunk, done: false });
    }
    if (this.error) return Promise.reject(this.error);
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Uint8Array>> {
    this.destroy();
    return Promise.resolve({ value: undefined, done: true });
  }

  destroy(error?: Error): void {
    this.chunks.length = 0;
    this.head = 0;
    this.buffered = 0;
    if (this.ended || this.error) return;
    this.fail(error ?? new TransportError('aborted', 'response body discarded'));
    if (!this.controller.aborted) this.controller.abort(this.error!);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * One request through undici's dispatch API: resolves with the status and headers, the body
 * following through a PushedBody. Cancelled by `signal` before or after the headers.
 */
function dispatchRequest(dispatcher: Dispatcher, options: Dispatcher.DispatchOptions, signal: CancelSignal): Promise<UpstreamResponse> {
  const cancelled = () => (signal.reason instanceof Error ? signal.reason : new TransportError('aborted', 'request aborted'));
  // Already cancelled: nothing is sent.
  if (signal.aborted) return Promise.reject(classify(cancelled()));
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined;
    let body: PushedBody | undefined;
    let settled = false;
    const stopListening = signal.onAbort(() => {
      if (body) body.destroy(cancelled());
      else if (controller) controller.abort(cancelled());
      // Not dispatched yet: onRequestStart aborts it.
    });
    const fail = (err: unknown) => {
      stopListening();
      if (body) body.fail(err);
      else if (!settled) {
        settled = true;
        reject(classify(err));
      }
    };
    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(c) {
        controller = c;
        if (signal.aborted) c.abort(cancelled());
      },
      onResponseStart(c, statusCode, headers: IncomingHttpHeaders) {
        // 1xx informational answers come before the real one.
        if (statusCode < 200) return;
        body = new PushedBody(c);
        settled = true;
        resolve({ status: statusCode, headers, body });
      },
      onResponseData(_c, chunk) {
        body?.push(chunk);
      },
      onResponseEnd() {
        stopListening();
        body?.end();
      },
      onResponseError(_c, err) {
        fail(err);
      },
    };
    try {
      dispatcher.dispatch(options, handler);
    } catch (err) {
      fail(err);
    }
  });
}

/** Pooled keep-alive HTTP(S) client (one undici Agent shared by every target). */
export function createHttpTransport(opts: { connections?: number } = {}): Transport {
  const agent = new Agent({
    connections: opts.connections ?? 128,
    keepAliveTimeout: 30_000,
    keepAliveMaxTimeout: 600_000,
    connect: { timeout: 10_000 },
  });
  // Targets send to a handful of URLs: parse each once.
  const parsed = new Map<string, { origin: string; path: string }>();
  const split = (href: string) => {
    let u = parsed.get(href);
    if (!u) {
      const url = new URL(href);
      u = { origin: url.origin, path: url.pathname + url.search };
      if (parsed.size >= 1024) parsed.clear();
      parsed.set(href, u);
    }
    return u;
  };
  return {
    send(req, o) {
      const url = split(req.url);
      return dispatchRequest(
        agent,
        { origin: url.origin, path: url.path, method: 'POST', headers: req.headers, body: req.body, headersTimeout: o.headersTimeoutMs, bodyTimeout: o.bodyTimeoutMs },
        o.signal,
      );
    },
    close: () => agent.close(),
  };
}

/** The body's chunks, errors surfacing while reading classified too (a PushedBody's already are). */
export function readBody(body: UpstreamBody): AsyncIterable<Uint8Array> {
  return body instanceof PushedBody ? body : classified(body);
}

async function* classified(body: AsyncIterable<Uint8Array>): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk;
  } catch (err) {
    throw classify(err);
  }
}

export async function readAll(body: UpstreamBody, limitBytes = 64 * 1024 * 1024): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of readBody(body)) {
    size += chunk.byteLength;
    if (size > limitBytes) {
      body.destroy();
      throw new TransportError('reset', `upstream body exceeds ${limitBytes} bytes`);
    }
    parts.push(chunk as Buffer); // undici's chunks are Buffers already: no copy
  }
  return parts.length === 1 ? parts[0]!.toString('utf8') : Buffer.concat(parts, size).toString('utf8');
}

/**
 * Waits for a promise other requests may share (a token fetch), but gives up as soon as this
 * attempt is cancelled: rejects with the cancel's TransportError (deadline, client gone) or an
 * 'aborted' one. The shared promise itself goes on.
 */
export function untilCancelled<T>(p: Promise<T>, signal: CancelSignal): Promise<T> {
  const reason = () => (signal.reason instanceof TransportError ? signal.reason : new TransportError('aborted', 'request aborted'));
  if (signal.aborted) return Promise.reject(reason());
  return new Promise<T>((resolve, reject) => {
    const off = signal.onAbort(() => reject(reason()));
    p.then(
      (v) => {
        off();
        resolve(v);
      },
      (e: unknown) => {
        off();
        reject(e);
      },
    );
  });
}
