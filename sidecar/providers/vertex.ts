import { createHash } from 'node:crypto';
import type { JWT } from 'google-auth-library';
import type { CancelSignal } from '../cancel.js';
import type { ChatCompletion, ChatRequest } from '../openai-schema.js';
import { TransportError, untilCancelled } from '../transport.js';
import type { Usage } from '../usage.js';
import { anthropicAdapter, anthropicErrorInfo, nativeBody as anthropicBody, passthroughBody } from './anthropic.js';
import { geminiAdapter, geminiErrorInfo, nativeBody as geminiBody } from './gemini.js';
import { UpstreamHttpError, type UpstreamErrorInfo } from './errors.js';
import { safeCode, upstreamText } from './redact.js';
import { joinURL, type NativeRequest, type ProviderAdapter, type StreamTranslator, type TargetContext, type UpstreamRequest } from './types.js';
import { isPlainObject } from './wire.js';

/**
 * Google Vertex AI, two publishers behind one endpoint and one OAuth identity:
 *
 * - `vertex`: Gemini, POST {host}/v1/projects/{project}/locations/{location}/publishers/google/models/{model}
 *   `:generateContent` / `:streamGenerateContent?alt=sse`. The body, the response, the SSE stream
 *   and the usage are the Gemini API's (gemini.ts translates them, unchanged).
 * - `vertex-anthropic`: Claude, POST .../publishers/anthropic/models/{model}`:rawPredict` /
 *   `:streamRawPredict`. The body is the Anthropic Messages body (anthropic.ts) without `model` (it
 *   is in the URL) and with `"anthropic_version": "vertex-2023-10-16"` instead of the
 *   anthropic-version header (docs.anthropic.com/en/api/claude-on-vertex-ai); responses and SSE
 *   events are the Messages API's (anthropic.ts translates them, unchanged).
 *
 * Host by location (cloud.google.com/vertex-ai/generative-ai/docs/learn/locations, and the
 * Anthropic Vertex SDK, packages/vertex-sdk/src/client.ts): `global` → aiplatform.googleapis.com,
 * the multi-regions `us` / `eu` → aiplatform.{us,eu}.rep.googleapis.com, any other location →
 * {location}-aiplatform.googleapis.com. A target `baseURL` replaces the scheme and host (private
 * and VPC-SC endpoints); the /v1/projects/... path is appended to it.
 *
 * Auth (authorize): `Authorization: Bearer <OAuth2 access token>`, scope cloud-platform, through
 * google-auth-library (loaded on first use), never hand-made:
 * - credentials.secretRef = a service-account JSON key: a JWT client per key (cached by the key's
 *   SHA-256), which signs the JWT-bearer assertion, fetches the token and refreshes it before it
 *   expires (5 minutes ahead, the library's default). The project defaults to the key's project_id.
 *   google-auth-library 10 posts the assertion to https://oauth2.googleapis.com/token whatever the
 *   key's `token_uri` says; paygo honours `token_uri` (private token endpoints, test fakes) with the
 *   library's own options: the assertion's `aud` through `additionalClaims`, the URL through a
 *   request interceptor on the client's transporter. `token_uri` must be https (plain http only to
 *   a loopback address).
 * - no credentials: the pod's identity through Application Default Credentials (GKE workload
 *   identity: the metadata server, GCE_METADATA_HOST honoured); `project` is then required.
 * An unusable key (not JSON, not a service_account key, a token endpoint answering 400/401/403 such
 * as invalid_grant) is an UpstreamHttpError 401 whose message names the problem and never contains
 * the key, its private key, the assertion or a token. A token endpoint out of reach, timing out or
 * answering 429/5xx is a TransportError (retried like the provider). The library retries nothing
 * itself: the route's retry policy decides.
 */

export const CLOUD_PLATFORM_SCOPE = 'https://www.googleapis.com/auth/cloud-platform';
export const VERTEX_ANTHROPIC_VERSION = 'vertex-2023-10-16';
/** Where google-auth-library sends every service-account assertion (its gtoken GOOGLE_TOKEN_URL). */
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';

/** The default "base URL": a template filled from the target's location (see vertexHost). */
const DEFAULT_BASE_URL = 'https://{location}-aiplatform.googleapis.com';
/** Longest wait for the token endpoint or the metadata server. */
const TOKEN_TIMEOUT_MS = 15_000;
/** Service-account keys whose clients are kept (a key rotation adds one; the oldest goes first). */
const MAX_CACHED_KEYS = 32;

/** The Vertex AI host of a location. */
export function vertexHost(location: string): string {
  if (location === 'global') return 'https://aiplatform.googleapis.com';
  if (location === 'us' || location === 'eu') return `https://aiplatform.${location}.rep.googleapis.com`;
  return `https://${location}-aiplatform.googleapis.com`;
}

