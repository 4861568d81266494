import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { BudgetSpecSchema, BudgetSyncRequestSchema, type BudgetSyncResponse } from '../../../crds/src/index.js';
import { BudgetLedger, ledgerTotals } from '../../../operator/budget-ledger.js';
import { budgetKey } from '../../../sidecar/budget/funds.js';
import { periodBounds } from '../../../crds/src/period.js';
import { RemoteFunds } from '../../../sidecar/budget/remote-funds.js';

/**
 * RemoteFunds against the operator's real ledger behind a loopback HTTP server speaking the
 * sync protocol (the operator's authentication and status writes are left out: they are
 * tested on the real control plane in test/e2e/budget.test.ts).
 */
const NS = 'shop';
const LIMIT = 1_000_000n;
const spec = BudgetSpecSchema.parse({ period: 'monthly', limit: '0.001' });
const key = budgetKey(NS, 'b', periodBounds('monthly', 'UTC', new Date()).start);
const logger = pino({ level: 'silent' });
const ANSWER_DELAY_MS = 50;

let dir: string;
let server: Server;
let url: string;
let ledger: BudgetLedger;
let syncs = 0;
/** Final reports received (a process's last sync). */
let finals = 0;
/** Syncs still to be answered as a replica that is not the leader would. */
let notLeaderAnswers = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'paygo-remote-funds-'));
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      if (notLeaderAnswers > 0) {
        notLeaderAnswers--;
        res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1', connection: 'close' });
        res.end('{"error":{"message":"not the leader; retry","code":"not_leader"}}');
        return;
      }
      const pod = req.headers.authorization!.slice('Bearer '.length);
      const parsed = BudgetSyncRequestSchema.parse(JSON.parse(body));
      syncs++;
      finals += parsed.final ? 1 : 0;
      const out: BudgetSyncResponse = { entries: parsed.entries.map((e) => ledger.answer(NS, spec, { name: pod, uid: pod, boot: parsed.boot ?? '' }, parsed, e).entry) };
      res.setHeader('content-type', 'application/json');
      // The operator writes grants to the API server before it answers: answers take a while.
      setTimeout(() => res.end(JSON.stringify(out)), ANSWER_DELAY_MS);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

const funds: RemoteFunds[] = [];
afterEach(async () => {
  await Promise.all(funds.splice(0).map((f) => f.close(500)));
});

