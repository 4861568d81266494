// Journey 7: the sidecar container's memory working set as Kubernetes reports it (kubelet's
// /stats/summary through the API server) and as computed from its cgroup (usage minus
// inactive_file, what the kubelet/cAdvisor call the working set), idle and after a load of a few
// hundred requests. Printed and written to results/memory-<run>.json; no thresholds asserted.
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { apply, call, callUntilOk, containerId, containerPid, deleteNamespaces, deployApp, deployProvider, k, kjson, namespace, node, record, route, sleep, until } from './lib.js';

let ns: string | undefined;
let upNs: string | undefined;
afterAll(() => deleteNamespaces(ns, upNs));

const MiB = (n: number) => Math.round((n / 1048576) * 10) / 10;

/** The container's memory cgroup directory (cgroup v1 memory hierarchy, or v2), under the kubelet's cgroup root. */
function cgroupDir(id: string): string {
  const roots = ['/sys/fs/cgroup/memory/paygo-node', '/sys/fs/cgroup/paygo-node'].filter(existsSync);
  const walk = (d: string, depth: number): string | undefined => {
    if (depth > 6) return undefined;
    for (const e of readdirSync(d)) {
      const p = join(d, e);
      if (!statSync(p).isDirectory()) continue;
      if (e.includes(id)) return p;
      const found = walk(p, depth + 1);
      if (found) return found;
    }
    return undefined;
  };
  for (const r of roots) {
    const d = walk(r, 0);
    if (d) return d;
  }
  throw new Error(`no cgroup for container ${id}`);
}

function cgroupWorkingSet(dir: string): { usage: number; inactiveFile: number; workingSet: number } {
  const stat = Object.fromEntries(readFileSync(join(dir, 'memory.stat'), 'utf8').trim().split('\n').map((l) => l.split(' ')).map(([a, b]) => [a, Number(b)]));
  const v1 = existsSync(join(dir, 'memory.usage_in_bytes'));
  const usage = Number(readFileSync(join(dir, v1 ? 'memory.usage_in_bytes' : 'memory.current'), 'utf8'));
  const inactiveFile = (v1 ? stat.total_inactive_file : stat.inactive_file) ?? 0;
  return { usage, inactiveFile, workingSet: Math.max(0, usage - inactiveFile) };
}

async function kubeletStats(ns: string, pod: string): Promise<{ time: string; workingSetBytes: number; rssBytes: number; usageBytes: number }> {
  const summary = JSON.parse(await k(['get', '--raw', `/api/v1/nodes/${node().nodeName}/proxy/stats/summary`]));
  const p = summary.pods.find((x: any) => x.podRef.namespace === ns && x.podRef.name === pod);
  const c = p?.containers?.find((x: any) => x.name === 'paygo-sidecar');
  if (!c?.memory) throw new Error(`no stats for ${ns}/${pod} paygo-sidecar`);
  return c.memory;
}

function vmRss(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

describe('journey 7: sidecar memory', () => {
  it('working set idle and after a few hundred requests (kubelet stats and cgroup)', async () => {
    upNs = await namespace('up7', { inject: false });
    ns = await namespace('mem');
    const provider = await deployProvider(upNs);
    await apply(ns, route('chat', provider, ['a']));
    const [pod] = await deployApp(ns, 'app', 1);
    await callUntilOk(pod!, 'chat');
    const podJson = await kjson(['get', 'pod', pod!.name, '-n', ns]);
    const id = containerId(podJson, 'paygo-sidecar');
    const pid = await containerPid(id);
    const dir = cgroupDir(id);
    const limit = podJson.spec.initContainers.find((c: any) => c.name === 'paygo-sidecar').resources?.limits?.memory;

    const measure = async (after: number) => {
      const kubelet = (await until('kubelet stats newer than the last event', () => kubeletStats(ns!, pod!.name), (m) => Date.parse(m.time) > after, 90_000, 1000)).value;
      return { kubelet, cgroup: cgroupWorkingSet(dir), vmRss: vmRss(pid) };
    };

    await sleep(20_000); // settle after start-up and the first request
    const idle = await measure(Date.now());

    const N = 400;
    const C = 16;
    let next = 0;
    const statuses: Record<number, number> = {};
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: C }, async () => {
        while (next < N) {
          next++;
          const r = await call(pod!, 'chat', 1 + (next % 8));
          statuses[r.status] = (statuses[r.status] ?? 0) + 1;
        }
      }),
    );
    const loadMs = Date.now() - t0;
    expect(statuses[200]).toBe(N);
    const afterCgroup = cgroupWorkingSet(dir);
    const afterRss = vmRss(pid);
    const after = await measure(Date.now());

    const result = {
      pod: `${ns}/${pod!.name}`,
      sidecarMemoryLimit: limit,
      load: { requests: N, concurrency: C, ms: loadMs, statuses },
      idle: { kubeletWorkingSetMiB: MiB(idle.kubelet.workingSetBytes), cgroupWorkingSetMiB: MiB(idle.cgroup.workingSet), vmRssMiB: MiB(idle.vmRss), kubeletRssMiB: MiB(idle.kubelet.rssBytes) },
      afterLoad: {
        cgroupWorkingSetMiBRightAfter: MiB(afterCgroup.workingSet),
        vmRssMiBRightAfter: MiB(afterRss),
        kubeletWorkingSetMiB: MiB(after.kubelet.workingSetBytes),
        cgroupWorkingSetMiB: MiB(after.cgroup.workingSet),
        vmRssMiB: MiB(after.vmRss),
        kubeletRssMiB: MiB(after.kubelet.rssBytes),
      },
      raw: { idle, after },
    };
    record('7-memory', result);
    writeFileSync(join(import.meta.dirname, 'results', `memory-${node().resultsFile.replace(/^.*run-|\.jsonl$/g, '')}.json`), JSON.stringify(result, null, 2) + '\n');
    expect(idle.kubelet.workingSetBytes).toBeGreaterThan(0);
  });
});
