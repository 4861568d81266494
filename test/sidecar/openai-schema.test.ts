import { describe, expect, it } from 'vitest';
import { ChatRequestSchema, isPlainChatRequest } from '../../sidecar/openai-schema.js';
import { BOOLEANS, expectZodVerdicts, NUMBERS, messageLists, STRINGS, type BodySpace } from '../support/plain-check.js';

const CHAT_BODIES: BodySpace = {
  required: { model: ['support-bot', 'gpt-4o', '', 7] },
  messages: {
    field: 'messages',
    make: messageLists({
      plainRoles: ['system', 'developer', 'user', 'assistant'],
      roles: ['tool', 'bogus', 1, undefined],
      contents: ['', null, undefined, [], [{ type: 'text', text: 'a' }], [{ type: 'image_url', image_url: { url: '' } }], 5],
      extras: [['name', 'alice'], ['name', ''], ['name', null], ['name', 3], ['tool_calls', [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }]], ['tool_call_id', 'c'], ['x', 1], ['refusal', null]],
    }),
  },
  optional: {
    stream: BOOLEANS,
    max_tokens: NUMBERS,
    max_completion_tokens: NUMBERS,
    temperature: NUMBERS,
    top_p: NUMBERS,
    n: NUMBERS,
    seed: NUMBERS,
    presence_penalty: NUMBERS,
    frequency_penalty: NUMBERS,
    stop: [null, 'END', '', [], ['a', 'b'], Array(16).fill('s'), Array(17).fill('s'), [1], {}],
    parallel_tool_calls: BOOLEANS,
    user: STRINGS,
    stream_options: [null, { include_usage: true }, { include_usage: 'no' }, {}],
    tools: [[], [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }], [{ type: 'function', function: { name: '' } }]],
    tool_choice: ['auto', 'none', 'sometimes', { type: 'function', function: { name: 'f' } }],
    response_format: [{ type: 'json_object' }, { type: 1 }, 'json'],
    metadata: [{ app: 'x' }, null, 'any'],
    store: [true, 'any'],
    constructor: ['x'],
  },
};

describe('isPlainChatRequest', () => {
  it('accepts only what ChatRequestSchema accepts, and the body is then what zod would make of it', () => {
    expectZodVerdicts(ChatRequestSchema, isPlainChatRequest, CHAT_BODIES, 18);
  });

  it('takes the requests SDKs send for a text chat', () => {
    for (const body of [
      { model: 'support-bot', messages: [{ role: 'user', content: 'hi' }] },
      { model: 'bench', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hi', name: 'ann' }], stream: true, max_tokens: 16, temperature: 0.2 },
      { model: 'm', messages: [{ role: 'developer', content: 'x' }, { role: 'assistant', content: 'y' }, { role: 'user', content: 'z' }], stop: ['\n'], seed: 3, metadata: { any: 'thing' } },
    ]) {
      expect(isPlainChatRequest(body)).toBe(true);
      expect(ChatRequestSchema.safeParse(body).success).toBe(true);
    }
  });

  it('leaves the rest to zod', () => {
    for (const body of [
      null,
      [],
      'text',
      {},
      { model: 'm' },
      { model: '', messages: [{ role: 'user', content: 'hi' }] },
      { model: 'm', messages: [] },
      { model: 'm', messages: [{ role: 'tool', content: 'r', tool_call_id: 'c' }] },
      { model: 'm', messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] },
      { model: 'm', messages: [{ role: 'assistant', content: null, tool_calls: [] }] },
      { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 0 },
      { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 1.5 },
      { model: 'm', messages: [{ role: 'user', content: 'hi' }], temperature: 2.01 },
      { model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [] },
      { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream_options: { include_usage: true } },
      JSON.parse('{"model":"m","messages":[{"role":"user","content":"hi"}],"__proto__":{"x":1}}'),
      JSON.parse('{"model":"m","messages":[{"role":"user","content":"hi","__proto__":{"x":1}}]}'),
    ]) {
      expect(isPlainChatRequest(body)).toBe(false);
    }
  });
});
