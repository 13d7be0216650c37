/**
 * Where the examples connect: a real host when `SSH_HOST` is set (your ssh_config, keys, agent and
 * known_hosts, as `ssh` would use them; `SSH_PORT` and `SSH_USER` override), otherwise an SSH server
 * started inside this process (`ssh-tether/server`): no sshd, docker or test helper needed, so
 * `npm ci && npm run demo` works on a fresh machine.
 */
import type { SshClientOptions } from '../../src/index.js';
import { startServer, type ServerOptions, type SshServer } from '../../src/server/index.js';

export interface Target {
  /** Client options for the target (merge your own over them). */
  options: SshClientOptions;
  /** The in-process server, or `undefined` for a real host. */
  server: SshServer | undefined;
  /** Stops the in-process server (and removes its temp files); a no-op for a real host. */
  cleanup: () => Promise<void>;
}

export async function target(serverOptions: ServerOptions = {}): Promise<Target> {
  const host = process.env.SSH_HOST;
  if (host) {
    return {
      options: {
        host,
        ...(process.env.SSH_PORT ? { port: Number(process.env.SSH_PORT) } : {}),
        ...(process.env.SSH_USER ? { username: process.env.SSH_USER } : {}),
      },
      server: undefined,
      cleanup: () => Promise.resolve(),
    };
  }
  const server = await startServer(serverOptions);
  console.log(`started an in-process SSH server on ${server.host}:${server.port} (root ${server.root})`);
  return { options: server.clientOptions(), server, cleanup: () => server.stop() };
}
