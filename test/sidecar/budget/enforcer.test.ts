import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BudgetSpecSchema, type SnapshotBudget } from '../../../crds/src/index.js';
import { BudgetDrainingError, BudgetEnforcer, BudgetExceededError, BudgetUnavailableError, type BudgetEvents } from '../../../sidecar/budget/enforcer.js';
import type { Reservation } from '../../../sidecar/budget/funds.js';
import type { BudgetFunds } from '../../../sidecar/budget/funds.js';
import { LocalFunds } from '../../../sidecar/budget/local-funds.js';

const logger = pino({ level: 'silent' });
const budget = (name: string, spec: Record<string, unknown>): SnapshotBudget => ({ name, namespace: 'ns', spec: BudgetSpecSchema.parse(spec) });

function setup(budgets: SnapshotBudget[], start = '2026-11-26T12:00:00Z') {
  let t = Date.parse(start);
  const funds = new LocalFunds(join(mkdtempSync(join(tmpdir(), 'paygo-funds-')), 'budgets.json'), logger, 1);
  const enforcer = new BudgetEnforcer(funds, { now: () => new Date(t), logger });
  enforcer.setBudgets(budgets);
  return { enforcer, funds, advance: (ms: number) => (t += ms) };
}

describe('BudgetEnforcer', () => {
  it('reserves the worst case and gives back what the request did not spend', async () => {
    const { enforcer, funds } = setup([budget('b', { period: 'daily', limit: '0.000001000' })]);
    const covering = enforcer.covering('ns', 'r', 'm');
    const h1 = await enforcer.admit(covering, 600n);
    await expect(enforcer.admit(covering, 600n)).rejects.toBeInstanceOf(BudgetExceededError);
    enforcer.settle(h1, 100n);
    const key = enforcer.key(covering[0]!).key;
    expect(funds.view(key)).toEqual({ spent: 100n, reserved: 0n });
    const h2 = await enforcer.admit(covering, 600n);
    enforcer.settle(h2, 600n);
    enforcer.settle(h2, 600n); // settling twice changes nothing
    expect(funds.view(key)).toEqual({ spent: 700n, reserved: 0n });
  });

  it('is all-or-nothing across budgets', async () => {
    const { enforcer, funds } = setup([budget('big', { period: 'daily', limit: '1.00' }), budget('small', { period: 'daily', limit: '0.000000500' })]);
    const covering = enforcer.covering('ns', 'r', 'm');
    const err = await enforcer.admit(covering, 600n).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetExceededError);
    expect((err as BudgetExceededError).budget.name).toBe('small');
    expect(funds.view(enforcer.key(covering[0]!).key)).toEqual({ spent: 0n, reserved: 0n });
  });

  it('Retry-After points at the next period start', async () => {
    const { enforcer } = setup([budget('b', { period: 'daily', limit: '0.000000001' })], '2026-11-26T23:00:00Z');
    const err = (await enforcer.admit(enforcer.covering('ns', 'r', 'm'), 5n).catch((e: unknown) => e)) as BudgetExceededError;
    expect(err.retryAfterSeconds).toBe(3600);
    expect(err.periodEnd.toISOString()).toBe('2026-11-27T00:00:00.000Z');
  });

  it('a period rollover resets spend (injected clock)', async () => {
    const { enforcer } = setup([budget('b', { period: 'daily', limit: '0.000001000' })], '2026-11-26T23:59:00Z');
    const covering = enforcer.covering('ns', 'r', 'm');
    enforcer.settle(await enforcer.admit(covering, 1000n), 1000n);
    await expect(enforcer.admit(covering, 1n)).rejects.toBeInstanceOf(BudgetExceededError);
    (enforcer as unknown as { o: { now: () => Date } }).o.now = () => new Date('2026-11-27T00:00:01Z');
    await expect(enforcer.admit(covering, 1000n)).resolves.toBeDefined();
  });

  it('scopes budgets by namespace, route and model', () => {
    const { enforcer } = setup([
      budget('all', { period: 'daily', limit: '1' }),
      budget('route', { period: 'daily', limit: '1', scope: { routes: ['r1'] } }),
      budget('model', { period: 'daily', limit: '1', scope: { models: ['gpt'] } }),
    ]);
    expect(enforcer.covering('ns', 'r1', 'x').map((b) => b.name)).toEqual(['all', 'route']);
    expect(enforcer.covering('ns', 'r2', 'gpt').map((b) => b.name)).toEqual(['all', 'model']);
    expect(enforcer.covering('other', 'r1', 'gpt')).toEqual([]);
  });

  it('alert budgets never refuse and report going over', async () => {
    const over: string[] = [];
    const { enforcer } = setup([budget('watch', { period: 'daily', limit: '0.000000010', action: 'alert' })]);
    (enforcer as unknown as { o: { events: unknown } }).o.events = { onOverLimit: (b: SnapshotBudget) => over.push(b.name) };
    const covering = enforcer.covering('ns', 'r', 'm');
    for (let i = 0; i < 3; i++) enforcer.settle(await enforcer.admit(covering, 1_000_000n), 8n);
    expect(over).toEqual(['watch', 'watch']);
  });

  it('counts unsettled holds and tells a drain when the last one settled (refused requests hold nothing)', async () => {
    const { enforcer } = setup([budget('b', { period: 'daily', limit: '0.000001000' })]);
    const covering = enforcer.covering('ns', 'r', 'm');
    await expect(enforcer.settled()).resolves.toBeUndefined();
    const h1 = await enforcer.admit(covering, 400n);
    const h2 = await enforcer.admit(covering, 400n);
    await expect(enforcer.admit(covering, 400n)).rejects.toBeInstanceOf(BudgetExceededError);
    expect(enforcer.unsettled).toBe(2);
    let done = false;
    const drained = enforcer.settled().then(() => (done = true));
    enforcer.settle(h1, 10n);
    enforcer.settle(h1, 10n); // twice: still one to go
    await new Promise((r) => setImmediate(r));
    expect(done).toBe(false);
    enforcer.settle(h2, 10n);
    await drained;
    expect(enforcer.unsettled).toBe(0);
  });

  it('a draining refusal is its own error, naming the budget, and releases what other budgets reserved', async () => {
    const settled: Array<[string, bigint, bigint]> = [];
    const funds: BudgetFunds = {
      reserve: async (key) => (key.startsWith('ns/second') ? 'draining' : 'reserved'),
      settle: (key, reserved, actual) => void settled.push([key, reserved, actual]),
      record: () => {},
      view: () => ({ spent: 0n, reserved: 0n }),
      close: async () => {},
    };
    const enforcer = new BudgetEnforcer(funds, { now: () => new Date('2026-11-26T12:00:00Z'), logger });
    enforcer.setBudgets([budget('first', { period: 'daily', limit: '1' }), budget('second', { period: 'daily', limit: '1' })]);
    const err = await enforcer.admit(enforcer.covering('ns', 'r', 'm'), 7n).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetDrainingError);
    expect((err as BudgetDrainingError).budget.name).toBe('second');
    expect(settled).toEqual([['ns/first@2026-11-26T00:00:00.000Z', 7n, 0n]]);
    expect(enforcer.unsettled).toBe(0);
  });
});

