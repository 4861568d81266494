import { randomToken } from '../random.js';
import { ApiError, invalidRequest } from '../errors.js';
import type { ChatCompletion, ChatRequest, Message } from '../openai-schema.js';
import type { Usage } from '../usage.js';
import type { ResponseStore } from './response-store.js';
import { checkRequest, idForMessage, responseFormat, textEcho, translateInput, translateToolChoice, translateTools } from './responses-request.js';
import { finalResponse, messageItem, outputMessages, type EchoFields, type ResponseContext } from './responses-output.js';
import { ResponsesStreamEncoder } from './responses-stream.js';
import type { FunctionCallItem, OutputItem, ResponseObject } from './responses-types.js';
import { openAIErrorAnswer, passthroughOnlyDoor, type CallerCost, type FrontDoor, type StreamEncoder } from './types.js';
import { responsesPassthrough } from './responses-passthrough.js';

/**
 * The OpenAI Responses API front door (POST /v1/responses, GET and DELETE /v1/responses/:id):
 * a Responses request becomes one ChatRequest for the chat pipeline, and its ChatCompletion (or
 * chunk stream) becomes the Response object (or the Responses streaming events).
 *
 * State (`store`, `previous_response_id`, `item_reference`) lives in the sidecar's own
 * ResponseStore: clients such as the Vercel AI SDK (`@ai-sdk/openai` responses model: store
 * true by default, assistant text sent back as item_reference) and the OpenAI Agents SDK
 * (previous_response_id) work whatever provider served the earlier turns.
 *
 * Decisions (OpenAI's behaviour followed where it is documented):
 * - previous_response_id: the stored conversation (input and output, every earlier turn) comes
 *   first, then this request's input. Instructions are not inherited (the `instructions`
 *   reference: "the instructions from a previous response will not be carried over"): the new
 *   request's instructions open the chat as a system message. An unknown, expired or evicted
 *   id is OpenAI's 400 `previous_response_not_found` with param `previous_response_id`.
 * - An unknown item_reference is OpenAI's 404 "Item with id '…' not found." (param
 *   `input.N.id`); GET/DELETE of an unknown id 404 "Response with id '…' not found.". OpenAI's
 *   code there is null; ApiError carries a string, so these say `item_not_found` and
 *   `response_not_found`.
 * - Output: a message item (output_text, or refusal) when the model said something or made
 *   no call, then one function_call item per tool call (call_id = the chat tool call id).
 *   finish_reason length → status incomplete, incomplete_details.reason max_output_tokens;
 *   content_filter → reason content_filter; the last item is then marked incomplete.
 * - No `output_text` field: it is an SDK convenience the SDKs compute, not part of the API's JSON.
 * - Ids: resp_/msg_/fc_ + 48 random hex digits (24 bytes), issued here.
 * - store: false keeps nothing (GET then 404s and the id cannot be chained), as on OpenAI.
 */

export interface ResponsesIds {
  /** `bytes` random bytes as hex (tests inject a counter). */
  random?: (bytes: number) => string;
  /** Milliseconds since the epoch, for created_at. */
  now?: () => number;
}

export interface ResponsesTurn {
  /** The chat request to run (model unchanged: it names a paygo route). */
  chat: ChatRequest;
  /** The client asked for a stream. */
  stream: boolean;
  /** The id the response will have. */
  responseId: string;
  /** The completion → the Response object (stored unless store: false). */
  respond(completion: ChatCompletion, usage: Usage, cost: CallerCost): ResponseObject;
  /** A stream encoder for this turn (one per request). */
  encoder(): StreamEncoder;
}

const ID_BYTES = 24;
const defaultRandom = (bytes: number) => randomToken(bytes, 'hex');

/** OpenAI's answer to a previous_response_id it does not hold. */
export function previousResponseNotFound(id: string): ApiError {
  return invalidRequest(`Previous response with id${idForMessage(id)} not found.`, 'previous_response_id', 'previous_response_not_found');
}

/** GET/DELETE of a response the store does not hold (never stored, store: false, expired, evicted or deleted). */
export function responseNotFound(id: string): ApiError {
  return new ApiError(404, 'invalid_request_error', 'response_not_found', `Response with id${idForMessage(id)} not found.`, null);
}

/** GET /v1/responses/:id */
export function getStoredResponse(store: ResponseStore, id: string): ResponseObject {
  const stored = store.get(id);
  if (!stored) throw responseNotFound(id);
  return stored.response;
}

/** DELETE /v1/responses/:id */
export function deleteStoredResponse(store: ResponseStore, id: string): { id: string; object: 'response'; deleted: true } {
  if (!store.delete(id)) throw responseNotFound(id);
  return { id, object: 'response', deleted: true };
}

