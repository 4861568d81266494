import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ModelRouteSpecSchema } from '../../../crds/src/modelroute.js';
import { Cancel } from '../../../sidecar/cancel.js';
import { loadCatalog, Pricer } from '../../../sidecar/metering/pricing.js';
import type { ChatCompletionChunk } from '../../../sidecar/openai-schema.js';
import { ADAPTERS } from '../../../sidecar/providers/index.js';
import { UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { type ProviderAdapter, type TargetContext, type UpstreamRequest } from '../../../sidecar/providers/types.js';
import { CLOUD_PLATFORM_SCOPE, GOOGLE_TOKEN_URL, resetVertexAuth, vertexAdapter, vertexAnthropicAdapter, vertexHost } from '../../../sidecar/providers/vertex.js';
import { UpstreamHttpError } from '../../../sidecar/providers/errors.js';
import { SseParser } from '../../../sidecar/sse.js';
import { TransportError } from '../../../sidecar/transport.js';
import { chatRequest, describeRecordedExchanges, fixtures, translateStream } from '../../support/recorded-exchanges.js';
import { serviceAccountKey, startFakeMetadataServer, startFakeTokenEndpoint, type FakeTokenEndpoint } from '../../support/fake-vertex.js';

const DIR = join(import.meta.dirname, 'fixtures');
const gemini = fixtures(join(DIR, 'vertex'));
const claude = fixtures(join(DIR, 'vertex-anthropic'));
const DEFAULT_BASE = vertexAdapter.defaultBaseURL as string;
const PROJECT = 'paygo-test-project';

const ctx = (model: string, region: string, over: Partial<TargetContext> = {}): TargetContext => ({
  model,
  baseURL: DEFAULT_BASE,
  apiKey: undefined,
  created: 1750000000,
  responseId: 'chatcmpl-req-1',
  settings: { region, project: PROJECT },
  ...over,
});

const chat = chatRequest('paygo-vertex');
const user = [{ role: 'user', content: 'Hi' }];

describe('registration', () => {
  it('both adapters are registered under their provider names with the location-templated default base', () => {
    expect(ADAPTERS.vertex).toBe(vertexAdapter);
    expect(ADAPTERS['vertex-anthropic']).toBe(vertexAnthropicAdapter);
    expect(DEFAULT_BASE).toBe('https://{location}-aiplatform.googleapis.com');
    expect(vertexAnthropicAdapter.defaultBaseURL).toBe(DEFAULT_BASE);
  });
});

describeRecordedExchanges({
  name: 'vertex',
  adapter: vertexAdapter,
  dir: join(DIR, 'vertex'),
  cases: [
    ['chat-text.json', 'gemini-2.5-flash'],
    ['chat-tools.json', 'gemini-2.0-flash-001'],
  ],
  // chat-text runs in us-central1, chat-tools on the global endpoint.
  ctx: (model) => ctx(model, model === 'gemini-2.5-flash' ? 'us-central1' : 'global'),
  headers: { 'content-type': 'application/json', accept: 'application/json' },
  routeModel: 'paygo-vertex',
});

describeRecordedExchanges({
  name: 'vertex-anthropic',
  adapter: vertexAnthropicAdapter,
  dir: join(DIR, 'vertex-anthropic'),
  cases: [
    ['chat-text.json', 'claude-opus-4-6'],
    ['chat-tools.json', 'claude-sonnet-4-5@20250929'],
  ],
  ctx: (model) => ctx(model, model === 'claude-opus-4-6' ? 'global' : 'us-east5'),
  headers: { 'content-type': 'application/json' },
  routeModel: 'paygo-vertex',
});

describe('vertex: URLs', () => {
  it.each([
    ['us-central1', 'https://us-central1-aiplatform.googleapis.com'],
    ['europe-west4', 'https://europe-west4-aiplatform.googleapis.com'],
    ['global', 'https://aiplatform.googleapis.com'],
    ['us', 'https://aiplatform.us.rep.googleapis.com'],
    ['eu', 'https://aiplatform.eu.rep.googleapis.com'],
  ])('location %s is served by %s', (location, host) => {
    expect(vertexHost(location)).toBe(host);
    const up = vertexAdapter.chatRequest(chat({ messages: user }), ctx('gemini-2.0-flash-001', location), false);
    expect(up.url).toBe(`${host}/v1/projects/${PROJECT}/locations/${location}/publishers/google/models/gemini-2.0-flash-001:generateContent`);
  });

  it('streams Gemini from :streamGenerateContent?alt=sse and Claude from :streamRawPredict with "stream": true', () => {
    const g = vertexAdapter.chatRequest(chat({ messages: user, stream: true }), ctx('gemini-2.0-flash-001', 'us-central1'), true);
    expect(g.url).toBe(`https://us-central1-aiplatform.googleapis.com/v1/projects/${PROJECT}/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:streamGenerateContent?alt=sse`);
    expect(g.headers).toEqual({ 'content-type': 'application/json', accept: 'text/event-stream' });
    const c = vertexAnthropicAdapter.chatRequest(chat({ messages: user, stream: true }), ctx('claude-3-5-haiku@20241022', 'us-east5'), true);
    expect(c.url).toBe(`https://us-east5-aiplatform.googleapis.com/v1/projects/${PROJECT}/locations/us-east5/publishers/anthropic/models/claude-3-5-haiku@20241022:streamRawPredict`);
    expect(c.body).toBe('{"anthropic_version":"vertex-2023-10-16","max_tokens":4096,"messages":[{"role":"user","content":"Hi"}],"stream":true}');
    expect(c.headers).toEqual({ 'content-type': 'application/json' });
  });

  it('a baseURL replaces scheme and host (a path prefix stays); the model stays one path segment', () => {
    const c = ctx('gemini-2.0-flash-001', 'us-central1', { baseURL: 'https://us-central1-aiplatform.p.googleapis.com/prefix' });
    expect(vertexAdapter.chatRequest(chat({ messages: user }), c, false).url).toBe(
      `https://us-central1-aiplatform.p.googleapis.com/prefix/v1/projects/${PROJECT}/locations/us-central1/publishers/google/models/gemini-2.0-flash-001:generateContent`,
    );
    const odd = vertexAdapter.chatRequest(chat({ messages: user }), ctx('a/b?c', 'global'), false).url;
    expect(odd).toContain('/publishers/google/models/a%2Fb%3Fc:generateContent');
  });

  it("the project defaults to the key's project_id; the target's project wins", () => {
    const key = JSON.stringify({ type: 'service_account', project_id: 'key-project-1', client_email: 'a@b.iam.gserviceaccount.com', private_key: 'x' });
    const fromKey = vertexAdapter.chatRequest(chat({ messages: user }), ctx('gemini-2.0-flash-001', 'global', { apiKey: key, settings: { region: 'global' } }), false);
    expect(fromKey.url).toContain('/v1/projects/key-project-1/locations/global/');
    const explicit = vertexAdapter.chatRequest(chat({ messages: user }), ctx('gemini-2.0-flash-001', 'global', { apiKey: key }), false);
    expect(explicit.url).toContain(`/v1/projects/${PROJECT}/locations/global/`);
  });

  it('no project anywhere, or no region: 401 naming the field (fails over, never retried)', () => {
    const keyless = JSON.stringify({ type: 'service_account', client_email: 'a@b.iam.gserviceaccount.com', private_key: 'x' });
    const cases: Array<[Partial<TargetContext>, RegExp]> = [
      [{ apiKey: keyless, settings: { region: 'global' } }, /no project and the service-account key has no project_id/],
      [{ settings: { region: 'global' } }, /no project \(required without a service-account key\)/],
      [{ settings: { project: PROJECT } }, /no region/],
      [{ apiKey: 'not json', settings: { region: 'global' } }, /not JSON/],
    ];
    for (const [over, message] of cases) {
      let caught: unknown;
      try {
        vertexAnthropicAdapter.chatRequest(chat({ messages: user }), ctx('claude-3-5-haiku@20241022', 'global', over), false);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(UpstreamHttpError);
      expect((caught as UpstreamHttpError).status).toBe(401);
      expect((caught as Error).message).toMatch(message);
      expect((caught as Error).message).not.toContain('not json');
    }
  });

  it('the Claude body is the Messages body minus model, with anthropic_version first', () => {
    const req = chat({ messages: [{ role: 'system', content: 'Be brief.' }, ...user], max_tokens: 50, temperature: 0.5, stop: ['END'] });
    const anthropicBody = JSON.parse(ADAPTERS.anthropic.chatRequest(req, ctx('claude-3-5-haiku@20241022', 'global'), false).body) as Record<string, unknown>;
    const body = JSON.parse(vertexAnthropicAdapter.chatRequest(req, ctx('claude-3-5-haiku@20241022', 'global'), false).body) as Record<string, unknown>;
    const { model, ...rest } = anthropicBody;
    expect(model).toBe('claude-3-5-haiku@20241022');
    expect(body).toEqual({ anthropic_version: 'vertex-2023-10-16', ...rest });
    expect(Object.keys(body)[0]).toBe('anthropic_version');
    expect(body).not.toHaveProperty('model');
  });
});

interface StreamExpectation {
  chunks: ChatCompletionChunk[];
  usage: unknown;
  responseModel: string | null;
  finishedAt: boolean[];
}

describe('vertex: streams', () => {
  it("Gemini's recorded streams use Google's CRLF framing", () => {
    for (const f of ['stream-text.sse', 'stream-tools.sse', 'stream-error.sse']) {
      const text = gemini.raw(f).toString('utf8');
      expect(text.startsWith('data: {')).toBe(true);
      expect(text.endsWith('}\r\n\r\n')).toBe(true);
    }
  });

  it.each([
    [vertexAdapter, gemini, 'stream-text', 'gemini-2.0-flash-001'],
    [vertexAdapter, gemini, 'stream-tools', 'gemini-2.5-flash'],
    [vertexAnthropicAdapter, claude, 'stream-text', 'claude-opus-4-6'],
    [vertexAnthropicAdapter, claude, 'stream-tools', 'claude-opus-4-6'],
    [vertexAnthropicAdapter, claude, 'stream-cache', 'claude-opus-4-6'],
  ] as Array<[ProviderAdapter, typeof gemini, string, string]>)('%#: %s translates byte by byte and whole, identically', (adapter, fx, name, model) => {
    const expected = fx.json<StreamExpectation>(`${name}.expected.json`);
    const bytes = fx.raw(`${name}.sse`);
    for (const size of [1, 7, bytes.length]) {
      const { chunks, translator, finishedAt } = translateStream(adapter, bytes, size, ctx(model, 'global'));
      expect(chunks).toEqual(expected.chunks);
      expect(translator.usage ?? null).toEqual(expected.usage);
      expect(translator.responseModel ?? null).toBe(expected.responseModel);
      expect(translator.finished).toBe(true);
      expect(finishedAt).toEqual(expected.finishedAt);
    }
  });

  it('usage: cached and thinking tokens kept apart (Gemini usageMetadata, Anthropic cache reads)', () => {
    expect(gemini.json<StreamExpectation>('stream-tools.expected.json').usage).toEqual({ inputTokens: 1130, outputTokens: 120, cacheReadTokens: 1024, cacheWriteTokens: 0, reasoningTokens: 89 });
    expect(gemini.json<{ completion: { usage: unknown } }>('chat-text.json').completion.usage).toEqual({
      prompt_tokens: 2071,
      completion_tokens: 257,
      total_tokens: 2328,
      prompt_tokens_details: { cached_tokens: 2048, cache_write_tokens: 0 },
      completion_tokens_details: { reasoning_tokens: 212 },
    });
    expect(claude.json<StreamExpectation>('stream-cache.expected.json').usage).toEqual({ inputTokens: 198768, outputTokens: 510, cacheReadTokens: 188086, cacheWriteTokens: 0, reasoningTokens: 0 });
  });

  it('an error event ends the stream with UpstreamStreamError; Anthropic overloaded_error is the overloaded class', () => {
    const run = (adapter: ProviderAdapter, bytes: Uint8Array) => {
      const t = adapter.chatStream(ctx('m', 'global'));
      const events = new SseParser().push(bytes);
      const out: ChatCompletionChunk[] = [];
      try {
        for (const e of events) out.push(...t.push(e));
      } catch (e) {
        return { out, error: e };
      }
      return { out, error: undefined };
    };
    const g = run(vertexAdapter, gemini.raw('stream-error.sse'));
    expect(g.out.map((c) => c.choices[0]?.delta.content)).toEqual(['The sky']);
    expect(g.error).toBeInstanceOf(UpstreamStreamError);
    expect(g.error).toMatchObject({ message: 'The model is overloaded. Please try again later.', errorType: 'UNAVAILABLE' });
    const c = run(vertexAnthropicAdapter, claude.raw('stream-error.sse'));
    expect(c.error).toMatchObject({ name: 'UpstreamStreamError', message: 'Overloaded', errorType: 'overloaded_error' });
  });
});

describe('vertex: error bodies', () => {
  it.each([
    [vertexAdapter, gemini, 'error-429.json', 'Resource exhausted, please try again later.'],
    [vertexAdapter, gemini, 'error-503.json', 'The model is overloaded. Please try again later.'],
    [vertexAnthropicAdapter, claude, 'error-429.json', 'Resource exhausted, please try again later.'],
    [vertexAnthropicAdapter, claude, 'error-529.json', 'Overloaded'],
  ] as Array<[ProviderAdapter, typeof gemini, string, string]>)('%#: %s → its message', (adapter, fx, file, message) => {
    const body = fx.raw(file).toString('utf8');
    expect(adapter.errorInfo(body, ctx('gemini-2.5-flash', 'us-central1'), {}).message).toBe(message);
    // Google also wraps errors in a one-element array on non-SSE streams.
    expect(adapter.errorInfo(`[${body}]`, ctx('gemini-2.5-flash', 'us-central1'), {}).message).toBe(message);
  });

  it('no message from a body that is not an error', () => {
    expect(vertexAdapter.errorInfo('<html>502</html>', ctx('gemini-2.5-flash', 'us-central1'), {}).message).toBeUndefined();
    expect(vertexAnthropicAdapter.errorInfo('{"candidates":[]}', ctx('gemini-2.5-flash', 'us-central1'), {}).message).toBeUndefined();
  });
});

// ---------------------------------------------------------------------------------------------
// Auth

const EMAIL = 'paygo-sidecar@paygo-test-project.iam.gserviceaccount.com';
const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
const other = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
/** The base64 body of a PEM, the part that must never leak. */
const pemBody = (pem: string) => pem.split('\n').filter((l) => l && !l.startsWith('-----')).join('');

let tokens: FakeTokenEndpoint;
beforeAll(async () => {
  tokens = await startFakeTokenEndpoint({ email: EMAIL, publicKey });
});
afterAll(async () => {
  await tokens.close();
});
afterEach(() => resetVertexAuth());

const keyCtx = (key: string, over: Partial<TargetContext> = {}) => ctx('gemini-2.0-flash-001', 'us-central1', { apiKey: key, ...over });
const request = (c: TargetContext): UpstreamRequest => vertexAdapter.chatRequest(chat({ messages: user }), c, false);
const authorize = (adapter: ProviderAdapter, c: TargetContext, signal = new Cancel()) => (adapter.authorize as NonNullable<ProviderAdapter['authorize']>)(request(c), c, signal);

async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a failure');
}

function expectNoSecrets(text: string, key: string, extra: string[] = []): void {
  expect(text).not.toContain(pemBody(PEM).slice(0, 40));
  expect(text).not.toContain(pemBody(other).slice(0, 40));
  expect(text).not.toContain(key.slice(0, 60));
  for (const g of tokens.grants) {
    expect(text).not.toContain(g.token);
    expect(text).not.toContain(g.assertion.split('.')[2] as string);
  }
  for (const s of extra) expect(text).not.toContain(s);
}

describe('vertex: service-account key auth', () => {
  it("signs a JWT-bearer assertion the token endpoint verifies (RS256, iss, scope, aud = the key's token_uri) and sends the token as Bearer", async () => {
    const key = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: PROJECT, tokenUri: tokens.tokenUri });
    const before = tokens.grants.length;
    for (const adapter of [vertexAdapter, vertexAnthropicAdapter]) {
      resetVertexAuth();
      const c = keyCtx(key, { settings: { region: 'us-central1' } });
      const up = await authorize(adapter, c);
      const grant = tokens.grants.at(-1)!;
      expect(up.headers.authorization).toBe(`Bearer ${grant.token}`);
      expect(up.url).toContain(`/v1/projects/${PROJECT}/locations/us-central1/`);
      expect(grant.header).toMatchObject({ alg: 'RS256' });
      expect(grant.claims).toMatchObject({ iss: EMAIL, scope: CLOUD_PLATFORM_SCOPE, aud: tokens.tokenUri });
      expect(Number(grant.claims.exp) - Number(grant.claims.iat)).toBe(3600);
    }
    expect(tokens.grants.length).toBe(before + 2);
    expect(tokens.tokenUri).not.toBe(GOOGLE_TOKEN_URL);
  });

  it('caches the token per key: one grant for many requests, a second key gets its own', async () => {
    const key = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: PROJECT, tokenUri: tokens.tokenUri });
    const start = tokens.requests;
    const results = await Promise.all([1, 2, 3, 4].map(() => authorize(vertexAdapter, keyCtx(key))));
    const again = await authorize(vertexAnthropicAdapter, keyCtx(key));
    expect(new Set([...results, again].map((r) => r.headers.authorization)).size).toBe(1);
    expect(tokens.requests - start).toBe(1);
    const key2 = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: 'second-project', tokenUri: tokens.tokenUri });
    const second = await authorize(vertexAdapter, keyCtx(key2, { settings: { region: 'global' } }));
    expect(second.headers.authorization).not.toBe(again.headers.authorization);
    expect(tokens.requests - start).toBe(2);
  });

  it('refreshes a token before it expires (the library refreshes within 5 minutes of expiry)', async () => {
    const key = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: PROJECT, tokenUri: tokens.tokenUri });
    tokens.expiresIn = 120;
    try {
      const a = await authorize(vertexAdapter, keyCtx(key));
      const b = await authorize(vertexAdapter, keyCtx(key));
      expect(b.headers.authorization).not.toBe(a.headers.authorization);
    } finally {
      tokens.expiresIn = 3599;
    }
  });

  it('invalid_grant (a key the account does not have) → 401 naming the problem, never the key, the assertion or a token', async () => {
    const key = serviceAccountKey({ email: EMAIL, privateKeyPem: other, projectId: PROJECT, tokenUri: tokens.tokenUri });
    const err = await failure(authorize(vertexAdapter, keyCtx(key)));
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect((err as UpstreamHttpError).status).toBe(401);
    expect(err.message).toBe('vertex: the token endpoint refused the credentials (HTTP 400, invalid_grant: Invalid JWT Signature.)');
    expectNoSecrets(err.message + String(err.stack), key);
  });

  it.each([
    ['not JSON', 'client_email: x', /the credential is not JSON/],
    ['a JSON array', '[1]', /not a JSON object/],
    ['another credential type', JSON.stringify({ type: 'authorized_user', client_secret: 'shh-secret-value', refresh_token: '1//refresh-secret' }), /type is "authorized_user", not "service_account"/],
    ['a key without private_key', JSON.stringify({ type: 'service_account', client_email: EMAIL, project_id: PROJECT }), /has no private_key/],
    ['a private_key that is no PEM', JSON.stringify({ type: 'service_account', client_email: EMAIL, project_id: PROJECT, private_key: 'MIIEvQ-not-a-pem-secret', token_uri: 'http://127.0.0.1:1/token' }), /private_key .* cannot sign/],
    ['a token_uri over plain http to another host', JSON.stringify({ type: 'service_account', client_email: EMAIL, project_id: PROJECT, private_key: 'p', token_uri: 'http://oauth.example.com/token' }), /token_uri must be an https URL/],
  ])('an unusable key (%s) → 401 without its content', async (_what, key, message) => {
    const err = await failure(authorize(vertexAdapter, keyCtx(key, { settings: { region: 'global', project: PROJECT } })));
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect((err as UpstreamHttpError).status).toBe(401);
    expect(err.message).toMatch(message);
    expectNoSecrets(err.message, key, ['shh-secret-value', 'refresh-secret', 'not-a-pem-secret', 'client_email: x']);
  });

  it('a token endpoint answering 503 or out of reach is a TransportError (retried like the provider), without library retries', async () => {
    const key = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: PROJECT, tokenUri: tokens.tokenUri });
    tokens.fail(1, 503, { error: 'temporarily_unavailable' });
    const start = tokens.requests;
    const err = await failure(authorize(vertexAdapter, keyCtx(key)));
    expect(err).toBeInstanceOf(TransportError);
    expect(err).toMatchObject({ failure: 'connect', message: 'vertex: the token endpoint answered HTTP 503 (temporarily_unavailable)' });
    expect(tokens.requests - start).toBe(1);
    // The failure is not cached: the next request gets a token.
    expect((await authorize(vertexAdapter, keyCtx(key))).headers.authorization).toMatch(/^Bearer ya29\.fake-/);

    const closed = await startFakeTokenEndpoint({ email: EMAIL, publicKey });
    const gone = closed.tokenUri;
    await closed.close();
    const unreachable = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: PROJECT, tokenUri: gone });
    const down = await failure(authorize(vertexAdapter, keyCtx(unreachable)));
    expect(down).toBeInstanceOf(TransportError);
    expect(down.message).toMatch(/^vertex: cannot reach the token endpoint \(E[A-Z]+\)$/);
  });

  it("the attempt's cancellation wins over a pending token fetch", async () => {
    const key = serviceAccountKey({ email: EMAIL, privateKeyPem: PEM, projectId: PROJECT, tokenUri: tokens.tokenUri });
    const cancel = new Cancel();
    const reason = new TransportError('timeout', 'total deadline exceeded');
    cancel.abort(reason);
    expect(await failure(authorize(vertexAdapter, keyCtx(key), cancel))).toBe(reason);
  });
});

