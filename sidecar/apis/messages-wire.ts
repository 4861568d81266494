import { randomToken } from '../random.js';
import type { FinishReason } from '../openai-schema.js';
import type { Usage } from '../usage.js';
import { costField, type CallerCost } from './types.js';

/**
 * Anthropic Messages API response shapes and the pieces the non-stream answer (messages.ts) and
 * the stream encoder (messages-stream.ts) share. Decisions are documented in messages.ts.
 */

// ---------------------------------------------------------------------------------------------
// Anthropic's response shapes

export type AnthropicStopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'pause_turn' | 'refusal';

export interface AnthropicUsage {
  input_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  output_tokens: number;
  /** USD (paygo's addition, as in its other APIs); absent when the model has no known price. */
  cost?: number;
}

export interface AnthropicTextBlock {
  type: 'text';
  text: string;
}

export interface AnthropicToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
}

export type AnthropicContentBlock = AnthropicTextBlock | AnthropicToolUseBlock;

export interface AnthropicMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: AnthropicContentBlock[];
  stop_reason: AnthropicStopReason;
  stop_sequence: string | null;
  usage: AnthropicUsage;
}

export interface AnthropicErrorBody {
  type: 'error';
  error: { type: string; message: string };
  /** Anthropic's body names the request too ("request_id"); present when the caller passes it. */
  request_id?: string;
}

// ---------------------------------------------------------------------------------------------
// Ids, stop reasons, usage (shared with the stream encoder)

/** Anthropic ids are opaque [A-Za-z0-9_-] strings (tool ids must match ^[a-zA-Z0-9_-]+$). */
function randomId(prefix: string): string {
  return prefix + randomToken(18, 'base64url');
}

export function messageId(completionId: string | undefined): string {
  return completionId?.startsWith('msg_') ? completionId : randomId('msg_');
}

export function toolUseId(callId: string | undefined): string {
  return callId ? callId : randomId('toolu_');
}

export function stopReason(finish: FinishReason | null | undefined, hasToolCalls: boolean): AnthropicStopReason {
  switch (finish) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    case 'content_filter':
      return 'refusal';
    default:
      return hasToolCalls ? 'tool_use' : 'end_turn';
  }
}

export function anthropicUsage(usage: Usage, cost: CallerCost): AnthropicUsage {
  return {
    input_tokens: Math.max(0, usage.inputTokens - usage.cacheReadTokens - usage.cacheWriteTokens),
    cache_creation_input_tokens: usage.cacheWriteTokens,
    cache_read_input_tokens: usage.cacheReadTokens,
    output_tokens: usage.outputTokens,
    ...costField(cost),
  };
}