// ---------------------------------------------------------------------------------------------
// Service-account keys

interface ServiceAccountKey {
  clientEmail: string;
  privateKey: string;
  privateKeyId: string | undefined;
  projectId: string | undefined;
  tokenUri: string;
}

type ParsedKey = { ok: true; key: ServiceAccountKey } | { ok: false; problem: string };

const parsedKeys = new Map<string, ParsedKey>();

function keyId(json: string): string {
  return createHash('sha256').update(json).digest('hex');
}

function remember<V>(map: Map<string, V>, id: string, value: V): V {
  if (map.size >= MAX_CACHED_KEYS) map.delete(map.keys().next().value as string);
  map.set(id, value);
  return value;
}

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]']);

/** token_uri: https, or http to this machine (a local fake or proxy); never credentials in the URL. */
function tokenUriProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'its token_uri is not a URL';
  }
  if (url.username || url.password) return 'its token_uri carries user info';
  if (url.protocol === 'https:') return undefined;
  if (url.protocol === 'http:' && (LOOPBACK_HOSTS.has(url.hostname) || url.hostname.startsWith('127.'))) return undefined;
  return 'its token_uri must be an https URL';
}

/** Reads a service-account JSON key; the problem, if any, names fields, never values. */
function parseKey(json: string): ParsedKey {
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    return { ok: false, problem: 'the credential is not JSON (a service-account JSON key is expected)' };
  }
  if (!isPlainObject(parsed)) return { ok: false, problem: 'the credential is not a JSON object (a service-account JSON key is expected)' };
  if (parsed.type !== 'service_account') {
    const type = typeof parsed.type === 'string' && /^[a-z_]{1,40}$/.test(parsed.type) ? `"${parsed.type}"` : 'missing';
    return { ok: false, problem: `the credential's type is ${type}, not "service_account"` };
  }
  const str = (field: string): string | undefined => (typeof parsed[field] === 'string' && parsed[field] !== '' ? (parsed[field] as string) : undefined);
  const clientEmail = str('client_email');
  const privateKey = str('private_key');
  if (!clientEmail) return { ok: false, problem: 'the service-account key has no client_email' };
  if (!privateKey) return { ok: false, problem: 'the service-account key has no private_key' };
  const tokenUri = str('token_uri') ?? GOOGLE_TOKEN_URL;
  const bad = tokenUriProblem(tokenUri);
  if (bad) return { ok: false, problem: `the service-account key is unusable: ${bad}` };
  return { ok: true, key: { clientEmail, privateKey, privateKeyId: str('private_key_id'), projectId: str('project_id'), tokenUri } };
}

function keyOf(json: string): ParsedKey {
  const id = keyId(json);
  return parsedKeys.get(id) ?? remember(parsedKeys, id, parseKey(json));
}

function unusable(provider: string, problem: string): UpstreamHttpError {
  return new UpstreamHttpError(401, `${provider}: ${problem}`, undefined);
}

// ---------------------------------------------------------------------------------------------
// Access tokens

type AuthLib = typeof import('google-auth-library');
let authLib: Promise<AuthLib> | undefined;

/** google-auth-library (and gaxios) cost memory: loaded when a Vertex request first needs a token. */
function loadAuthLib(): Promise<AuthLib> {
  authLib ??= import('google-auth-library').catch((err: unknown) => {
    authLib = undefined;
    throw err;
  });
  return authLib;
}

interface TokenSource {
  token(): Promise<string>;
}

const keyClients = new Map<string, Promise<TokenSource>>();
let adcClient: Promise<TokenSource> | undefined;

/** Library options shared by both clients: no retries of its own, a bounded wait. */
const TRANSPORTER_OPTIONS = { timeout: TOKEN_TIMEOUT_MS, retryConfig: { retry: 0, noResponseRetries: 0 } };

async function serviceAccountSource(key: ServiceAccountKey): Promise<TokenSource> {
  const { JWT: JWTClient } = await loadAuthLib();
  const client: JWT = new JWTClient({
    email: key.clientEmail,
    key: key.privateKey,
    ...(key.privateKeyId ? { keyId: key.privateKeyId } : {}),
    scopes: [CLOUD_PLATFORM_SCOPE],
    // The assertion's audience is the endpoint it is sent to (the library always says GOOGLE_TOKEN_URL).
    additionalClaims: { aud: key.tokenUri },
    transporterOptions: TRANSPORTER_OPTIONS,
  });
  if (key.tokenUri !== GOOGLE_TOKEN_URL) {
    const target = new URL(key.tokenUri);
    client.transporter.interceptors.request.add({
      resolved: async (opts) => {
        if (opts.url instanceof URL && opts.url.href === GOOGLE_TOKEN_URL) opts.url = new URL(target.href);
        return opts;
      },
    });
  }
  return { token: async () => (await client.getAccessToken()).token ?? '' };
}

