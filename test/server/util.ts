// Helpers for the in-process server's tests.
import net from 'node:net';
import ssh2 from 'ssh2';
import type { SshServer } from '../../src/server/index.js';

/** A raw ssh2 client logged in to `server` (for requests SshClient does not make: pty, env, garbage). */
export function rawClient(server: SshServer, extra: Partial<ssh2.ConnectConfig> = {}): Promise<ssh2.Client> {
  const o = server.clientOptions();
  return new Promise((resolve, reject) => {
    const c = new ssh2.Client();
    const timer = setTimeout(() => {
      c.end();
      reject(new Error('raw client: no ready within 10 s'));
    }, 10_000);
    c.on('ready', () => {
      clearTimeout(timer);
      resolve(c);
    });
    c.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    c.connect({
      host: o.host,
      port: o.port,
      username: o.username,
      ...(o.privateKey !== undefined ? { privateKey: o.privateKey } : {}),
      hostVerifier: (key: Buffer) => key.toString('base64') === server.hostKey.split(' ')[1],
      ...extra,
    });
  });
}

/** Runs `command` on a raw client; resolves with output and the exit event's arguments. */
export function rawExec(
  c: ssh2.Client,
  command: string,
  opts: ssh2.ExecOptions = {},
  stdin?: string,
): Promise<{ out: string; err: string; code: number | null; signal: string | undefined }> {
  return new Promise((resolve, reject) => {
    c.exec(command, opts, (err, ch) => {
      if (err) return reject(err);
      let out = '';
      let errOut = '';
      let code: number | null = null;
      let signal: string | undefined;
      ch.on('data', (d: Buffer) => (out += d.toString()));
      ch.stderr.on('data', (d: Buffer) => (errOut += d.toString()));
      ch.on('exit', (c1: number | null, s?: string) => {
        code = c1;
        signal = s;
      });
      ch.on('close', () => resolve({ out, err: errOut, code, signal }));
      if (stdin !== undefined) ch.end(stdin);
    });
  });
}

/** A TCP echo server on 127.0.0.1 (replies `echo:` + what it got). */
export async function echoServer(): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<net.Socket>();
  const srv = net.createServer((s) => {
    sockets.add(s);
    s.on('error', () => undefined);
    s.on('close', () => sockets.delete(s));
    s.on('data', (d) => s.write(`echo:${d.toString()}`));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const addr = srv.address() as net.AddressInfo;
  return {
    port: addr.port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        srv.close(() => r());
      }),
  };
}

/** Sends `text` to 127.0.0.1:port and resolves with the first reply (bounded). */
export function roundTrip(port: number, text: string, timeoutMs = 5_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('roundTrip: no reply'));
    }, timeoutMs);
    s.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    s.on('connect', () => s.write(text));
    s.on('data', (d) => {
      clearTimeout(timer);
      s.destroy();
      resolve(d.toString());
    });
  });
}

/** Resolves when `emitter` reports `state === want` (bounded). */
export function untilState(emitter: { on(e: 'state', f: (s: { state: string }) => void): unknown; off(e: 'state', f: (s: { state: string }) => void): unknown }, want: string, timeoutMs = 15_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off('state', f);
      reject(new Error(`state ${want} not reached within ${timeoutMs} ms`));
    }, timeoutMs);
    const f = ({ state }: { state: string }): void => {
      if (state !== want) return;
      clearTimeout(timer);
      emitter.off('state', f);
      resolve();
    };
    emitter.on('state', f);
  });
}

/** Whether a process with this pid exists. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
