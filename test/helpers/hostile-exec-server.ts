/**
 * A hostile exec server on ssh2's `Server` (loopback only): accepts any user and key, and answers
 * each `exec` request with a behaviour chosen by the test from the command line it received, e.g.
 * "send exit-status, then keep the channel open and keep writing". Records every command and
 * every channel close the client sent, so a test can check what the client did.
 */
import { generateEd25519 } from '../../src/internal/keygen.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';

/** What the server does with one exec: `command` as received, `channel` the session's stream. */
export type ExecBehaviour = (command: string, channel: ssh2.ServerChannel, session: ExecSession) => void;

/** One exec the server saw. */
export interface ExecSession {
  readonly command: string;
  /** The client sent CHANNEL_CLOSE (or the channel closed) for this exec. */
  closed: boolean;
  /** Timers of this session, cleared when the channel closes or the server stops. */
  readonly timers: Set<NodeJS.Timeout>;
}

export interface HostileExecServer {
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly privateKeyPath: string;
  readonly knownHostsPath: string;
  readonly hostPublicKey: string;
  /** Every exec received, in order. */
  readonly sessions: ExecSession[];
  /** Session channels open now (opened minus closed). */
  openSessions(): number;
  close(): Promise<void>;
}

/** Repeats `fn` every `ms` on `session` until the channel closes. */
export function every(session: ExecSession, ms: number, fn: () => void): void {
  const t = setInterval(() => {
    if (session.closed) {
      clearInterval(t);
      session.timers.delete(t);
      return;
    }
    fn();
  }, ms);
  session.timers.add(t);
}

/** Options of {@link startHostileExecServer}. */
export interface HostileExecOptions {
  /** Delay (ms) before the exec request is answered, by command line (default 0). */
  acceptDelayMs?: (command: string) => number;
}

/** Starts the server on 127.0.0.1 with a fresh ed25519 host key; `behave` answers each exec. */
export async function startHostileExecServer(behave: ExecBehaviour, options: HostileExecOptions = {}): Promise<HostileExecServer> {
  const dir = mkdtempSync(join(tmpdir(), 'tether-hostile-exec-'));
  const hostKey = generateEd25519();
  const userKey = generateEd25519();
  const privateKeyPath = join(dir, 'id_ed25519');
  writeFileSync(privateKeyPath, userKey.private, { mode: 0o600 });
  const sessions: ExecSession[] = [];
  const conns = new Set<ssh2.Connection>();
  let open = 0;
  const server = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
    conns.add(client);
    client.on('error', () => undefined);
    client.on('close', () => conns.delete(client));
    client.on('authentication', (ctx) => ctx.accept());
    client.on('session', (acceptSession) => {
      const session = acceptSession();
      open += 1;
      let counted = true;
      const uncount = (): void => {
        if (counted) open -= 1;
        counted = false;
      };
      session.on('close', uncount);
      session.on('exec', (accept, _reject, info) => {
        const delay = options.acceptDelayMs?.(info.command) ?? 0;
        if (delay > 0) setTimeout(() => answer(accept, info), delay);
        else answer(accept, info);
      });
      const answer = (accept: () => ssh2.ServerChannel, info: { command: string }): void => {
        const channel = accept();
        const s: ExecSession = { command: info.command, closed: false, timers: new Set() };
        sessions.push(s);
        const closed = (): void => {
          s.closed = true;
          for (const t of s.timers) clearInterval(t);
          s.timers.clear();
          uncount();
        };
        channel.on('close', closed);
        channel.on('error', () => undefined);
        // read (and drop) stdin: ssh2 emits 'close' only once the readable side has ended
        channel.resume();
        behave(info.command, channel, s);
      };
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const addr = server.address();
  if (addr === null || typeof addr !== 'object') throw new Error('hostile exec server: no address');
  const port = addr.port;
  const pub = hostKey.public.trim().split(' ').slice(0, 2).join(' ');
  const knownHostsPath = join(dir, 'known_hosts');
  writeFileSync(knownHostsPath, `[127.0.0.1]:${port} ${pub}\n`, { mode: 0o600 });
  return {
    host: '127.0.0.1',
    port,
    username: 'tester',
    privateKeyPath,
    knownHostsPath,
    hostPublicKey: pub,
    sessions,
    openSessions: () => open,
    close: async () => {
      for (const s of sessions) for (const t of s.timers) clearInterval(t);
      for (const c of conns) c.end();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
