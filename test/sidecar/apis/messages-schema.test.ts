import { describe, expect, it } from 'vitest';
import { isPlainMessagesRequest, MessagesRequestSchema } from '../../../sidecar/apis/messages-schema.js';
import { BOOLEANS, expectZodVerdicts, NUMBERS, messageLists, STRINGS, type BodySpace } from '../../support/plain-check.js';

const MESSAGES_BODIES: BodySpace = {
  required: { model: ['claude', '', 7], max_tokens: [16, 0, 1.5, null, '16', 1024] },
  messages: {
    field: 'messages',
    make: messageLists({
      plainRoles: ['user', 'assistant', 'system'],
      roles: ['tool', 'developer', 1, undefined],
      contents: ['', null, undefined, [], [{ type: 'text', text: 'a' }], [{ type: 'image', source: { type: 'url', url: 'u' } }], 5],
      extras: [['cache_control', { type: 'ephemeral' }], ['name', 'x'], ['content', [{ type: 'tool_result', tool_use_id: 't', content: 'r' }]]],
    }),
  },
  optional: {
    system: ['be brief', '', null, [{ type: 'text', text: 's' }], [{ type: 'text' }], 5],
    stop_sequences: [null, [], ['END'], [1], 'END'],
    temperature: NUMBERS,
    top_p: NUMBERS,
    top_k: NUMBERS,
    stream: BOOLEANS,
    metadata: [null, { user_id: 'u' }, { user_id: 5 }],
    tools: [null, [], [{ name: 'f', input_schema: { type: 'object' } }], [{ name: '' }]],
    tool_choice: [null, { type: 'auto' }, { type: 'bogus' }],
    thinking: [null, { type: 'enabled', budget_tokens: 2048 }, { type: 'enabled', budget_tokens: 10 }],
    mcp_servers: [null, [], [{}]],
    service_tier: STRINGS,
    constructor: ['x'],
  },
};

describe('isPlainMessagesRequest', () => {
  it('accepts only what MessagesRequestSchema accepts, and the body is then what zod would make of it', () => {
    expectZodVerdicts(MessagesRequestSchema, isPlainMessagesRequest, MESSAGES_BODIES, 19);
  });

  it('takes what the Anthropic SDK sends for a text conversation, and leaves blocks and tools to zod', () => {
    expect(isPlainMessagesRequest({ model: 'claude', max_tokens: 1024, messages: [{ role: 'user', content: 'Hello, Claude' }] })).toBe(true);
    expect(isPlainMessagesRequest({ model: 'claude', max_tokens: 64, system: 'be brief', stream: true, messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yes' }], temperature: 1 })).toBe(true);
    expect(isPlainMessagesRequest({ model: 'claude', max_tokens: 64, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] })).toBe(false);
    expect(isPlainMessagesRequest({ model: 'claude', messages: [{ role: 'user', content: 'hi' }] })).toBe(false);
    expect(isPlainMessagesRequest({ model: 'claude', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }], temperature: 1.5 })).toBe(false);
  });
});
