import { contentText, type ChatRequest } from '../openai-schema.js';

/**
 * Token counting for estimates (usage the provider did not report) and for maxInputTokens.
 * gpt-tokenizer is loaded on first use, and only the encoding the model uses, by gpt-tokenizer's
 * own model map: cl100k_base for GPT-4 and GPT-3.5, o200k_base for newer and unlisted models
 * (for other vendors' models an estimate). Most requests never need one, and each costs 10–20 MB
 * of heap in every pod.
 */
type CountTokens = (text: string) => number;
const counters = new Map<string, Promise<CountTokens>>();
let encodingOf: Promise<(model: string) => string> | undefined;

export async function loadTokenizer(model: string): Promise<CountTokens> {
  encodingOf ??= import('gpt-tokenizer/mapping').then((m) => {
    const map = m.modelToEncodingMap as Record<string, string | undefined>;
    return (name: string) => map[name] ?? m.DEFAULT_ENCODING;
  });
  // One of gpt-tokenizer's encoding names (the map's values), never the caller's text.
  const encoding = (await encodingOf)(model);
  let counter = counters.get(encoding);
  if (!counter) {
    counter = (import(`gpt-tokenizer/encoding/${encoding}`) as Promise<{ countTokens(text: string): number }>).then((m) => (text: string) => (text ? m.countTokens(text) : 0));
    counters.set(encoding, counter);
  }
  return counter;
}

/** The encodings loaded so far (for tests: only the ones the models asked for). */
export function loadedEncodings(): string[] {
  return [...counters.keys()];
}

/**
 * Upper bound of the tokens one image part costs on any provider paygo speaks (OpenAI high
 * detail and Anthropic both stay below ~1,600 per image; Gemini uses 258).
 */
export const IMAGE_TOKEN_BOUND = 3000;

/** Per-message framing overhead of the chat format (OpenAI cookbook: 3 per message, 3 to prime the reply). */
const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

/** Prompt tokens of a chat request as `model` would count them (text, names, tool calls and tool schemas). */
export async function countPromptTokens(req: Pick<ChatRequest, 'messages' | 'tools'>, model: string): Promise<number> {
  const count = await loadTokenizer(model);
  let tokens = REPLY_PRIMING;
  for (const m of req.messages) {
    tokens += PER_MESSAGE + count(contentText(m.content as never));
    if (typeof m.name === 'string') tokens += count(m.name) + 1;
    const calls = (m as { tool_calls?: Array<{ function: { name: string; arguments: string } }> }).tool_calls;
    for (const c of calls ?? []) tokens += count(c.function.name) + count(c.function.arguments) + PER_MESSAGE;
  }
  if (req.tools?.length) tokens += count(JSON.stringify(req.tools));
  return tokens;
}

export async function countTextTokens(text: string, model: string): Promise<number> {
  return (await loadTokenizer(model))(text);
}

/**
 * An upper bound on prompt tokens without tokenizing: a BPE token covers at least one UTF-8
 * byte, so the request's message bytes plus framing bound the prompt. Used for worst-case
 * budget reservations on the hot path.
 */
export function promptTokenUpperBound(req: Pick<ChatRequest, 'messages' | 'tools'>): number {
  let bytes = 0;
  for (const m of req.messages) {
    bytes += Buffer.byteLength(contentText(m.content as never)) + PER_MESSAGE + 8;
    if (Array.isArray(m.content)) for (const part of m.content) if (part.type !== 'text') bytes += IMAGE_TOKEN_BOUND;
    const calls = (m as { tool_calls?: unknown[] }).tool_calls;
    if (calls) bytes += Buffer.byteLength(JSON.stringify(calls));
  }
  if (req.tools?.length) bytes += Buffer.byteLength(JSON.stringify(req.tools));
  return bytes + REPLY_PRIMING;
}
