import type { ChatCompletionChunk, FinishReason } from '../openai-schema.js';
import type { TargetContext } from './types.js';

export type Delta = ChatCompletionChunk['choices'][number]['delta'];

/**
 * The OpenAI side of a translating stream (Anthropic, Bedrock, Cohere): chunks stamped with the
 * response's id and model, the first one opening the assistant message (role, empty content),
 * and one finish chunk at most.
 */
export abstract class ChunkWriter {
  private started = false;
  protected finishSent = false;
  /** The provider's response id, once it named one (else the id paygo made up). */
  protected id: string | undefined;

  constructor(protected readonly ctx: TargetContext) {}

  /** The model on the chunks: the target's, unless a translator knows the provider's own. */
  protected chunkModel(): string {
    return this.ctx.model;
  }

  protected finish(reason: FinishReason): ChatCompletionChunk[] {
    this.finishSent = true;
    return this.emit({}, reason);
  }

  protected emit(delta: Delta, finish: FinishReason | null = null): ChatCompletionChunk[] {
    const chunks: ChatCompletionChunk[] = [];
    if (!this.started) {
      this.started = true;
      chunks.push(this.chunk({ role: 'assistant', content: '' }, null));
    }
    chunks.push(this.chunk(delta, finish));
    return chunks;
  }

  private chunk(delta: Delta, finish: FinishReason | null): ChatCompletionChunk {
    return {
      id: this.id ?? this.ctx.responseId,
      object: 'chat.completion.chunk',
      created: this.ctx.created,
      model: this.chunkModel(),
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    };
  }
}
