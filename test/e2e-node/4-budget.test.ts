// Journey 4: a Budget shared by the two pods of a Deployment: the spend stops at the limit,
// both pods answer 429 budget_exceeded after, and the Budget's status shows what was spent.
import { afterAll, describe, expect, it } from 'vitest';
import { apply, call, callUntilOk, deleteNamespaces, deployApp, deployProvider, kjson, namespace, nano, providerCount, record, route, until, usd, type CallResult } from './lib.js';

let ns: string | undefined;
let upNs: string | undefined;
afterAll(() => deleteNamespaces(ns, upNs));

const LIMIT = '0.000600000'; // 30 requests at $0.00002

describe('journey 4: a shared Budget', () => {
  it('stops the spend at the limit; 429 after; status.spent = the cost headers', async () => {
    upNs = await namespace('up4', { inject: false });
    ns = await namespace('budget');
    const provider = await deployProvider(upNs);
    await apply(
      ns,
      route('chat', provider, ['a']) +
        `---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: cap }
spec: { scope: { routes: [chat] }, period: monthly, limit: "${LIMIT}", action: block, maxOutputTokensPerRequest: 5 }
`,
    );
    const pods = await deployApp(ns, 'app', 2);
    for (const p of pods) await callUntilOk(p, 'chat', (r) => r.status === 200 || r.status === 429);

    // Both pods, alternately (plus the warm-up calls above), until each has been refused 3 times in a row.
    let spent = 0n;
    let ok = 0;
    const refusedInRow = pods.map(() => 0);
    const statuses: Record<string, number> = {};
    const firstRefusalAt: Array<number | undefined> = pods.map(() => undefined);
    const t0 = Date.now();
    let firstRefusal: CallResult | undefined;
    // The warm-up calls were answered too: count them from the provider below.
    for (let i = 0; refusedInRow.some((n) => n < 3); i++) {
      if (i > 400 || Date.now() - t0 > 180_000) throw new Error(`budget never refused both pods: ${JSON.stringify({ ok, statuses, spent: usd(spent) })}`);
      const j = i % pods.length;
      if (refusedInRow[j]! >= 3) continue;
      const r = await call(pods[j]!, 'chat', 5);
      statuses[r.status] = (statuses[r.status] ?? 0) + 1;
      if (r.status === 200) {
        ok++;
        spent += nano(r.headers!['x-paygo-cost-usd']!);
        refusedInRow[j] = 0;
      } else {
        expect(r.status, JSON.stringify(r)).toBe(429);
        expect(r.body?.error?.code).toBe('budget_exceeded');
        firstRefusal ??= r;
        firstRefusalAt[j] ??= ok;
        refusedInRow[j]!++;
      }
    }
    const served = await providerCount(upNs);
    const warmup = served.count - ok; // answered warm-up calls, at the same price each
    const total = spent + BigInt(warmup) * 20_000n;
    record('4-budget', { limit: LIMIT, okAfterWarmup: ok, warmupAnswered: warmup, statuses, spentByHeaders: usd(total), providerServed: served.count, firstRefusalAfterOk: firstRefusalAt, retryAfter: firstRefusal?.headers?.['retry-after'] });
    expect(warmup).toBeGreaterThanOrEqual(0);
    expect(warmup).toBeLessThanOrEqual(pods.length);
    // Never over the limit; and it did not stop early by more than one request per pod's cushion.
    expect(total).toBeLessThanOrEqual(nano(LIMIT));
    expect(total).toBeGreaterThanOrEqual(nano(LIMIT) / 2n);
    expect(firstRefusal?.headers?.['retry-after']).toMatch(/^\d+$/);

    // Still refused afterwards, on both pods.
    for (const p of pods) expect((await call(p, 'chat', 5)).status).toBe(429);

    const st = await until(
      'Budget status.spent = the cost headers',
      () => kjson(['get', 'budget', 'cap', '-n', ns!]),
      (b: any) => b.status?.spent !== undefined && nano(b.status.spent) === total,
      120_000,
      1000,
    );
    record('4-budget', { status: st.value.status, settledAfterMs: st.ms });
    // Refusing while status.state is still Warning is expected when what is left is less than
    // one request's worst case (the reservation), not 0: only a spend at the limit is Exceeded.
    expect(['Warning', 'Exceeded']).toContain(st.value.status.state);
    expect(nano(st.value.status.remaining)).toBeLessThan(nano(LIMIT) - total + 1n);
  });
});
