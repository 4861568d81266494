/**
 * Hand checks of a request's common plain shape, each exactly as the API's zod schema would
 * accept it. zod's check of a request costs 40–80 µs of a stream's first byte once the sidecar
 * has idled and its code went cold (test/bench/README.md); these cost about 1 µs. A body of the
 * plain shape is the request as it is (the schemas are loose and transform nothing, so zod's
 * output equals it); anything else is left to zod, which also words the errors. Each checker
 * is held to its schema's verdict by a differential test (test/support/plain-check.ts).
 */
import { isPlainObject } from './json-values.js';

/** One field's check; false means "leave the body to zod", not "invalid". */
export type FieldCheck = (v: unknown) => boolean;

/** z.number().int().min(min).max(max): zod's int is a safe integer. */
export const count =
  (min: number, max = Number.MAX_SAFE_INTEGER): FieldCheck =>
  (v) =>
    Number.isSafeInteger(v) && (v as number) >= min && (v as number) <= max;
/** z.number().min(min).max(max) */
export const within =
  (min: number, max: number): FieldCheck =>
  (v) =>
    typeof v === 'number' && v >= min && v <= max;
/** z.string().min(min) */
export const text =
  (min = 0): FieldCheck =>
  (v) =>
    typeof v === 'string' && v.length >= min;
export const bool: FieldCheck = (v) => typeof v === 'boolean';
export const oneOf =
  (...values: unknown[]): FieldCheck =>
  (v) =>
    values.includes(v);
/** .nullable().optional() of a check (a JSON body has no undefined values). */
export const orNull =
  (check: FieldCheck): FieldCheck =>
  (v) =>
    v === null || check(v);
/** z.array(items).min(min).max(max) of plain items. */
export const list =
  (item: FieldCheck, min = 0, max = Infinity): FieldCheck =>
  (v) =>
    Array.isArray(v) && v.length >= min && v.length <= max && v.every(item);

/** An object with exactly these fields' checks passing, each required one present. */
export const record = (fields: Record<string, FieldCheck>, required: readonly string[]): FieldCheck => {
  // A Map: a field named "constructor" or "toString" must not find Object.prototype's.
  const checks = new Map(Object.entries(fields));
  return (v) => {
    if (!isPlainObject(v)) return false;
    for (const key of required) if (!Object.hasOwn(v, key)) return false;
    for (const key in v) {
      const check = checks.get(key);
      if (check === undefined || !check(v[key])) return false;
    }
    return true;
  };
};

/**
 * A checker for a request: `schemaFields` are all the fields its schema knows (any other field
 * is unknown and passes, as the schema is loose), `checks` the plain shape of those it takes by
 * hand (a known field without a check leaves the body to zod), `required` those it must have.
 */
export function plainRequestCheck<T>(schemaFields: Iterable<string>, checks: Record<string, FieldCheck>, required: readonly string[]): (body: unknown) => body is T {
  const known: ReadonlySet<string> = new Set(schemaFields);
  const byField = new Map(Object.entries(checks));
  return (body: unknown): body is T => {
    if (!isPlainObject(body)) return false;
    for (const key of required) if (!Object.hasOwn(body, key)) return false;
    for (const key in body) {
      // JSON.parse makes "__proto__" an own field; zod's copy would set a prototype with it.
      if (key === '__proto__') return false;
      const check = byField.get(key);
      if (check !== undefined ? !check(body[key]) : known.has(key)) return false;
    }
    return true;
  };
}
