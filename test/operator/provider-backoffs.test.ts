import { describe, expect, it } from 'vitest';
import { MAX_BACKOFFS, MAX_BACKOFFS_PER_NAMESPACE, MAX_FLEET_BACKOFF_MS, ProviderBackoffBook } from '../../operator/provider-backoffs.js';

const K = 'a/secret/openai/api-key/openai/gpt-4o-mini';

function book() {
  const clock = { ms: 1_000_000 };
  return { clock, b: new ProviderBackoffBook(() => clock.ms) };
}

describe('ProviderBackoffBook', () => {
  it('keeps the latest until over every report, hands back the time left, and forgets what ended', () => {
    const { b, clock } = book();
    b.report('a', { key: K, ms: 20_000, resource: 'requests' });
    clock.ms += 1_000;
    b.report('a', { key: K, ms: 5_000, resource: 'tokens' }); // ends sooner: changes nothing
    expect(b.forNamespace('a')).toEqual([{ key: K, ms: 19_000, resource: 'requests' }]);
    b.report('a', { key: K, ms: 30_000 });
    expect(b.forNamespace('a')).toEqual([{ key: K, ms: 30_000, resource: 'any' }]);
    clock.ms += 30_000;
    expect(b.forNamespace('a')).toEqual([]);
    expect(b.size).toBe(1);
    b.expire();
    expect(b.size).toBe(0);
  });

  it('namespaces are apart: a namespace gets only its own', () => {
    const { b } = book();
    b.report('a', { key: K, ms: 10_000 });
    b.report('b', { key: 'b/secret/openai/api-key/openai/gpt-4o-mini', ms: 10_000 });
    expect(b.forNamespace('a').map((x) => x.key)).toEqual([K]);
    expect(b.forNamespace('b').map((x) => x.key)).toEqual(['b/secret/openai/api-key/openai/gpt-4o-mini']);
    expect(b.forNamespace('c')).toEqual([]);
  });

  it('clamps to 60 s; a report of 0 ms is nothing', () => {
    const { b } = book();
    expect(MAX_FLEET_BACKOFF_MS).toBe(60_000);
    b.report('a', { key: K, ms: 86_400_000 });
    b.report('a', { key: 'a/target/r/t', ms: 0 });
    expect(b.forNamespace('a')).toEqual([{ key: K, ms: 60_000, resource: 'any' }]);
  });

  it('bounded per namespace and in all: when full, a new one replaces the one ending soonest, if it ends later', () => {
    const { b } = book();
    for (let i = 0; i < MAX_BACKOFFS_PER_NAMESPACE; i++) b.report('a', { key: `a/target/r/t${i}`, ms: 10_000 + i });
    b.report('a', { key: 'a/target/r/short', ms: 5_000 });
    expect(b.forNamespace('a')).toHaveLength(MAX_BACKOFFS_PER_NAMESPACE);
    expect(b.forNamespace('a').some((x) => x.key === 'a/target/r/short')).toBe(false);
    b.report('a', { key: 'a/target/r/long', ms: 50_000 });
    expect(b.forNamespace('a')).toHaveLength(MAX_BACKOFFS_PER_NAMESPACE);
    expect(b.forNamespace('a').some((x) => x.key === 'a/target/r/long')).toBe(true);
    expect(b.forNamespace('a').some((x) => x.key === 'a/target/r/t0')).toBe(false);
    const namespaces = Math.ceil(MAX_BACKOFFS / MAX_BACKOFFS_PER_NAMESPACE) + 1;
    for (let n = 0; n < namespaces; n++) for (let i = 0; i < MAX_BACKOFFS_PER_NAMESPACE; i++) b.report(`ns${n}`, { key: `ns${n}/target/r/t${i}`, ms: 20_000 });
    expect(b.size).toBe(MAX_BACKOFFS);
  });
});
