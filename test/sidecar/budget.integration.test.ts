import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { postChat, startSidecar, startSidecarOperatorAway, type SidecarProcess } from '../support/sidecar-process.js';

/** Standalone budgets on the real process: block, downgrade, alert, caps, persistence. */
let upstream: FakeUpstream;
let sidecar: SidecarProcess;

// Prices (USD per million tokens) chosen so each request costs a predictable amount.
const config = (url: string) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: premium }
spec:
  model: premium
  targets: [{ provider: openai-compatible, model: big, baseURL: ${url}/v1, pricing: { input: "1000.00", output: "1000.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: basic }
spec:
  model: basic
  targets: [{ provider: openai-compatible, model: small, baseURL: ${url}/v1, pricing: { input: "1.00", output: "1.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: hard }
spec:
  model: hard
  targets: [{ provider: openai-compatible, model: big, baseURL: ${url}/v1, pricing: { input: "1000.00", output: "1000.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: watched }
spec:
  model: watched
  targets: [{ provider: openai-compatible, model: big, baseURL: ${url}/v1, pricing: { input: "1000.00", output: "1000.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: hard-cap }
spec:
  scope: { routes: [hard] }
  period: daily
  limit: "0.20"
  action: block
  maxOutputTokensPerRequest: 20
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: premium-cap }
spec:
  scope: { models: [premium] }
  period: monthly
  limit: "0.10"
  action: downgrade
  downgradeTo: basic
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: watch-only }
spec:
  scope: { routes: [watched] }
  period: weekly
  timeZone: Europe/Berlin
  limit: "0.01"
  action: alert
`;

async function chat(model: string, content = 'one two three', extra: Record<string, unknown> = {}) {
  return postChat(sidecar, { model, messages: [{ role: 'user', content }], ...extra });
}

beforeAll(async () => {
  upstream = await startFakeUpstream(openaiResponder());
  sidecar = await startSidecar(config(upstream.url));
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

describe('standalone budgets', () => {
  it('block: serves until the worst case no longer fits, then 429 naming the budget with Retry-After', async () => {
    let served = 0;
    let spent = 0;
    let refused: Response | undefined;
    for (let i = 0; i < 50 && !refused; i++) {
      const res = await chat('hard');
      if (res.status === 200) {
        served++;
        spent += Number(res.headers.get('x-paygo-cost-usd'));
        // the budget's per-request cap was injected
        expect((upstream.requests.at(-1)!.body as { max_tokens: number }).max_tokens).toBe(20);
      } else refused = res;
    }
    expect(refused?.status).toBe(429);
    const body = (await refused!.json()) as { error: { code: string; type: string; message: string } };
    expect(body.error).toMatchObject({ code: 'budget_exceeded', type: 'insufficient_quota' });
    expect(body.error.message).toContain('default/hard-cap');
    const retryAfter = Number(refused!.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(86_400);
    expect(spent).toBeLessThanOrEqual(0.2);
    expect(served).toBeGreaterThan(3);
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics).toMatch(/paygo_budget_refused_requests_total\{namespace="default",budget="hard-cap",action="block"\} 1/);
    expect(metrics).toMatch(/paygo_budget_limit_usd\{namespace="default",budget="hard-cap",period="daily"\} 0\.2/);
    const spentMetric = Number(/paygo_budget_spent_usd\{namespace="default",budget="hard-cap",period="daily"\} (\S+)/.exec(metrics)![1]);
    expect(spentMetric).toBeCloseTo(spent, 9);
  });

  it('downgrade: once the budget is used up, requests are served by the cheaper route, marked', async () => {
    // Without max_tokens the worst case would use the 4096-token default cap and never fit.
    const first = await chat('premium', 'one two three', { max_tokens: 10 });
    expect(first.status).toBe(200);
    expect(first.headers.get('x-paygo-downgraded')).toBeNull();
    let downgraded: Response | undefined;
    for (let i = 0; i < 30 && !downgraded; i++) {
      const res = await chat('premium', 'one two three', { max_tokens: 10 });
      expect(res.status).toBe(200);
      if (res.headers.get('x-paygo-downgraded')) downgraded = res;
    }
    expect(downgraded!.headers.get('x-paygo-downgraded')).toBe('premium');
    expect(downgraded!.headers.get('x-paygo-route')).toBe('basic');
    expect((upstream.requests.at(-1)!.body as { model: string }).model).toBe('small');
    // streams too
    const stream = await chat('premium', 'x', { stream: true });
    expect(stream.headers.get('x-paygo-downgraded')).toBe('premium');
    await stream.text();
  });

  it('alert: keeps serving past the limit and counts it', async () => {
    for (let i = 0; i < 5; i++) expect((await chat('watched')).status).toBe(200);
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics).toMatch(/paygo_budget_over_limit_requests_total\{namespace="default",budget="watch-only"\} [1-9]/);
  });

  it('routes no budget covers are not limited', async () => {
    for (let i = 0; i < 3; i++) expect((await chat('basic')).status).toBe(200);
  });

  it('keeps spend across a restart in the same period', async () => {
    const stateDir = `${sidecar.configPath}.state`;
    const a = await startSidecar(config(upstream.url), { args: ['--state-dir', stateDir] });
    let n = 0;
    while ((await fetch(`${a.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'hard', messages: [{ role: 'user', content: 'x' }] }) })).status === 200) n++;
    await a.stop();
    const b = await startSidecar(config(upstream.url), { args: ['--state-dir', stateDir] });
    try {
      const res = await fetch(`${b.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'hard', messages: [{ role: 'user', content: 'x' }] }) });
      expect(n).toBeGreaterThan(0);
      expect(res.status).toBe(429);
    } finally {
      await b.stop();
    }
  });
});

describe('operator mode, operator out of reach', () => {
  it('a hard budget fails closed with 503 budget_unavailable and a short Retry-After, not "exhausted until next month"', async () => {
    const sc = await startSidecarOperatorAway(`
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: sim, namespace: team }
spec:
  model: sim
  targets: [{ provider: simulate, model: sim, pricing: { input: "1.00", output: "1.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: monthly, namespace: team }
spec: { limit: "100.00", period: monthly, action: block }
`);
    try {
      const res = await postChat(sc, { model: 'sim', messages: [{ role: 'user', content: 'hi' }] });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('5');
      const body = (await res.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('budget_unavailable');
      expect(body.error.message).toContain('team/monthly');
    } finally {
      await sc.stop();
    }
  });
});
