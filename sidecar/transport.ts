import { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import type { EventEmitter } from 'node:events';
import type { CancelSignal } from './cancel.js';
import type { UpstreamRequest } from './providers/types.js';

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Readable;
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
    async send(req, o) {
      const url = split(req.url);
      try {
        const res: Dispatcher.ResponseData = await agent.request({
          origin: url.origin,
          path: url.path,
          method: 'POST',
          headers: req.headers,
          body: req.body,
          signal: o.signal as unknown as EventEmitter,
          headersTimeout: o.headersTimeoutMs,
          bodyTimeout: o.bodyTimeoutMs,
        });
        return { status: res.statusCode, headers: res.headers, body: res.body as unknown as Readable };
      } catch (err) {
        throw classify(err);
      }
    },
    close: () => agent.close(),
  };
}

/** Wraps a body stream so errors surfacing while reading it are classified too. */
export async function* readBody(body: Readable): AsyncGenerator<Uint8Array> {
  try {
    for await (const chunk of body) yield chunk as Uint8Array;
  } catch (err) {
    throw classify(err);
  }
}

export async function readAll(body: Readable, limitBytes = 64 * 1024 * 1024): Promise<string> {
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

export { Readable };

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
