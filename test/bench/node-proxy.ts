/**
 * The floor for a Node.js proxy: node:http in, one undici Pool out, bytes passed through with no
 * parsing, routing, metering or logging. Usage: `node node-proxy.js <upstream port> [port]`; prints
 * {"port":N}. Its numbers show what any Node.js sidecar pays before doing any work of its own.
 */
import { createServer } from 'node:http';
import { Pool } from 'undici';
import { serveBenchProcess } from './serve.js';

const upstream = `http://127.0.0.1:${Number(process.argv[2])}`;
const pool = new Pool(upstream, { connections: 128, keepAliveTimeout: 30_000 });

const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    pool.request({ path: req.url ?? '/', method: (req.method ?? 'GET') as 'POST', headers: { 'content-type': 'application/json' }, body: body.length ? body : null }).then(
      async (up) => {
        const headers: Record<string, string> = {};
        for (const k of ['content-type', 'content-length', 'cache-control']) {
          const v = up.headers[k];
          if (typeof v === 'string') headers[k] = v;
        }
        res.writeHead(up.statusCode, headers);
        for await (const c of up.body) res.write(c);
        res.end();
      },
      () => {
        res.writeHead(502).end();
      },
    );
  });
});
serveBenchProcess(server, Number(process.argv[3] ?? 0));
