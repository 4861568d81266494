import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ModelRouteSpecSchema } from '../../../crds/src/index.js';
import { Cancel } from '../../../sidecar/cancel.js';
import { createPricer } from '../../../sidecar/metering/pricing.js';
import type { ChatCompletionChunk } from '../../../sidecar/openai-schema.js';
import { AZURE_SCOPE, EntraWorkloadIdentity, azureAdapter, createAzureAdapter, tokenEndpoint } from '../../../sidecar/providers/azure.js';
import { ADAPTERS } from '../../../sidecar/providers/index.js';
import type { TargetContext, UpstreamRequest } from '../../../sidecar/providers/types.js';
import { UpstreamHttpError } from '../../../sidecar/providers/errors.js';
import { TransportError } from '../../../sidecar/transport.js';
import { chatRequest, describeRecordedExchanges, fixtures, translateStream } from '../../support/recorded-exchanges.js';

/**
 * Azure OpenAI (sidecar/providers/azure.ts): the OpenAI wire format at a deployment URL with an
 * api-version, `api-key` auth or a Microsoft Entra ID token from the pod's Workload Identity, and
 * Azure's content-filter annotations in streams. Fixtures come from Azure's and Microsoft Entra's
 * own documentation (fixtures/azure/README.md says which and how faithfully).
 */

const FIXTURES = join(import.meta.dirname, 'fixtures/azure');
const { json: fixture, raw } = fixtures(FIXTURES);
const BASE = 'https://my-resource.openai.azure.com';
const KEY = 'azure-key-5f1e0c7a9b3d4e21';

const ctx = (model = 'gpt-4o-prod', over: Partial<TargetContext> = {}): TargetContext => ({
  model,
  baseURL: BASE,
  apiKey: KEY,
  created: 1750000000,
  responseId: 'chatcmpl-req-1',
  ...over,
});
const chat = chatRequest('paygo-azure');
const user = [{ role: 'user', content: 'Hello!' }];
const KEY_HEADERS = { 'content-type': 'application/json', accept: 'application/json', 'api-key': KEY };

describeRecordedExchanges({
  name: 'azure',
  adapter: azureAdapter,
  dir: FIXTURES,
  cases: [
    ['chat-text.json', 'gpt-4o-prod'],
    ['chat-tools.json', 'gpt-4o-prod'],
  ],
  ctx: (model) => ctx(model),
  headers: KEY_HEADERS,
  routeModel: 'paygo-azure',
});

