import { describe, expect, it } from 'vitest';
import { isPlainResponsesRequest, ResponsesRequestSchema } from '../../../sidecar/apis/responses-request.js';
import { BOOLEANS, expectZodVerdicts, NUMBERS, STRINGS, type BodySpace } from '../../support/plain-check.js';

const RESPONSES_BODIES: BodySpace = {
  required: { model: ['gpt-4o', '', 7], input: ['hello', [{ role: 'user', content: 'hi' }], [], 5, null, { role: 'user' }] },
  optional: {
    instructions: STRINGS,
    previous_response_id: ['resp_1', '', null, 3],
    tools: [null, [], [{ type: 'function', name: 'f' }], [{ type: 'web_search' }], {}],
    tool_choice: ['auto', null, { type: 'function', name: 'f' }, 5],
    max_output_tokens: NUMBERS,
    temperature: NUMBERS,
    top_p: NUMBERS,
    parallel_tool_calls: BOOLEANS,
    store: BOOLEANS,
    user: STRINGS,
    stream: BOOLEANS,
    truncation: ['auto', 'disabled', null, 'sometimes'],
    background: BOOLEANS,
    top_logprobs: NUMBERS,
    text: [null, { format: { type: 'text' } }, { format: { type: 'bogus' } }],
    reasoning: [null, { effort: 'low' }, { effort: 'max' }],
    metadata: [null, { k: 'v' }, { k: 5 }],
    include: [['reasoning.encrypted_content'], 'x'],
    constructor: ['x'],
  },
};

describe('isPlainResponsesRequest', () => {
  it('accepts only what ResponsesRequestSchema accepts, and the body is then what zod would make of it', () => {
    expectZodVerdicts(ResponsesRequestSchema, isPlainResponsesRequest, RESPONSES_BODIES, 20);
  });

  it('takes what the OpenAI SDK and the AI SDK send, and leaves text, reasoning and metadata to zod', () => {
    expect(isPlainResponsesRequest({ model: 'gpt-4o', input: 'Tell me a joke' })).toBe(true);
    expect(isPlainResponsesRequest({ model: 'gpt-4o', input: [{ role: 'user', content: [{ type: 'input_text', text: 'hi' }] }], store: true, stream: true, tools: [{ type: 'function', name: 'f', parameters: {} }], tool_choice: 'auto' })).toBe(true);
    expect(isPlainResponsesRequest({ model: 'gpt-4o', input: 'hi', text: { format: { type: 'text' } } })).toBe(false);
    expect(isPlainResponsesRequest({ model: 'gpt-4o', input: 'hi', max_output_tokens: 0 })).toBe(false);
  });
});
