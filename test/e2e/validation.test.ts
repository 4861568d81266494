import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { kubectl, startControlPlane, waitCrdsEstablished, type ControlPlane } from '../support/controlplane/controlplane.js';
import { ROOT } from '../support/sidecar-process.js';
import { KNOWN_DIVERGENCES, VALIDATION_CASES, validationDocument, type ValidationCase } from '../support/validation-table.js';

/**
 * The API-server half of the one validation table (test/support/validation-table.ts): every
 * document goes through the generated CRDs' OpenAPI schema and CEL rules on a real
 * kube-apiserver (`kubectl create --dry-run=server`: validated, never stored), and must be
 * judged as the zod schemas judge it (test/crds/validation-table.test.ts), naming the same field.
 */
let cp: ControlPlane;

beforeAll(async () => {
  cp = await startControlPlane();
  for (const f of readdirSync(join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml'))) {
    const r = await kubectl(cp, ['apply', '-f', join(ROOT, 'crds', f)]);
    if (r.code !== 0) throw new Error(r.stderr);
  }
  await waitCrdsEstablished(cp, ['modelroutes.paygo.dev', 'budgets.paygo.dev']);
});

afterAll(async () => {
  await cp?.stop();
});

async function admit(c: ValidationCase, i: number): Promise<{ ok: boolean; stderr: string }> {
  const r = await kubectl(cp, ['create', '--dry-run=server', '-f', '-'], JSON.stringify(validationDocument(c, i)));
  return { ok: r.code === 0, stderr: r.stderr };
}

describe('the validation table, through kube-apiserver and the generated CRDs', () => {
  VALIDATION_CASES.forEach((c, i) => {
    it(`${c.kind}: ${c.name} → ${c.field ? `refused at ${c.field}` : 'accepted'}`, async () => {
      const verdict = await admit(c, i);
      expect(verdict.ok, verdict.stderr).toBe(!c.field);
      if (c.field) expect(verdict.stderr).toContain(c.field);
    });
  });

  it.each(KNOWN_DIVERGENCES.map((c, i) => [c.name, c, i] as const))('known divergence, %s: accepted here, refused by the operator', async (_name, c, i) => {
    expect((await admit(c, VALIDATION_CASES.length + i)).ok).toBe(true);
  });
});
