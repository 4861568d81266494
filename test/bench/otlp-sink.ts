/**
 * A tiny OTLP/HTTP traces sink for the tracing row of the bench: accepts every POST (the traced
 * sidecar's batches), reads and discards the body, answers 200 {}. GET /stats answers
 * {"requests":N,"bytes":N} so the runner can check spans arrived. Usage: `node otlp-sink.js`;
 * prints {"port":N}.
 */
import { createServer } from 'node:http';
import { serveBenchProcess } from './serve.js';

let requests = 0;
let bytes = 0;
const server = createServer({ keepAliveTimeout: 120_000 }, (req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ requests, bytes }));
    return;
  }
  req.on('data', (c: Buffer) => (bytes += c.length));
  req.on('end', () => {
    requests++;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
serveBenchProcess(server, 0);
