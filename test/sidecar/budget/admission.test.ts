import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { BudgetSpecSchema, type SnapshotBudget } from '../../../crds/src/index.js';
import { admitChat, DEFAULT_BUDGET_MAX_TOKENS, type BudgetGate } from '../../../sidecar/budget/admission.js';
import { BudgetEnforcer } from '../../../sidecar/budget/enforcer.js';
import type { BudgetFunds, Reservation } from '../../../sidecar/budget/funds.js';
import { LocalFunds } from '../../../sidecar/budget/local-funds.js';
import { ApiError } from '../../../sidecar/errors.js';
import { promptTokenUpperBound } from '../../../sidecar/metering/tokens.js';
import type { ChatRequest } from '../../../sidecar/openai-schema.js';
import type { RuntimeConfig, RuntimeRoute, RuntimeTarget } from '../../../sidecar/router/runtime.js';
import { testRoute, testTarget } from '../../support/runtime.js';

const logger = pino({ level: 'silent' });
const NOW = new Date('2026-11-26T12:00:00Z');
const budget = (name: string, spec: Record<string, unknown>): SnapshotBudget => ({ name, namespace: 'default', spec: BudgetSpecSchema.parse(spec) });

/** Worst case priced as 1 nano-USD per input token + 10 per output token; targets named "free…" have no price. */
const worstCase: BudgetGate['worstCase'] = (t: RuntimeTarget, input: number, maxOut: number) =>
  t.name.startsWith('free') ? undefined : BigInt(input) * (t.name === 'dear' ? 3n : 1n) + BigInt(maxOut) * 10n;

function routeNamed(name: string, targets: RuntimeTarget[]): RuntimeRoute {
  return { ...testRoute(targets), id: `default/${name}`, name };
}

function setup(budgets: SnapshotBudget[], funds?: BudgetFunds) {
  const enforcer = new BudgetEnforcer(funds ?? new LocalFunds(join(mkdtempSync(join(tmpdir(), 'paygo-admission-')), 'budgets.json'), logger, 1), { now: () => NOW, logger });
  enforcer.setBudgets(budgets);
  const main = routeNamed('main', [testTarget('cheap'), testTarget('dear')]);
  const cheaper = routeNamed('cheaper', [testTarget('cheap')]);
  const config = { version: 'v', byModel: new Map([['main', main], ['cheaper', cheaper]]), snapshot: {} } as unknown as RuntimeConfig;
  return { gate: { enforcer, worstCase }, config, main, cheaper, enforcer };
}

const ask = (over: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'main', messages: [{ role: 'user', content: 'hello there' }], ...over }) as ChatRequest;

async function refusal(p: Promise<unknown>): Promise<ApiError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApiError);
  return err as ApiError;
}

