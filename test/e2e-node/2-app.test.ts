// Journey 2: an app Deployment of 2 replicas in a namespace labelled for injection: native
// sidecars started before the app, completions from a fake provider pod behind a Service with
// the cost headers, and the ModelRoute's status (2/2 synced, per-target totals).
import { afterAll, describe, expect, it } from 'vitest';
import { apply, call, callUntilOk, deleteNamespaces, deployApp, deployProvider, kjson, namespace, providerCount, record, route, routeSynced, until } from './lib.js';

let ns: string | undefined;
let upNs: string | undefined;
afterAll(() => deleteNamespaces(ns, upNs));

describe('journey 2: an injected app Deployment', () => {
  it('native sidecars start first; the app gets completions with cost headers; the route reports 2/2 synced and per-target totals', async () => {
    const t0 = Date.now();
    upNs = await namespace('up2', { inject: false });
    ns = await namespace('app');
    const provider = await deployProvider(upNs);
    await apply(ns, route('chat', provider, ['a']));
    const tApp = Date.now();
    const pods = await deployApp(ns, 'app', 2);
    record('2-app', { phase: 'rollout', ms: Date.now() - tApp });

    for (const p of pods) {
      const init = p.json.spec.initContainers ?? [];
      expect(init[0]?.name, p.name).toBe('paygo-sidecar');
      expect(init[0]?.restartPolicy).toBe('Always');
      const sc = p.json.status.initContainerStatuses.find((c: any) => c.name === 'paygo-sidecar');
      const app = p.json.status.containerStatuses.find((c: any) => c.name === 'app');
      expect(sc.started && sc.ready, 'sidecar started and ready').toBe(true);
      const scAt = Date.parse(sc.state.running.startedAt);
      const appAt = Date.parse(app.state.running.startedAt);
      // Pod status times have 1 s resolution: the app never starts in an earlier second.
      expect(scAt).toBeLessThanOrEqual(appAt);
      record('2-app', { pod: p.name, sidecarStartedAt: sc.state.running.startedAt, appStartedAt: app.state.running.startedAt });
    }

    for (const p of pods) {
      const r = await callUntilOk(p, 'chat');
      expect(r.body.object).toBe('chat.completion');
      expect(r.body.choices[0].message.content).toMatch(/^answer from a /);
      expect(r.headers?.['x-paygo-target']).toBe('a');
      // 10 input tokens at $1.00/M + 5 output tokens at $2.00/M
      expect(r.headers?.['x-paygo-cost-usd']).toBe('0.000020000');
      record('2-app', { pod: p.name, status: r.status, headers: r.headers });
    }
    for (const p of pods) for (let i = 0; i < 3; i++) expect((await call(p, 'chat')).status).toBe(200);
    expect((await providerCount(upNs)).byPrefix.a).toBeGreaterThanOrEqual(8);

    const synced = await routeSynced(ns, 'chat', 2);
    expect(synced.value.status.sidecars).toMatchObject({ desired: 2, synced: 2 });
    const totals = await until(
      'per-target totals in the route status',
      () => kjson(['get', 'modelroute', 'chat', '-n', ns!]),
      (r: any) => r.status?.targets?.find((t: any) => t.name === 'a')?.requests >= 8,
      180_000,
      1000,
    );
    const a = totals.value.status.targets.find((t: any) => t.name === 'a');
    expect(a.errors ?? 0).toBe(0);
    record('2-app', { status: totals.value.status.sidecars, targets: totals.value.status.targets, totalsAfterMs: totals.ms, journeyMs: Date.now() - t0 });
  });
});
