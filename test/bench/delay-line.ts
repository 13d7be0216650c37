/**
 * A delay line for the latency bench: a TCP proxy that forwards every chunk, in both directions,
 * `delayMs` after it arrived, in order, without limiting throughput (the machines running the
 * bench have no `tc netem`). Round trip through it: about 2 x `delayMs` plus loopback.
 *
 * It runs in a process of its own (`spawnDelayLine`), so its timers never wait behind the
 * measured client's work, and the client's CPU use does not count it.
 *
 * Why not `test/helpers/fault-proxy.ts` `delay(ms)`: that proxy pauses a source while 1 MiB waits
 * in its delay queue, which caps one direction at 1 MiB per `delayMs` (42 MB/s at 25 ms, below
 * what SFTP reaches on such a link), and it runs inside the test process. Here a source pauses
 * only when 256 MiB wait (memory bound), far above window x RTT of any tool measured.
 *
 * Written here rather than taken from npm: the maintained latency tools are `tc netem` (root,
 * a kernel module) and toxiproxy (a separate server with an HTTP API).
 *
 * Child protocol: argv `<targetHost> <targetPort> <delayMs>`; prints `{"port":N}` on stdout once
 * listening; exits when stdin closes (the parent went away) or on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/** Pause reading a source while this many bytes wait for delivery (memory bound, not a rate cap). */
const HIGH_WATER = 256 * 1024 * 1024;

interface Item {
  chunk: Buffer | null;
  dueAt: number;
}

/** One direction of a proxied connection. */
function wire(src: net.Socket, dst: net.Socket, delayMs: number): void {
  const queue: Item[] = [];
  let head = 0;
  let queued = 0;
  let timer: NodeJS.Timeout | undefined;
  const flow = (): void => {
    const pending = queued + dst.writableLength;
    if (pending >= HIGH_WATER && !src.isPaused()) src.pause();
    else if (pending < HIGH_WATER / 2 && src.isPaused()) src.resume();
  };
  const deliver = (): void => {
    timer = undefined;
    const now = performance.now();
    // every chunk now due goes out in one writev
    dst.cork();
    while (head < queue.length && queue[head]!.dueAt <= now) {
      const { chunk } = queue[head]!;
      queue[head++] = undefined as unknown as Item;
      if (chunk === null) {
        dst.end();
      } else {
        queued -= chunk.length;
        if (!dst.destroyed) dst.write(chunk);
      }
    }
    dst.uncork();
    if (head > 1024 && head * 2 > queue.length) {
      queue.splice(0, head);
      head = 0;
    }
    flow();
    schedule();
  };
  const schedule = (): void => {
    if (timer !== undefined || head >= queue.length) return;
    timer = setTimeout(deliver, Math.max(0, queue[head]!.dueAt - performance.now()));
  };
  const push = (chunk: Buffer | null): void => {
    queue.push({ chunk, dueAt: performance.now() + delayMs });
    if (chunk) queued += chunk.length;
    flow();
    schedule();
  };
  src.on('data', (c: Buffer) => push(c));
  src.on('end', () => push(null));
  dst.on('drain', flow);
}

/** Starts a delay line in this process; resolves with its port. */
export function startDelayLineHere(target: { host: string; port: number }, delayMs: number): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (client) => {
    const up = net.connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
    client.on('error', () => up.destroy());
    up.on('error', () => client.destroy());
    client.on('close', () => up.destroy());
    up.on('close', () => client.destroy());
    up.once('connect', () => {
      wire(client, up, delayMs);
      wire(up, client, delayMs);
      client.resume();
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as net.AddressInfo).port, server })));
}

/** A delay line running in a child process. */
export interface DelayLine {
  /** Its listen port on 127.0.0.1. */
  port: number;
  /** The one-way delay per direction, ms. */
  delayMs: number;
  close(): Promise<void>;
}

/** Spawns a delay line to `target` in a child process (tracked by `track`, e.g. lib's trackChild). */
export async function spawnDelayLine(target: { host: string; port: number }, delayMs: number, track?: (c: ChildProcess) => void): Promise<DelayLine> {
  const here = path.dirname(fileURLToPath(import.meta.url));
  const register = path.resolve(here, '../../scripts/ts-node-register.mjs');
  const child = spawn(process.execPath, ['--import', pathToFileURL(register).href, path.join(here, 'delay-line.ts'), target.host, String(target.port), String(delayMs)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  track?.(child);
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error('delay line did not start within 60 s')), 60_000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (s: string) => {
      out += s;
      const m = /\{"port":(\d+)\}/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`delay line exited with ${String(code)}`));
    });
  });
  return {
    port,
    delayMs,
    close: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.stdin.end();
        child.kill('SIGTERM');
      }),
  };
}

// run as the child
if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const [host, port, delay] = process.argv.slice(2);
  const { port: listen } = await startDelayLineHere({ host: host ?? '127.0.0.1', port: Number(port) }, Number(delay));
  process.stdout.write(`${JSON.stringify({ port: listen })}\n`);
  process.stdin.resume();
  process.stdin.on('end', () => process.exit(0));
  process.on('SIGTERM', () => process.exit(0));
}
