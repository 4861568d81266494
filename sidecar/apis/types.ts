import type { ApiError } from '../errors.js';
import type { ChatCompletion, ChatCompletionChunk } from '../openai-schema.js';
import type { Usage } from '../usage.js';
import type { NativeApi, StreamTranslator, TargetContext } from '../providers/types.js';
import type { SseEvent } from '../sse.js';
import { isPlainObject } from '../json-values.js';

/**
 * The client APIs the sidecar serves. Every one of them meets the router and the adapters
 * through one internal representation, OpenAI Chat Completions (openai-schema.ts): a front door
 * turns its request into a ChatRequest, and the chat pipeline's answer (a ChatCompletion, or a
 * stream of ChatCompletionChunks) back into its own shape.
 */
export type ApiName = 'chat' | 'responses' | 'messages';

/** What the metered request cost, as the caller is told it. */
export interface CallerCost {
  /** USD; undefined when the model has no known price (unknown, not zero). */
  usd: number | undefined;
  /** True when usage was estimated by paygo's tokenizer (the provider reported none, or the stream was cut). */
  estimated: boolean;
}

/** A stream's failure after bytes reached the client (the message is already redacted). */
export interface StreamFailure {
  message: string;
  type: string;
  code: string;
}

/**
 * Turns the chat pipeline's stream (translated OpenAI chunks, usage chunks never included) into
 * one API's SSE text. One encoder per request; calls come in this order: push* then exactly one
 * of finish or fail.
 */
export interface StreamEncoder {
  /** Chat chunks → the API's SSE text ('' when nothing is due yet). The first call emits the opening events. */
  push(chunks: ChatCompletionChunk[]): string;
  /** The stream completed: the closing events, with usage in the API's own shape and the cost. */
  finish(usage: Usage, cost: CallerCost): string;
  /** The stream failed after it started: the API's error event(s). */
  fail(failure: StreamFailure): string;
}

/** `usage.cost` as clients receive it (OpenRouter's convention: a USD number); absent when unpriced. */
export function costField(cost: CallerCost): { cost?: number } {
  return cost.usd === undefined ? {} : { cost: cost.usd };
}

/**
 * One request's way through the chat pipeline, as its API sees it: how an answer, a stream and
 * an error are shaped. The request itself (a ChatRequest) comes from the door's own parser.
 */
export interface FrontDoor {
  readonly api: ApiName;
  /** The stream's encoder (called once, when the request streams). */
  encoder(): StreamEncoder;
  /** A non-streamed answer in the API's shape, usage and cost included. */
  respond(completion: ChatCompletion, usage: Usage, cost: CallerCost): unknown;
  /** An error answer in the API's shape (status may differ from err.status only where the API says so). */
  error(err: ApiError): { status: number; body: unknown };
  /** Response headers the API's clients expect besides paygo's own. */
  headers?(requestId: string): Record<string, string>;
  /** Set when providers that speak this API natively get the request as it came. */
  readonly passthrough?: Passthrough;
  /**
   * Set when only such providers can answer (the request cannot be translated, for this
   * reason): every other target is skipped with it, and the response cache is not used.
   */
  readonly passthroughOnly?: ApiError;
}

/**
 * A request that can pass through to providers speaking the client's API: its body, and how the
 * provider's own answers reach the client (only usage.cost is added to them).
 */
export interface Passthrough {
  readonly api: NativeApi;
  readonly body: Readonly<Record<string, unknown>>;
  /** Client headers forwarded to the provider (never a key). */
  readonly headers: Readonly<Record<string, string>>;
  /** The provider's non-stream answer with usage.cost added. */
  respond(native: unknown, cost: CallerCost): unknown;
  /** The provider's stream events as they came, the usage event held back until the cost is known. */
  encoder(): NativeStreamEncoder;
  /** How the provider's answers are read for metering, when the adapter's chat readers do not speak this API. */
  readonly reader?: PassthroughReader;
  /** An event that starts the answer, before any chat chunk exists: the stream commits on it. */
  readonly opensAnswer?: (ev: SseEvent) => boolean;
}

/** Reads a passed-through API's answers into what metering and tracing need. */
export interface PassthroughReader {
  response(body: unknown, ctx: TargetContext): { completion: ChatCompletion; usage: Usage | undefined };
  stream(ctx: TargetContext): StreamTranslator;
}

/** The provider's own answer with `usage.cost` added (the body is not otherwise touched). */
export function withUsageCost(native: unknown, cost: CallerCost): unknown {
  if (!isPlainObject(native)) return native;
  const usage = isPlainObject(native.usage) ? native.usage : {};
  return { ...native, usage: { ...usage, ...costField(cost) } };
}

/** An error in OpenAI's shape, the status kept (Chat Completions and Responses). */
export function openAIErrorAnswer(err: ApiError): { status: number; body: unknown } {
  return { status: err.status, body: err.toJSON() };
}

/**
 * The door of a request only providers speaking its API can answer (`reason`: why it cannot be
 * translated): its API's error shape and headers, the passthrough, and no translation — every
 * answer is the provider's own, so the door's encoder and respond are never reached.
 */
export function passthroughOnlyDoor(shape: Pick<FrontDoor, 'api' | 'error' | 'headers'>, passthrough: Passthrough, reason: ApiError): FrontDoor {
  const unreachable = (): never => {
    throw reason;
  };
  // Field by field: a spread of `shape` (it holds functions) would take a new hidden class per request.
  return { api: shape.api, error: shape.error, headers: shape.headers, passthrough, passthroughOnly: reason, encoder: unreachable, respond: unreachable };
}

/** StreamEncoder's twin for a provider's own events (Passthrough). */
export interface NativeStreamEncoder {
  push(events: readonly SseEvent[]): string;
  finish(usage: Usage, cost: CallerCost): string;
  fail(failure: StreamFailure): string;
}
