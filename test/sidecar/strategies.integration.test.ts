import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/** Strategies, limits and estimated usage on the real sidecar process. */
let fast: FakeUpstream;
let slow: FakeUpstream;
let bare: FakeUpstream;
let sidecar: SidecarProcess;

async function chat(model: string, extra: Record<string, unknown> = {}) {
  return postChat(sidecar, { model, messages: [{ role: 'user', content: 'count my tokens please' }], ...extra });
}

beforeAll(async () => {
  fast = await startFakeUpstream(openaiResponder());
  slow = await startFakeUpstream(openaiResponder());
  // A provider that reports no usage at all (some OpenAI-compatible hosts).
  bare = await startFakeUpstream((req) => {
    const reply = openaiResponder({ usageInStream: 'never' })(req);
    if (reply.kind === 'json') {
      const { usage: _omit, ...rest } = reply.body as Record<string, unknown>;
      return { ...reply, body: rest };
    }
    return reply;
  });
  const t = (name: string, url: string, extra = '') => `{ name: ${name}, provider: openai-compatible, model: m-${name}, baseURL: ${url}/v1${extra} }`;
  sidecar = await startSidecar(
    `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: ab }
spec:
  model: ab
  strategy: weighted
  targets: [${t('a', fast.url, ', weight: 75')}, ${t('b', slow.url, ', weight: 25')}]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: cheap }
spec:
  model: cheap
  strategy: cheapest
  targets:
    - ${t('pricey', fast.url, ', pricing: { input: "5.00", output: "15.00" }')}
    - ${t('bargain', slow.url, ', pricing: { input: "0.10", output: "0.40" }')}
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: quick }
spec:
  model: quick
  strategy: lowestLatency
  targets: [${t('slow', slow.url)}, ${t('fast', fast.url)}]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: limited }
spec:
  model: limited
  limits: { maxInputTokens: 12 }
  targets: [${t('a', fast.url)}]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: nousage }
spec:
  model: nousage
  targets: [${t('bare', bare.url, ', pricing: { input: "1.00", output: "2.00" }')}]
`,
    { args: ['--seed', '42'] },
  );
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([fast?.close(), slow?.close(), bare?.close()]);
});

describe('strategies', () => {
  it('weighted splits traffic by weight (seeded: reproducible)', async () => {
    const picks: Record<string, number> = { a: 0, b: 0 };
    for (let i = 0; i < 200; i++) picks[(await chat('ab')).headers.get('x-paygo-target')!]!++;
    expect(picks.a! + picks.b!).toBe(200);
    expect(picks.a! / 200).toBeGreaterThan(0.65);
    expect(picks.a! / 200).toBeLessThan(0.85);
  });

  it('cheapest picks the lowest price', async () => {
    for (let i = 0; i < 3; i++) expect((await chat('cheap')).headers.get('x-paygo-target')).toBe('bargain');
  });

  it('lowestLatency measures each target, then prefers the faster one', async () => {
    slow.fault(...Array.from({ length: 50 }, () => ({ kind: 'delay' as const, ms: 120 })));
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) seen.push((await chat('quick')).headers.get('x-paygo-target')!);
    expect(new Set(seen.slice(0, 2))).toEqual(new Set(['slow', 'fast'])); // each measured once
    expect(seen.slice(2)).toEqual(['fast', 'fast', 'fast', 'fast']);
  });
});

describe('limits and estimates', () => {
  it('refuses a prompt over maxInputTokens with 400 before any upstream call', async () => {
    const before = fast.requests.length;
    const res = await chat('limited', { messages: [{ role: 'user', content: 'this prompt is certainly longer than twelve tokens once it is counted' }] });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('context_length_exceeded');
    expect(body.error.message).toMatch(/allows at most 12/);
    expect(fast.requests.length).toBe(before);
    expect((await chat('limited', { messages: [{ role: 'user', content: 'hi' }] })).status).toBe(200);
  });

  it('counts usage itself when the provider reports none, and says so', async () => {
    const res = await chat('nousage');
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-usage-estimated')).toBe('true');
    const body = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    expect(body.usage.prompt_tokens).toBeGreaterThan(0);
    expect(body.usage.completion_tokens).toBeGreaterThan(0);
    expect(res.headers.get('x-paygo-cost-usd')).toMatch(/^0\.0000\d{5}$/);
    const log = await sidecar.waitForLog((r) => r.msg === 'usage' && r.route === 'nousage' && r.stream === false);
    expect(log.estimated).toBe(true);
  });

  it('estimates a stream whose provider sends no usage', async () => {
    const res = await chat('nousage', { stream: true, stream_options: { include_usage: true } });
    const text = await res.text();
    const usageChunk = text.split('\n\n').filter((f) => f.includes('"usage"')).map((f) => JSON.parse(f.slice(6)))[0];
    expect(usageChunk.usage.completion_tokens).toBeGreaterThan(0);
    const log = await sidecar.waitForLog((r) => r.msg === 'usage' && r.route === 'nousage' && r.stream === true);
    expect(log).toMatchObject({ estimated: true, outcome: 'success', priced: true });
  });
});
