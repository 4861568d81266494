import { isDeepStrictEqual } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ChatRequestSchema, isPlainChatRequest } from '../../sidecar/openai-schema.js';
import { seededRandom } from '../../sidecar/random.js';

/** What zod makes of a body: its data when valid. */
function zodVerdict(body: unknown): { ok: true; data: unknown } | { ok: false } {
  const r = ChatRequestSchema.safeParse(body);
  return r.success ? { ok: true, data: r.data } : { ok: false };
}

const NUMBERS = [null, 0, 1, 2, 16, 128, 129, 0.5, 1.5, 2.5, -1, -2, -2.5, 1e3, 2 ** 53, 2 ** 53 - 1, -(2 ** 53 - 1), 'x', true, [], {}];
const FIELDS: Record<string, unknown[]> = {
  stream: [null, true, false, 'yes', 1],
  max_tokens: NUMBERS,
  max_completion_tokens: NUMBERS,
  temperature: NUMBERS,
  top_p: NUMBERS,
  n: NUMBERS,
  seed: NUMBERS,
  presence_penalty: NUMBERS,
  frequency_penalty: NUMBERS,
  stop: [null, 'END', '', [], ['a', 'b'], Array(16).fill('s'), Array(17).fill('s'), [1], {}],
  parallel_tool_calls: [true, false, null, 'true'],
  user: ['u-1', '', null, 7],
  stream_options: [null, { include_usage: true }, { include_usage: 'no' }, {}],
  tools: [[], [{ type: 'function', function: { name: 'f', parameters: { type: 'object' } } }], [{ type: 'function', function: { name: '' } }]],
  tool_choice: ['auto', 'none', 'sometimes', { type: 'function', function: { name: 'f' } }],
  response_format: [{ type: 'json_object' }, { type: 1 }, 'json'],
  metadata: [{ app: 'x' }, null, 'any'],
  store: [true, 'any'],
};
const ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'bogus', 1, undefined];
const CONTENTS = ['hello', '', null, undefined, [], [{ type: 'text', text: 'a' }], [{ type: 'image_url', image_url: { url: '' } }], 5];
const NAMES = [undefined, 'alice', '', null, 3];
const EXTRAS: Array<[string, unknown] | undefined> = [undefined, ['tool_calls', [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }]], ['tool_call_id', 'c'], ['x', 1], ['refusal', null]];

function randomBody(rnd: () => number): unknown {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!;
  const message = () => {
    const m: Record<string, unknown> = {};
    // Mostly the plain shape, so that both sides of the line are well covered.
    const role = rnd() < 0.8 ? pick(ROLES.slice(0, 4)) : pick(ROLES);
    if (role !== undefined) m.role = role;
    const content = rnd() < 0.8 ? 'hello' : pick(CONTENTS);
    if (content !== undefined) m.content = content;
    const name = rnd() < 0.7 ? undefined : pick(NAMES);
    if (name !== undefined) m.name = name;
    const extra = rnd() < 0.2 ? pick(EXTRAS) : undefined;
    if (extra) m[extra[0]] = extra[1];
    return m;
  };
  const body: Record<string, unknown> = {};
  if (rnd() < 0.95) body.model = rnd() < 0.8 ? 'support-bot' : pick(['gpt-4o', '', 7]);
  if (rnd() < 0.95) body.messages = rnd() < 0.05 ? [] : Array.from({ length: 1 + Math.floor(rnd() * 2) }, message);
  for (const [field, values] of Object.entries(FIELDS)) if (rnd() < 0.1) body[field] = pick(values);
  // Bodies come from JSON.parse: no undefined, no shared objects.
  return JSON.parse(JSON.stringify(body));
}

describe('isPlainChatRequest', () => {
  it('accepts only what ChatRequestSchema accepts, and the body is then what zod would make of it', () => {
    const rnd = seededRandom(18);
    let plain = 0;
    let zodOnly = 0;
    const disagreements: unknown[] = [];
    for (let i = 0; i < 20_000; i++) {
      const body = randomBody(rnd);
      const verdict = zodVerdict(body);
      if (isPlainChatRequest(body)) {
        plain++;
        if (!verdict.ok || !isDeepStrictEqual(verdict.data, body)) disagreements.push(body);
      } else if (verdict.ok) zodOnly++;
    }
    expect(disagreements.slice(0, 3)).toEqual([]);
    // Neither side empty: plain bodies were taken, and valid bodies outside the plain shape left to zod.
    expect(plain).toBeGreaterThan(500);
    expect(zodOnly).toBeGreaterThan(500);
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
