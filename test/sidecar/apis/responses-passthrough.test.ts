import { describe, expect, it } from 'vitest';
import { countableResponsesRequest, responsesPassthrough } from '../../../sidecar/apis/responses-passthrough.js';
import { invalidRequest } from '../../../sidecar/errors.js';
import { UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import type { TargetContext } from '../../../sidecar/providers/types.js';
import type { SseEvent } from '../../../sidecar/sse.js';

const ctx: TargetContext = { model: 'gpt-4.1', baseURL: 'http://x/v1', apiKey: 'k', created: 1700000000, responseId: 'chatcmpl-r1' };
const reason = invalidRequest('The tool type "web_search" is not supported.', 'tools.0.type', 'unsupported_parameter');
const ev = (type: string, data: object): SseEvent => ({ event: type, data: JSON.stringify({ type, ...data }) });

describe('countableResponsesRequest: what limits and budgets see of a request that passes through', () => {
  it('the instructions and every text of the input as one user message, the output cap and stream kept', () => {
    const body = {
      model: 'search',
      instructions: 'Be brief.',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'first' }] },
        { type: 'function_call_output', call_id: 'c1', output: 'tool said' },
        { type: 'item_reference', id: 'msg_x' },
      ],
      max_output_tokens: 300,
      stream: true,
    };
    expect(countableResponsesRequest(body, reason)).toEqual({
      model: 'search',
      messages: [{ role: 'user', content: 'Be brief.\nfirst\ntool said' }],
      stream: true,
      max_completion_tokens: 300,
    });
  });

  it('an input without text still counts as something (the refusal reason), never an empty prompt', () => {
    expect(countableResponsesRequest({ model: 'm', input: [{ type: 'item_reference', id: 'x' }] }, reason).messages).toEqual([{ role: 'user', content: reason.message }]);
  });
});

describe('the Responses stream reader (metering of a passed-through stream)', () => {
  const reader = () => responsesPassthrough({}).reader!.stream(ctx);

  it('commits on response.created, reads text and calls as chunks, usage and the end from response.completed', () => {
    const r = reader();
    const created = r.push(ev('response.created', { response: { id: 'resp_1', model: 'gpt-4.1-2025-04-14' } }));
    expect(created).toEqual([{ id: 'resp_1', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4.1-2025-04-14', choices: [{ index: 0, delta: { role: 'assistant', content: '' }, finish_reason: null }] }]);
    expect(r.push(ev('response.output_text.delta', { delta: 'Hi' }))[0]!.choices[0]!.delta).toEqual({ content: 'Hi' });
    expect(r.push(ev('response.output_item.added', { item: { type: 'function_call', call_id: 'call_1', name: 'lookup' } }))[0]!.choices[0]!.delta).toEqual({
      tool_calls: [{ index: 0, id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '' } }],
    });
    expect(r.push(ev('response.function_call_arguments.delta', { delta: '{"q":1}' }))[0]!.choices[0]!.delta).toEqual({ tool_calls: [{ index: 0, function: { arguments: '{"q":1}' } }] });
    expect(r.push(ev('response.web_search_call.completed', {}))).toEqual([]);
    expect(r.finished).toBe(false);
    const end = r.push(ev('response.completed', { response: { usage: { input_tokens: 10, input_tokens_details: { cached_tokens: 4 }, output_tokens: 7, output_tokens_details: { reasoning_tokens: 3 } } } }));
    expect(end[0]!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(r.finished).toBe(true);
    expect(r.usage).toEqual({ inputTokens: 10, outputTokens: 7, cacheReadTokens: 4, cacheWriteTokens: 0, reasoningTokens: 3 });
  });

  it('response.incomplete ends the stream too (length when the cap was hit)', () => {
    const r = reader();
    const end = r.push(ev('response.incomplete', { response: { incomplete_details: { reason: 'max_output_tokens' }, usage: { input_tokens: 1, output_tokens: 2 } } }));
    expect(end[0]!.choices[0]!.finish_reason).toBe('length');
    expect(r.finished).toBe(true);
  });

  it('response.failed and error events are stream errors with the provider code, never its text', () => {
    expect(() => reader().push(ev('response.failed', { response: { error: { code: 'server_error', message: 'prompt text here' } } }))).toThrow(
      expect.objectContaining({ constructor: UpstreamStreamError, errorType: 'server_error', message: 'the provider reported the response as failed' }),
    );
    expect(() => reader().push(ev('error', { code: 'rate_limit_exceeded', message: 'prompt text here' }))).toThrow(expect.objectContaining({ errorType: 'rate_limit_exceeded' }));
  });
});

describe('the Responses passthrough encoder', () => {
  it('writes events as they came and holds the closing one until the cost is known', () => {
    const enc = responsesPassthrough({}).encoder();
    const delta = ev('response.output_text.delta', { delta: 'Hi' });
    const done = ev('response.completed', { response: { id: 'resp_1', usage: { input_tokens: 1, output_tokens: 1 } } });
    expect(enc.push([delta, done])).toBe(`event: response.output_text.delta\ndata: ${delta.data}\n\n`);
    const usage = { inputTokens: 1, outputTokens: 1, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };
    expect(enc.finish(usage, { usd: 0.0000025, estimated: false })).toBe(
      `event: response.completed\ndata: ${JSON.stringify({ type: 'response.completed', response: { id: 'resp_1', usage: { input_tokens: 1, output_tokens: 1, cost: 0.0000025 } } })}\n\n`,
    );
  });

  it('an unpriced request gets no cost field; a failure is an error event', () => {
    const enc = responsesPassthrough({}).encoder();
    enc.push([ev('response.completed', { response: { usage: { input_tokens: 1 } } })]);
    expect(enc.finish({ inputTokens: 1, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 }, { usd: undefined, estimated: false })).toContain('"usage":{"input_tokens":1}}');
    expect(responsesPassthrough({}).encoder().fail({ message: 'x ended the stream early', type: 'upstream_error', code: 'upstream_stream_error' })).toBe(
      'event: error\ndata: {"type":"error","code":"upstream_stream_error","message":"x ended the stream early","param":null}\n\n',
    );
  });
});
