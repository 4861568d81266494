import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { UpstreamProtocolError } from '../../sidecar/providers/errors.js';
import { MAX_SSE_LINE, SseParser, type SseEvent } from '../../sidecar/sse.js';
import { badUtf8, cutAt, cuts, fuzzParams } from '../support/fuzz.js';

/**
 * Properties of the SSE parser (sidecar/sse.ts) on random streams: the events do not depend on
 * where the bytes are cut; garbage, invalid UTF-8 and truncation never throw anything but the
 * documented UpstreamProtocolError; a line over MAX_SSE_LINE is refused without holding more.
 */

const enc = new TextEncoder();

/** A field value: any text without line breaks (multi-byte characters included). */
const value = fc.string({ unit: fc.oneof(fc.constantFrom('a', ' ', ':', 'é', '€', '😀', '{', '"'), fc.string({ maxLength: 1 })), maxLength: 24 }).map((s) => s.replace(/[\r\n]/g, ''));
const eol = fc.constantFrom('\n', '\r\n', '\r');

interface Generated {
  event?: string;
  id?: string;
  data: string[];
  comments: string[];
}

const generated: fc.Arbitrary<Generated> = fc.record(
  {
    event: value.filter((v) => v !== ''),
    id: value,
    data: fc.array(value, { minLength: 1, maxLength: 4 }),
    comments: fc.array(value, { maxLength: 2 }),
  },
  { requiredKeys: ['data', 'comments'] },
);

/** The stream text of events, with the given line endings, and the events a conforming parser yields. */
function serialise(events: Generated[], endings: string[]): { text: string; expected: SseEvent[] } {
  let text = '';
  let n = 0;
  const end = () => endings[n++ % endings.length]!;
  const expected: SseEvent[] = [];
  let lastId: string | undefined;
  for (const e of events) {
    for (const c of e.comments) text += `:${c}${end()}`;
    if (e.event !== undefined) text += `event: ${e.event}${end()}`;
    if (e.id !== undefined) {
      text += `id: ${e.id}${end()}`;
      lastId = e.id;
    }
    for (const d of e.data) text += `data: ${d}${end()}`;
    // The blank line: after a line ended by CR, a lone LF would make that CRLF (one line end).
    const blank = end();
    text += text.endsWith('\r') && blank === '\n' ? '\r' : blank;
    const data = e.data.join('\n');
    // An event whose data is the empty string is not dispatched (WHATWG); its id still counts.
    if (data === '') continue;
    const ev: SseEvent = { data };
    if (e.event !== undefined) ev.event = e.event;
    if (lastId !== undefined) ev.id = lastId;
    expected.push(ev);
  }
  return { text, expected };
}

function parse(pieces: Uint8Array[]): SseEvent[] {
  const p = new SseParser();
  const out: SseEvent[] = [];
  for (const piece of pieces) out.push(...p.push(piece));
  out.push(...p.end());
  return out;
}

describe('SseParser properties', () => {
  it('yields the same events wherever the bytes are cut (inside CRLF and inside UTF-8 characters too, empty pieces included)', () => {
    fc.assert(
      fc.property(fc.array(generated, { maxLength: 8 }), fc.array(eol, { minLength: 1, maxLength: 3 }), cuts(2000), (events, endings, offsets) => {
        const { text, expected } = serialise(events, endings);
        expect(parse(cutAt(enc.encode(text), offsets))).toEqual(expected);
      }),
      fuzzParams(2),
    );
  });

  it('an empty piece between the CR and the LF of a CRLF does not split the event (found by the property above, FUZZ_RUNS=3000)', () => {
    expect(parse([enc.encode('data: a\r'), new Uint8Array(0), enc.encode('\ndata: b\n\n')])).toEqual([{ data: 'a\nb' }]);
    expect(parse([enc.encode('data: a\r'), Uint8Array.of(0xe2), Uint8Array.of(0x82, 0xac), enc.encode('\n\n')])).toEqual([{ data: 'a' }]);
  });

  it('a stream cut short yields a prefix of the whole stream’s events', () => {
    fc.assert(
      fc.property(fc.array(generated, { maxLength: 6 }), eol, fc.nat(), cuts(1000), (events, ending, at, offsets) => {
        const { text, expected } = serialise(events, [ending]);
        const bytes = enc.encode(text);
        const got = parse(cutAt(bytes.subarray(0, at % (bytes.length + 1)), offsets));
        expect(expected.slice(0, got.length)).toEqual(got);
      }),
      fuzzParams(),
    );
  });

  it('garbage, invalid UTF-8 and interleaved junk never throw; every event has string data', () => {
    const junk = fc.oneof(
      fc.uint8Array({ maxLength: 64 }),
      badUtf8,
      fc.constantFrom('data:', 'data: x\n', '\n\n', '\r', ':\r\n', 'event:\r\n', 'id\n', 'retry: 5\n', '\ufeffdata: bom\n\n').map((s) => enc.encode(s)),
    );
    fc.assert(
      fc.property(fc.array(junk, { maxLength: 30 }), cuts(1500), (parts, offsets) => {
        const bytes = Buffer.concat(parts);
        const events = parse(cutAt(bytes, offsets));
        for (const e of events) {
          expect(typeof e.data).toBe('string');
          expect(e.data).not.toBe('');
        }
      }),
      fuzzParams(2),
    );
  });

  it(`a line longer than MAX_SSE_LINE (${MAX_SSE_LINE} characters) is refused with UpstreamProtocolError, fed in small pieces, in linear time`, () => {
    const p = new SseParser();
    const piece = enc.encode('x'.repeat(64 * 1024));
    p.push(enc.encode('data: '));
    const started = performance.now();
    let thrown: unknown;
    let fed = 0;
    try {
      for (; fed < (MAX_SSE_LINE / piece.length) * 2; fed++) p.push(piece);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UpstreamProtocolError);
    expect((thrown as Error).message).toBe(`upstream sent an SSE line or event over ${MAX_SSE_LINE} characters`);
    // 'data: ' and 127 pieces of 64 Ki are over 8 Mi: the 128th piece is refused.
    expect(fed).toBe(MAX_SSE_LINE / piece.length - 1);
    expect(performance.now() - started).toBeLessThan(3000);
  });

  it('an event of many data lines is bounded the same way', () => {
    const p = new SseParser();
    const line = enc.encode(`data: ${'y'.repeat(1023)}\n`);
    let thrown: unknown;
    try {
      for (let i = 0; i < (MAX_SSE_LINE / 1024) * 2; i++) p.push(line);
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(UpstreamProtocolError);
  });

  it('a long line under the limit, fed a few bytes at a time, costs linear time (no rescan of the buffer)', () => {
    const p = new SseParser();
    const line = `data: ${'z'.repeat(2 * 1024 * 1024)}\n\n`;
    const bytes = enc.encode(line);
    const started = performance.now();
    const events: SseEvent[] = [];
    for (let i = 0; i < bytes.length; i += 256) events.push(...p.push(bytes.subarray(i, i + 256)));
    expect(events).toEqual([{ data: 'z'.repeat(2 * 1024 * 1024) }]);
    expect(performance.now() - started).toBeLessThan(3000);
  });
});
