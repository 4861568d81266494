import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { ProviderName } from '../../../crds/src/index.js';
import type { ChatCompletionChunk } from '../../../sidecar/openai-schema.js';
import { EventStreamDecoder } from '../../../sidecar/providers/bedrock.js';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../sidecar/providers/errors.js';
import { ADAPTERS } from '../../../sidecar/providers/index.js';
import type { TargetContext } from '../../../sidecar/providers/types.js';
import { SseParser, type SseEvent } from '../../../sidecar/sse.js';
import { encodeEvents, fixtureEvents, type StreamEvent } from '../../support/fake-bedrock.js';
import { badUtf8, cutAt, cuts, deepJson, fuzzParams } from '../../support/fuzz.js';

/**
 * Properties of every stream translator and of Bedrock's event-stream decoder on mutated
 * recordings of real streams (test/sidecar/providers/fixtures): fields replaced by random JSON,
 * events dropped, repeated and reordered, garbage and deeply nested JSON interleaved. A translator
 * either answers in OpenAI's protocol (chat.completion.chunk objects a client can read, that
 * serialise) or throws one of the documented errors (UpstreamStreamError, UpstreamProtocolError);
 * the decoder's output does not depend on chunk boundaries, and it throws nothing else either.
 */

const FIXTURES = join(import.meta.dirname, 'fixtures');

function sseEvents(dir: string): SseEvent[] {
  const files = readdirSync(join(FIXTURES, dir)).filter((f) => f.endsWith('.sse'));
  return files.flatMap((f) => {
    const p = new SseParser();
    return [...p.push(readFileSync(join(FIXTURES, dir, f))), ...p.push('\n\n'), ...p.end()];
  });
}

const bedrockEvents = (): SseEvent[] =>
  readdirSync(join(FIXTURES, 'bedrock'))
    .filter((f) => f.startsWith('stream-') && f.endsWith('.events.json'))
    .flatMap((f) => fixtureEvents(f).map((e) => { const [name, payload] = Object.entries(e)[0]!; return { event: name, data: JSON.stringify(payload) }; }));

/** Each translator with the recorded events it is fuzzed from and the event names its provider uses. */
const STREAMS: Array<{ provider: ProviderName; seeds: SseEvent[]; names: Array<string | undefined> }> = [
  { provider: 'openai', seeds: [...sseEvents('openai'), ...sseEvents('groq'), ...sseEvents('perplexity'), ...sseEvents('openrouter')], names: [undefined] },
  { provider: 'groq', seeds: sseEvents('groq'), names: [undefined] },
  { provider: 'perplexity', seeds: sseEvents('perplexity'), names: [undefined] },
  { provider: 'xai', seeds: sseEvents('xai'), names: [undefined] },
  { provider: 'together', seeds: sseEvents('together'), names: [undefined] },
  { provider: 'azure', seeds: sseEvents('azure'), names: [undefined] },
  { provider: 'anthropic', seeds: sseEvents('anthropic'), names: ['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop', 'ping', 'error', undefined] },
  { provider: 'vertex-anthropic', seeds: sseEvents('vertex-anthropic'), names: ['message_start', 'content_block_delta', 'message_delta', 'message_stop', 'error'] },
  { provider: 'gemini', seeds: sseEvents('gemini'), names: [undefined] },
  { provider: 'vertex', seeds: sseEvents('vertex'), names: [undefined] },
  { provider: 'cohere', seeds: sseEvents('cohere'), names: ['message-start', 'content-start', 'content-delta', 'content-end', 'tool-plan-delta', 'tool-call-start', 'tool-call-delta', 'tool-call-end', 'message-end', undefined] },
  { provider: 'bedrock', seeds: bedrockEvents(), names: ['messageStart', 'contentBlockStart', 'contentBlockDelta', 'contentBlockStop', 'messageStop', 'metadata', 'throttlingException', 'validationException'] },
];

const ctx = (): TargetContext => ({ model: 'fuzz-model', baseURL: 'https://upstream.test', apiKey: 'sk-fuzz-0123456789', created: 1_750_000_000, responseId: 'chatcmpl-fuzz', settings: { region: 'us-east-1', project: 'p' } });

