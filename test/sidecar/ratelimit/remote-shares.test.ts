import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { RATELIMIT_SYNC_PATH, RateLimitSyncRequestSchema, type RateLimitSyncRequest } from '../../../crds/src/protocol.js';
import { RateLimitLedger } from '../../../operator/ratelimit-ledger.js';
import { TokenBucket } from '../../../sidecar/ratelimit/bucket.js';
import { ProviderBackoffs } from '../../../sidecar/ratelimit/provider-backoffs.js';
import { RemoteShares, shareKey, type OperatorPost } from '../../../sidecar/ratelimit/remote-shares.js';

const silent = pino({ level: 'silent' });
const KEY = 'rl/a/team';
const F = 'requestsPerMinute';
const T0 = Date.parse('2026-03-10T12:00:00Z');

/** The operator's ledger behind an in-process post, on the test's clock; `down` makes it fail. */
function operator() {
  const clock = { ms: T0 };
  const ledger = new RateLimitLedger({ now: () => clock.ms });
  const bodies: Array<{ pod: string; body: RateLimitSyncRequest }> = [];
  const state = { down: false };
  const postFor =
    (pod: string, onPost?: () => void): OperatorPost =>
    async (path, raw) => {
      expect(path).toBe(RATELIMIT_SYNC_PATH);
      const body = RateLimitSyncRequestSchema.parse(raw);
      onPost?.();
      bodies.push({ pod, body });
      if (state.down) return { status: 503, json: { error: { code: 'not_leader' } } };
      const id = { pod, uid: `uid-${pod}`, boot: body.boot, namespace: 'a' };
      const entries = body.entries.map((e) => {
        const a = ledger.answer({ limit: 600, windowMs: 60_000 }, id, e.key, e.field, { seq: body.seq, used: e.used, demand: e.demand, keep: e.keep, final: body.final });
        return { key: e.key, field: e.field, share: a.share, target: a.target, credit: a.credit, expires: new Date(a.expires).toISOString() };
      });
      return { status: 200, json: { entries } };
    };
  const client = (pod: string, onPost?: () => void) => {
    const bucket = new TokenBucket(600, 60_000, clock.ms);
    const shares = new RemoteShares({ post: postFor(pod, onPost), logger: silent, now: () => clock.ms, wallNow: () => clock.ms, boot: `boot-${pod}`, timers: false });
    return { shares, bucket };
  };
  return { clock, ledger, bodies, state, client };
}

