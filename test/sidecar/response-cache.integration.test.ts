import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/** spec.cache on the real process: hits skip the upstream and cost nothing; streams bypass it. */
let upstream: FakeUpstream;
let sidecar: SidecarProcess;

const config = (url: string) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: faq }
spec:
  model: faq
  targets: [{ name: main, provider: openai-compatible, model: small, baseURL: ${url}/v1, pricing: { input: "1.00", output: "2.00" } }]
  cache: { ttlSeconds: 2 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: paid }
spec:
  model: paid
  targets: [{ provider: openai-compatible, model: big, baseURL: ${url}/v1, pricing: { input: "1.00", output: "1.00" } }]
  cache: { ttlSeconds: 600 }
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: tiny }
spec:
  scope: { routes: [paid] }
  period: daily
  limit: "0.0003"
  action: block
`;

const chat = (body: Record<string, unknown>) => postChat(sidecar, body);
const ask = (content: string, extra: Record<string, unknown> = {}, model = 'faq') => chat({ model, messages: [{ role: 'user', content }], max_tokens: 5, ...extra });

beforeAll(async () => {
  upstream = await startFakeUpstream(openaiResponder());
  sidecar = await startSidecar(config(upstream.url));
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

describe('response cache (spec.cache)', () => {
  it('answers an identical request from memory: no upstream call, same body but usage.cost 0, marked hit', async () => {
    const first = await ask('what are your opening hours');
    expect(first.status).toBe(200);
    expect(first.headers.get('x-paygo-cache')).toBe('miss');
    const firstBody = await first.text();
    const calls = upstream.requests.length;

    // The same request with its keys in another order is the same request.
    const again = await chat({ max_tokens: 5, messages: [{ content: 'what are your opening hours', role: 'user' }], model: 'faq' });
    expect(again.status).toBe(200);
    expect(again.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(again.headers.get('x-paygo-cache')).toBe('hit');
    expect(again.headers.get('x-paygo-cost-usd')).toBe('0.000000000');
    expect(again.headers.get('x-paygo-target')).toBe('main');
    const firstAnswer = JSON.parse(firstBody) as { usage: { cost: number } };
    expect(firstAnswer.usage.cost).toBe(Number(first.headers.get('x-paygo-cost-usd')));
    expect(await again.json()).toEqual({ ...firstAnswer, usage: { ...firstAnswer.usage, cost: 0 } });
    expect(upstream.requests.length).toBe(calls);

    const other = await ask('what are your opening hours', { temperature: 0.2 });
    expect(other.headers.get('x-paygo-cache')).toBe('miss');
    expect(upstream.requests.length).toBe(calls + 1);

    await sidecar.waitForLog((l) => l.msg === 'usage' && l.cache === 'hit');
    const hit = sidecar.usage().find((l) => l.cache === 'hit')!;
    expect(hit).toMatchObject({ outcome: 'success', costUsd: '0.000000000', priced: true, route: 'faq' });
    expect(hit.target).toBeUndefined();
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics).toMatch(/paygo_cache_requests_total\{namespace="default",route="faq",result="hit"\} 1/);
    expect(metrics).toMatch(/paygo_cache_requests_total\{namespace="default",route="faq",result="miss"\} 2/);
  });

  it('streams are neither served from nor stored in the cache', async () => {
    const calls = upstream.requests.length;
    for (let i = 0; i < 2; i++) {
      const res = await ask('what are your opening hours', { stream: true });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-paygo-cache')).toBeNull();
      await res.text();
    }
    expect(upstream.requests.length).toBe(calls + 2);
  });

  it('a stored answer expires after ttlSeconds', async () => {
    const first = await ask('expiring question');
    expect(first.headers.get('x-paygo-cache')).toBe('miss');
    expect((await ask('expiring question')).headers.get('x-paygo-cache')).toBe('hit');
    // ttlSeconds is 2: poll until the entry is gone (bounded), asking no faster than every 100 ms.
    let state: string | null = 'hit';
    for (let i = 0; i < 100 && state === 'hit'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const res = await ask('expiring question');
      state = res.headers.get('x-paygo-cache');
      await res.arrayBuffer();
    }
    expect(state).toBe('miss');
  });

  it('a hit needs no budget: served after the budget refuses new upstream calls', async () => {
    const cached = await ask('cached before the budget ran out', {}, 'paid');
    expect(cached.status).toBe(200);
    let refused = false;
    for (let i = 0; i < 50 && !refused; i++) refused = (await ask(`fresh question ${i}`, {}, 'paid')).status === 429;
    expect(refused).toBe(true);
    const hit = await ask('cached before the budget ran out', {}, 'paid');
    expect(hit.status).toBe(200);
    expect(hit.headers.get('x-paygo-cache')).toBe('hit');
  });
});