describe('admitChat', () => {
  it('passes a request no budget covers through untouched', async () => {
    const { gate, config, main } = setup([budget('other', { period: 'daily', limit: '1', scope: { routes: ['elsewhere'] } })]);
    const req = ask();
    const out = await admitChat(gate, config, main, req);
    expect(out).toEqual({ route: main, req, hold: undefined, downgradedFrom: undefined });
    expect(req.max_tokens).toBeUndefined();
  });

  it('reserves the worst case at the dearest target, caps the output and forces priced targets only', async () => {
    const { gate, config, main, enforcer } = setup([budget('b', { period: 'daily', limit: '1', maxOutputTokensPerRequest: 50 })]);
    const req = ask({ max_tokens: 500 });
    const out = await admitChat(gate, config, main, req);
    expect(req.max_tokens).toBe(50);
    const input = promptTokenUpperBound(req);
    expect(out.hold?.reservations).toEqual([{ key: 'default/b@2026-11-26T00:00:00.000Z', reserved: BigInt(input) * 3n + 500n }]);
    expect(out.route).toEqual({ ...main, requirePricing: true });
    expect(out.route).not.toBe(main); // the compiled route itself is not changed
    expect(main.requirePricing).toBe(false);
    expect(enforcer.unsettled).toBe(1);
  });

  it('injects the default output cap when neither the request nor a budget sets one', async () => {
    const { gate, config, main } = setup([budget('b', { period: 'daily', limit: '1' })]);
    const req = ask();
    await admitChat(gate, config, main, req);
    expect(req.max_tokens).toBe(DEFAULT_BUDGET_MAX_TOKENS);
  });

  it('keeps a route that already requires pricing as it is', async () => {
    const { gate, config, main } = setup([budget('b', { period: 'daily', limit: '1' })]);
    const strict = { ...main, requirePricing: true };
    expect((await admitChat(gate, config, strict, ask())).route).toBe(strict);
  });

  it('prices only targets with a known price; with none, 503 budget_unpriced naming the budget', async () => {
    const { gate, config } = setup([budget('b', { period: 'daily', limit: '1' })]);
    const unpriced = routeNamed('main', [testTarget('free-a'), testTarget('free-b')]);
    const err = await refusal(admitChat(gate, config, unpriced, ask()));
    expect(err).toMatchObject({ status: 503, type: 'upstream_error', code: 'budget_unpriced' });
    expect(err.message).toBe('Route "main" is covered by budget b, but none of its targets has a known price, so its cost cannot be bounded; add spec.targets[].pricing.');
    const mixed = routeNamed('main', [testTarget('free-a'), testTarget('cheap')]);
    const out = await admitChat(gate, config, mixed, ask({ max_tokens: 1 }));
    expect(out.hold?.reservations[0]?.reserved).toBe(BigInt(promptTokenUpperBound(ask())) + 10n);
  });

  it('a block budget that cannot take the request: 429 budget_exceeded, Retry-After the next period', async () => {
    const { gate, config, main } = setup([budget('tiny', { period: 'daily', limit: '0.000000001' })]);
    const err = await refusal(admitChat(gate, config, main, ask()));
    expect(err).toMatchObject({ status: 429, type: 'insufficient_quota', code: 'budget_exceeded', headers: { 'retry-after': String(12 * 3600) } });
    expect(err.message).toBe('Budget default/tiny (0.000000001 USD daily) is exhausted; it resets at 2026-11-27T00:00:00.000Z.');
  });

  it('a downgrade budget moves the request once to its cheaper route, under that route\'s budgets', async () => {
    const { gate, config, main, cheaper } = setup([budget('premium', { period: 'daily', limit: '0.000000001', action: 'downgrade', downgradeTo: 'cheaper', scope: { routes: ['main'] } })]);
    const out = await admitChat(gate, config, main, ask());
    expect(out.route).toBe(cheaper); // no budget covers it there
    expect(out.req.model).toBe('cheaper');
    expect(out.downgradedFrom).toBe('main');
    expect(out.hold).toBeUndefined();
  });

  it('a downgrade whose cheaper route is also refused, or missing, or the same route, answers 429', async () => {
    const both = setup([budget('all', { period: 'daily', limit: '0.000000001', action: 'downgrade', downgradeTo: 'cheaper' })]);
    expect((await refusal(admitChat(both.gate, both.config, both.main, ask()))).code).toBe('budget_exceeded');
    const missing = setup([budget('p', { period: 'daily', limit: '0.000000001', action: 'downgrade', downgradeTo: 'nowhere' })]);
    expect((await refusal(admitChat(missing.gate, missing.config, missing.main, ask()))).code).toBe('budget_exceeded');
    const self = setup([budget('p', { period: 'daily', limit: '0.000000001', action: 'downgrade', downgradeTo: 'main' })]);
    expect((await refusal(admitChat(self.gate, self.config, self.main, ask()))).code).toBe('budget_exceeded');
  });

  it.each([
    ['unavailable', 503, 'budget_unavailable', '5', /could not be reached; the request was not sent/],
    ['draining', 503, 'shutting_down', '1', /shutting down and holds too little of budget default\/b/],
  ] as const)('funds that answer %s: %i %s with Retry-After %s', async (outcome, status, code, retryAfter, message) => {
    const funds: BudgetFunds = {
      reserve: async (): Promise<Reservation> => outcome,
      settle: () => {},
      record: () => {},
      view: () => ({ spent: 0n, reserved: 0n }),
      close: async () => {},
    };
    const { gate, config, main } = setup([budget('b', { period: 'daily', limit: '1' })], funds);
    const err = await refusal(admitChat(gate, config, main, ask()));
    expect(err).toMatchObject({ status, type: outcome === 'draining' ? 'server_error' : 'upstream_error', code, headers: { 'retry-after': retryAfter } });
    expect(err.message).toMatch(message);
  });
});