describe('RemoteShares', () => {
  it('names limits: pq/ for a ProviderQuota, tq/ for a target quota, rl/ for a RateLimit', () => {
    expect(shareKey({ kind: 'provider', name: 'a/openai-key', resource: 'input_tokens', window: 'minute' })).toEqual({ key: 'pq/a/openai-key', field: 'inputTokensPerMinute' });
    expect(shareKey({ kind: 'provider', name: 'a/chat/primary', resource: 'requests', window: 'minute' })).toEqual({ key: 'tq/a/chat/primary', field: 'requestsPerMinute' });
    expect(shareKey({ kind: 'consumer', name: 'a/team', resource: 'tokens', window: 'day' })).toEqual({ key: 'rl/a/team', field: 'tokensPerDay' });
  });

  it('a tracked limit has no share (nothing fits, unusable) until the operator answers; then capacity = share, filled by the credit', async () => {
    const op = operator();
    const { shares, bucket } = op.client('p1');
    const first = shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket }]);
    expect(bucket.capacity).toBe(0);
    expect(shares.usable(KEY, F)).toBe(false);
    await first;
    expect(op.bodies[0]!.body).toEqual({ boot: 'boot-p1', seq: 1, entries: [{ key: KEY, field: F, used: 0, demand: 0, keep: 0 }] });
    expect(shares.usable(KEY, F)).toBe(true);
    expect(bucket.capacity).toBe(600);
    expect(bucket.available(op.clock.ms)).toBe(600);
  });

  it('fails closed at expiry minus the margin when the operator cannot be reached, and keeps nothing after', async () => {
    const op = operator();
    const { shares, bucket } = op.client('p1');
    await shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket }]);
    op.state.down = true;
    op.clock.ms += 11_999;
    await expect(shares.sync()).rejects.toThrow('operator answered 503');
    expect(shares.usable(KEY, F)).toBe(true);
    op.clock.ms += 1; // 15 s expiry − 3 s margin
    expect(shares.usable(KEY, F)).toBe(false);
    await expect(shares.sync()).rejects.toThrow('503');
    expect(op.bodies.at(-1)!.body.entries[0]!.keep).toBe(0);
    expect(bucket.capacity).toBe(0);
    expect(bucket.waitMs(1, op.clock.ms)).toBe(Infinity);
  });

  it('lowers its share to the target before reporting; the operator grants the freed part to the other only after the report', async () => {
    const op = operator();
    const capacityAtPost: number[] = [];
    const a = op.client('a', () => capacityAtPost.push(a.bucket.capacity));
    const b = op.client('b');
    await a.shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket: a.bucket }]); // a: 600
    for (let i = 0; i < 60; i++) a.shares.used(KEY, F, 1);
    await b.shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket: b.bucket }]);
    b.shares.short(KEY, F, 1); // b: demand 6 per minute, nothing free yet (this syncs at once)
    await b.shares.sync();
    expect(b.bucket.capacity).toBe(0);
    await a.shares.sync(); // a reports 600 kept, learns its target
    const target = op.ledger.get(KEY, F)!.holders.get('uid-a/boot-a')!.target;
    expect(target).toBeLessThan(600);
    // Lowered at once, before the next report.
    expect(a.bucket.capacity).toBe(target);
    expect(op.ledger.get(KEY, F)!.holders.get('uid-a/boot-a')!.share).toBe(600);
    await b.shares.sync();
    expect(b.bucket.capacity).toBe(0); // not freed yet: a has not reported
    await a.shares.sync();
    expect(capacityAtPost.at(-1)).toBe(target);
    expect(op.bodies.at(-1)!.body.entries[0]!.keep).toBe(target);
    await b.shares.sync();
    const bTarget = op.ledger.get(KEY, F)!.holders.get('uid-b/boot-b')!.target;
    expect(bTarget).toBeGreaterThan(0);
    expect(target + bTarget).toBeLessThanOrEqual(600);
    expect(b.bucket.capacity).toBe(bTarget);
    expect(b.bucket.available(op.clock.ms)).toBe(0); // freed capacity comes empty; it fills at b's rate
  });

  it('a share that lapsed is gone with its fill: granted again, it comes filled only by the credit', async () => {
    const op = operator();
    const { shares, bucket } = op.client('p1');
    await shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket }]);
    op.clock.ms += 12_000;
    expect(shares.usable(KEY, F)).toBe(false);
    // The operator still has it (not reclaimed yet) and renews it with no credit.
    await shares.sync();
    expect(shares.usable(KEY, F)).toBe(true);
    expect(bucket.capacity).toBe(600);
    expect(bucket.available(op.clock.ms)).toBe(0);
  });

  it('a share that lapses while its sync is in flight loses its fill too', async () => {
    const op = operator();
    let flight = 0;
    const { shares, bucket } = op.client('p1', () => (op.clock.ms += flight));
    await shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket }]);
    op.clock.ms += 11_900;
    flight = 200; // sent valid, answered after expiry − margin
    await shares.sync();
    expect(op.bodies.at(-1)!.body.entries[0]!.keep).toBe(600);
    expect(bucket.capacity).toBe(600);
    expect(bucket.available(op.clock.ms)).toBe(0);
    // Valid again from the time that sync was sent.
    expect(shares.usable(KEY, F)).toBe(true);
  });

  it('tick: syncs every period while in use, otherwise only as a heartbeat', async () => {
    const op = operator();
    const { shares, bucket } = op.client('p1');
    await shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket }]);
    op.clock.ms += 1_000;
    await shares.tick();
    expect(op.bodies).toHaveLength(1);
    op.clock.ms += 4_000;
    await shares.tick();
    expect(op.bodies).toHaveLength(2);
    shares.used(KEY, F, 10);
    op.clock.ms += 1_000;
    await shares.tick();
    expect(op.bodies).toHaveLength(3);
    expect(op.bodies.at(-1)!.body.entries[0]!.used).toBe(60); // 10 in 10 s, per minute
  });

  it('refusals sync at once, but at most once per 250 ms (the timer sends the rest)', async () => {
    const op = operator();
    const { shares, bucket } = op.client('p1');
    await shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket }]);
    op.clock.ms += 250;
    for (let i = 0; i < 50; i++) shares.short(KEY, F, 1);
    await shares.sync(); // waits for the one started by the first refusal (then sends one more)
    const afterFlood = op.bodies.length;
    expect(afterFlood).toBeLessThanOrEqual(3);
    expect(op.bodies[1]!.body.entries[0]!.demand).toBe(6); // 1 in 10 s, per minute
    op.clock.ms += 100;
    shares.short(KEY, F, 1);
    await Promise.resolve();
    expect(op.bodies).toHaveLength(afterFlood);
  });

  it('close gives every share back', async () => {
    const op = operator();
    const { shares, bucket } = op.client('p1');
    await shares.track([{ key: KEY, field: F, windowMs: 60_000, bucket }]);
    await shares.close();
    expect(op.bodies.at(-1)!.body).toMatchObject({ final: true, entries: [{ keep: 0, demand: 0 }] });
    expect(op.ledger.get(KEY, F)!.holders.size).toBe(0);
    expect(bucket.capacity).toBe(0);
    expect(shares.usable(KEY, F)).toBe(false);
  });
});

