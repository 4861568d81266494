import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ProviderName } from '../../crds/src/index.js';
import { cohereResponder } from '../support/fake-cohere.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest, type Reply } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';
import { USAGE_CASES, readFixture, sseFrames, withCost, type UsageCase } from '../support/usage-exchanges.js';

/**
 * Issue 13 on the built sidecar process: one route per new provider (xai, groq, together,
 * fireworks, cerebras, perplexity: OpenAI-compatible presets; cohere: Cohere's v2 Chat API), each
 * target's baseURL pointing at a fake upstream on 127.0.0.1 under the provider's documented path
 * convention. The fake answers like the provider: the presets replay their recorded exchanges
 * (test/support/usage-exchanges.ts), Cohere is served by test/support/fake-cohere.ts. Checked per
 * provider: non-stream and stream, the client's usage, the key from the Secret arriving as the
 * documented `Authorization: Bearer` header at the documented path, and that no key ever appears
 * in the sidecar's logs, metrics or error bodies.
 */

type NewProvider = Extract<ProviderName, 'xai' | 'groq' | 'together' | 'fireworks' | 'cerebras' | 'perplexity' | 'cohere'>;

/** Path of each provider's API under its default base URL (the adapter appends the endpoint). */
const BASE_PATH: Record<NewProvider, string> = {
  xai: '/v1',
  groq: '/openai/v1',
  together: '/v1',
  fireworks: '/inference/v1',
  cerebras: '/v1',
  perplexity: '',
  cohere: '',
};
const ENDPOINT = (p: NewProvider) => (p === 'cohere' ? '/v2/chat' : '/chat/completions');
/** Providers that always report usage and must not be sent stream_options (documented). */
const NO_STREAM_OPTIONS = new Set<NewProvider>(['fireworks', 'perplexity']);

const PROVIDERS = Object.keys(BASE_PATH) as NewProvider[];
const KEY = (p: NewProvider) => `sk-${p}-8c4e1f0d2b7a4d39a1e6`;
const presetCase = new Map(USAGE_CASES.map((c) => [c.provider, c]));
const MODEL: Record<NewProvider, string> = {
  xai: presetCase.get('xai')!.model,
  groq: presetCase.get('groq')!.model,
  together: presetCase.get('together')!.model,
  fireworks: presetCase.get('fireworks')!.model,
  cerebras: presetCase.get('cerebras')!.model,
  perplexity: presetCase.get('perplexity')!.model,
  cohere: 'command-a-03-2025',
};

let upstream: FakeUpstream;
let sidecar: SidecarProcess;

/** The provider's answer; a request a provider would refuse gets its kind of refusal. */
function respond(req: RecordedRequest): Reply {
  const provider = PROVIDERS.find((p) => req.url.startsWith(`/${p}/`));
  if (!provider) return { kind: 'json', status: 404, body: { error: { message: `no fake provider for ${req.url}` } } };
  const path = req.url.slice(provider.length + 1);
  if (provider === 'cohere') return cohereResponder({ ...req, url: path });
  if (path !== `${BASE_PATH[provider]}${ENDPOINT(provider)}`) return { kind: 'json', status: 404, body: { error: { message: `unknown path ${path}` } } };
  if (req.headers.authorization !== `Bearer ${KEY(provider)}`) return { kind: 'json', status: 401, body: { error: { message: 'Incorrect API key provided' } } };
  const body = req.body as { stream?: boolean; stream_options?: unknown };
  if (NO_STREAM_OPTIONS.has(provider) && body.stream_options !== undefined) {
    return { kind: 'json', status: 400, body: { error: { message: 'Extra inputs are not permitted: stream_options' } } };
  }
  const c = presetCase.get(provider) as UsageCase;
  if (body.stream !== true) return { kind: 'raw', body: readFixture(c, c.response) };
  return { kind: 'sse', frames: sseFrames(readFixture(c, c.stream).toString('utf8')) };
}

