/**
 * The in-process server (`ssh-tether/server`) as a `TestServer` of kind `'inproc'`, for the server
 * matrix / conformance suite (interface: /work/notes/TESTSERVER-INTERFACE.md, implemented for the
 * other kinds in test/helpers/servers.ts).
 *
 * The types are repeated here (structurally identical) so this file does not depend on
 * servers.ts; once both are merged, `import type { TestServer, ServerTraits } from './servers.js'`
 * can replace them.
 */
import { startServer, type SshServer } from '../../src/server/index.js';
import { findScript } from '../../src/server/session.js';

/** Same shape as `ServerTraits` in servers.ts. */
export interface InprocTraits {
  sftp: boolean;
  localForward: boolean;
  remoteForward: boolean;
  sessionsPerConnection: number;
  ownProcessGroupPerSession: boolean;
  signals: boolean;
  pty: boolean;
  notes: string[];
}

/** Same shape as `TestServer` in servers.ts, plus the server itself (for faults and events). */
export interface InprocTestServer {
  readonly kind: 'inproc';
  readonly host: string;
  readonly port: number;
  readonly username: string;
  readonly privateKeyPath: string;
  readonly knownHostsPath: string;
  readonly hostPublicKey: string;
  readonly homeDir: string;
  readonly traits: InprocTraits;
  /** The running server: `server.faults`, `server.connections`, events. */
  readonly server: SshServer;
  stop(): Promise<void>;
  start(): Promise<void>;
  remove(): Promise<void>;
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