/** Every path to a value inside a JSON value. */
function paths(v: unknown, at: Array<string | number> = []): Array<Array<string | number>> {
  const out: Array<Array<string | number>> = [at];
  if (Array.isArray(v)) v.forEach((x, i) => out.push(...paths(x, [...at, i])));
  else if (v !== null && typeof v === 'object') for (const [k, x] of Object.entries(v)) out.push(...paths(x, [...at, k]));
  return out;
}

function replaced(v: unknown, path: Array<string | number>, by: unknown): unknown {
  if (path.length === 0) return by;
  const [head, ...rest] = path;
  const copy = (Array.isArray(v) ? [...v] : { ...(v as object) }) as Record<string | number, unknown>;
  copy[head!] = replaced(copy[head!], rest, by);
  return copy;
}

const DEEP = [deepJson(6000, 'array'), deepJson(6000, 'object')];

/** A recorded event, or one with a field replaced by random JSON, or a random one, or garbage. */
function eventArb(seeds: SseEvent[], names: Array<string | undefined>): fc.Arbitrary<SseEvent> {
  const seed = fc.nat({ max: seeds.length - 1 }).map((i) => seeds[i]!);
  const mutated = fc.tuple(seed, fc.nat(), fc.oneof(fc.jsonValue({ maxDepth: 3 }), fc.constantFrom(null, '', -1, 1e308, 'x'.repeat(5000), [], {}))).map(([ev, at, by]) => {
    let parsed: unknown;
    try {
      parsed = JSON.parse(ev.data);
    } catch {
      return ev;
    }
    const all = paths(parsed);
    return { ...ev, data: JSON.stringify(replaced(parsed, all[at % all.length]!, by)) };
  });
  const name = fc.constantFrom(...names);
  const random = fc.tuple(name, fc.oneof(fc.jsonValue({ maxDepth: 4 }).map((j) => JSON.stringify(j)), fc.string(), fc.constantFrom('[DONE]', '{', 'null', '""', ...DEEP))).map(([event, data]) => (event === undefined ? { data } : { event, data }));
  const deepInside = fc.tuple(seed, fc.constantFrom(...DEEP)).map(([ev, deep]) => ({ ...ev, data: ev.data.replace(/"(text|arguments|partial_json|input|args|content)":\s*("[^"]*"|\{\}|\[\])/, `"$1":${deep}`) }));
  return fc.oneof({ weight: 4, arbitrary: seed }, { weight: 4, arbitrary: mutated }, { weight: 2, arbitrary: random }, { weight: 1, arbitrary: deepInside });
}

/** What a client reads in a chunk: paygo's own writer (chat.ts) and OpenAI SDKs rely on these. */
function expectReadable(chunk: ChatCompletionChunk): void {
  const text = JSON.stringify(chunk);
  const what = text.slice(0, 300);
  expect(Array.isArray(chunk.choices), what).toBe(true);
  for (const choice of chunk.choices) {
    expect(choice !== null && typeof choice === 'object' && !Array.isArray(choice), what).toBe(true);
    const d = choice.delta;
    expect(d !== null && typeof d === 'object' && !Array.isArray(d), what).toBe(true);
    expect(d.content === undefined || d.content === null || typeof d.content === 'string', what).toBe(true);
    if (d.tool_calls != null) {
      expect(Array.isArray(d.tool_calls), what).toBe(true);
      for (const call of d.tool_calls) {
        expect(call !== null && typeof call === 'object' && !Array.isArray(call), what).toBe(true);
        const fn = call.function;
        expect(fn === undefined || (fn !== null && typeof fn === 'object' && (fn.name === undefined || typeof fn.name === 'string') && (fn.arguments === undefined || typeof fn.arguments === 'string')), what).toBe(true);
      }
    }
  }
}

function expectDocumented(err: unknown): void {
  if (err instanceof UpstreamStreamError || err instanceof UpstreamProtocolError) return;
  throw new Error(`undocumented error: ${err instanceof Error ? `${err.name}: ${err.message}\n${err.stack}` : String(err)}`);
}

describe.each(STREAMS)('$provider stream translator', ({ provider, seeds, names }) => {
  it('has recorded events to start from', () => {
    expect(seeds.length).toBeGreaterThan(2);
  });

  it('answers in OpenAI chunks or throws only UpstreamStreamError/UpstreamProtocolError, whatever the events', () => {
    fc.assert(
      fc.property(fc.array(eventArb(seeds, names), { maxLength: 25 }), (events) => {
        const t = ADAPTERS[provider].chatStream(ctx());
        const out: ChatCompletionChunk[][] = [];
        try {
          for (const ev of events) {
            out.push(t.push(ev));
            expect(typeof t.finished).toBe('boolean');
          }
        } catch (err) {
          expectDocumented(err);
        }
        for (const chunks of out) {
          expect(Array.isArray(chunks)).toBe(true);
          chunks.forEach(expectReadable);
        }
        const u = t.usage;
        if (u !== undefined) for (const n of Object.values(u)) expect(Number.isFinite(n)).toBe(true);
        expect(t.responseModel === undefined || typeof t.responseModel === 'string').toBe(true);
      }),
      fuzzParams(),
    );
  });
});

describe('bedrock EventStreamDecoder', () => {
  const events = fc.array(
    fc.tuple(fc.constantFrom('messageStart', 'contentBlockDelta', 'metadata', 'throttlingException'), fc.jsonValue({ maxDepth: 2 })).map(([name, payload]): StreamEvent => ({ [name]: payload })),
    { maxLength: 8 },
  );

  const decode = (pieces: Uint8Array[]): SseEvent[] => {
    const d = new EventStreamDecoder();
    const out: SseEvent[] = [];
    for (const p of pieces) out.push(...d.push(p));
    out.push(...d.end());
    return out;
  };

  it('decodes the same events wherever the bytes are cut', () => {
    fc.assert(
      fc.property(events, cuts(3000), (evs, offsets) => {
        const bytes = encodeEvents(evs);
        expect(decode(cutAt(bytes, offsets))).toEqual(decode([bytes]));
        expect(decode([bytes]).map((e) => e.event)).toEqual(evs.map((e) => Object.keys(e)[0]));
      }),
      fuzzParams(),
    );
  });

  it('truncated, bit-flipped or garbage streams throw only UpstreamProtocolError', () => {
    const damage = fc.oneof(
      fc.tuple(events, fc.nat()).map(([evs, at]) => {
        const b = encodeEvents(evs);
        return b.subarray(0, at % (b.length + 1));
      }),
      fc.tuple(events, fc.nat(), fc.integer({ min: 1, max: 255 })).map(([evs, at, mask]) => {
        const b = Buffer.from(encodeEvents([...evs, { messageStop: {} }]));
        b[at % b.length]! ^= mask;
        return b;
      }),
      fc.tuple(fc.uint8Array({ maxLength: 200 }), badUtf8).map(([a, b]) => Buffer.concat([a, b])),
    );
    fc.assert(
      fc.property(damage, cuts(3000), (bytes, offsets) => {
        try {
          const out = decode(cutAt(bytes, offsets));
          for (const e of out) expect(typeof e.data).toBe('string');
        } catch (err) {
          if (!(err instanceof UpstreamProtocolError)) throw err;
        }
      }),
      fuzzParams(),
    );
  });

  it('a message announced large and sent a few KiB at a time costs linear time', () => {
    const big = encodeEvents([{ contentBlockDelta: { delta: { text: 'x'.repeat(8 * 1024 * 1024) }, contentBlockIndex: 0 } }]);
    const d = new EventStreamDecoder();
    const started = performance.now();
    const out: SseEvent[] = [];
    for (let i = 0; i < big.length; i += 4096) out.push(...d.push(big.subarray(i, i + 4096)));
    expect(out).toHaveLength(1);
    // Joined once, not per piece (was 2.3 s for these 8 MiB: every piece re-copied the buffer).
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
