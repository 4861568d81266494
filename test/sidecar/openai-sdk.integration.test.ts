import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openaiResponder } from '../support/fake-openai.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startSidecar, type SidecarProcess } from '../support/sidecar-process.js';

/** The official openai npm SDK pointed at the sidecar, exactly as an app would use it. */
let upstream: FakeUpstream;
let sidecar: SidecarProcess;
let client: OpenAI;

beforeAll(async () => {
  upstream = await startFakeUpstream(openaiResponder());
  sidecar = await startSidecar(`
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: support-bot }
spec:
  model: support-bot
  targets:
    - { provider: openai, model: gpt-4o-mini, baseURL: ${upstream.url}/v1, credentials: { secretRef: { name: openai, key: api-key } } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: embed }
spec:
  model: embed
  targets:
    - { provider: openai, model: text-embedding-3-small, baseURL: ${upstream.url}/v1, credentials: { secretRef: { name: openai, key: api-key } } }
---
apiVersion: paygo.dev/v1alpha1
kind: ModelRoute
metadata: { name: broken }
spec:
  model: broken
  retry: { attempts: 1 }
  targets:
    - { provider: openai-compatible, model: x, baseURL: "http://127.0.0.1:1/v1" }
`, { env: { OPENAI_API_KEY: 'sk-real-key-in-env' } });
  // The app holds no provider key: any string satisfies the SDK.
  client = new OpenAI({ baseURL: `${sidecar.url}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => {
  await sidecar?.stop();
  await upstream?.close();
});

describe('official openai SDK against the sidecar', () => {
  it('chat.completions.create', async () => {
    const res = await client.chat.completions.create({ model: 'support-bot', messages: [{ role: 'user', content: 'hello world' }] });
    expect(res.object).toBe('chat.completion');
    expect(res.choices[0]!.message.content).toBe('echo: hello world');
    expect(res.usage).toMatchObject({ prompt_tokens: 8, completion_tokens: 3, total_tokens: 11 });
    expect(upstream.requests.at(-1)!.headers.authorization).toBe('Bearer sk-real-key-in-env');
  });

  it('streams with include_usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'support-bot',
      messages: [{ role: 'user', content: 'stream me please' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('echo: stream me please');
    expect(usage).toMatchObject({ prompt_tokens: 9, completion_tokens: 4, total_tokens: 13 });
  });

  it('tools: non-stream and streamed tool calls', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { location: { type: 'string' } } } } },
    ];
    const res = await client.chat.completions.create({ model: 'support-bot', messages: [{ role: 'user', content: 'weather?' }], tools, tool_choice: 'required' });
    expect(res.choices[0]!.finish_reason).toBe('tool_calls');
    const call = res.choices[0]!.message.tool_calls![0]!;
    expect(call.type === 'function' && JSON.parse(call.function.arguments)).toEqual({ location: 'Paris' });

    const runner = client.chat.completions.stream({ model: 'support-bot', messages: [{ role: 'user', content: 'weather?' }], tools, tool_choice: 'required' });
    const final = await runner.finalChatCompletion();
    const streamed = final.choices[0]!.message.tool_calls![0]!;
    expect(streamed.type === 'function' && streamed.function.name).toBe('get_weather');
    expect(streamed.type === 'function' && JSON.parse(streamed.function.arguments)).toEqual({ location: 'Paris' });
  });

  it('models.list', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids.sort()).toEqual(['broken', 'embed', 'support-bot']);
  });

  it('embeddings.create', async () => {
    const res = await client.embeddings.create({ model: 'embed', input: ['a', 'b'] });
    expect(res.data).toHaveLength(2);
    expect(res.usage.prompt_tokens).toBe(4);
  });

  it('error statuses surface as the SDK error classes', async () => {
    await expect(client.chat.completions.create({ model: 'nope', messages: [{ role: 'user', content: 'x' }] })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const bad = await client.chat.completions.create({ model: 'support-bot', messages: [] }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('messages');
    const down = await client.chat.completions.create({ model: 'broken', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
    expect(down).toBeInstanceOf(OpenAI.APIError);
    expect((down as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
    expect((down as InstanceType<typeof OpenAI.APIError>).code).toBe('upstream_failed');
  });
});
