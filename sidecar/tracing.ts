import type { IncomingHttpHeaders } from 'node:http';
import type { ProviderName } from '../crds/src/index.js';
import { formatUsd } from '../crds/src/money.js';
import type { ApiError } from './errors.js';
import type { MeterResult, RequestRecord } from './metering/record.js';
import type { ChatCompletion, ChatRequest, EmbeddingsRequest } from './openai-schema.js';
import type { AttemptObserver } from './router/dispatch.js';
import type { RuntimeRoute, RuntimeTarget } from './router/runtime.js';

/**
 * What the request path sees of OpenTelemetry tracing, and what the spans say. This module
 * imports no OpenTelemetry package: main.ts loads the SDK (`tracing-sdk.ts`) only when tracing
 * is on, and with tracing off the request path holds no trace object at all (every call
 * site is `trace?.…`).
 *
 * Spans (OpenTelemetry GenAI semantic conventions): one SERVER span per request, named
 * `{gen_ai.operation.name} {gen_ai.request.model}` (`chat support-bot`), the child of the app's
 * `traceparent`; one CLIENT span per upstream attempt, named with the provider's model
 * (`chat gpt-4o-mini`), whose context goes upstream as `traceparent`. Prompt and completion text
 * is recorded only on routes with `spec.tracing.recordContent: true`.
 */

/** What a finished request produced, for the spans. */
export interface TracedOutput {
  finishReasons: string[];
  /** The assistant messages, only computed when the route records content. */
  messages?: () => OutputMessage[];
}

/** One request's trace: the request span and its attempt spans. */
export interface RequestTrace extends AttemptObserver {
  /** The body is parsed: names the span after the model the app asked for. */
  requested(req: ChatRequest | EmbeddingsRequest): void;
  /** The route that serves the request (after a budget downgrade, the one it went to) and the request as sent. */
  routed(route: RuntimeRoute, req: ChatRequest | EmbeddingsRequest): void;
  /** Adds the current attempt's context (traceparent, tracestate) to the upstream request's headers. */
  inject(headers: Record<string, string>): void;
  /** The metered end of the request: usage, cost, outcome; ends the spans. */
  finish(rec: RequestRecord, cost: MeterResult, end?: { output?: TracedOutput; error?: { code: string; message: string } }): void;
  /** Ends the request with this error, unless finish() already ended it. */
  fail(err: ApiError): void;
}

export interface Tracing {
  startRequest(operation: RequestRecord['operation'], headers: IncomingHttpHeaders): RequestTrace;
  /** Exports what is buffered and stops (at most `timeoutMs`). */
  shutdown(timeoutMs: number): Promise<void>;
}

export interface TracingConfig {
  /** The OTLP/HTTP traces URL from --otlp-endpoint; undefined: the exporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT. */
  url: string | undefined;
}

/**
 * Whether tracing is on: an endpoint from --otlp-endpoint (PAYGO_OTLP_ENDPOINT),
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, unless OTEL_SDK_DISABLED=true
 * or OTEL_TRACES_EXPORTER=none. --otlp-endpoint is a base URL like OTEL_EXPORTER_OTLP_ENDPOINT
 * (`/v1/traces` is appended unless it is already there).
 */
export function tracingConfig(otlpEndpoint: string | undefined, env: Record<string, string | undefined>): TracingConfig | undefined {
  if (env.OTEL_SDK_DISABLED?.trim().toLowerCase() === 'true') return undefined;
  if (env.OTEL_TRACES_EXPORTER?.trim().toLowerCase() === 'none') return undefined;
  if (otlpEndpoint) return { url: otlpEndpoint.replace(/\/+$/, '').replace(/(\/v1\/traces)?$/, '/v1/traces') };
  if (env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT) return { url: undefined };
  return undefined;
}

/** paygo provider → `gen_ai.provider.name` (the semantic conventions' well-known values; others by paygo's name). */
const GENAI_PROVIDER: Partial<Record<ProviderName, string>> = {
  openai: 'openai',
  azure: 'azure.ai.openai',
  anthropic: 'anthropic',
  gemini: 'gcp.gemini',
  vertex: 'gcp.vertex_ai',
  'vertex-anthropic': 'gcp.vertex_ai',
  bedrock: 'aws.bedrock',
  cohere: 'cohere',
  deepseek: 'deepseek',
  mistral: 'mistral_ai',
  xai: 'x_ai',
  groq: 'groq',
  perplexity: 'perplexity',
};

