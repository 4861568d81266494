import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { TargetStats } from '../../../sidecar/metering/meter.js';
import { TargetReporter } from '../../../sidecar/metering/target-reporter.js';

/** When the reporter sends, what it logs when the operator does not take a report, and its timer. */

function setup(intervalMs = 3_600_000) {
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk, _e, done) {
      for (const l of String(chunk).split('\n')) if (l) logs.push(JSON.parse(l) as Record<string, unknown>);
      done();
    },
  });
  const targets = new Map<string, TargetStats>([['ns/r/t', { namespace: 'ns', route: 'r', target: 't', provider: 'openai', requests: 1, successes: 1, errors: 0, costNano: 5n }]]);
  const posts: unknown[] = [];
  let flushes = 0;
  let answer: () => Promise<number> = async () => 204;
  const reporter = new TargetReporter({
    targets,
    flush: () => flushes++,
    post: async (_path, body) => {
      posts.push(body);
      return answer();
    },
    logger: pino({ level: 'debug', base: undefined, timestamp: false }, sink),
    intervalMs,
  });
  return {
    reporter,
    targets,
    posts,
    logs,
    flushes: () => flushes,
    answer: (f: () => Promise<number>) => (answer = f),
  };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('TargetReporter', () => {
  it('one report at a time: a send while one is in flight does nothing, not even a flush', async () => {
    const s = setup();
    let release!: (n: number) => void;
    s.answer(() => new Promise<number>((r) => (release = r)));
    const first = s.reporter.send();
    await s.reporter.send();
    expect(s.posts).toHaveLength(1);
    expect(s.flushes()).toBe(1);
    release(204);
    await first;
    s.targets.get('ns/r/t')!.requests = 2;
    s.answer(async () => 204);
    await s.reporter.send();
    expect(s.posts).toHaveLength(2);
  });

  it('says why a report was not taken, and sends it again after a failure', async () => {
    const s = setup();
    s.answer(async () => 500);
    await s.reporter.send();
    s.answer(async () => {
      throw new Error('connection refused');
    });
    await s.reporter.send();
    s.answer(async () => 204);
    await s.reporter.send();
    await s.reporter.send();
    expect(s.posts).toHaveLength(3);
    expect(s.logs).toEqual([
      { level: 20, status: 500, msg: 'target report not taken; sent again later' },
      { level: 20, error: 'connection refused', msg: 'could not send the target report; sent again later' },
    ]);
  });

  it('sends every interval and stops with a last report; its timer does not hold the process', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const s = setup(1000);
    expect((s.reporter as unknown as { timer: NodeJS.Timeout }).timer.hasRef()).toBe(false);
    await vi.advanceTimersByTimeAsync(999);
    expect(s.posts).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(s.posts).toHaveLength(1);
    s.targets.get('ns/r/t')!.requests = 2;
    await s.reporter.stop();
    expect(s.posts).toHaveLength(2);
    s.targets.get('ns/r/t')!.requests = 3;
    await vi.advanceTimersByTimeAsync(5000);
    expect(s.posts).toHaveLength(2);
    expect(vi.getTimerCount()).toBe(0);
  });
});
