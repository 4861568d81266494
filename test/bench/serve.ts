import type { Server } from 'node:http';

/**
 * Runs a bench server process: listens on 127.0.0.1 (port 0: any), prints {"port":N} for the
 * runner, and closes its connections and exits on SIGTERM / SIGINT. Imports nothing else, so
 * the processes whose memory is measured load only what they serve with.
 */
export function serveBenchProcess(server: Server, port: number): void {
  server.listen(port, '127.0.0.1', () => {
    const a = server.address();
    process.stdout.write(JSON.stringify({ port: typeof a === 'object' && a ? a.port : 0 }) + '\n');
  });
  const stop = () => {
    server.closeAllConnections();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 1000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
