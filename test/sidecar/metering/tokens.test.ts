import { encode as cl100k } from 'gpt-tokenizer/encoding/cl100k_base';
import { encode as o200k } from 'gpt-tokenizer/encoding/o200k_base';
import { describe, expect, it } from 'vitest';
import { countTextTokens, loadedEncodings } from '../../../sidecar/metering/tokens.js';

/** The tokenizer loads on first use, and only the encodings of the models asked for (its own module instance in this file). */
// Non-English text tokenizes quite differently in the two encodings.
const TEXT = 'Привет, как дела? 日本語のテキストも少し。';

describe('tokenizer encodings per model', () => {
  it('loads nothing until a count is needed', () => {
    expect(loadedEncodings()).toEqual([]);
  });

  it('counts GPT-4 and GPT-3.5 with cl100k_base and loads only that encoding', async () => {
    expect(cl100k(TEXT).length).not.toBe(o200k(TEXT).length);
    expect(await countTextTokens(TEXT, 'gpt-4')).toBe(cl100k(TEXT).length);
    expect(await countTextTokens(TEXT, 'gpt-3.5-turbo')).toBe(cl100k(TEXT).length);
    expect(loadedEncodings()).toEqual(['cl100k_base']);
  });

  it('counts newer and unlisted models (other vendors: an estimate) with o200k_base', async () => {
    expect(await countTextTokens(TEXT, 'gpt-4o-mini')).toBe(o200k(TEXT).length);
    expect(await countTextTokens(TEXT, 'claude-3-5-haiku-latest')).toBe(o200k(TEXT).length);
    expect(await countTextTokens('', 'gpt-4o')).toBe(0);
    expect(loadedEncodings().sort()).toEqual(['cl100k_base', 'o200k_base']);
  });
});
