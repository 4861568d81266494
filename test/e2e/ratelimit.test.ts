import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startClusterEnv, until, type ClusterEnv } from '../support/cluster-env.js';
import { openaiRequestTokens, startRateLimitedProvider, type RateLimitedProvider } from '../support/fake-rate-limited-provider.js';
import { allowedRequests, driveFleet, fleetRemaining, percentileOf, shareProbe } from '../support/fleet-load.js';
import type { SidecarProcess } from '../support/sidecar-process.js';

/**
 * Fleet-wide rate limits on a real control plane: 4 sidecar processes in operator mode × 16
 * concurrent clients each, against a fake OpenAI provider that enforces its own requests- and
 * tokens-per-minute limits and answers 429 beyond them (test/support/fake-rate-limited-provider.ts).
 *
 * - A RateLimit: what the fleet admits, as it reaches the provider (the fake observing with the
 *   same limits), never exceeds the limit by more than one request per sidecar.
 * - A ProviderQuota equal to the provider's limits: the provider refuses at most one request per
 *   sidecar, and the fleet is served at least 90 % of what the limits allow over the run.
 *
 * The bound of one request per sidecar: a request takes its room at a sidecar before it is sent
 * and reaches the provider a little later. What the fleet takes never exceeds one bucket of the
 * limit (docs/architecture.md, section 5a); the provider's bucket is the same bucket, except that
 * while it is full it drops the refill that accrues as requests that already took room are on
 * their way (≈ 10 requests/s × their time in flight, tens of ms here).
 *
 * A started operator grants no share for 20 s (its quiet period, operator/ratelimits.ts; there
 * is no option to shorten it, so the file waits it out), and the shares it grants then come
 * empty (it cannot know what an earlier leader's fleet used). The ProviderQuota run therefore
 * starts once the sidecars' buckets are full, as they are after holding their shares unused for
 * a minute, so that "what the limits allow" is, as for the provider, a full bucket plus its
 * refill over the run: ≈ 2 min for the file, most of it that minute.
 */
const NS = 'rl';
const SIDECARS = 4;
const CLIENTS = 16;
const MAX_TOKENS = 20;
/** The provider's limits on the quota model, and the ProviderQuota's (requests bind: 600 × cost < TPM). */
const PQ = { requestsPerMinute: 600, tokensPerMinute: 40_000 };
/** The RateLimit's limits (tokens bind at this prompt size). */
const RL = { requestsPerMinute: 600, tokensPerMinute: 12_000 };
const PQ_RUN_MS = 30_000;
const RL_RUN_MS = 15_000;
const PQ_MODEL = 'gpt-4o-mini';
const RL_MODEL = 'gpt-4o';
const PROMPT = 'Summarise the quarterly report for the board in three short bullet points, please.';

let env: ClusterEnv;
let provider: RateLimitedProvider;
const sidecars: SidecarProcess[] = [];
/** Tokens one request takes of a tokens-per-minute limit (prompt + max_tokens), as the provider counts them. */
let cost: number;
let probe: ReturnType<typeof shareProbe>;

const chatBody = (model: string) => JSON.stringify({ model, messages: [{ role: 'user', content: PROMPT }], max_tokens: MAX_TOKENS });
const drive = (model: string, ms: number) => driveFleet(sidecars, { body: chatBody(model), ms, clients: CLIENTS });

