import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { BudgetSyncRequestSchema, type BudgetSyncRequest } from '../../../crds/src/index.js';
import { RemoteFunds, type RemoteFundsOptions } from '../../../sidecar/budget/remote-funds.js';

/**
 * RemoteFunds' side of the sync protocol, exactly: what each report keeps, wants and needs, when
 * it syncs, how it retries and when it gives up. The operator is a scripted fake behind a fake
 * undici Agent (no sockets), and every clock is faked: no wall-clock waits. The real ledger
 * behind a real HTTP server is exercised in remote-funds.test.ts.
 */

interface Request {
  origin: string;
  path: string;
  method: string;
  headers: Record<string, string>;
  body: BudgetSyncRequest;
  at: number;
}
interface Response {
  status: number;
  text: string;
}

const h = vi.hoisted(() => ({
  agents: [] as Array<{ options: unknown; closed: number }>,
  requests: [] as Request[],
  handler: (() => ({ status: 500, text: 'no handler' })) as (body: BudgetSyncRequest) => Response | Promise<Response>,
}));

vi.mock('undici', () => ({
  Agent: class {
    closed = 0;
    constructor(readonly options: unknown) {
      h.agents.push(this);
    }
    async request(o: { origin: string; path: string; method: string; headers: Record<string, string>; body: string }) {
      // The operator validates every report (a negative or malformed amount is a 400 there).
      const body = BudgetSyncRequestSchema.parse(JSON.parse(o.body));
      h.requests.push({ origin: o.origin, path: o.path, method: o.method, headers: o.headers, body, at: Date.now() });
      const r = await h.handler(body);
      return { statusCode: r.status, body: { text: async () => r.text } };
    }
    async close() {
      this.closed++;
    }
  },
}));

const realImmediate = setImmediate;
/** Lets every pending promise chain run (real macrotask: the fake timers do not move). */
const flush = async () => {
  for (let i = 0; i < 3; i++) await new Promise((r) => realImmediate(r));
};
/** Moves the fake clock 1 ms at a time, letting promise chains run in between. */
async function advance(ms: number): Promise<void> {
  await flush();
  for (let i = 0; i < ms; i++) {
    vi.advanceTimersByTime(1);
    await flush();
  }
}
function track<T>(p: Promise<T>) {
  const t: { done: boolean; value: T | undefined; at: number } = { done: false, value: undefined, at: -1 };
  void p.then((v) => {
    t.done = true;
    t.value = v;
    t.at = Date.now() - T0;
  });
  return t;
}

const T0 = Date.parse('2026-12-10T12:00:00.000Z');
const P1 = '2026-12-01T00:00:00.000Z';
const P2 = '2027-01-01T00:00:00.000Z';
const KEY = `ns/b@${P1}`;
const LIMIT = 1_000_000_000n; // ignored by RemoteFunds: the operator knows the limit

interface Grant {
  granted?: bigint;
  spent?: bigint;
  outstanding?: bigint;
  available?: bigint;
  /** ms from now until the allowance expires */
  expiresIn?: number;
}
const entry = (name: string, periodStart: string, g: Grant) => ({
  name,
  periodStart,
  granted: String(g.granted ?? 0n),
  spent: String(g.spent ?? 0n),
  outstanding: String(g.outstanding ?? 0n),
  available: String(g.available ?? 0n),
  expires: new Date(Date.now() + (g.expiresIn ?? 30_000)).toISOString(),
});
const ok = (entries: unknown[]): Response => ({ status: 200, text: JSON.stringify({ entries }) });
/** The operator answers every reported entry with what `grant` says (undefined: leaves it out). */
function operator(grant: (e: BudgetSyncRequest['entries'][number]) => Grant | undefined): void {
  h.handler = (body) => ok(body.entries.flatMap((e) => (grant(e) ? [entry(e.name, e.periodStart, grant(e)!)] : [])));
}
function deferred(): { promise: Promise<Response>; resolve: (r: Response) => void } {
  let resolve!: (r: Response) => void;
  const promise = new Promise<Response>((r) => (resolve = r));
  return { promise, resolve };
}
const report = (spent: bigint, keep: bigint, want: bigint, need: bigint, name = 'b', periodStart = P1) => ({
  name,
  periodStart,
  spent: String(spent),
  keep: String(keep),
  want: String(want),
  need: String(need),
});
const lastEntries = () => h.requests.at(-1)!.body.entries;

