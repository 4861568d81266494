import type { SidecarMetrics } from '../metering/metrics.js';
import type { BudgetEnforcer } from './enforcer.js';
import type { BudgetFunds } from './funds.js';

/** Budget gauges are computed at scrape time from the funds' view of the current periods. */
export function collectBudgetGauges(metrics: SidecarMetrics, enforcer: BudgetEnforcer, funds: BudgetFunds): void {
  const gauges = [metrics.budgetLimit, metrics.budgetSpent, metrics.budgetReserved, metrics.budgetRemaining];
  (metrics.budgetLimit as unknown as { collect?: () => void }).collect = () => {
    for (const g of gauges) g.reset();
    for (const b of enforcer.all()) {
      const labels = { namespace: b.namespace, budget: b.name, period: b.spec.period };
      const limit = enforcer.limitNano(b);
      const { spent, reserved } = funds.view(enforcer.key(b).key);
      metrics.budgetLimit.set(labels, Number(limit) / 1e9);
      metrics.budgetSpent.set(labels, Number(spent) / 1e9);
      metrics.budgetReserved.set(labels, Number(reserved) / 1e9);
      metrics.budgetRemaining.set(labels, limit > 0n ? Math.max(0, Number(limit - spent - reserved) / Number(limit)) : 0);
    }
  };
}