/** A BudgetFunds whose answer to each reservation is scripted per budget name; records settles. */
function scripted(outcome: (key: string) => Reservation) {
  const settled: Array<[string, bigint, bigint]> = [];
  const funds: BudgetFunds = {
    reserve: async (key) => outcome(key),
    settle: (key, reserved, actual) => void settled.push([key, reserved, actual]),
    record: () => {},
    view: () => ({ spent: 0n, reserved: 0n }),
    close: async () => {},
  };
  return { funds, settled };
}

describe('BudgetEnforcer refusals and events', () => {
  const now = () => new Date('2026-11-26T12:00:00Z');

  it('errors name the budget and say why', () => {
    const b = budget('b', { period: 'weekly', limit: '1' });
    const exceeded = new BudgetExceededError(b, 5, new Date('2026-11-30T00:00:00Z'));
    expect(exceeded.name).toBe('BudgetExceededError');
    expect(exceeded.message).toBe('budget ns/b is exhausted for this weekly period');
    const unavailable = new BudgetUnavailableError(b);
    expect(unavailable.name).toBe('BudgetUnavailableError');
    expect(unavailable.message).toBe('budget ns/b: the operator that keeps its ledger could not be reached');
    const draining = new BudgetDrainingError(b);
    expect(draining.name).toBe('BudgetDrainingError');
    expect(draining.message).toBe('budget ns/b: the sidecar is shutting down');
  });

  it('has no budgets until it is given some', () => {
    const { funds } = scripted(() => 'reserved');
    const enforcer = new BudgetEnforcer(funds, { now, logger });
    expect(enforcer.all()).toEqual([]);
    expect(enforcer.covering('ns', 'r', 'm')).toEqual([]);
    const bs = [budget('b', { period: 'daily', limit: '1' })];
    enforcer.setBudgets(bs);
    expect(enforcer.all()).toBe(bs);
  });

  it('the output cap is the tightest one the budgets set, none when none sets one', () => {
    const { funds } = scripted(() => 'reserved');
    const enforcer = new BudgetEnforcer(funds, { now, logger });
    const capped = (name: string, cap?: number) => budget(name, { period: 'daily', limit: '1', ...(cap ? { maxOutputTokensPerRequest: cap } : {}) });
    expect(enforcer.outputCap([capped('a', 300), capped('b'), capped('c', 100), capped('d', 200)])).toBe(100);
    expect(enforcer.outputCap([capped('b')])).toBeUndefined();
    expect(enforcer.outputCap([])).toBeUndefined();
  });

  it('an unreachable ledger is refused as unavailable (not exhausted), releases what other budgets reserved and reports no refusal', async () => {
    const { funds, settled } = scripted((key) => (key.startsWith('ns/second') ? 'unavailable' : 'reserved'));
    const refused: string[] = [];
    const enforcer = new BudgetEnforcer(funds, { now, logger, events: { onRefused: (b, action) => void refused.push(`${b.name}:${action}`) } });
    enforcer.setBudgets([budget('first', { period: 'daily', limit: '1' }), budget('second', { period: 'daily', limit: '1' })]);
    const err = await enforcer.admit(enforcer.covering('ns', 'r', 'm'), 9n).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BudgetUnavailableError);
    expect((err as BudgetUnavailableError).budget.name).toBe('second');
    expect(settled).toEqual([['ns/first@2026-11-26T00:00:00.000Z', 9n, 0n]]);
    expect(refused).toEqual([]);
    expect(enforcer.unsettled).toBe(0);
  });

  it('an exhausted budget reports its refusal with its action: block, or downgrade', async () => {
    const { funds } = scripted(() => 'exhausted');
    const refused: string[] = [];
    const enforcer = new BudgetEnforcer(funds, { now, logger, events: { onRefused: (b, action) => void refused.push(`${b.name}:${action}`) } });
    const blocking = budget('blocking', { period: 'daily', limit: '1' });
    const downgrading = budget('downgrading', { period: 'daily', limit: '1', action: 'downgrade', downgradeTo: 'small' });
    await expect(enforcer.admit([blocking], 1n)).rejects.toBeInstanceOf(BudgetExceededError);
    await expect(enforcer.admit([downgrading], 1n)).rejects.toBeInstanceOf(BudgetExceededError);
    expect(refused).toEqual(['blocking:block', 'downgrading:downgrade']);
  });

  it('events are optional, each of them', async () => {
    for (const events of [undefined, {} as BudgetEvents]) {
      const { funds } = scripted(() => 'exhausted');
      const enforcer = new BudgetEnforcer(funds, { now, logger, events });
      await expect(enforcer.admit([budget('b', { period: 'daily', limit: '1' })], 1n)).rejects.toBeInstanceOf(BudgetExceededError);
      const alerting = new BudgetEnforcer(
        { ...funds, view: () => ({ spent: 5_000_000_000n, reserved: 0n }) },
        { now, logger, events },
      );
      const hold = await alerting.admit([budget('watch', { period: 'daily', limit: '1', action: 'alert' })], 1n);
      expect(() => alerting.settle(hold, 1n)).not.toThrow();
    }
  });

  it('an alert budget is over its limit only once spend exceeds it, not when it reaches it', async () => {
    const over: string[] = [];
    const { enforcer, funds } = setup([budget('watch', { period: 'daily', limit: '0.000000010', action: 'alert' })]);
    (enforcer as unknown as { o: { events: BudgetEvents } }).o.events = { onOverLimit: (b) => void over.push(b.name) };
    const covering = enforcer.covering('ns', 'r', 'm');
    enforcer.settle(await enforcer.admit(covering, 1n), 10n);
    expect(funds.view(enforcer.key(covering[0]!).key)).toEqual({ spent: 10n, reserved: 0n });
    expect(over).toEqual([]);
    enforcer.settle(await enforcer.admit(covering, 1n), 1n);
    expect(over).toEqual(['watch']);
  });
});