describe('azure adapter: registration and validation', () => {
  it('is the azure entry of ADAPTERS, with no default base URL', () => {
    expect(ADAPTERS.azure).toBe(azureAdapter);
    expect(azureAdapter.provider).toBe('azure');
    expect(azureAdapter.defaultBaseURL).toBeUndefined();
  });

  it('a ModelRoute target of provider azure needs baseURL (the message names the field)', () => {
    const r = ModelRouteSpecSchema.safeParse({ model: 'm', targets: [{ provider: 'azure', model: 'gpt-4o-prod' }] });
    expect(r.success).toBe(false);
    expect(r.error!.issues.map((i) => i.message)).toContain('spec.targets[0].baseURL is required for provider azure (the resource endpoint, e.g. https://my-resource.openai.azure.com)');
    expect(r.error!.issues[0]!.path).toEqual(['targets', 0, 'baseURL']);
    expect(ModelRouteSpecSchema.safeParse({ model: 'm', targets: [{ provider: 'azure', model: 'd', baseURL: BASE, apiVersion: '2025-04-01-preview' }] }).success).toBe(true);
    expect(ModelRouteSpecSchema.safeParse({ model: 'm', targets: [{ provider: 'azure', model: 'd', baseURL: BASE, apiVersion: 'latest' }] }).success).toBe(false);
  });

  it('has no catalog price: deployment names are the customer\'s own (routes give `pricing`)', () => {
    const usage = { inputTokens: 1000, outputTokens: 100, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
    expect(createPricer().price('azure', 'gpt-4o', usage).known).toBe(false);
    const priced = createPricer().price('azure', 'gpt-4o', usage, { input: '2.50', output: '10.00' });
    expect(priced.known).toBe(true);
    expect(priced.costNano).toBe(3_500_000n);
  });
});

describe('azure adapter: request', () => {
  it('posts to the deployment with the default GA api-version, api-key, no model in the body, max_completion_tokens, and asks for stream usage', () => {
    const up = azureAdapter.chatRequest(chat({ messages: user, max_tokens: 64, temperature: 0.2, stream_options: { include_usage: false } }), ctx(), true);
    expect(up.url).toBe(`${BASE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21`);
    expect(up.headers).toEqual(KEY_HEADERS);
    expect(up.headers).not.toHaveProperty('authorization');
    expect(up.body).toBe(JSON.stringify({ messages: user, temperature: 0.2, stream: true, max_completion_tokens: 64, stream_options: { include_usage: true } }));
  });

  it('takes the target apiVersion, a cognitiveservices endpoint with a trailing slash, and encodes the deployment name', () => {
    const up = azureAdapter.chatRequest(
      chat({ messages: user }),
      ctx('my deployment/1', { baseURL: 'https://my-resource.cognitiveservices.azure.com/', settings: { apiVersion: '2025-04-01-preview' } }),
      false,
    );
    expect(up.url).toBe('https://my-resource.cognitiveservices.azure.com/openai/deployments/my%20deployment%2F1/chat/completions?api-version=2025-04-01-preview');
    expect(JSON.parse(up.body)).toEqual({ messages: user, stream: false });
  });

  it('keeps max_completion_tokens and fields the request schema leaves open (data_sources, reasoning_effort)', () => {
    const body = JSON.parse(azureAdapter.chatRequest(chat({ messages: user, max_completion_tokens: 500, reasoning_effort: 'low', data_sources: [{ type: 'azure_search' }] }), ctx(), false).body);
    expect(body).toEqual({ messages: user, max_completion_tokens: 500, reasoning_effort: 'low', data_sources: [{ type: 'azure_search' }], stream: false });
  });

  it('without a key sends no auth header from chatRequest (authorize adds the Entra ID token)', () => {
    const up = azureAdapter.chatRequest(chat({ messages: user }), ctx('d', { apiKey: undefined }), false);
    expect(up.headers).toEqual({ 'content-type': 'application/json', accept: 'application/json' });
  });

  it('embeddings: the deployment\'s /embeddings with api-version, no model in the body (2024-10-21 example request)', () => {
    const up = azureAdapter.embeddingsRequest!({ model: 'paygo-embed', input: ['this is a test'] }, ctx('deployment-afa0669ca01e4693ae3a93baf40f26d6'));
    expect(up.url).toBe(`${BASE}/openai/deployments/deployment-afa0669ca01e4693ae3a93baf40f26d6/embeddings?api-version=2024-10-21`);
    expect(up.headers).toEqual(KEY_HEADERS);
    expect(up.body).toBe(JSON.stringify({ input: ['this is a test'] }));
  });

  it('with a key, authorize passes the request on untouched', async () => {
    const up = azureAdapter.chatRequest(chat({ messages: user }), ctx(), false);
    await expect(azureAdapter.authorize!(up, ctx(), new Cancel())).resolves.toBe(up);
  });
});

describe('azure adapter: responses and usage', () => {
  it('usage (prompt caching doc): cached and reasoning tokens kept apart, provider fields kept', () => {
    const { completion, usage } = azureAdapter.chatResponse(fixture('usage.json'), ctx());
    expect(usage).toEqual({ inputTokens: 1566, outputTokens: 1518, cacheReadTokens: 1408, cacheWriteTokens: 0, reasoningTokens: 576 });
    expect(completion.usage).toEqual({
      completion_tokens: 1518,
      prompt_tokens: 1566,
      total_tokens: 3084,
      completion_tokens_details: { audio_tokens: null, reasoning_tokens: 576 },
      prompt_tokens_details: { audio_tokens: null, cached_tokens: 1408, cache_write_tokens: 0 },
    });
    expect(completion.model).toBe('o1-2024-12-17');
  });

  it('keeps content filter annotations (prompt_filter_results, choices[].content_filter_results) in the body', () => {
    const { completion } = azureAdapter.chatResponse(fixture<{ response: unknown }>('chat-tools.json').response, ctx());
    expect((completion as unknown as { prompt_filter_results: unknown[] }).prompt_filter_results).toHaveLength(1);
    expect(completion.choices[0]).toHaveProperty('content_filter_results', {});
  });

  it('a filtered completion keeps finish_reason content_filter', () => {
    const body = { id: 'chatcmpl-x', object: 'chat.completion', created: 1, model: 'gpt-4o-2024-11-20', choices: [{ index: 0, finish_reason: 'content_filter', message: { role: 'assistant', content: null } }], usage: { prompt_tokens: 10, completion_tokens: 3, total_tokens: 13 } };
    expect(azureAdapter.chatResponse(body, ctx()).completion.choices[0]!.finish_reason).toBe('content_filter');
  });

  it.each([
    ['error-429.json', 'Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds.'],
    ['error-400-content-filter.json', 'The response was filtered due to the prompt triggering Azure Content management policy. Please modify your prompt and retry. To learn more about our content filtering policies please read our documentation: https://go.microsoft.com/fwlink/?linkid=21298766'],
  ])('reads the message of %s', (file, message) => {
    expect(azureAdapter.errorInfo(raw(file).toString('utf8'), ctx(), {}).message).toBe(message);
  });
});

describe('azure adapter: streams', () => {
  const text = raw('stream-text.sse');
  const textId = 'chatcmpl-7rCNsVeZy0PGnX3H6jK8STps5nZUY';
  const textChunk = (delta: Record<string, unknown>, finish: string | null = null) => ({
    id: textId,
    object: 'chat.completion.chunk',
    created: 1692913344,
    model: 'gpt-35-turbo',
    choices: [{ index: 0, finish_reason: finish, delta }],
  });

  it.each([1, 7, 64, text.length])('Asynchronous Filter stream (content-streaming doc) in %i-byte pieces: prompt and completion annotations dropped, tokens exact', (size) => {
    const { chunks, translator } = translateStream(azureAdapter, text, size, ctx());
    expect(JSON.parse(JSON.stringify(chunks))).toEqual([
      textChunk({ role: 'assistant' }),
      textChunk({ content: 'Color' }),
      textChunk({ content: ' is' }),
      textChunk({ content: ' a' }),
      textChunk({}, 'stop'),
    ]);
    expect(translator.finished).toBe(true);
    expect(translator.usage).toBeUndefined();
    // The trailing annotation names the model "": the response model is the last real one.
    expect(translator.responseModel).toBe('gpt-35-turbo');
  });

  it('a completion the filter blocks ends with finish_reason content_filter, delta {} and the stream\'s id (content-streaming doc)', () => {
    const { chunks, translator } = translateStream(azureAdapter, raw('stream-filtered.sse'), 13, ctx());
    const last = JSON.parse(JSON.stringify(chunks.at(-1))) as ChatCompletionChunk;
    expect(chunks.map((c) => c.choices[0]!.delta.content ?? null)).toEqual([null, 'Hey', ' Jude', ',', ' better', undefined].map((v) => v ?? null));
    expect(last).toEqual({
      id: 'chatcmpl-8JCbt5d4luUIhYCI7YH4dQK7hnHx2',
      object: 'chat.completion.chunk',
      created: 1699587397,
      model: 'gpt-35-turbo',
      choices: [
        {
          index: 0,
          finish_reason: 'content_filter',
          delta: {},
          content_filter_results: { protected_material_text: { detected: true, filtered: true } },
          content_filter_offsets: { check_offset: 65, start_offset: 65, end_offset: 1056 },
        },
      ],
    });
    expect(translator.finished).toBe(true);
  });

  it('a filter verdict before any token takes the request\'s id and the target model', () => {
    const t = azureAdapter.chatStream(ctx('gpt-4o-prod'));
    const out = t.push({ data: '{"id":"","object":"","created":0,"model":"","choices":[{"index":0,"finish_reason":"content_filter","content_filter_results":{"violence":{"filtered":true,"severity":"high"}}}],"usage":null}' });
    expect(out).toHaveLength(1);
    expect(out[0]).toMatchObject({ id: 'chatcmpl-req-1', object: 'chat.completion.chunk', created: 1750000000, model: 'gpt-4o-prod', choices: [{ index: 0, finish_reason: 'content_filter', delta: {} }] });
  });

  it('default-mode tool-call stream: prompt annotation dropped, tool-call deltas exact, usage (cached tokens) from the include_usage chunk', () => {
    const { chunks, translator } = translateStream(azureAdapter, raw('stream-tools-usage.sse'), 31, ctx());
    expect(chunks).toHaveLength(4);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ content: null, refusal: null, role: 'assistant', tool_calls: [{ function: { arguments: '', name: 'get_current_time' }, id: 'call_pOsKdUlqvdyttYB67MOj434b', index: 0, type: 'function' }] });
    expect(chunks.slice(1, 3).map((c) => c.choices[0]!.delta.tool_calls![0]!.function!.arguments).join('')).toBe('{"location":"San Francisco"}');
    expect(chunks[3]!.choices[0]!.finish_reason).toBe('tool_calls');
    for (const c of chunks) expect(c.usage).toBeUndefined();
    expect(translator.usage).toEqual({ inputTokens: 1566, outputTokens: 18, cacheReadTokens: 1408, cacheWriteTokens: 0, reasoningTokens: 0 });
    expect(translator.responseModel).toBe('gpt-4o-2024-11-20');
    expect(translator.finished).toBe(true);
  });
});

