import Anthropic from '@anthropic-ai/sdk';
import { describe, expect, it } from 'vitest';
import { anthropicError, parseCountTokensRequest, parseMessagesRequest, type AnthropicMessage } from '../../../sidecar/apis/messages.js';
import type { CallerCost } from '../../../sidecar/apis/types.js';
import { ApiError } from '../../../sidecar/errors.js';
import type { ChatCompletion, ChatCompletionChunk, ChunkToolCall, FinishReason } from '../../../sidecar/openai-schema.js';
import type { Usage } from '../../../sidecar/usage.js';

/**
 * The Anthropic Messages API front door (sidecar/apis/messages*.ts): request translation to the
 * internal ChatRequest, errors naming the field, the non-stream Message, the SSE events, and
 * Anthropic's error shape. The wire shapes follow platform.claude.com/docs/en/api/messages and
 * the streaming guide; the last block runs the official SDK's parsers over the output when
 * @anthropic-ai/sdk can be loaded.
 */

const base = { model: 'paygo-claude', max_tokens: 1024 };
const hi = [{ role: 'user', content: 'Hi' }];
const chatOf = (body: Record<string, unknown>) => parseMessagesRequest({ ...base, ...body }).chat;
const refusal = (body: unknown) => {
  try {
    parseMessagesRequest(body);
  } catch (err) {
    if (err instanceof ApiError) return { status: err.status, ...err.toJSON().error };
    throw err;
  }
  throw new Error('accepted');
};

const weather = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] };
const PNG = 'iVBORw0KGgo=';

