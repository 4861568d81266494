import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BudgetSpecSchema, type SnapshotBudget } from '../../../crds/src/index.js';
import { BudgetEnforcer } from '../../../sidecar/budget/enforcer.js';
import { collectBudgetGauges } from '../../../sidecar/budget/gauges.js';
import { LocalFunds } from '../../../sidecar/budget/local-funds.js';
import { createMetrics } from '../../../sidecar/metering/metrics.js';

const logger = pino({ level: 'silent' });
const budget = (name: string, spec: Record<string, unknown>): SnapshotBudget => ({ name, namespace: 'ns', spec: BudgetSpecSchema.parse(spec) });

/** The budget series of one scrape, as `name{labels} value` lines. */
async function budgetLines(metrics: ReturnType<typeof createMetrics>): Promise<string[]> {
  return (await metrics.registry.metrics()).split('\n').filter((l) => l.startsWith('paygo_budget_') && !l.includes('_total'));
}

describe('budget gauges', () => {
  it('are computed at scrape time from the funds of the current period; a budget removed from the config disappears', async () => {
    const metrics = createMetrics();
    const funds = new LocalFunds(join(mkdtempSync(join(tmpdir(), 'paygo-gauges-')), 'budgets.json'), logger, 1);
    const enforcer = new BudgetEnforcer(funds, { now: () => new Date('2026-11-26T12:00:00Z'), logger });
    collectBudgetGauges(metrics, enforcer, funds);
    const cap = budget('cap', { period: 'daily', limit: '2.00' });
    const none = budget('none', { period: 'weekly', limit: '0' });
    enforcer.setBudgets([cap, none]);
    const hold = await enforcer.admit([cap], 500_000_000n); // $0.50 reserved
    funds.record(enforcer.key(cap).key, 250_000_000n); // $0.25 spent
    expect(await budgetLines(metrics)).toEqual([
      'paygo_budget_limit_usd{namespace="ns",budget="cap",period="daily"} 2',
      'paygo_budget_limit_usd{namespace="ns",budget="none",period="weekly"} 0',
      'paygo_budget_spent_usd{namespace="ns",budget="cap",period="daily"} 0.25',
      'paygo_budget_spent_usd{namespace="ns",budget="none",period="weekly"} 0',
      'paygo_budget_reserved_usd{namespace="ns",budget="cap",period="daily"} 0.5',
      'paygo_budget_reserved_usd{namespace="ns",budget="none",period="weekly"} 0',
      'paygo_budget_remaining_ratio{namespace="ns",budget="cap",period="daily"} 0.625',
      'paygo_budget_remaining_ratio{namespace="ns",budget="none",period="weekly"} 0',
    ]);
    enforcer.settle(hold, 3_000_000_000n); // over the limit: remaining stays at 0, never negative
    enforcer.setBudgets([cap]);
    expect(await budgetLines(metrics)).toEqual([
      'paygo_budget_limit_usd{namespace="ns",budget="cap",period="daily"} 2',
      'paygo_budget_spent_usd{namespace="ns",budget="cap",period="daily"} 3.25',
      'paygo_budget_reserved_usd{namespace="ns",budget="cap",period="daily"} 0',
      'paygo_budget_remaining_ratio{namespace="ns",budget="cap",period="daily"} 0',
    ]);
  });
});