/** A fake Microsoft Entra ID token endpoint on 127.0.0.1 that answers with the documented bodies. */
interface TokenCall {
  url: string;
  headers: IncomingMessage['headers'];
  form: Record<string, string>;
}

describe('azure adapter: Microsoft Entra ID workload identity', () => {
  let server: Server;
  let authority: string;
  let calls: TokenCall[];
  let reply: () => { status: number; body: string; delayMs?: number };
  let issued = 0;
  const dir = mkdtempSync(join(tmpdir(), 'paygo-azure-'));
  const tokenFile = join(dir, 'azure-identity-token');
  const ASSERTION = 'eyJhbGciOiJSUzI1NiIsImtpZCI6ImZlZGVyYXRlZC10ZXN0In0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6ZGVmYXVsdDphcHAifQ.c2lnbmF0dXJl';
  const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';
  const CLIENT = '97e0a5b7-d745-40b6-94fe-5f77d35c6e05';
  const docToken = fixture<{ token_type: string; expires_in: number; access_token: string }>('entra-token.json');
  const okReply = () => ({ status: 200, body: JSON.stringify({ ...docToken, access_token: `${docToken.access_token}${++issued}` }) });

  beforeAll(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.setEncoding('utf8').on('data', (d: string) => (body += d));
      req.on('end', () => {
        calls.push({ url: req.url ?? '', headers: req.headers, form: Object.fromEntries(new URLSearchParams(body)) });
        const r = reply();
        setTimeout(() => {
          res.writeHead(r.status, { 'content-type': 'application/json; charset=utf-8' });
          res.end(r.body);
        }, r.delayMs ?? 0);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    authority = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  let clock = 1_750_000_000_000;
  const env = (over: Record<string, string | undefined> = {}) => ({ AZURE_CLIENT_ID: CLIENT, AZURE_TENANT_ID: TENANT, AZURE_FEDERATED_TOKEN_FILE: tokenFile, AZURE_AUTHORITY_HOST: authority, ...over });
  const identity = (over: Record<string, string | undefined> = {}) => new EntraWorkloadIdentity({ env: env(over), now: () => clock });
  const keyless = ctx('gpt-4o-prod', { apiKey: undefined });
  const keylessRequest = (): UpstreamRequest => azureAdapter.chatRequest(chat({ messages: user }), keyless, false);

  afterEach(() => {
    calls = [];
    reply = okReply;
  });
  calls = [];
  reply = okReply;
  writeFileSync(tokenFile, `${ASSERTION}\n`);

  it('sends the documented client-credentials request with the federated token and puts the access token in Authorization', async () => {
    const adapter = createAzureAdapter(identity());
    const up = await adapter.authorize!(keylessRequest(), keyless, new Cancel());
    expect(calls).toHaveLength(1);
    expect(calls[0]!.url).toBe(`/${TENANT}/oauth2/v2.0/token`);
    expect(calls[0]!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(calls[0]!.form).toEqual({
      scope: AZURE_SCOPE,
      client_id: CLIENT,
      client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
      client_assertion: ASSERTION,
      grant_type: 'client_credentials',
    });
    expect(AZURE_SCOPE).toBe('https://cognitiveservices.azure.com/.default');
    expect(up.headers).toEqual({ 'content-type': 'application/json', accept: 'application/json', authorization: `Bearer ${docToken.access_token}${issued}` });
    expect(up.headers).not.toHaveProperty('api-key');
    expect(up.url).toBe(`${BASE}/openai/deployments/gpt-4o-prod/chat/completions?api-version=2024-10-21`);
  });

  it('reuses the token until 5 minutes before expiry, shares one fetch between concurrent requests, re-reads the rotated federated token', async () => {
    const entra = identity();
    const tokens = await Promise.all([1, 2, 3].map(() => entra.token(new Cancel())));
    expect(new Set(tokens).size).toBe(1);
    expect(calls).toHaveLength(1);
    clock += (3599 - 301) * 1000;
    expect(await entra.token(new Cancel())).toBe(tokens[0]);
    expect(calls).toHaveLength(1);
    writeFileSync(tokenFile, 'rotated-service-account-token');
    clock += 2000;
    const next = await entra.token(new Cancel());
    expect(next).not.toBe(tokens[0]);
    expect(calls).toHaveLength(2);
    expect(calls[1]!.form.client_assertion).toBe('rotated-service-account-token');
    writeFileSync(tokenFile, `${ASSERTION}\n`);
  });

  it('a refused token request (documented error body) is UpstreamHttpError 401 naming the AADSTS code, never the assertion, the description or a token', async () => {
    reply = () => ({ status: 400, body: raw('entra-error.json').toString('utf8') });
    const err = await identity().token(new Cancel()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect((err as UpstreamHttpError).status).toBe(401);
    expect((err as Error).message).toBe(`azure: no Microsoft Entra ID token: Microsoft Entra ID refused the workload identity of client ${CLIENT} (HTTP 400 invalid_scope, AADSTS70011)`);
    expect((err as Error).message).not.toContain(ASSERTION);
    expect((err as Error).message).not.toContain('Trace ID');
  });

  it.each([
    [{ status: 200, body: '{"token_type":"Bearer"}' }, 'Microsoft Entra ID answered without an access token'],
    [{ status: 503, body: '<html>unavailable</html>' }, `Microsoft Entra ID refused the workload identity of client ${CLIENT} (HTTP 503)`],
  ])('an unusable answer %j is 401 (%s)', async (r, why) => {
    reply = () => r;
    await expect(identity().token(new Cancel())).rejects.toMatchObject({ status: 401, message: `azure: no Microsoft Entra ID token: ${why}` });
  });

  it('without credentials and without a workload identity: 401 naming the missing variables', async () => {
    const adapter = createAzureAdapter(new EntraWorkloadIdentity({ env: {} }));
    await expect(adapter.authorize!(keylessRequest(), keyless, new Cancel())).rejects.toMatchObject({
      status: 401,
      message: 'azure: no Microsoft Entra ID token: the target has no credentials and the pod no Azure Workload Identity (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE not set)',
    });
  });

  it('an unreadable federated token file is 401 naming the variable and path', async () => {
    await expect(identity({ AZURE_FEDERATED_TOKEN_FILE: join(dir, 'missing') }).token(new Cancel())).rejects.toMatchObject({ status: 401, message: `azure: no Microsoft Entra ID token: cannot read AZURE_FEDERATED_TOKEN_FILE ${join(dir, 'missing')} (ENOENT)` });
    expect(calls).toHaveLength(0);
  });

  it('an unreachable token endpoint is a TransportError (retried like the provider)', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    const err = await identity({ AZURE_AUTHORITY_HOST: `http://127.0.0.1:${port}` }).token(new Cancel()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TransportError);
    expect((err as TransportError).failure).toBe('connect');
  });

  it('defaults to login.microsoftonline.com and refuses a plain-http authority outside loopback', () => {
    expect(tokenEndpoint({ authorityHost: 'https://login.microsoftonline.com/', tenantId: TENANT, clientId: CLIENT, tokenFile })).toBe(`https://login.microsoftonline.com/${TENANT}/oauth2/v2.0/token`);
    expect(() => tokenEndpoint({ authorityHost: 'http://login.example.com/', tenantId: TENANT, clientId: CLIENT, tokenFile })).toThrow(/must be an https URL/);
    expect(tokenEndpoint({ authorityHost: 'http://localhost:8080', tenantId: 't', clientId: CLIENT, tokenFile })).toBe('http://localhost:8080/t/oauth2/v2.0/token');
  });

  it('a request that gives up stops waiting at once; the shared fetch still serves the others', async () => {
    reply = () => ({ ...okReply(), delayMs: 150 });
    const entra = identity();
    const leaving = new Cancel();
    const first = entra.token(leaving);
    const second = entra.token(new Cancel());
    leaving.abort(new TransportError('aborted', 'client went away'));
    await expect(first).rejects.toMatchObject({ failure: 'aborted' });
    await expect(second).resolves.toMatch(/^eyJ0eXAi/);
    expect(calls).toHaveLength(1);
  });

  it('a token fetched for a request that left is kept for the next one', async () => {
    reply = () => ({ ...okReply(), delayMs: 50 });
    const entra = identity();
    const leaving = new Cancel();
    const first = entra.token(leaving);
    leaving.abort(new TransportError('timeout', 'total deadline exceeded'));
    await expect(first).rejects.toMatchObject({ failure: 'timeout' });
    await new Promise((r) => setTimeout(r, 150));
    expect(await entra.token(new Cancel())).toMatch(/^eyJ0eXAi/);
    expect(calls).toHaveLength(1);
  });

  it('a failed refresh keeps the previous token while it is still valid', async () => {
    const entra = identity();
    const token = await entra.token(new Cancel());
    clock += (3599 - 200) * 1000;
    reply = () => ({ status: 500, body: '{}' });
    expect(await entra.token(new Cancel())).toBe(token);
    expect(calls).toHaveLength(2);
    clock += 180_000;
    await expect(entra.token(new Cancel())).rejects.toMatchObject({ status: 401 });
  });
});
