import { encode as cl100k } from 'gpt-tokenizer/encoding/cl100k_base';
import { encode as o200k } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import type { ChatRequest } from '../../../sidecar/openai-schema.js';
import { countPromptTokens, countTextTokens, IMAGE_TOKEN_BOUND, loadTokenizer, promptTokenUpperBound } from '../../../sidecar/metering/tokens.js';

/** Prompt token counts and their byte bound, term by term (OpenAI cookbook framing: 3 per message, 3 to prime the reply). */

const n = (text: string) => o200k(text).length;
const bytes = (text: string) => Buffer.byteLength(text);
const req = (r: Partial<ChatRequest>): ChatRequest => ({ model: 'bot', messages: [], ...r }) as ChatRequest;

const TOOL_CALLS = [{ id: 'call_1', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Zürich"}' } }];
const TOOLS = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object' } } }];

describe('countPromptTokens', () => {
  it('text, names, tool calls and tool schemas', async () => {
    const r = req({
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: [{ type: 'text', text: 'Wie ist das Wetter in Zürich?' }], name: 'hans' },
        { role: 'assistant', content: null, tool_calls: TOOL_CALLS },
      ],
      tools: TOOLS,
    } as Partial<ChatRequest>);
    const expected =
      3 +
      (3 + n('Be brief.')) +
      (3 + n('Wie ist das Wetter in Zürich?') + n('hans') + 1) +
      (3 + 0 + n('get_weather') + n('{"city":"Zürich"}') + 3) +
      n(JSON.stringify(TOOLS));
    expect(await countPromptTokens(r, 'gpt-4o')).toBe(expected);
  });

  it('an empty tools list adds nothing; no messages is the reply priming alone', async () => {
    expect(await countPromptTokens(req({ tools: [] } as Partial<ChatRequest>), 'gpt-4o')).toBe(3);
    expect(await countPromptTokens(req({ messages: [{ role: 'user', content: '' }] }), 'gpt-4o')).toBe(6);
  });

  it('with the model\'s own encoding', async () => {
    const text = 'Привет, как дела? 日本語のテキストも少し。';
    expect(await countPromptTokens(req({ messages: [{ role: 'user', content: text }] }), 'gpt-4')).toBe(3 + 3 + cl100k(text).length);
    expect(await countTextTokens(text, 'gpt-4')).toBe(cl100k(text).length);
    expect(await (await loadTokenizer('gpt-4o'))(text)).toBe(o200k(text).length);
  });
});

describe('promptTokenUpperBound', () => {
  it('message bytes plus framing, tool calls and tools as JSON bytes', () => {
    const r = req({
      messages: [
        { role: 'user', content: 'héllo' },
        { role: 'assistant', content: null, tool_calls: TOOL_CALLS },
      ],
      tools: TOOLS,
    } as Partial<ChatRequest>);
    expect(promptTokenUpperBound(r)).toBe(bytes('héllo') + 3 + 8 + (0 + 3 + 8 + bytes(JSON.stringify(TOOL_CALLS))) + bytes(JSON.stringify(TOOLS)) + 3);
  });

  it('every non-text part counts as an image bound', () => {
    const r = req({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'look' },
            { type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } },
            { type: 'input_audio', input_audio: {} },
          ],
        },
      ],
    } as Partial<ChatRequest>);
    expect(IMAGE_TOKEN_BOUND).toBe(3000);
    expect(promptTokenUpperBound(r)).toBe(4 + 3 + 8 + 2 * 3000 + 3);
  });

  it('an empty tools list adds nothing', () => {
    expect(promptTokenUpperBound(req({ tools: [] } as Partial<ChatRequest>))).toBe(3);
  });

  it('bounds the counted tokens', async () => {
    const r = req({ messages: [{ role: 'user', content: 'Привет, как дела? 日本語のテキストも少し。' }], tools: TOOLS } as Partial<ChatRequest>);
    expect(promptTokenUpperBound(r)).toBeGreaterThanOrEqual(await countPromptTokens(r, 'gpt-4o'));
  });
});
