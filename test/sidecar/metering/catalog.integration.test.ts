import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { BOT_KEY_REF, botRouteConfig, postChat, startSidecar, type SidecarProcess } from '../../support/sidecar-process.js';

/**
 * Catalog prices in file mode: a short-lived child process resolves them, so the price catalog is
 * loaded in the sidecar process only for a model whose catalog prices depend on time.
 */
let upstream: FakeUpstream;
const started: SidecarProcess[] = [];

const config = (provider: string, model: string) =>
  botRouteConfig([
    `{ provider: ${provider}, model: ${model}, baseURL: ${upstream.url}/v1, ${BOT_KEY_REF} }`,
    `{ name: unlisted, provider: openai-compatible, model: my-local-model, baseURL: ${upstream.url}/v1 }`,
  ]);

async function sidecarWith(yaml: string): Promise<SidecarProcess> {
  const s = await startSidecar(yaml);
  started.push(s);
  return s;
}

beforeAll(async () => {
  upstream = await startFakeUpstream(openaiResponder());
});

afterAll(async () => {
  await Promise.allSettled(started.map((s) => s.stop()));
  await upstream?.close();
});

describe('catalog prices in file mode', () => {
  it('prices a catalogued model resolved by a child process, without loading the catalog in the sidecar', async () => {
    const s = await sidecarWith(config('openai', 'gpt-4o-mini'));
    const res = await postChat(s, { model: 'bot', messages: [{ role: 'user', content: 'price me' }] });
    expect(res.status).toBe(200);
    const { usage } = (await res.json()) as { usage: { prompt_tokens: number; completion_tokens: number } };
    // gpt-4o-mini in the catalog: $0.15 input, $0.60 output per million tokens = 150 / 600 nano-USD per token
    const nano = BigInt(usage.prompt_tokens * 150 + usage.completion_tokens * 600);
    expect(res.headers.get('x-paygo-cost-usd')).toBe(`0.${nano.toString().padStart(9, '0')}`);
    expect(s.lines.join('\n')).not.toContain('price catalog loaded');
  });

  it('loads the catalog in the sidecar for time-dependent catalog prices, and prices with them', async () => {
    const s = await sidecarWith(config('deepseek', 'deepseek-chat'));
    await s.waitForLog((r) => r.msg === 'price catalog loaded (a target has time-dependent catalog prices)');
    const res = await postChat(s, { model: 'bot', messages: [{ role: 'user', content: 'price me' }] });
    expect(res.status).toBe(200);
    expect(Number(res.headers.get('x-paygo-cost-usd'))).toBeGreaterThan(0);
  });
});
