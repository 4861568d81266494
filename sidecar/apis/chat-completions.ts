import type { ChatCompletion, ChatCompletionChunk, ChatRequest } from '../openai-schema.js';
import { sseData } from '../sse.js';
import { usageToOpenAI, type Usage } from '../usage.js';
import { costField, openAIErrorAnswer, type CallerCost, type FrontDoor, type StreamEncoder, type StreamFailure } from './types.js';

/**
 * Chat Completions' own stream: the chunks as they are, then (stream_options.include_usage) one
 * usage chunk with no choices, its usage carrying the cost, then `data: [DONE]`.
 */
export class ChatStreamEncoder implements StreamEncoder {
  private meta: Pick<ChatCompletionChunk, 'id' | 'created' | 'model'> | undefined;

  constructor(private readonly includeUsage: boolean) {}

  push(chunks: ChatCompletionChunk[]): string {
    let out = '';
    for (const chunk of chunks) {
      this.meta ??= { id: chunk.id, created: chunk.created, model: chunk.model };
      out += sseData(JSON.stringify(chunk));
    }
    return out;
  }

  finish(usage: Usage, cost: CallerCost): string {
    let out = '';
    if (this.includeUsage && this.meta) {
      const { id, created, model } = this.meta;
      const chunk: ChatCompletionChunk = { id, object: 'chat.completion.chunk', created, model, choices: [], usage: { ...usageToOpenAI(usage), ...costField(cost) } };
      out += sseData(JSON.stringify(chunk));
    }
    return out + sseData('[DONE]');
  }

  fail(f: StreamFailure): string {
    return sseData(JSON.stringify({ error: { message: f.message, type: f.type, param: null, code: f.code } }));
  }
}

/** Chat Completions, the internal representation itself: its answers leave as they are. */
export function chatDoor(req: ChatRequest): FrontDoor {
  return {
    api: 'chat',
    encoder: () => new ChatStreamEncoder(req.stream_options?.include_usage === true),
    respond: (completion: ChatCompletion) => completion,
    error: openAIErrorAnswer,
  };
}
