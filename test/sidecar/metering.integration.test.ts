import { execFileSync } from 'node:child_process';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { anthropicOverloaded, anthropicResponder } from '../support/fake-anthropic.js';
import { geminiResponder } from '../support/fake-gemini.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * A scripted mix of requests across providers, stream and non-stream, failures, a failover,
 * a client abort and an unpriced model; then: the usage log's costs equal costs computed here
 * from the catalog prices (copied below as literals) and the tokens, and the sum of
 * paygo_cost_usd_total equals the sum of the log's costs to the nano-dollar.
 */
// USD per million tokens, from @pydantic/genai-prices' catalog.
const PRICES: Record<string, { input: number; output: number; cached: number }> = {
  'gpt-4o-mini': { input: 0.15, output: 0.6, cached: 0.075 },
  'claude-3-5-haiku-latest': { input: 0.8, output: 4, cached: 0.08 },
  'gemini-2.0-flash': { input: 0.1, output: 0.4, cached: 0.025 },
  'sim-priced': { input: 2.5, output: 10, cached: 1.25 }, // the route's pricing override
};

/** Expected nano-USD: exact integer arithmetic, rounded half up once per request. */
function expectedNano(model: string, prompt: number, cached: number, completion: number): bigint {
  const p = PRICES[model]!;
  const perM = (usd: number) => BigInt(Math.round(usd * 1e9)); // nano-USD per million tokens
  const total = BigInt(prompt - cached) * perM(p.input) + BigInt(cached) * perM(p.cached) + BigInt(completion) * perM(p.output);
  return (total + 500_000n) / 1_000_000n;
}

let openai: FakeUpstream;
let anthropic: FakeUpstream;
let gemini: FakeUpstream;
let sidecar: SidecarProcess;
let client: OpenAI;

beforeAll(async () => {
  openai = await startFakeUpstream(openaiResponder({ cachedTokens: 2 }));
  anthropic = await startFakeUpstream(anthropicResponder);
  gemini = await startFakeUpstream(geminiResponder);
  sidecar = await startSidecar(`
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: gpt, namespace: team-a }
spec:
  model: gpt
  targets: [{ provider: openai, model: gpt-4o-mini, baseURL: ${openai.url}/v1, credentials: { secretRef: { name: openai, key: api-key } } }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: claude, namespace: team-a }
spec:
  model: claude
  retry: { attempts: 1 }
  targets:
    - { name: claude, provider: anthropic, model: claude-3-5-haiku-latest, baseURL: ${anthropic.url}, credentials: { secretRef: { name: anthropic, key: api-key } } }
    - { name: gemini, provider: gemini, model: gemini-2.0-flash, baseURL: ${gemini.url}, credentials: { secretRef: { name: gemini, key: api-key } } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: claude-only, namespace: team-a }
spec:
  model: claude-only
  targets: [{ provider: anthropic, model: claude-3-5-haiku-latest, baseURL: ${anthropic.url}, credentials: { secretRef: { name: anthropic, key: api-key } } }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: sim, namespace: team-a }
spec:
  model: sim
  targets:
    - { provider: simulate, model: sim-priced, simulate: { outputTokens: 40, tokensPerSecond: 200 }, pricing: { input: "2.50", output: "10.00", cachedInput: "1.25" } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: local, namespace: team-a }
spec:
  model: local
  targets: [{ provider: openai-compatible, model: my-own-finetune-xyz, baseURL: ${openai.url}/v1 }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: strict, namespace: team-a }
spec:
  model: strict
  requirePricing: true
  targets: [{ provider: openai-compatible, model: my-own-finetune-xyz, baseURL: ${openai.url}/v1 }]
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: down, namespace: team-a }
spec:
  model: down
  retry: { attempts: 1 }
  targets: [{ provider: openai, model: gpt-4o-mini, baseURL: "http://127.0.0.1:1/v1", credentials: { secretRef: { name: openai, key: api-key } } }]
`, { env: { OPENAI_API_KEY: 'sk-o', ANTHROPIC_API_KEY: 'sk-a', GEMINI_API_KEY: 'g-key' } });
  client = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await sidecar?.stop();
  await Promise.all([openai?.close(), anthropic?.close(), gemini?.close()]);
});

interface Seen {
  id: string;
  model: string;
  usage?: { prompt: number; cached: number; completion: number };
  header?: string | null;
}

