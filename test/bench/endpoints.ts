/**
 * The load side of the forward benchmark, run in its own process (`fork`ed by
 * `test/bench/forward.ts`): a loopback sink, source and echo server, and the TCP clients that
 * upload, download and ping through a forward. Keeping them out of the forwarder's process means
 * every tool is measured alike: `ssh -L` is a process of its own, and so is the forwarder we
 * measure; the load generator never shares a thread (or a CPU count) with what it measures —
 * as `wrk` is never run inside the server it loads.
 *
 * Protocol (IPC messages, one request at a time): `{ op: 'servers', bytes }` -> `{ sink, source,
 * echo }` ports; `{ op: 'upload', port, bytes }` -> `{}`; `{ op: 'download', port }` ->
 * `{ bytes }`; `{ op: 'pings', port, n }` -> `{}`; `{ op: 'exit' }` closes everything. Errors
 * come back as `{ error: message }`.
 */
import net from 'node:net';

const MiB = 1024 * 1024;
const CHUNK = Buffer.alloc(MiB, 0x5a);

/** Writes `bytes` to `s` with backpressure, then ends it. */
function writeAll(s: net.Socket, bytes: number): void {
  let left = bytes;
  const pump = (): void => {
    while (left > 0) {
      const n = Math.min(left, CHUNK.length);
      left -= n;
      if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
        s.once('drain', pump);
        return;
      }
    }
    s.end();
  };
  pump();
}

const servers: net.Server[] = [];
const sockets = new Set<net.Socket>();

function serve(handler: (s: net.Socket) => void): Promise<number> {
  const server = net.createServer({ noDelay: true }, (s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    handler(s);
  });
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as net.AddressInfo).port)));
}

function upload(port: number, bytes: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    s.on('error', reject);
    s.on('connect', () => writeAll(s, bytes));
    s.resume();
    s.on('close', () => resolve());
  });
}

function download(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    let n = 0;
    s.on('error', reject);
    s.on('data', (c: Buffer) => (n += c.length));
    s.on('close', () => resolve(n));
  });
}

function pingOnce(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', noDelay: true });
    s.on('error', reject);
    s.on('connect', () => s.write('x'));
    s.once('data', () => s.end());
    s.on('close', () => resolve());
  });
}

type Request =
  | { op: 'servers'; bytes: number }
  | { op: 'upload'; port: number; bytes: number }
  | { op: 'download'; port: number }
  | { op: 'pings'; port: number; n: number }
  | { op: 'exit' };

async function handle(req: Request): Promise<object> {
  switch (req.op) {
    case 'servers':
      return {
        sink: await serve((s) => s.resume()),
        source: await serve((s) => writeAll(s, req.bytes)),
        echo: await serve((s) => s.pipe(s)),
      };
    case 'upload':
      await upload(req.port, req.bytes);
      return {};
    case 'download':
      return { bytes: await download(req.port) };
    case 'pings':
      for (let k = 0; k < req.n; k++) await pingOnce(req.port);
      return {};
    case 'exit':
      for (const s of sockets) s.destroy();
      for (const s of servers) s.close();
      process.disconnect?.();
      return {};
  }
}

process.on('message', (req: Request) => {
  handle(req).then(
    (res) => process.send?.(res),
    (err: unknown) => process.send?.({ error: err instanceof Error ? err.message : String(err) }),
  );
});
// The parent going away ends us too (no orphaned load process).
process.on('disconnect', () => process.exit(0));
