import type { Message } from '../openai-schema.js';

/**
 * The OpenAI Responses API objects paygo produces and keeps, as OpenAI returns them
 * (developers.openai.com/api/reference/resources/responses; the `openai` SDK's
 * resources/responses/responses.d.ts). Types only: the store, the translation and the stream
 * encoder share them without importing each other.
 */

export type ItemStatus = 'in_progress' | 'completed' | 'incomplete';

export interface OutputTextPart {
  type: 'output_text';
  text: string;
  annotations: unknown[];
  logprobs: unknown[];
}

export interface RefusalPart {
  type: 'refusal';
  refusal: string;
}

export interface OutputMessageItem {
  type: 'message';
  id: string;
  status: ItemStatus;
  role: 'assistant';
  content: Array<OutputTextPart | RefusalPart>;
}

export interface FunctionCallItem {
  type: 'function_call';
  id: string;
  call_id: string;
  name: string;
  arguments: string;
  status: ItemStatus;
}

/** What paygo puts in `output`: assistant messages and function calls (no hosted tools, no reasoning). */
export type OutputItem = OutputMessageItem | FunctionCallItem;

/**
 * An input item as the client sent it and the request schema accepted it (message,
 * function_call, function_call_output; extra fields kept). Items with an `id` are kept in the
 * store so a later `item_reference` finds them.
 */
export type InputItem = { type: string; id?: string } & Record<string, unknown>;

/** Anything an `item_reference` can name: an input item the client gave with an id, or an output item. */
export type StoredItem = InputItem | OutputItem;

export interface FunctionToolEcho {
  type: 'function';
  name: string;
  description: string | null;
  parameters: Record<string, unknown> | null;
  strict: boolean | null;
}

export type ResponseToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; name: string };

export interface ResponseTextConfig {
  format: Record<string, unknown> & { type: string };
  [key: string]: unknown;
}

export interface ResponseUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number; cache_write_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
  /** USD (OpenRouter's convention, as on chat completions); absent when the model is unpriced. */
  cost?: number;
}

export type ResponseStatus = 'in_progress' | 'completed' | 'incomplete' | 'failed';

export interface ResponseObject {
  id: string;
  object: 'response';
  created_at: number;
  status: ResponseStatus;
  background: false;
  error: { code: string; message: string } | null;
  incomplete_details: { reason: 'max_output_tokens' | 'content_filter' } | null;
  instructions: string | null;
  max_output_tokens: number | null;
  model: string;
  output: OutputItem[];
  parallel_tool_calls: boolean;
  previous_response_id: string | null;
  reasoning: Record<string, unknown>;
  store: boolean;
  temperature: number | null;
  text: ResponseTextConfig;
  tool_choice: ResponseToolChoice;
  tools: FunctionToolEcho[];
  top_p: number | null;
  truncation: 'auto' | 'disabled';
  usage: ResponseUsage | null;
  user: string | null;
  metadata: Record<string, string>;
}

/** What the store keeps per response id. Prompt text: never log any of it. */
export interface StoredResponse {
  /** The Response object as returned (GET /v1/responses/:id). */
  response: ResponseObject;
  /**
   * The conversation as chat messages up to and including this response's output, without its
   * instructions (OpenAI does not carry instructions over to a chained response).
   */
  conversation: Message[];
  /** The input items the client gave with an id (output items are in response.output). */
  inputItems: InputItem[];
}