async function nonStream(model: string, content: string, id: string): Promise<Seen> {
  const { data, response } = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content }] }, { headers: { 'x-request-id': id } })
    .withResponse();
  const u = data.usage!;
  return {
    id,
    model: data.model,
    usage: { prompt: u.prompt_tokens, cached: u.prompt_tokens_details?.cached_tokens ?? 0, completion: u.completion_tokens },
    header: response.headers.get('x-paygo-cost-usd'),
  };
}

async function stream(model: string, content: string, id: string, includeUsage: boolean): Promise<Seen> {
  const s = await client.chat.completions.create(
    { model, messages: [{ role: 'user', content }], stream: true, ...(includeUsage ? { stream_options: { include_usage: true } } : {}) },
    { headers: { 'x-request-id': id } },
  );
  let usage: Seen['usage'];
  let responseModel = '';
  for await (const chunk of s) {
    responseModel = chunk.model;
    if (chunk.usage) usage = { prompt: chunk.usage.prompt_tokens, cached: chunk.usage.prompt_tokens_details?.cached_tokens ?? 0, completion: chunk.usage.completion_tokens };
  }
  return { id, model: responseModel, usage };
}

function parseMetrics(text: string, name: string): Array<{ labels: string; value: number }> {
  return text
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .map((l) => {
      const i = l.lastIndexOf(' ');
      return { labels: l.slice(name.length, i), value: Number(l.slice(i + 1)) };
    });
}

