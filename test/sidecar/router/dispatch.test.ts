import { describe, expect, it } from 'vitest';
import { RetrySchema } from '../../../crds/src/index.js';
import { Cancel } from '../../../sidecar/cancel.js';
import { ApiError, invalidRequest } from '../../../sidecar/errors.js';
import { CircuitBreaker } from '../../../sidecar/router/breaker.js';
import { dispatch, type DispatchOptions } from '../../../sidecar/router/dispatch.js';
import type { RuntimeRoute, RuntimeTarget } from '../../../sidecar/router/runtime.js';
import { UpstreamHttpError, UpstreamProtocolError, UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { TransportError } from '../../../sidecar/transport.js';
import { testRoute, testTarget } from '../../support/runtime.js';

const target = testTarget;
const route = (targets: RuntimeTarget[], retry: Partial<ReturnType<typeof RetrySchema.parse>> = {}) => testRoute(targets, { initialBackoffMs: 10, maxBackoffMs: 100, ...retry });

/** A virtual clock: sleeps advance time instantly, so tests are exact and fast. */
function harness() {
  let now = 0;
  const sleeps: number[] = [];
  const events: string[] = [];
  const o: DispatchOptions = {
    signal: new Cancel(),
    now: () => now,
    random: () => 0.5,
    sleep: async (ms) => {
      sleeps.push(ms);
      now += ms;
    },
    unitPrice: () => undefined,
    hooks: {
      onRetry: (_r, t, k) => events.push(`retry ${t.name} ${k}`),
      onFailover: (_r, t, k) => events.push(`failover ${t.name} ${k}`),
      onCircuitOpen: (_r, t) => events.push(`open ${t.name}`),
    },
  };
  return { o, sleeps, events, advance: (ms: number) => (now += ms) };
}

describe('dispatch', () => {
  it('returns the first success with the attempt count', async () => {
    const h = harness();
    const r = route([target('a'), target('b')]);
    const out = await dispatch(r, async (t) => t.name, h.o);
    expect(out).toMatchObject({ value: 'a', attempts: 1 });
    expect(out.target.name).toBe('a');
  });

  it('retries a 5xx with backoff, then fails over to the next target', async () => {
    const h = harness();
    const r = route([target('a'), target('b')], { attempts: 2 });
    const calls: string[] = [];
    const out = await dispatch(
      r,
      async (t) => {
        calls.push(t.name);
        if (t.name === 'a') throw new UpstreamHttpError(500, 'down', undefined);
        return 'ok';
      },
      h.o,
    );
    expect(calls).toEqual(['a', 'a', 'b']);
    expect(out.attempts).toBe(3);
    expect(h.events).toEqual(['retry a 5xx', 'failover a 5xx']);
    expect(h.sleeps).toEqual([5]); // full jitter: 0.5 × 10 ms
  });

  it('honours Retry-After when it fits under the backoff cap, fails over when it does not', async () => {
    const h = harness();
    const r = route([target('a'), target('b')], { attempts: 3, maxBackoffMs: 1000 });
    const seen: string[] = [];
    let n = 0;
    await dispatch(
      r,
      async (t) => {
        seen.push(t.name);
        if (t.name === 'a') throw new UpstreamHttpError(429, 'slow down', n++ === 0 ? 700 : 5000);
        return 'ok';
      },
      h.o,
    );
    expect(h.sleeps).toEqual([700]);
    expect(seen).toEqual(['a', 'a', 'b']);
  });

  it('does not retry what retryOn leaves out', async () => {
    const h = harness();
    const r = route([target('a'), target('b')], { attempts: 3, retryOn: ['5xx'] });
    const seen: string[] = [];
    await dispatch(
      r,
      async (t) => {
        seen.push(t.name);
        if (t.name === 'a') throw new TransportError('timeout', 'slow');
        return 'ok';
      },
      h.o,
    );
    expect(seen).toEqual(['a', 'b']);
  });

  it('passes a 4xx the provider blames on the request straight back, without failover', async () => {
    const h = harness();
    const r = route([target('a'), target('b')]);
    await expect(dispatch(r, async () => Promise.reject(new UpstreamHttpError(400, 'bad param', undefined)), h.o)).rejects.toMatchObject({ status: 400 });
    expect(r.targets[1]!.health.breaker.state).toBe('closed');
  });

  it('fails over when a provider cannot take the request, and reports that 400 if none can', async () => {
    const h = harness();
    const r = route([target('a'), target('b')]);
    const out = await dispatch(r, async (t) => (t.name === 'a' ? Promise.reject(invalidRequest('n>1 unsupported', 'n')) : 'b'), h.o);
    expect(out.value).toBe('b');
    await expect(dispatch(r, async () => Promise.reject(invalidRequest('n>1 unsupported', 'n')), h.o)).rejects.toMatchObject({ status: 400, param: 'n' });
  });

  it('opens the circuit after consecutive failures and then skips the target', async () => {
    const h = harness();
    const a = target('a');
    const r = route([a, target('b')], { attempts: 1 });
    for (let i = 0; i < 3; i++) await dispatch(r, async (t) => (t.name === 'a' ? Promise.reject(new UpstreamHttpError(500, 'x', undefined)) : 'b'), h.o);
    expect(a.health.breaker.state).toBe('open');
    expect(h.events).toContain('open a');
    const seen: string[] = [];
    await dispatch(r, async (t) => (seen.push(t.name), 'ok'), h.o);
    expect(seen).toEqual(['b']);
    h.advance(10_000); // cooldown over: one probe reaches a and closes the circuit
    await dispatch(r, async (t) => (seen.push(t.name), 'ok'), h.o);
    expect(seen).toEqual(['b', 'a']);
    expect(a.health.breaker.state).toBe('closed');
  });

  it('a single-target route cools down too: 503 while its circuit is open', async () => {
    const h = harness();
    const r = route([target('only')], { attempts: 1 });
    for (let i = 0; i < 3; i++) await dispatch(r, async () => Promise.reject(new UpstreamHttpError(502, 'x', undefined)), h.o).catch(() => {});
    const err = await dispatch(r, async () => 'never', h.o).catch((e: ApiError) => e);
    expect(err).toMatchObject({ status: 503, code: 'no_available_target' });
    expect((err as ApiError).message).toContain('only: circuit open');
  });

  it('maps the last failure to a clean final error', async () => {
    const h = harness();
    const r = route([target('a'), target('b')], { attempts: 1 });
    await expect(dispatch(r, async () => Promise.reject(new TransportError('timeout', 't')), h.o)).rejects.toMatchObject({ status: 504, code: 'upstream_timeout' });
    await expect(dispatch(r, async () => Promise.reject(new UpstreamHttpError(429, 'rl', 3000)), h.o)).rejects.toMatchObject({ status: 429, headers: { 'retry-after': '3' } });
    await expect(dispatch(r, async () => Promise.reject(new TransportError('connect', 'refused')), h.o)).rejects.toMatchObject({ status: 502, code: 'upstream_failed' });
  });

  // One row per failure class of the README's "Errors" table (status mapping); every target fails alike.
  it.each([
    ['rate limited, Retry-After given', 429, 'upstream_rate_limited', '3', () => new UpstreamHttpError(429, 'rl', 3000)],
    ['rate limited, no Retry-After', 429, 'upstream_rate_limited', undefined, () => new UpstreamHttpError(429, 'rl', undefined)],
    ['503 unavailable, Retry-After given', 503, 'upstream_overloaded', '5', () => new UpstreamHttpError(503, 'busy', 5000)],
    ['529 overloaded (Anthropic)', 503, 'upstream_overloaded', undefined, () => new UpstreamHttpError(529, 'overloaded', undefined)],
    ['overloaded_error stream event', 503, 'upstream_overloaded', undefined, () => new UpstreamStreamError('Overloaded', 'overloaded_error')],
    ['500 internal error', 502, 'upstream_failed', undefined, () => new UpstreamHttpError(500, 'boom', 2000)],
    ['502 bad gateway', 502, 'upstream_failed', undefined, () => new UpstreamHttpError(502, 'bad', undefined)],
    ['504 gateway timeout (upstream)', 502, 'upstream_failed', undefined, () => new UpstreamHttpError(504, 'late', undefined)],
    ['connection refused', 502, 'upstream_failed', undefined, () => new TransportError('connect', 'refused')],
    ['connection reset', 502, 'upstream_failed', undefined, () => new TransportError('reset', 'socket hang up')],
    ['unreadable body', 502, 'upstream_failed', undefined, () => new UpstreamProtocolError('not JSON')],
    ['other stream error event', 502, 'upstream_failed', undefined, () => new UpstreamStreamError('bad', 'api_error')],
    ['timeout', 504, 'upstream_timeout', undefined, () => new TransportError('timeout', 'no headers')],
    ['408 model timeout (Bedrock)', 504, 'upstream_timeout', undefined, () => new UpstreamHttpError(408, 'ModelTimeoutException', undefined)],
    ['424 model error (Bedrock)', 502, 'upstream_failed', undefined, () => new UpstreamHttpError(424, 'ModelErrorException', undefined)],
    ['401 bad key', 502, 'upstream_auth_failed', undefined, () => new UpstreamHttpError(401, 'no', undefined)],
    ['403 forbidden', 502, 'upstream_auth_failed', undefined, () => new UpstreamHttpError(403, 'no', undefined)],
  ] as const)('every target fails with %s → %i %s', async (_name, status, code, retryAfter, error) => {
    const h = harness();
    const r = route([target('a'), target('b')], { attempts: 2 });
    const err = (await dispatch(r, async () => Promise.reject(error()), h.o).catch((e: unknown) => e)) as ApiError;
    expect(err).toBeInstanceOf(ApiError);
    expect({ status: err.status, code: err.code, retryAfter: err.headers['retry-after'] }).toEqual({ status, code, retryAfter });
  });

  it('a 4xx the provider blames on the request is passed on at once, no failover', async () => {
    const h = harness();
    let calls = 0;
    const rejected = new UpstreamHttpError(400, 'bad request', undefined);
    const err = await dispatch(route([target('a'), target('b')]), async () => {
      calls++;
      throw rejected;
    }, h.o).catch((e: unknown) => e);
    expect(err).toBe(rejected);
    expect(calls).toBe(1);
  });

  it('the last target tried decides the status when targets fail differently', async () => {
    const h = harness();
    const failures = [new TransportError('reset', 'reset'), new UpstreamHttpError(529, 'overloaded', 1000)];
    let i = 0;
    const err = await dispatch(route([target('a'), target('b')], { attempts: 1 }), async () => Promise.reject(failures[i++]), h.o).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 503, code: 'upstream_overloaded', headers: { 'retry-after': '1' } });
  });

  it('skips targets without credentials and says why', async () => {
    const h = harness();
    const r = route([target('a', { unavailableReason: 'credentials unavailable: Secret default/openai not found' })]);
    await expect(dispatch(r, async () => 'x', h.o)).rejects.toThrow(/a: credentials unavailable: Secret default\/openai not found/);
  });

  it('stops at the total deadline', async () => {
    const h = harness();
    const r = route([target('a'), target('b')], { attempts: 5, totalTimeoutMs: 100, initialBackoffMs: 40, maxBackoffMs: 40 });
    let calls = 0;
    await expect(
      dispatch(r, async () => {
        calls++;
        h.advance(30);
        throw new UpstreamHttpError(503, 'x', undefined);
      }, h.o),
    ).rejects.toMatchObject({ status: 503, code: 'upstream_overloaded' });
    expect(calls).toBeLessThanOrEqual(3);
  });

  it('does not count a client abort against the target', async () => {
    const h = harness();
    const cancel = new Cancel();
    const a = target('a');
    const r = route([a]);
    await expect(
      dispatch(r, async () => {
        cancel.abort(new TransportError('aborted', 'gone'));
        throw new TransportError('aborted', 'gone');
      }, { ...h.o, signal: cancel }),
    ).rejects.toMatchObject({ failure: 'aborted' });
    expect(a.health.breaker.state).toBe('closed');
  });
});

