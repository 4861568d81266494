import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { z } from 'zod';
import { CRD_HEADER, renderCrds, toStructural, type DescriptionOverrides } from '../../crds/src/crd-gen.js';

type Node = Record<string, unknown>;

const rendered = renderCrds();
const byFile = (suffix: string) => {
  const crd = rendered.find((c) => c.file.endsWith(suffix));
  if (!crd) throw new Error(`renderCrds() has no ${suffix}`);
  return crd;
};
const isNode = (v: unknown): v is Node => typeof v === 'object' && v !== null && !Array.isArray(v);
const get = (v: unknown, ...path: Array<string | number>): unknown =>
  path.reduce<unknown>((cur, key) => (isNode(cur) || Array.isArray(cur) ? (cur as Record<string | number, unknown>)[key] : undefined), v);

function parsed(suffix: string): Node {
  const doc: unknown = parse(byFile(suffix).yaml);
  if (!isNode(doc)) throw new Error(`${suffix} is not a YAML mapping`);
  return doc;
}
const version0 = (crd: Node) => get(crd, 'spec', 'versions', 0) as Node;
const rootSchema = (crd: Node) => get(version0(crd), 'schema', 'openAPIV3Schema') as Node;

/** Every schema node with its path (`spec.targets[].name`, `{}` for map values). */
function* nodes(node: Node, path: string): Generator<[string, Node]> {
  yield [path, node];
  const props = node.properties;
  if (isNode(props)) {
    for (const [name, child] of Object.entries(props)) {
      if (isNode(child)) yield* nodes(child, path ? `${path}.${name}` : name);
    }
  }
  if (isNode(node.items)) yield* nodes(node.items, `${path}[]`);
  if (isNode(node.additionalProperties)) yield* nodes(node.additionalProperties, `${path}{}`);
}

const SCHEMA_KEYS = new Set([
  'description', 'type', 'format', 'enum', 'default', 'nullable', 'minimum', 'exclusiveMinimum', 'maximum',
  'exclusiveMaximum', 'multipleOf', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'minProperties',
  'maxProperties', 'properties', 'required', 'items', 'additionalProperties', 'x-kubernetes-preserve-unknown-fields',
  'x-kubernetes-list-type', 'x-kubernetes-list-map-keys', 'x-kubernetes-validations',
]);