let dir: string;
let warns: Array<[unknown, string]>;
const logger = { warn: (obj: unknown, msg: string) => void warns.push([obj, msg]) } as unknown as Logger;

function sidecar(o: Partial<RemoteFundsOptions> = {}): RemoteFunds {
  return new RemoteFunds({
    url: 'https://paygo-operator.paygo-system.svc:8443/ignored/path',
    tokenFile: join(dir, 'token'),
    ca: undefined,
    logger,
    now: () => Date.now(),
    heartbeatMs: 3_600_000,
    boot: 'boot-1',
    ...o,
  });
}

beforeEach(() => {
  vi.useFakeTimers({ now: T0 });
  h.agents = [];
  h.requests = [];
  warns = [];
  dir = mkdtempSync(join(tmpdir(), 'paygo-remote-sync-'));
  writeFileSync(join(dir, 'token'), 'pod-token\n');
});
afterEach(() => {
  vi.useRealTimers();
});

describe('RemoteFunds sync protocol', () => {
  it('a reservation that does not fit asks at once, for the request plus a cushion of four like it; what was granted then serves requests without syncs, to the last nano-USD', async () => {
    operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n }));
    const f = sidecar();
    expect(h.agents.map((a) => a.options)).toEqual([{ connect: {}, headersTimeout: 10_000, bodyTimeout: 10_000 }]);
    expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
    expect(h.requests).toEqual([
      {
        origin: 'https://paygo-operator.paygo-system.svc:8443',
        path: '/v1/budget/sync',
        method: 'POST',
        headers: { authorization: 'Bearer pod-token', 'content-type': 'application/json' },
        body: { seq: T0 + 1, boot: 'boot-1', entries: [report(0n, 0n, 5_000n, 1_000n)] },
        at: T0,
      },
    ]);
    for (let i = 0; i < 4; i++) expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
    expect(f.view(KEY)).toEqual({ spent: 0n, reserved: 5_000n });
    expect(h.requests).toHaveLength(1);
  });

  it('the operator\'s CA is what the connection trusts', () => {
    sidecar({ ca: '-----BEGIN CERTIFICATE-----' });
    expect(h.agents.map((a) => a.options)).toEqual([{ connect: { ca: '-----BEGIN CERTIFICATE-----' }, headersTimeout: 10_000, bodyTimeout: 10_000 }]);
  });

  it('sequence numbers grow with every sync and never lag the clock; the token is re-read for each sync', async () => {
    operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n }));
    const f = sidecar();
    await f.reserve(KEY, LIMIT, 1_000n);
    writeFileSync(join(dir, 'token'), 'rotated\n');
    f.settle(KEY, 1_000n, 400n); // reported after the default batch window of 100 ms
    await advance(99);
    expect(h.requests).toHaveLength(1);
    await advance(1);
    expect(h.requests.map((r) => r.body.seq)).toEqual([T0 + 1, T0 + 100]);
    expect(h.requests[1]!.headers.authorization).toBe('Bearer rotated');
    expect(h.requests[1]!.body.entries).toEqual([report(400n, 4_400n, 0n, 0n)]);
    // a sync in the same millisecond as the previous one still gets a higher number
    f.record(KEY, 1n);
    f.drain();
    await f.close(0);
    expect(h.requests.map((r) => r.body.seq)).toEqual([T0 + 1, T0 + 100, T0 + 101]);
  });

  it('spend is batched: settles and recorded spend within the window make one report', async () => {
    operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n }));
    const f = sidecar({ syncDelayMs: 50 });
    await f.reserve(KEY, LIMIT, 1_000n);
    f.settle(KEY, 1_000n, 300n);
    await advance(20);
    f.record(KEY, 200n); // alert-only spend, never reserved
    await advance(29);
    expect(h.requests).toHaveLength(1);
    await advance(1);
    expect(h.requests).toHaveLength(2);
    expect(h.requests[1]!.at).toBe(T0 + 50);
    expect(h.requests[1]!.body.entries).toEqual([report(500n, 4_500n, 0n, 0n)]);
    expect(f.view(KEY)).toEqual({ spent: 500n, reserved: 0n });
    expect(f.view(`ns/other@${P1}`)).toEqual({ spent: 0n, reserved: 0n });
    await advance(500);
    expect(h.requests).toHaveLength(2);
  });

  it('the heartbeat renews allowances while idle, and only once there are any', async () => {
    operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n }));
    const f = sidecar({ heartbeatMs: 1_000 });
    await advance(1_000);
    expect(h.requests).toHaveLength(0);
    await f.reserve(KEY, LIMIT, 1_000n);
    await advance(999);
    expect(h.requests).toHaveLength(1);
    await advance(1);
    expect(h.requests).toHaveLength(2);
    expect(h.requests[1]!.at).toBe(T0 + 2_000);
  });

  it('an allowance is not used within 5 s of its expiry: the next request syncs first', async () => {
    operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n, expiresIn: 30_000 }));
    const f = sidecar();
    await f.reserve(KEY, LIMIT, 1_000n);
    vi.setSystemTime(T0 + 24_999);
    expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
    expect(h.requests).toHaveLength(1);
    vi.setSystemTime(T0 + 25_000);
    expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
    expect(h.requests).toHaveLength(2);
  });

  it('an allowance the operator did not answer for is unavailable, not exhausted', async () => {
    h.handler = () => ok([entry('ghost', P1, { granted: 5_000n, available: 1_000_000n })]); // some other budget only
    const f = sidecar();
    expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('unavailable');
    expect(h.requests).toHaveLength(1);
    expect(warns).toEqual([[{ budget: 'b' }, 'the operator did not answer for this budget; request refused']]);
  });

  it('the spend the operator recorded is learnt when it is more than this process knows (a restart), never lowered', async () => {
    let spent = 7_000n;
    operator(() => ({ granted: 20_000n, spent, available: 1_000_000n, outstanding: 20_000n }));
    const f = sidecar();
    expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
    expect(f.view(KEY)).toEqual({ spent: 7_000n, reserved: 1_000n });
    spent = 3_000n;
    f.record(KEY, 0n);
    await advance(100);
    expect(h.requests).toHaveLength(2);
    expect(f.view(KEY)).toEqual({ spent: 7_000n, reserved: 1_000n });
  });

  describe('a sync that fails', () => {
    it('is retried three times with backoff (100, 200, 400 ms); then the request is refused as unavailable, with the operator\'s answer logged', async () => {
      const body = `{"error":"${'x'.repeat(300)}"}`;
      h.handler = () => ({ status: 503, text: body });
      const f = sidecar();
      const r = track(f.reserve(KEY, LIMIT, 1_000n));
      await flush();
      expect(h.requests.map((q) => q.at - T0)).toEqual([0]);
      await advance(99);
      expect(h.requests).toHaveLength(1);
      await advance(1);
      expect(h.requests).toHaveLength(2);
      await advance(199);
      expect(h.requests).toHaveLength(2);
      await advance(1);
      expect(h.requests).toHaveLength(3);
      await advance(399);
      expect(h.requests).toHaveLength(3);
      expect(r.done).toBe(false);
      await advance(1);
      expect(h.requests.map((q) => q.at - T0)).toEqual([0, 100, 300, 700]);
      expect(r).toMatchObject({ done: true, value: 'unavailable', at: 700 });
      expect(warns).toEqual([[{ budget: 'b', error: `operator answered 503 to a budget sync: ${body.slice(0, 200)}` }, 'budget sync with the operator failed; request refused']]);
      await advance(2_000);
      expect(h.requests).toHaveLength(4);
    });

    it('is not retried past the request\'s wait', async () => {
      h.handler = () => ({ status: 503, text: 'not the leader' });
      const f = sidecar({ waitMs: 100 });
      const r = track(f.reserve(KEY, LIMIT, 1_000n));
      await advance(100);
      expect(r).toMatchObject({ done: true, value: 'unavailable', at: 100 });
      expect(h.requests.map((q) => q.at - T0)).toEqual([0, 100]);
    });

    it('still serves a request that fits by then (money came back meanwhile), without retrying', async () => {
      operator(() => ({ granted: 1_000n, available: 0n, outstanding: 1_000n }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
      const answer = deferred();
      h.handler = () => answer.promise;
      const r = track(f.reserve(KEY, LIMIT, 600n));
      await flush();
      expect(h.requests).toHaveLength(2);
      f.settle(KEY, 1_000n, 200n); // 800 free again
      h.handler = () => ({ status: 503, text: 'down' });
      answer.resolve({ status: 503, text: 'down' });
      await flush();
      expect(r).toMatchObject({ done: true, value: 'reserved', at: 0 });
      expect(h.requests).toHaveLength(2);
      expect(f.view(KEY)).toEqual({ spent: 200n, reserved: 600n });
    });
  });

  describe('a request waiting for money to come back', () => {
    it('waits while the limit minus the fleet\'s spend could still take it (exactly), and is served once the operator grants it', async () => {
      let granted = 0n;
      operator(() => ({ granted, available: 0n, outstanding: 500n })); // another sidecar holds the last 500
      const f = sidecar();
      const r = track(f.reserve(KEY, LIMIT, 500n));
      await flush();
      expect(r.done).toBe(false);
      expect(lastEntries()).toEqual([report(0n, 0n, 2_500n, 500n)]); // before any answer: a cushion of 4 × 500
      granted = 500n; // it came back
      await advance(25);
      expect(r).toMatchObject({ done: true, value: 'reserved', at: 25 });
      expect(h.requests).toHaveLength(2);
      expect(lastEntries()).toEqual([report(0n, 0n, 500n, 500n)]); // the operator has nothing left: no cushion
    });

    it('is refused at once when even the limit minus the fleet\'s spend cannot take it', async () => {
      operator(() => ({ granted: 0n, available: 0n, outstanding: 499n }));
      const f = sidecar();
      const r = track(f.reserve(KEY, LIMIT, 500n));
      await flush();
      expect(r).toMatchObject({ done: true, value: 'exhausted', at: 0 });
      expect(h.requests).toHaveLength(1);
    });

    it('re-asks every 25 ms and is refused when its wait (10 s by default) is over', async () => {
      operator(() => ({ granted: 0n, available: 0n, outstanding: 5_000n }));
      const f = sidecar();
      const r = track(f.reserve(KEY, LIMIT, 500n));
      await advance(9_999);
      expect(r.done).toBe(false);
      expect(h.requests).toHaveLength(400);
      await advance(1);
      expect(r).toMatchObject({ done: true, value: 'exhausted', at: 10_000 });
      expect(h.requests).toHaveLength(401);
      expect(warns).toEqual([[{ budget: 'b', waitedMs: 10_000 }, 'budget allowance did not arrive in time; request refused']]);
    });

    it('is refused when the wait it was given is over', async () => {
      operator(() => ({ granted: 0n, available: 0n, outstanding: 5_000n }));
      const f = sidecar({ waitMs: 1_000 });
      const r = track(f.reserve(KEY, LIMIT, 500n));
      await advance(1_000);
      expect(r).toMatchObject({ done: true, value: 'exhausted', at: 1_000 });
      expect(h.requests).toHaveLength(41);
    });

    it('is served by money settled here while it waits, without another sync; it no longer counts as waiting after', async () => {
      operator(() => ({ granted: 1_000n, available: 0n, outstanding: 1_000n }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
      const r = track(f.reserve(KEY, LIMIT, 600n));
      await advance(10);
      expect(r.done).toBe(false);
      expect(h.requests).toHaveLength(2);
      expect(lastEntries()).toEqual([report(0n, 1_000n, 600n, 600n)]);
      f.settle(KEY, 1_000n, 200n);
      await advance(15);
      expect(r).toMatchObject({ done: true, value: 'reserved', at: 25 });
      expect(h.requests).toHaveLength(2);
      await advance(85); // the settle's report: nothing waits any more
      expect(h.requests).toHaveLength(3);
      expect(lastEntries()).toEqual([report(200n, 800n, 0n, 0n)]);
    });

    it('several waiting: one report asks for all of them and needs what the smallest lacks', async () => {
      operator(() => ({ granted: 0n, available: 1_000_000n, outstanding: 10_000n }));
      const answer = deferred();
      h.handler = () => answer.promise;
      const f = sidecar();
      const a = track(f.reserve(KEY, LIMIT, 500n));
      await flush();
      const b = track(f.reserve(KEY, LIMIT, 200n));
      const c = track(f.reserve(KEY, LIMIT, 300n));
      await flush();
      expect(h.requests).toHaveLength(1); // b and c wait for the next sync, not one each at once
      operator(() => ({ granted: 0n, available: 1_000_000n, outstanding: 10_000n }));
      answer.resolve(ok([entry('b', P1, { granted: 0n, available: 1_000_000n, outstanding: 10_000n })]));
      await flush();
      expect(h.requests).toHaveLength(2);
      // waiting 1,000, cushion 4 × 300 (the latest request): keep what is granted (nothing), want 2,200; the smallest needs 200
      expect(lastEntries()).toEqual([report(0n, 0n, 2_200n, 200n)]);
      expect([a.done, b.done, c.done]).toEqual([false, false, false]);
    });
  });

  describe('what a report keeps, wants and needs', () => {
    it('a busy sidecar keeps a cushion of as much again as is busy (reserved and waiting), once that is more than four requests', async () => {
      let granted = 1_000n;
      operator(() => ({ granted, available: 1_000_000n, outstanding: 10_000n }));
      const f = sidecar();
      for (let i = 0; i < 10; i++) expect(await f.reserve(KEY, LIMIT, 100n)).toBe('reserved');
      expect(h.requests).toHaveLength(1);
      expect(lastEntries()).toEqual([report(0n, 0n, 500n, 100n)]);
      granted = 2_200n;
      expect(await f.reserve(KEY, LIMIT, 100n)).toBe('reserved');
      // busy: 1,000 reserved + 100 waiting → cushion 1,100; want 100 + 1,100 − 0 free
      expect(lastEntries()).toEqual([report(0n, 1_000n, 1_200n, 100n)]);
    });

    it('tops up only when running low (free below what waits plus half the cushion), by what is missing', async () => {
      let granted = 4_500n;
      operator(() => ({ granted, available: 1_000_000n, outstanding: 10_000n }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
      f.settle(KEY, 1_000n, 1_000n);
      await advance(100);
      // cushion 4,000; 3,500 free: not low
      expect(lastEntries()).toEqual([report(1_000n, 4_500n, 0n, 0n)]);
      granted = 3_000n;
      f.record(KEY, 0n);
      await advance(100);
      expect(lastEntries()).toEqual([report(1_000n, 4_500n, 0n, 0n)]); // still what it held when it reported
      f.record(KEY, 0n);
      await advance(100);
      // 2,000 free: exactly half the cushion, not low
      expect(lastEntries()).toEqual([report(1_000n, 3_000n, 0n, 0n)]);
      granted = 2_000n;
      f.record(KEY, 0n);
      await advance(100);
      f.record(KEY, 0n);
      await advance(100);
      // 1,000 free: low; want the cushion back
      expect(lastEntries()).toEqual([report(1_000n, 2_000n, 3_000n, 0n)]);
      // a request of 1,500 does not fit the 1,000 free: it needs 500 more
      granted = 10_000n;
      expect(await f.reserve(KEY, LIMIT, 1_500n)).toBe('reserved');
      expect(lastEntries()).toEqual([report(1_000n, 2_000n, 6_500n, 500n)]);
    });

    it('gives back free money that a request waiting here cannot use once the operator has nothing left', async () => {
      operator(() => ({ granted: 1_000n, available: 0n, outstanding: 1_000n, expiresIn: 30_000 }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 700n)).toBe('reserved');
      vi.setSystemTime(T0 + 25_000); // what it holds is about to expire
      operator(() => ({ granted: 700n, available: 0n, outstanding: 1_000n }));
      const r = track(f.reserve(KEY, LIMIT, 500n));
      await flush();
      expect(r.done).toBe(false); // 300 may still come back elsewhere
      // 300 free cannot take 500: all of it goes back
      expect(lastEntries()).toEqual([report(0n, 700n, 500n, 500n)]);
    });

    it('keeps free money a request waiting here can use (exactly) when the operator has nothing left', async () => {
      operator(() => ({ granted: 1_000n, available: 0n, outstanding: 1_000n, expiresIn: 30_000 }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 500n)).toBe('reserved');
      vi.setSystemTime(T0 + 25_000);
      expect(await f.reserve(KEY, LIMIT, 500n)).toBe('reserved');
      expect(lastEntries()).toEqual([report(0n, 1_000n, 0n, 0n)]);
    });
  });

  describe('budgets and periods', () => {
    it('each answer goes to its own budget and period; answers for what was not asked are ignored', async () => {
      const K2 = `ns/c@${P1}`;
      const KP2 = `ns/b@${P2}`;
      h.handler = (body) =>
        ok([
          entry('unknown', P1, { granted: 9_000n }),
          ...body.entries.map((e) => entry(e.name, e.periodStart, { granted: e.name === 'b' && e.periodStart === P1 ? 1_000n : 3_000n, available: 1_000_000n, outstanding: 10_000n })),
        ]);
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved'); // b@P1: granted 1,000, all reserved
      expect(await f.reserve(K2, LIMIT, 3_000n)).toBe('reserved'); // c@P1: granted 3,000
      expect(lastEntries().map((e) => `${e.name}@${e.periodStart}`)).toEqual([`b@${P1}`, `c@${P1}`]);
      f.settle(K2, 3_000n, 3_000n); // c has nothing reserved any more
      expect(await f.reserve(KP2, LIMIT, 3_000n)).toBe('reserved'); // b of the next period, while b@P1 is still in flight
      // b@P1 still has a reservation and c is another budget: both stay
      expect(lastEntries().map((e) => `${e.name}@${e.periodStart}`)).toEqual([`b@${P1}`, `c@${P1}`, `b@${P2}`]);
      expect(h.requests).toHaveLength(3);
      expect(f.view(KEY)).toEqual({ spent: 0n, reserved: 1_000n });
    });

    it('an allowance of a past period is dropped once a request of the new period comes, unless something is still reserved in it', async () => {
      operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 10_000n }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
      f.settle(KEY, 1_000n, 600n);
      expect(f.view(KEY)).toEqual({ spent: 600n, reserved: 0n });
      expect(await f.reserve(`ns/b@${P2}`, LIMIT, 1_000n)).toBe('reserved');
      expect(lastEntries().map((e) => `${e.name}@${e.periodStart}`)).toEqual([`b@${P2}`]);
      expect(f.view(KEY)).toEqual({ spent: 0n, reserved: 0n });
    });
  });

  describe('shutting down', () => {
    it('a draining process asks for nothing more: a request that does not fit is refused at once, spend is not reported until the final report', async () => {
      operator(() => ({ granted: 1_000n, available: 1_000_000n, outstanding: 1_000n }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 1_000n)).toBe('reserved');
      f.drain();
      expect(await f.reserve(KEY, LIMIT, 1n)).toBe('draining');
      f.settle(KEY, 1_000n, 400n);
      await advance(1_000);
      expect(h.requests).toHaveLength(1);
      expect(await f.reserve(KEY, LIMIT, 600n)).toBe('reserved'); // what it holds still serves
      expect(h.requests).toHaveLength(1);
    });

    it('a drain during a sync refuses the waiting request as draining', async () => {
      const answer = deferred();
      h.handler = () => answer.promise;
      const f = sidecar();
      const r = track(f.reserve(KEY, LIMIT, 500n));
      await flush();
      f.drain();
      answer.resolve(ok([entry('b', P1, { granted: 0n, available: 0n, outstanding: 0n })]));
      await flush();
      expect(r).toMatchObject({ done: true, value: 'draining', at: 0 });
    });

    it('a drain while a request waits between syncs refuses it as draining when it wakes, without another sync', async () => {
      operator(() => ({ granted: 0n, available: 0n, outstanding: 1_000n }));
      const f = sidecar();
      const r = track(f.reserve(KEY, LIMIT, 500n));
      await advance(10);
      f.drain();
      await advance(15);
      expect(r).toMatchObject({ done: true, value: 'draining', at: 25 });
      expect(h.requests).toHaveLength(1);
    });

    it('a draining process gives back all it does not use, even what a request still waiting could use', async () => {
      const answer = deferred();
      h.handler = () => answer.promise;
      const f = sidecar();
      const big = track(f.reserve(KEY, LIMIT, 800n));
      await flush();
      const small = track(f.reserve(KEY, LIMIT, 300n)); // waits for the next sync
      await flush();
      f.drain();
      operator(() => ({ granted: 0n, available: 0n, outstanding: 500n }));
      answer.resolve(ok([entry('b', P1, { granted: 500n, available: 0n, outstanding: 500n })]));
      await flush();
      expect(big).toMatchObject({ done: true, value: 'draining' });
      expect(h.requests).toHaveLength(2);
      // 500 held, 300 waiting: all 500 go back, nothing more is wanted; the waiting request still needs 300
      expect(lastEntries()).toEqual([report(0n, 0n, 0n, 300n)]);
      expect(small).toMatchObject({ done: true, value: 'draining' });
    });

    it('after the final report nothing more is reserved, even money that came back since', async () => {
      operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n }));
      const f = sidecar();
      expect(await f.reserve(KEY, LIMIT, 2_000n)).toBe('reserved');
      await f.close(); // forced before the request settled
      expect(h.requests.at(-1)!.body).toEqual({ seq: T0 + 2, boot: 'boot-1', final: true, entries: [report(0n, 2_000n, 0n, 0n)] });
      expect(h.agents[0]!.closed).toBe(1);
      f.settle(KEY, 2_000n, 500n);
      expect(await f.reserve(KEY, LIMIT, 1n)).toBe('draining');
      expect(h.requests).toHaveLength(2);
    });

    it('the final report is retried with backoff (100 ms doubling up to 1 s) until its time is up, then given up with a warning', async () => {
      operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n }));
      const f = sidecar();
      await f.reserve(KEY, LIMIT, 1_000n);
      h.handler = () => ({ status: 503, text: 'not the leader' });
      const closed = track(f.close(4_500));
      await advance(3_500);
      expect(closed).toMatchObject({ done: true, at: 3_500 });
      expect(h.requests.slice(1).map((q) => q.at - T0)).toEqual([0, 100, 300, 700, 1_500, 2_500, 3_500]);
      expect(h.requests.slice(1).every((q) => q.body.final === true)).toBe(true);
      expect(warns).toEqual([[{ error: 'operator answered 503 to a budget sync: not the leader' }, 'final budget report not delivered; the operator counts what this sidecar held as spent']]);
      expect(h.agents[0]!.closed).toBe(1);
      await advance(2_000);
      expect(h.requests).toHaveLength(8);
    });

    it('the final report tries until 5 s by default', async () => {
      operator(() => ({ granted: 5_000n, available: 1_000_000n, outstanding: 5_000n }));
      const f = sidecar();
      await f.reserve(KEY, LIMIT, 1_000n);
      h.handler = () => ({ status: 503, text: 'not the leader' });
      const closed = track(f.close());
      await advance(4_500);
      expect(closed).toMatchObject({ done: true, at: 4_500 });
      expect(h.requests.slice(1).map((q) => q.at - T0)).toEqual([0, 100, 300, 700, 1_500, 2_500, 3_500, 4_500]);
    });
  });
});
