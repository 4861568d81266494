import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { FakeKube, RATE_LIMITS, ROUTES } from '../support/fake-kube.js';
import { fleetPod, startFleetSidecar, startInProcessOperator } from '../support/fleet.js';
import { postChat, startSidecarOperatorAway, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * Operator mode, end to end on this machine: the real operator (in process, over the fake API
 * server) distributes a RateLimit and shares it out; two real sidecar processes enforce it
 * together, so the fleet admits no more than the one limit.
 */
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

const ask = { model: 'sim', messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 5 };

describe('fleet-wide rate limits (operator mode)', () => {
  it('two sidecars share one RateLimit: together they admit at most the limit; the rest get 429 rate_limit_exceeded', async () => {
    const kube = await new FakeKube().start();
    cleanup.push(() => kube.stop());
    const dir = mkdtempSync(join(tmpdir(), 'paygo-fleet-'));
    for (const i of [1, 2]) fleetPod(kube, dir, 'team', i);
    kube.put(ROUTES, { apiVersion: 'paygo.dev/v1alpha1', kind: 'ModelRoute', metadata: { name: 'sim', namespace: 'team' }, spec: { model: 'sim', targets: [{ provider: 'simulate', model: 'sim' }] } });
    kube.put(RATE_LIMITS, { apiVersion: 'paygo.dev/v1alpha1', kind: 'RateLimit', metadata: { name: 'team', namespace: 'team' }, spec: { limits: { requestsPerMinute: 6 } } });
    const { op, url } = await startInProcessOperator(kube, dir);
    cleanup.push(() => op.stop());
    // A started operator waits one share expiry before granting (ratelimits.ts); nothing was granted before this one.
    op.rateLimits.ledger.quietUntil = 0;
    const sidecars: SidecarProcess[] = [];
    for (const i of [1, 2]) {
      const sc = await startFleetSidecar(url, dir, i);
      cleanup.push(() => sc.stop());
      sidecars.push(sc);
    }
    // Both hold a share (or have asked for one) once a sync went through.
    for (let i = 0; i < 100 && (op.rateLimits.ledger.get('rl/team/team', 'requestsPerMinute')?.holders.size ?? 0) < 2; i++) await new Promise((r) => setTimeout(r, 50));
    expect(op.rateLimits.ledger.get('rl/team/team', 'requestsPerMinute')!.holders.size).toBe(2);
    const codes: Record<string, number> = {};
    const started = Date.now();
    for (let round = 0; round < 10; round++) {
      for (const sc of sidecars) {
        const res = await postChat(sc, ask);
        const body = (await res.json()) as { error?: { code: string } };
        const key = res.status === 200 ? '200' : `${res.status} ${body.error?.code}`;
        codes[key] = (codes[key] ?? 0) + 1;
      }
    }
    // 6 per minute: the burst, plus what refilled while the test ran (one every 10 s).
    const refilled = Math.floor((Date.now() - started) / 10_000);
    expect(codes['200'] ?? 0).toBeGreaterThanOrEqual(1);
    expect(codes['200'] ?? 0).toBeLessThanOrEqual(6 + refilled);
    expect(Object.keys(codes).sort()).toEqual(['200', '429 rate_limit_exceeded']);
    const e = op.rateLimits.ledger.get('rl/team/team', 'requestsPerMinute')!;
    expect([...e.holders.values()].reduce((a, h) => a + h.share, 0)).toBeLessThanOrEqual(6);
  }, 60_000);

  it('with the operator out of reach a RateLimit fails closed: 503 ratelimit_unavailable, Retry-After 5', async () => {
    const sc = await startSidecarOperatorAway(`
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: sim, namespace: team }
spec:
  model: sim
  targets: [{ provider: simulate, model: sim }]
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: team, namespace: team }
spec: { limits: { requestsPerMinute: 600 } }
`);
    cleanup.push(() => sc.stop());
    const res = await postChat(sc, ask);
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('ratelimit_unavailable');
    expect(body.error.message).toContain('RateLimit team/team');
  }, 30_000);
});