/**
 * A virtual clock starting at 1000 and one log of everything dispatch reports: hooks, the attempt
 * observer and sleeps, in order.
 */
function recorder(start = 1000) {
  let now = start;
  const log: string[] = [];
  const o: DispatchOptions = {
    signal: new Cancel(),
    now: () => now,
    random: () => 0.5,
    sleep: async (ms) => {
      log.push(`sleep ${ms}`);
      now += ms;
    },
    unitPrice: () => undefined,
    hooks: {
      onRetry: (_r, t, k) => log.push(`retry ${t.name} ${k}`),
      onFailover: (_r, t, k) => log.push(`failover ${t.name} ${k}`),
      onCircuitOpen: (_r, t) => log.push(`open ${t.name}`),
      onAttemptFailed: (_r, t, k, e) => log.push(`failed ${t.name} ${k} ${e.message}`),
    },
    attempts: {
      attemptStarted: (t) => log.push(`start ${t.name}`),
      attemptEnded: (outcome, e) => log.push(`end ${outcome}${e ? ` ${e.message}` : ''}`),
    },
  };
  return { o, log, advance: (ms: number) => (now += ms), at: () => now };
}

/** An attempt that answers per target: a list of what each successive call does (the last repeats). */
function scripted(plan: Record<string, Array<Error | string>>) {
  const calls: string[] = [];
  const seen: Record<string, number> = {};
  const attempt = async (t: RuntimeTarget) => {
    calls.push(t.name);
    const steps = plan[t.name] ?? ['ok'];
    const i = seen[t.name] = (seen[t.name] ?? -1) + 1;
    const step = steps[Math.min(i, steps.length - 1)]!;
    if (step instanceof Error) throw step;
    return `${t.name}:${step}`;
  };
  return { attempt, calls };
}

