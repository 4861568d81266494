import { readFile } from 'node:fs/promises';
import { request } from 'undici';
import type { CancelSignal } from '../cancel.js';
import type { ChatCompletionChunk } from '../openai-schema.js';
import type { SseEvent } from '../sse.js';
import { TransportError, untilCancelled } from '../transport.js';
import type { Usage } from '../usage.js';
import { createOpenAIAdapter, type OpenAIDialect } from './openai.js';
import { UpstreamHttpError } from './errors.js';
import { safeCode } from './redact.js';
import type { ProviderAdapter, StreamTranslator, TargetContext, UpstreamRequest } from './types.js';

/**
 * Azure OpenAI (learn.microsoft.com/azure/ai-services/openai/reference, data plane inference,
 * spec azure-rest-api-specs …/AzureOpenAI/inference/stable/2024-10-21/inference.yaml).
 *
 * - Wire format: OpenAI Chat Completions, sent to the deployment:
 *   `{baseURL}/openai/deployments/{deployment}/chat/completions?api-version={apiVersion}` (and
 *   `/embeddings`), where baseURL is the resource endpoint (`https://{resource}.openai.azure.com`
 *   or `https://{resource}.cognitiveservices.azure.com`, bare host) and target.model is the
 *   deployment name. The body has no `model` (the request schema has none; the URL names it).
 * - `max_completion_tokens`: the GA spec deprecates max_tokens "in favor of max_completion_tokens"
 *   and says max_tokens "is not compatible with o1 series models"; reasoning models "will only
 *   work with the max_completion_tokens parameter" (how-to/reasoning). The deployment name hides
 *   the model, so paygo always sends max_completion_tokens, like for OpenAI itself.
 * - `stream_options.include_usage`: in the request schema since 2024-09-01-preview (GA 2024-10-21).
 * - Auth: `api-key: <key>` with credentials.secretRef; without credentials a Microsoft Entra ID
 *   token for https://cognitiveservices.azure.com/.default from the pod's Azure Workload Identity
 *   (`Authorization: Bearer`), see EntraWorkloadIdentity.
 * - Content filtering (concepts/content-filter, concepts/content-streaming): the first stream
 *   event is a prompt annotation (`prompt_filter_results` or `prompt_annotations`, empty
 *   `choices`, empty id and model) and is dropped like every chunk without choices; choices carry
 *   `content_filter_results`, passed on as they are (OpenAI clients ignore unknown fields). With
 *   the Asynchronous Filter, annotation events have choices without `delta` and an empty id and
 *   model: a choice that only annotates is dropped; one that ends the completion
 *   (`finish_reason: "content_filter"`) reaches the client with `delta: {}` under the stream's
 *   id, created and model. A filtered prompt is HTTP 400 `code: "content_filter"` (the request's
 *   fault, passed on to the client); a filtered completion is `finish_reason: "content_filter"`.
 * - Usage: OpenAI's fields (prompt_tokens_details.cached_tokens, completion_tokens_details.reasoning_tokens).
 */

/** Latest GA api-version of the data-plane inference API with deployment URLs. */
export const AZURE_DEFAULT_API_VERSION = '2024-10-21';
/** The Entra ID scope of Azure OpenAI (Cognitive Services). */
export const AZURE_SCOPE = 'https://cognitiveservices.azure.com/.default';
const DEFAULT_AUTHORITY_HOST = 'https://login.microsoftonline.com/';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

function deploymentURL(ctx: TargetContext, path: '/chat/completions' | '/embeddings'): string {
  const version = ctx.settings?.apiVersion ?? AZURE_DEFAULT_API_VERSION;
  return `${ctx.baseURL.replace(/\/+$/, '')}/openai/deployments/${encodeURIComponent(ctx.model)}${path}?api-version=${encodeURIComponent(version)}`;
}

