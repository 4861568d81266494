import { countTokens } from 'gpt-tokenizer/encoding/o200k_base';
import type { RecordedRequest, Reply, Responder } from './fake-upstream.js';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';

/**
 * A fake OpenAI Chat Completions provider that enforces its own rate limits, as OpenAI does:
 * per model (one organization), a requests-per-minute and a tokens-per-minute limit, each a
 * token bucket of capacity = the limit with continuous refill (limit per 60 s), full when the
 * limits are set (`limit`); a model without limits is served unlimited. A request needs 1
 * request, and its prompt tokens plus its `max_completion_tokens` ?? `max_tokens` (nothing when
 * neither is set) from the tokens limit; the tokens are reserved, not given back when the answer
 * is shorter. A request that does not fit is answered 429 in OpenAI's wire format (`type`
 * `requests` or `tokens`, code `rate_limit_exceeded`, the `x-ratelimit-*` headers and
 * `retry-after`) and takes nothing. Every answer, 200 or 429, carries the `x-ratelimit-*`
 * headers of the model's limits.
 *
 * `enforce: false` observes instead: every request is served, and one that would not have fit
 * is counted as `over` (and takes nothing, as a refused one would not): the bound a limit
 * promises, checked on what reached the provider.
 *
 * Prompt tokens are counted as OpenAI counts chat prompts (o200k_base, 3 tokens per message and
 * 3 to prime the reply) and reported so in `usage`; the answer has exactly `max_tokens` output
 * tokens (finish_reason `length`), or 16 without one. Non-streaming chat completions only.
 */
export interface ProviderLimits {
  requestsPerMinute?: number;
  tokensPerMinute?: number;
}

export interface ModelStats {
  /** Answered 200. */
  served: number;
  /** Answered 429 (enforcing). */
  refused: number;
  /** Served although it would not have fit (observing). */
  over: number;
  /** Tokens counted for the served requests (prompt + max_tokens). */
  tokens: number;
  /** Arrival time (Date.now()) of every served request. */
  servedAt: number[];
  /** Arrival time of every refused request. */
  refusedAt: number[];
  /** Refusals by type (`requests`, `tokens`). */
  refusedBy: Record<string, number>;
}

export interface RateLimitedProvider extends FakeUpstream {
  /** Sets a model's limits (its buckets start full now). */
  limit(model: string, limits: ProviderLimits, opts?: { enforce?: boolean }): void;
  stats(model: string): ModelStats;
  /** The last 429 body and headers sent (for wire-format checks). */
  lastRefusal: { body: unknown; headers: Record<string, string> } | undefined;
}

interface ChatBody {
  model: string;
  messages: Array<{ role: string; content: unknown; name?: string }>;
  max_tokens?: number;
  max_completion_tokens?: number;
  stream?: boolean;
}

const WINDOW_MS = 60_000;

/** A duration as OpenAI writes it in x-ratelimit-reset-* and "try again in": Go's format, to the ms ("6ms", "1s", "1.5s", "1m0s"). */
export function goDuration(ms: number): string {
  const t = Math.max(0, Math.ceil(ms));
  if (t === 0) return '0s';
  if (t < 1000) return `${t}ms`;
  const m = Math.floor(t / 60_000);
  const rest = (t % 60_000) / 1000;
  const s = `${Number.isInteger(rest) ? rest : rest.toFixed(3).replace(/0+$/, '')}s`;
  return m > 0 ? `${m}m${s}` : s;
}

/** Prompt tokens of a chat request as OpenAI counts them (o200k_base; text content only). */
export function openaiPromptTokens(body: Pick<ChatBody, 'messages'>): number {
  let n = 3;
  for (const m of body.messages) {
    const text = typeof m.content === 'string' ? m.content : Array.isArray(m.content) ? m.content.map((p: { text?: string }) => p.text ?? '').join('') : '';
    n += 3 + countTokens(text);
    if (typeof m.name === 'string') n += countTokens(m.name) + 1;
  }
  return n;
}

/** What a request needs of the tokens-per-minute limit: its prompt and its output cap. */
export function openaiRequestTokens(body: ChatBody): number {
  return openaiPromptTokens(body) + (body.max_completion_tokens ?? body.max_tokens ?? 0);
}

class Bucket {
  private level: number;
  private at: number;

  constructor(
    readonly limit: number,
    now: number,
  ) {
    this.level = limit;
    this.at = now;
  }

  available(now: number): number {
    if (now > this.at) {
      this.level = Math.min(this.limit, this.level + ((now - this.at) * this.limit) / WINDOW_MS);
      this.at = now;
    }
    return this.level;
  }

  /** Milliseconds until `n` fits (0: now). */
  waitMs(n: number, now: number): number {
    const level = this.available(now);
    return level >= n ? 0 : Math.ceil(((n - level) * WINDOW_MS) / this.limit);
  }

  take(n: number, now: number): void {
    this.available(now);
    this.level -= n;
  }

  resetMs(now: number): number {
    return Math.ceil(((this.limit - this.available(now)) * WINDOW_MS) / this.limit);
  }
}

interface ModelState {
  requests?: Bucket;
  tokens?: Bucket;
  enforce: boolean;
  stats: ModelStats;
}