describe('vertex: workload identity (Application Default Credentials)', () => {
  const saved = { host: process.env.GCE_METADATA_HOST, home: process.env.HOME, gac: process.env.GOOGLE_APPLICATION_CREDENTIALS };
  beforeAll(() => {
    // No gcloud well-known file, no key file: only the (fake) metadata server can answer.
    process.env.HOME = mkdtempSync(join(tmpdir(), 'paygo-vertex-home-'));
    delete process.env.GOOGLE_APPLICATION_CREDENTIALS;
  });
  afterAll(() => {
    for (const [name, value] of [['GCE_METADATA_HOST', saved.host], ['HOME', saved.home], ['GOOGLE_APPLICATION_CREDENTIALS', saved.gac]] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('no metadata server → 401 saying no credentials were found', async () => {
    const closed = await startFakeMetadataServer(PROJECT);
    process.env.GCE_METADATA_HOST = closed.host;
    await closed.close();
    const err = await failure(authorize(vertexAdapter, ctx('gemini-2.0-flash-001', 'global')));
    expect(err).toBeInstanceOf(UpstreamHttpError);
    expect(err.message).toBe(
      'vertex: the target has no credentials.secretRef and Application Default Credentials found none (no workload identity or metadata server)',
    );
  });

  it('without a key the token comes from the metadata server (GCE_METADATA_HOST), scope cloud-platform, cached', async () => {
    const metadata = await startFakeMetadataServer(PROJECT);
    process.env.GCE_METADATA_HOST = metadata.host;
    try {
      const a = await authorize(vertexAnthropicAdapter, ctx('claude-3-5-haiku@20241022', 'us-east5'));
      const b = await authorize(vertexAdapter, ctx('gemini-2.0-flash-001', 'us-east5'));
      const [token] = [...metadata.issued];
      expect(metadata.issued.size).toBe(1);
      expect(a.headers.authorization).toBe(`Bearer ${token}`);
      expect(b.headers.authorization).toBe(`Bearer ${token}`);
      const tokenPaths = metadata.paths.filter((p) => p.includes('/service-accounts/default/token'));
      expect(tokenPaths).toEqual([`/computeMetadata/v1/instance/service-accounts/default/token?scopes=${encodeURIComponent(CLOUD_PLATFORM_SCOPE)}`]);
    } finally {
      await metadata.close();
    }
  });
});

// ---------------------------------------------------------------------------------------------

describe('vertex: target validation (ModelRoute superRefine)', () => {
  const spec = (target: Record<string, unknown>) => ModelRouteSpecSchema.safeParse({ model: 'm', targets: [target] });
  const creds = { secretRef: { name: 'gcp', key: 'key.json' } };

  it.each(['vertex', 'vertex-anthropic'])('%s needs region; project only without credentials', (provider) => {
    const noRegion = spec({ provider, model: 'x', credentials: creds });
    expect(noRegion.success).toBe(false);
    expect(noRegion.error?.issues.map((i) => i.message)).toEqual([`spec.targets[0].region is required for provider ${provider} (the Vertex AI location, e.g. us-central1 or global)`]);
    const noProject = spec({ provider, model: 'x', region: 'us-central1' });
    expect(noProject.success).toBe(false);
    expect(noProject.error?.issues.map((i) => i.message)).toEqual([`spec.targets[0].project is required for provider ${provider} without credentials (workload identity)`]);
    expect(spec({ provider, model: 'x', region: 'global', credentials: creds }).success).toBe(true);
    expect(spec({ provider, model: 'x', region: 'europe-west4', project: 'my-project-42' }).success).toBe(true);
  });
});

describe('vertex: pricing from the catalog', () => {
  const AT = new Date('2025-09-01T12:00:00Z');
  let pricer: Pricer;
  beforeAll(async () => {
    await loadCatalog();
    pricer = new Pricer({ clock: () => AT });
  });
  const usage = { inputTokens: 100_000, outputTokens: 100_000, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };

  it.each([
    // provider, Vertex model id, catalog model, nano-USD for 100k in + 100k out
    ['vertex', 'gemini-2.0-flash-001', 'gemini-2.0-flash', 50_000_000n],
    ['vertex', 'gemini-2.5-flash', 'gemini-2.5-flash', 280_000_000n],
    ['vertex-anthropic', 'claude-3-5-haiku@20241022', 'claude-3-5-haiku', 480_000_000n],
    ['vertex-anthropic', 'claude-sonnet-4-5@20250929', 'claude-sonnet-4-5', 1_800_000_000n],
    ['vertex-anthropic', 'claude-opus-4@20250514', 'claude-4-opus', 9_000_000_000n],
    // not among the catalog's Vertex entries: its anthropic fallback prices it
    ['vertex-anthropic', 'claude-haiku-4-5@20251001', 'claude-haiku-4-5', 600_000_000n],
  ] as const)('%s %s → catalog google/%s', (provider, model, catalogModel, cost) => {
    const q = pricer.price(provider, model, usage, undefined, AT);
    expect(q).toMatchObject({ known: true, source: 'catalog', costNano: cost });
    expect(q.breakdown).toMatchObject({ catalogProvider: 'google', catalogModel });
  });

  it('cache reads are priced at the cache-read rate (Claude 3.5 Haiku on Vertex: $0.80 in, $0.08 cached, $4 out)', () => {
    const q = pricer.price('vertex-anthropic', 'claude-3-5-haiku@20241022', { inputTokens: 1000, outputTokens: 100, cacheReadTokens: 600, cacheWriteTokens: 0, reasoningTokens: 0 }, undefined, AT);
    // 400 uncached × $0.80 + 600 cached × $0.08 + 100 out × $4, per million tokens = $0.000768
    expect(q.costNano).toBe(768_000n);
  });

  it("the catalog's long-context tier applies on Vertex too (Sonnet 4.5 above 200K prompt tokens: $6 in, $22.50 out)", () => {
    const q = pricer.price('vertex-anthropic', 'claude-sonnet-4-5@20250929', { ...usage, inputTokens: 300_000 }, undefined, AT);
    expect(q).toMatchObject({ known: true, costNano: 4_050_000_000n });
    expect(q.breakdown?.tierAboveInputTokens).toBe(200_000);
  });
});
