import type { ProviderName } from '../../crds/src/index.js';
import type { CancelSignal } from '../cancel.js';
import type { ChatCompletion, ChatCompletionChunk, ChatRequest, EmbeddingsRequest } from '../openai-schema.js';
import type { UpstreamErrorInfo } from './errors.js';
import type { SseEvent } from '../sse.js';
import type { Usage } from '../usage.js';

/** A client API some providers speak natively: its requests to them pass through unchanged. */
export type NativeApi = 'messages' | 'responses';

/** The client's own request, for a target that speaks its API (apis/types.ts Passthrough). */
export interface NativeRequest {
  api: NativeApi;
  /** The client's body as it came (read-only): the adapter sets only the target's model, stream and the output cap. */
  body: Readonly<Record<string, unknown>>;
  /** The output cap after the route's limits and budget admission (the chat request's max tokens). */
  maxTokens: number | undefined;
  /** Client headers the provider should see (e.g. anthropic-beta); never a key. */
  headers: Readonly<Record<string, string>>;
}

/** A native HTTP request to a provider, ready to send. */
export interface UpstreamRequest {
  url: string;
  headers: Record<string, string>;
  body: string;
}

/** What an adapter knows about the target it is talking to. */
export interface TargetContext {
  /** The provider's model id (target.model). */
  model: string;
  /** Base URL: the target override or the provider default (no trailing slash). */
  baseURL: string;
  apiKey: string | undefined;
  /** Unix seconds, used for `created` in translated responses. */
  created: number;
  /** Id for translated responses when the provider gives none. */
  responseId: string;
  /** The target's provider settings and credential parts (shared, never copied per request). */
  settings?: TargetSettings;
  /**
   * The client's request: its texts are removed from upstream text that leaves the sidecar
   * (providers/redact.ts), like the key and credential parts above.
   */
  request?: ChatRequest | EmbeddingsRequest;
}

/** Response headers as the transport gives them. */
export type UpstreamHeaders = Record<string, string | string[] | undefined>;

/** What a target says besides provider, model and key; only some providers use each. */
export interface TargetSettings {
  region?: string | undefined;
  project?: string | undefined;
  apiVersion?: string | undefined;
  /** Credential parts besides the API key (bedrock: accessKeyId, sessionToken). */
  credentialParts?: Readonly<Record<string, string>> | undefined;
}

/** Turns a response body into events for a StreamTranslator; SSE unless the adapter has its own framing. */
export interface StreamDecoder {
  push(bytes: Uint8Array): SseEvent[];
  /** The body ended: whatever complete event is left. */
  end(): SseEvent[];
}

/**
 * Translates one upstream SSE stream into OpenAI chat.completion.chunk objects, event by event.
 * Usage chunks are never returned: usage is captured in `usage` and the caller decides whether
 * the client gets a usage chunk (stream_options.include_usage).
 */
export interface StreamTranslator {
  /** One upstream event → zero or more OpenAI chunks. Throws UpstreamStreamError on an error event. */
  push(event: SseEvent): ChatCompletionChunk[];
  /** True once the provider signalled a complete, successful end of the stream. */
  readonly finished: boolean;
  /** Usage reported by the provider so far (cumulative), if any. */
  readonly usage: Usage | undefined;
  /** The provider's response model id, once known. */
  readonly responseModel: string | undefined;
}

export interface ProviderAdapter {
  readonly provider: ProviderName;
  /** Default base URL; undefined when the target must give one. */
  readonly defaultBaseURL: string | undefined;
  /** Native request for a chat completion. Throws ApiError(400) for what the provider cannot take. */
  chatRequest(req: ChatRequest, ctx: TargetContext, stream: boolean): UpstreamRequest;
  /** Native non-stream success body → OpenAI chat.completion (usage in OpenAI form) + normalised usage. */
  chatResponse(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined };
  chatStream(ctx: TargetContext): StreamTranslator;
  /**
   * Completes a request before it is sent when that needs more than its body: a signature over
   * the final bytes (AWS SigV4) or an access token fetched and cached (OAuth). Absent: sent as is.
   * Unusable credentials: throw UpstreamHttpError 401 (fails over, no retry); a token endpoint
   * out of reach: TransportError (retried like the provider itself).
   */
  authorize?(req: UpstreamRequest, ctx: TargetContext, signal: CancelSignal): Promise<UpstreamRequest>;
  /** The stream's framing when it is not SSE (e.g. AWS event-stream). */
  streamDecoder?(): StreamDecoder;
  /**
   * What a native error answer says: its message through redact.ts `upstreamText` (no key, no
   * key-shaped token, no prompt text), its code and type only when they are `safeCode`s.
   */
  errorInfo(body: string, ctx: TargetContext, headers: UpstreamHeaders): UpstreamErrorInfo;
  /**
   * The client's request passed through to a provider that speaks its API (Messages → Anthropic,
   * Responses → OpenAI): nothing is translated, so everything the API has reaches the provider
   * (thinking, prompt caching, hosted tools…). The answer is read with the Passthrough's reader
   * when it has one, else with chatResponse / chatStream (same wire), and the client gets the
   * provider's own answer. Absent, or undefined for an API it does not speak: the request is
   * translated.
   */
  passthroughRequest?(native: NativeRequest, ctx: TargetContext, stream: boolean): UpstreamRequest | undefined;
  /** The client APIs passthroughRequest takes. */
  readonly nativeApis?: readonly NativeApi[];
  /** Native request for embeddings; absent when the provider has no OpenAI-compatible embeddings API. */
  embeddingsRequest?(req: EmbeddingsRequest, ctx: TargetContext): UpstreamRequest;
}

export function joinURL(base: string, path: string): string {
  return base.replace(/\/+$/, '') + path;
}
