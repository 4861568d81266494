import type { ChatCompletion, ChatCompletionChunk, ChatRequest, FinishReason, ToolCall } from '../openai-schema.js';
import { isPlainObject, num } from '../json-values.js';
import { UpstreamProtocolError, UpstreamStreamError } from '../providers/errors.js';
import type { StreamTranslator, TargetContext } from '../providers/types.js';
import { sseEvent, type SseEvent } from '../sse.js';
import type { Usage } from '../usage.js';
import { withUsageCost, type CallerCost, type NativeStreamEncoder, type Passthrough, type PassthroughReader, type StreamFailure } from './types.js';
import type { ApiError } from '../errors.js';
import { countableChatRequest } from './countable.js';

/**
 * A Responses request only OpenAI itself can answer — hosted tools (web search, file search,
 * code interpreter, …), or ids the sidecar never issued (the provider's own) — passed through
 * unchanged to the route's `openai` and `azure` targets (only `model`, the output cap and
 * `stream` set for the target); every other target is skipped with the reason the request
 * could not be translated. The client gets the provider's answer as it came, `usage.cost` added
 * (streams: `response.completed` / `response.incomplete` wait until the request is metered).
 * The sidecar keeps none of it: the provider holds that state (store), under its own ids.
 */
export function responsesPassthrough(body: Readonly<Record<string, unknown>>): Passthrough {
  return { api: 'responses', body, headers: {}, respond: withUsageCost, encoder: () => new ResponsesPassthroughEncoder(), reader: RESPONSES_READER };
}

/** What limits and budgets see of a Responses request that passes through (see countable.ts). */
export function countableResponsesRequest(body: Readonly<Record<string, unknown>>, reason: ApiError): ChatRequest {
  return countableChatRequest(body, [body.instructions, body.input], body.max_output_tokens, reason);
}


/** Responses-wire usage → Usage (input_tokens counts cached ones too, as prompt_tokens does). */
function usageOf(u: unknown): Usage | undefined {
  if (!isPlainObject(u)) return undefined;
  const input = isPlainObject(u.input_tokens_details) ? u.input_tokens_details : {};
  const output = isPlainObject(u.output_tokens_details) ? u.output_tokens_details : {};
  return { inputTokens: num(u.input_tokens), outputTokens: num(u.output_tokens), cacheReadTokens: num(input.cached_tokens), cacheWriteTokens: 0, reasoningTokens: num(output.reasoning_tokens) };
}

function finishOf(response: Record<string, unknown>, calls: number): FinishReason {
  const incomplete = isPlainObject(response.incomplete_details) ? response.incomplete_details.reason : undefined;
  if (incomplete === 'max_output_tokens') return 'length';
  if (incomplete === 'content_filter') return 'content_filter';
  return calls > 0 ? 'tool_calls' : 'stop';
}

/** A Response object as a ChatCompletion: what metering, tracing and the estimate of a cut stream read. */
function completionOf(response: Record<string, unknown>, ctx: TargetContext): ChatCompletion {
  let text = '';
  const calls: ToolCall[] = [];
  for (const item of Array.isArray(response.output) ? response.output : []) {
    if (!isPlainObject(item)) continue;
    if (item.type === 'message' && Array.isArray(item.content)) {
      for (const part of item.content as unknown[]) if (isPlainObject(part) && typeof part.text === 'string') text += part.text;
    } else if (item.type === 'function_call') {
      calls.push({ id: String(item.call_id ?? ''), type: 'function', function: { name: String(item.name ?? ''), arguments: String(item.arguments ?? '') } });
    }
  }
  return {
    id: typeof response.id === 'string' ? response.id : ctx.responseId,
    object: 'chat.completion',
    created: num(response.created_at) || ctx.created,
    model: typeof response.model === 'string' ? response.model : ctx.model,
    choices: [{ index: 0, message: { role: 'assistant', content: text || null, ...(calls.length > 0 && { tool_calls: calls }) }, finish_reason: finishOf(response, calls.length) }],
  };
}

