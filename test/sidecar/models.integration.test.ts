import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROVIDERS, type ProviderName } from '../../crds/src/index.js';
import { startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/**
 * GET /v1/models on the built sidecar with one route per provider paygo speaks: every provider
 * name is accepted by the config (with the fields it requires) and listed with its route.
 */
const REQUIRED: Partial<Record<ProviderName, string>> = {
  'openai-compatible': 'baseURL: http://127.0.0.1:9/v1',
  azure: 'baseURL: https://example-resource.openai.azure.com',
  bedrock: 'region: us-east-1',
  vertex: 'region: us-central1, project: example-project-1',
  'vertex-anthropic': 'region: us-east5, project: example-project-1',
};

const config = PROVIDERS.map(
  (p) => `apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: via-${p} }
spec:
  model: via-${p}
  targets: [{ name: only, provider: ${p}, model: some-model${REQUIRED[p] ? `, ${REQUIRED[p]}` : ''} }]
`,
).join('---\n');

let sidecar: SidecarProcess;
beforeAll(async () => {
  sidecar = await startSidecar(config);
});
afterAll(async () => {
  await sidecar?.stop();
});

describe('GET /v1/models', () => {
  it(`lists a route for each of the ${PROVIDERS.length} providers, with its targets`, async () => {
    const res = await fetch(`${sidecar.url}/v1/models`);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { object: string; data: Array<{ id: string; object: string; owned_by: string; paygo: { route: string; strategy: string; targets: Array<{ name: string; provider: string; model: string }> } }> };
    expect(body.object).toBe('list');
    expect(PROVIDERS.length).toBeGreaterThanOrEqual(19);
    for (const p of PROVIDERS) {
      const m = body.data.find((d) => d.id === `via-${p}`);
      expect(m, p).toMatchObject({ object: 'model', owned_by: `paygo:default/via-${p}`, paygo: { route: `default/via-${p}`, strategy: 'fallback', targets: [{ name: 'only', provider: p, model: 'some-model' }] } });
    }
  });
});