const http = (status: number, retryAfterMs?: number) => new UpstreamHttpError(status, `http ${status}`, retryAfterMs);

describe('dispatch: the attempt sequence, exactly', () => {
  it('reports each attempt to the observer and the hooks, in order', async () => {
    const h = recorder();
    const r = route([target('a'), target('b')], { attempts: 2 });
    const { attempt } = scripted({ a: [http(500)], b: ['fine'] });
    const out = await dispatch(r, attempt, h.o);
    expect(out).toMatchObject({ value: 'b:fine', attempts: 3 });
    expect(out.target).toBe(r.targets[1]);
    expect(h.log).toEqual([
      'start a',
      'end 5xx http 500',
      'failed a 5xx http 500',
      'retry a 5xx',
      'sleep 5',
      'start a',
      'end 5xx http 500',
      'failed a 5xx http 500',
      'failover a 5xx',
      'start b',
      'end success',
    ]);
  });

  it('hands each attempt the cancel signal and the absolute deadline', async () => {
    const h = recorder(5000);
    const r = route([target('a')], { totalTimeoutMs: 777 });
    const got: Array<[unknown, number]> = [];
    await dispatch(r, async (_t, signal, deadline) => (got.push([signal, deadline]), 'x'), h.o);
    expect(got).toEqual([[h.o.signal, 5777]]);
  });

  it('works without hooks or an observer', async () => {
    const r = route([target('a'), target('b')], { attempts: 2 });
    const { attempt, calls } = scripted({ a: [http(500)] });
    const h = recorder();
    const out = await dispatch(r, attempt, { ...h.o, hooks: undefined, attempts: undefined });
    expect(out.value).toBe('b:ok');
    expect(calls).toEqual(['a', 'a', 'b']);
    const out2 = await dispatch(route([target('c'), target('d')], { attempts: 2 }), scripted({ c: [http(500)] }).attempt, { ...h.o, hooks: {}, attempts: undefined });
    expect(out2.value).toBe('d:ok');
  });

  it('opens circuits without hooks, or with hooks that leave onCircuitOpen out', async () => {
    const h = recorder();
    for (const hooks of [undefined, {}]) {
      for (const error of [http(401), http(500)]) {
        const a = target('a', { health: { breaker: new CircuitBreaker(1, 1000), latencyMs: undefined } });
        const out = await dispatch(route([a, target('b')], { attempts: 2 }), scripted({ a: [error] }).attempt, { ...h.o, hooks, attempts: undefined });
        expect(out.value).toBe('b:ok');
        expect(a.health.breaker.state).toBe('open');
      }
    }
  });

  it('a non-Error thrown by an attempt is wrapped and treated as an unreadable answer (5xx class)', async () => {
    const h = recorder();
    const r = route([target('a')], { attempts: 2 });
    const err = await dispatch(r, async () => Promise.reject('weird'), h.o).catch((e: unknown) => e);
    expect(h.log).toEqual(['start a', 'end protocol weird', 'failed a protocol weird', 'retry a protocol', 'sleep 5', 'start a', 'end protocol weird', 'failed a protocol weird']);
    expect(err).toMatchObject({ status: 502, code: 'upstream_failed', message: 'Every target of route "r" failed after 2 attempts: weird' });
  });

  it('an Error of no known class is a protocol failure (5xx class)', async () => {
    const h = recorder();
    const r = route([target('a')], { attempts: 1 });
    const err = await dispatch(r, async () => Promise.reject(new RangeError('odd')), h.o).catch((e: unknown) => e);
    expect(h.log).toContain('failed a protocol odd');
    expect(err).toMatchObject({ status: 502, code: 'upstream_failed' });
  });
});