const route = (p: NewProvider) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: providers-${p} }
spec:
  model: providers-${p}
  retry: { attempts: 1 }
  targets: [{ provider: ${p}, model: "${MODEL[p]}", baseURL: "${upstream.url}/${p}${BASE_PATH[p]}", credentials: { secretRef: { name: provider-keys, key: ${p} } } }]
`;

/** Groq cannot take n: 2 (documented 400), xAI can: the router moves on without an upstream call to Groq. */
const failoverRoute = () => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: providers-failover }
spec:
  model: providers-failover
  retry: { attempts: 1 }
  targets:
    - { name: groq, provider: groq, model: "${MODEL.groq}", baseURL: "${upstream.url}/groq/openai/v1", credentials: { secretRef: { name: provider-keys, key: groq } } }
    - { name: xai, provider: xai, model: "${MODEL.xai}", baseURL: "${upstream.url}/xai/v1", credentials: { secretRef: { name: provider-keys, key: xai } } }
`;

beforeAll(async () => {
  upstream = await startFakeUpstream(respond);
  const secret = `
apiVersion: v1
kind: Secret
metadata: { name: provider-keys }
stringData: { ${PROVIDERS.map((p) => `${p}: ${KEY(p)}`).join(', ')} }
`;
  sidecar = await startSidecar([...PROVIDERS.map(route), failoverRoute(), secret].join('---\n'));
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

async function ssePayloads(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => frame.replace(/^data: /, ''))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

const messages = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello from paygo' },
];

/** Requests that reached the fake for a provider since index `since`. */
const received = (p: NewProvider, since: number) => upstream.requests.slice(since).filter((r) => r.url.startsWith(`/${p}/`));

/** Cohere's fake bills the prompt's words (system included) and one output token per echoed word. */
const cohereUsage = (prompt: number, output: number) => ({
  prompt_tokens: prompt,
  completion_tokens: output,
  total_tokens: prompt + output,
  prompt_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0 },
});