describe('metering: a scripted mix', () => {
  const seen: Seen[] = [];

  it('runs the mix', async () => {
    seen.push(await nonStream('gpt', 'price this please', 'r1'));
    seen.push(await nonStream('gpt', 'and this one too with more words', 'r2'));
    seen.push(await stream('gpt', 'stream with usage', 'r3', true));
    seen.push(await stream('gpt', 'stream without usage for the client', 'r4', false));
    seen.push(await nonStream('claude', 'hello claude how are you', 'r5'));
    seen.push(await stream('claude', 'stream from claude', 'r6', true));
    anthropic.fault({ kind: 'status', status: 529, body: anthropicOverloaded }); // → fails over to gemini
    seen.push(await nonStream('claude', 'overloaded so gemini answers', 'r7'));
    anthropic.fault({ kind: 'status', status: 529, body: anthropicOverloaded });
    seen.push(await stream('claude', 'gemini streams this', 'r8', true));
    seen.push(await nonStream('sim', 'simulate', 'r9'));
    seen.push(await stream('sim', 'simulate a stream', 'r10', true));
    // A client that walks away mid-stream is billed for what was generated (estimated).
    const ac = new AbortController();
    const s = await client.chat.completions.create({ model: 'sim', messages: [{ role: 'user', content: 'abort me' }], stream: true }, { headers: { 'x-request-id': 'r11' }, signal: ac.signal });
    let pieces = 0;
    try {
      for await (const chunk of s) {
        if (chunk.choices[0]?.delta?.content) pieces++;
        if (pieces === 5) ac.abort();
      }
    } catch {
      /* aborted */
    }
    // Failures cost nothing and are counted by outcome.
    await expect(client.chat.completions.create({ model: 'down', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-request-id': 'r12' } })).rejects.toMatchObject({ status: 502 });
    // An unpriced model is served, its cost unknown (never $0).
    const local = await client.chat.completions.create({ model: 'local', messages: [{ role: 'user', content: 'free?' }] }, { headers: { 'x-request-id': 'r13' } }).withResponse();
    expect(local.response.headers.get('x-paygo-cost-usd')).toBeNull();
    // ...unless the route requires a price.
    await expect(client.chat.completions.create({ model: 'strict', messages: [{ role: 'user', content: 'x' }] }, { headers: { 'x-request-id': 'r14' } })).rejects.toMatchObject({ status: 503 });
    for (const id of ['r11', 'r14']) await sidecar.waitForLog((r) => r.msg === 'usage' && r.requestId === id);
    expect(seen.find((x) => x.id === 'r7')!.model).toMatch(/gemini-2\.0-flash/);
  });

  it('a parameter the only provider cannot take gets a clear 400, with no upstream call', async () => {
    const before = anthropic.requests.length;
    const err = await client.chat.completions.create({ model: 'claude-only', messages: [{ role: 'user', content: 'x' }], n: 2 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('n');
    expect(anthropic.requests.length).toBe(before);
  });

  it('logs one usage line per request with the right cost, to the nano-dollar', () => {
    const logs = new Map(sidecar.usage().map((r) => [r.requestId as string, r]));
    for (const id of ['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7', 'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14']) expect(logs.has(id), id).toBe(true);
    for (const s of seen) {
      const log = logs.get(s.id)!;
      const tokens = log.tokens as { input: number; output: number; cacheRead: number };
      const priceModel = log.providerModel as string;
      // What the client was told (when it could see usage) is what was billed.
      if (s.usage) expect({ input: tokens.input, output: tokens.output, cacheRead: tokens.cacheRead }, s.id).toEqual({ input: s.usage.prompt, output: s.usage.completion, cacheRead: s.usage.cached });
      const expected = expectedNano(priceModel, tokens.input, tokens.cacheRead, tokens.output);
      expect(BigInt(log.costNanoUsd as number), s.id).toBe(expected);
      expect(log.estimated, s.id).toBe(false);
      expect(log.priced).toBe(true);
      if (s.header !== undefined) expect(s.header).toBe(log.costUsd);
    }
    const aborted = logs.get('r11')!;
    expect(aborted).toMatchObject({ outcome: 'client_aborted', estimated: true, priced: true });
    const at = aborted.tokens as { input: number; output: number };
    expect(at.output).toBeGreaterThanOrEqual(5);
    expect(BigInt(aborted.costNanoUsd as number)).toBe(expectedNano('sim-priced', at.input, 0, at.output));
    expect(logs.get('r12')).toMatchObject({ outcome: 'upstream_error', status: 502, costNanoUsd: null });
    expect(logs.get('r13')).toMatchObject({ outcome: 'success', priced: false, costUsd: null });
    expect(logs.get('r14')).toMatchObject({ outcome: 'upstream_error', status: 503 });
    expect(logs.get('r7')).toMatchObject({ target: 'gemini', provider: 'gemini', attempts: 2 });
    // no prompt or completion text in the usage log
    expect(JSON.stringify([...logs.values()])).not.toMatch(/price this please|echo:/);
  });

  it('the sum of paygo_cost_usd_total equals the sum of logged costs, to the nano-dollar', async () => {
    const text = await (await fetch(sidecar.metricsUrl)).text();
    const metricNano = parseMetrics(text, 'paygo_cost_usd_total').reduce((s, m) => s + BigInt(Math.round(m.value * 1e9)), 0n);
    const logNano = sidecar.usage().reduce((s, r) => s + BigInt((r.costNanoUsd as number | null) ?? 0), 0n);
    expect(metricNano).toBeGreaterThan(0n);
    expect(metricNano).toBe(logNano);
    const gptCost = parseMetrics(text, 'paygo_cost_usd_total').find((m) => m.labels.includes('route="gpt"'))!;
    const gptLogs = sidecar.usage().filter((r) => r.route === 'gpt').reduce((s, r) => s + BigInt(r.costNanoUsd as number), 0n);
    expect(BigInt(Math.round(gptCost.value * 1e9))).toBe(gptLogs);
  });

  it('exports the documented metrics, and promtool accepts them', async () => {
    const text = await (await fetch(sidecar.metricsUrl)).text();
    for (const name of [
      'gen_ai_client_token_usage_bucket',
      'gen_ai_client_operation_duration_seconds_bucket',
      'gen_ai_server_time_to_first_token_seconds_bucket',
      'paygo_requests_total',
      'paygo_cost_usd_total',
      'paygo_tokens_total',
      'paygo_failovers_total',
      'paygo_circuit_open',
      'paygo_target_cost_per_success_usd',
      'process_resident_memory_bytes',
    ]) {
      expect(text, name).toContain(`\n${name}`);
    }
    expect(text).toMatch(/paygo_requests_total\{namespace="team-a",route="local",target="openai-compatible-0",provider="openai-compatible",model="local",api="chat",outcome="success",estimated="false",priced="false"\} 1/);
    expect(text).toMatch(/paygo_requests_total\{namespace="team-a",route="sim",target="simulate-0",provider="simulate",model="sim",api="chat",outcome="client_aborted",estimated="true",priced="true"\} 1/);
    expect(text).toMatch(/paygo_failovers_total\{namespace="team-a",route="claude",target="claude",provider="anthropic",reason="overloaded"\} 2/);
    expect(text).toMatch(/paygo_tokens_total\{namespace="team-a",route="gpt",target="openai-0",provider="openai",model="gpt",api="chat",type="cache_read"\} 8/);
    expect(text).toMatch(/gen_ai_client_token_usage_count\{gen_ai_operation_name="chat",gen_ai_provider_name="anthropic",gen_ai_request_model="claude",gen_ai_response_model="claude-3-5-haiku-latest",namespace="team-a",route="claude",gen_ai_token_type="output"\} 2/);
    const promtool = execFileSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    expect(promtool).toBe('');
  });
});
