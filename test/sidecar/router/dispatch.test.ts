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
