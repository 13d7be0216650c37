/**
 * The in-process server (`ssh-tether/server`) as a `TestServer` of kind `'inproc'`, for the server
 * matrix and the conformance suite (the `TestServer` interface of test/helpers/servers.ts).
 *
 * `startTestServer('inproc')` in servers.ts delegates here (a type-only import back: no cycle at
 * run time).
 */
import { startServer, type SshServer } from '../../src/server/index.js';
import { findScript } from '../../src/server/session.js';
import type { ServerTraits, TestServer } from './servers.js';

/** Traits of the in-process server: the matrix's `ServerTraits`. */
export type InprocTraits = ServerTraits;

/** A `TestServer` of kind `'inproc'`, plus the server itself (for faults and events). */
export interface InprocTestServer extends TestServer {
  readonly kind: 'inproc';
  /** The running server: `server.faults`, `server.connections`, events. */
  readonly server: SshServer;
}

/** What the in-process server supports (tests branch on these, never on `kind`). */
export function inprocTraits(): InprocTraits {
  return {
    sftp: true,
    localForward: true,
    remoteForward: true,
    sessionsPerConnection: 10,
    // every command is spawned detached (setsid): its own process group, as sshd gives a session
    ownProcessGroupPerSession: true,
    signals: true,
    pty: findScript() !== null,
    notes: [
      'runs inside the Node.js process; commands run as that process\'s OS user, whatever the login name',
      'PTY through util-linux script(1); window-change requests are refused',
      'channel open failures carry reason 2 with an empty description (ssh2), not "open failed"',
      'SFTP symlink takes (linkpath, targetpath) as in the filexfer draft, not OpenSSH\'s swapped order',
    ],
  };
}

/**
 * Starts an in-process server as a `TestServer`. `options.extra` is passed to `startServer()`
 * (e.g. `{ maxSessions: 2 }`, `{ root }`).
 */
export async function startInprocServer(options: { extra?: Record<string, unknown> } = {}): Promise<InprocTestServer> {
  const server = await startServer((options.extra ?? {}));
  const key = server.privateKeyPath;
  if (key === undefined) {
    await server.stop();
    throw new Error('startInprocServer: extra.users is not supported (the adapter needs the generated key of the default user)');
  }
  let removed = false;
  return {
    kind: 'inproc',
    host: server.host,
    port: server.port,
    username: server.usernames[0]!,
    privateKeyPath: key,
    knownHostsPath: server.knownHostsPath,
    hostPublicKey: server.hostKey,
    homeDir: server.root,
    traits: inprocTraits(),
    server,
    stop: () => server.faults.stop(),
    start: () => server.faults.start(),
    remove: async () => {
      if (removed) return;
      removed = true;
      await server.stop();
    },
  };
}