describe('dispatch: which failures are retried (retryOn)', () => {
  // kind, a failure of that kind, the retryOn entry that covers it
  const cases = [
    ['429', () => http(429), '429'],
    ['overloaded', () => http(503), '5xx'],
    ['overloaded', () => http(529), '5xx'],
    ['overloaded', () => new UpstreamStreamError('busy', 'overloaded_error'), '5xx'],
    ['5xx', () => http(500), '5xx'],
    ['5xx', () => http(424), '5xx'],
    ['protocol', () => new UpstreamProtocolError('garbled'), '5xx'],
    ['protocol', () => new UpstreamStreamError('bad', 'api_error'), '5xx'],
    ['timeout', () => new TransportError('timeout', 't'), 'timeout'],
    ['timeout', () => http(408), 'timeout'],
    ['connect', () => new TransportError('connect', 'c'), 'connect'],
    ['connect', () => new TransportError('reset', 'r'), 'connect'],
  ] as const;
  const all = ['429', '5xx', 'timeout', 'connect'] as const;

  it.each(cases)('%s is retried when retryOn has its class', async (kind, error, on) => {
    const h = recorder();
    const r = route([target('a'), target('b')], { attempts: 2, retryOn: [on] });
    const { attempt, calls } = scripted({ a: [error()] });
    await dispatch(r, attempt, h.o);
    expect(calls).toEqual(['a', 'a', 'b']);
    expect(h.log.filter((l) => l.startsWith('retry') || l.startsWith('failover'))).toEqual([`retry a ${kind}`, `failover a ${kind}`]);
  });

  it.each(cases)('%s fails over at once when retryOn leaves its class out', async (kind, error, on) => {
    const h = recorder();
    const r = route([target('a'), target('b')], { attempts: 2, retryOn: all.filter((x) => x !== on) });
    const { attempt, calls } = scripted({ a: [error()] });
    await dispatch(r, attempt, h.o);
    expect(calls).toEqual(['a', 'b']);
    expect(h.log.filter((l) => l.startsWith('retry') || l.startsWith('failover'))).toEqual([`failover a ${kind}`]);
  });

  it.each([401, 403, 404])('auth (%i) is never retried, whatever retryOn says, and fails over', async (status) => {
    const h = recorder();
    const r = route([target('a'), target('b')], { attempts: 3, retryOn: [...all] });
    const { attempt, calls } = scripted({ a: [http(status)] });
    expect((await dispatch(r, attempt, h.o)).value).toBe('b:ok');
    expect(calls).toEqual(['a', 'b']);
    expect(h.log).toContain('failover a auth');
    expect(h.log.some((l) => l.startsWith('retry'))).toBe(false);
  });

  it.each([400, 409, 413, 422])('a %i is the request\'s fault: thrown as it is, no retry, no failover, not held against the target', async (status) => {
    const h = recorder();
    const a = target('a', { health: { breaker: new CircuitBreaker(1, 100), latencyMs: undefined } });
    const r = route([a, target('b')], { attempts: 3 });
    const rejected = http(status);
    const { attempt, calls } = scripted({ a: [rejected] });
    expect(await dispatch(r, attempt, h.o).catch((e: unknown) => e)).toBe(rejected);
    expect(calls).toEqual(['a']);
    expect(a.health.breaker.state).toBe('closed'); // a threshold of 1 would have opened it
    expect(h.log).toEqual(['start a', `end client http ${status}`, `failed a client http ${status}`]);
  });
});

describe('dispatch: backoff and Retry-After', () => {
  it('backs off exponentially with jitter between retries of one target', async () => {
    const h = recorder();
    const a = target('a', { health: { breaker: new CircuitBreaker(10, 1000), latencyMs: undefined } });
    const r = route([a], { attempts: 4, initialBackoffMs: 100, maxBackoffMs: 1000 });
    await dispatch(r, scripted({ a: [http(500)] }).attempt, h.o).catch(() => {});
    expect(h.log.filter((l) => l.startsWith('sleep'))).toEqual(['sleep 50', 'sleep 100', 'sleep 200']);
  });

  it('waits the longer of Retry-After and the backoff', async () => {
    const h = recorder();
    const r = route([target('a')], { attempts: 3, initialBackoffMs: 100, maxBackoffMs: 1000 });
    // Retry-After 10 ms < backoff 50 ms; then Retry-After 300 ms > backoff 100 ms.
    await dispatch(r, scripted({ a: [http(429, 10), http(503, 300), 'ok'] }).attempt, h.o);
    expect(h.log.filter((l) => l.startsWith('sleep'))).toEqual(['sleep 50', 'sleep 300']);
  });

  it('honours the Retry-After of 5xx and 424 answers too', async () => {
    const h = recorder();
    const r = route([target('a')], { attempts: 3, initialBackoffMs: 10, maxBackoffMs: 1000 });
    await dispatch(r, scripted({ a: [http(500, 400), http(424, 600), 'ok'] }).attempt, h.o);
    expect(h.log.filter((l) => l.startsWith('sleep'))).toEqual(['sleep 400', 'sleep 600']);
  });

  it('a Retry-After exactly at the backoff cap is still waited; one past it fails over at once', async () => {
    const h = recorder();
    const r = route([target('a'), target('b')], { attempts: 3, initialBackoffMs: 10, maxBackoffMs: 500 });
    const { attempt, calls } = scripted({ a: [http(429, 500), http(429, 501)] });
    await dispatch(r, attempt, h.o);
    expect(calls).toEqual(['a', 'a', 'b']);
    expect(h.log.filter((l) => l.startsWith('sleep') || l.startsWith('retry') || l.startsWith('failover'))).toEqual(['retry a 429', 'sleep 500', 'failover a 429']);
  });

  it('a wait that would end at the deadline fails over at once; one that ends just before it is waited', async () => {
    const retry = { attempts: 2, totalTimeoutMs: 1000, initialBackoffMs: 10, maxBackoffMs: 2000 };
    const h = recorder(0);
    const one = scripted({ a: [http(429, 1000)] });
    await dispatch(route([target('a'), target('b')], retry), one.attempt, h.o);
    expect(one.calls).toEqual(['a', 'b']);
    expect(h.log.some((l) => l.startsWith('sleep'))).toBe(false);

    const h2 = recorder(0);
    const two = scripted({ a: [http(429, 999)] });
    await dispatch(route([target('a'), target('b')], retry), two.attempt, h2.o);
    expect(two.calls).toEqual(['a', 'a', 'b']);
    expect(h2.log.filter((l) => l.startsWith('sleep'))).toEqual(['sleep 999']);
  });

  it('the deadline counts from the start of dispatch, not from the last attempt', async () => {
    const h = recorder(0);
    const r = route([target('a'), target('b')], { attempts: 3, totalTimeoutMs: 1000, initialBackoffMs: 10, maxBackoffMs: 2000 });
    const calls: string[] = [];
    await dispatch(r, async (t) => {
      calls.push(t.name);
      h.advance(300);
      if (t.name === 'a') throw http(500, 200);
      return 'ok';
    }, h.o);
    // a at 0 (fails at 300), waits 200; a at 500 (fails at 800), a 200 ms wait would end at 1000: fail over; b at 800.
    expect(calls).toEqual(['a', 'a', 'b']);
    expect(h.log.filter((l) => l.startsWith('sleep'))).toEqual(['sleep 200']);
  });
});

