import { contentText, type ChatRequest } from '../openai-schema.js';

/**
 * Token counting for estimates (usage the provider did not report) and for maxInputTokens.
 * gpt-tokenizer (o200k_base) is loaded on first use: most requests never need it, and its
 * tables cost memory in every pod.
 */
type CountTokens = (text: string) => number;
let counter: CountTokens | undefined;
let loading: Promise<CountTokens> | undefined;

export async function loadTokenizer(): Promise<CountTokens> {
  if (counter) return counter;
  loading ??= import('gpt-tokenizer').then((m) => {
    counter = (text: string) => (text ? m.countTokens(text) : 0);
    return counter;
  });
  return loading;
}

/**
 * Upper bound of the tokens one image part costs on any provider paygo speaks (OpenAI high
 * detail and Anthropic both stay below ~1,600 per image; Gemini uses 258).
 */
export const IMAGE_TOKEN_BOUND = 3000;

/** Per-message framing overhead of the chat format (OpenAI cookbook: 3 per message, 3 to prime the reply). */
const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

/** Prompt tokens of a chat request as the provider would count them (text, names, tool calls and tool schemas). */
export async function countPromptTokens(req: Pick<ChatRequest, 'messages' | 'tools'>): Promise<number> {
  const count = await loadTokenizer();
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

export async function countTextTokens(text: string): Promise<number> {
  return (await loadTokenizer())(text);
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
