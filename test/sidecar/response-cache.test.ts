import { describe, expect, it } from 'vitest';
import { CacheSchema } from '../../crds/src/modelroute.js';
import type { ChatRequest } from '../../sidecar/openai-schema.js';
import { ResponseCache, type CachedResponse } from '../../sidecar/response-cache.js';
import type { RuntimeRoute } from '../../sidecar/router/runtime.js';

function route(cache: Record<string, number> | undefined): RuntimeRoute {
  return { id: 'default/r', name: 'r', namespace: 'default', strategy: 'fallback', targets: [], retry: {} as RuntimeRoute['retry'], limits: undefined, requirePricing: false, recordContent: false, cache: cache && CacheSchema.parse(cache) };
}

const req = (content: string, extra: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'm', messages: [{ role: 'user', content }], ...extra }) as ChatRequest;
const answer = (text: string): CachedResponse => ({ body: Buffer.from(text), target: 't', provider: 'openai', responseModel: 'gpt' });

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('ResponseCache', () => {
  it('keys identical requests alike whatever their key order; anything else differs; streams and uncached routes have no key', () => {
    const c = new ResponseCache(Date.now);
    const r = route({ ttlSeconds: 60 });
    const a = c.keyOf(r, req('hi', { temperature: 0 }))!;
    expect(a).toMatch(/^[\w-]{43}$/);
    expect(c.keyOf(r, { temperature: 0, messages: [{ content: 'hi', role: 'user' }], model: 'm' } as ChatRequest)).toBe(a);
    expect(c.keyOf(r, req('hi', { temperature: 0.5 }))).not.toBe(a);
    expect(c.keyOf(r, req('hi!', { temperature: 0 }))).not.toBe(a);
    expect(c.keyOf(r, req('hi', { stream: true }))).toBeUndefined();
    expect(c.keyOf(route(undefined), req('hi'))).toBeUndefined();
  });

  it('serves a response until its TTL has passed', () => {
    const t = clock();
    const c = new ResponseCache(t.now);
    const r = route({ ttlSeconds: 10 });
    c.set(r, 'k', answer('{"a":1}'));
    t.advance(9_999);
    expect(c.get(r, 'k')?.body.toString()).toBe('{"a":1}');
    t.advance(1);
    expect(c.get(r, 'k')).toBeUndefined();
    expect(c.size(r)).toBe(0);
  });

  it('drops the least recently used first, by count and by bytes; never stores what alone exceeds the bytes', () => {
    const c = new ResponseCache(Date.now);
    const r = route({ ttlSeconds: 60, maxEntries: 2, maxBytes: 1024 });
    c.set(r, 'a', answer('a'));
    c.set(r, 'b', answer('b'));
    c.get(r, 'a'); // a is now the most recently used
    c.set(r, 'c', answer('c'));
    expect([c.get(r, 'a'), c.get(r, 'b'), c.get(r, 'c')].map((v) => v?.body.toString())).toEqual(['a', undefined, 'c']);

    const big = route({ ttlSeconds: 60, maxEntries: 10, maxBytes: 1024 });
    c.set(big, 'x', answer('x'.repeat(600)));
    c.set(big, 'y', answer('y'.repeat(600))); // 1,200 bytes > 1,024: x goes
    expect(c.get(big, 'x')).toBeUndefined();
    expect(c.get(big, 'y')).toBeDefined();
    c.set(big, 'z', answer('z'.repeat(2000)));
    expect(c.get(big, 'z')).toBeUndefined();
    expect(c.get(big, 'y')).toBeDefined();
  });

  it('a recompiled route (new configuration) starts empty', () => {
    const c = new ResponseCache(Date.now);
    const before = route({ ttlSeconds: 60 });
    c.set(before, 'k', answer('old'));
    const after = route({ ttlSeconds: 60 });
    expect(c.get(after, 'k')).toBeUndefined();
    expect(c.get(before, 'k')).toBeDefined();
  });
});
