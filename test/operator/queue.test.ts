import { describe, expect, it } from 'vitest';
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
