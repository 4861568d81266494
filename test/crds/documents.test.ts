import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { buildSnapshot, ConfigError, parseConfigDocuments, secretEnvName, selectorMatches } from '../../crds/src/index.js';

const route = (spec: string, name = 'r') => `apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ${name} }
spec:
${spec}`;

describe('parseConfigDocuments', () => {
  it('parses the shipped standalone example', () => {
    const docs = parseConfigDocuments(readFileSync(new URL('../../examples/standalone.yaml', import.meta.url), 'utf8'));
    expect(docs.routes.map((r) => r.metadata.name)).toEqual(['demo', 'support-bot', 'cheap-chat', 'local-llm']);
    expect(docs.routes[0]!.spec.targets[0]!.simulate?.outputTokens).toBe(24);
    expect(docs.routes[0]!.metadata.namespace).toBe('default');
  });

  it.each([
    [route('  model: m\n  targets: []'), /document 1 \(ModelRoute "r"\): spec\.targets: .*at least 1|spec\.targets/],
    [route('  model: m\n  targets: [{ provider: nope, model: x }]'), /spec\.targets\[0\]\.provider/],
    [route('  model: m\n  strategy: weighted\n  targets: [{ provider: simulate, model: x }]'), /spec\.targets\[0\]\.weight is required when strategy is weighted/],
    [route('  model: m\n  targets: [{ provider: openai-compatible, model: x }]'), /spec\.targets\[0\]\.baseURL is required/],
    [route('  model: m\n  targets: [{ name: a, provider: simulate, model: x }, { name: a, provider: simulate, model: y }]'), /spec\.targets\[1\]\.name "a" is not unique/],
    [route('  model: m\n  targets: [{ provider: simulate, model: x, pricing: { input: "1.5e3", output: "1" } }]'), /spec\.targets\[0\]\.pricing\.input: .*decimal string/],
    ['apiVersion: v1\nkind: ConfigMap\nmetadata: { name: x }\n', /unsupported apiVersion\/kind "v1\/ConfigMap"/],
    ['key: [unclosed', /YAML error/],
  ])('rejects invalid document %#, naming the field', (text, message) => {
    expect(() => parseConfigDocuments(text)).toThrow(ConfigError);
    expect(() => parseConfigDocuments(text)).toThrow(message);
  });

  it('rejects a duplicate object', () => {
    const one = route('  model: m\n  targets: [{ provider: simulate, model: x }]');
    expect(() => parseConfigDocuments(`${one}\n---\n${one}`)).toThrow(/duplicate ModelRoute default\/r/);
  });

  it('ignores empty documents', () => {
    expect(parseConfigDocuments(`---\n${route('  model: m\n  targets: [{ provider: simulate, model: x }]')}\n---\n`).routes).toHaveLength(1);
  });
});

describe('buildSnapshot credentials', () => {
  const text = `${route(`  model: m
  targets:
    - { name: a, provider: openai, model: gpt-4o-mini, credentials: { secretRef: { name: openai, key: api-key } } }
    - { name: b, provider: anthropic, model: claude, credentials: { secretRef: { name: anthropic, key: api-key } } }
    - { name: c, provider: gemini, model: g, credentials: { secretRef: { name: keys, key: missing } } }`)}
---
apiVersion: v1
kind: Secret
metadata: { name: keys }
data: { other: c2VjcmV0 }
---
apiVersion: v1
kind: Secret
metadata: { name: anthropic }
stringData: { api-key: sk-ant-from-file }
`;

  it('resolves Secrets in the file, then the <NAME>_<KEY> environment variable', () => {
    const docs = parseConfigDocuments(text);
    const snap = buildSnapshot({ ...docs, env: { OPENAI_API_KEY: 'sk-from-env', ANTHROPIC_API_KEY: 'ignored' } });
    expect(snap.routes[0]!.credentials).toEqual({ a: 'sk-from-env', b: 'sk-ant-from-file' });
    expect(snap.routes[0]!.unresolved).toEqual({ c: 'Secret default/keys has no key "missing"' });
  });

  it('names the missing Secret and variable, never a value', () => {
    const snap = buildSnapshot({ ...parseConfigDocuments(text), env: {} });
    expect(snap.routes[0]!.unresolved.a).toBe('Secret default/openai not found and environment variable OPENAI_API_KEY is not set');
    expect(JSON.stringify(snap.routes[0]!.unresolved)).not.toContain('sk-ant-from-file');
  });

  it('resolves the further credential parts (an AWS key pair and session token) and refuses a target missing any part', () => {
    const aws = `${route(`  model: m
  targets:
    - name: full
      provider: simulate
      model: x
      credentials:
        secretRef: { name: aws, key: AWS_SECRET_ACCESS_KEY }
        accessKeyIdRef: { name: aws, key: AWS_ACCESS_KEY_ID }
        sessionTokenRef: { name: aws, key: AWS_SESSION_TOKEN }
    - name: half
      provider: simulate
      model: y
      credentials:
        secretRef: { name: aws, key: AWS_SECRET_ACCESS_KEY }
        accessKeyIdRef: { name: aws, key: NOT_THERE }`)}
---
apiVersion: v1
kind: Secret
metadata: { name: aws }
stringData: { AWS_ACCESS_KEY_ID: AKIDEXAMPLE, AWS_SECRET_ACCESS_KEY: wJalrXUtnFEMI, AWS_SESSION_TOKEN: token-1 }
`;
    const snap = buildSnapshot({ ...parseConfigDocuments(aws), env: {} });
    expect(snap.routes[0]!.credentials).toEqual({ full: 'wJalrXUtnFEMI' });
    expect(snap.routes[0]!.credentialParts).toEqual({ full: { accessKeyId: 'AKIDEXAMPLE', sessionToken: 'token-1' } });
    expect(snap.routes[0]!.unresolved).toEqual({ half: 'Secret default/aws has no key "NOT_THERE"' });
  });

  it('gives the same version for the same objects and a new one on change', () => {
    const docs = parseConfigDocuments(text);
    const a = buildSnapshot({ ...docs, env: {} });
    const b = buildSnapshot({ ...parseConfigDocuments(text), env: {} });
    const c = buildSnapshot({ ...parseConfigDocuments(text.replace('gpt-4o-mini', 'gpt-4o')), env: {} });
    expect(a.version).toBe(b.version);
    expect(c.version).not.toBe(a.version);
  });

  it('carries the catalog prices it is given for targets without pricing, by target name, in the version', () => {
    const docs = parseConfigDocuments(text);
    docs.routes[0]!.spec.targets[1]!.pricing = { input: '1', output: '2' };
    const asked: string[] = [];
    const snap = buildSnapshot({
      ...docs,
      env: {},
      catalogPrice: (provider, model) => {
        asked.push(`${provider}/${model}`);
        return provider === 'openai' ? { provider: 'openai', model, prices: { input_mtok: 0.15, output_mtok: 0.6 } } : undefined;
      },
    });
    expect(asked).toEqual(['openai/gpt-4o-mini', 'gemini/g']);
    expect(snap.routes[0]!.catalogPrices).toEqual({ a: { provider: 'openai', model: 'gpt-4o-mini', prices: { input_mtok: 0.15, output_mtok: 0.6 } } });
    expect(buildSnapshot({ ...docs, env: {} }).routes[0]).not.toHaveProperty('catalogPrices');
    expect(buildSnapshot({ ...docs, env: {} }).version).not.toBe(snap.version);
  });

  it('maps secret names to environment variables', () => {
    expect(secretEnvName('openai', 'api-key')).toBe('OPENAI_API_KEY');
    expect(secretEnvName('my.team-keys', 'token')).toBe('MY_TEAM_KEYS_TOKEN');
  });
});