describe('dispatch: the total deadline', () => {
  it('no attempt starts at or after the deadline: a failover target that would start exactly then is not tried', async () => {
    const h = recorder(0);
    const r = route([target('a'), target('b')], { attempts: 1, totalTimeoutMs: 100 });
    const calls: string[] = [];
    const err = await dispatch(r, async (t) => {
      calls.push(t.name);
      h.advance(100);
      throw new TransportError('timeout', 'no headers');
    }, h.o).catch((e: unknown) => e);
    expect(calls).toEqual(['a']);
    expect(err).toMatchObject({ status: 504, code: 'upstream_timeout', message: 'Every target of route "r" timed out after 1 attempt.' });
  });

  it('one that starts a millisecond before the deadline is tried', async () => {
    const h = recorder(0);
    const r = route([target('a'), target('b')], { attempts: 1, totalTimeoutMs: 100 });
    const calls: string[] = [];
    await dispatch(r, async (t) => {
      calls.push(t.name);
      h.advance(99);
      if (t.name === 'a') throw new TransportError('timeout', 'no headers');
      return 'ok';
    }, h.o);
    expect(calls).toEqual(['a', 'b']);
  });

  it('a deadline that passed before the first attempt: 503 no_available_target, "deadline exceeded"', async () => {
    let now = 0;
    const h = recorder();
    const o = { ...h.o, now: () => (now += 50) }; // every reading of the clock is 50 ms later
    const calls: string[] = [];
    const err = await dispatch(route([target('a')], { totalTimeoutMs: 50 }), async (t) => (calls.push(t.name), 'x'), o).catch((e: unknown) => e);
    expect(calls).toEqual([]);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 503, type: 'upstream_error', code: 'no_available_target', message: 'No target of route "r" is available: deadline exceeded.' });
  });
});

describe('dispatch: circuit breakers', () => {
  const breaker = (threshold: number, cooldownMs = 1000) => ({ health: { breaker: new CircuitBreaker(threshold, cooldownMs), latencyMs: undefined } });

  it('a retryable failure that opens the circuit stops retrying that target at once', async () => {
    const h = recorder();
    const a = target('a', breaker(2));
    const r = route([a, target('b')], { attempts: 5 });
    const { attempt, calls } = scripted({ a: [http(500)] });
    await dispatch(r, attempt, h.o);
    expect(calls).toEqual(['a', 'a', 'b']);
    expect(h.log.filter((l) => !l.startsWith('start') && !l.startsWith('end') && !l.startsWith('failed'))).toEqual(['retry a 5xx', 'sleep 5', 'open a', 'failover a 5xx']);
    expect(a.health.breaker.state).toBe('open');
  });

  it('a failure that is not retried counts against the breaker too, and may open it', async () => {
    const h = recorder();
    const a = target('a', breaker(1));
    const r = route([a, target('b')], { attempts: 3 });
    await dispatch(r, scripted({ a: [http(401)] }).attempt, h.o);
    expect(h.log).toContain('open a');
    expect(a.health.breaker.state).toBe('open');

    const h2 = recorder();
    const c = target('c', breaker(2));
    await dispatch(route([c, target('d')], { attempts: 3 }), scripted({ c: [http(401)] }).attempt, h2.o);
    expect(h2.log).not.toContain('open c');
    expect(c.health.breaker.state).toBe('closed');
    await dispatch(route([c, target('d')], { attempts: 3 }), scripted({ c: [http(401)] }).attempt, h2.o);
    expect(h2.log).toContain('open c');
  });

  it('a 429 that says when to come back is a rate limit, not a failure: it never opens the circuit (the provider backoff holds the key); one without opens it like any failure', async () => {
    const h = recorder(0);
    const a = target('a', breaker(2, 30_000));
    const r = route([a, target('b')], { attempts: 1 });
    for (let i = 0; i < 5; i++) await dispatch(r, scripted({ a: [http(429, 50)] }).attempt, h.o);
    expect(h.log).not.toContain('open a');
    expect(a.health.breaker.state).toBe('closed');
    const { attempt, calls } = scripted({});
    await dispatch(r, attempt, h.o);
    expect(calls).toEqual(['a']); // still tried first

    for (let i = 0; i < 2; i++) await dispatch(r, scripted({ a: [http(429)] }).attempt, h.o);
    expect(h.log).toContain('open a');
    expect(a.health.breaker.state).toBe('open');
  });

  it('a half-open probe answered 429 with a reset gives the probe back without judging the target', async () => {
    const h = recorder(0);
    const a = target('a', breaker(1, 100));
    const r = route([a], { attempts: 1 });
    await dispatch(r, scripted({ a: [http(500)] }).attempt, h.o).catch(() => {});
    expect(a.health.breaker.state).toBe('open');
    h.advance(100);
    await dispatch(r, scripted({ a: [http(429, 50)] }).attempt, h.o).catch(() => {});
    expect(a.health.breaker.state).toBe('half-open');
    expect(a.health.breaker.available(h.o.now())).toBe(true); // the next request may probe
  });

  it('a success closes a half-open circuit and resets the failure count', async () => {
    const h = recorder(0);
    const a = target('a', breaker(2, 100));
    const r = route([a], { attempts: 1 });
    for (let i = 0; i < 2; i++) await dispatch(r, scripted({ a: [http(500)] }).attempt, h.o).catch(() => {});
    expect(a.health.breaker.state).toBe('open');
    h.advance(100);
    expect((await dispatch(r, scripted({}).attempt, h.o)).value).toBe('a:ok');
    expect(a.health.breaker.state).toBe('closed');
    await dispatch(r, scripted({ a: [http(500)] }).attempt, h.o).catch(() => {});
    expect(a.health.breaker.state).toBe('closed'); // one failure after the reset: below 2
  });

  it('a target whose circuit is open is skipped and named; the next one serves', async () => {
    const h = recorder(0);
    const a = target('a', breaker(1, 1000));
    a.health.breaker.onFailure(0);
    const { attempt, calls } = scripted({});
    const out = await dispatch(route([a, target('b')]), attempt, h.o);
    expect(calls).toEqual(['b']);
    expect(out.attempts).toBe(1);
    expect(h.log).not.toContain('failover a undefined');
  });

  it('every target skipped: 503 naming each and why, in order', async () => {
    const h = recorder(0);
    const a = target('a', breaker(1, 1000));
    a.health.breaker.onFailure(0);
    const b = target('b', { unavailableReason: 'credentials unavailable: no Secret' });
    const err = await dispatch(route([a, b]), scripted({}).attempt, h.o).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect(err).toMatchObject({ status: 503, type: 'upstream_error', code: 'no_available_target', message: 'No target of route "r" is available: a: circuit open; b: credentials unavailable: no Secret.' });
  });

  it('a request the provider blames on itself frees a half-open probe without judging the target', async () => {
    const h = recorder(0);
    const a = target('a', breaker(1, 100));
    a.health.breaker.onFailure(0);
    h.advance(100);
    await dispatch(route([a]), scripted({ a: [http(400)] }).attempt, h.o).catch(() => {});
    expect(a.health.breaker.state).toBe('half-open');
    expect(a.health.breaker.available(h.at())).toBe(true);
  });

  it('a provider that cannot take the request frees a half-open probe without judging the target', async () => {
    const h = recorder(0);
    const a = target('a', breaker(1, 100));
    a.health.breaker.onFailure(0);
    h.advance(100);
    await dispatch(route([a]), scripted({ a: [invalidRequest('no n', 'n')] }).attempt, h.o).catch(() => {});
    expect(a.health.breaker.state).toBe('half-open');
    expect(a.health.breaker.available(h.at())).toBe(true);
  });
});

