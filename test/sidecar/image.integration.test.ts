import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { BOT_KEY_REF, botRouteConfig, postChat, SIDECAR_BIN, startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * The sidecar image's command line (sidecar/Dockerfile ENTRYPOINT: node, its memory flags, the
 * program) runs the built sidecar: Node accepts the flags and the sidecar serves through undici
 * (whose HTTP parser is the WebAssembly that --liftoff-only compiles), streamed and not.
 */
const ROOT = join(import.meta.dirname, '../..');

function entrypoint(): string[] {
  const m = /^ENTRYPOINT\s+(\[.*\])\s*$/m.exec(readFileSync(join(ROOT, 'sidecar/Dockerfile'), 'utf8'));
  if (!m) throw new Error('sidecar/Dockerfile has no exec-form ENTRYPOINT');
  return JSON.parse(m[1]!) as string[];
}

let upstream: FakeUpstream;
let sidecar: SidecarProcess;

beforeAll(async () => {
  upstream = await startFakeUpstream(openaiResponder());
  const [node, ...rest] = entrypoint();
  expect(node).toBe('/nodejs/bin/node');
  expect(rest.at(-1)).toBe('dist/sidecar/main.js');
  sidecar = await startSidecar(botRouteConfig([`{ provider: openai, model: gpt-4o-mini, baseURL: ${upstream.url}/v1, ${BOT_KEY_REF} }`]), {
    launcher: { command: process.execPath, args: [...rest.slice(0, -1), SIDECAR_BIN] },
  });
});

afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

describe('the image command line', () => {
  it('passes only Node flags between node and the program', () => {
    const flags = entrypoint().slice(1, -1);
    expect(flags.length).toBeGreaterThan(0);
    for (const f of flags) expect(f).toMatch(/^--[a-z-]+(=\d+)?$/);
  });

  it('serves non-streamed and streamed requests', async () => {
    const res = await postChat(sidecar, { model: 'bot', messages: [{ role: 'user', content: 'hello' }] });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { object: string }).object).toBe('chat.completion');
    const stream = await postChat(sidecar, { model: 'bot', stream: true, messages: [{ role: 'user', content: 'hello' }] });
    expect(stream.status).toBe(200);
    expect(await stream.text()).toMatch(/data: \[DONE\]\n\n$/);
  });
});
