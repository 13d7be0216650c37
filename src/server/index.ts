/**
 * `ssh-tether/server`: an SSH server that runs inside this Node.js process, for demos and for
 * testing code that uses SSH (including a dead or flaky link) without docker or a system sshd.
 *
 * ```ts
 * import { startServer } from 'ssh-tether/server';
 * import { SshClient } from 'ssh-tether';
 *
 * await using server = await startServer();
 * await using ssh = new SshClient(server.clientOptions());
 * await ssh.connect();
 * server.faults.blackhole(); // the client's keep-alive now sees a dead link
 * ```
 *
 * @packageDocumentation
 */
export { startServer, SshServer } from './server.js';
export type { ServerOptions, ServerUser, ServerFaults, ServerEvents, ServerConnectionInfo, ServerChannelInfo } from './server.js';
