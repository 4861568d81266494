// Journey 6: faults. The operator's pods deleted (sidecars keep serving their last config, the new
// operator resyncs them); the sidecar process SIGKILLed through containerd (kubelet restarts it,
// the app's next request succeeds); a pod of another namespace never receives this namespace's
// routes or Secret values.
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { apply, call, callUntilOk, containerId, containerPid, ctr, deleteNamespaces, deployApp, deployProvider, k, kjson, namespace, providerCount, readyPods, record, route, routeSynced, until } from './lib.js';

const made: string[] = [];
afterAll(() => deleteNamespaces(...made));
const SYS = 'paygo-system';

async function setup(prefix: string, replicas: number, routes: (provider: string) => string) {
  const upNs = await namespace(`up-${prefix}`, { inject: false });
  const ns = await namespace(prefix);
  made.push(upNs, ns);
  const provider = await deployProvider(upNs);
  await apply(ns, routes(provider));
  const pods = await deployApp(ns, 'app', replicas);
  return { ns, upNs, provider, pods };
}

describe('journey 6: faults', () => {
  it('operator pods deleted: the sidecars keep serving their last config; the new operator resyncs them', async () => {
    const { ns, provider, pods } = await setup('opdel', 2, (p) => route('chat', p, ['a']));
    for (const p of pods) await callUntilOk(p, 'chat');
    await routeSynced(ns, 'chat', 2);

    const dep = await kjson(['get', 'deployment', 'paygo-operator', '-n', SYS]);
    const sel = Object.entries(dep.spec.selector.matchLabels as Record<string, string>).map(([a, b]) => `${a}=${b}`).join(',');
    const old = (await kjson(['get', 'pods', '-n', SYS, '-l', sel])).items.map((p: any) => p.metadata.name as string);
    const t0 = Date.now();
    await k(['delete', 'pods', '-n', SYS, '-l', sel, '--wait=false']);

    // While no operator is ready: every request is still served by the last config.
    let served = 0;
    let operatorBackMs: number | undefined;
    while (operatorBackMs === undefined) {
      for (const p of pods) {
        const r = await call(p, 'chat');
        expect(r.status, JSON.stringify(r)).toBe(200);
        expect(r.headers?.['x-paygo-target']).toBe('a');
        served++;
      }
      const fresh = (await readyPods(SYS, sel)).filter((p) => !old.includes(p.name));
      if (fresh.length === dep.spec.replicas) operatorBackMs = Date.now() - t0;
      if (Date.now() - t0 > 240_000) throw new Error('the operator did not come back within 240 s');
    }
    record('6-faults/operator', { deleted: old, servedWhileAway: served, newOperatorReadyMs: operatorBackMs });

    // The new operator resyncs them: an edit reaches both, and requests go to the new target.
    const t1 = Date.now();
    await apply(ns, route('chat', provider, ['b']));
    const synced = await routeSynced(ns, 'chat', 2, 180_000);
    for (const p of pods) expect((await call(p, 'chat')).headers?.['x-paygo-target']).toBe('b');
    record('6-faults/operator', { editAfterRestartAckedMs: Date.now() - t1, status: synced.value.status.sidecars });
  });

  it('sidecar process killed: kubelet restarts it and the app\'s next request succeeds', async () => {
    const { ns, pods } = await setup('kill', 1, (p) => route('chat', p, ['a']));
    const pod = pods[0]!;
    await callUntilOk(pod, 'chat');
    const id = containerId(pod.json, 'paygo-sidecar');
    const t0 = Date.now();
    await ctr(['tasks', 'kill', '--signal', 'SIGKILL', id]);
    const restarted = await until(
      'the sidecar restarted by kubelet and ready',
      () => kjson(['get', 'pod', pod.name, '-n', ns]),
      (p: any) => {
        const s = p.status.initContainerStatuses?.find((c: any) => c.name === 'paygo-sidecar');
        return s?.restartCount >= 1 && s.ready === true && !!s.state.running;
      },
      180_000,
      250,
    );
    const r = await call(pod, 'chat');
    expect(r.status, JSON.stringify(r)).toBe(200);
    const s = restarted.value.status.initContainerStatuses.find((c: any) => c.name === 'paygo-sidecar');
    const app = restarted.value.status.containerStatuses.find((c: any) => c.name === 'app');
    expect(s.lastState.terminated.exitCode).toBe(137);
    expect(app.restartCount).toBe(0); // the app container kept running
    record('6-faults/sidecar-kill', { killToReadyMs: restarted.ms, killToFirstOkMs: Date.now() - t0, restartCount: s.restartCount, lastState: s.lastState.terminated.reason });
  });

  it('another namespace never receives this namespace\'s routes or keys', async () => {
    const key = `sk-e2en-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
    const a = await setup('keys-a', 1, (p) => `
apiVersion: v1
kind: Secret
metadata: { name: provider-key }
stringData: { api-key: ${key} }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: secret-route }
spec:
  model: secret-model
  targets: [{ name: a, provider: openai-compatible, model: m, baseURL: "${p}/a/v1", credentials: { secretRef: { name: provider-key, key: api-key } }, pricing: { input: "1.00", output: "2.00" } }]
`);
    const b = await setup('keys-b', 1, (p) => route('chat', p, ['b']));
    // A's sidecar has the key (it reaches the provider with it) — the positive control.
    expect((await callUntilOk(a.pods[0]!, 'secret-model')).status).toBe(200);
    expect((await providerCount(a.upNs)).authorization[`Bearer ${key}`]).toBe(1);
    await callUntilOk(b.pods[0]!, 'chat');

    // B: A's model is unknown, its list of models has only B's.
    const other = await call(b.pods[0]!, 'secret-model');
    expect(other.status).not.toBe(200);
    const models = JSON.parse(await (await fetch(`http://${b.pods[0]!.ip}:8080/models`)).text());
    const ids = models.body.data.map((m: any) => m.id);
    expect(ids).toContain('chat');
    expect(ids).not.toContain('secret-model');

    // What each sidecar holds on disk (its last snapshot) and in its environment, read from the host.
    const held = async (pod: any) => {
      const pid = await containerPid(containerId(pod, 'paygo-sidecar'));
      return { snapshot: readFileSync(`/proc/${pid}/root/var/lib/paygo/snapshot.json`, 'utf8'), environ: readFileSync(`/proc/${pid}/environ`, 'utf8') };
    };
    const heldA = await held((await kjson(['get', 'pod', a.pods[0]!.name, '-n', a.ns])));
    const heldB = await held((await kjson(['get', 'pod', b.pods[0]!.name, '-n', b.ns])));
    expect(heldA.snapshot).toContain(key); // positive control: the key is where a route's key would be
    expect(heldA.snapshot).toContain('secret-route');
    expect(heldB.snapshot).toContain('"chat"');
    for (const text of [heldB.snapshot, heldB.environ]) {
      expect(text).not.toContain(key);
      expect(text).not.toContain('secret-route');
      expect(text).not.toContain(a.ns);
    }
    record('6-faults/isolation', { snapshotBytesA: heldA.snapshot.length, snapshotBytesB: heldB.snapshot.length, otherNamespaceStatus: other.status });
  });
});