const RESPONSES_READER: PassthroughReader = {
  response(body, ctx) {
    if (!isPlainObject(body)) throw new UpstreamProtocolError('the Responses API answer is not a JSON object');
    return { completion: completionOf(body, ctx), usage: usageOf(body.usage) };
  },
  stream: (ctx) => new ResponsesEventReader(ctx),
};

/** Reads Responses streaming events for metering: text and calls as chat chunks, the usage, the end. */
class ResponsesEventReader implements StreamTranslator {
  finished = false;
  usage: Usage | undefined;
  responseModel: string | undefined;
  private id: string;
  private calls = 0;

  constructor(private readonly ctx: TargetContext) {
    this.id = ctx.responseId;
  }

  push(event: SseEvent): ChatCompletionChunk[] {
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      throw new UpstreamProtocolError('a Responses stream event is not JSON');
    }
    if (!isPlainObject(data)) return [];
    switch (data.type) {
      case 'response.created': {
        const response = isPlainObject(data.response) ? data.response : {};
        if (typeof response.id === 'string') this.id = response.id;
        if (typeof response.model === 'string') this.responseModel = response.model;
        // The stream commits here: a hosted tool may run for seconds before any text.
        return [this.chunk({ role: 'assistant', content: '' })];
      }
      case 'response.output_text.delta':
        return typeof data.delta === 'string' ? [this.chunk({ content: data.delta })] : [];
      case 'response.output_item.added': {
        const item = isPlainObject(data.item) ? data.item : {};
        if (item.type !== 'function_call') return [];
        return [this.chunk({ tool_calls: [{ index: this.calls++, id: String(item.call_id ?? ''), type: 'function', function: { name: String(item.name ?? ''), arguments: '' } }] })];
      }
      case 'response.function_call_arguments.delta':
        return typeof data.delta === 'string' ? [this.chunk({ tool_calls: [{ index: Math.max(0, this.calls - 1), function: { arguments: data.delta } }] })] : [];
      case 'response.completed':
      case 'response.incomplete': {
        const response = isPlainObject(data.response) ? data.response : {};
        this.usage = usageOf(response.usage);
        if (typeof response.model === 'string') this.responseModel = response.model;
        this.finished = true;
        return [this.chunk({}, finishOf(response, this.calls))];
      }
      case 'response.failed': {
        const response = isPlainObject(data.response) ? data.response : {};
        const error = isPlainObject(response.error) ? response.error : {};
        throw new UpstreamStreamError('the provider reported the response as failed', typeof error.code === 'string' ? error.code : 'server_error');
      }
      case 'error':
        throw new UpstreamStreamError('the provider sent an error event', typeof data.code === 'string' ? data.code : 'server_error');
      default:
        return [];
    }
  }

  private chunk(delta: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null = null): ChatCompletionChunk {
    return { id: this.id, object: 'chat.completion.chunk', created: this.ctx.created, model: this.responseModel ?? this.ctx.model, choices: [{ index: 0, delta, finish_reason: finish }] };
  }
}


const CLOSING = new Set(['response.completed', 'response.incomplete']);

/** The provider's events as they came; the closing one waits for the cost (response.usage.cost). */
class ResponsesPassthroughEncoder implements NativeStreamEncoder {
  private readonly held: SseEvent[] = [];

  push(events: readonly SseEvent[]): string {
    let out = '';
    for (const ev of events) {
      if (ev.event !== undefined && CLOSING.has(ev.event)) this.held.push(ev);
      else out += sseEvent(ev);
    }
    return out;
  }

  finish(_usage: Usage, cost: CallerCost): string {
    let out = '';
    for (const ev of this.held) {
      const data = JSON.parse(ev.data) as Record<string, unknown>;
      out += sseEvent({ event: ev.event, data: JSON.stringify({ ...data, response: withUsageCost(data.response, cost) }) });
    }
    return out;
  }

  fail(f: StreamFailure): string {
    return sseEvent({ event: 'error', data: JSON.stringify({ type: 'error', code: f.code, message: f.message, param: null }) });
  }
}