beforeAll(async () => {
  provider = await startRateLimitedProvider({ delayMs: 20 });
  cost = openaiRequestTokens(JSON.parse(chatBody(PQ_MODEL)));
  provider.limit(PQ_MODEL, PQ);
  env = await startClusterEnv([NS]);
  // The ProviderQuota goes in at once: the sidecars hold its shares from the end of the quiet
  // period on, and their buckets fill while the RateLimit test runs.
  await env.apply(`
apiVersion: v1
kind: Secret
metadata: { name: openai, namespace: ${NS} }
stringData: { api-key: sk-fake-org, other-key: sk-fake-other }
---
apiVersion: paygo.dev/v1alpha1
kind: ProviderQuota
metadata: { name: openai-key, namespace: ${NS} }
spec:
  credentials: { secretRef: { name: openai, key: api-key } }
  limits: { requestsPerMinute: ${PQ.requestsPerMinute}, tokensPerMinute: ${PQ.tokensPerMinute} }
---
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: probe, namespace: ${NS} }
spec:
  scope: { podSelector: { matchLabels: { role: probe } } }
  limits: { requestsPerMinute: 1 }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: quota, namespace: ${NS} }
spec:
  model: quota
  targets: [{ provider: openai-compatible, model: ${PQ_MODEL}, baseURL: ${provider.url}/v1, credentials: { secretRef: { name: openai, key: api-key } } }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: team, namespace: ${NS} }
spec:
  model: team
  targets: [{ provider: openai-compatible, model: ${RL_MODEL}, baseURL: ${provider.url}/v1, credentials: { secretRef: { name: openai, key: other-key } } }]
`);
  probe = shareProbe(env, await env.podWithToken(NS, 'probe', { role: 'probe' }), `rl/${NS}/probe`);
  const tokens = await Promise.all(Array.from({ length: SIDECARS }, (_, i) => env.podWithToken(NS, `app-${i + 1}`, { app: 'shop' })));
  sidecars.push(...(await Promise.all(tokens.map((t) => env.sidecarFor(t)))));
  await until(
    'both routes on every sidecar',
    () => Promise.all(sidecars.map((s) => fetch(`${s.url}/v1/models`).then((r) => r.json() as Promise<{ data: Array<{ id: string }> }>).catch(() => ({ data: [] })))),
    (all) => all.every((m) => m.data.some((d) => d.id === 'quota') && m.data.some((d) => d.id === 'team')),
    30_000,
  );
  // Wait out the operator's quiet period (20 s from its start; nothing to speed it up).
  await until('the operator grants shares (quiet period over)', () => probe.share(), (share) => share > 0, 40_000);
}, 120_000);

afterAll(async () => {
  await env?.stop();
  await provider?.close();
  await probe?.close();
});