export function genAiProviderName(provider: ProviderName): string {
  return GENAI_PROVIDER[provider] ?? provider;
}

export type Attributes = Record<string, string | number | boolean | string[]>;

/** The request span's name: `{operation} {model}`, or the operation alone before the body is read. */
export function requestSpanName(operation: string, model: string | undefined): string {
  return model ? `${operation} ${model}` : operation;
}

/** Attributes of the request as the app sent it (before routing). */
export function requestedAttributes(operation: RequestRecord['operation'], req: ChatRequest | EmbeddingsRequest): Attributes {
  const a: Attributes = { 'gen_ai.operation.name': operation, 'gen_ai.request.model': req.model };
  const chat = asChat(req);
  if (chat) {
    if (chat.temperature != null) a['gen_ai.request.temperature'] = chat.temperature;
    if (chat.top_p != null) a['gen_ai.request.top_p'] = chat.top_p;
    if (chat.stream) a['paygo.stream'] = true;
  }
  return a;
}

/** Attributes known once the route is chosen (max_tokens after the route's and budgets' caps). */
export function routedAttributes(route: RuntimeRoute, req: ChatRequest | EmbeddingsRequest): Attributes {
  const a: Attributes = { 'paygo.route': route.name, 'paygo.namespace': route.namespace };
  const chat = asChat(req);
  if (chat) {
    const max = chat.max_completion_tokens ?? chat.max_tokens;
    if (max != null) a['gen_ai.request.max_tokens'] = max;
    if (route.recordContent) a['gen_ai.input.messages'] = JSON.stringify(inputMessages(chat));
  }
  return a;
}

function asChat(req: ChatRequest | EmbeddingsRequest): ChatRequest | undefined {
  return Array.isArray((req as ChatRequest).messages) ? (req as ChatRequest) : undefined;
}

/** Attributes of an attempt span: the target, its provider's host and port. */
export function attemptAttributes(operation: RequestRecord['operation'], route: RuntimeRoute | undefined, target: RuntimeTarget, n: number): Attributes {
  const a: Attributes = {
    'gen_ai.operation.name': operation,
    'gen_ai.provider.name': genAiProviderName(target.provider),
    'gen_ai.request.model': target.model,
    'paygo.target': target.name,
    'paygo.attempt.number': n,
  };
  if (route) a['paygo.route'] = route.name;
  const server = serverOf(target.baseURL);
  if (server) {
    a['server.address'] = server.address;
    a['server.port'] = server.port;
  }
  return a;
}

const servers = new Map<string, { address: string; port: number } | undefined>();

/** server.address / server.port of a base URL (cached: a few distinct base URLs per config). */
export function serverOf(baseURL: string): { address: string; port: number } | undefined {
  if (servers.has(baseURL)) return servers.get(baseURL);
  let server: { address: string; port: number } | undefined;
  try {
    const u = new URL(baseURL);
    const port = u.port ? Number(u.port) : u.protocol === 'https:' ? 443 : u.protocol === 'http:' ? 80 : undefined;
    server = port === undefined ? undefined : { address: u.hostname.replace(/^\[|\]$/g, ''), port };
  } catch {
    server = undefined;
  }
  if (servers.size > 1000) servers.clear();
  servers.set(baseURL, server);
  return server;
}

/** The outcome of the attempt the router committed to, from the request's end. */
export function committedOutcome(rec: RequestRecord): string {
  if (rec.outcome === 'success') return 'success';
  if (rec.outcome === 'client_aborted') return 'aborted';
  return rec.outcome;
}

