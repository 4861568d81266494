// A fake OpenAI-compatible provider for the node e2e tier (runs in a pod behind a Service).
//   POST /<prefix>/v1/chat/completions  a completion naming <prefix>; usage 10 prompt + 5 completion tokens
//   GET  /__count                        {"count":N,"byPrefix":{...},"authorization":{...}}
//   GET  /healthz                        200
import { createServer } from 'node:http';
import { hostname } from 'node:os';

const byPrefix = {};
const authorization = {};
let count = 0;
createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (req.method === 'GET' && url.pathname === '/healthz') return res.end('ok\n');
  if (req.method === 'GET' && url.pathname === '/__count') {
    res.setHeader('content-type', 'application/json');
    return res.end(JSON.stringify({ count, byPrefix, authorization }));
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    if (req.method !== 'POST' || !url.pathname.endsWith('/chat/completions')) {
      res.statusCode = 404;
      return res.end(JSON.stringify({ error: { message: `no route ${req.method} ${url.pathname}` } }));
    }
    let body = {};
    try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { /* answer anyway */ }
    const prefix = url.pathname.split('/')[1] ?? '';
    count++;
    byPrefix[prefix] = (byPrefix[prefix] ?? 0) + 1;
    const auth = String(req.headers.authorization ?? '');
    authorization[auth] = (authorization[auth] ?? 0) + 1;
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({
      id: `chatcmpl-${count}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model ?? 'unknown',
      choices: [{ index: 0, message: { role: 'assistant', content: `answer from ${prefix} (${hostname()})` }, finish_reason: 'stop' }],
      usage: { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 },
    }));
  });
}).listen(Number(process.env.PORT ?? 8080), '0.0.0.0', () => console.log('fake provider listening'));
