import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Cancel } from '../../sidecar/cancel.js';
import { createHttpTransport, readAll, readBody, TransportError, type Transport } from '../../sidecar/transport.js';

/** A real HTTP server on 127.0.0.1; counts the connections it accepted. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ url: string; server: Server; connections: () => number }> {
  const server = createServer(handler);
  let connections = 0;
  server.on('connection', () => connections++);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`, server, connections: () => connections };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const opts = (signal = new Cancel(), headersTimeoutMs = 5_000, bodyTimeoutMs = 5_000) => ({ signal, headersTimeoutMs, bodyTimeoutMs });
const request = (url: string) => ({ url, headers: { 'content-type': 'application/json' }, body: '{"model":"m"}' });

let transport: Transport;
let servers: Server[] = [];
afterEach(async () => {
  // The servers first: the transport's close waits for requests still open.
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
  servers = [];
  await transport?.close();
});

async function upstream(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const s = await serve(handler);
  servers.push(s.server);
  transport = createHttpTransport();
  return s;
}

describe('createHttpTransport', () => {
  it('answers with the status, the headers and the body chunks in the order they were written, and reuses the connection', async () => {
    let seen = '';
    const s = await upstream((req, res) => {
      req.setEncoding('utf8').on('data', (d: string) => (seen += d));
      req.on('end', async () => {
        res.writeHead(200, { 'content-type': 'text/event-stream', 'x-ratelimit-remaining-requests': '9', 'set-cookie': ['a=1', 'b=2'] });
        for (const part of ['data: one\n\n', 'data: two\n\n', 'data: [DONE]\n\n']) {
          res.write(part);
          await sleep(5);
        }
        res.end();
      });
    });
    for (let i = 0; i < 4; i++) {
      const res = await transport.send(request(s.url), opts());
      expect(res.status).toBe(200);
      expect(res.headers['x-ratelimit-remaining-requests']).toBe('9');
      expect(res.headers['set-cookie']).toEqual(['a=1', 'b=2']);
      const parts: string[] = [];
      for await (const chunk of readBody(res.body)) parts.push(Buffer.from(chunk).toString('utf8'));
      expect(parts.join('')).toBe('data: one\n\ndata: two\n\ndata: [DONE]\n\n');
      // Written 5 ms apart: they arrive as separate chunks, not one at the end.
      expect(parts.length).toBeGreaterThanOrEqual(3);
    }
    expect(seen).toBe('{"model":"m"}'.repeat(4));
    // Kept alive: undici may open a second connection while it checks the first one after a
    // request (its idle-socket validation), never one per request.
    expect(s.connections()).toBeLessThanOrEqual(2);
  });

  it('reads a whole error answer with readAll', async () => {
    const s = await upstream((_req, res) => res.writeHead(429, { 'content-type': 'application/json', 'retry-after': '2' }).end('{"error":{"message":"slow down"}}'));
    const res = await transport.send(request(s.url), opts());
    expect(res.status).toBe(429);
    expect(res.headers['retry-after']).toBe('2');
    expect(await readAll(res.body)).toBe('{"error":{"message":"slow down"}}');
  });

  it('refuses a body over readAll’s limit and drops its connection', async () => {
    let closed = false;
    const s = await upstream((_req, res) => {
      res.on('close', () => (closed = true));
      res.writeHead(200);
      res.write(Buffer.alloc(4096, 97));
      res.write(Buffer.alloc(4096, 97));
      // Never ended: only destroying the body ends this request.
    });
    const res = await transport.send(request(s.url), opts());
    const err = await readAll(res.body, 6000).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).failure).toBe('reset');
    await expect.poll(() => closed).toBe(true);
  });

  it('rejects with the cancel’s own reason when cancelled before the headers, and the upstream sees the request go', async () => {
    let closed = false;
    const s = await upstream((_req, res) => res.on('close', () => (closed = true)));
    const cancel = new Cancel();
    const sent = transport.send(request(s.url), opts(cancel));
    await sleep(50);
    const reason = new TransportError('timeout', 'total deadline exceeded');
    cancel.abort(reason);
    await expect(sent).rejects.toBe(reason);
    await expect.poll(() => closed).toBe(true);
  });

  it('rejects at once, sending nothing, when already cancelled', async () => {
    let requests = 0;
    const s = await upstream((_req, res) => {
      requests++;
      res.end();
    });
    const cancel = new Cancel();
    cancel.abort(new TransportError('aborted', 'client went away'));
    const err = await transport.send(request(s.url), opts(cancel)).catch((e: unknown) => e);
    expect((err as TransportError).failure).toBe('aborted');
    await sleep(20);
    expect(requests).toBe(0);
  });

  it('fails a pending read with the cancel’s reason when cancelled mid-body (the client left)', async () => {
    let closed = false;
    const s = await upstream((_req, res) => {
      res.on('close', () => (closed = true));
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: first\n\n');
    });
    const cancel = new Cancel();
    const res = await transport.send(request(s.url), opts(cancel));
    const it = readBody(res.body)[Symbol.asyncIterator]();
    expect(Buffer.from((await it.next()).value as Uint8Array).toString()).toBe('data: first\n\n');
    const pending = it.next();
    cancel.abort(new TransportError('aborted', 'client went away'));
    const err = await pending.catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).failure).toBe('aborted');
    await expect.poll(() => closed).toBe(true);
  });

  it('classifies a headers timeout, a body timeout and a refused connection', async () => {
    const slowHeaders = await upstream(() => {});
    const e1 = await transport.send(request(slowHeaders.url), opts(new Cancel(), 100)).catch((e: unknown) => e);
    expect((e1 as TransportError).failure).toBe('timeout');

    const slowBody = await serve((_req, res) => {
      res.writeHead(200);
      res.write('data: x\n\n');
    });
    servers.push(slowBody.server);
    const res = await transport.send(request(slowBody.url), opts(new Cancel(), 5_000, 100));
    const e2 = await readAll(res.body).catch((e: unknown) => e);
    expect((e2 as TransportError).failure).toBe('timeout');

    const gone = await serve(() => {});
    await new Promise((r) => gone.server.close(r));
    const e3 = await transport.send(request(gone.url), opts()).catch((e: unknown) => e);
    expect((e3 as TransportError).failure).toBe('connect');
  });

  it('stops reading the socket while the reader does not keep up, and loses nothing', async () => {
    const total = 32 * 1024 * 1024;
    let finished = false;
    const s = await upstream((_req, res) => {
      res.writeHead(200);
      const piece = Buffer.alloc(64 * 1024, 98);
      let left = total;
      const more = () => {
        while (left > 0) {
          left -= piece.length;
          if (!res.write(piece)) return void res.once('drain', more);
        }
        res.end(() => (finished = true));
      };
      more();
    });
    const res = await transport.send(request(s.url), opts());
    // Not read for a while: more than the socket buffers hold stays unsent.
    await sleep(300);
    expect(finished).toBe(false);
    let bytes = 0;
    for await (const chunk of readBody(res.body)) bytes += chunk.byteLength;
    expect(bytes).toBe(total);
    expect(finished).toBe(true);
  });

  it('a body destroyed before its end drops its request and connection; later reads fail', async () => {
    let closed = 0;
    const s = await upstream((_req, res) => {
      res.on('close', () => closed++);
      res.writeHead(200);
      res.write('data: a\n\n');
    });
    const res = await transport.send(request(s.url), opts());
    const it = readBody(res.body)[Symbol.asyncIterator]();
    await it.next();
    await it.return?.(undefined);
    const err = await it.next().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    await expect.poll(() => closed).toBe(1);
    // The next request works (on another connection).
    expect((await transport.send(request(s.url), opts())).status).toBe(200);
  });
});