function azureHeaders(ctx: TargetContext): Record<string, string> {
  return ctx.apiKey
    ? { 'content-type': 'application/json', accept: 'application/json', 'api-key': ctx.apiKey }
    : { 'content-type': 'application/json', accept: 'application/json' };
}

const AZURE_DIALECT: OpenAIDialect = {
  provider: 'azure',
  defaultBaseURL: undefined,
  streamUsageOption: true,
  maxTokensField: 'max_completion_tokens',
  embeddings: true,
  url: deploymentURL,
  headers: azureHeaders,
  omitModel: true,
  annotationChoices: true,
  // Azure OpenAI's v1 API: the deployment name is the body's model, no api-version.
  responsesURL: (ctx) => `${ctx.baseURL.replace(/\/+$/, '')}/openai/v1/responses`,
};

type Choice = ChatCompletionChunk['choices'][number];

/**
 * The OpenAI translator plus Azure's content-filter annotations: choices without `delta` are
 * dropped, or, when they end the completion, given `delta: {}` and the stream's id and model.
 * The response model is the last non-empty one (annotation events name the model "").
 */
class AzureStreamTranslator implements StreamTranslator {
  private model: string | undefined;
  private meta: { id: string; created: number } | undefined;

  constructor(
    private readonly inner: StreamTranslator,
    private readonly ctx: TargetContext,
  ) {}

  get finished(): boolean {
    return this.inner.finished;
  }

  get usage(): Usage | undefined {
    return this.inner.usage;
  }

  get responseModel(): string | undefined {
    return this.model;
  }

  push(event: SseEvent): ChatCompletionChunk[] {
    const chunks = this.inner.push(event);
    const model = this.inner.responseModel;
    if (model) this.model = model;
    let annotations = false;
    for (let i = 0; i < chunks.length; i++) {
      const chunk = chunks[i]!;
      if (chunk.id && this.meta === undefined) this.meta = { id: chunk.id, created: chunk.created };
      const choices = chunk.choices;
      for (let j = 0; j < choices.length && !annotations; j++) if (choices[j]!.delta === undefined) annotations = true;
    }
    return annotations ? chunks.flatMap((c) => this.annotated(c)) : chunks;
  }

  /** A chunk with annotation-only choices: what the client gets of it (nothing, or the end). */
  private annotated(chunk: ChatCompletionChunk): ChatCompletionChunk[] {
    const choices: Choice[] = [];
    for (const c of chunk.choices) {
      if (c.delta !== undefined) choices.push(c);
      else if (c.finish_reason != null) choices.push({ ...c, delta: {} });
    }
    if (choices.length === 0) return [];
    if (chunk.id) return [{ ...chunk, choices }];
    return [
      {
        ...chunk,
        id: this.meta?.id ?? this.ctx.responseId,
        object: 'chat.completion.chunk',
        created: this.meta?.created ?? this.ctx.created,
        model: this.model ?? this.ctx.model,
        choices,
      },
    ];
  }
}

/** The pod's Azure Workload Identity, as the webhook injects it into containers. */
export interface WorkloadIdentity {
  authorityHost: string;
  tenantId: string;
  clientId: string;
  tokenFile: string;
}

/** AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE (AZURE_AUTHORITY_HOST optional), or what is missing. */
export function workloadIdentityFromEnv(env: NodeJS.ProcessEnv): WorkloadIdentity | { missing: string[] } {
  const clientId = env.AZURE_CLIENT_ID;
  const tenantId = env.AZURE_TENANT_ID;
  const tokenFile = env.AZURE_FEDERATED_TOKEN_FILE;
  if (!clientId || !tenantId || !tokenFile) {
    const missing = [!clientId && 'AZURE_CLIENT_ID', !tenantId && 'AZURE_TENANT_ID', !tokenFile && 'AZURE_FEDERATED_TOKEN_FILE'].filter((v): v is string => Boolean(v));
    return { missing };
  }
  return { authorityHost: env.AZURE_AUTHORITY_HOST || DEFAULT_AUTHORITY_HOST, tenantId, clientId, tokenFile };
}

