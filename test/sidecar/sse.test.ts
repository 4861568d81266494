import { describe, expect, it } from 'vitest';
import { SseParser } from '../../sidecar/sse.js';

function feedBytewise(text: string) {
  const p = new SseParser();
  const bytes = new TextEncoder().encode(text);
  const out = [];
  for (const b of bytes) out.push(...p.push(new Uint8Array([b])));
  out.push(...p.end());
  return out;
}

describe('SseParser', () => {
  const stream = 'event: message_start\ndata: {"a":1}\n\n: comment\n\ndata: line1\ndata: line2\n\nid: 7\ndata: x\n\ndata: [DONE]\n\n';
  const expected = [
    { event: 'message_start', data: '{"a":1}' },
    { data: 'line1\nline2' },
    { data: 'x', id: '7' },
    { data: '[DONE]', id: '7' }, // the last event id persists (WHATWG)
  ];

  it('parses a whole stream', () => {
    const p = new SseParser();
    expect(p.push(stream)).toEqual(expected);
  });

  it('parses the same stream fed one byte at a time', () => {
    expect(feedBytewise(stream)).toEqual(expected);
  });

  it('handles CRLF and CR line endings, also split across chunks', () => {
    expect(feedBytewise(stream.replace(/\n/g, '\r\n'))).toEqual(expected);
    expect(feedBytewise(stream.replace(/\n/g, '\r'))).toEqual(expected);
  });

  it('keeps multi-byte UTF-8 characters split across chunks intact', () => {
    expect(feedBytewise('data: {"t":"héllo 👋 世界"}\n\n')).toEqual([{ data: '{"t":"héllo 👋 世界"}' }]);
  });

  it('treats "data:" without a space and an empty data field per the spec', () => {
    const p = new SseParser();
    expect(p.push('data:x\n\ndata\n\ndata\ndata\n\n')).toEqual([{ data: 'x' }, { data: '\n' }]);
  });

  it('drops an event cut off before its blank line', () => {
    const p = new SseParser();
    expect(p.push('data: {"partial":')).toEqual([]);
    expect(p.end()).toEqual([]);
  });
});