describe.each(PROVIDERS)('%s through the sidecar process', (p) => {
  it('non-stream: 200 with the provider header, OpenAI usage, and the key as Bearer at the documented path', async () => {
    const since = upstream.requests.length;
    const res = await postChat(sidecar, { model: `providers-${p}`, messages, max_tokens: 64 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-provider')).toBe(p);
    expect(res.headers.get('x-paygo-usage-estimated')).toBeNull();
    const body = (await res.json()) as { object: string; choices: Array<{ message: { content: string }; finish_reason: string }>; usage: unknown };
    expect(body.object).toBe('chat.completion');
    expect(body.choices[0]!.finish_reason).toBe('stop');
    if (p === 'cohere') {
      expect(body.choices[0]!.message.content).toBe('Cohere echo: Hello from paygo');
      expect(body.usage).toEqual(withCost(cohereUsage(5, 5), res.headers.get('x-paygo-cost-usd')));
    } else {
      expect(body.usage).toEqual(withCost(presetCase.get(p)!.nonStream, res.headers.get('x-paygo-cost-usd')));
    }

    const [req] = received(p, since);
    expect(req).toBeDefined();
    expect(req!.url).toBe(`/${p}${BASE_PATH[p]}${ENDPOINT(p)}`);
    expect(req!.headers.authorization).toBe(`Bearer ${KEY(p)}`);
    expect(req!.headers['x-api-key']).toBeUndefined();
    expect(req!.body).toMatchObject({ model: MODEL[p], stream: false });
    // each provider's documented max-tokens field
    const maxField = p === 'xai' || p === 'groq' || p === 'cerebras' ? 'max_completion_tokens' : 'max_tokens';
    expect((req!.body as Record<string, unknown>)[maxField]).toBe(64);
  });

  it('stream with include_usage: chunks, then the usage chunk, then [DONE]', async () => {
    const since = upstream.requests.length;
    const requestId = `providers-stream-${p}`;
    const res = await postChat(sidecar, { model: `providers-${p}`, messages, stream: true, stream_options: { include_usage: true } }, { headers: { 'x-request-id': requestId } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/event-stream');
    const payloads = await ssePayloads(res);
    expect(payloads.at(-1)).toBe('[DONE]');
    const chunks = payloads.slice(0, -1) as Array<{ object: string; choices: Array<{ delta: { content?: string }; finish_reason: string | null }>; usage?: unknown }>;
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    const line = await vi.waitUntil(() => sidecar.usage().find((r) => r.requestId === requestId), { timeout: 5000 });
    expect(usageChunk.usage).toEqual(withCost(p === 'cohere' ? cohereUsage(5, 5) : presetCase.get(p)!.streamed, line.costUsd as string | null));
    const content = chunks.slice(0, -1);
    expect(content.every((c) => c.object === 'chat.completion.chunk' && c.usage === undefined)).toBe(true);
    expect(content.map((c) => c.choices[0]?.delta.content ?? '').join('').length).toBeGreaterThan(0);
    expect(content.flatMap((c) => c.choices.map((ch) => ch.finish_reason)).filter((f) => f != null)).toEqual(['stop']);
    if (p === 'cohere') expect(content.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Cohere echo: Hello from paygo');

    const [req] = received(p, since);
    expect(req!.headers.authorization).toBe(`Bearer ${KEY(p)}`);
    const sent = req!.body as Record<string, unknown>;
    expect(sent.stream).toBe(true);
    if (p === 'cohere' || NO_STREAM_OPTIONS.has(p)) expect(sent).not.toHaveProperty('stream_options');
    else expect(sent.stream_options).toEqual({ include_usage: true });
  });

  it('the usage log meters what the client was told', async () => {
    const id = `providers-log-${p}`;
    const res = await postChat(sidecar, { model: `providers-${p}`, messages }, { headers: { 'content-type': 'application/json', 'x-request-id': id } });
    const usage = ((await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } }).usage;
    const rec = await sidecar.waitForLog((r) => r.msg === 'usage' && r.requestId === id);
    expect(rec).toMatchObject({ provider: p, estimated: false, tokens: { input: usage.prompt_tokens, output: usage.completion_tokens } });
  });
});

describe('errors and refusals', () => {
  it('a Cohere 429 body reaches the client as upstream_rate_limited with Cohere\'s message, and no key', async () => {
    upstream.fault({ kind: 'status', status: 429, body: JSON.stringify({ message: 'You are past the per minute request limit, please wait and try again later.' }) });
    const res = await postChat(sidecar, { model: 'providers-cohere', messages });
    expect(res.status).toBe(429);
    const text = await res.text();
    const err = (JSON.parse(text) as { error: { code: string; message: string } }).error;
    expect(err.code).toBe('upstream_rate_limited');
    expect(err.message).toContain('You are past the per minute request limit');
    expect(text).not.toContain(KEY('cohere'));
  });

  it('a parameter Groq documents as unsupported (n: 2) moves on to the next target without calling Groq', async () => {
    const since = upstream.requests.length;
    const res = await postChat(sidecar, { model: 'providers-failover', messages, n: 2 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-target')).toBe('xai');
    expect(received('groq', since)).toEqual([]);
    expect(received('xai', since)).toHaveLength(1);
  });

  it('when no target can take the parameter the client gets 400 unsupported_parameter naming it', async () => {
    const res = await postChat(sidecar, { model: 'providers-perplexity', messages, tools: [{ type: 'function', function: { name: 'get_weather' } }] });
    expect(res.status).toBe(400);
    const err = ((await res.json()) as { error: { code: string; param: string; message: string } }).error;
    expect(err).toMatchObject({ code: 'unsupported_parameter', param: 'tools' });
    expect(err.message).toContain('perplexity');
  });

  it('no API key appears in the sidecar\'s logs or metrics', async () => {
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics).toContain('providers-cohere');
    const logs = sidecar.lines.join('\n');
    expect(logs.length).toBeGreaterThan(0);
    for (const p of PROVIDERS) {
      expect(logs).not.toContain(KEY(p));
      expect(metrics).not.toContain(KEY(p));
    }
  });
});
