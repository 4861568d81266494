import type { ChatCompletionChunk, ChunkToolCall, FinishReason } from '../openai-schema.js';
import type { Usage } from '../usage.js';
import { anthropicUsage, messageId, stopReason, toolUseId } from './messages-wire.js';
import type { CallerCost, StreamEncoder, StreamFailure } from './types.js';

/**
 * Chat chunks → the Messages API's SSE events, as the streaming guide
 * (platform.claude.com/docs/en/build-with-claude/streaming) lists them: message_start (the
 * message with empty content), then per content block content_block_start /
 * content_block_delta (text_delta, input_json_delta) / content_block_stop, then message_delta
 * (stop_reason, stop_sequence, usage) and message_stop. Each event is `event: <type>` and one
 * compact JSON `data:` line whose `type` repeats the event name.
 *
 * - Blocks: the text is one block; each tool call (OpenAI's tool_calls[].index) is its own
 *   tool_use block, started with its id, name and `input: {}` as Anthropic does, its argument
 *   pieces sent as input_json_delta. Block indexes count up from 0 in order of appearance; a
 *   block is closed when the next one starts. Pieces of an earlier call arriving after the next
 *   call started (OpenAI never interleaves; no translator here does) still go to that call's
 *   block index, which the SDK accumulates.
 * - Text and argument pieces of one push() for the same block are merged into one delta.
 * - Usage: message_start carries zeros (input usage is known only at the end); message_delta
 *   carries the cumulative input_tokens, cache_creation_input_tokens, cache_read_input_tokens and
 *   output_tokens, as Anthropic's API now does, and cost. The SDK's MessageStream overwrites the
 *   message_start usage with every non-null message_delta field, so its final message has the
 *   real usage.
 * - No ping events (optional, clients skip them).
 * - fail(): an `error` event ({"type":"error","error":{"type","message"}}); the type is kept when
 *   it is one of Anthropic's error types (a provider's overloaded_error), else api_error.
 */

const ANTHROPIC_ERROR_TYPES = new Set([
  'invalid_request_error',
  'authentication_error',
  'billing_error',
  'permission_error',
  'not_found_error',
  'request_too_large',
  'rate_limit_error',
  'timeout_error',
  'api_error',
  'overloaded_error',
]);

function event(type: string, data: string): string {
  return `event: ${type}\ndata: ${data}\n\n`;
}

/** A stream's failure as Anthropic's `error` event. */
export function errorEvent(failure: StreamFailure): string {
  const type = ANTHROPIC_ERROR_TYPES.has(failure.type) ? failure.type : 'api_error';
  return event('error', JSON.stringify({ type: 'error', error: { type, message: failure.message } }));
}

interface ToolBlock {
  index: number;
  /** Argument text not sent yet (merged within one push). */
  pending: string;
}

export class MessagesStreamEncoder implements StreamEncoder {
  private started = false;
  private nextIndex = 0;
  /** The open block's index, and what it is. */
  private openIndex = -1;
  private openTool: ToolBlock | undefined;
  /** Text of the open text block not sent yet. */
  private pendingText = '';
  private textOpen = false;
  /** OpenAI tool call index → its tool_use block. */
  private readonly tools = new Map<number, ToolBlock>();
  /** Tool blocks with pending arguments that are not the open block (interleaved calls). */
  private readonly stray = new Set<ToolBlock>();
  private finishReason: FinishReason | null = null;

  constructor(private readonly requestModel: string) {}

  push(chunks: ChatCompletionChunk[]): string {
    let out = this.started ? '' : this.start(chunks[0]);
    for (const chunk of chunks) {
      // Anthropic answers with one message: only the first choice is translated.
      const choice = chunk.choices[0];
      if (!choice || choice.index !== 0) continue;
      const delta = choice.delta;
      const text = delta.content || delta.refusal;
      if (text) out += this.text(text);
      if (delta.tool_calls) for (const call of delta.tool_calls) out += this.toolCall(call);
      if (choice.finish_reason) this.finishReason = choice.finish_reason;
    }
    return out + this.flush();
  }

  finish(usage: Usage, cost: CallerCost): string {
    let out = this.started ? '' : this.start(undefined);
    out += this.flush() + this.closeOpen();
    const reason = stopReason(this.finishReason, this.tools.size > 0);
    out += event('message_delta', `{"type":"message_delta","delta":{"stop_reason":"${reason}","stop_sequence":null},"usage":${JSON.stringify(anthropicUsage(usage, cost))}}`);
    return out + event('message_stop', '{"type":"message_stop"}');
  }

  fail(failure: StreamFailure): string {
    return errorEvent(failure);
  }

  private start(first: ChatCompletionChunk | undefined): string {
    this.started = true;
    const message = {
      id: messageId(first?.id),
      type: 'message',
      role: 'assistant',
      content: [],
      model: first?.model || this.requestModel,
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
    };
    return event('message_start', JSON.stringify({ type: 'message_start', message }));
  }

  private text(text: string): string {
    if (this.textOpen) {
      this.pendingText += text;
      return '';
    }
    const out = this.flush() + this.closeOpen() + this.openBlock('{"type":"text","text":""}');
    this.textOpen = true;
    this.pendingText = text;
    return out;
  }

  private toolCall(call: ChunkToolCall): string {
    let out = '';
    let block = this.tools.get(call.index);
    if (!block) {
      out = this.flush() + this.closeOpen();
      const id = toolUseId(call.id);
      const name = call.function?.name ?? '';
      out += this.openBlock(`{"type":"tool_use","id":${JSON.stringify(id)},"name":${JSON.stringify(name)},"input":{}}`);
      block = { index: this.openIndex, pending: '' };
      this.tools.set(call.index, block);
      this.openTool = block;
    }
    const args = call.function?.arguments;
    if (args) {
      block.pending += args;
      if (block !== this.openTool) this.stray.add(block);
    }
    return out;
  }

  private openBlock(contentBlock: string): string {
    this.openIndex = this.nextIndex++;
    return event('content_block_start', `{"type":"content_block_start","index":${this.openIndex},"content_block":${contentBlock}}`);
  }

  /** Sends what was merged: the open block's pending text or arguments, and interleaved calls' arguments. */
  private flush(): string {
    let out = '';
    if (this.pendingText) {
      out += event('content_block_delta', `{"type":"content_block_delta","index":${this.openIndex},"delta":{"type":"text_delta","text":${JSON.stringify(this.pendingText)}}}`);
      this.pendingText = '';
    }
    for (const block of this.stray) out += this.argumentsDelta(block);
    this.stray.clear();
    if (this.openTool) out += this.argumentsDelta(this.openTool);
    return out;
  }

  private argumentsDelta(block: ToolBlock): string {
    if (!block.pending) return '';
    const out = event('content_block_delta', `{"type":"content_block_delta","index":${block.index},"delta":{"type":"input_json_delta","partial_json":${JSON.stringify(block.pending)}}}`);
    block.pending = '';
    return out;
  }

  private closeOpen(): string {
    if (this.openIndex < 0 || (!this.textOpen && !this.openTool)) return '';
    this.textOpen = false;
    this.openTool = undefined;
    return event('content_block_stop', `{"type":"content_block_stop","index":${this.openIndex}}`);
  }
}
