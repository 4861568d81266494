import type { ProviderName } from '../../crds/src/index.js';
import { anthropicAdapter } from './anthropic.js';
import { azureAdapter } from './azure.js';
import { bedrockAdapter } from './bedrock.js';
import { cohereAdapter } from './cohere.js';
import { geminiAdapter } from './gemini.js';
import { createOpenAIAdapter } from './openai.js';
import type { ProviderAdapter } from './types.js';
import { vertexAdapter, vertexAnthropicAdapter } from './vertex.js';

/** Every provider's adapter, by provider name. */
export const ADAPTERS: Readonly<Record<ProviderName, ProviderAdapter>> = {
  openai: createOpenAIAdapter('openai'),
  deepseek: createOpenAIAdapter('deepseek'),
  qwen: createOpenAIAdapter('qwen'),
  mistral: createOpenAIAdapter('mistral'),
  openrouter: createOpenAIAdapter('openrouter'),
  xai: createOpenAIAdapter('xai'),
  groq: createOpenAIAdapter('groq'),
  together: createOpenAIAdapter('together'),
  fireworks: createOpenAIAdapter('fireworks'),
  cerebras: createOpenAIAdapter('cerebras'),
  perplexity: createOpenAIAdapter('perplexity'),
  'openai-compatible': createOpenAIAdapter('openai-compatible'),
  simulate: createOpenAIAdapter('simulate'),
  anthropic: anthropicAdapter,
  gemini: geminiAdapter,
  cohere: cohereAdapter,
  azure: azureAdapter,
  bedrock: bedrockAdapter,
  vertex: vertexAdapter,
  'vertex-anthropic': vertexAnthropicAdapter,
};