describe('parseMessagesRequest: the request', () => {
  it('a minimal request: model kept (it names a route), max_tokens, the user string', () => {
    expect(chatOf({ messages: hi })).toEqual({ model: 'paygo-claude', max_tokens: 1024, messages: [{ role: 'user', content: 'Hi' }] });
  });

  it('every parameter: system first, stop, sampling, user, stream, tools, tool_choice, reasoning; top_k and unknown fields dropped', () => {
    const chat = chatOf({
      system: 'Be brief.',
      messages: hi,
      stop_sequences: ['END', 'STOP'],
      temperature: 0.3,
      top_p: 0.9,
      top_k: 40,
      metadata: { user_id: 'user-7' },
      stream: true,
      tools: [{ name: 'get_weather', description: 'Weather of a city', input_schema: weather, cache_control: { type: 'ephemeral' } }],
      tool_choice: { type: 'any', disable_parallel_tool_use: true },
      thinking: { type: 'enabled', budget_tokens: 10000 },
      service_tier: 'auto',
      container: null,
      some_future_field: { x: 1 },
    });
    expect(chat).toEqual({
      model: 'paygo-claude',
      max_tokens: 1024,
      stream: true,
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'Hi' },
      ],
      stop: ['END', 'STOP'],
      temperature: 0.3,
      top_p: 0.9,
      user: 'user-7',
      tools: [{ type: 'function', function: { name: 'get_weather', description: 'Weather of a city', parameters: weather } }],
      tool_choice: 'required',
      parallel_tool_calls: false,
      reasoning_effort: 'medium',
    });
  });

  it('null optional fields, an empty system and empty stop_sequences send nothing', () => {
    expect(
      chatOf({ messages: hi, system: [], stop_sequences: [], temperature: null, top_p: null, metadata: { user_id: null }, tools: [], tool_choice: { type: 'auto' }, thinking: null, stream: null }),
    ).toEqual({ model: 'paygo-claude', max_tokens: 1024, messages: [{ role: 'user', content: 'Hi' }] });
  });

  it('system text blocks (cache_control ignored) become text parts of one system message; a system-role message stays where it is', () => {
    const chat = chatOf({
      system: [
        { type: 'text', text: 'You are a coding agent.' },
        { type: 'text', text: 'Project rules.', cache_control: { type: 'ephemeral', ttl: '1h' } },
      ],
      messages: [...hi, { role: 'system', content: [{ type: 'text', text: 'Late rule.' }] }, { role: 'user', content: 'Go' }],
    });
    expect(chat.messages).toEqual([
      {
        role: 'system',
        content: [
          { type: 'text', text: 'You are a coding agent.' },
          { type: 'text', text: 'Project rules.' },
        ],
      },
      { role: 'user', content: 'Hi' },
      { role: 'system', content: [{ type: 'text', text: 'Late rule.' }] },
      { role: 'user', content: 'Go' },
    ]);
  });

  it('user text and image blocks become content parts: base64 → data URL, url → its URL', () => {
    const chat = chatOf({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Compare these.', cache_control: { type: 'ephemeral' } },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
          ],
        },
      ],
    });
    expect(chat.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'Compare these.' },
          { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } },
          { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg' } },
        ],
      },
    ]);
  });

  it('assistant turns: text joined, tool_use → tool_calls (arguments = JSON of input), thinking dropped; tool results come first in the next user turn', () => {
    const chat = chatOf({
      messages: [
        { role: 'user', content: 'Weather in Paris and Rome?' },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'Two cities: two calls.', signature: 'sig' },
            { type: 'redacted_thinking', data: 'opaque' },
            { type: 'text', text: 'Checking both.' },
            { type: 'tool_use', id: 'toolu_01', name: 'get_weather', input: { city: 'Paris' } },
            { type: 'tool_use', id: 'toolu_02', name: 'get_weather', input: { city: 'Rome' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'Here you go.' },
            { type: 'tool_result', tool_use_id: 'toolu_01', content: '18°C, sunny' },
            {
              type: 'tool_result',
              tool_use_id: 'toolu_02',
              is_error: true,
              content: [
                { type: 'text', text: 'Service down.' },
                { type: 'image', source: { type: 'base64', media_type: 'image/jpeg', data: PNG } },
                { type: 'text', text: 'Retry later.' },
              ],
            },
          ],
        },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'user', content: 'Weather in Paris and Rome?' },
      {
        role: 'assistant',
        content: 'Checking both.',
        tool_calls: [
          { id: 'toolu_01', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'toolu_02', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Rome"}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_01', content: '18°C, sunny' },
      { role: 'tool', tool_call_id: 'toolu_02', content: 'Error: Service down.\nRetry later.' },
      // The tool result's image (tool messages carry text only), then the turn's own content.
      {
        role: 'user',
        content: [
          { type: 'image_url', image_url: { url: `data:image/jpeg;base64,${PNG}` } },
          { type: 'text', text: 'Here you go.' },
        ],
      },
    ]);
  });

  it('a turn of tool results only is its tool messages; an empty result is empty text ("Error" when is_error)', () => {
    const chat = chatOf({
      messages: [
        ...hi,
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_a', name: 'ping', input: {} }, { type: 'tool_use', id: 'toolu_b', name: 'ping', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_a' }, { type: 'tool_result', tool_use_id: 'toolu_b', content: [], is_error: true }] },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'user', content: 'Hi' },
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'toolu_a', type: 'function', function: { name: 'ping', arguments: '{}' } },
          { id: 'toolu_b', type: 'function', function: { name: 'ping', arguments: '{}' } },
        ],
      },
      { role: 'tool', tool_call_id: 'toolu_a', content: '' },
      { role: 'tool', tool_call_id: 'toolu_b', content: 'Error' },
    ]);
  });

  it('assistant strings (prefill) stay strings; several text blocks are joined by a blank line; thinking alone is empty text', () => {
    const chat = chatOf({
      messages: [
        ...hi,
        { role: 'assistant', content: [{ type: 'text', text: 'One.' }, { type: 'text', text: 'Two.' }] },
        { role: 'user', content: 'More' },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 't', signature: 's' }] },
        { role: 'user', content: 'Answer' },
        { role: 'assistant', content: 'The answer is (' },
      ],
    });
    expect(chat.messages).toEqual([
      { role: 'user', content: 'Hi' },
      { role: 'assistant', content: 'One.\n\nTwo.' },
      { role: 'user', content: 'More' },
      { role: 'assistant', content: '' },
      { role: 'user', content: 'Answer' },
      { role: 'assistant', content: 'The answer is (' },
    ]);
  });

  it.each([
    [{ type: 'auto' }, { tool_choice: 'auto' }],
    [{ type: 'auto', disable_parallel_tool_use: true }, { tool_choice: 'auto', parallel_tool_calls: false }],
    [{ type: 'any' }, { tool_choice: 'required' }],
    [{ type: 'any', disable_parallel_tool_use: false }, { tool_choice: 'required' }],
    [{ type: 'tool', name: 'get_weather' }, { tool_choice: { type: 'function', function: { name: 'get_weather' } } }],
    [{ type: 'tool', name: 'get_weather', disable_parallel_tool_use: true }, { tool_choice: { type: 'function', function: { name: 'get_weather' } }, parallel_tool_calls: false }],
    [{ type: 'none' }, { tool_choice: 'none' }],
  ])('tool_choice %j → %j', (choice, expected) => {
    const chat = chatOf({ messages: hi, tools: [{ name: 'get_weather', input_schema: weather, strict: true }], tool_choice: choice });
    expect(chat).toEqual({
      model: 'paygo-claude',
      max_tokens: 1024,
      messages: [{ role: 'user', content: 'Hi' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: weather, strict: true } }],
      ...expected,
    });
  });

  it('custom tools may say so (type "custom" or null); without tools no tool_choice is sent', () => {
    const tools = [
      { type: 'custom', name: 'a', input_schema: { type: 'object' } },
      { type: null, name: 'b', input_schema: { type: 'object' } },
    ];
    expect(chatOf({ messages: hi, tools }).tools).toEqual([
      { type: 'function', function: { name: 'a', parameters: { type: 'object' } } },
      { type: 'function', function: { name: 'b', parameters: { type: 'object' } } },
    ]);
    expect(chatOf({ messages: hi, tool_choice: { type: 'any', disable_parallel_tool_use: true } })).toEqual({ ...base, messages: [{ role: 'user', content: 'Hi' }] });
  });

  it.each([
    [{ thinking: { type: 'enabled', budget_tokens: 1024 } }, 'low'],
    [{ thinking: { type: 'enabled', budget_tokens: 4095 } }, 'low'],
    [{ thinking: { type: 'enabled', budget_tokens: 4096 } }, 'medium'],
    [{ thinking: { type: 'enabled', budget_tokens: 16383 } }, 'medium'],
    [{ thinking: { type: 'enabled', budget_tokens: 16384 } }, 'high'],
    [{ thinking: { type: 'adaptive' } }, undefined],
    [{ thinking: { type: 'disabled' } }, undefined],
    [{ thinking: { type: 'adaptive' }, output_config: { effort: 'low' } }, 'low'],
    [{ thinking: { type: 'enabled', budget_tokens: 20000 }, output_config: { effort: 'medium' } }, 'medium'],
    [{ output_config: { effort: 'xhigh' } }, 'xhigh'],
    [{ output_config: { effort: 'max' } }, 'xhigh'],
  ])('%j → reasoning_effort %s', (fields, effort) => {
    expect(chatOf({ messages: hi, max_tokens: 32000, ...fields }).reasoning_effort).toBe(effort);
  });

  it('output_config.format json_schema → response_format json_schema', () => {
    const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
    expect(chatOf({ messages: hi, output_config: { format: { type: 'json_schema', schema } } }).response_format).toEqual({ type: 'json_schema', json_schema: { name: 'response', schema } });
  });

  it('respond and the encoder come with the translation', () => {
    const turn = parseMessagesRequest({ ...base, messages: hi });
    expect(typeof turn.respond).toBe('function');
    expect(turn.encoder()).not.toBe(turn.encoder());
  });
});

