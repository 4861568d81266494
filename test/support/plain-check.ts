import { isDeepStrictEqual } from 'node:util';
import { expect } from 'vitest';
import type { z } from 'zod';
import { seededRandom } from '../../sidecar/random.js';

/**
 * Differential tests of a hand check (sidecar/plain-check.ts) against its zod schema: random
 * request bodies, mostly of the plain shape and often just outside it, each judged by both.
 */

type Pick = <T>(xs: readonly T[]) => T;

/** How to make bodies: per field, the values to draw from (the first one most often for required fields). */
export interface BodySpace {
  required: Record<string, readonly unknown[]>;
  optional: Record<string, readonly unknown[]>;
  /** The messages field, made anew per body. */
  messages?: { field: string; make: (rnd: () => number, pick: Pick) => unknown[] };
}

export function randomBody(rnd: () => number, space: BodySpace): unknown {
  const pick: Pick = (xs) => xs[Math.floor(rnd() * xs.length)]!;
  const body: Record<string, unknown> = {};
  for (const [field, values] of Object.entries(space.required)) {
    if (rnd() < 0.95) body[field] = rnd() < 0.8 ? values[0] : pick(values);
  }
  if (space.messages && rnd() < 0.95) body[space.messages.field] = space.messages.make(rnd, pick);
  for (const [field, values] of Object.entries(space.optional)) if (rnd() < 0.1) body[field] = pick(values);
  // Bodies come from JSON.parse: no undefined values, no shared objects.
  return JSON.parse(JSON.stringify(body));
}

/** A message with a role and content drawn mostly from the plain ones, sometimes with another field. */
export function randomMessage(rnd: () => number, pick: Pick, o: { plainRoles: readonly unknown[]; roles: readonly unknown[]; contents: readonly unknown[]; extras: ReadonlyArray<readonly [string, unknown]> }): Record<string, unknown> {
  const m: Record<string, unknown> = {};
  const role = rnd() < 0.8 ? pick(o.plainRoles) : pick(o.roles);
  if (role !== undefined) m.role = role;
  const content = rnd() < 0.8 ? 'hello' : pick(o.contents);
  if (content !== undefined) m.content = content;
  if (rnd() < 0.25) {
    const [key, value] = pick(o.extras);
    m[key] = value;
  }
  return m;
}

/** A messages list for BodySpace: now and then empty, else one or two messages drawn as randomMessage draws them. */
export function messageLists(o: Parameters<typeof randomMessage>[2]): NonNullable<BodySpace['messages']>['make'] {
  return (rnd, pick) => (rnd() < 0.05 ? [] : Array.from({ length: 1 + Math.floor(rnd() * 2) }, () => randomMessage(rnd, pick, o)));
}

/**
 * Judges `n` bodies both ways. A disagreement is a body the hand check takes that zod refuses,
 * or makes something else of.
 */
export function compareWithZod(schema: z.ZodType, plain: (body: unknown) => boolean, space: BodySpace, n: number, seed: number) {
  const rnd = seededRandom(seed);
  let taken = 0;
  let zodOnly = 0;
  const disagreements: unknown[] = [];
  for (let i = 0; i < n; i++) {
    const body = randomBody(rnd, space);
    const verdict = schema.safeParse(body);
    if (plain(body)) {
      taken++;
      if (!verdict.success || !isDeepStrictEqual(verdict.data, body)) disagreements.push(body);
    } else if (verdict.success) zodOnly++;
  }
  return { taken, zodOnly, disagreements };
}

export const NUMBERS: readonly unknown[] = [null, 0, 1, 2, 16, 20, 21, 128, 129, 1024, 0.5, 1.5, 2.5, -1, -2, -2.5, 2 ** 53, 2 ** 53 - 1, -(2 ** 53 - 1), 'x', true, [], {}];
export const STRINGS: readonly unknown[] = ['text', '', null, 7, true, [], {}];
export const BOOLEANS: readonly unknown[] = [true, false, null, 'true', 0];

/**
 * The test of a hand check: over 20,000 bodies it takes nothing zod refuses or would change, and
 * neither side is empty (plain bodies were taken, valid ones outside the plain shape left to zod).
 */
export function expectZodVerdicts(schema: z.ZodType, plain: (body: unknown) => boolean, space: BodySpace, seed: number): void {
  const { taken, zodOnly, disagreements } = compareWithZod(schema, plain, space, 20_000, seed);
  expect(disagreements.slice(0, 3)).toEqual([]);
  expect(taken).toBeGreaterThan(500);
  expect(zodOnly).toBeGreaterThan(500);
}