export function parseResponsesRequest(body: unknown, store: ResponseStore, ids: ResponsesIds = {}): ResponsesTurn {
  const req = checkRequest(body);
  const random = ids.random ?? defaultRandom;
  const tools = translateTools(req.tools);
  const toolChoice = translateToolChoice(req.tool_choice);
  const format = responseFormat(req.text);

  let previous: Message[] = [];
  if (req.previous_response_id != null) {
    const stored = store.get(req.previous_response_id);
    if (!stored) throw previousResponseNotFound(req.previous_response_id);
    previous = stored.conversation;
  }
  const input = translateInput(req.input, (id) => store.item(id));

  const messages: Message[] = [...(req.instructions ? [{ role: 'system' as const, content: req.instructions }] : []), ...previous, ...input.messages];
  if (messages.length === 0) throw invalidRequest('Invalid request: input must contain at least one item.', 'input');

  const effort = req.reasoning?.effort;
  // Field by field, not conditional spreads: each spread into a literal goes through V8's runtime
  // (tens of µs of a stream's first byte once the sidecar idled); the fields keep this order.
  const chat: ChatRequest = { model: req.model, messages };
  if (req.stream) chat.stream = true;
  if (req.max_output_tokens != null) chat.max_completion_tokens = req.max_output_tokens;
  if (req.temperature != null) chat.temperature = req.temperature;
  if (req.top_p != null) chat.top_p = req.top_p;
  // OpenAI's chat API refuses tool_choice and parallel_tool_calls without tools.
  if (tools.chat.length > 0) {
    chat.tools = tools.chat;
    if (toolChoice) chat.tool_choice = toolChoice.chat;
    if (req.parallel_tool_calls != null) chat.parallel_tool_calls = req.parallel_tool_calls;
  }
  if (req.user != null) chat.user = req.user;
  if (format) chat.response_format = format;
  if (effort != null) (chat as Record<string, unknown>).reasoning_effort = effort;

  const keepIt = req.store !== false;
  const echo: EchoFields = {
    instructions: req.instructions ?? null,
    max_output_tokens: req.max_output_tokens ?? null,
    parallel_tool_calls: req.parallel_tool_calls ?? true,
    previous_response_id: req.previous_response_id ?? null,
    reasoning: { ...req.reasoning, effort: req.reasoning?.effort ?? null, summary: req.reasoning?.summary ?? null },
    store: keepIt,
    temperature: req.temperature ?? null,
    text: textEcho(req.text),
    tool_choice: toolChoice?.echo ?? 'auto',
    tools: tools.echo,
    top_p: req.top_p ?? null,
    truncation: req.truncation ?? 'disabled',
    user: req.user ?? null,
    metadata: req.metadata ?? {},
  };
  const ctx: ResponseContext = {
    id: `resp_${random(ID_BYTES)}`,
    createdAt: Math.floor((ids.now ?? Date.now)() / 1000),
    requestModel: req.model,
    echo,
    itemId: (prefix) => `${prefix}_${random(ID_BYTES)}`,
    keep: (response) => {
      if (!keepIt) return;
      store.put({ response, conversation: [...previous, ...input.messages, ...outputMessages(response.output)], inputItems: input.items });
    },
  };

  return {
    chat,
    stream: req.stream === true,
    responseId: ctx.id,
    respond: (completion, usage, cost) => {
      const response = finalResponse(ctx, completion.model, completionOutput(ctx, completion), completion.choices[0]?.finish_reason, usage, cost);
      ctx.keep(response);
      return response;
    },
    encoder: () => new ResponsesStreamEncoder(ctx),
  };
}

/** A completion's message → output items: the message (unless it is only tool calls), then its calls. */
function completionOutput(ctx: ResponseContext, completion: ChatCompletion): OutputItem[] {
  const message = completion.choices[0]?.message;
  const text = message?.content ?? '';
  const refusal = message?.refusal ?? '';
  const calls = message?.tool_calls ?? [];
  const output: OutputItem[] = [];
  if (text.length > 0 || refusal.length > 0 || calls.length === 0) {
    output.push(
      messageItem(ctx.itemId('msg'), 'completed', [
        ...(text.length > 0 || refusal.length === 0 ? [{ type: 'output_text' as const, text, annotations: [], logprobs: [] }] : []),
        ...(refusal.length > 0 ? [{ type: 'refusal' as const, refusal }] : []),
      ]),
    );
  }
  for (const call of calls) {
    const item: FunctionCallItem = { type: 'function_call', id: ctx.itemId('fc'), call_id: call.id, name: call.function.name, arguments: call.function.arguments, status: 'completed' };
    output.push(item);
  }
  return output;
}

/** The Responses API's way through the chat pipeline (server.ts): errors in OpenAI's shape. */
export function responsesDoor(turn: ResponsesTurn): FrontDoor {
  return {
    api: 'responses',
    encoder: () => turn.encoder(),
    respond: (completion, usage, cost) => turn.respond(completion, usage, cost),
    error: openAIErrorAnswer,
  };
}

/**
 * A Responses request only OpenAI or Azure OpenAI can answer (`reason`: why it cannot be
 * translated): passed through to those targets, the others skipped with `reason`.
 */
export function responsesPassthroughDoor(body: Readonly<Record<string, unknown>>, reason: ApiError): FrontDoor {
  return passthroughOnlyDoor({ api: 'responses', error: openAIErrorAnswer }, responsesPassthrough(body), reason);
}
