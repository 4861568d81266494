// Journey 3: a ModelRoute edit reaches both running sidecars (route status) and the very next
// request goes to the new target. Reports the time from apply to every ACK.
import { afterAll, describe, expect, it } from 'vitest';
import { apply, call, callUntilOk, deleteNamespaces, deployApp, deployProvider, kjson, namespace, providerCount, record, route, routeSynced, sleep } from './lib.js';

let ns: string | undefined;
let upNs: string | undefined;
afterAll(() => deleteNamespaces(ns, upNs));

describe('journey 3: a ModelRoute edit', () => {
  it('reaches both sidecars; the next request goes to the new target', async () => {
    upNs = await namespace('up3', { inject: false });
    ns = await namespace('edit');
    const provider = await deployProvider(upNs);
    await apply(ns, route('chat', provider, ['a']));
    const pods = await deployApp(ns, 'app', 2);
    for (const p of pods) expect((await callUntilOk(p, 'chat')).headers?.['x-paygo-target']).toBe('a');
    const before = await routeSynced(ns, 'chat', 2);
    const gen0 = before.value.metadata.generation as number;

    // Edit: target a → b. Poll the status every 50 ms and note when each sidecar's ACK shows.
    const t0 = Date.now();
    await apply(ns, route('chat', provider, ['b']));
    const acks: Array<{ synced: number; ms: number }> = [];
    let generation = gen0;
    for (;;) {
      const r = await kjson(['get', 'modelroute', 'chat', '-n', ns]);
      generation = r.metadata.generation;
      const synced = r.status?.observedGeneration === generation && generation > gen0 ? (r.status?.sidecars?.synced ?? 0) : 0;
      if (synced > (acks.at(-1)?.synced ?? 0)) acks.push({ synced, ms: Date.now() - t0 });
      if (synced === 2 && r.status?.sidecars?.desired === 2) break;
      if (Date.now() - t0 > 120_000) throw new Error(`route edit not ACKed by both sidecars within 120 s: ${JSON.stringify(r.status)}`);
      await sleep(50);
    }
    record('3-route-edit', { generation, applyToAck: acks });

    // The next request of each pod goes to b — no retry, no waiting.
    for (const p of pods) {
      const r = await call(p, 'chat');
      expect(r.status, JSON.stringify(r)).toBe(200);
      expect(r.headers?.['x-paygo-target']).toBe('b');
      expect(r.body.choices[0].message.content).toMatch(/^answer from b /);
    }
    const count = await providerCount(upNs);
    expect(count.byPrefix.b).toBe(2);
    record('3-route-edit', { providerByPrefix: count.byPrefix });
  });
});
