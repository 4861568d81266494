import type { FinishReason, Message } from '../openai-schema.js';
import type { Usage } from '../usage.js';
import { costField, type CallerCost } from './types.js';
import type { ItemStatus, OutputItem, OutputMessageItem, ResponseObject, ResponseStatus, ResponseUsage } from './responses-types.js';

/**
 * Building the Response object (shared by the non-stream answer and the stream encoder) from
 * one turn's fixed parts: its id, creation time, the request fields OpenAI echoes, and how the
 * finished response is kept.
 */
export interface ResponseContext {
  id: string;
  /** Seconds since the epoch. */
  createdAt: number;
  /** The model the request named (a paygo route), until the provider's own model is known. */
  requestModel: string;
  /** The echoed request fields, in OpenAI's order. */
  echo: EchoFields;
  /** A new item id: `msg_…`, `fc_…`, or `call_…` for a tool call that came without one. */
  itemId(prefix: 'msg' | 'fc' | 'call'): string;
  /** Stores the finished response (when the request did not say store: false). */
  keep(response: ResponseObject): void;
}

export type EchoFields = Pick<
  ResponseObject,
  | 'instructions'
  | 'max_output_tokens'
  | 'parallel_tool_calls'
  | 'previous_response_id'
  | 'reasoning'
  | 'store'
  | 'temperature'
  | 'text'
  | 'tool_choice'
  | 'tools'
  | 'top_p'
  | 'truncation'
  | 'user'
  | 'metadata'
>;

export function responseObject(
  ctx: ResponseContext,
  model: string,
  status: ResponseStatus,
  output: OutputItem[],
  rest: Pick<ResponseObject, 'error' | 'incomplete_details' | 'usage'> = { error: null, incomplete_details: null, usage: null },
): ResponseObject {
  const e = ctx.echo;
  return {
    id: ctx.id,
    object: 'response',
    created_at: ctx.createdAt,
    status,
    background: false,
    error: rest.error,
    incomplete_details: rest.incomplete_details,
    instructions: e.instructions,
    max_output_tokens: e.max_output_tokens,
    model,
    output,
    parallel_tool_calls: e.parallel_tool_calls,
    previous_response_id: e.previous_response_id,
    reasoning: e.reasoning,
    store: e.store,
    temperature: e.temperature,
    text: e.text,
    tool_choice: e.tool_choice,
    tools: e.tools,
    top_p: e.top_p,
    truncation: e.truncation,
    usage: rest.usage,
    user: e.user,
    metadata: e.metadata,
  };
}

/** Usage in the Responses shape, with the cost as on chat completions. */
export function responseUsage(u: Usage, cost: CallerCost): ResponseUsage {
  return {
    input_tokens: u.inputTokens,
    input_tokens_details: { cached_tokens: u.cacheReadTokens, cache_write_tokens: u.cacheWriteTokens },
    output_tokens: u.outputTokens,
    output_tokens_details: { reasoning_tokens: u.reasoningTokens },
    total_tokens: u.inputTokens + u.outputTokens,
    ...costField(cost),
  };
}

/** Why a response stopped short: a length cut or a content filter (OpenAI's two incomplete reasons). */
export function incompleteReason(finish: FinishReason | null | undefined): 'max_output_tokens' | 'content_filter' | undefined {
  if (finish === 'length') return 'max_output_tokens';
  if (finish === 'content_filter') return 'content_filter';
  return undefined;
}

/** The finished response: status from the finish reason, the last item marked incomplete when it was cut. */
export function finalResponse(ctx: ResponseContext, model: string, output: OutputItem[], finish: FinishReason | null | undefined, usage: Usage, cost: CallerCost): ResponseObject {
  const reason = incompleteReason(finish);
  const last = output[output.length - 1];
  if (reason && last) last.status = 'incomplete';
  return responseObject(ctx, model, reason ? 'incomplete' : 'completed', output, {
    error: null,
    incomplete_details: reason ? { reason } : null,
    usage: responseUsage(usage, cost),
  });
}

/**
 * The output as the chat assistant message(s) that said it (a message item followed by
 * function calls is one assistant turn), for the stored conversation.
 */
export function outputMessages(output: readonly OutputItem[]): Message[] {
  const out: Message[] = [];
  for (const item of output) {
    if (item.type === 'message') {
      let text = '';
      for (const part of item.content) text += part.type === 'output_text' ? part.text : part.refusal;
      out.push({ role: 'assistant', content: text });
      continue;
    }
    const call = { id: item.call_id, type: 'function' as const, function: { name: item.name, arguments: item.arguments } };
    const last = out[out.length - 1];
    if (last?.role === 'assistant') out[out.length - 1] = { ...last, tool_calls: [...(last.tool_calls ?? []), call] };
    else out.push({ role: 'assistant', content: null, tool_calls: [call] });
  }
  return out;
}

export function messageItem(id: string, status: ItemStatus, content: OutputMessageItem['content']): OutputMessageItem {
  return { type: 'message', id, status, role: 'assistant', content };
}
