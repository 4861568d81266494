import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { postChat, singleTargetRoute, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/** Standalone rate limits on the real process: consumer RateLimits, provider quotas, and the openai SDK's retry. */
let upstream: FakeUpstream;
let sidecar: SidecarProcess;

const target = (url: string, name: string, extra = '') =>
  `{ name: ${name}, provider: openai, model: model-${name}, baseURL: ${url}/v1, credentials: { secretRef: { name: openai, key: api-key } }${extra} }`;
const route = (name: string, targets: string[]) => `${singleTargetRoute(name, targets.join(', '))}---`;

const config = (url: string) => `
apiVersion: v1
kind: Secret
metadata: { name: openai }
stringData: { api-key: sk-test, key-2: sk-test-2 }
---
${route('daily', [target(url, 'a')])}
${route('tokens', [target(url, 'a')])}
${route('quota', [target(url, 'a', ', quota: { requestsPerMinute: 2 }'), target(url, 'b', ', quota: { requestsPerMinute: 1 }')])}
${route('waits', [target(url, 'a', ', quota: { outputTokensPerMinute: 6000 }')])}
${route('shared-1', [`{ name: s, provider: openai, model: model-s, baseURL: ${url}/v1, credentials: { secretRef: { name: openai, key: key-2 } } }`])}
${route('shared-2', [`{ name: s, provider: openai, model: model-s, baseURL: ${url}/v1, credentials: { secretRef: { name: openai, key: key-2 } } }`])}
${route('sdk', [target(url, 'a')])}
${route('guarded', [target(url, 'a')])}
${route('failing', [target(url, 'a')])}
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: guarded-budget }
spec:
  scope: { routes: [guarded] }
  period: daily
  limit: "1.00"
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: per-route }
spec:
  scope: { routes: [guarded, failing] }
  limits: { requestsPerMinute: 50 }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: daily-requests }
spec:
  scope: { routes: [daily] }
  limits: { requestsPerDay: 10, tokensPerMinute: 1000000 }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: token-budget }
spec:
  scope: { models: [tokens] }
  limits: { tokensPerMinute: 5000 }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: sdk-tokens }
spec:
  scope: { routes: [sdk] }
  limits: { tokensPerMinute: 60000 }
---
apiVersion: paygo.dev/v1alpha1
kind: ProviderQuota
metadata: { name: key-2 }
spec:
  credentials: { secretRef: { name: openai, key: key-2 } }
  provider: openai
  limits: { requestsPerMinute: 1 }
`;

/** The fake provider, slow for requests that ask for many tokens (they hold their reservation meanwhile). */
function responder() {
  const base = openaiResponder();
  return (req: RecordedRequest) => {
    const reply = base(req);
    const body = req.body as { max_tokens?: number; max_completion_tokens?: number };
    const max = body.max_completion_tokens ?? body.max_tokens ?? 0;
    if (max >= 5_000 && reply.kind === 'json') return { ...reply, delayMs: 1_500 };
    return reply;
  };
}

const ask = (model: string, extra: Record<string, unknown> = {}) => postChat(sidecar, { model, messages: [{ role: 'user', content: 'hi' }], ...extra });

async function metric(prefix: string): Promise<number> {
  const text = await (await fetch(sidecar.metricsUrl)).text();
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

/** The sum of a metric's series whose labels contain `labels`. */
async function metricSum(prefix: string, labels: string): Promise<number> {
  const text = await (await fetch(sidecar.metricsUrl)).text();
  return text
    .split('\n')
    .filter((l) => l.startsWith(prefix) && l.includes(labels))
    .reduce((n, l) => n + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
}

beforeAll(async () => {
  upstream = await startFakeUpstream(responder());
  sidecar = await startSidecar(config(upstream.url));
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

describe('consumer rate limits (RateLimit)', () => {
  it('40 concurrent clients against 10 requests per day: exactly 10 served, the rest 429 naming the limit', async () => {
    const before = upstream.requests.length;
    const results = await Promise.all(Array.from({ length: 40 }, () => ask('daily')));
    const ok = results.filter((r) => r.status === 200);
    const refused = results.filter((r) => r.status === 429);
    expect(ok).toHaveLength(10);
    expect(refused).toHaveLength(30);
    expect(upstream.requests.length - before).toBe(10);
    // Each success says how many are left: every value from 9 down to 0 once.
    expect(ok.map((r) => Number(r.headers.get('x-ratelimit-remaining-requests'))).sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    for (const r of ok) {
      expect(r.headers.get('x-ratelimit-limit-requests')).toBe('10');
      expect(r.headers.get('x-ratelimit-limit-tokens')).toBe('1000000');
      expect(r.headers.get('x-ratelimit-reset-requests')).toMatch(/^(\d+h)?(\d+m)?[\d.]+s$|^\d+ms$/);
    }
    const r = refused[0]!;
    const body = (await r.json()) as { error: { message: string; type: string; param: null; code: string } };
    expect(body.error.code).toBe('rate_limit_exceeded');
    expect(body.error.type).toBe('requests');
    expect(body.error.param).toBeNull();
    expect(body.error.message).toMatch(/^Rate limit reached: RateLimit default\/daily-requests, requests per day: limit 10, requested 1, remaining 0; retry in \d+ s\.$/);
    const retryAfter = Number(r.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(8_000); // one request refills in 8640 s
    expect(retryAfter).toBeLessThanOrEqual(8_640);
    expect(r.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(await metric('paygo_ratelimit_limited_requests_total{kind="consumer",limit="default/daily-requests",resource="requests",reason="limited"}')).toBe(30);
    expect(await metric('paygo_ratelimit_remaining{kind="consumer",limit="default/daily-requests",resource="requests",window="day"}')).toBe(0);
  });

  it('a refused request is neither sent, metered nor budgeted; on /v1/messages it is an Anthropic error', async () => {
    const before = upstream.requests.length;
    const metered = () => metricSum('paygo_requests_total{', 'route="daily"');
    const meteredBefore = await metered();
    const res = await fetch(`${sidecar.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'daily', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(res.headers.get('x-ratelimit-limit-requests')).toBe('10');
    const body = (await res.json()) as { type: string; error: { type: string; message: string } };
    expect(body.type).toBe('error');
    expect(body.error.type).toBe('rate_limit_error');
    expect(body.error.message).toContain('RateLimit default/daily-requests, requests per day');
    expect(upstream.requests.length).toBe(before);
    expect(await metered()).toBe(meteredBefore);
  });

  it('tokens: reserves prompt + max_tokens, gives back what the answer did not use, refuses what can never fit', async () => {
    // 5000 tokens per minute, each request reserves ~1010 and uses ~10: twenty in a row all fit.
    for (let i = 0; i < 20; i++) {
      const res = await ask('tokens', { max_tokens: 1_000 });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('5000');
      expect(res.headers.get('x-ratelimit-limit-requests')).toBeNull();
    }
    const tooBig = await ask('tokens', { max_tokens: 6_000 });
    expect(tooBig.status).toBe(429);
    expect(tooBig.headers.get('x-should-retry')).toBe('false');
    expect(tooBig.headers.get('retry-after')).toBeNull();
    expect(((await tooBig.json()) as { error: { message: string } }).error.message).toMatch(
      /^Rate limit reached: RateLimit default\/token-budget, tokens per minute: limit 5000, requested 60\d\d, remaining \d+; the request alone exceeds the limit\.$/,
    );
  });

  it('a request a budget then refuses gives its share back, and its error carries the headers', async () => {
    // The target has no known price, so the budget cannot bound the cost: 503 budget_unpriced.
    for (let i = 0; i < 2; i++) {
      const res = await ask('guarded');
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('budget_unpriced');
      expect(res.headers.get('x-ratelimit-limit-requests')).toBe('50');
      expect(res.headers.get('x-ratelimit-remaining-requests')).toBe('49'); // the first one's request came back
    }
  });

  it('a request sent upstream that failed keeps its request counted; its error carries the headers', async () => {
    upstream.fault({ kind: 'status', status: 500 });
    const failed = await ask('failing');
    expect(failed.status).toBe(502);
    expect(failed.headers.get('x-ratelimit-remaining-requests')).toBe('49'); // the budget-refused ones above gave theirs back
    const next = await ask('failing');
    expect(next.status).toBe(200);
    expect(next.headers.get('x-ratelimit-remaining-requests')).toBe('48'); // the failed one kept its request
  });

  it('a stream carries the headers too', async () => {
    const res = await ask('tokens', { max_tokens: 100, stream: true });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    expect(res.headers.get('x-ratelimit-limit-tokens')).toBe('5000');
    expect(Number(res.headers.get('x-ratelimit-remaining-tokens'))).toBeLessThan(5000);
    expect(await res.text()).toContain('[DONE]');
  });
});

describe('provider quotas', () => {
  it('fails over to the second target when the first is out, then 429 with Retry-After when both are', async () => {
    const sentTo = async () => {
      const res = await ask('quota');
      return res.status === 200 ? res.headers.get('x-paygo-target') : `${res.status} ${res.headers.get('retry-after')} ${((await res.json()) as { error: { code: string; message: string } }).error.message}`;
    };
    expect(await sentTo()).toBe('a');
    expect(await sentTo()).toBe('a');
    expect(await sentTo()).toBe('b');
    // a refills one request per 30 s, b one per 60 s: too long to wait (2 s at most).
    expect(await sentTo()).toMatch(
      /^429 (29|30) Provider rate limit reached: no target of route "quota" has room; the soonest is the quota of target default\/quota\/a, requests per minute: limit 2, requested 1, remaining 0; retry in (29|30) s\.$/,
    );
    expect(await metric('paygo_ratelimit_limited_requests_total{kind="provider",limit="default/quota/a",resource="requests",reason="failed_over"}')).toBe(2);
    expect(await metric('paygo_ratelimit_limited_requests_total{kind="provider",limit="default/quota/a",resource="requests",reason="limited"}')).toBe(1);
  });

  it('a ProviderQuota is shared by every target using its key, across routes', async () => {
    expect((await ask('shared-1')).status).toBe(200);
    const res = await ask('shared-2');
    expect(res.status).toBe(429);
    expect(((await res.json()) as { error: { message: string } }).error.message).toContain('the soonest is ProviderQuota default/key-2, requests per minute: limit 1');
  });

  it('waits (briefly) for room instead of refusing', async () => {
    // The first request holds all 6000 output tokens for 1.5 s; the second needs 150, which
    // refill in 1.5 s (100 per second): it waits (at most 2 s), then is served.
    const first = ask('waits', { max_tokens: 6_000 });
    await new Promise((r) => setTimeout(r, 100));
    const second = await ask('waits', { max_tokens: 150 });
    expect(second.status).toBe(200);
    expect((await first).status).toBe(200);
    expect(await metric('paygo_ratelimit_limited_requests_total{kind="provider",limit="default/waits/a",resource="output_tokens",reason="waited"}')).toBe(1);
  });
});

describe('the openai SDK', () => {
  it('retries a 429 after the Retry-After the sidecar sends, and gets through', async () => {
    // Another request of the app holds nearly all 60000 tokens per minute for 1.5 s.
    const hog = ask('sdk', { max_tokens: 59_900 });
    await new Promise((r) => setTimeout(r, 100));
    const statuses: number[] = [];
    const client = new OpenAI({
      baseURL: `${sidecar.url}/v1`,
      apiKey: 'unused',
      maxRetries: 4,
      fetch: async (url, init) => {
        const res = await fetch(url, init);
        statuses.push(res.status);
        return res;
      },
    });
    const { data, response } = await client.chat.completions.create({ model: 'sdk', messages: [{ role: 'user', content: 'hello there' }], max_tokens: 1_000 }).withResponse();
    expect(data.choices[0]!.message.content).toBe('echo: hello there');
    expect(statuses[0]).toBe(429);
    expect(statuses.at(-1)).toBe(200);
    expect(response.headers.get('x-ratelimit-limit-tokens')).toBe('60000');
    expect((await hog).status).toBe(200);
  });
});
