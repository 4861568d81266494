import type { TargetReport } from '../crds/src/index.js';

/** What one target served: counts and integer nano-USD. */
export interface TargetCounts {
  requests: number;
  successes: number;
  errors: number;
  costNano: bigint;
}

interface RouteTotals {
  /** Latest cumulative report of each sidecar process ("podUid/boot"), by target. */
  processes: Map<string, Map<string, TargetCounts>>;
  /** What processes dropped from memory had reported, so totals never go down. */
  retired: Map<string, TargetCounts>;
}

const zero = (): TargetCounts => ({ requests: 0, successes: 0, errors: 0, costNano: 0n });

function add(into: TargetCounts, c: TargetCounts): void {
  into.requests += c.requests;
  into.successes += c.successes;
  into.errors += c.errors;
  into.costNano += c.costNano;
}

/**
 * Fleet-wide per-target totals of each ModelRoute, from the sidecars' cumulative reports: the
 * sum over sidecar processes of the latest report of each. Kept in the leader's memory (a new
 * leader starts from what the sidecars report to it), bounded per route: the process that has
 * not reported for longest is folded into `retired` rather than forgotten (were it still alive
 * and to report again, its earlier part would count twice: hence a bound far above a route's
 * sidecar count).
 */
export class TargetTotals {
  private readonly routes = new Map<string, RouteTotals>();

  constructor(private readonly maxProcessesPerRoute = 1000) {}

  /** Applies a report of one sidecar process; returns the routes ("namespace/name") whose totals changed. */
  report(namespace: string, podUid: string, r: TargetReport): string[] {
    const byRoute = new Map<string, Map<string, TargetCounts>>();
    for (const t of r.targets) {
      const key = `${namespace}/${t.route}`;
      let targets = byRoute.get(key);
      if (!targets) byRoute.set(key, (targets = new Map()));
      targets.set(t.target, { requests: t.requests, successes: t.successes, errors: t.errors, costNano: BigInt(t.cost) });
    }
    const changed: string[] = [];
    const process = `${podUid}/${r.boot}`;
    for (const [key, targets] of byRoute) {
      let rt = this.routes.get(key);
      if (!rt) this.routes.set(key, (rt = { processes: new Map(), retired: new Map() }));
      const before = rt.processes.get(process);
      const same = before !== undefined && sameCounts(before, targets);
      // Re-inserted last, changed or not: Map order is least recently reported first (a live
      // process whose part of the report is unchanged must not be folded before silent ones).
      rt.processes.delete(process);
      rt.processes.set(process, targets);
      if (same) continue;
      changed.push(key);
      for (const [p, old] of rt.processes) {
        if (rt.processes.size <= this.maxProcessesPerRoute) break;
        for (const [name, c] of old) {
          let into = rt.retired.get(name);
          if (!into) rt.retired.set(name, (into = zero()));
          add(into, c);
        }
        rt.processes.delete(p);
      }
    }
    return changed;
  }

  /** Totals of one route's target, zero when nothing was reported. */
  totals(namespace: string, route: string, target: string): TargetCounts {
    const sum = zero();
    const rt = this.routes.get(`${namespace}/${route}`);
    if (!rt) return sum;
    const retired = rt.retired.get(target);
    if (retired) add(sum, retired);
    for (const targets of rt.processes.values()) {
      const c = targets.get(target);
      if (c) add(sum, c);
    }
    return sum;
  }
}

function sameCounts(a: Map<string, TargetCounts>, b: Map<string, TargetCounts>): boolean {
  if (a.size !== b.size) return false;
  for (const [name, x] of a) {
    const y = b.get(name);
    if (!y || x.requests !== y.requests || x.successes !== y.successes || x.errors !== y.errors || x.costNano !== y.costNano) return false;
  }
  return true;
}