describe('dispatch: the client going away', () => {
  it('a request already aborted sends nothing', async () => {
    const h = recorder();
    const cancel = new Cancel();
    cancel.abort(new Error('gone'));
    const { attempt, calls } = scripted({});
    const err = await dispatch(route([target('a')]), attempt, { ...h.o, signal: cancel }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ failure: 'aborted', message: 'client went away' });
    expect(calls).toEqual([]);
  });

  it('an abort during the backoff stops before the next attempt', async () => {
    const h = recorder();
    const cancel = new Cancel();
    const { attempt, calls } = scripted({ a: [http(500)] });
    const err = await dispatch(route([target('a'), target('b')], { attempts: 3 }), attempt, {
      ...h.o,
      signal: cancel,
      sleep: async () => cancel.abort(new Error('gone')),
    }).catch((e: unknown) => e);
    expect(err).toMatchObject({ failure: 'aborted' });
    expect(calls).toEqual(['a']);
  });

  it('any failure once the client has gone is an abort: not counted, probe freed, no failover', async () => {
    const h = recorder(0);
    const cancel = new Cancel();
    const a = target('a', { health: { breaker: new CircuitBreaker(1, 100), latencyMs: undefined } });
    a.health.breaker.onFailure(0);
    h.advance(100); // half-open: this request is the probe
    const cause = http(500);
    const err = await dispatch(route([a, target('b')]), async () => {
      cancel.abort(new Error('gone'));
      throw cause;
    }, { ...h.o, signal: cancel }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ failure: 'aborted', message: 'client went away' });
    expect((err as Error).cause).toBe(cause);
    expect(h.log).toEqual(['start a', 'end aborted http 500']);
    expect(a.health.breaker.state).toBe('half-open');
    expect(a.health.breaker.available(h.at())).toBe(true);
  });

  it('an aborted transport error is an abort even before the signal says so', async () => {
    const h = recorder();
    const a = target('a', { health: { breaker: new CircuitBreaker(1, 100), latencyMs: undefined } });
    const { attempt, calls } = scripted({ a: [new TransportError('aborted', 'socket closed by us')] });
    const err = await dispatch(route([a, target('b')]), attempt, h.o).catch((e: unknown) => e);
    expect(err).toMatchObject({ failure: 'aborted', message: 'client went away' });
    expect(calls).toEqual(['a']);
    expect(a.health.breaker.state).toBe('closed');
  });
});

describe('dispatch: providers that cannot take the request', () => {
  it('is not retried on the same target', async () => {
    const h = recorder();
    const { attempt, calls } = scripted({ a: [invalidRequest('no n', 'n')] });
    await dispatch(route([target('a'), target('b')], { attempts: 3 }), attempt, h.o);
    expect(calls).toEqual(['a', 'b']);
    expect(h.log).toEqual(['start a', 'end translate no n', 'failed a translate no n', 'start b', 'end success']);
  });

  it('when none can, the first refusal is what the client gets', async () => {
    const h = recorder();
    const first = invalidRequest('a cannot', 'n');
    const { attempt } = scripted({ a: [first], b: [invalidRequest('b cannot', 'tools')] });
    expect(await dispatch(route([target('a'), target('b')]), attempt, h.o).catch((e: unknown) => e)).toBe(first);
  });

  it('a real failure elsewhere outranks a refusal', async () => {
    const h = recorder();
    const { attempt } = scripted({ a: [invalidRequest('a cannot', 'n')], b: [http(500)] });
    const err = await dispatch(route([target('a'), target('b')], { attempts: 1 }), attempt, h.o).catch((e: unknown) => e);
    expect(err).toMatchObject({ status: 502, code: 'upstream_failed', message: 'Every target of route "r" failed after 2 attempts: http 500' });
  });
});

