import { capOutputTokens } from '../chat.js';
import { ApiError } from '../errors.js';
import type { ChatRequest } from '../openai-schema.js';
import { promptTokenUpperBound } from '../metering/tokens.js';
import type { RuntimeConfig, RuntimeRoute, RuntimeTarget } from '../router/runtime.js';
import { BudgetDrainingError, BudgetExceededError, BudgetUnavailableError, type BudgetEnforcer, type BudgetHold } from './enforcer.js';

/** Retry-After of a request refused because the budget ledger could not be reached (seconds). */
const BUDGET_UNAVAILABLE_RETRY_S = 5;

/** Retry-After of a request refused by a sidecar that is shutting down (seconds). */
const SHUTTING_DOWN_RETRY_S = 1;

/** Output cap injected into budget-covered requests that name none (the worst case must be bounded). */
export const DEFAULT_BUDGET_MAX_TOKENS = 4096;

export interface BudgetGate {
  enforcer: BudgetEnforcer;
  /** Worst-case nano-USD of a call to this target; undefined when its price is unknown. */
  worstCase(target: RuntimeTarget, inputTokens: number, maxOutputTokens: number): bigint | undefined;
}

export interface Admitted {
  route: RuntimeRoute;
  /** The request to send (capped; with the cheaper model name after a downgrade). */
  req: ChatRequest;
  hold: BudgetHold | undefined;
  /** The model the app asked for, when a budget downgraded the request to another route. */
  downgradedFrom: string | undefined;
}

/**
 * Budget admission for one chat request: caps its output, prices its worst case at the most
 * expensive priced target it may reach, and reserves that in every covering budget. A block
 * budget that cannot take it → 429 with Retry-After (next period); a downgrade budget → the
 * request moves to the budget's cheaper route once; alert budgets never refuse.
 */
export async function admitChat(gate: BudgetGate, config: RuntimeConfig, route: RuntimeRoute, req: ChatRequest, downgradedFrom?: string): Promise<Admitted> {
  const budgets = gate.enforcer.covering(route.namespace, route.name, req.model);
  if (budgets.length === 0) return { route, req, hold: undefined, downgradedFrom };
  const cap = gate.enforcer.outputCap(budgets);
  const maxOutput = capOutputTokens(req, cap, cap ?? DEFAULT_BUDGET_MAX_TOKENS)!;
  const inputBound = promptTokenUpperBound(req);
  let worst: bigint | undefined;
  for (const t of route.targets) {
    const w = gate.worstCase(t, inputBound, maxOutput);
    if (w !== undefined && (worst === undefined || w > worst)) worst = w;
  }
  if (worst === undefined) {
    throw new ApiError(
      503,
      'upstream_error',
      'budget_unpriced',
      `Route "${route.name}" is covered by budget ${budgets[0]!.name}, but none of its targets has a known price, so its cost cannot be bounded; add spec.targets[].pricing.`,
    );
  }
  try {
    const hold = await gate.enforcer.admit(budgets, worst);
    // Unpriced targets could spend beyond the reservation: a covered request never uses them.
    return { route: route.requirePricing ? route : { ...route, requirePricing: true }, req, hold, downgradedFrom };
  } catch (err) {
    if (err instanceof BudgetUnavailableError) {
      const b = err.budget;
      throw new ApiError(
        503,
        'upstream_error',
        'budget_unavailable',
        `Budget ${b.namespace}/${b.name} is enforced across the fleet by the paygo operator, which could not be reached; the request was not sent. Retry shortly.`,
        null,
        { 'retry-after': String(BUDGET_UNAVAILABLE_RETRY_S) },
      );
    }
    if (err instanceof BudgetDrainingError) {
      throw new ApiError(
        503,
        'server_error',
        'shutting_down',
        `The paygo sidecar is shutting down and holds too little of budget ${err.budget.namespace}/${err.budget.name} for this request; the request was not sent. Retry shortly.`,
        null,
        { 'retry-after': String(SHUTTING_DOWN_RETRY_S) },
      );
    }
    if (!(err instanceof BudgetExceededError)) throw err;
    const b = err.budget;
    if (b.spec.action === 'downgrade' && b.spec.downgradeTo && downgradedFrom === undefined) {
      const cheaper = config.byModel.get(b.spec.downgradeTo);
      if (cheaper && cheaper !== route) return admitChat(gate, config, cheaper, { ...req, model: b.spec.downgradeTo }, req.model);
    }
    throw new ApiError(
      429,
      'insufficient_quota',
      'budget_exceeded',
      `Budget ${b.namespace}/${b.name} (${b.spec.limit} USD ${b.spec.period}) is exhausted; it resets at ${err.periodEnd.toISOString()}.`,
      null,
      { 'retry-after': String(err.retryAfterSeconds) },
    );
  }
}
