import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest, type Reply } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';
import { USAGE_CASES, readFixture, sseFrames, withCost, type UsageCase } from '../support/usage-exchanges.js';

/**
 * Issue 11 point 2 on the built sidecar process: for every provider a fake upstream replays the
 * recorded exchange from that provider's own documentation (test/support/usage-exchanges.ts,
 * doc URLs there), and the client gets OpenAI's usage fields with the provider's numbers:
 * prompt_tokens_details.cached_tokens / cache_write_tokens and
 * completion_tokens_details.reasoning_tokens, non-stream and streamed (stream_options.include_usage).
 */

let upstream: FakeUpstream;
let sidecar: SidecarProcess;

const byProvider = new Map(USAGE_CASES.map((c) => [c.provider, c]));

/** The upstream path starts with the provider name (each target's baseURL below). */
function replay(req: RecordedRequest): Reply {
  const c = byProvider.get(req.url.split('/')[1] as UsageCase['provider']);
  if (!c) return { kind: 'json', status: 404, body: { error: { message: `no recorded exchange for ${req.url}` } } };
  const body = req.body as { stream?: boolean } | undefined;
  const stream = c.provider === 'gemini' ? req.url.includes(':streamGenerateContent') : body?.stream === true;
  if (!stream) return { kind: 'raw', body: readFixture(c, c.response) };
  return { kind: 'sse', frames: sseFrames(readFixture(c, c.stream).toString('utf8')) };
}

/** Providers whose base URL is a bare host (the adapter adds /v1/messages, /v1beta/…, /v2/chat, /chat/completions). */
const BARE_HOST = new Set<UsageCase['provider']>(['anthropic', 'gemini', 'cohere', 'perplexity']);

function baseURL(c: UsageCase): string {
  return BARE_HOST.has(c.provider) ? `${upstream.url}/${c.provider}` : `${upstream.url}/${c.provider}/v1`;
}

const route = (c: UsageCase) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: usage-${c.provider} }
spec:
  model: usage-${c.provider}
  retry: { attempts: 1 }
  targets: [{ provider: ${c.provider}, model: ${c.model}, baseURL: "${baseURL(c)}", credentials: { secretRef: { name: keys, key: ${c.provider} } } }]
`;

beforeAll(async () => {
  upstream = await startFakeUpstream(replay);
  const secret = `