export async function startRateLimitedProvider(o: { now?: () => number; delayMs?: number } = {}): Promise<RateLimitedProvider> {
  const now = o.now ?? Date.now;
  const models = new Map<string, ModelState>();
  let n = 0;
  const emptyStats = (): ModelStats => ({ served: 0, refused: 0, over: 0, tokens: 0, servedAt: [], refusedAt: [], refusedBy: {} });
  const state = (model: string): ModelState => {
    let s = models.get(model);
    if (!s) models.set(model, (s = { enforce: true, stats: emptyStats() }));
    return s;
  };

  const headersOf = (s: ModelState, t: number): Record<string, string> => {
    const h: Record<string, string> = {};
    for (const [name, b] of [['requests', s.requests], ['tokens', s.tokens]] as const) {
      if (!b) continue;
      h[`x-ratelimit-limit-${name}`] = String(b.limit);
      h[`x-ratelimit-remaining-${name}`] = String(Math.max(0, Math.floor(b.available(t))));
      h[`x-ratelimit-reset-${name}`] = goDuration(b.resetMs(t));
    }
    return h;
  };

  const responder: Responder = (req: RecordedRequest): Reply => {
    const body = req.body as ChatBody | undefined;
    if (!req.url.endsWith('/chat/completions') || !body || !Array.isArray(body.messages) || body.stream) {
      return { kind: 'json', status: 400, body: { error: { message: 'this fake serves non-streaming chat completions only', type: 'invalid_request_error', param: null, code: null } } };
    }
    const t = now();
    const s = state(body.model);
    const prompt = openaiPromptTokens(body);
    const cap = body.max_completion_tokens ?? body.max_tokens;
    const tokens = prompt + (cap ?? 0);
    // The limit that keeps the request waiting longest, if any.
    let short: { type: 'requests' | 'tokens'; bucket: Bucket; requested: number; waitMs: number } | undefined;
    for (const [type, bucket, requested] of [['requests', s.requests, 1], ['tokens', s.tokens, tokens]] as const) {
      if (!bucket) continue;
      const waitMs = bucket.waitMs(requested, t);
      if (waitMs > 0 && (!short || waitMs > short.waitMs)) short = { type, bucket, requested, waitMs };
    }
    if (short && s.enforce) {
      s.stats.refused++;
      s.stats.refusedAt.push(t);
      s.stats.refusedBy[short.type] = (s.stats.refusedBy[short.type] ?? 0) + 1;
      const limit = short.bucket.limit;
      const used = Math.min(limit, Math.ceil(limit - short.bucket.available(t)));
      const unit = short.type === 'requests' ? 'requests per min (RPM)' : 'tokens per min (TPM)';
      const errBody = {
        error: {
          message: `Rate limit reached for ${body.model} in organization org-fake on ${unit}: Limit ${limit}, Used ${used}, Requested ${short.requested}. Please try again in ${goDuration(short.waitMs)}. Visit https://platform.openai.com/account/rate-limits to learn more.`,
          type: short.type,
          param: null,
          code: 'rate_limit_exceeded',
        },
      };
      const headers = { ...headersOf(s, t), 'retry-after': String(Math.max(1, Math.ceil(short.waitMs / 1000))) };
      provider.lastRefusal = { body: errBody, headers };
      return { kind: 'json', status: 429, body: errBody, headers };
    }
    if (short) s.stats.over++;
    else {
      s.requests?.take(1, t);
      s.tokens?.take(tokens, t);
    }
    s.stats.served++;
    s.stats.tokens += tokens;
    s.stats.servedAt.push(t);
    const out = cap ?? 16;
    return {
      kind: 'json',
      delayMs: o.delayMs,
      headers: headersOf(s, t),
      body: {
        id: `chatcmpl-rl${++n}`,
        object: 'chat.completion',
        created: Math.floor(t / 1000),
        model: `${body.model}-2024-07-18`,
        system_fingerprint: 'fp_fake',
        choices: [{ index: 0, message: { role: 'assistant', content: Array.from({ length: out }, () => ' ok').join('').trimStart(), refusal: null }, logprobs: null, finish_reason: cap !== undefined ? 'length' : 'stop' }],
        usage: {
          prompt_tokens: prompt,
          completion_tokens: out,
          total_tokens: prompt + out,
          prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
          completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
        },
      },
    };
  };

  const upstream = await startFakeUpstream(responder);
  const provider: RateLimitedProvider = Object.assign(upstream, {
    lastRefusal: undefined as RateLimitedProvider['lastRefusal'],
    limit(model: string, limits: ProviderLimits, opts: { enforce?: boolean } = {}) {
      const t = now();
      const s = state(model);
      s.requests = limits.requestsPerMinute !== undefined ? new Bucket(limits.requestsPerMinute, t) : undefined;
      s.tokens = limits.tokensPerMinute !== undefined ? new Bucket(limits.tokensPerMinute, t) : undefined;
      s.enforce = opts.enforce ?? true;
      s.stats = emptyStats();
    },
    stats(model: string) {
      return state(model).stats;
    },
  });
  return provider;
}
