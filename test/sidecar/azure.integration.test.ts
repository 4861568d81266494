import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AZURE_CACHED_TOKENS, azureResponder } from '../support/fake-azure.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { postChat, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * Azure OpenAI on the built sidecar process (npm run build first): two routes against a fake
 * Azure resource and its Microsoft Entra ID token endpoint on 127.0.0.1 (test/support/fake-azure.ts):
 * `azure-key` authenticates with `api-key` from a Secret, `azure-entra` has no credentials and
 * takes a token from the pod's Azure Workload Identity (AZURE_CLIENT_ID, AZURE_TENANT_ID,
 * AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST pointing at the fake). Checked: non-stream,
 * stream, tool calls, usage in OpenAI's shape, throttling and overload per README's failure
 * table, a content-filtered prompt, a refused workload identity, and that no key, federated token
 * or access token appears in stdout, stderr, /metrics or error bodies.
 */

const API_KEY = 'azk-3b7e0d9f2a5c4e1b8d6f0a2c4e6b8d0f';
const ASSERTION = 'eyJhbGciOiJSUzI1NiIsImtpZCI6InBheWdvLXRlc3QifQ.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6cGF5Z286YXBwIn0.ZmVkZXJhdGVkLXNpZ25hdHVyZQ';
const ACCESS_TOKEN = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.eyJhdWQiOiJodHRwczovL2NvZ25pdGl2ZXNlcnZpY2VzLmF6dXJlLmNvbSJ9.YWNjZXNzLXRva2Vu';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
const CLIENT = '97e0a5b7-d745-40b6-94fe-5f77d35c6e05';
const SECRETS = [API_KEY, ASSERTION, ACCESS_TOKEN];

let upstream: FakeUpstream;
let sidecar: SidecarProcess;
let stderr = '';
let refuseTokens = false;
const errorBodies: string[] = [];

const config = (url: string) => `
apiVersion: v1
kind: Secret
metadata: { name: azure-openai }
stringData: { api-key: ${API_KEY} }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: azure-key }
spec:
  model: azure-key
  retry: { attempts: 1 }
  targets:
    - provider: azure
      model: gpt-4o-prod
      baseURL: ${url}
      credentials: { secretRef: { name: azure-openai, key: api-key } }
      pricing: { input: "2.50", output: "10.00", cachedInput: "1.25" }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: azure-batch }
spec:
  model: azure-batch
  retry: { attempts: 1 }
  targets:
    - provider: azure
      model: gpt-4o-batch
      baseURL: ${url}
      credentials: { secretRef: { name: azure-openai, key: api-key } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: azure-entra }
spec:
  model: azure-entra
  retry: { attempts: 1 }
  targets:
    - provider: azure
      model: o4-mini-eu
      baseURL: ${url}/
      apiVersion: 2025-04-01-preview
`;

