import { describe, expect, it } from 'vitest';
import { countableMessagesRequest, forwardedHeaders, messagesPassthrough, onlyNativeCanAnswer } from '../../../sidecar/apis/messages-passthrough.js';
import { invalidRequest } from '../../../sidecar/errors.js';
import type { SseEvent } from '../../../sidecar/sse.js';

const ev = (type: string, data: object): SseEvent => ({ event: type, data: JSON.stringify({ type, ...data }) });
const usage = { inputTokens: 3, outputTokens: 2, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0 };

describe('which refusals a Messages-speaking provider can still answer', () => {
  it.each([
    ['tools.0.type', true],
    ['messages.2.content.0.type', true],
    ['messages.1.content.3.content.0.type', true],
    ['messages.0.content.1.source.type', true],
    ['mcp_servers', true],
    ['max_tokens', false],
    ['messages.0.role', false],
    ['messages.0.content.0.text', false],
    ['thinking.budget_tokens', false],
  ])('%s → %s', (param, expected) => {
    expect(onlyNativeCanAnswer(invalidRequest('x', param))).toBe(expected);
  });

  it('a refusal without a param, or not a 400, never passes through', () => {
    expect(onlyNativeCanAnswer(invalidRequest('x'))).toBe(false);
  });
});

describe('the Messages passthrough', () => {
  it('forwards the client\'s betas (joined when repeated), nothing else', () => {
    expect(forwardedHeaders({ 'anthropic-beta': 'a,b', 'x-api-key': 'sk-client', authorization: 'Bearer c' })).toEqual({ 'anthropic-beta': 'a,b' });
    expect(forwardedHeaders({ 'anthropic-beta': ['a', 'b'] })).toEqual({ 'anthropic-beta': 'a,b' });
    expect(forwardedHeaders({})).toEqual({});
  });

  it('commits on the first content block (thinking included), not on message_start or ping', () => {
    const opens = messagesPassthrough({}, {}).opensAnswer!;
    expect(opens(ev('message_start', {}))).toBe(false);
    expect(opens(ev('ping', {}))).toBe(false);
    expect(opens(ev('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '' } }))).toBe(true);
  });

  it('writes events as they came, holds message_delta and message_stop, and adds usage.cost to the delta', () => {
    const enc = messagesPassthrough({}, {}).encoder();
    const start = ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } });
    const delta = ev('message_delta', { delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 2 } });
    const stop = ev('message_stop', {});
    expect(enc.push([start, delta, stop])).toBe(`event: content_block_start\ndata: ${start.data}\n\n`);
    expect(enc.finish(usage, { usd: 0.000015, estimated: false })).toBe(
      `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":2,"cost":0.000015}}\n\nevent: message_stop\ndata: ${stop.data}\n\n`,
    );
  });

  it('the non-stream answer gets usage.cost and nothing else changes; unpriced: no cost', () => {
    const p = messagesPassthrough({}, {});
    const native = { id: 'msg_1', type: 'message', content: [{ type: 'thinking', thinking: 't', signature: 's' }], usage: { input_tokens: 3, output_tokens: 2 } };
    expect(p.respond(native, { usd: 0.000015, estimated: false })).toEqual({ ...native, usage: { input_tokens: 3, output_tokens: 2, cost: 0.000015 } });
    expect(p.respond(native, { usd: undefined, estimated: false })).toEqual(native);
  });

  it('counts a request it cannot translate from its system and message text, with its max_tokens', () => {
    const body = { model: 'claude', max_tokens: 300, stream: true, system: 'Be brief.', messages: [{ role: 'user', content: [{ type: 'document', source: { type: 'base64', data: 'JVBE' } }, { type: 'text', text: 'Summarise.' }] }] };
    expect(countableMessagesRequest(body, invalidRequest('x', 'messages.0.content.0.type'))).toEqual({
      model: 'claude',
      messages: [{ role: 'user', content: 'Be brief.\nSummarise.' }],
      stream: true,
      max_completion_tokens: 300,
    });
  });
});