async function adcSource(): Promise<TokenSource> {
  const { GoogleAuth, gcpMetadata } = await loadAuthLib();
  const auth = new GoogleAuth({ scopes: [CLOUD_PLATFORM_SCOPE], clientOptions: { transporterOptions: TRANSPORTER_OPTIONS } });
  try {
    const client = await auth.getClient();
    return { token: async () => (await client.getAccessToken()).token ?? '' };
  } catch (err) {
    // gcp-metadata remembers a failed probe for the process: probe the metadata server again next time.
    gcpMetadata.resetIsAvailableCache();
    throw err;
  }
}

function tokenSource(apiKey: string | undefined, key: ServiceAccountKey | undefined): Promise<TokenSource> {
  if (!apiKey || !key) {
    adcClient ??= adcSource().catch((err: unknown) => {
      adcClient = undefined; // try the environment again next time
      throw err;
    });
    return adcClient;
  }
  const id = keyId(apiKey);
  const cached = keyClients.get(id);
  if (cached) return cached;
  const created = serviceAccountSource(key).catch((err: unknown) => {
    keyClients.delete(id);
    throw err;
  });
  return remember(keyClients, id, created);
}

/** Forgets every cached key and client (tests). */
export function resetVertexAuth(): void {
  parsedKeys.clear();
  keyClients.clear();
  adcClient = undefined;
}

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'ETIMEDOUT']);

/**
 * A failure to get a token, as the router classifies it. Only status, OAuth error codes and error
 * codes are read from the library's error, never its message or config (which hold the assertion).
 */
function tokenFailure(err: unknown, provider: string, source: string, ctx: TargetContext): Error {
  if (err instanceof TransportError || err instanceof UpstreamHttpError) return err;
  const e = (isPlainObject(err) || err instanceof Error ? err : {}) as {
    name?: unknown;
    code?: unknown;
    status?: unknown;
    response?: { status?: unknown; data?: unknown };
    cause?: { code?: unknown };
    message?: unknown;
  };
  const status = typeof e.response?.status === 'number' ? e.response.status : undefined;
  if (status !== undefined) {
    const data = isPlainObject(e.response?.data) ? e.response.data : {};
    const what = [safeCode(data.error), upstreamText(data.error_description, ctx)].filter(Boolean).join(': ');
    if (status === 400 || status === 401 || status === 403 || status === 404) {
      return unusable(provider, `${source} refused the credentials (HTTP ${status}${what ? `, ${what}` : ''})`);
    }
    return new TransportError('connect', `${provider}: ${source} answered HTTP ${status}${what ? ` (${what})` : ''}`);
  }
  const code = [e.code, e.cause?.code].find((c): c is string => typeof c === 'string');
  if (e.name === 'TimeoutError' || code === 'TimeoutError' || code === 'ETIMEDOUT') return new TransportError('timeout', `${provider}: ${source} timed out`);
  if (code && NETWORK_CODES.has(code)) return new TransportError('connect', `${provider}: cannot reach ${source} (${code})`);
  if (typeof e.message === 'string' && e.message.startsWith('Could not load the default credentials')) {
    return unusable(provider, 'the target has no credentials.secretRef and Application Default Credentials found none (no workload identity or metadata server)');
  }
  if (code?.startsWith('ERR_OSSL') || code === 'ERR_CRYPTO_INVALID_KEY_OBJECT_TYPE') {
    return unusable(provider, 'the private_key of the service-account key cannot sign (an RSA private key in PEM is expected)');
  }
  return unusable(provider, `no access token from ${source} (${safeCode(e.name) ?? 'error'}${safeCode(code) ? ` ${code}` : ''})`);
}

async function accessToken(provider: string, ctx: TargetContext, signal: CancelSignal): Promise<string> {
  let key: ServiceAccountKey | undefined;
  if (ctx.apiKey) {
    const parsed = keyOf(ctx.apiKey);
    if (!parsed.ok) throw unusable(provider, parsed.problem);
    key = parsed.key;
  }
  const source = key ? 'the token endpoint' : 'Application Default Credentials';
  let token: string;
  try {
    token = await untilCancelled(
      tokenSource(ctx.apiKey, key).then((s) => s.token()),
      signal,
    );
  } catch (err) {
    throw tokenFailure(err, provider, source, ctx);
  }
  if (!token) throw unusable(provider, `${source} returned no access token`);
  return token;
}