describe('selectorMatches', () => {
  it('follows Kubernetes label selector semantics', () => {
    const labels = { app: 'web', tier: 'prod' };
    expect(selectorMatches(undefined, labels)).toBe(true);
    expect(selectorMatches({}, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'web' } }, labels)).toBe(true);
    expect(selectorMatches({ matchLabels: { app: 'api' } }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'In', values: ['prod', 'stage'] }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'tier', operator: 'NotIn', values: ['prod'] }] }, labels)).toBe(false);
    expect(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }] }, labels)).toBe(true);
    expect(selectorMatches({ matchExpressions: [{ key: 'x', operator: 'Exists' }] }, labels)).toBe(false);
  });
});

describe('ProviderQuota and RateLimit documents', () => {
  const base = route('  model: m\n  targets: [{ provider: simulate, model: x, quota: { requestsPerMinute: 10 } }]');
  const quota = `apiVersion: paygo.dev/v1alpha1
kind: ProviderQuota
metadata: { name: openai-key, namespace: team-a }
spec:
  credentials: { secretRef: { name: openai, key: api-key } }
  provider: openai
  limits: { tokensPerMinute: 200000 }`;
  const limit = `apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: team-a }
spec:
  scope: { models: [m] }
  limits: { requestsPerMinute: 60, tokensPerDay: 1000000 }`;

  it('parses both kinds into the snapshot, with their identity', () => {
    const docs = parseConfigDocuments(`${base}\n---\n${quota}\n---\n${limit}`);
    const snap = buildSnapshot({ ...docs, env: {} });
    expect(snap.routes[0]!.spec.targets[0]!.quota).toEqual({ requestsPerMinute: 10 });
    expect(snap.providerQuotas).toEqual([
      { name: 'openai-key', namespace: 'team-a', generation: undefined, spec: { credentials: { secretRef: { name: 'openai', key: 'api-key' } }, provider: 'openai', limits: { tokensPerMinute: 200000 } } },
    ]);
    expect(snap.rateLimits).toEqual([
      { name: 'team-a', namespace: 'default', generation: undefined, spec: { scope: { models: ['m'] }, limits: { requestsPerMinute: 60, tokensPerDay: 1000000 } } },
    ]);
  });

  it('leaves both out of a snapshot without them, so its version does not change', () => {
    const snap = buildSnapshot({ ...parseConfigDocuments(base), env: {} });
    expect('providerQuotas' in snap).toBe(false);
    expect('rateLimits' in snap).toBe(false);
    const withLimit = buildSnapshot({ ...parseConfigDocuments(`${base}\n---\n${limit}`), env: {} });
    expect(withLimit.version).not.toBe(snap.version);
    expect(buildSnapshot({ routes: parseConfigDocuments(base).routes, budgets: [], secrets: [], env: {} }).version).toBe(snap.version);
  });

  it.each([
    [limit.replace('limits: { requestsPerMinute: 60, tokensPerDay: 1000000 }', 'limits: {}'), /document 1 \(RateLimit "team-a"\): spec\.limits: spec\.limits must set at least one of requestsPerMinute, tokensPerMinute, requestsPerDay, tokensPerDay/],
    [quota.replace('tokensPerMinute: 200000', 'tokensPerMinute: 0'), /spec\.limits\.tokensPerMinute: /],
    [route('  model: m\n  targets: [{ provider: simulate, model: x, quota: {} }]'), /spec\.targets\[0\]\.quota: spec\.targets\[\]\.quota must set at least one of/],
  ])('refuses invalid limits %#, naming the field', (text, message) => {
    expect(() => parseConfigDocuments(text)).toThrow(message);
  });
});
