import type { ApiError } from '../errors.js';
import { isPlainObject } from '../json-values.js';
import type { ChatRequest } from '../openai-schema.js';

/**
 * What the route's limits, budget admission and token estimates see of a request that passes
 * through untranslated: its text (`texts`: the fields that hold it, walked for text, content,
 * output and arguments), as one user message, with its output cap and stream flag. What a
 * provider's own tools add is metered from its usage afterwards, not estimated here.
 */
export function countableChatRequest(body: Readonly<Record<string, unknown>>, texts: unknown[], maxOutput: unknown, reason: ApiError): ChatRequest {
  const found: string[] = [];
  for (const t of texts) collectText(t, found);
  return {
    model: typeof body.model === 'string' ? body.model : '',
    // Never an empty prompt: the refusal's reason stands in for a body with no text at all.
    messages: [{ role: 'user', content: found.join('\n') || reason.message }],
    ...(body.stream === true && { stream: true }),
    ...(typeof maxOutput === 'number' && Number.isInteger(maxOutput) && maxOutput > 0 && { max_completion_tokens: maxOutput }),
  };
}

function collectText(v: unknown, out: string[]): void {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) for (const item of v) collectText(item, out);
  else if (isPlainObject(v)) {
    for (const key of ['text', 'content', 'output', 'arguments'] as const) collectText(v[key], out);
  }
}
