import type { ChatCompletionChunk, ChunkToolCall, FinishReason } from '../openai-schema.js';
import type { Usage } from '../usage.js';
import type { CallerCost, StreamEncoder, StreamFailure } from './types.js';
import { finalResponse, messageItem, responseObject, type ResponseContext } from './responses-output.js';
import type { FunctionCallItem, OutputItem, OutputMessageItem, OutputTextPart, RefusalPart } from './responses-types.js';

/**
 * Chat chunks → the Responses API's streaming events
 * (developers.openai.com/api/reference/resources/responses/streaming-events), as SSE
 * `event: <type>\ndata: <json>\n\n`, every event with `type` and an increasing `sequence_number`:
 *
 *   response.created, response.in_progress               (status in_progress, output [])
 *   per message:  response.output_item.added, response.content_part.added,
 *                 response.output_text.delta …, response.output_text.done,
 *                 response.content_part.done, response.output_item.done
 *                 (a refusal: response.refusal.delta … / response.refusal.done in its own part)
 *   per call:     response.output_item.added (arguments ""), response.function_call_arguments.delta …,
 *                 response.function_call_arguments.done, response.output_item.done
 *   then          response.completed, or response.incomplete (length, content filter)
 *   or on failure response.failed (status failed, error {code, message}).
 *
 * One item is open at a time, as OpenAI streams them: a tool call closes the message before it
 * and the call before it. Chat providers send a call's pieces in order; should a piece arrive
 * for a call already closed, it still reaches the final response (response.completed and the
 * store), not the closed item's events. A stream with no output at all gets one empty message,
 * as the non-stream answer does. Text deltas and argument deltas are the hot path: their JSON
 * is written by hand (item ids are our own hex, safe unescaped).
 */

interface OpenMessage {
  index: number;
  item: OutputMessageItem;
  /** The content part being streamed (the last of item.content), if one is open. */
  part: OutputTextPart | RefusalPart | undefined;
}

interface Call {
  index: number;
  item: FunctionCallItem;
  open: boolean;
}

export class ResponsesStreamEncoder implements StreamEncoder {
  private seq = 0;
  private started = false;
  private model: string;
  private readonly output: OutputItem[] = [];
  private message: OpenMessage | undefined;
  private call: Call | undefined;
  /** Chat tool call index → its output item. */
  private readonly calls = new Map<number, Call>();
  private finish_reason: FinishReason | null = null;

  constructor(private readonly ctx: ResponseContext) {
    this.model = ctx.requestModel;
  }

  push(chunks: ChatCompletionChunk[]): string {
    let out = this.started ? '' : this.open(chunks[0]?.model);
    for (const chunk of chunks) {
      const choice = chunk.choices[0];
      if (!choice) continue;
      const d = choice.delta;
      if (typeof d.content === 'string' && d.content.length > 0) out += this.textDelta(d.content);
      if (typeof d.refusal === 'string' && d.refusal.length > 0) out += this.refusalDelta(d.refusal);
      if (d.tool_calls) for (const tc of d.tool_calls) out += this.toolCallDelta(tc);
      if (choice.finish_reason) this.finish_reason = choice.finish_reason;
    }
    return out;
  }

  finish(usage: Usage, cost: CallerCost): string {
    let out = this.started ? '' : this.open(undefined);
    if (this.output.length === 0) out += this.openMessage() + this.openPart('text');
    const response = finalResponse(this.ctx, this.model, this.output, this.finish_reason, usage, cost);
    // finalResponse marked the last item incomplete when the response was cut: close it so.
    out += this.closeOpenItem(this.output[this.output.length - 1]?.status === 'incomplete' ? 'incomplete' : 'completed');
    out += this.event(response.status === 'incomplete' ? 'response.incomplete' : 'response.completed', { response });
    this.ctx.keep(response);
    return out;
  }

  fail(failure: StreamFailure): string {
    let out = this.started ? '' : this.open(undefined);
    // The item being streamed stays in the failed response's output, marked incomplete.
    if (this.message) this.message.item.status = 'incomplete';
    if (this.call?.open) this.call.item.status = 'incomplete';
    const response = responseObject(this.ctx, this.model, 'failed', this.output, {
      error: { code: failure.code, message: failure.message },
      incomplete_details: null,
      usage: null,
    });
    out += this.event('response.failed', { response });
    return out;
  }

  // -------------------------------------------------------------------------------------------

  private event(type: string, payload: Record<string, unknown>): string {
    return `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: this.seq++, ...payload })}\n\n`;
  }

  private open(model: string | undefined): string {
    this.started = true;
    if (model) this.model = model;
    const response = responseObject(this.ctx, this.model, 'in_progress', []);
    return this.event('response.created', { response }) + this.event('response.in_progress', { response });
  }

