import { Readable } from 'node:stream';
import type { CancelSignal } from '../cancel.js';
import type { SimulateOptions } from '../../crds/src/index.js';
import type { ChatRequest } from '../openai-schema.js';
import { contentText } from '../openai-schema.js';
import type { SendOptions, Transport, UpstreamResponse } from '../transport.js';
import { TransportError } from '../transport.js';
import { seededRandom } from '../random.js';
import type { UpstreamRequest } from './types.js';

/**
 * The `simulate` provider: a deterministic in-process fake that speaks the OpenAI wire format
 * (so the whole translate/stream/meter path runs exactly as for a real provider) with
 * configurable latency, time to first token, speed, errors and token counts. No network, no key.
 */
const WORDS = ['The', ' quick', ' brown', ' fox', ' jumps', ' over', ' the', ' lazy', ' dog', '.'];
const DEFAULT_OUTPUT_TOKENS = 16;

/** Simulated prompt size: one token per 4 characters of message text, at least 1 per message. */
export function simulatedPromptTokens(req: Pick<ChatRequest, 'messages'>): number {
  let tokens = 0;
  for (const m of req.messages) tokens += Math.max(1, Math.ceil(contentText(m.content as never).length / 4)) + 3;
  return tokens + 3;
}

/** Waits like a provider would; a cancelled wait fails the way undici fails a cancelled request. */
function sleep(ms: number, signal: CancelSignal): Promise<void> {
  const failure = () => (signal.reason instanceof TransportError ? signal.reason : new TransportError('aborted', 'request aborted'));
  if (signal.aborted) return Promise.reject(failure());
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      off();
      resolve();
    }, ms);
    const off = signal.onAbort(() => {
      clearTimeout(t);
      reject(failure());
    });
  });
}

export function createSimulateTransport(options: SimulateOptions = {}): Transport {
  const random = seededRandom(options.seed ?? 1);
  let counter = 0;
  return {
    async send(req: UpstreamRequest, opts: SendOptions): Promise<UpstreamResponse> {
      const body = JSON.parse(req.body) as ChatRequest & { input?: unknown };
      const n = ++counter;
      const failing = (options.errorRate ?? 0) > 0 && random() < (options.errorRate ?? 0);
      if (req.url.endsWith('/embeddings')) return embeddings(body);
      const stream = body.stream === true;
      const maxTokens = body.max_tokens ?? body.max_completion_tokens ?? Infinity;
      const outputTokens = Math.min(options.outputTokens ?? DEFAULT_OUTPUT_TOKENS, maxTokens);
      const promptTokens = simulatedPromptTokens(body);
      const id = `chatcmpl-sim${n}`;
      const created = Math.floor(Date.now() / 1000);
      const usage = { prompt_tokens: promptTokens, completion_tokens: outputTokens, total_tokens: promptTokens + outputTokens };
      const finish = outputTokens < (options.outputTokens ?? DEFAULT_OUTPUT_TOKENS) ? 'length' : 'stop';
      await sleep(stream ? (options.ttftMs ?? 0) : (options.latencyMs ?? 0), opts.signal);
      if (failing) {
        const status = options.errorStatus ?? 503;
        const json = JSON.stringify({ error: { message: `simulated failure (${status})`, type: 'server_error', code: null } });
        return { status, headers: { 'content-type': 'application/json' }, body: Readable.from([Buffer.from(json)]) };
      }
      const words = Array.from({ length: outputTokens }, (_, i) => WORDS[i % WORDS.length]!);
      if (!stream) {
        const json = {
          id,
          object: 'chat.completion',
          created,
          model: body.model,
          choices: [{ index: 0, message: { role: 'assistant', content: words.join(''), refusal: null }, logprobs: null, finish_reason: finish }],
          usage,
        };
        return { status: 200, headers: { 'content-type': 'application/json' }, body: Readable.from([Buffer.from(JSON.stringify(json))]) };
      }
      const includeUsage = body.stream_options?.include_usage === true;
      const frame = (choices: unknown[], extra: Record<string, unknown> = {}) =>
        Buffer.from(`data: ${JSON.stringify({ id, object: 'chat.completion.chunk', created, model: body.model, choices, ...extra })}\n\n`);
      const gapMs = options.tokensPerSecond ? 1000 / options.tokensPerSecond : 0;
      async function* frames(): AsyncGenerator<Buffer> {
        yield frame([{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
        for (const w of words) {
          if (gapMs) await sleep(gapMs, opts.signal);
          yield frame([{ index: 0, delta: { content: w }, logprobs: null, finish_reason: null }]);
        }
        yield frame([{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]);
        if (includeUsage) yield frame([], { usage });
        yield Buffer.from('data: [DONE]\n\n');
      }
      return { status: 200, headers: { 'content-type': 'text/event-stream' }, body: Readable.from(frames()) };
    },
    close: async () => {},
  };
}

function embeddings(body: { model: string; input?: unknown }): UpstreamResponse {
  const inputs = Array.isArray(body.input) && typeof body.input[0] !== 'number' ? (body.input as unknown[]) : [body.input];
  const data = inputs.map((input, index) => {
    const text = typeof input === 'string' ? input : JSON.stringify(input);
    let h = 2166136261;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 16777619);
    const r = seededRandom(h);
    return { object: 'embedding', index, embedding: Array.from({ length: 8 }, () => Number((r() * 2 - 1).toFixed(6))) };
  });
  const tokens = inputs.reduce<number>((s, i) => s + Math.max(1, Math.ceil(String(i).length / 4)), 0);
  const json = { object: 'list', data, model: body.model, usage: { prompt_tokens: tokens, total_tokens: tokens } };
  return { status: 200, headers: { 'content-type': 'application/json' }, body: Readable.from([Buffer.from(JSON.stringify(json))]) };
}