describe('dispatch: requirePricing', () => {
  it('skips targets without a known price and names them; priced ones serve', async () => {
    const h = recorder();
    const r = { ...route([target('a', { provider: 'openai', model: 'gpt-x' }), target('b')]), requirePricing: true };
    const { attempt, calls } = scripted({});
    const out = await dispatch(r, attempt, { ...h.o, unitPrice: (t) => (t.name === 'b' ? 10n : undefined) });
    expect(out.value).toBe('b:ok');
    expect(calls).toEqual(['b']);
    const err = await dispatch(r, attempt, h.o).catch((e: unknown) => e);
    expect(err).toMatchObject({
      status: 503,
      code: 'no_available_target',
      message:
        'No target of route "r" is available: a: no known price for openai model "gpt-x" and the route sets requirePricing (add spec.targets[].pricing); b: no known price for simulate model "b" and the route sets requirePricing (add spec.targets[].pricing).',
    });
  });

  it('without requirePricing an unpriced target serves, and prices are asked only by the cheapest strategy', async () => {
    const h = recorder();
    let asked = 0;
    const out = await dispatch(route([target('a')]), scripted({}).attempt, { ...h.o, unitPrice: () => (asked++, undefined) });
    expect(out.value).toBe('a:ok');
    expect(asked).toBe(0);
  });
});

describe('dispatch: strategies', () => {
  it('cheapest tries targets by price, unknown last', async () => {
    const h = recorder();
    const prices: Record<string, bigint | undefined> = { a: undefined, b: 30n, c: 10n };
    const r = { ...route([target('a'), target('b'), target('c')], { attempts: 1 }), strategy: 'cheapest' as const };
    const { attempt, calls } = scripted({ a: [http(500)], b: [http(500)], c: [http(500)] });
    await dispatch(r, attempt, { ...h.o, unitPrice: (t) => prices[t.name] }).catch(() => {});
    expect(calls).toEqual(['c', 'b', 'a']);
  });

  it('lowestLatency tries unmeasured targets first, then the fastest', async () => {
    const h = recorder();
    const lat = (ms: number | undefined) => ({ health: { breaker: new CircuitBreaker(10, 1000), latencyMs: ms } });
    const r = { ...route([target('a', lat(300)), target('b', lat(20)), target('c', lat(undefined))], { attempts: 1 }), strategy: 'lowestLatency' as const };
    const { attempt, calls } = scripted({ a: [http(500)], b: [http(500)], c: [http(500)] });
    await dispatch(r, attempt, h.o).catch(() => {});
    expect(calls).toEqual(['c', 'b', 'a']);
  });

  it('weighted draws with the injected randomness and leaves weight 0 out', async () => {
    const h = recorder();
    const r = { ...route([target('a', { weight: 1 }), target('b', { weight: 3 }), target('z', { weight: 0 })], { attempts: 1 }), strategy: 'weighted' as const };
    const draws = [0.3, 0];
    const { attempt, calls } = scripted({ a: [http(500)], b: [http(500)], z: [http(500)] });
    // 0.3 × 4 = 1.2: past a (1), inside b.
    await dispatch(r, attempt, { ...h.o, random: () => draws.shift() ?? 0.5 }).catch(() => {});
    expect(calls).toEqual(['b', 'a']);
  });

  it('a success feeds the target\'s latency average (time until the attempt committed); failures do not', async () => {
    const h = recorder(10_000);
    const a = target('a');
    const r = route([a]);
    await dispatch(r, async () => (h.advance(100), 'x'), h.o);
    expect(a.health.latencyMs).toBe(100);
    await dispatch(r, async () => (h.advance(200), 'x'), h.o);
    expect(a.health.latencyMs).toBeCloseTo(130, 10);
    await dispatch(route([a], { attempts: 1 }), async () => (h.advance(5000), Promise.reject(http(500))), h.o).catch(() => {});
    expect(a.health.latencyMs).toBeCloseTo(130, 10);
  });

  it('the latency of a retried success is its own attempt, not the retries before it', async () => {
    const h = recorder(0);
    const a = target('a');
    let n = 0;
    await dispatch(route([a], { attempts: 2 }), async () => {
      h.advance(n === 0 ? 1000 : 40);
      if (n++ === 0) throw http(500);
      return 'x';
    }, h.o);
    expect(a.health.latencyMs).toBe(40);
  });
});