  private openMessage(): string {
    const item = messageItem(this.ctx.itemId('msg'), 'in_progress', []);
    this.message = { index: this.output.length, item, part: undefined };
    this.output.push(item);
    return this.event('response.output_item.added', { output_index: this.message.index, item });
  }

  private openPart(kind: 'text' | 'refusal'): string {
    const m = this.message!;
    const part: OutputTextPart | RefusalPart = kind === 'text' ? { type: 'output_text', text: '', annotations: [], logprobs: [] } : { type: 'refusal', refusal: '' };
    m.part = part;
    m.item.content.push(part);
    return this.event('response.content_part.added', { item_id: m.item.id, output_index: m.index, content_index: m.item.content.length - 1, part });
  }

  private closePart(): string {
    const m = this.message!;
    const part = m.part;
    if (!part) return '';
    m.part = undefined;
    const at = { item_id: m.item.id, output_index: m.index, content_index: m.item.content.length - 1 };
    const done =
      part.type === 'output_text'
        ? this.event('response.output_text.done', { ...at, text: part.text, logprobs: [] })
        : this.event('response.refusal.done', { ...at, refusal: part.refusal });
    return done + this.event('response.content_part.done', { ...at, part });
  }

  private closeMessage(status: 'completed' | 'incomplete'): string {
    const m = this.message;
    if (!m) return '';
    const out = this.closePart();
    this.message = undefined;
    m.item.status = status;
    return out + this.event('response.output_item.done', { output_index: m.index, item: m.item });
  }

  private closeCall(status: 'completed' | 'incomplete'): string {
    const c = this.call;
    if (!c) return '';
    this.call = undefined;
    c.open = false;
    c.item.status = status;
    const { id, name } = c.item;
    return (
      this.event('response.function_call_arguments.done', { item_id: id, output_index: c.index, name, arguments: c.item.arguments }) +
      this.event('response.output_item.done', { output_index: c.index, item: c.item })
    );
  }

  private closeOpenItem(status: 'completed' | 'incomplete'): string {
    return this.closeMessage(status) + this.closeCall(status);
  }

  /** Text: into the open message's text part (opening the message, or a new part after a refusal). */
  private textDelta(delta: string): string {
    let out = '';
    if (!this.message) out += this.closeCall('completed') + this.openMessage();
    const m = this.message!;
    if (m.part?.type !== 'output_text') out += this.closePart() + this.openPart('text');
    const part = m.part as OutputTextPart;
    part.text += delta;
    return (
      out +
      `event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":${this.seq++},"item_id":"${m.item.id}","output_index":${m.index},"content_index":${m.item.content.length - 1},"delta":${JSON.stringify(delta)},"logprobs":[]}\n\n`
    );
  }

  private refusalDelta(delta: string): string {
    let out = '';
    if (!this.message) out += this.closeCall('completed') + this.openMessage();
    const m = this.message!;
    if (m.part?.type !== 'refusal') out += this.closePart() + this.openPart('refusal');
    const part = m.part as RefusalPart;
    part.refusal += delta;
    return out + this.event('response.refusal.delta', { item_id: m.item.id, output_index: m.index, content_index: m.item.content.length - 1, delta });
  }

  private toolCallDelta(tc: ChunkToolCall): string {
    const args = tc.function?.arguments ?? '';
    let c = this.calls.get(tc.index);
    if (c && !c.open) {
      // A late piece of a closed call: the final response still gets it.
      c.item.arguments += args;
      if (!c.item.name && tc.function?.name) c.item.name = tc.function.name;
      return '';
    }
    let out = '';
    if (!c) {
      out += this.closeOpenItem('completed');
      const item: FunctionCallItem = {
        type: 'function_call',
        id: this.ctx.itemId('fc'),
        call_id: tc.id || this.ctx.itemId('call'),
        name: tc.function?.name ?? '',
        arguments: '',
        status: 'in_progress',
      };
      c = { index: this.output.length, item, open: true };
      this.calls.set(tc.index, c);
      this.call = c;
      this.output.push(item);
      out += this.event('response.output_item.added', { output_index: c.index, item });
    } else if (!c.item.name && tc.function?.name) {
      c.item.name = tc.function.name;
    }
    if (args.length === 0) return out;
    c.item.arguments += args;
    return (
      out +
      `event: response.function_call_arguments.delta\ndata: {"type":"response.function_call_arguments.delta","sequence_number":${this.seq++},"item_id":"${c.item.id}","output_index":${c.index},"delta":${JSON.stringify(args)}}\n\n`
    );
  }
}