describe('parseMessagesRequest: refusals name the field, never the prompt', () => {
  const SECRET = 'the-secret-prompt-text';
  const user = (content: unknown) => ({ ...base, messages: [{ role: 'user', content }] });
  const cases: Array<[string, unknown, string | null, string]> = [
    ['a body that is not an object', [1], null, 'The request body must be a JSON object.'],
    ['no max_tokens (Anthropic requires it)', { model: 'm', messages: hi }, 'max_tokens', 'max_tokens: Invalid input: expected number, received undefined'],
    ['max_tokens 0 (cache pre-warming)', { ...base, max_tokens: 0, messages: hi }, 'max_tokens', 'max_tokens: Too small: expected number to be >=1'],
    ['no model', { max_tokens: 10, messages: hi }, 'model', 'model: Invalid input: expected string, received undefined'],
    ['no messages', { ...base, messages: [] }, 'messages', 'messages: Too small: expected array to have >=1 items'],
    ['a document block', { ...base, messages: [...hi, { role: 'assistant', content: 'ok' }, { role: 'user', content: [{ type: 'text', text: SECRET }, { type: 'document', source: { type: 'text', data: SECRET } }] }] }, 'messages.2.content.1.type', 'messages.2.content.1.type: Content block type "document" is not supported; expected text, image or tool_result in a user message.'],
    ['a block without type', user([{ text: SECRET }]), 'messages.0.content.0.type', 'messages.0.content.0.type: Content block type is missing; expected text, image or tool_result in a user message.'],
    ['a block type that is not an identifier is not quoted', user([{ type: SECRET + ' !' }]), 'messages.0.content.0.type', 'messages.0.content.0.type: Content block type is not supported; expected text, image or tool_result in a user message.'],
    ['a text block without text', user([{ type: 'text', text: SECRET }, { type: 'text' }]), 'messages.0.content.1.text', 'messages.0.content.1.text: Invalid input: expected string, received undefined'],
    ['content that is neither string nor blocks', user(5), 'messages.0.content', 'messages.0.content: Invalid input: expected string or array'],
    ['a Files API image', user([{ type: 'image', source: { type: 'file', file_id: 'file_1' } }]), 'messages.0.content.0.source.type', 'messages.0.content.0.source.type: Image source type "file" is not supported; expected base64 or url (paygo cannot read Anthropic Files API uploads).'],
    ['an image media type Anthropic does not take', user([{ type: 'image', source: { type: 'base64', media_type: 'image/tiff', data: PNG } }]), 'messages.0.content.0.source.media_type', 'messages.0.content.0.source.media_type: Invalid option: expected one of "image/jpeg"|"image/png"|"image/gif"|"image/webp"'],
    ['a tool_result in an assistant turn', { ...base, messages: [...hi, { role: 'assistant', content: [{ type: 'tool_result', tool_use_id: 't', content: SECRET }] }] }, 'messages.1.content.0.type', 'messages.1.content.0.type: Content block type "tool_result" is not supported; expected text, tool_use, thinking or redacted_thinking in an assistant message.'],
    ['a tool_use in a user turn', user([{ type: 'tool_use', id: 't', name: 'n', input: {} }]), 'messages.0.content.0.type', 'messages.0.content.0.type: Content block type "tool_use" is not supported; expected text, image or tool_result in a user message.'],
    ['a document inside a tool_result', user([{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'document', source: { type: 'text', data: SECRET } }] }]), 'messages.0.content.0.content.0.type', 'messages.0.content.0.content.0.type: tool_result content block type "document" is not supported; expected text or image.'],
    ['a tool_use without input', { ...base, messages: [...hi, { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'n' }] }] }, 'messages.1.content.0.input', 'messages.1.content.0.input: Invalid input: expected record, received undefined'],
    ['a tool role', { ...base, messages: [{ role: 'tool', content: SECRET }] }, 'messages.0.role', 'messages.0.role: Message role "tool" is not supported; expected user or assistant.'],
    ['a server tool', { ...base, messages: hi, tools: [{ name: 'get_weather', input_schema: weather }, { type: 'web_search_20250305', name: 'web_search', max_uses: 5 }] }, 'tools.1.type', 'tools.1.type: Tool type "web_search_20250305" is not supported: paygo serves custom tools (name, description, input_schema) only; Anthropic\'s server tools run on Anthropic\'s side.'],
    ['a bash tool', { ...base, messages: hi, tools: [{ type: 'bash_20250124', name: 'bash' }] }, 'tools.0.type', 'tools.0.type: Tool type "bash_20250124" is not supported: paygo serves custom tools (name, description, input_schema) only; Anthropic\'s server tools run on Anthropic\'s side.'],
    ['a tool schema that is not an object schema', { ...base, messages: hi, tools: [{ name: 'n', input_schema: { type: 'string' } }] }, 'tools.0.input_schema.type', 'tools.0.input_schema.type: Invalid input: expected "object"'],
    ['temperature over 1', { ...base, messages: hi, temperature: 1.5 }, 'temperature', 'temperature: Too big: expected number to be <=1'],
    ['a thinking budget under 1024', { ...base, messages: hi, thinking: { type: 'enabled', budget_tokens: 500 } }, 'thinking.budget_tokens', 'thinking.budget_tokens: Too small: expected number to be >=1024'],
    ['an unknown thinking type', { ...base, messages: hi, thinking: { type: 'deep' } }, 'thinking.type', 'thinking.type: thinking type "deep" is not supported; expected enabled, disabled or adaptive.'],
    ['tool_choice tool without a name', { ...base, messages: hi, tool_choice: { type: 'tool' } }, 'tool_choice.name', 'tool_choice.name: Invalid input: expected string, received undefined'],
    ['an unknown tool_choice', { ...base, messages: hi, tool_choice: { type: 'required' } }, 'tool_choice.type', 'tool_choice.type: tool_choice type "required" is not supported; expected auto, any, tool or none.'],
    ['MCP servers', { ...base, messages: hi, mcp_servers: [{ type: 'url', url: 'https://mcp.example.com', name: 'x' }] }, 'mcp_servers', 'mcp_servers: MCP servers are called by Anthropic itself and are not supported by paygo.'],
    ['stream that is not a boolean', { ...base, messages: hi, stream: 'yes' }, 'stream', 'stream: Invalid input: expected boolean, received string'],
  ];

  it.each(cases)('%s', (_name, body, param, message) => {
    expect(refusal(body)).toEqual({ status: 400, message, type: 'invalid_request_error', param, code: 'invalid_request' });
    expect(message).not.toContain(SECRET);
  });
});