// ---------------------------------------------------------------------------------------------
// Requests

function location(provider: string, ctx: TargetContext): string {
  const loc = ctx.settings?.region;
  if (!loc) throw unusable(provider, 'the target has no region (the Vertex AI location, e.g. us-central1 or global)');
  return loc;
}

/** The target's project, else the key's project_id. */
function project(provider: string, ctx: TargetContext): string {
  const explicit = ctx.settings?.project;
  if (explicit) return explicit;
  if (ctx.apiKey) {
    const parsed = keyOf(ctx.apiKey);
    if (!parsed.ok) throw unusable(provider, parsed.problem);
    if (parsed.key.projectId) return parsed.key.projectId;
    throw unusable(provider, 'the target has no project and the service-account key has no project_id');
  }
  throw unusable(provider, 'the target has no project (required without a service-account key)');
}

/** Model ids go into the path as one segment; '@' (claude-3-5-haiku@20241022) stays as the docs write it. */
function modelSegment(model: string): string {
  return encodeURIComponent(model).replace(/%40/g, '@');
}

function modelURL(provider: string, ctx: TargetContext, publisher: 'google' | 'anthropic', method: string): string {
  const loc = location(provider, ctx);
  const base = ctx.baseURL === DEFAULT_BASE_URL ? vertexHost(loc) : ctx.baseURL;
  const path = `/v1/projects/${encodeURIComponent(project(provider, ctx))}/locations/${encodeURIComponent(loc)}/publishers/${publisher}/models/${modelSegment(ctx.model)}:${method}`;
  return joinURL(base, path);
}

function authorizer(provider: string) {
  return async (req: UpstreamRequest, ctx: TargetContext, signal: CancelSignal): Promise<UpstreamRequest> => {
    const token = await accessToken(provider, ctx, signal);
    return { ...req, headers: { ...req.headers, authorization: `Bearer ${token}` } };
  };
}

/** Anthropic's error body (its error has a `type`), else Google's {"error":{"code","message","status"}} (also wrapped in an array). */
function vertexErrorInfo(body: string, ctx: TargetContext): UpstreamErrorInfo {
  const claude = anthropicErrorInfo(body, ctx);
  return claude.code !== undefined ? claude : geminiErrorInfo(body, ctx);
}

export const vertexAdapter: ProviderAdapter = {
  provider: 'vertex',
  defaultBaseURL: DEFAULT_BASE_URL,

  chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
    const body = JSON.stringify(geminiBody(req));
    const url = modelURL('vertex', ctx, 'google', stream ? 'streamGenerateContent?alt=sse' : 'generateContent');
    return { url, headers: { 'content-type': 'application/json', accept: stream ? 'text/event-stream' : 'application/json' }, body };
  },

  chatResponse(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined } {
    return geminiAdapter.chatResponse(body, ctx);
  },

  chatStream(ctx: TargetContext): StreamTranslator {
    return geminiAdapter.chatStream(ctx);
  },

  authorize: authorizer('vertex'),
  errorInfo: vertexErrorInfo,
};

export const vertexAnthropicAdapter: ProviderAdapter = {
  provider: 'vertex-anthropic',
  defaultBaseURL: DEFAULT_BASE_URL,

  chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest {
    const { model: _model, ...messages } = anthropicBody(req, ctx, stream);
    const body = JSON.stringify({ anthropic_version: VERTEX_ANTHROPIC_VERSION, ...messages });
    const url = modelURL('vertex-anthropic', ctx, 'anthropic', stream ? 'streamRawPredict' : 'rawPredict');
    return { url, headers: { 'content-type': 'application/json' }, body };
  },

  // The model is in the URL and the version in the body (anthropic-beta is not forwarded: Vertex
  // takes Claude's betas its own way).
  nativeApis: ['messages'],
  passthroughRequest(native: NativeRequest, ctx: TargetContext, stream: boolean): UpstreamRequest | undefined {
    if (native.api !== 'messages') return undefined;
    const { model: _model, ...messages } = passthroughBody(native, ctx.model, stream);
    const url = modelURL('vertex-anthropic', ctx, 'anthropic', stream ? 'streamRawPredict' : 'rawPredict');
    return { url, headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...messages, anthropic_version: VERTEX_ANTHROPIC_VERSION }) };
  },

  chatResponse(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined } {
    return anthropicAdapter.chatResponse(body, ctx);
  },

  chatStream(ctx: TargetContext): StreamTranslator {
    return anthropicAdapter.chatStream(ctx);
  },

  authorize: authorizer('vertex-anthropic'),
  errorInfo: vertexErrorInfo,
};