describe('generated CRD manifests', () => {
  it.each(rendered.map((c) => [c.file, c.yaml] as const))('%s is up to date (else run `make crds`)', (file, yaml) => {
    const checkedIn = readFileSync(new URL(`../../${file}`, import.meta.url), 'utf8');
    expect(checkedIn === yaml, `${file} is stale: run \`make crds\` and commit the result`).toBe(true);
  });

  it('renders deterministically, with the generated-file header', () => {
    expect(renderCrds()).toEqual(rendered);
    expect(rendered.map((c) => c.file)).toEqual(['crds/paygo.dev_modelroutes.yaml', 'crds/paygo.dev_budgets.yaml', 'crds/paygo.dev_providerquotas.yaml', 'crds/paygo.dev_ratelimits.yaml']);
    for (const { yaml } of rendered) expect(yaml.startsWith(`${CRD_HEADER}\napiVersion: apiextensions.k8s.io/v1\n`)).toBe(true);
  });

  it.each([
    ['modelroutes', 'ModelRoute', 'modelroute', ['mr']],
    ['budgets', 'Budget', 'budget', ['bgt']],
    ['providerquotas', 'ProviderQuota', 'providerquota', ['pq']],
    ['ratelimits', 'RateLimit', 'ratelimit', ['rl']],
  ])('%s: group, version, names, scope and status subresource', (plural, kind, singular, shortNames) => {
    const crd = parsed(`_${plural}.yaml`);
    expect(crd.apiVersion).toBe('apiextensions.k8s.io/v1');
    expect(crd.kind).toBe('CustomResourceDefinition');
    expect(get(crd, 'metadata', 'name')).toBe(`${plural}.paygo.dev`);
    expect(get(crd, 'spec', 'group')).toBe('paygo.dev');
    expect(get(crd, 'spec', 'scope')).toBe('Namespaced');
    expect(get(crd, 'spec', 'names')).toEqual({ kind, listKind: `${kind}List`, plural, singular, shortNames, categories: ['paygo'] });
    expect(get(crd, 'spec', 'versions')).toHaveLength(1);
    const v = version0(crd);
    expect([v.name, v.served, v.storage]).toEqual(['v1alpha1', true, true]);
    expect(v.subresources).toEqual({ status: {} });
    expect(get(rootSchema(crd), 'required')).toEqual(['spec']);
    expect(get(rootSchema(crd), 'properties', 'metadata')).toEqual({ type: 'object' });
  });

  const ALL = ['_modelroutes.yaml', '_budgets.yaml', '_providerquotas.yaml', '_ratelimits.yaml'];
  describe.each(ALL)('%s schema is structural', (suffix) => {
    const all = [...nodes(rootSchema(parsed(suffix)), '')];

    it('types every node (or preserves unknown fields there)', () => {
      const untyped = all.filter(([, n]) => typeof n.type !== 'string' && n['x-kubernetes-preserve-unknown-fields'] !== true);
      expect(untyped.map(([p]) => p)).toEqual([]);
      expect(all.filter(([, n]) => n.type === 'array' && !isNode(n.items)).map(([p]) => p)).toEqual([]);
    });

    it('describes every node (metadata excepted: the API server forbids anything but its type)', () => {
      const undescribed = all.filter(([p, n]) => p !== 'metadata' && (typeof n.description !== 'string' || n.description.trim() === ''));
      expect(undescribed.map(([p]) => p)).toEqual([]);
    });

    it('uses only structural keywords: no $ref, unions or additionalProperties beside properties', () => {
      for (const [path, n] of all) {
        const unknown = Object.keys(n).filter((k) => !SCHEMA_KEYS.has(k));
        expect(unknown, `${path || '<root>'} has ${unknown.join(', ')}`).toEqual([]);
        expect(n.properties !== undefined && n.additionalProperties !== undefined, `${path}: additionalProperties beside properties`).toBe(false);
        if (n.additionalProperties !== undefined) expect(isNode(n.additionalProperties), `${path}: additionalProperties must be a schema`).toBe(true);
        if (Array.isArray(n.required)) {
          for (const r of n.required) expect(get(n, 'properties', r as string), `${path}.${String(r)} is required but not declared`).toBeDefined();
        }
      }
      expect(byFile(suffix).yaml).not.toMatch(/\$ref|\$schema|\$defs|definitions|anyOf|oneOf|allOf|uniqueItems/);
    });

    it('bounds every list and string that a CEL rule iterates or compares', () => {
      // The API server rejects rules whose estimated cost is unbounded; these fields are read by rules.
      const schema = rootSchema(parsed(suffix));
      if (suffix === '_modelroutes.yaml') {
        expect(get(schema, 'properties', 'spec', 'properties', 'targets', 'maxItems')).toBe(16);
        expect(get(schema, 'properties', 'spec', 'properties', 'targets', 'items', 'properties', 'name', 'maxLength')).toBe(63);
      }
    });
  });

  it('ModelRoute: spec.model (string or list of strings) keeps any value, bounds lengths and is described', () => {
    const model = get(rootSchema(parsed('_modelroutes.yaml')), 'properties', 'spec', 'properties', 'model') as Node;
    expect(model.type).toBeUndefined();
    expect(model['x-kubernetes-preserve-unknown-fields']).toBe(true);
    expect(model).toMatchObject({ minLength: 1, maxLength: 256, minItems: 1, maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 256 } });
    expect(model.description).toMatch(/^The model name \(or names\) that applications send.*A string or a list of 1 to 64 strings/);
  });

  it('keeps zod defaults and conditions are a list map keyed by type', () => {
    const route = rootSchema(parsed('_modelroutes.yaml'));
    expect(get(route, 'properties', 'spec', 'properties', 'strategy', 'default')).toBe('fallback');
    expect(get(route, 'properties', 'spec', 'properties', 'retry', 'properties', 'retryOn', 'default')).toEqual(['429', '5xx', 'timeout', 'connect']);
    const budget = rootSchema(parsed('_budgets.yaml'));
    expect(get(budget, 'properties', 'spec', 'properties', 'scope', 'default')).toEqual({});
    expect(get(budget, 'properties', 'spec', 'properties', 'timeZone', 'default')).toBe('UTC');
    expect(get(budget, 'properties', 'spec', 'properties', 'timeZone', 'description')).toMatch(/IANA.*operator validates/);
    const quota = rootSchema(parsed('_providerquotas.yaml'));
    const limit = rootSchema(parsed('_ratelimits.yaml'));
    expect(get(limit, 'properties', 'spec', 'properties', 'scope', 'default')).toEqual({});
    for (const root of [route, budget, quota, limit]) {
      expect(get(root, 'properties', 'status', 'properties', 'conditions')).toMatchObject({ 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['type'] });
    }
  });

  it('ModelRoute printer columns', () => {
    expect(version0(parsed('_modelroutes.yaml')).additionalPrinterColumns).toEqual([
      expect.objectContaining({ name: 'Model', type: 'string', jsonPath: '.spec.model' }),
      expect.objectContaining({ name: 'Strategy', type: 'string', jsonPath: '.spec.strategy' }),
      expect.objectContaining({ name: 'Targets', type: 'integer', jsonPath: '.status.targetCount' }),
      expect.objectContaining({ name: 'Synced', type: 'integer', jsonPath: '.status.sidecars.synced' }),
      expect.objectContaining({ name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' }),
      expect.objectContaining({ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }),
    ]);
    // Every column reads a field the schema declares.
    const status = get(rootSchema(parsed('_modelroutes.yaml')), 'properties', 'status', 'properties');
    expect(get(status, 'targetCount', 'type')).toBe('integer');
    expect(get(status, 'sidecars', 'properties', 'synced', 'type')).toBe('integer');
  });

  it('Budget printer columns', () => {
    expect(version0(parsed('_budgets.yaml')).additionalPrinterColumns).toEqual([
      expect.objectContaining({ name: 'Period', type: 'string', jsonPath: '.spec.period' }),
      expect.objectContaining({ name: 'Limit', type: 'string', jsonPath: '.spec.limit' }),
      expect.objectContaining({ name: 'Spent', type: 'string', jsonPath: '.status.spent' }),
      expect.objectContaining({ name: 'Remaining', type: 'string', jsonPath: '.status.remaining' }),
      expect.objectContaining({ name: 'State', type: 'string', jsonPath: '.status.state' }),
      expect.objectContaining({ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }),
    ]);
  });

  it('ProviderQuota and RateLimit printer columns', () => {
    expect(version0(parsed('_providerquotas.yaml')).additionalPrinterColumns).toEqual([
      expect.objectContaining({ name: 'Secret', type: 'string', jsonPath: '.spec.credentials.secretRef.name' }),
      expect.objectContaining({ name: 'Provider', type: 'string', jsonPath: '.spec.provider' }),
      expect.objectContaining({ name: 'RPM', type: 'integer', jsonPath: '.spec.limits.requestsPerMinute' }),
      expect.objectContaining({ name: 'TPM', type: 'integer', jsonPath: '.spec.limits.tokensPerMinute' }),
      expect.objectContaining({ name: 'Targets', type: 'integer', jsonPath: '.status.targets' }),
      expect.objectContaining({ name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' }),
      expect.objectContaining({ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }),
    ]);
    expect(version0(parsed('_ratelimits.yaml')).additionalPrinterColumns).toEqual([
      expect.objectContaining({ name: 'RPM', type: 'integer', jsonPath: '.spec.limits.requestsPerMinute' }),
      expect.objectContaining({ name: 'TPM', type: 'integer', jsonPath: '.spec.limits.tokensPerMinute' }),
      expect.objectContaining({ name: 'RPD', type: 'integer', jsonPath: '.spec.limits.requestsPerDay', priority: 1 }),
      expect.objectContaining({ name: 'TPD', type: 'integer', jsonPath: '.spec.limits.tokensPerDay', priority: 1 }),
      expect.objectContaining({ name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' }),
      expect.objectContaining({ name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' }),
    ]);
    // Every column reads a field the schema declares.
    const pq = get(rootSchema(parsed('_providerquotas.yaml')), 'properties');
    expect(get(pq, 'status', 'properties', 'targets', 'type')).toBe('integer');
    expect(get(pq, 'spec', 'properties', 'credentials', 'properties', 'secretRef', 'properties', 'name', 'type')).toBe('string');
    const rl = get(rootSchema(parsed('_ratelimits.yaml')), 'properties', 'spec', 'properties', 'limits', 'properties');
    for (const f of ['requestsPerMinute', 'tokensPerMinute', 'requestsPerDay', 'tokensPerDay']) expect(get(rl, f, 'type')).toBe('integer');
  });

  // What each CEL rule accepts and refuses is tested, not pinned: one table of documents goes
  // through zod (test/crds/validation-table.test.ts) and the real API server with these CRDs
  // (test/e2e/validation.test.ts), which must agree and name the same field.
  it('has the CEL rules the validation table exercises (11 on ModelRoute targets and spec, 1 on each other kind)', () => {
    const count = (suffix: string) => [...nodes(rootSchema(parsed(suffix)), '')].reduce((n, [, node]) => n + ((node['x-kubernetes-validations'] ?? []) as unknown[]).length, 0);
    expect(count('_modelroutes.yaml')).toBe(11);
    expect(count('_budgets.yaml')).toBe(1);
    expect(count('_providerquotas.yaml')).toBe(1);
    expect(count('_ratelimits.yaml')).toBe(1);
  });

  it('every CEL rule names a field in its message and has a valid fieldPath', () => {
    for (const suffix of ALL) {
      for (const [path, n] of nodes(rootSchema(parsed(suffix)), '')) {
        for (const r of (n['x-kubernetes-validations'] ?? []) as Array<{ message: string; fieldPath?: string }>) {
          expect(r.message, `${suffix} ${path}`).toMatch(/^spec\.[a-zA-Z]+/);
          if (r.fieldPath !== undefined) {
            const field = r.fieldPath.replace(/^\./, '');
            expect(get(n, 'properties', field), `${path}: fieldPath ${r.fieldPath}`).toBeDefined();
          }
        }
      }
    }
  });
});

describe('toStructural', () => {
  const none: DescriptionOverrides = { describe: { x: 'Root.' }, append: {} };

  it('maps records, loose objects, literals and safe-integer bounds', () => {
    const schema = z.object({
      labels: z.record(z.string(), z.string()).describe('Labels.'),
      loose: z.object({ a: z.string().describe('A.') }).loose().describe('Loose.'),
      lit: z.literal('v').describe('Literal.'),
      n: z.number().int().describe('Any integer.'),
      k: z.number().int().positive().describe('Positive.'),
    });
    const out = toStructural(schema, 'x', { describe: { x: 'Root.', 'x.labels{}': 'A label value.' }, append: {} });
    expect(out.properties?.labels).toEqual({ description: 'Labels.', type: 'object', additionalProperties: { description: 'A label value.', type: 'string' } });
    expect(out.properties?.loose?.['x-kubernetes-preserve-unknown-fields']).toBe(true);
    expect(out.properties?.loose?.properties?.a?.type).toBe('string');
    expect(out.properties?.lit).toMatchObject({ type: 'string', enum: ['v'] });
    expect(out.properties?.n).toEqual({ description: 'Any integer.', type: 'integer' });
    expect(out.properties?.k).toMatchObject({ type: 'integer', minimum: 0, exclusiveMinimum: true });
    expect(out.properties?.k?.maximum).toBeUndefined();
  });

  it('refuses a field without a description', () => {
    expect(() => toStructural(z.object({ a: z.string() }), 'x', none)).toThrow(/x\.a: has no description/);
  });

  it('refuses stale description overrides', () => {
    expect(() => toStructural(z.object({}), 'x', { describe: { x: 'Root.', 'x.gone': 'Gone.' }, append: {} })).toThrow(/do not exist: x\.gone/);
    expect(() => toStructural(z.object({}).describe('Own.'), 'x', none)).toThrow(/has a zod description/);
  });

  it('refuses what a structural schema cannot express', () => {
    const union = z.object({ u: z.union([z.string(), z.string().min(2)]).describe('U.') });
    expect(() => toStructural(union, 'x', none)).toThrow(/anyOf repeats type string/);
    const objects = z.object({ u: z.union([z.string(), z.object({})]).describe('U.') });
    expect(() => toStructural(objects, 'x', none)).toThrow(/type object is not supported/);
    const lookahead = z.object({ p: z.string().regex(/^(?!x)/).describe('P.') });
    expect(() => toStructural(lookahead, 'x', none)).toThrow(/RE2/);
  });
});