const usage = (over: Partial<Usage> = {}): Usage => ({ inputTokens: 0, outputTokens: 0, cacheReadTokens: 0, cacheWriteTokens: 0, reasoningTokens: 0, ...over });
const priced: CallerCost = { usd: 0.0123, estimated: false };
const unpriced: CallerCost = { usd: undefined, estimated: false };

function completion(message: ChatCompletion['choices'][number]['message'], finish: FinishReason | null, id = 'msg_01XFDUDYJgAACzvnptvVoYEL', model = 'claude-sonnet-4-5'): ChatCompletion {
  return { id, object: 'chat.completion', created: 1750000000, model, choices: [{ index: 0, message, finish_reason: finish, logprobs: null }] };
}

describe('respond: the non-stream Message', () => {
  const turn = parseMessagesRequest({ ...base, messages: hi });

  it('a text answer, in Anthropic\'s shape; usage counts cache reads and writes apart and carries the cost', () => {
    const u = usage({ inputTokens: 2100, cacheReadTokens: 1800, cacheWriteTokens: 200, outputTokens: 42, reasoningTokens: 10 });
    expect(turn.respond(completion({ role: 'assistant', content: 'Hello!' }, 'stop'), u, priced)).toEqual({
      id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content: [{ type: 'text', text: 'Hello!' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 100, cache_creation_input_tokens: 200, cache_read_input_tokens: 1800, output_tokens: 42, cost: 0.0123 },
    } satisfies AnthropicMessage);
  });

  it('tool calls become tool_use blocks after the text; arguments that are not a JSON object give {}', () => {
    const message = {
      role: 'assistant' as const,
      content: 'Checking.',
      tool_calls: [
        { id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
        { id: 'call_2', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":' } },
        { id: 'call_3', type: 'function' as const, function: { name: 'list', arguments: '[1]' } },
        { id: 'call_4', type: 'function' as const, function: { name: 'ping', arguments: '' } },
      ],
    };
    const answer = turn.respond(completion(message, 'tool_calls', 'chatcmpl-abc', 'gpt-4o'), usage({ inputTokens: 50, outputTokens: 20 }), unpriced);
    expect(answer).toEqual({
      id: expect.stringMatching(/^msg_[A-Za-z0-9_-]{24}$/),
      type: 'message',
      role: 'assistant',
      model: 'gpt-4o',
      content: [
        { type: 'text', text: 'Checking.' },
        { type: 'tool_use', id: 'call_1', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'call_2', name: 'get_weather', input: {} },
        { type: 'tool_use', id: 'call_3', name: 'list', input: {} },
        { type: 'tool_use', id: 'call_4', name: 'ping', input: {} },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 50, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 20 },
    });
    // A fresh id per answer.
    expect(turn.respond(completion(message, 'tool_calls', 'chatcmpl-abc'), usage(), unpriced).id).not.toBe(answer.id);
  });

  it('no text and no tool calls → no content blocks (Anthropic refuses an empty text block sent back); a refusal\'s text is the text', () => {
    expect(turn.respond(completion({ role: 'assistant', content: '' }, 'stop'), usage(), unpriced).content).toEqual([]);
    expect(turn.respond(completion({ role: 'assistant', content: null }, 'length'), usage(), unpriced).content).toEqual([]);
    const refused = turn.respond(completion({ role: 'assistant', content: null, refusal: 'I cannot help with that.' }, 'content_filter'), usage(), unpriced);
    expect([refused.content, refused.stop_reason]).toEqual([[{ type: 'text', text: 'I cannot help with that.' }], 'refusal']);
  });

  it('a tool call without an id gets a toolu_ one; no choice at all is an empty end_turn with the request\'s model', () => {
    const message = { role: 'assistant' as const, content: null, tool_calls: [{ id: '', type: 'function' as const, function: { name: 'ping', arguments: '{}' } }] };
    expect(turn.respond(completion(message, 'tool_calls'), usage(), unpriced).content).toEqual([{ type: 'tool_use', id: expect.stringMatching(/^toolu_[A-Za-z0-9_-]{24}$/), name: 'ping', input: {} }]);
    const empty: ChatCompletion = { id: 'msg_x', object: 'chat.completion', created: 0, model: '', choices: [] };
    expect(turn.respond(empty, usage(), unpriced)).toMatchObject({ id: 'msg_x', model: 'paygo-claude', content: [], stop_reason: 'end_turn' });
  });

  it.each([
    ['stop', false, 'end_turn'],
    ['stop', true, 'tool_use'],
    [null, false, 'end_turn'],
    ['length', false, 'max_tokens'],
    ['length', true, 'max_tokens'],
    ['tool_calls', true, 'tool_use'],
    ['function_call', true, 'tool_use'],
    ['content_filter', false, 'refusal'],
  ] as const)('finish_reason %s (tool calls: %s) → stop_reason %s', (finish, withTools, expected) => {
    const message = withTools
      ? { role: 'assistant' as const, content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'f', arguments: '{}' } }] }
      : { role: 'assistant' as const, content: 'x' };
    expect(turn.respond(completion(message, finish), usage(), unpriced).stop_reason).toBe(expected);
  });

  it('input_tokens never goes negative when a provider reports more cached tokens than prompt tokens', () => {
    expect(turn.respond(completion({ role: 'assistant', content: 'x' }, 'stop'), usage({ inputTokens: 10, cacheReadTokens: 12 }), unpriced).usage.input_tokens).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Stream

function chunk(delta: ChatCompletionChunk['choices'][number]['delta'], finish: FinishReason | null = null, id = 'msg_01Stream', model = 'claude-sonnet-4-5'): ChatCompletionChunk {
  return { id, object: 'chat.completion.chunk', created: 1750000000, model, choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }] };
}
const call = (c: ChunkToolCall) => chunk({ tool_calls: [c] });

/** The events of an SSE text, parsed (to check each data line's type against its event name). */
function events(sse: string): Array<{ event: string; data: Record<string, unknown> }> {
  return sse
    .split('\n\n')
    .filter(Boolean)
    .map((frame) => {
      const [eventLine, dataLine, ...rest] = frame.split('\n');
      expect(rest).toEqual([]);
      expect(eventLine).toMatch(/^event: [a-z_]+$/);
      expect(dataLine).toMatch(/^data: /);
      return { event: eventLine!.slice('event: '.length), data: JSON.parse(dataLine!.slice('data: '.length)) as Record<string, unknown> };
    });
}

const TEXT_STREAM = [
  'event: message_start',
  'data: {"type":"message_start","message":{"id":"msg_01Stream","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}',
  '',
  'event: content_block_start',
  'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":", \\"world\\"!\\n"}}',
  '',
  'event: content_block_stop',
  'data: {"type":"content_block_stop","index":0}',
  '',
  'event: message_delta',
  'data: {"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":5,"cache_creation_input_tokens":0,"cache_read_input_tokens":20,"output_tokens":7,"cost":0.0005}}',
  '',
  'event: message_stop',
  'data: {"type":"message_stop"}',
  '',
  '',
].join('\n');

/** Text, then two tool calls whose arguments arrive in pieces, as the chat adapters emit them. */
const TOOLS_CHUNKS: ChatCompletionChunk[][] = [
  [chunk({ role: 'assistant', content: '' }), chunk({ content: 'Checking ' })],
  [chunk({ content: 'both.' })],
  [call({ index: 0, id: 'toolu_A', type: 'function', function: { name: 'get_weather', arguments: '' } })],
  [call({ index: 0, function: { arguments: '{"city":' } }), call({ index: 0, function: { arguments: '"Paris"}' } })],
  [call({ index: 1, id: 'toolu_B', type: 'function', function: { name: 'get_weather', arguments: '{"ci' } })],
  [call({ index: 1, function: { arguments: 'ty":"Rome"}' } })],
  [chunk({}, 'tool_calls')],
];

const TOOLS_STREAM = [
  'event: message_start',
  'data: {"type":"message_start","message":{"id":"msg_01Stream","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":0,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":0}}}',
  '',
  'event: content_block_start',
  'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Checking "}}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"both."}}',
  '',
  'event: content_block_stop',
  'data: {"type":"content_block_stop","index":0}',
  '',
  'event: content_block_start',
  'data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_A","name":"get_weather","input":{}}}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\\"city\\":\\"Paris\\"}"}}',
  '',
  'event: content_block_stop',
  'data: {"type":"content_block_stop","index":1}',
  '',
  'event: content_block_start',
  'data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_B","name":"get_weather","input":{}}}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\\"ci"}}',
  '',
  'event: content_block_delta',
  'data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"ty\\":\\"Rome\\"}"}}',
  '',
  'event: content_block_stop',
  'data: {"type":"content_block_stop","index":2}',
  '',
  'event: message_delta',
  'data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"input_tokens":300,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":60}}',
  '',
  'event: message_stop',
  'data: {"type":"message_stop"}',
  '',
  '',
].join('\n');

function encodeText(): string {
  const enc = parseMessagesRequest({ ...base, messages: hi, stream: true }).encoder();
  let out = enc.push([chunk({ role: 'assistant', content: '' }), chunk({ content: 'Hello' })]);
  out += enc.push([chunk({ content: ', "world"!\n' })]);
  out += enc.push([chunk({}, 'stop')]);
  return out + enc.finish(usage({ inputTokens: 25, cacheReadTokens: 20, outputTokens: 7 }), { usd: 0.0005, estimated: false });
}

function encodeTools(): string {
  const enc = parseMessagesRequest({ ...base, messages: hi, stream: true }).encoder();
  let out = '';
  for (const chunks of TOOLS_CHUNKS) out += enc.push(chunks);
  return out + enc.finish(usage({ inputTokens: 300, outputTokens: 60 }), unpriced);
}

describe('encoder: the SSE events', () => {
  it('a text answer, byte for byte: message_start, one text block, message_delta with the whole usage and cost, message_stop', () => {
    expect(encodeText()).toBe(TEXT_STREAM);
  });

  it('text and two tool calls with arguments in pieces: one block each, indexes counting up, pieces of one push merged', () => {
    expect(encodeTools()).toBe(TOOLS_STREAM);
  });

  it('every data line is JSON whose type is its event name', () => {
    for (const e of [...events(TEXT_STREAM), ...events(TOOLS_STREAM)]) expect(e.data.type).toBe(e.event);
  });

  it('the first push opens the message even without output; nothing else is due until there is some', () => {
    const enc = parseMessagesRequest({ ...base, messages: hi }).encoder();
    const first = enc.push([chunk({ role: 'assistant', content: '' }, null, 'chatcmpl-1', 'gpt-4o')]);
    expect(events(first)).toEqual([
      {
        event: 'message_start',
        data: {
          type: 'message_start',
          message: {
            id: expect.stringMatching(/^msg_[A-Za-z0-9_-]{24}$/),
            type: 'message',
            role: 'assistant',
            content: [],
            model: 'gpt-4o',
            stop_reason: null,
            stop_sequence: null,
            usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 },
          },
        },
      },
    ]);
    expect(enc.push([chunk({ content: '' })])).toBe('');
    expect(enc.push([])).toBe('');
  });

  it('finish without any chunk still opens and closes the message (model: the request\'s)', () => {
    const enc = parseMessagesRequest({ ...base, messages: hi }).encoder();
    const got = events(enc.finish(usage({ inputTokens: 3 }), unpriced));
    expect(got.map((e) => e.event)).toEqual(['message_start', 'message_delta', 'message_stop']);
    expect((got[0]!.data.message as { model: string }).model).toBe('paygo-claude');
    expect(got[1]!.data).toEqual({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { input_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 } });
  });

  it('a tool call without id gets a toolu_ one; a call without arguments streams none; text after a call opens a new block; length → max_tokens', () => {
    const enc = parseMessagesRequest({ ...base, messages: hi }).encoder();
    let out = enc.push([call({ index: 0, type: 'function', function: { name: 'ping', arguments: '' } })]);
    out += enc.push([chunk({ content: 'Done' }), chunk({}, 'length')]);
    out += enc.finish(usage(), unpriced);
    const got = events(out).slice(1);
    expect(got).toEqual([
      { event: 'content_block_start', data: { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: expect.stringMatching(/^toolu_/), name: 'ping', input: {} } } },
      { event: 'content_block_stop', data: { type: 'content_block_stop', index: 0 } },
      { event: 'content_block_start', data: { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } } },
      { event: 'content_block_delta', data: { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Done' } } },
      { event: 'content_block_stop', data: { type: 'content_block_stop', index: 1 } },
      { event: 'message_delta', data: { type: 'message_delta', delta: { stop_reason: 'max_tokens', stop_sequence: null }, usage: { input_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 0 } } },
      { event: 'message_stop', data: { type: 'message_stop' } },
    ]);
  });

  it('tool calls ending with "stop" still stop with tool_use; interleaved argument pieces go to their own block', () => {
    const enc = parseMessagesRequest({ ...base, messages: hi }).encoder();
    let out = enc.push([
      chunk({ tool_calls: [{ index: 0, id: 'call_0', function: { name: 'a', arguments: '{"x":' } }, { index: 1, id: 'call_1', function: { name: 'b', arguments: '{"y":' } }] }),
    ]);
    out += enc.push([call({ index: 0, function: { arguments: '1}' } }), call({ index: 1, function: { arguments: '2}' } }), chunk({}, 'stop')]);
    out += enc.finish(usage(), unpriced);
    const got = events(out).slice(1, -2);
    expect(got.map((e) => e.data)).toEqual([
      { type: 'content_block_start', index: 0, content_block: { type: 'tool_use', id: 'call_0', name: 'a', input: {} } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '{"x":' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'call_1', name: 'b', input: {} } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"y":' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'input_json_delta', partial_json: '1}' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '2}' } },
      { type: 'content_block_stop', index: 1 },
    ]);
    expect(events(out).at(-2)!.data.delta).toEqual({ stop_reason: 'tool_use', stop_sequence: null });
  });

  it('only the first choice is translated; refusal text is text', () => {
    const enc = parseMessagesRequest({ ...base, messages: hi }).encoder();
    const other: ChatCompletionChunk = { ...chunk({ content: 'other choice' }), choices: [{ index: 1, delta: { content: 'other choice' }, finish_reason: null }] };
    const out = enc.push([other, chunk({ refusal: 'No.' })]);
    expect(events(out).slice(1).map((e) => e.data)).toEqual([
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'No.' } },
    ]);
  });

  it.each([
    ['overloaded_error', 'overloaded_error'],
    ['rate_limit_error', 'rate_limit_error'],
    ['upstream_error', 'api_error'],
    ['throttlingException', 'api_error'],
  ])('fail (%s): an error event of type %s', (type, expected) => {
    const enc = parseMessagesRequest({ ...base, messages: hi }).encoder();
    enc.push([chunk({ content: 'Hel' })]);
    expect(enc.fail({ message: 'Overloaded', type, code: 'upstream_stream_error' })).toBe(`event: error\ndata: {"type":"error","error":{"type":"${expected}","message":"Overloaded"}}\n\n`);
  });
});

