// The "application" of the node e2e tier: it calls its paygo sidecar on 127.0.0.1:4000 the way
// an app does, and shows the test (which reaches this pod by its IP) what it got.
//   GET /call?model=M[&max_tokens=N]  {"status","body","headers":{x-paygo-*}} of one chat completion
//   GET /models                        the sidecar's GET /v1/models, as {"status","body"}
//   GET /healthz                       200
import { createServer } from 'node:http';

const SIDECAR = process.env.PAYGO_URL ?? 'http://127.0.0.1:4000';

async function relay(res, url, init) {
  let out;
  try {
    const r = await fetch(url, { ...init, signal: AbortSignal.timeout(30_000) });
    const text = await r.text();
    let body = text;
    try { body = JSON.parse(text); } catch { /* not JSON */ }
    const headers = {};
    for (const [k, v] of r.headers) if (k.startsWith('x-paygo-') || k === 'retry-after') headers[k] = v;
    out = { status: r.status, body, headers };
  } catch (e) {
    out = { status: 0, error: String(e?.cause ?? e) };
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify(out));
}

createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/healthz') return res.end('ok\n');
  if (url.pathname === '/models') return relay(res, `${SIDECAR}/v1/models`, {});
  if (url.pathname === '/call') {
    const body = { model: url.searchParams.get('model') ?? 'demo', messages: [{ role: 'user', content: 'hello from the node e2e app' }] };
    const max = url.searchParams.get('max_tokens');
    if (max) body.max_tokens = Number(max);
    return relay(res, `${SIDECAR}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  }
  res.statusCode = 404;
  res.end('not found\n');
}).listen(Number(process.env.PORT ?? 8080), '0.0.0.0', () => console.log('app listening'));
