import { describe, expect, it } from 'vitest';
import { BudgetSchema, ModelRouteSchema, ProviderQuotaSchema, RateLimitSchema, formatIssues } from '../../crds/src/index.js';
import { KNOWN_DIVERGENCES, VALIDATION_CASES, validationDocument, type ValidationCase } from '../support/validation-table.js';

/** The zod half of the one table that the zod schemas and the API server must judge alike (test/e2e/validation.test.ts is the other). */
function judge(c: ValidationCase, i: number): { ok: true } | { ok: false; message: string } {
  const doc = validationDocument(c, i);
  const schema = { ModelRoute: ModelRouteSchema, Budget: BudgetSchema, ProviderQuota: ProviderQuotaSchema, RateLimit: RateLimitSchema }[c.kind];
  const parsed = schema.safeParse(doc);
  return parsed.success ? { ok: true } : { ok: false, message: formatIssues(parsed.error) };
}

describe('the validation table, through the zod schemas', () => {
  VALIDATION_CASES.forEach((c, i) => {
    it(`${c.kind}: ${c.name} → ${c.field ? `refused at ${c.field}` : 'accepted'}`, () => {
      const verdict = judge(c, i);
      if (!c.field) expect(verdict).toEqual({ ok: true });
      else {
        expect(verdict.ok).toBe(false);
        expect((verdict as { message: string }).message).toContain(c.field);
      }
    });
  });

  it('the table reaches every CEL rule of the CRDs with a document it must refuse', () => {
    const refused = VALIDATION_CASES.filter((c) => c.field).map((c) => c.name);
    expect(refused.length).toBeGreaterThanOrEqual(10);
  });

  it.each(KNOWN_DIVERGENCES.map((c, i) => [c.name, c, i] as const))('known divergence, %s: zod refuses what the API server cannot check', (_name, c, i) => {
    const verdict = judge(c, VALIDATION_CASES.length + i);
    expect(verdict.ok).toBe(false);
    expect((verdict as { message: string }).message).toContain(c.field!);
  });
});