describe('anthropicError', () => {
  it.each([
    [400, 'invalid_request_error'],
    [401, 'authentication_error'],
    [402, 'billing_error'],
    [403, 'permission_error'],
    [404, 'not_found_error'],
    [409, 'invalid_request_error'],
    [413, 'request_too_large'],
    [415, 'invalid_request_error'],
    [429, 'rate_limit_error'],
    [500, 'api_error'],
    [502, 'api_error'],
    [503, 'overloaded_error'],
    [504, 'timeout_error'],
    [529, 'overloaded_error'],
  ])('%i → %s, the status and message kept', (status, type) => {
    const err = new ApiError(status, 'upstream_error', 'some_code', `failure ${status}`);
    expect(anthropicError(err)).toEqual({ status, body: { type: 'error', error: { type, message: `failure ${status}` } } });
  });

  it('adds request_id when given', () => {
    expect(anthropicError(new ApiError(404, 'not_found_error', 'model_not_found', 'The model "x" does not exist.', 'model'), 'req-1')).toEqual({
      status: 404,
      body: { type: 'error', error: { type: 'not_found_error', message: 'The model "x" does not exist.' }, request_id: 'req-1' },
    });
  });
});

describe('parseCountTokensRequest', () => {
  it('the same translation without max_tokens or stream', () => {
    const body = {
      model: 'paygo-claude',
      system: 'Be brief.',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Weather?' }] }],
      tools: [{ name: 'get_weather', input_schema: weather }],
      tool_choice: { type: 'auto' },
      thinking: { type: 'enabled', budget_tokens: 2048 },
    };
    expect(parseCountTokensRequest(body)).toEqual({
      model: 'paygo-claude',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Weather?' }] },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: weather } }],
      tool_choice: 'auto',
      reasoning_effort: 'low',
    });
    expect(parseCountTokensRequest({ ...body, max_tokens: 10, stream: true })).not.toHaveProperty('max_tokens');
  });

  it('refuses like the Messages request, naming the field', () => {
    expect(() => parseCountTokensRequest({ model: 'm', messages: [{ role: 'user', content: [{ type: 'document' }] }] })).toThrow(
      expect.objectContaining({ status: 400, param: 'messages.0.content.0.type' }),
    );
    expect(() => parseCountTokensRequest({ messages: hi })).toThrow(expect.objectContaining({ status: 400, param: 'model' }));
  });
});

