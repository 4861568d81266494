import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { OperatorConfigSource, reconnectDelayMs } from '../../../sidecar/config/operator-source.js';

describe('reconnectDelayMs', () => {
  const at = (attempt: number, o: Partial<Parameters<typeof reconnectDelayMs>[0]> = {}) => reconnectDelayMs({ attempt, retryAfterMs: 0, notLeader: false, random: () => 1, ...o });

  it('failures back off exponentially with jitter, up to maxBackoffMs (30 s by default)', () => {
    expect([0, 1, 2, 3, 4, 5, 6, 10].map((a) => at(a))).toEqual([500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    expect(at(3, { random: () => 0 })).toBe(2000); // half the cap at least
    expect(at(10, { maxBackoffMs: 5000 })).toBe(5000);
    expect(at(0, { retryAfterMs: 7000 })).toBe(7000); // the operator's Retry-After is a floor
  });

  it('a standby replica (503 not_leader) is retried after its Retry-After, however many failures came before', () => {
    for (const attempt of [0, 5, 10]) {
      expect(at(attempt, { notLeader: true, retryAfterMs: 1000 })).toBe(1000);
      expect(at(attempt, { notLeader: true, retryAfterMs: 1000, random: () => 0 })).toBe(500);
    }
    expect(at(9, { notLeader: true })).toBe(1000); // no Retry-After: 1 s
    expect(at(9, { notLeader: true, retryAfterMs: 60_000 })).toBe(2000); // bounded: the leader may already be elected
    expect(at(9, { notLeader: true, retryAfterMs: 10 })).toBe(200); // and never a tight loop
  });
});

describe('OperatorConfigSource reconnects', () => {
  let server: Server | undefined;
  let source: OperatorConfigSource | undefined;
  afterEach(async () => {
    source?.stop();
    await new Promise((r) => server?.close(r));
  });

  /** Connection attempt times, with the first `refusals` answered as `answer` does. */
  async function attempts(answer: (res: import('node:http').ServerResponse) => void, count: number): Promise<number[]> {
    const seen: number[] = [];
    let done!: () => void;
    const enough = new Promise<void>((r) => (done = r));
    server = createServer((req, res) => {
      seen.push(Date.now());
      answer(res);
      if (seen.length === count) done();
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(join(tmpdir(), 'paygo-opsrc-'));
    writeFileSync(join(dir, 'token'), 'tok');
    const { port } = server.address() as { port: number };
    source = new OperatorConfigSource({ url: `http://127.0.0.1:${port}`, tokenFile: join(dir, 'token'), caFile: undefined, stateDir: dir, logger: pino({ level: 'silent' }), apply: () => {}, random: () => 1 });
    source.start();
    await enough;
    return seen.slice(1).map((t, i) => t - seen[i]!);
  }

  it('answers of a standby do not grow the backoff: each retry follows its Retry-After (1 s)', async () => {
    const gaps = await attempts((res) => res.writeHead(503, { 'retry-after': '1', connection: 'close', 'content-type': 'application/json' }).end('{"error":{"message":"not the leader; retry","code":"not_leader"}}'), 5);
    // 1 s each (random() = 1); a failure's backoff would be 0.5, 1, 2 and 4 s
    expect(gaps).toHaveLength(4);
    for (const g of gaps) {
      expect(g).toBeGreaterThanOrEqual(950);
      expect(g).toBeLessThan(2500); // the bound only separates 1 s from the 4 s a growing backoff would wait
    }
  }, 15_000);

  it('other 503s are failures: the backoff grows', async () => {
    const gaps = await attempts((res) => res.writeHead(503, { connection: 'close', 'content-type': 'application/json' }).end('{"error":{"message":"down","code":"unavailable"}}'), 4);
    expect(gaps[0]).toBeGreaterThanOrEqual(450);
    expect(gaps[2]).toBeGreaterThanOrEqual(1950); // a standby's answers would be retried after 1 s
  }, 15_000);
});

describe('OperatorConfigSource ACKs', () => {
  let server: Server | undefined;
  let source: OperatorConfigSource | undefined;
  afterEach(async () => {
    source?.stop();
    server?.closeAllConnections();
    await new Promise((r) => server?.close(r));
  });

  const standby = (res: import('node:http').ServerResponse) =>
    res.writeHead(503, { 'retry-after': '1', connection: 'close', 'content-type': 'application/json' }).end('{"error":{"message":"not the leader; retry","code":"not_leader"}}');

  /** A fake operator: the stream sends `versions` (one every `everyMs`); ACKs are answered by `answerAck(n)` (n counts from 1). */
  async function operator(versions: string[], everyMs: number, answerAck: (n: number, version: string, res: import('node:http').ServerResponse) => void): Promise<void> {
    let acks = 0;
    server = createServer((req, res) => {
      if (req.method === 'GET') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        versions.forEach((version, i) => setTimeout(() => res.write(`event: snapshot\ndata: ${JSON.stringify({ snapshot: { version, routes: [] } })}\n\n`), i * everyMs));
        return;
      }
      let body = '';
      req.on('data', (d) => (body += d));
      req.on('end', () => answerAck(++acks, (JSON.parse(body) as { version: string }).version, res));
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const dir = mkdtempSync(join(tmpdir(), 'paygo-opsrc-'));
    writeFileSync(join(dir, 'token'), 'tok');
    const { port } = server.address() as { port: number };
    source = new OperatorConfigSource({ url: `http://127.0.0.1:${port}`, tokenFile: join(dir, 'token'), caFile: undefined, stateDir: dir, logger: pino({ level: 'silent' }), apply: () => {}, random: () => 1, ackMaxDelayMs: 50 });
    source.start();
  }

  it('an ACK the standby refuses is retried until the leader takes it, beyond a few attempts', async () => {
    let taken!: (v: { n: number; version: string }) => void;
    const leaderGot = new Promise<{ n: number; version: string }>((r) => (taken = r));
    // The Service sent the first 7 to the standby (1 in 128 with even odds: it happens in a fleet).
    await operator(['v1'], 0, (n, version, res) => {
      if (n <= 7) return standby(res);
      res.writeHead(204).end();
      taken({ n, version });
    });
    expect(await leaderGot).toEqual({ n: 8, version: 'v1' });
  });

  it("a newer snapshot ends the retries of the older one's ACK", async () => {
    const seen: Array<{ version: string; at: number }> = [];
    let done!: () => void;
    const v2Taken = new Promise<void>((r) => (done = r));
    await operator(['v1', 'v2'], 400, (_n, version, res) => {
      seen.push({ version, at: Date.now() });
      if (version === 'v1') return standby(res);
      res.writeHead(204).end();
      done();
    });
    await v2Taken;
    const v2At = Date.now();
    await new Promise((r) => setTimeout(r, 500)); // v1's retries came every 50 ms
    const v1 = seen.filter((s) => s.version === 'v1');
    expect(v1.length).toBeGreaterThanOrEqual(2);
    // One retry may have been on the wire when v2 came; none is sent after.
    expect(v1.every((s) => s.at < v2At + 100)).toBe(true);
  });
});
