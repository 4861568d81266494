import { describe, expect, it } from 'vitest';
import { count, list, orNull, plainRequestCheck, record, text, within } from '../../sidecar/plain-check.js';

describe('plain-check', () => {
  const message = record({ role: text(1), content: text() }, ['role', 'content']);
  const check = plainRequestCheck(['model', 'messages', 'max_tokens', 'tools'], { model: text(1), messages: list(message, 1), max_tokens: orNull(count(1)) }, ['model', 'messages']);

  it('takes the plain shape with unknown fields, and leaves known fields without a check to zod', () => {
    expect(check({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: null, extra: { any: 1 } })).toBe(true);
    expect(check({ model: 'm', messages: [{ role: 'user', content: 'hi' }], tools: [] })).toBe(false);
  });

  it('needs the required fields as its own, and checks every value', () => {
    expect(check(JSON.parse('{"messages":[{"role":"user","content":"hi"}]}'))).toBe(false);
    expect(check(Object.assign(Object.create({ model: 'm' }), { messages: [{ role: 'user', content: 'hi' }] }))).toBe(false);
    expect(check({ model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2 ** 53 })).toBe(false);
    expect(check({ model: 'm', messages: [{ role: 'user' }] })).toBe(false);
  });

  it('finds no check on Object.prototype and leaves a "__proto__" field to zod', () => {
    expect(check({ model: 'm', messages: [{ role: 'user', content: 'hi', constructor: 'x' }] })).toBe(false);
    expect(check({ model: 'm', messages: [{ role: 'user', content: 'hi', toString: 'x' }] })).toBe(false);
    expect(check(JSON.parse('{"model":"m","messages":[{"role":"user","content":"hi"}],"__proto__":{}}'))).toBe(false);
  });

  it('counts safe integers only and bounds numbers inclusively', () => {
    expect([1, 5, 2 ** 53 - 1].map(count(1))).toEqual([true, true, true]);
    expect([0, 1.5, 2 ** 53, '1'].map(count(1))).toEqual([false, false, false, false]);
    expect([0, 2, 1.5, -0.1, 2.1].map(within(0, 2))).toEqual([true, true, true, false, false]);
  });
});