describe('fleet-wide rate limits: 4 sidecars × 16 clients against a provider that enforces its own limits', () => {
  it('a RateLimit: what reaches the provider never exceeds the limit by more than one request per sidecar', async () => {
    // Created after the quiet period, so the first sidecar to sync gets the whole limit, filled,
    // and then gives most of it up to the others while they all push: the hardest case.
    provider.limit(RL_MODEL, RL, { enforce: false });
    await env.apply(`
apiVersion: paygo.dev/v1alpha1
kind: RateLimit
metadata: { name: team, namespace: ${NS} }
spec:
  scope: { routes: [team] }
  limits: { requestsPerMinute: ${RL.requestsPerMinute}, tokensPerMinute: ${RL.tokensPerMinute} }
`);
    // On every sidecar, and the first one's share granted (the whole limit, filled: nobody used it yet).
    await until('the RateLimit on every sidecar, a share granted', () => fleetRemaining(sidecars, 'consumer', `${NS}/team`, 'tokens'), (v) => v !== undefined && v >= RL.tokensPerMinute - 1, 15_000);
    const r = await drive('team', RL_RUN_MS);
    const st = provider.stats(RL_MODEL);
    const bound = allowedRequests(RL, cost, r.ms);
    console.log(
      `[ratelimit] RateLimit ${RL.requestsPerMinute} RPM / ${RL.tokensPerMinute} TPM (${cost} tokens a request: ${Math.floor(RL.tokensPerMinute / cost)} a minute), ${SIDECARS}×${CLIENTS} clients for ${r.ms} ms: ` +
        `${st.served} reached the provider (the limit allows ${bound.toFixed(1)} from a full bucket), ${st.over} over the limit as the provider counts; ${r.ok} ok, refused ${JSON.stringify(r.refused)}`,
    );
    // Over every interval, as the provider would count (its bucket full from the RateLimit's creation on).
    expect(st.over).toBeLessThanOrEqual(SIDECARS);
    expect(st.served).toBeLessThanOrEqual(Math.floor(bound) + SIDECARS);
    expect(r.ok).toBe(st.served);
    // The limit held the load back: the clients asked for more than it allows, and were told so.
    expect(r.refused['429 rate_limit_exceeded']).toBeGreaterThan(0);
    expect(Object.keys(r.refused).every((k) => k === '429 rate_limit_exceeded')).toBe(true);
    // And it is not a limit that lets nothing through: at least the refill of the run came through.
    expect(st.served).toBeGreaterThanOrEqual(Math.floor((RL.tokensPerMinute * r.ms) / 60_000 / cost));
    const e = r.sample429!;
    expect(e.body.error.message).toContain(`RateLimit ${NS}/team`);
    expect(e.headers['x-ratelimit-limit-tokens']).toBe(String(RL.tokensPerMinute));
    expect(e.headers['x-ratelimit-limit-requests']).toBe(String(RL.requestsPerMinute));
    expect(Number(e.headers['retry-after'])).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('a ProviderQuota equal to the provider’s limits: at most one upstream 429 per sidecar, and ≥ 90 % of what the limits allow served', async () => {
    // A full bucket on both sides: the provider's (set in beforeAll, nothing sent since) and the
    // fleet's shares (granted empty at the end of the quiet period, full a minute later).
    const { ms: filled } = await until(
      'the sidecars’ quota buckets full',
      async () => [await fleetRemaining(sidecars, 'provider', `${NS}/openai-key`, 'requests'), await fleetRemaining(sidecars, 'provider', `${NS}/openai-key`, 'tokens')] as const,
      ([req, tok]) => req !== undefined && tok !== undefined && req >= PQ.requestsPerMinute - SIDECARS && tok >= PQ.tokensPerMinute - SIDECARS,
      90_000,
    );
    const r = await drive('quota', PQ_RUN_MS);
    const st = provider.stats(PQ_MODEL);
    const quota = allowedRequests(PQ, cost, r.ms);
    // Served per 5 s of the run: the full bucket at first, then the refill (50 per 5 s).
    const per5s = Array.from({ length: Math.ceil(r.ms / 5000) }, (_, i) => st.servedAt.filter((t) => t - r.startedAt >= i * 5000 && t - r.startedAt < (i + 1) * 5000).length);
    console.log(
      `[ratelimit] ProviderQuota = provider limits ${PQ.requestsPerMinute} RPM / ${PQ.tokensPerMinute} TPM (${cost} tokens a request), buckets full after ${filled} ms more, ${SIDECARS}×${CLIENTS} clients for ${r.ms} ms: ` +
        `${r.ok} ok of ${quota.toFixed(1)} allowed (${((100 * r.ok) / quota).toFixed(1)} %; per 5 s ${per5s.join(' ')}), upstream 429s ${st.refused} ${JSON.stringify(st.refusedBy)}; ` +
        `latency of successes p50 ${percentileOf(r.successes.map((x) => x.ms), 0.5).toFixed(0)} ms, p99 ${percentileOf(r.successes.map((x) => x.ms), 0.99).toFixed(0)} ms; paygo refused ${JSON.stringify(r.refused)}, e.g. "${r.sample429?.body.error.message}"`,
    );
    // At most one per sidecar (the comment at the top); in practice none.
    expect(st.refused).toBeLessThanOrEqual(SIDECARS);
    expect(r.ok).toBeGreaterThanOrEqual(0.9 * quota);
    expect(st.served).toBe(r.ok);
    // The quota held the load back (the clients wanted more), with paygo's own 429s; a provider's
    // 429 (at most one per sidecar, above) may reach its client as upstream_rate_limited, no more.
    expect(r.refused['429 rate_limit_exceeded']).toBeGreaterThan(0);
    expect(Object.keys(r.refused).every((k) => k === '429 rate_limit_exceeded' || k === '429 upstream_rate_limited')).toBe(true);
    expect(r.refused['429 upstream_rate_limited'] ?? 0).toBeLessThanOrEqual(st.refused);
    expect(r.sample429!.body.error.message).toContain(`ProviderQuota ${NS}/openai-key`);
  }, 150_000);
});
