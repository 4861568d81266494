import { describe, expect, it } from 'vitest';
import { SnapshotSchema, type Snapshot } from '../../../crds/src/index.js';
import { ADAPTERS } from '../../../sidecar/providers/index.js';
import { ConfigCompiler } from '../../../sidecar/router/runtime.js';
import type { Transport } from '../../../sidecar/transport.js';

const http: Transport = { send: async () => Promise.reject(new Error('not sent in these tests')), close: async () => {} };

/** A validated snapshot (schema defaults applied) from route documents. */
function snapshot(version: string, routes: Array<Record<string, unknown>>): Snapshot {
  return SnapshotSchema.parse({ version, routes: routes.map((r) => ({ namespace: 'team-a', ...r })) });
}

const simpleRoute = (over: Record<string, unknown> = {}, spec: Record<string, unknown> = {}) => ({
  name: 'bot',
  spec: { model: 'support-bot', targets: [{ name: 'sim', provider: 'simulate', model: 'sim-1' }], ...spec },
  ...over,
});

describe('ConfigCompiler', () => {
  it('compiles a route with the schema defaults', () => {
    const cfg = new ConfigCompiler(http).compile(snapshot('v1', [simpleRoute()]));
    expect(cfg.version).toBe('v1');
    expect([...cfg.byModel.keys()]).toEqual(['support-bot']);
    const r = cfg.byModel.get('support-bot')!;
    expect(r).toMatchObject({
      id: 'team-a/bot',
      name: 'bot',
      namespace: 'team-a',
      strategy: 'fallback',
      retry: { attempts: 2, initialBackoffMs: 100, maxBackoffMs: 2000, retryOn: ['429', '5xx', 'timeout', 'connect'] },
      limits: undefined,
      cache: undefined,
      requirePricing: false,
      recordContent: false,
    });
    expect(r.targets).toHaveLength(1);
    const t = r.targets[0]!;
    expect(t).toMatchObject({
      name: 'sim',
      provider: 'simulate',
      model: 'sim-1',
      baseURL: 'simulate://local',
      apiKey: undefined,
      unavailableReason: undefined,
      timeoutMs: 60_000,
      weight: 1,
      pricing: undefined,
    });
    expect(t.settings).toEqual({ region: undefined, project: undefined, apiVersion: undefined, credentialParts: undefined });
    expect(t.adapter).toBe(ADAPTERS.simulate);
    expect(t.transport).not.toBe(http); // simulate targets get their own in-process transport
    expect(typeof t.transport.send).toBe('function');
    expect(t.health.latencyMs).toBeUndefined();
    expect(t.health.breaker).toMatchObject({ threshold: 5, cooldownMs: 30_000, state: 'closed' });
    expect(cfg.snapshot.version).toBe('v1');
  });

  it('takes every field the route and its targets set', () => {
    const cfg = new ConfigCompiler(http).compile(
      snapshot('v2', [
        {
          name: 'chat',
          credentials: { primary: 'sk-primary' },
          unresolved: { backup: 'Secret team-a/keys has no key "backup"' },
          credentialParts: { primary: { accessKeyId: 'AKIA' } },
          spec: {
            model: ['gpt', 'gpt-latest'],
            strategy: 'weighted',
            targets: [
              { name: 'primary', provider: 'openai', model: 'gpt-4o', weight: 3, timeoutMs: 5000, baseURL: 'https://proxy.example/v1//', pricing: { input: '1', output: '2' } },
              { name: 'backup', provider: 'openai-compatible', model: 'llama', weight: 0, baseURL: 'http://vllm.local:8000/v1/' },
              { provider: 'azure', model: 'gpt-4o', weight: 1, baseURL: 'https://r.openai.azure.com', apiVersion: '2024-10-21' },
            ],
            retry: { attempts: 4, initialBackoffMs: 5, maxBackoffMs: 50, retryOn: ['429'], totalTimeoutMs: 9000 },
            circuitBreaker: { consecutiveFailures: 2, cooldownMs: 700 },
            limits: { maxOutputTokens: 100 },
            cache: { ttlSeconds: 60 },
            tracing: { recordContent: true },
            requirePricing: true,
          },
        },
      ]),
    );
    expect([...cfg.byModel.keys()]).toEqual(['gpt', 'gpt-latest']);
    const r = cfg.byModel.get('gpt')!;
    expect(cfg.byModel.get('gpt-latest')).toBe(r);
    expect(r).toMatchObject({
      id: 'team-a/chat',
      strategy: 'weighted',
      retry: { attempts: 4, initialBackoffMs: 5, maxBackoffMs: 50, retryOn: ['429'], totalTimeoutMs: 9000 },
      limits: { maxOutputTokens: 100 },
      cache: { ttlSeconds: 60 },
      requirePricing: true,
      recordContent: true,
    });
    const [primary, backup, azure] = r.targets;
    expect(primary).toMatchObject({ name: 'primary', baseURL: 'https://proxy.example/v1', apiKey: 'sk-primary', unavailableReason: undefined, timeoutMs: 5000, weight: 3 });
    expect(primary!.pricing).toMatchObject({ input: '1', output: '2' });
    expect(primary!.settings.credentialParts).toEqual({ accessKeyId: 'AKIA' });
    expect(primary!.adapter).toBe(ADAPTERS.openai);
    expect(primary!.transport).toBe(http);
    expect(backup).toMatchObject({
      name: 'backup',
      provider: 'openai-compatible',
      baseURL: 'http://vllm.local:8000/v1',
      apiKey: undefined,
      unavailableReason: 'credentials unavailable: Secret team-a/keys has no key "backup"',
      weight: 0,
    });
    expect(azure).toMatchObject({ name: 'azure-2', baseURL: 'https://r.openai.azure.com', weight: 1 });
    expect(azure!.settings).toEqual({ region: undefined, project: undefined, apiVersion: '2024-10-21', credentialParts: undefined });
    for (const t of r.targets) expect(t.health.breaker).toMatchObject({ threshold: 2, cooldownMs: 700 });
    expect(new Set(r.targets.map((t) => t.health)).size).toBe(3); // one breaker per target
  });

  it('keeps the host when only a trailing slash is removed, and keeps inner slashes', () => {
    const cfg = new ConfigCompiler(http).compile(
      snapshot('v', [simpleRoute({}, { targets: [{ name: 'o', provider: 'openai', model: 'm', baseURL: 'https://a.example//x/y/' }] })]),
    );
    expect(cfg.byModel.get('support-bot')!.targets[0]!.baseURL).toBe('https://a.example//x/y');
  });

  it('refuses a target without a base URL where its provider has no default', () => {
    const raw = snapshot('v', [simpleRoute()]);
    raw.routes[0]!.spec.targets = [{ provider: 'openai-compatible', model: 'm' }]; // past the schema, which refuses it too
    expect(() => new ConfigCompiler(http).compile(raw)).toThrow('ModelRoute team-a/bot: spec.targets[0].baseURL is required for provider openai-compatible');
  });

  it('refuses a model name claimed by two routes, naming both', () => {
    const s = snapshot('v', [simpleRoute(), simpleRoute({ name: 'other', namespace: 'team-b' }, { model: ['x', 'support-bot'] })]);
    expect(() => new ConfigCompiler(http).compile(s)).toThrow('model "support-bot" is claimed by both ModelRoute team-a/bot and team-b/other');
  });

  it('compiles several routes side by side', () => {
    const cfg = new ConfigCompiler(http).compile(snapshot('v', [simpleRoute(), simpleRoute({ name: 'two' }, { model: 'second' })]));
    expect([...cfg.byModel.keys()]).toEqual(['support-bot', 'second']);
    expect(cfg.byModel.get('second')!.id).toBe('team-a/two');
  });

  it('keeps breaker and latency state of an unchanged target across reloads, with the new breaker settings', () => {
    const compiler = new ConfigCompiler(http);
    const first = compiler.compile(snapshot('v1', [simpleRoute()])).byModel.get('support-bot')!.targets[0]!;
    first.health.latencyMs = 123;
    first.health.breaker.onFailure(0);
    const second = compiler
      .compile(snapshot('v2', [simpleRoute({}, { circuitBreaker: { consecutiveFailures: 1, cooldownMs: 50 } })]))
      .byModel.get('support-bot')!.targets[0]!;
    expect(second.health).toBe(first.health);
    expect(second.health.latencyMs).toBe(123);
    expect(second.health.breaker).toMatchObject({ threshold: 1, cooldownMs: 50 });
  });

  it('a target that changes identity (model, provider, base URL, name or route) starts with fresh health', () => {
    const compiler = new ConfigCompiler(http);
    const health = () => compiler.compile(snapshot('v', [current])).byModel.get('support-bot')!.targets[0]!.health;
    let current = simpleRoute();
    const h0 = health();
    h0.latencyMs = 1;
    current = simpleRoute({}, { targets: [{ name: 'sim', provider: 'simulate', model: 'sim-2' }] });
    const h1 = health();
    expect(h1).not.toBe(h0);
    expect(h1.latencyMs).toBeUndefined();
    current = simpleRoute({}, { targets: [{ name: 'sim', provider: 'simulate', model: 'sim-2', baseURL: 'http://elsewhere.test' }] });
    expect(health()).not.toBe(h1);
    current = simpleRoute({ name: 'renamed' }, { targets: [{ name: 'sim', provider: 'simulate', model: 'sim-2', baseURL: 'http://elsewhere.test' }] });
    const h3 = health();
    current = simpleRoute({ name: 'renamed' }, { targets: [{ name: 'sim2', provider: 'simulate', model: 'sim-2', baseURL: 'http://elsewhere.test' }] });
    expect(health()).not.toBe(h3);
  });

  it('forgets the health of a target that left the config: it comes back fresh', () => {
    const compiler = new ConfigCompiler(http);
    const two = simpleRoute({}, { targets: [{ name: 'a', provider: 'simulate', model: 'm' }, { name: 'b', provider: 'simulate', model: 'm' }] });
    const one = simpleRoute({}, { targets: [{ name: 'a', provider: 'simulate', model: 'm' }] });
    const [a0, b0] = compiler.compile(snapshot('v1', [two])).byModel.get('support-bot')!.targets;
    b0!.health.latencyMs = 99;
    const [a1] = compiler.compile(snapshot('v2', [one])).byModel.get('support-bot')!.targets;
    expect(a1!.health).toBe(a0!.health); // the one that stayed keeps its state
    const [, b2] = compiler.compile(snapshot('v3', [two])).byModel.get('support-bot')!.targets;
    expect(b2!.health).not.toBe(b0!.health);
    expect(b2!.health.latencyMs).toBeUndefined();
  });

  it('health is kept per compiler instance', () => {
    const a = new ConfigCompiler(http).compile(snapshot('v', [simpleRoute()])).byModel.get('support-bot')!.targets[0]!;
    const b = new ConfigCompiler(http).compile(snapshot('v', [simpleRoute()])).byModel.get('support-bot')!.targets[0]!;
    expect(a.health).not.toBe(b.health);
  });
});