describe('RemoteShares: provider backoffs', () => {
  const CRED = 'a/secret/openai/api-key/openai/gpt-4o';

  /** A sidecar process's shares and backoffs against a scripted operator answer. */
  function harness(answer: (body: RateLimitSyncRequest) => { status: number; json: unknown } = () => ({ status: 200, json: { entries: [] } })) {
    const clock = { ms: T0 };
    const bodies: RateLimitSyncRequest[] = [];
    const backoffs = new ProviderBackoffs(() => clock.ms);
    const post: OperatorPost = async (_path, raw) => {
      const body = RateLimitSyncRequestSchema.parse(raw);
      bodies.push(body);
      return answer(body);
    };
    const shares = new RemoteShares({ post, logger: silent, now: () => clock.ms, wallNow: () => clock.ms, boot: 'boot-p1', timers: false, backoffs });
    return { clock, bodies, backoffs, shares };
  }
  const settle = () => new Promise((r) => setTimeout(r, 0));

  it('a backoff the provider asked for goes to the operator at once, in a sync of its own even without shares', async () => {
    const h = harness();
    h.backoffs.watching = true;
    h.clock.ms += 1_000;
    h.backoffs.observe(CRED, 429, { 'retry-after': '20' });
    await settle();
    expect(h.bodies).toEqual([{ boot: 'boot-p1', seq: 1, entries: [], backoffs: [{ key: CRED, ms: 20_000, resource: 'any' }] }]);
    // Reported while it lasts (a new leader hears of it again), as the time left.
    h.clock.ms += 1_000;
    await h.shares.tick();
    expect(h.bodies.at(-1)!.backoffs).toEqual([{ key: CRED, ms: 19_000, resource: 'any' }]);
  });

  it('the namespace’s backoffs in the answer are applied like its own; an answer without them (an older operator) changes nothing', async () => {
    let fleet: unknown = [{ key: CRED, ms: 8_000, resource: 'tokens' }];
    const h = harness(() => ({ status: 200, json: { entries: [], ...(fleet === undefined ? {} : { backoffs: fleet }) } }));
    h.backoffs.watching = true;
    await h.shares.sync();
    expect(h.bodies[0]).toEqual({ boot: 'boot-p1', seq: 1, entries: [] }); // nothing of its own: no field
    expect(h.backoffs.check(CRED, h.clock.ms)).toEqual({ key: CRED, resource: 'tokens', waitMs: 8_000 });
    expect(h.backoffs.report(h.clock.ms).backoffs).toEqual([]); // not echoed back
    fleet = undefined;
    await h.shares.sync();
    expect(h.backoffs.check(CRED, h.clock.ms)!.waitMs).toBe(8_000);
    fleet = 'not a list';
    await h.shares.sync();
    expect(h.backoffs.check(CRED, h.clock.ms)!.waitMs).toBe(8_000);
  });

  it('heartbeat: without shares it syncs every 5 s only when the config has routes; every tick while a backoff is live or unreported', async () => {
    let down = false;
    const h = harness(() => (down ? { status: 503, json: { error: { code: 'not_leader' } } } : { status: 200, json: { entries: [] } }));
    await h.shares.tick();
    expect(h.bodies).toHaveLength(0);
    h.backoffs.watching = true;
    await h.shares.tick();
    expect(h.bodies).toHaveLength(1);
    h.clock.ms += 1_000;
    await h.shares.tick();
    expect(h.bodies).toHaveLength(1);
    h.clock.ms += 4_000;
    await h.shares.tick();
    expect(h.bodies).toHaveLength(2);
    // A backoff while the operator cannot take it: every tick tries again.
    down = true;
    h.clock.ms += 250;
    h.backoffs.observe(CRED, 429, { 'retry-after': '3' });
    await settle();
    expect(h.bodies).toHaveLength(3);
    h.clock.ms += 1_000;
    await expect(h.shares.tick()).rejects.toThrow('503');
    expect(h.bodies).toHaveLength(4);
    expect(h.bodies.at(-1)!.backoffs).toEqual([{ key: CRED, ms: 2_000, resource: 'any' }]);
  });

  it('a flood of 429s costs one sync per 250 ms', async () => {
    const h = harness();
    h.backoffs.watching = true;
    for (let i = 0; i < 50; i++) {
      h.clock.ms += 10;
      h.backoffs.observe(CRED, 429, { 'retry-after': '20' });
      await settle();
    }
    expect(h.bodies.length).toBeLessThanOrEqual(2);
  });
});
