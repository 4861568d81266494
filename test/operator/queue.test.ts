import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { WorkQueue } from '../../operator/queue.js';

describe('WorkQueue', () => {
  it('de-duplicates pending keys and re-runs a key added while it runs', async () => {
    const runs: string[] = [];
    let release: (() => void) | undefined;
    const q = new WorkQueue(
      async (key) => {
        runs.push(key);
        if (key === 'a' && runs.length === 1) await new Promise<void>((r) => (release = r));
      },
      () => {},
    );
    q.add('a');
    await new Promise((r) => setImmediate(r));
    q.add('a'); // while running → once more afterwards
    q.add('b');
    q.add('b'); // pending already
    release!();
    await q.idle();
    await new Promise((r) => setTimeout(r, 5));
    await q.idle();
    expect(runs).toEqual(['a', 'b', 'a']);
  });

  it('retries a failing key with backoff until it succeeds', async () => {
    let calls = 0;
    const errors: string[] = [];
    const q = new WorkQueue(
      async () => {
        calls++;
        if (calls < 3) throw new Error(`boom ${calls}`);
      },
      (key, err) => errors.push(`${key}: ${(err as Error).message}`),
    );
    q.add('k');
    const start = Date.now();
    while (calls < 3 && Date.now() - start < 2000) await new Promise((r) => setTimeout(r, 10));
    expect(calls).toBe(3);
    expect(errors).toEqual(['k: boom 1', 'k: boom 2']);
    q.stop();
  });
});

describe('WorkQueue on a fake clock', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 0 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A queue whose process() records when each key ran and fails while `failing` says so. */
  function recording(maxBackoffMs?: number) {
    const runs: Array<[string, number]> = [];
    const errors: string[] = [];
    const failing = new Map<string, number>();
    const q = new WorkQueue(
      async (key) => {
        runs.push([key, Date.now()]);
        const left = failing.get(key) ?? 0;
        if (left > 0) {
          failing.set(key, left - 1);
          throw new Error(`${key} failed at ${Date.now()}`);
        }
      },
      (key, err) => errors.push(`${key}: ${(err as Error).message}`),
      maxBackoffMs,
    );
    return { q, runs, errors, failing };
  }

  it('backs off 100 ms, doubling per failure of the key, capped at maxBackoffMs', async () => {
    const { q, runs, errors, failing } = recording(500);
    failing.set('k', 5);
    q.add('k');
    await vi.advanceTimersByTimeAsync(5_000);
    expect(runs.map(([, at]) => at)).toEqual([0, 100, 300, 700, 1200, 1700]);
    expect(errors).toEqual(['k: k failed at 0', 'k: k failed at 100', 'k: k failed at 300', 'k: k failed at 700', 'k: k failed at 1200']);
    q.stop();
  });

  it('caps the backoff at 30 s by default', async () => {
    const { q, runs, failing } = recording();
    failing.set('k', 11);
    q.add('k');
    await vi.advanceTimersByTimeAsync(200_000);
    // 100, 200, 400 … 25 600 ms, then 30 s (not 51.2 s) twice.
    expect(runs.map(([, at]) => at)).toEqual([0, 100, 300, 700, 1500, 3100, 6300, 12_700, 25_500, 51_100, 81_100, 111_100]);
    q.stop();
  });

  it('a success resets the key\'s backoff; another key\'s failures do not count', async () => {
    const { q, runs, failing } = recording();
    failing.set('k', 2);
    q.add('k');
    await vi.advanceTimersByTimeAsync(1_000); // k: 0 (fails), 100 (fails), 300 (succeeds)
    failing.set('k', 1);
    failing.set('j', 1);
    q.add('k');
    q.add('j');
    await vi.advanceTimersByTimeAsync(1_000);
    expect(runs).toEqual([
      ['k', 0],
      ['k', 100],
      ['k', 300],
      ['k', 1000],
      ['j', 1000],
      ['k', 1100], // 100 ms again, not 400
      ['j', 1100],
    ]);
    q.stop();
  });

  it('runs one key at a time: a key added while another runs waits for it', async () => {
    const started: string[] = [];
    const release = new Map<string, () => void>();
    const q = new WorkQueue(
      (key) =>
        new Promise<void>((r) => {
          started.push(key);
          release.set(key, r);
        }),
      () => {},
    );
    q.add('a');
    q.add('b');
    await vi.advanceTimersByTimeAsync(10);
    expect(started).toEqual(['a']);
    release.get('a')!();
    await vi.advanceTimersByTimeAsync(0);
    expect(started).toEqual(['a', 'b']);
    release.get('b')!();
    await vi.advanceTimersByTimeAsync(0);
    await q.idle();
  });

  it('idle() resolves at once when nothing is queued, else once the last key is done', async () => {
    const release: Array<() => void> = [];
    const q = new WorkQueue(() => new Promise<void>((r) => release.push(r)), () => {});
    let idle = false;
    await q.idle().then(() => (idle = true));
    expect(idle).toBe(true);

    q.add('a');
    q.add('b');
    idle = false;
    void q.idle().then(() => (idle = true));
    await vi.advanceTimersByTimeAsync(10);
    expect(idle).toBe(false); // a runs, b waits
    release[0]!();
    await vi.advanceTimersByTimeAsync(10);
    expect(release).toHaveLength(2);
    expect(idle).toBe(false); // b runs, nothing pending
    release[1]!();
    await vi.advanceTimersByTimeAsync(10);
    expect(idle).toBe(true);
  });

  it('after stop() nothing runs: not a new key, not a pending retry, not a key re-added while it ran', async () => {
    const { q, runs, errors, failing } = recording();
    failing.set('k', 1);
    q.add('k');
    await vi.advanceTimersByTimeAsync(50); // failed; its retry is due at 100
    q.stop();
    q.add('new');
    await vi.advanceTimersByTimeAsync(10_000);
    expect(runs).toEqual([['k', 0]]);
    expect(errors).toEqual(['k: k failed at 0']);
    expect(vi.getTimerCount()).toBe(0);

    let release!: () => void;
    const started: string[] = [];
    const q2 = new WorkQueue(
      (key) =>
        new Promise<void>((r) => {
          started.push(key);
          release = r;
        }),
      () => {},
    );
    q2.add('a');
    q2.add('a'); // dirty while running
    q2.add('b'); // pending
    q2.stop();
    release();
    await vi.advanceTimersByTimeAsync(1_000);
    expect(started).toEqual(['a']);
  });
});
