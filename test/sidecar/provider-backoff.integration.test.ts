import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { anthropicRateLimitHeaders, anthropicResponderWith, type AnthropicRateLimit } from '../support/fake-anthropic.js';
import { openaiRateLimited, openaiResponder, type OpenAIRateLimit } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream, type Responder } from '../support/fake-upstream.js';
import { FakeKube, ROUTES, SECRETS } from '../support/fake-kube.js';
import { fleetPod, startFleetSidecar, startInProcessOperator } from '../support/fleet.js';
import { secret } from '../support/operator-fixtures.js';
import { postChat, singleTargetRoute, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * What providers say of their rate limits holds the credential back (README "Rate limits",
 * "Provider backoffs"): on the real sidecar process, in front of fakes that send OpenAI's and
 * Anthropic's rate-limit headers as those providers document them; and in operator mode across
 * two sidecar processes sharing one key, through the real operator (in process, over the fake
 * API server).
 */
const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c().catch(() => {});
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ask = (model: string, stream = false) => ({ model, stream, messages: [{ role: 'user' as const, content: 'hi' }], max_tokens: 5 });

async function upstream(responder: Responder): Promise<{ fake: FakeUpstream; arrivals: number[] }> {
  const arrivals: number[] = [];
  const fake = await startFakeUpstream((req) => {
    arrivals.push(Date.now());
    return responder(req);
  });
  cleanup.push(() => fake.close());
  return { fake, arrivals };
}

async function metrics(sc: SidecarProcess): Promise<string> {
  return (await fetch(sc.metricsUrl)).text();
}

async function errorOf(res: Response): Promise<{ code: string; message: string; type: string }> {
  return ((await res.json()) as { error: { code: string; message: string; type: string } }).error;
}

const OPENAI_TARGET = (url: string) => `{ name: openai, provider: openai, model: gpt-4o-mini, baseURL: ${url}/v1, credentials: { secretRef: { name: openai, key: api-key } } }`;
/** Routes "gpt" (the OpenAI target alone) and "gpt-ha" (the same key and model, then a simulate backup): two routes sharing one key. */
const routes = (url: string) => `${singleTargetRoute('gpt', OPENAI_TARGET(url))}---${singleTargetRoute('gpt-ha', `${OPENAI_TARGET(url)}, { name: backup, provider: simulate, model: sim }`)}`;

describe('provider backoffs (standalone)', () => {
  it('OpenAI says nothing remains (in a stream’s headers): the key is held until the reset — skipped, waited for or refused, never sent to', async () => {
    let limit: OpenAIRateLimit = { requests: { limit: 3, remaining: 2, resetMs: 20_000 }, tokens: { limit: 10_000, remaining: 9_000, resetMs: 600 } };
    const { fake, arrivals } = await upstream(openaiResponder({ rateLimit: () => limit }));
    const sc = await startSidecar(`
apiVersion: v1
kind: Secret
metadata: { name: openai }
stringData: { api-key: sk-test }
---
${routes(fake.url)}`);
    cleanup.push(() => sc.stop());
    const KEY = 'default/secret/openai/api-key/openai/gpt-4o-mini';

    expect((await postChat(sc, ask('gpt'))).status).toBe(200); // 2 of 3 left: nothing held
    // 20 a minute, none left: whole again in 52 s, one request back in 2.6 s.
    limit = { ...limit, requests: { limit: 20, remaining: 0, resetMs: 52_000 } };
    // The sidecar reads the headers between these two times: it holds the key from then for 2.6 s.
    const resetAt = Date.now() + 2_600;
    const streamed = await postChat(sc, ask('gpt', true));
    const resetBy = Date.now() + 2_600;
    expect(streamed.status).toBe(200);
    await streamed.text();
    expect(fake.requests).toHaveLength(2);

    // Route gpt has no other target: 429 with the time OpenAI named.
    const refused = await postChat(sc, ask('gpt'));
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(3);
    const err = await errorOf(refused);
    expect([err.code, err.type]).toEqual(['rate_limit_exceeded', 'requests']);
    expect(err.message).toContain('the soonest is target "openai" (openai), whose provider asked to back off (its requests limit is used up)');
    // Route gpt-ha shares the key: it fails over to its backup.
    const failedOver = await postChat(sc, ask('gpt-ha'));
    expect(failedOver.status).toBe(200);
    expect(failedOver.headers.get('x-paygo-target')).toBe('backup');
    expect(fake.requests).toHaveLength(2);

    // Within 2 s of the reset a request waits for it, then is sent.
    await sleep(Math.max(0, resetBy - Date.now() - 1_500));
    limit = { ...limit, requests: { limit: 3, remaining: 2, resetMs: 20_000 } };
    const waited = await postChat(sc, ask('gpt'));
    expect(waited.status).toBe(200);
    expect(waited.headers.get('x-paygo-target')).toBe('openai');
    expect(arrivals.at(-1)!).toBeGreaterThanOrEqual(resetAt);

    const text = await metrics(sc);
    for (const reason of ['limited', 'failed_over', 'waited']) {
      expect(text).toContain(`paygo_ratelimit_limited_requests_total{kind="provider_backoff",limit="${KEY}",resource="requests",reason="${reason}"} 1\n`);
    }
    expect(text).not.toContain('sk-test');
  }, 30_000);

  it('Anthropic: exhausted requests (RFC 3339 reset) hold the key; a 429 with retry-after too; another model on the key is apart', async () => {
    let limit: AnthropicRateLimit = {};
    const { fake } = await upstream(anthropicResponderWith({ rateLimit: () => limit }));
    const claude = (model: string) => `{ name: claude, provider: anthropic, model: ${model}, baseURL: ${fake.url}, credentials: { secretRef: { name: anthropic, key: api-key } } }`;
    const sc = await startSidecar(`
apiVersion: v1
kind: Secret
metadata: { name: anthropic }
stringData: { api-key: sk-ant-test }
---
${singleTargetRoute('sonnet', claude('claude-sonnet-4-5'))}---${singleTargetRoute('haiku', claude('claude-haiku-4-5'))}`);
    cleanup.push(() => sc.stop());
    // 4 a minute, none left: whole again in a minute, one request back in 15 s.
    limit = { requests: { limit: 4, remaining: 0, reset: new Date(Date.now() + 60_000) }, 'output-tokens': { limit: 8_000, remaining: 7_000, reset: new Date(Date.now() + 7_000) } };
    const first = await postChat(sc, ask('sonnet', true));
    expect(first.status).toBe(200);
    await first.text();
    const held = await postChat(sc, ask('sonnet'));
    expect(held.status).toBe(429);
    expect(Number(held.headers.get('retry-after'))).toBeGreaterThan(10);
    expect(Number(held.headers.get('retry-after'))).toBeLessThanOrEqual(15);
    expect((await errorOf(held)).type).toBe('requests');
    expect(fake.requests).toHaveLength(1);
    // Another model on the same key is limited apart (Anthropic limits each model): not held.
    limit = {};
    fake.fault({ kind: 'status', status: 429, body: '{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}', headers: { 'retry-after': '15', ...anthropicRateLimitHeaders({ requests: { limit: 50, remaining: 0, reset: new Date(Date.now() + 15_000) } }) } });
    const throttled = await postChat(sc, ask('haiku'));
    expect([throttled.status, (await errorOf(throttled)).code, throttled.headers.get('retry-after')]).toEqual([429, 'upstream_rate_limited', '15']);
    const after = await postChat(sc, ask('haiku'));
    expect([after.status, (await errorOf(after)).code]).toEqual([429, 'rate_limit_exceeded']);
    expect(fake.requests).toHaveLength(2);
  }, 30_000);
});

describe('provider backoffs across the fleet (operator mode)', () => {
  it('one sidecar gets a 429 with a reset: the other does not send to that provider until then — fails over, refuses, then waits for the reset', async () => {
    const RESET_MS = 12_000; // 5 requests a minute: one back every 12 s
    const { fake, arrivals } = await upstream(openaiResponder());
    const kube = await new FakeKube().start();
    cleanup.push(() => kube.stop());
    const dir = mkdtempSync(join(tmpdir(), 'paygo-backoff-fleet-'));
    for (const i of [1, 2]) fleetPod(kube, dir, 'team', i);
    // Another namespace with the same Secret name: it must never hear of team's backoff.
    fleetPod(kube, dir, 'other', 3);
    for (const ns of ['team', 'other']) {
      kube.put(SECRETS, secret(ns, 'openai', `sk-${ns}`));
      for (const name of ['gpt', 'gpt-ha']) {
        kube.put(ROUTES, {
          apiVersion: 'paygo.dev/v1alpha1',
          kind: 'ModelRoute',
          metadata: { name, namespace: ns },
          spec: {
            model: name,
            retry: { attempts: 1 },
            targets: [
              { name: 'openai', provider: 'openai', model: 'gpt-4o-mini', baseURL: `${fake.url}/v1`, credentials: { secretRef: { name: 'openai', key: 'api-key' } } },
              ...(name === 'gpt-ha' ? [{ name: 'backup', provider: 'simulate', model: 'sim' }] : []),
            ],
          },
        });
      }
    }
    const { op, url } = await startInProcessOperator(kube, dir);
    cleanup.push(() => op.stop());
    const sidecars: SidecarProcess[] = [];
    for (const i of [1, 2, 3]) {
      const sc = await startFleetSidecar(url, dir, i);
      cleanup.push(() => sc.stop());
      sidecars.push(sc);
    }
    const [one, two, other] = sidecars as [SidecarProcess, SidecarProcess, SidecarProcess];
    const KEY = 'team/secret/openai/api-key/openai/gpt-4o-mini';
    const gauge = (text: string, key: string) => new RegExp(`paygo_ratelimit_provider_backoff_seconds\\{limit="${key.replace(/\//g, '\\/')}"\\} ([\\d.]+)`).exec(text)?.[1];

    // Sidecar one: OpenAI answers 429, no requests left for 12 s.
    fake.fault(openaiRateLimited('gpt-4o-mini', 60_000 / RESET_MS));
    const sentAt = Date.now();
    const first = await postChat(one, ask('gpt'));
    // Sidecar one read the answer between these two times: the key is held from then for 12 s.
    const resetAt = sentAt + RESET_MS;
    const resetBy = Date.now() + RESET_MS;
    expect([first.status, (await errorOf(first)).code]).toEqual([429, 'upstream_rate_limited']);
    expect(fake.requests).toHaveLength(1);

    // It reports at once; the operator hands it to sidecar two in its next sync (a heartbeat: within 5 s).
    for (let i = 0; i < 40 && op.rateLimits.backoffs.forNamespace('team').length === 0; i++) await sleep(50);
    expect(op.rateLimits.backoffs.forNamespace('team').map((b) => b.key)).toEqual([KEY]);
    let seen: string | undefined;
    for (let i = 0; i < 80 && seen === undefined; i++) {
      seen = gauge(await metrics(two), KEY);
      if (seen === undefined) await sleep(100);
    }
    expect(Number(seen)).toBeGreaterThan(3);
    expect(Number(seen)).toBeLessThanOrEqual(RESET_MS / 1000);

    // Sidecar two has never been told "429" by OpenAI itself, and sends nothing there.
    const refused = await postChat(two, ask('gpt'));
    expect(refused.status).toBe(429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(Math.ceil((resetBy - Date.now()) / 1000) + 1);
    expect((await errorOf(refused)).code).toBe('rate_limit_exceeded');
    const failedOver = await postChat(two, ask('gpt-ha'));
    expect(failedOver.status).toBe(200);
    expect(failedOver.headers.get('x-paygo-target')).toBe('backup');
    expect(fake.requests).toHaveLength(1);

    // The other namespace shares nothing with team: it sends, and holds no backoff.
    const elsewhere = await postChat(other, ask('gpt'));
    expect(elsewhere.status).toBe(200);
    expect(fake.requests).toHaveLength(2);
    expect(await metrics(other)).not.toContain('paygo_ratelimit_provider_backoff_seconds{');

    // Within 2 s of the reset, sidecar two waits for it and then sends. Its own end of the
    // backoff is a little later than sidecar one's (each hop adds its delay to a relative time,
    // hundreds of ms on a loaded machine), so the request goes when two's gauge says ≈ 1 s left.
    await sleep(Math.max(0, resetBy - Date.now() - 3_000));
    for (let i = 0; i < 100; i++) {
      const left = Number(gauge(await metrics(two), KEY) ?? 0);
      if (left <= 1.2) break;
      await sleep(Math.min(100, (left - 1.2) * 1000));
    }
    const waited = await postChat(two, ask('gpt'));
    expect(waited.status).toBe(200);
    expect(waited.headers.get('x-paygo-target')).toBe('openai');
    expect(fake.requests).toHaveLength(3);
    expect(arrivals.at(-1)!).toBeGreaterThanOrEqual(resetAt);

    const text = await metrics(two);
    for (const reason of ['limited', 'failed_over', 'waited']) {
      expect(text).toContain(`paygo_ratelimit_limited_requests_total{kind="provider_backoff",limit="${KEY}",resource="requests",reason="${reason}"} 1\n`);
    }
  }, 60_000);
});
