import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake provider server on 127.0.0.1 speaking a provider's wire format (given by a Responder)
 * with injectable faults. Each request takes the next queued fault, if any.
 */
export type Fault =
  | { kind: 'status'; status: number; body?: string; headers?: Record<string, string> }
  /** Destroy the socket before any response byte. */
  | { kind: 'reset' }
  /** Never answer (until the client gives up). */
  | { kind: 'hang' }
  /** Stream: send this many SSE frames, then destroy the socket. */
  | { kind: 'cut'; afterFrames: number }
  /** Stream: send this many SSE frames, then end the response cleanly (no end marker, no error). */
  | { kind: 'end'; afterFrames: number }
  /** 200 with a body that is not JSON / not the wire format. */
  | { kind: 'garbage'; body?: string }
  /** Delay before answering normally. */
  | { kind: 'delay'; ms: number };

export interface RecordedRequest {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: unknown;
  rawBody: string;
}

export type Reply =
  /** `delayMs`: the provider takes this long to answer (e.g. a long tail of slow generations). */
  | { kind: 'json'; status?: number; body: unknown; headers?: Record<string, string>; delayMs?: number }
  /** A JSON body sent byte for byte as given (a recorded response), not re-serialized. */
  | { kind: 'raw'; status?: number; body: string | Uint8Array; headers?: Record<string, string>; delayMs?: number }
  | { kind: 'sse'; frames: string[]; headers?: Record<string, string>; frameDelayMs?: number };

/** Turns a recorded request into the provider's native reply. */
export type Responder = (req: RecordedRequest) => Reply;

export interface FakeUpstream {
  readonly url: string;
  readonly requests: RecordedRequest[];
  fault(...faults: Fault[]): void;
  /** Replace the responder (e.g. a recorded exchange for one test). */
  respondWith(responder: Responder): void;
  /** Number of SSE frames written to clients, in total. */
  readonly framesSent: number;
  /** TCP connections accepted so far (keep-alive reuse shows as fewer connections than requests). */
  readonly connections: number;
  close(): Promise<void>;
}

export async function startFakeUpstream(responder: Responder): Promise<FakeUpstream> {
  const faults: Fault[] = [];
  const requests: RecordedRequest[] = [];
  let current = responder;
  let framesSent = 0;
  let connections = 0;
  const sockets = new Set<import('node:net').Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const rawBody = Buffer.concat(chunks).toString('utf8');
    let body: unknown = undefined;
    try {
      body = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      body = undefined;
    }
    const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, body, rawBody };
    requests.push(recorded);
    let fault = faults.shift();
    if (fault?.kind === 'delay') {
      await sleep(fault.ms);
      fault = undefined;
    }
    if (fault?.kind === 'reset') {
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'status') {
      res.writeHead(fault.status, { 'content-type': 'application/json', ...fault.headers });
      res.end(fault.body ?? JSON.stringify({ error: { message: `fake upstream status ${fault.status}`, type: 'server_error' } }));
      return;
    }
    if (fault?.kind === 'garbage') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(fault.body ?? '<html>not json');
      return;
    }
    const reply = current(recorded);
    if (reply.kind !== 'sse' && reply.delayMs) await sleep(reply.delayMs);
    if (reply.kind === 'json') {
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
      res.end(JSON.stringify(reply.body));
      return;
    }
    if (reply.kind === 'raw') {
      res.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
      res.end(reply.body);
      return;
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...reply.headers });
    const stopAfter = fault?.kind === 'cut' || fault?.kind === 'end' ? fault.afterFrames : Infinity;
    let sent = 0;
    for (const frame of reply.frames) {
      if (sent >= stopAfter) {
        if (fault?.kind === 'cut') req.socket.destroy();
        else res.end();
        return;
      }
      if (res.destroyed) return;
      // A real server honours back-pressure: it writes no faster than the client reads.
      const ok = res.write(frame);
      sent++;
      framesSent++;
      if (!ok) await new Promise((resolve) => res.once('drain', resolve).once('close', resolve));
      if (reply.frameDelayMs) await sleep(reply.frameDelayMs);
    }
    res.end();
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    connections++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    get framesSent() {
      return framesSent;
    },
    get connections() {
      return connections;
    },
    fault: (...f) => faults.push(...f),
    respondWith: (r) => {
      current = r;
    },
    close: async () => {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Frames an SSE event the way the providers write them. */
export function sseFrame(data: unknown, event?: string): string {
  const payload = typeof data === 'string' ? data : JSON.stringify(data);
  return (event ? `event: ${event}\n` : '') + `data: ${payload}\n\n`;
}

/** The calls the fake received while `run` ran (exactly those of one test, when tests run one at a time). */
export async function sentDuring<T>(upstream: FakeUpstream, run: () => Promise<T>): Promise<{ value: T; sent: RecordedRequest[] }> {
  const before = upstream.requests.length;
  const value = await run();
  return { value, sent: upstream.requests.slice(before) };
}