/** The token endpoint of an authority host: https, or http on the loopback interface (tests). */
export function tokenEndpoint(id: WorkloadIdentity): string {
  let host: URL;
  try {
    host = new URL(id.authorityHost);
  } catch {
    throw refused('AZURE_AUTHORITY_HOST is not a URL');
  }
  const loopback = host.hostname === '127.0.0.1' || host.hostname === 'localhost' || host.hostname === '[::1]';
  if (host.protocol !== 'https:' && !(host.protocol === 'http:' && loopback)) throw refused('AZURE_AUTHORITY_HOST must be an https URL');
  return `${host.origin}${host.pathname.replace(/\/+$/, '')}/${encodeURIComponent(id.tenantId)}/oauth2/v2.0/token`;
}

function refused(why: string): UpstreamHttpError {
  return new UpstreamHttpError(401, `azure: no Microsoft Entra ID token: ${why}`, undefined);
}

interface CachedToken {
  token: string;
  /** Fetch a new one from here on. */
  refreshAt: number;
  /** Unusable from here on (a safety margin before the real expiry). */
  expiresAt: number;
}

export interface EntraOptions {
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  /** Time allowed for the token request (headers and body), ms. */
  timeoutMs?: number;
}

/**
 * Microsoft Entra ID access tokens for Azure OpenAI from the pod's Azure Workload Identity: the
 * OAuth 2.0 client credentials grant with a federated credential (Microsoft identity platform,
 * v2-oauth2-client-creds-grant-flow, "Third case"): `POST {authority}/{tenant}/oauth2/v2.0/token`,
 * form `scope`, `client_id`, `client_assertion_type=…jwt-bearer`, `client_assertion=<the
 * projected service-account token, re-read from AZURE_FEDERATED_TOKEN_FILE on every fetch>`,
 * `grant_type=client_credentials` → `{token_type, expires_in, access_token}`.
 *
 * Hand-written instead of @azure/identity's WorkloadIdentityCredential: its current release
 * (4.14.1) needs Node ≥ 22 (paygo supports 20.18) and refuses an authority host that is not https
 * ("The authorityHost address must use the 'https' protocol."), so it cannot be tested against a
 * token endpoint on 127.0.0.1; the request is one form POST, no signing involved.
 *
 * A token is reused until 5 minutes (at most half its lifetime) before it expires; concurrent
 * requests share one fetch. A refused request (any HTTP error, an unreadable token file, a body
 * without a token) is UpstreamHttpError 401 naming Entra's error code, never the assertion or a
 * token; an unreachable endpoint is a TransportError. A failed refresh keeps using the previous
 * token while it is valid.
 */
export class EntraWorkloadIdentity {
  private readonly env: NodeJS.ProcessEnv;
  private readonly now: () => number;
  private readonly timeoutMs: number;
  private readonly cache = new Map<string, CachedToken>();
  private readonly inflight = new Map<string, Promise<CachedToken>>();

  constructor(o: EntraOptions = {}) {
    this.env = o.env ?? process.env;
    this.now = o.now ?? Date.now;
    this.timeoutMs = o.timeoutMs ?? 10_000;
  }

  /** A valid access token; waits for a fetch at most until `signal` aborts. */
  async token(signal: CancelSignal): Promise<string> {
    const id = workloadIdentityFromEnv(this.env);
    if ('missing' in id) throw refused(`the target has no credentials and the pod no Azure Workload Identity (${id.missing.join(', ')} not set)`);
    const key = `${id.authorityHost}\u0000${id.tenantId}\u0000${id.clientId}\u0000${id.tokenFile}`;
    const now = this.now();
    const cached = this.cache.get(key);
    if (cached && now < cached.refreshAt) return cached.token;
    let pending = this.inflight.get(key);
    if (!pending) {
      // Cached by the fetch itself: a token is kept even when every waiter gave up meanwhile.
      pending = this.fetch(id)
        .then((fresh) => {
          this.cache.set(key, fresh);
          return fresh;
        })
        .finally(() => this.inflight.delete(key));
      this.inflight.set(key, pending);
    }
    try {
      return (await untilCancelled(pending, signal)).token;
    } catch (err) {
      // The endpoint failed but the previous token still works: use it, try again next time.
      if (cached && this.now() < cached.expiresAt && !signal.aborted) return cached.token;
      throw err;
    }
  }