beforeAll(async () => {
  upstream = await startFakeUpstream(azureResponder({ apiKey: API_KEY, tenantId: TENANT, clientId: CLIENT, assertion: ASSERTION, accessToken: ACCESS_TOKEN, refuseTokens: () => refuseTokens }));
  const dir = mkdtempSync(join(tmpdir(), 'paygo-azure-it-'));
  const tokenFile = join(dir, 'azure-identity-token');
  writeFileSync(tokenFile, ASSERTION);
  sidecar = await startSidecar(config(upstream.url), {
    env: { AZURE_CLIENT_ID: CLIENT, AZURE_TENANT_ID: TENANT, AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_AUTHORITY_HOST: `${upstream.url}/` },
  });
  sidecar.child.stderr!.on('data', (d: string) => (stderr += d));
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

const messages = [
  { role: 'system', content: 'Be brief.' },
  { role: 'user', content: 'Hello from paygo on Azure' },
];
const tools = [{ type: 'function', function: { name: 'get_current_time', description: 'Get the current time in a given location', parameters: { type: 'object', properties: { location: { type: 'string' } }, required: ['location'] } } }];

/** The usage the fake reports, as the client gets it: prompt = 7 words + 1000, 512 cached. */
const clientUsage = (completion: number) => ({
  prompt_tokens: 1007,
  completion_tokens: completion,
  total_tokens: 1007 + completion,
  prompt_tokens_details: { cached_tokens: AZURE_CACHED_TOKENS, cache_write_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 0 },
});

const chatCalls = (since: number) => upstream.requests.slice(since).filter((r) => r.url.startsWith('/openai/'));
const tokenCalls = (since: number) => upstream.requests.slice(since).filter((r) => r.url.endsWith('/oauth2/v2.0/token'));

async function sse(res: Response): Promise<unknown[]> {
  const text = await res.text();
  return text
    .split('\n\n')
    .filter(Boolean)
    .map((f) => f.replace(/^data: /, ''))
    .map((d) => (d === '[DONE]' ? d : JSON.parse(d)));
}

async function errorOf(res: Response): Promise<{ code: string; message: string; type: string }> {
  const text = await res.text();
  errorBodies.push(text);
  return (JSON.parse(text) as { error: { code: string; message: string; type: string } }).error;
}

function expectKeyRequest(req: RecordedRequest | undefined, stream: boolean) {
  expect(req).toBeDefined();
  expect(req!.url).toBe('/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21');
  expect(req!.headers['api-key']).toBe(API_KEY);
  expect(req!.headers.authorization).toBeUndefined();
  const body = req!.body as Record<string, unknown>;
  expect(body).not.toHaveProperty('model');
  expect(body.stream).toBe(stream);
}

describe('azure through the sidecar process', () => {
  it('a refused workload identity: 502 upstream_auth_failed naming the AADSTS code, nothing of the token exchange', async () => {
    refuseTokens = true;
    const since = upstream.requests.length;
    const res = await postChat(sidecar, { model: 'azure-entra', messages });
    refuseTokens = false;
    expect(res.status).toBe(502);
    const err = await errorOf(res);
    expect(err.code).toBe('upstream_auth_failed');
    expect(err.message).toContain(`Microsoft Entra ID refused the workload identity of client ${CLIENT} (HTTP 400 invalid_client, AADSTS700213)`);
    expect(tokenCalls(since)).toHaveLength(1);
    expect(chatCalls(since)).toHaveLength(0);
  });

  it('api-key: non-stream 200 in OpenAI shape, usage with cached tokens, priced, at the deployment URL without model', async () => {
    const since = upstream.requests.length;
    const res = await postChat(sidecar, { model: 'azure-key', messages, max_tokens: 64 });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-paygo-provider')).toBe('azure');
    expect(res.headers.get('x-paygo-usage-estimated')).toBeNull();
    // 495 uncached × 2.50 + 512 cached × 1.25 + 5 × 10.00 per million
    expect(res.headers.get('x-paygo-cost-usd')).toBe('0.001927500');
    const body = (await res.json()) as { object: string; model: string; choices: Array<{ message: { content: string }; finish_reason: string }>; usage: Record<string, unknown> };
    expect(body.object).toBe('chat.completion');
    expect(body.model).toBe('gpt-4o-2024-11-20');
    expect(body.choices[0]!.message.content).toBe('Hello from paygo on Azure');
    expect(body.choices[0]!.finish_reason).toBe('stop');
    expect(body.usage).toMatchObject(clientUsage(5));
    const [req] = chatCalls(since);
    expectKeyRequest(req, false);
    expect((req!.body as Record<string, unknown>).max_completion_tokens).toBe(64);
    expect(req!.body).not.toHaveProperty('max_tokens');
    expect(tokenCalls(since)).toHaveLength(0);
  });

  it('api-key: stream with include_usage: no prompt annotation, content chunks, the usage chunk, [DONE]', async () => {
    const since = upstream.requests.length;
    const res = await postChat(sidecar, { model: 'azure-key', messages, stream: true, stream_options: { include_usage: true } });
    expect(res.status).toBe(200);
    const payloads = await sse(res);
    expect(payloads.at(-1)).toBe('[DONE]');
    const chunks = payloads.slice(0, -1) as Array<{ id: string; object: string; model: string; choices: Array<{ delta: { content?: string }; finish_reason: string | null }>; usage?: unknown }>;
    const usageChunk = chunks.at(-1)!;
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toEqual({ ...clientUsage(5), cost: 0.0019275 });
    const content = chunks.slice(0, -1);
    expect(content.every((c) => c.id === 'chatcmpl-azure-5' && c.object === 'chat.completion.chunk' && c.model === 'gpt-4o-2024-11-20' && c.choices.length === 1)).toBe(true);
    expect(content.map((c) => c.choices[0]!.delta.content ?? '').join('')).toBe('Hello from paygo on Azure');
    expect(content.map((c) => c.choices[0]!.finish_reason).filter((f) => f != null)).toEqual(['stop']);
    const [req] = chatCalls(since);
    expectKeyRequest(req, true);
    expect((req!.body as Record<string, unknown>).stream_options).toEqual({ include_usage: true });
  });

  it('api-key: a tool call, non-stream and streamed', async () => {
    const res = await postChat(sidecar, { model: 'azure-key', messages, tools, tool_choice: 'auto' });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { choices: Array<{ message: { tool_calls: Array<{ id: string; type: string; function: { name: string; arguments: string } }> }; finish_reason: string }>; usage: unknown };
    expect(body.choices[0]!.finish_reason).toBe('tool_calls');
    expect(body.choices[0]!.message.tool_calls).toEqual([{ function: { arguments: '{"location":"San Francisco"}', name: 'get_current_time' }, id: 'call_pOsKdUlqvdyttYB67MOj434b', type: 'function' }]);
    expect(body.usage).toMatchObject(clientUsage(18));

    const streamed = await postChat(sidecar, { model: 'azure-key', messages, tools, stream: true });
    const chunks = (await sse(streamed)).slice(0, -1) as Array<{ choices: Array<{ delta: { tool_calls?: Array<{ id?: string; function?: { name?: string; arguments?: string } }> }; finish_reason: string | null }>; usage?: unknown }>;
    const calls = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? []));
    expect(calls[0]).toMatchObject({ id: 'call_pOsKdUlqvdyttYB67MOj434b', function: { name: 'get_current_time' } });
    expect(calls.map((c) => c.function?.arguments ?? '').join('')).toBe('{"location":"San Francisco"}');
    expect(chunks.at(-1)!.choices[0]!.finish_reason).toBe('tool_calls');
    // No include_usage from the client: no usage chunk, though paygo asked Azure for one.
    expect(chunks.every((c) => c.usage === undefined && c.choices.length === 1)).toBe(true);
  });

  it('workload identity: a Bearer token from Entra ID (fetched once), the target api-version, no api-key', async () => {
    const since = upstream.requests.length;
    for (let i = 0; i < 2; i++) {
      const res = await postChat(sidecar, { model: 'azure-entra', messages });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { usage: unknown }).usage).toMatchObject(clientUsage(5));
    }
    expect(tokenCalls(since)).toHaveLength(1);
    const calls = chatCalls(since);
    expect(calls).toHaveLength(2);
    for (const req of calls) {
      expect(req.url).toBe('/openai/deployments/o4-mini-eu/chat/completions?api-version=2025-04-01-preview');
      expect(req.headers.authorization).toBe(`Bearer ${ACCESS_TOKEN}`);
      expect(req.headers['api-key']).toBeUndefined();
    }
    const streamed = await postChat(sidecar, { model: 'azure-entra', messages, stream: true });
    expect((await sse(streamed)).at(-1)).toBe('[DONE]');
    expect(tokenCalls(since)).toHaveLength(1);
  });

  // Its own deployment: after a 429 the deployment backs off for the Retry-After (README "Rate limits").
  it('throttled: Azure 429 with retry-after → 429 upstream_rate_limited with Retry-After', async () => {
    upstream.fault({
      kind: 'status',
      status: 429,
      headers: { 'retry-after': '6', 'retry-after-ms': '5400' },
      body: JSON.stringify({ error: { code: '429', message: 'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds.' } }),
    });
    const res = await postChat(sidecar, { model: 'azure-batch', messages });
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('6');
    const err = await errorOf(res);
    expect(err.code).toBe('upstream_rate_limited');
    expect(err.message).toContain('have exceeded token rate limit');
  });

  it('overloaded: Azure 503 → 503 upstream_overloaded; a stream too', async () => {
    upstream.fault({ kind: 'status', status: 503, body: JSON.stringify({ error: { code: 'ServiceUnavailable', message: 'The service is temporarily unable to process your request. Please try again later.' } }) });
    const res = await postChat(sidecar, { model: 'azure-key', messages });
    expect(res.status).toBe(503);
    expect((await errorOf(res)).code).toBe('upstream_overloaded');
    upstream.fault({ kind: 'status', status: 503, body: '{"error":{"code":"ServiceUnavailable","message":"busy"}}' });
    const streamed = await postChat(sidecar, { model: 'azure-entra', messages, stream: true });
    expect(streamed.status).toBe(503);
    expect((await errorOf(streamed)).code).toBe('upstream_overloaded');
  });

  it('a prompt the content filter refuses: 400 with Azure\'s code content_filter and its message', async () => {
    upstream.fault({
      kind: 'status',
      status: 400,
      body: JSON.stringify({ error: { message: "The response was filtered due to the prompt triggering Azure OpenAI's content management policy.", type: null, param: 'prompt', code: 'content_filter', status: 400 } }),
    });
    const res = await postChat(sidecar, { model: 'azure-key', messages });
    expect(res.status).toBe(400);
    const err = await errorOf(res);
    expect(err.code).toBe('content_filter');
    expect(err.message).toContain("triggering Azure OpenAI's content management policy");
  });

  it('a wrong key: 502 upstream_auth_failed', async () => {
    upstream.fault({ kind: 'status', status: 401, body: '{"error":{"code":"401","message":"Access denied due to invalid subscription key or wrong API endpoint."}}' });
    const res = await postChat(sidecar, { model: 'azure-key', messages });
    expect(res.status).toBe(502);
    expect((await errorOf(res)).code).toBe('upstream_auth_failed');
  });

  it('the usage log meters the provider\'s usage (cached tokens apart) and its cost', async () => {
    const id = 'azure-usage-log';
    await (await postChat(sidecar, { model: 'azure-key', messages }, { headers: { 'content-type': 'application/json', 'x-request-id': id } })).json();
    const rec = await sidecar.waitForLog((r) => r.msg === 'usage' && r.requestId === id);
    expect(rec).toMatchObject({ provider: 'azure', providerModel: 'gpt-4o-prod', responseModel: 'gpt-4o-2024-11-20', estimated: false, priced: true, costUsd: '0.001927500', tokens: { input: 1007, output: 5, cacheRead: AZURE_CACHED_TOKENS } });
  });

  it('no key, federated token or access token in stdout, stderr, /metrics or error bodies', async () => {
    const metrics = await (await fetch(sidecar.metricsUrl)).text();
    expect(metrics).toContain('provider="azure"');
    expect(errorBodies.length).toBeGreaterThanOrEqual(5);
    const seen = [sidecar.lines.join('\n'), stderr, metrics, ...errorBodies].join('\n');
    for (const secret of SECRETS) {
      expect(seen).not.toContain(secret);
      expect(seen).not.toContain(secret.slice(0, 24));
    }
  });
});