describe('dispatch: the final error', () => {
  const fail = async (error: () => Error, attempts = 1, targets = 1) => {
    const h = recorder();
    const ts = ['a', 'b', 'c'].slice(0, targets).map((n) => target(n, { health: { breaker: new CircuitBreaker(100, 1000), latencyMs: undefined } }));
    return (await dispatch(route(ts, { attempts }), async () => Promise.reject(error()), h.o).catch((e: unknown) => e)) as ApiError;
  };

  it('names the route, the attempts and the last failure', async () => {
    expect(await fail(() => http(429))).toMatchObject({ status: 429, type: 'rate_limit_error', code: 'upstream_rate_limited', message: 'Every target of route "r" is rate limited after 1 attempt: http 429', headers: {} });
    expect(await fail(() => http(429), 2, 2)).toMatchObject({ message: 'Every target of route "r" is rate limited after 4 attempts: http 429' });
    expect(await fail(() => http(503), 1, 2)).toMatchObject({ status: 503, type: 'upstream_error', code: 'upstream_overloaded', message: 'Every target of route "r" is overloaded or unavailable after 2 attempts: http 503', headers: {} });
    expect(await fail(() => new TransportError('timeout', 'slow'), 3)).toMatchObject({ status: 504, type: 'timeout_error', code: 'upstream_timeout', message: 'Every target of route "r" timed out after 3 attempts.', headers: {} });
    expect(await fail(() => http(403), 3, 2)).toMatchObject({ status: 502, type: 'upstream_error', code: 'upstream_auth_failed', message: 'The provider refused the request after 2 attempts: http 403', headers: {} });
    expect(await fail(() => http(500))).toMatchObject({ status: 502, type: 'upstream_error', code: 'upstream_failed', message: 'Every target of route "r" failed after 1 attempt: http 500', headers: {} });
  });

  it('passes on the provider\'s Retry-After in whole seconds, rounded up', async () => {
    expect((await fail(() => http(429, 1001))).headers).toEqual({ 'retry-after': '2' });
    expect((await fail(() => http(429, 1000))).headers).toEqual({ 'retry-after': '1' });
    expect((await fail(() => http(503, 1))).headers).toEqual({ 'retry-after': '1' });
    expect((await fail(() => http(429, 0))).headers).toEqual({});
  });

  it('a 404 (model not found) is an auth-class failure', async () => {
    expect(await fail(() => http(404), 2, 2)).toMatchObject({ status: 502, code: 'upstream_auth_failed' });
  });
});

describe('dispatch: failover events (paygo_failovers_total)', () => {
  const failovers = (log: string[]) => log.filter((l) => l.startsWith('failover'));

  it('one per target left after its own failure, with its own failure class; none after the last target', async () => {
    const h = recorder();
    const { attempt } = scripted({ a: [http(429)], b: [new TransportError('connect', 'refused')], c: [http(500)] });
    await dispatch(route([target('a'), target('b'), target('c')], { attempts: 1 }), attempt, h.o).catch(() => {});
    expect(failovers(h.log)).toEqual(['failover a 429', 'failover b connect']);
  });

  it('none for a target passed over because its circuit is open, also after an earlier target failed', async () => {
    const h = recorder(0);
    const b = target('b', { health: { breaker: new CircuitBreaker(1, 1000), latencyMs: undefined } });
    b.health.breaker.onFailure(0);
    const { attempt, calls } = scripted({ a: [http(500)] });
    await dispatch(route([target('a'), b, target('c')], { attempts: 1 }), attempt, h.o);
    expect(calls).toEqual(['a', 'c']);
    expect(failovers(h.log)).toEqual(['failover a 5xx']);
  });

  it('none for a target passed over because the deadline has passed', async () => {
    const h = recorder(0);
    const calls: string[] = [];
    await dispatch(route([target('a'), target('b'), target('c')], { attempts: 1, totalTimeoutMs: 100 }), async (t) => {
      calls.push(t.name);
      h.advance(100);
      throw http(500);
    }, h.o).catch(() => {});
    expect(calls).toEqual(['a']);
    expect(failovers(h.log)).toEqual(['failover a 5xx']);
  });

  it('none for a target that could not take the request, also after an earlier target failed', async () => {
    const h = recorder();
    const { attempt } = scripted({ a: [http(500)], b: [invalidRequest('no n', 'n')] });
    await dispatch(route([target('a'), target('b'), target('c')], { attempts: 1 }), attempt, h.o);
    expect(failovers(h.log)).toEqual(['failover a 5xx']);
  });
});

describe('dispatch: one half-open probe at a time, also with requests in flight', () => {
  /** An attempt whose outcome the test decides later. */
  function pending() {
    let settle!: (v: Error | string) => void;
    const done = new Promise<Error | string>((resolve) => (settle = resolve));
    return { attempt: async () => { const v = await done; if (v instanceof Error) throw v; return v; }, settle };
  }

  it.each([
    ['a 400 (the request\'s fault)', () => http(400)],
    ['a refusal (the provider cannot take the request)', () => invalidRequest('no n', 'n')],
  ])('a request sent while closed that ends with %s after the circuit opened does not free the probe', async (_name, error) => {
    const h = recorder(0);
    const a = target('a', { health: { breaker: new CircuitBreaker(1, 100), latencyMs: undefined } });
    const r = route([a], { attempts: 1 });
    const old = pending();
    const oldRequest = dispatch(r, old.attempt, h.o).catch((e: unknown) => e); // sent while closed
    await dispatch(r, async () => Promise.reject(http(500)), h.o).catch(() => {}); // opens the circuit
    h.advance(100);
    const probe = pending();
    const probeRequest = dispatch(r, probe.attempt, h.o); // the one probe
    expect(a.health.breaker.state).toBe('half-open');
    old.settle(error());
    await oldRequest;
    const third = await dispatch(r, async () => 'second probe', h.o).catch((e: unknown) => e);
    expect(third).toMatchObject({ status: 503, code: 'no_available_target' }); // still one probe out
    probe.settle('ok');
    expect((await probeRequest).value).toBe('ok');
    expect(a.health.breaker.state).toBe('closed');
  });

  it('a request sent while closed whose client leaves after the circuit opened does not free the probe', async () => {
    const h = recorder(0);
    const a = target('a', { health: { breaker: new CircuitBreaker(1, 100), latencyMs: undefined } });
    const r = route([a], { attempts: 1 });
    const old = pending();
    const oldRequest = dispatch(r, old.attempt, h.o).catch((e: unknown) => e);
    await dispatch(r, async () => Promise.reject(http(500)), h.o).catch(() => {});
    h.advance(100);
    const probe = pending();
    const probeRequest = dispatch(r, probe.attempt, h.o);
    old.settle(new TransportError('aborted', 'client went away'));
    expect(await oldRequest).toMatchObject({ failure: 'aborted' });
    expect(await dispatch(r, async () => 'second probe', h.o).catch((e: unknown) => e)).toMatchObject({ status: 503 });
    probe.settle('ok');
    await probeRequest;
  });
});