apiVersion: v1
kind: Secret
metadata: { name: keys }
stringData: { ${USAGE_CASES.map((c) => `${c.provider}: key-${c.provider}`).join(', ')} }
`;
  sidecar = await startSidecar([...USAGE_CASES.map(route), secret].join('---\n'));
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

/** Reads an SSE response into its parsed data payloads ([DONE] kept as the string). */
async function ssePayloads(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => frame.replace(/^data: /, ''))
    .map((data) => (data === '[DONE]' ? data : JSON.parse(data)));
}

const messages = [{ role: 'user', content: 'Hello!' }];

describe.each(USAGE_CASES)('$provider: usage through the sidecar process', (c) => {
  it('non-stream: usage has the OpenAI fields with the provider numbers, and its own extras', async () => {
    const res = await postChat(sidecar, { model: `usage-${c.provider}`, messages });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-provider')).toBe(c.provider);
    expect(res.headers.get('x-paygo-usage-estimated')).toBeNull();
    const body = (await res.json()) as { usage: unknown };
    // usage.cost: the metered cost in USD, the same number as the header (none when unpriced).
    expect(body.usage).toEqual(withCost(c.nonStream, res.headers.get('x-paygo-cost-usd')));
  });

  it('stream with include_usage: the last chunk before [DONE] carries the OpenAI usage', async () => {
    const requestId = `usage-stream-${c.provider}`;
    const res = await postChat(sidecar, { model: `usage-${c.provider}`, messages, stream: true, stream_options: { include_usage: true } }, { headers: { 'x-request-id': requestId } });
    expect(res.status).toBe(200);
    const payloads = await ssePayloads(res);
    // The stream's cost is the metered one, exactly: the usage log line of this request says it.
    const line = await vi.waitUntil(() => sidecar.usage().find((r) => r.requestId === requestId), { timeout: 5000 });
    expect(payloads.at(-1)).toBe('[DONE]');
    const chunks = payloads.slice(0, -1) as Array<{ choices: unknown[]; usage?: unknown }>;
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual(withCost(c.streamed, line.costUsd as string | null));
    // only that chunk has usage; the provider's own usage object never reaches the client
    expect(chunks.slice(0, -1).filter((ch) => ch.usage !== undefined)).toEqual([]);
  });

  it('stream without include_usage: no usage chunk', async () => {
    const res = await postChat(sidecar, { model: `usage-${c.provider}`, messages, stream: true });
    const chunks = (await ssePayloads(res)).slice(0, -1) as Array<{ usage?: unknown }>;
    expect(chunks.length).toBeGreaterThan(0);
    expect(chunks.filter((ch) => ch.usage !== undefined)).toEqual([]);
  });
});

describe('official openai SDK: the fields SDKs and dashboards read', () => {
  let client: OpenAI;
  beforeAll(() => {
    client = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });

  it('DeepSeek prompt_cache_hit_tokens arrive as usage.prompt_tokens_details.cached_tokens (non-stream)', async () => {
    const res = await client.chat.completions.create({ model: 'usage-deepseek', messages: [{ role: 'user', content: 'Hello!' }] });
    expect(res.usage?.prompt_tokens).toBe(1360);
    expect(res.usage?.prompt_tokens_details?.cached_tokens).toBe(1280);
    expect(res.usage?.completion_tokens_details?.reasoning_tokens).toBe(0);
  });

  it('deepseek-reasoner stream: cached_tokens and reasoning_tokens in the include_usage chunk', async () => {
    const stream = await client.chat.completions.create({ model: 'usage-deepseek', messages: [{ role: 'user', content: 'Hello!' }], stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('Hello!');
    expect(usage?.prompt_tokens_details?.cached_tokens).toBe(1024);
    expect(usage?.completion_tokens_details?.reasoning_tokens).toBe(6);
    expect(usage).toMatchObject({ prompt_tokens: 1105, completion_tokens: 15, total_tokens: 1120 });
  });

  it('Anthropic cache writes and Gemini thinking tokens', async () => {
    const claude = await client.chat.completions.create({ model: 'usage-anthropic', messages: [{ role: 'user', content: 'Hello!' }] });
    expect(claude.usage?.prompt_tokens).toBe(188107);
    expect(claude.usage?.prompt_tokens_details?.cached_tokens).toBe(0);
    expect((claude.usage?.prompt_tokens_details as { cache_write_tokens?: number } | undefined)?.cache_write_tokens).toBe(188086);

    const gemini = await client.chat.completions.create({ model: 'usage-gemini', messages: [{ role: 'user', content: 'Hello!' }] });
    expect(gemini.usage?.prompt_tokens_details?.cached_tokens).toBe(2048);
    expect(gemini.usage?.completion_tokens_details?.reasoning_tokens).toBe(413);
  });

  it('the usage log meters the same tokens the client was told about', async () => {
    const id = 'usage-log-qwen';
    await client.chat.completions.create({ model: 'usage-qwen', messages: [{ role: 'user', content: 'Hello!' }], stream: true, stream_options: { include_usage: true } }, { headers: { 'x-request-id': id } }).then(async (s) => {
      for await (const _ of s) void _;
    });
    const rec = await sidecar.waitForLog((r) => r.msg === 'usage' && r.requestId === id);
    expect(rec).toMatchObject({ provider: 'qwen', estimated: false, tokens: { input: 1524, output: 1534, cacheRead: 1305, cacheWrite: 213, reasoning: 1187 } });
  });
});
