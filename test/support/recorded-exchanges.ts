import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ChatCompletionChunk } from '../../sidecar/openai-schema.js';
import { ChatRequestSchema, type ChatRequest } from '../../sidecar/openai-schema.js';
import type { ProviderAdapter, TargetContext } from '../../sidecar/providers/types.js';
import { SseParser } from '../../sidecar/sse.js';

/**
 * Shared harness for adapter tests against recorded provider exchanges: fixture loading, the
 * request/response exchange table, and feeding raw SSE bytes in pieces to a translator.
 */
export interface Exchange {
  openai: Record<string, unknown>;
  native: { url: string; body: unknown };
  response: unknown;
  completion: unknown;
  usage: unknown;
}

export function fixtures(dir: string) {
  return {
    json: <T = Record<string, unknown>>(name: string): T => JSON.parse(readFileSync(join(dir, name), 'utf8')) as T,
    raw: (name: string) => readFileSync(join(dir, name)),
  };
}

/** An OpenAI request as the sidecar would hand it to the adapter (validated, with a route model name). */
export const chatRequest = (model: string) => (body: Record<string, unknown>): ChatRequest => ChatRequestSchema.parse({ model, ...body });

/** For each fixture: the OpenAI request translates to exactly the native request, the native response back exactly. */
export function describeRecordedExchanges(o: {
  name: string;
  adapter: ProviderAdapter;
  dir: string;
  cases: Array<[file: string, model: string]>;
  ctx: (model: string) => TargetContext;
  headers: Record<string, string>;
  routeModel: string;
}): void {
  const load = fixtures(o.dir).json;
  const chat = chatRequest(o.routeModel);
  describe(`${o.name} adapter: recorded exchanges`, () => {
    it.each(o.cases)('%s: request translates exactly', (file, model) => {
      const ex = load<Exchange>(file);
      const up = o.adapter.chatRequest(chat(ex.openai), o.ctx(model), false);
      expect(up.url).toBe(ex.native.url);
      expect(up.headers).toEqual(o.headers);
      expect(JSON.parse(up.body)).toEqual(ex.native.body);
    });

    it.each(o.cases)('%s: response translates exactly', (file, model) => {
      const ex = load<Exchange>(file);
      const { completion, usage } = o.adapter.chatResponse(ex.response, o.ctx(model));
      expect(completion).toEqual(ex.completion);
      expect(usage ?? null).toEqual(ex.usage);
    });
  });
}

/** Feeds raw SSE bytes to SseParser in pieces of `size` bytes and the events to a fresh translator. */
export function translateStream(adapter: ProviderAdapter, bytes: Uint8Array, size: number, c: TargetContext) {
  const parser = new SseParser();
  const t = adapter.chatStream(c);
  const chunks: ChatCompletionChunk[] = [];
  const finishedAt: boolean[] = [];
  for (let i = 0; i < bytes.length; i += size) {
    for (const ev of parser.push(bytes.subarray(i, i + size))) {
      chunks.push(...t.push(ev));
      finishedAt.push(t.finished);
    }
  }
  parser.end();
  return { chunks, translator: t, finishedAt };
}