/** Usage, response model, finish reasons and cost: for the request span and the attempt that served it. */
export function resultAttributes(rec: RequestRecord, cost: MeterResult, output: TracedOutput | undefined): Attributes {
  const a: Attributes = {};
  if (rec.responseModel) a['gen_ai.response.model'] = rec.responseModel;
  if (rec.usage) {
    a['gen_ai.usage.input_tokens'] = rec.usage.inputTokens;
    a['gen_ai.usage.output_tokens'] = rec.usage.outputTokens;
    if (rec.usage.cacheReadTokens) a['gen_ai.usage.cache_read.input_tokens'] = rec.usage.cacheReadTokens;
    if (rec.usage.cacheWriteTokens) a['gen_ai.usage.cache_creation.input_tokens'] = rec.usage.cacheWriteTokens;
    a['paygo.usage.estimated'] = rec.estimated;
    if (cost.priced) a['paygo.cost_usd'] = formatUsd(cost.costNano);
  }
  if (output && output.finishReasons.length > 0) a['gen_ai.response.finish_reasons'] = output.finishReasons;
  return a;
}

/** The request span's closing attributes: where it went, how it ended. */
export function requestEndAttributes(rec: RequestRecord): Attributes {
  const a: Attributes = {
    'paygo.route': rec.route,
    'paygo.namespace': rec.namespace,
    'paygo.attempts': rec.attempts,
    'paygo.outcome': rec.outcome,
    'http.response.status_code': rec.status,
  };
  if (rec.target) a['paygo.target'] = rec.target;
  if (rec.provider) a['gen_ai.provider.name'] = genAiProviderName(rec.provider);
  if (rec.cache) a['paygo.cache'] = rec.cache;
  if (rec.errorType) a['error.type'] = rec.errorType;
  return a;
}

/**
 * The status message of a failed request: the ApiError's message (paygo's own text, or a
 * provider's already passed through redact.ts) — except for a body paygo could not read, whose
 * message may quote the body (JSON.parse quotes it): then only the code.
 */
export function errorStatusMessage(err: Pick<ApiError, 'code' | 'message'>): string {
  if (err.code === 'invalid_json' || err.code === 'invalid_request') return err.code;
  return err.message;
}

/** Semantic-convention message parts (`gen_ai.input.messages`). */
type Part =
  | { type: 'text'; content: string }
  | { type: 'tool_call'; id?: string; name: string; arguments: string }
  | { type: 'tool_call_response'; id?: string; response: string }
  | { type: string };

export interface OutputMessage {
  role: 'assistant';
  parts: Part[];
  finish_reason: string;
}

/** The chat request's messages in the GenAI semantic conventions' shape (`[{role, parts}]`). */
export function inputMessages(req: ChatRequest): Array<{ role: string; parts: Part[] }> {
  return req.messages.map((m) => {
    const msg = m as { role: string; content?: unknown; tool_calls?: Array<{ id?: string; function?: { name?: string; arguments?: string } }>; tool_call_id?: string };
    const parts: Part[] = [];
    if (msg.role === 'tool') {
      parts.push({ type: 'tool_call_response', id: msg.tool_call_id, response: contentText(msg.content) });
    } else if (typeof msg.content === 'string') {
      parts.push({ type: 'text', content: msg.content });
    } else if (Array.isArray(msg.content)) {
      for (const p of msg.content as Array<{ type?: string; text?: unknown }>) {
        parts.push(p.type === 'text' && typeof p.text === 'string' ? { type: 'text', content: p.text } : { type: String(p.type ?? 'unknown') });
      }
    }
    for (const call of msg.tool_calls ?? []) parts.push({ type: 'tool_call', id: call.id, name: call.function?.name ?? '', arguments: call.function?.arguments ?? '' });
    return { role: msg.role, parts };
  });
}

function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p: { text?: unknown }) => (typeof p.text === 'string' ? p.text : '')).join('');
  return '';
}

/** A non-stream completion's choices as output messages. */
export function completionMessages(c: ChatCompletion): OutputMessage[] {
  return (c.choices ?? []).map((choice) => {
    const parts: Part[] = [];
    if (choice.message?.content) parts.push({ type: 'text', content: choice.message.content });
    for (const call of choice.message?.tool_calls ?? []) parts.push({ type: 'tool_call', id: call.id, name: call.function.name, arguments: call.function.arguments });
    return { role: 'assistant', parts, finish_reason: choice.finish_reason ?? '' };
  });
}

/** A completion's finish reasons, one per choice. */
export function completionFinishReasons(c: ChatCompletion): string[] {
  const out: string[] = [];
  for (const choice of c.choices ?? []) if (choice.finish_reason) out.push(choice.finish_reason);
  return out;
}