// ---------------------------------------------------------------------------------------------
// The official SDK reading what paygo writes.

interface SdkClient {
  messages: {
    create(body: Record<string, unknown>): Promise<unknown>;
    stream(body: Record<string, unknown>): { finalMessage(): Promise<unknown>; on(event: string, f: (...args: unknown[]) => void): unknown };
  };
}
type SdkConstructor = new (options: Record<string, unknown>) => SdkClient;

/** An SDK client whose fetch answers with `respond` and records the request bodies it sent. */
function sdkClient(respond: (body: unknown) => Response): { client: SdkClient; sent: unknown[] } {
  const sent: unknown[] = [];
  const fetch = async (_url: unknown, init: { body: string }) => {
    const body: unknown = JSON.parse(init.body);
    sent.push(body);
    return respond(body);
  };
  // Typed loosely: these tests feed it hand-written bodies and a recording fetch.
  return { client: new (Anthropic as unknown as SdkConstructor)({ apiKey: 'test', baseURL: 'http://paygo.test', fetch, maxRetries: 0 }), sent };
}

const sse = (text: string) => new Response(text, { status: 200, headers: { 'content-type': 'text/event-stream' } });

describe('round trip through @anthropic-ai/sdk', () => {
  it('MessageStream accumulates the text and tool calls, and takes the usage from message_delta', async () => {
    const { client, sent } = sdkClient(() => sse(encodeTools()));
    const message = await client.messages.stream({ model: 'paygo-claude', max_tokens: 100, messages: hi }).finalMessage();
    expect(message).toMatchObject({
      id: 'msg_01Stream',
      model: 'claude-sonnet-4-5',
      role: 'assistant',
      content: [
        { type: 'text', text: 'Checking both.' },
        { type: 'tool_use', id: 'toolu_A', name: 'get_weather', input: { city: 'Paris' } },
        { type: 'tool_use', id: 'toolu_B', name: 'get_weather', input: { city: 'Rome' } },
      ],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 300, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 60 },
    });
    expect(parseMessagesRequest(sent[0]).chat).toEqual({ model: 'paygo-claude', max_tokens: 100, stream: true, messages: [{ role: 'user', content: 'Hi' }] });
  });

  it('the text stream: cached input counted apart, cost passed through the raw event', async () => {
    const { client } = sdkClient(() => sse(encodeText()));
    const stream = client.messages.stream({ model: 'paygo-claude', max_tokens: 100, messages: hi });
    const costs: unknown[] = [];
    stream.on('streamEvent', (e) => {
      const ev = e as { type: string; usage?: { cost?: number } };
      if (ev.type === 'message_delta') costs.push(ev.usage?.cost);
    });
    const message = await stream.finalMessage();
    expect(message).toMatchObject({ content: [{ type: 'text', text: 'Hello, "world"!\n' }], stop_reason: 'end_turn', usage: { input_tokens: 5, cache_read_input_tokens: 20, output_tokens: 7 } });
    expect(costs).toEqual([0.0005]);
  });

  it('the non-stream Message as the SDK returns it, from what the SDK sent', async () => {
    const { client, sent } = sdkClient((body) => {
      const turn = parseMessagesRequest(body);
      const answer = turn.respond(completion({ role: 'assistant', content: 'Sunny.' }, 'stop'), usage({ inputTokens: 40, outputTokens: 3 }), priced);
      return new Response(JSON.stringify(answer), { status: 200, headers: { 'content-type': 'application/json' } });
    });
    const message = await client.messages.create({
      model: 'paygo-claude',
      max_tokens: 200,
      system: [{ type: 'text', text: 'Be brief.', cache_control: { type: 'ephemeral' } }],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Weather?' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: PNG } }] }],
      tools: [{ name: 'get_weather', input_schema: weather }],
      tool_choice: { type: 'auto', disable_parallel_tool_use: true },
      metadata: { user_id: 'u1' },
    });
    expect(message).toEqual({
      id: 'msg_01XFDUDYJgAACzvnptvVoYEL',
      type: 'message',
      role: 'assistant',
      model: 'claude-sonnet-4-5',
      content: [{ type: 'text', text: 'Sunny.' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 40, cache_creation_input_tokens: 0, cache_read_input_tokens: 0, output_tokens: 3, cost: 0.0123 },
    });
    expect(parseMessagesRequest(sent[0]).chat).toEqual({
      model: 'paygo-claude',
      max_tokens: 200,
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'Be brief.' }] },
        { role: 'user', content: [{ type: 'text', text: 'Weather?' }, { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG}` } }] },
      ],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: weather } }],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      user: 'u1',
    });
  });

  it('errors: the SDK raises its error class with Anthropic\'s body, and a stream error event', async () => {
    const refused = anthropicError(new ApiError(429, 'rate_limit_error', 'budget_exceeded', 'Budget exhausted.'));
    const { client } = sdkClient(() => new Response(JSON.stringify(refused.body), { status: refused.status, headers: { 'content-type': 'application/json' } }));
    await expect(client.messages.create({ model: 'paygo-claude', max_tokens: 10, messages: hi })).rejects.toMatchObject({ status: 429, error: refused.body });

    const enc = parseMessagesRequest({ ...base, messages: hi }).encoder();
    const body = enc.push([chunk({ content: 'Hel' })]) + enc.fail({ message: 'Overloaded', type: 'overloaded_error', code: 'upstream_stream_error' });
    const { client: streaming } = sdkClient(() => sse(body));
    await expect(streaming.messages.stream({ model: 'paygo-claude', max_tokens: 10, messages: hi }).finalMessage()).rejects.toMatchObject({
      error: { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } },
    });
  });
});