  private async fetch(id: WorkloadIdentity): Promise<CachedToken> {
    const url = tokenEndpoint(id);
    let assertion: string;
    try {
      assertion = (await readFile(id.tokenFile, 'utf8')).trim();
    } catch (err) {
      throw refused(`cannot read AZURE_FEDERATED_TOKEN_FILE ${id.tokenFile} (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
    }
    if (!assertion) throw refused(`AZURE_FEDERATED_TOKEN_FILE ${id.tokenFile} is empty`);
    const form = new URLSearchParams({ scope: AZURE_SCOPE, client_id: id.clientId, client_assertion_type: JWT_BEARER, client_assertion: assertion, grant_type: 'client_credentials' });
    const sentAt = this.now();
    let status: number;
    let text: string;
    try {
      const res = await request(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: form.toString(),
        headersTimeout: this.timeoutMs,
        bodyTimeout: this.timeoutMs,
      });
      status = res.statusCode;
      text = await res.body.text();
    } catch (err) {
      const code = (err as { code?: string }).code ?? 'error';
      throw new TransportError(/TIMEOUT/.test(code) ? 'timeout' : 'connect', `azure: Microsoft Entra ID token endpoint unreachable (${code})`, { cause: err });
    }
    let body: Record<string, unknown> = {};
    try {
      const parsed: unknown = JSON.parse(text);
      if (parsed && typeof parsed === 'object') body = parsed as Record<string, unknown>;
    } catch {
      /* described by status below */
    }
    if (status < 200 || status >= 300) {
      const codes = Array.isArray(body.error_codes) ? body.error_codes.filter((c) => typeof c === 'number').map((c) => `AADSTS${c}`) : [];
      const code = safeCode(body.error);
      const error = code ? ` ${code}` : '';
      throw refused(`Microsoft Entra ID refused the workload identity of client ${id.clientId} (HTTP ${status}${error}${codes.length ? `, ${codes.join(', ')}` : ''})`);
    }
    const token = body.access_token;
    const lifetime = Number(body.expires_in);
    if (typeof token !== 'string' || !token || !Number.isFinite(lifetime) || lifetime <= 0) {
      throw refused('Microsoft Entra ID answered without an access token');
    }
    const lifetimeMs = lifetime * 1000;
    return { token, refreshAt: sentAt + lifetimeMs - Math.min(300_000, lifetimeMs / 2), expiresAt: sentAt + lifetimeMs - Math.min(30_000, lifetimeMs / 10) };
  }
}



/** The Azure OpenAI adapter; `entra` fetches tokens for targets without credentials. */
export function createAzureAdapter(entra: EntraWorkloadIdentity = new EntraWorkloadIdentity()): ProviderAdapter {
  const wire = createOpenAIAdapter(AZURE_DIALECT);
  return {
    ...wire,
    chatStream(ctx: TargetContext): StreamTranslator {
      return new AzureStreamTranslator(wire.chatStream(ctx), ctx);
    },
    authorize(req: UpstreamRequest, ctx: TargetContext, signal: CancelSignal): Promise<UpstreamRequest> {
      if (ctx.apiKey) return Promise.resolve(req);
      return entra.token(signal).then((token) => ({ url: req.url, headers: { ...req.headers, authorization: `Bearer ${token}` }, body: req.body }));
    },
  };
}

export const azureAdapter = createAzureAdapter();