function sidecar(pod: string, waitMs = 10_000, boot?: string): RemoteFunds {
  const tokenFile = join(dir, pod);
  writeFileSync(tokenFile, pod);
  const f = new RemoteFunds({ url, tokenFile, ca: undefined, logger, waitMs, boot });
  funds.push(f);
  return f;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('RemoteFunds', () => {
  it('4 sidecars × 32 concurrent requests: never more than the limit, refused only when the rest cannot take a request', async () => {
    ledger = new BudgetLedger({ now: Date.now });
    syncs = 0;
    const amount = 1_000n; // worst case of every request
    let spent = 0n; // independent of the ledger: what the requests really cost
    let ok = 0;
    const refusedAt: bigint[] = [];
    const sidecars = ['a', 'b', 'c', 'd'].map((p) => sidecar(p));
    const client = async (f: RemoteFunds, i: number) => {
      for (let n = 0; n < 1_000; n++) {
        if ((await f.reserve(key, LIMIT, amount)) !== 'reserved') {
          refusedAt.push(spent);
          return;
        }
        await sleep(2 + ((i + n) % 8)); // requests take a little while
        const actual = 400n + BigInt(((i * 7 + n * 13) % 4) * 20); // 400…460: well below the worst case
        spent += actual;
        ok++;
        f.settle(key, amount, actual);
      }
    };
    await Promise.all(sidecars.flatMap((f) => Array.from({ length: 32 }, (_, i) => client(f, i))));

    expect(spent).toBeLessThanOrEqual(LIMIT);
    expect(refusedAt).toHaveLength(128); // every client ended by a refusal, none by running out of turns
    // A refusal means the limit minus what was spent could not take one more worst case.
    expect(LIMIT - refusedAt[0]!).toBeLessThan(amount);
    expect(ok).toBeGreaterThan(1_000);
    // Allowance comes in batches: far fewer syncs than requests.
    expect(syncs).toBeLessThan(ok / 2);
  }, 30_000);

  it('waiting requests are served as money comes back, and refused as soon as what is left cannot take them', async () => {
    ledger = new BudgetLedger({ now: Date.now });
    const l = ledger.current(NS, 'b', spec);
    const pod = (name: string) => ({ name, uid: name, boot: '' });
    const report = (seq: number, spent: bigint, keep: bigint, want: bigint) => ({ seq, spent, keep, want, need: 0n });
    // a and b spent 450,000 each; x (a third pod) holds the last 100,000.
    for (const p of ['a', 'b']) {
      ledger.apply(l, pod(p), report(1, 0n, 0n, 450_000n));
      ledger.apply(l, pod(p), report(2, 450_000n, 450_000n, 0n));
    }
    ledger.apply(l, pod('x'), report(1, 0n, 0n, 100_000n));
    const a = sidecar('a');
    const b = sidecar('b');
    const started = Date.now();
    const results = new Map<string, string>();
    const waits = [
      a.reserve(key, LIMIT, 60_000n).then((ok) => results.set('a', ok)),
      b.reserve(key, LIMIT, 60_000n).then((ok) => results.set('b', ok)),
    ];
    await sleep(150);
    ledger.apply(l, pod('x'), report(2, 0n, 50_000n, 0n)); // half comes back: too little for either
    await sleep(150);
    expect(results.size).toBe(0);
    ledger.apply(l, pod('x'), report(3, 0n, 0n, 0n)); // the rest: enough for one of them
    await until(() => [...results.values()].includes('reserved'));
    const [winner] = [...results].find(([, ok]) => ok === 'reserved')!;
    (winner === 'a' ? a : b).settle(key, 60_000n, 60_000n);
    await Promise.all(waits);
    expect([...results.values()].sort()).toEqual(['exhausted', 'reserved']);
    // Refused because the 40,000 left cannot take 60,000, not after waiting out its 30 s.
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(ledgerTotals(l).committed).toBeLessThanOrEqual(LIMIT);
  }, 30_000);

  it('a sync answered 503 by a replica that is not the leader is retried on a new connection and the request served', async () => {
    ledger = new BudgetLedger({ now: Date.now });
    notLeaderAnswers = 2;
    const f = sidecar('n');
    expect(await f.reserve(key, LIMIT, 1_000n)).toBe('reserved');
    expect(notLeaderAnswers).toBe(0);
  });

  it('fails closed when the operator cannot be reached before any allowance was granted: unavailable, not exhausted, at once', async () => {
    const f = new RemoteFunds({ url: 'http://127.0.0.1:1', tokenFile: join(dir, 'a'), ca: undefined, logger, waitMs: 5_000 });
    funds.push(f);
    const started = Date.now();
    expect(await f.reserve(key, LIMIT, 1_000n)).toBe('unavailable');
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('drains: what it holds is still reserved, a request that needs more is refused at once as draining, also one already waiting', async () => {
    ledger = new BudgetLedger({ now: Date.now });
    const l = ledger.current(NS, 'b', spec);
    const f = sidecar('d');
    expect(await f.reserve(key, LIMIT, 1_000n)).toBe('reserved'); // the first grant brings a cushion
    const other = { name: 'o', uid: 'o', boot: 'x' };
    ledger.apply(l, other, { seq: 1, spent: 0n, keep: 0n, want: LIMIT, need: 0n }); // the rest of the limit
    const waiting = f.reserve(key, LIMIT, 500_000n); // cannot fit: waits for money to come back
    await sleep(100);
    f.drain();
    const started = Date.now();
    expect(await waiting).toBe('draining');
    expect(Date.now() - started).toBeLessThan(5_000);
    f.settle(key, 1_000n, 200n); // 800 of what it holds is free again
    expect(await f.reserve(key, LIMIT, 500n)).toBe('reserved'); // held money is still usable
    expect(await f.reserve(key, LIMIT, 900_000n)).toBe('draining');
  });

  it('closes with a final report after its requests settled: the operator gets back all it did not spend and the process is Closed', async () => {
    ledger = new BudgetLedger({ now: Date.now });
    finals = 0;
    notLeaderAnswers = 1; // the final report is retried past a replica that is not the leader
    const f = sidecar('c', 10_000, 'boot-c');
    expect(await f.reserve(key, LIMIT, 10_000n)).toBe('reserved');
    f.drain();
    f.settle(key, 10_000n, 3_000n);
    notLeaderAnswers = 1;
    await f.close();
    expect(finals).toBe(1);
    const l = ledger.get(NS, 'b')!;
    const h = l.holders.get('c/boot-c')!;
    expect(h).toMatchObject({ state: 'Closed', granted: 3_000n, spent: 3_000n });
    expect(ledgerTotals(l)).toMatchObject({ committed: 3_000n, reported: 3_000n, unreported: 0n, outstanding: 0n });
    expect(await f.reserve(key, LIMIT, 1n)).toBe('draining');
  });

  it('a final report forced before a request settled keeps that request\'s reservation, counted as spent', async () => {
    ledger = new BudgetLedger({ now: Date.now });
    const f = sidecar('k', 10_000, 'boot-k');
    expect(await f.reserve(key, LIMIT, 10_000n)).toBe('reserved');
    expect(await f.reserve(key, LIMIT, 10_000n)).toBe('reserved');
    f.settle(key, 10_000n, 4_000n);
    await f.close(); // one request still in flight
    const l = ledger.get(NS, 'b')!;
    expect(l.holders.get('k/boot-k')).toMatchObject({ state: 'Closed', granted: 14_000n, spent: 4_000n });
    expect(ledgerTotals(l)).toMatchObject({ committed: 14_000n, reported: 4_000n, unreported: 10_000n });
  });

  it('a restarted process of the same pod does not free what the crashed one held', async () => {
    ledger = new BudgetLedger({ now: Date.now });
    const crashed = sidecar('r', 10_000, 'boot-1');
    expect(await crashed.reserve(key, LIMIT, 10_000n)).toBe('reserved'); // in flight when it dies: no settle, no close
    const l = ledger.get(NS, 'b')!;
    const held = l.holders.get('r/boot-1')!.granted;
    expect(held).toBeGreaterThanOrEqual(10_000n);
    const restarted = sidecar('r', 10_000, 'boot-2');
    expect(await restarted.reserve(key, LIMIT, 10_000n)).toBe('reserved');
    expect(l.holders.get('r/boot-1')).toMatchObject({ state: 'Lost', granted: held, spent: 0n });
    expect(ledgerTotals(l).unreported).toBe(held);
    expect(ledgerTotals(l).committed).toBe(held + l.holders.get('r/boot-2')!.granted);
  });
});
