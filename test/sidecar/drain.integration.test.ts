import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseUsd } from '../../crds/src/money.js';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * SIGTERM on the real process: every request in flight is answered in full, its cost settles
 * into the budget before the process exits, and the process does not wait out its clients'
 * idle keep-alive connections.
 */
let upstream: FakeUpstream;
let sidecar: SidecarProcess;
let stateDir: string;

const config = (url: string) => `
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: slow }
spec:
  model: slow
  targets: [{ provider: openai-compatible, model: m, baseURL: ${url}/v1, pricing: { input: "1000.00", output: "1000.00" } }]
---
apiVersion: paygo.dev/v1alpha1
kind: Budget
metadata: { name: cap }
spec:
  scope: { routes: [slow] }
  period: monthly
  limit: "100.00"
  action: block
  maxOutputTokensPerRequest: 20
`;

beforeAll(async () => {
  upstream = await startFakeUpstream((req) => {
    const reply = openaiResponder()(req);
    return reply.kind === 'sse' ? { ...reply, frameDelayMs: 100 } : { ...reply, delayMs: 800 };
  });
  stateDir = mkdtempSync(join(tmpdir(), 'paygo-drain-'));
  sidecar = await startSidecar(config(upstream.url), { args: ['--state-dir', stateDir] });
});

afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

describe('drain on SIGTERM', () => {
  it('answers every request in flight, settles its cost into the budget, closes idle keep-alive connections and exits 0', async () => {
    // Keep-alive connections that stay open after their answers (undici's default is 4 s; the
    // server's own keep-alive timeout is 72 s, which a drain must not wait out).
    const agent = new Agent({ keepAliveTimeout: 600_000, keepAliveMaxTimeout: 600_000 });
    const ask = (stream: boolean) =>
      request(`${sidecar.url}/v1/chat/completions`, {
        method: 'POST',
        dispatcher: agent,
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: 'slow', stream, messages: [{ role: 'user', content: 'say something' }] }),
      }).then(async (res) => ({ status: res.statusCode, cost: res.headers['x-paygo-cost-usd'] as string | undefined, text: await res.body.text() }));
    const inFlight = [ask(false), ask(false), ask(true), ask(true)];
    for (let i = 0; i < 1_000 && upstream.requests.length < 4; i++) await new Promise((r) => setTimeout(r, 10));
    expect(upstream.requests).toHaveLength(4); // all four are in flight at the provider
    const exited = new Promise<number | null>((r) => sidecar.child.once('exit', (code) => r(code)));
    sidecar.child.kill('SIGTERM');
    const answers = await Promise.all(inFlight);
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    for (const a of answers.slice(2)) expect(a.text.trimEnd().endsWith('data: [DONE]')).toBe(true);
    // A new connection is refused: the listener is closed.
    await expect(request(`${sidecar.url}/v1/models`)).rejects.toThrow();
    // The keep-alive connections are idle now and still open on the client side; the sidecar
    // exits anyway (bounded generously: the point is not its keep-alive timeout of 72 s).
    const code = await Promise.race([exited, new Promise<'still running'>((r) => setTimeout(() => r('still running'), 30_000))]);
    expect(code).toBe(0);
    await agent.close();

    // Every request's cost settled before the budget state was written at exit.
    const usage = sidecar.usage();
    expect(usage).toHaveLength(4);
    const logged = usage.reduce((sum, u) => sum + BigInt(u.costNanoUsd as number), 0n);
    const headers = answers.slice(0, 2).reduce((sum, a) => sum + parseUsd(a.cost!), 0n);
    expect(logged).toBeGreaterThan(headers);
    const saved = JSON.parse(readFileSync(join(stateDir, 'budgets.json'), 'utf8')) as { spentNano: Record<string, string> };
    const [spent] = Object.values(saved.spentNano);
    expect(BigInt(spent!)).toBe(logged);
    const lines = sidecar.lines.map((l) => JSON.parse(l) as { msg?: string });
    expect(lines.map((l) => l.msg).filter((m) => m === 'draining in-flight requests' || m === 'stopped')).toEqual(['draining in-flight requests', 'stopped']);
    expect(lines.some((l) => l.msg === 'shutdown grace period over; exiting')).toBe(false);
  }, 60_000);
});
