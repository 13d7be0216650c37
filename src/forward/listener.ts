/**
 * The local listener shared by local and dynamic forwards.
 *
 * @module forward/listener
 * @internal
 */
import net from 'node:net';
import { SshError } from '../errors.js';

/**
 * Binds a TCP listener on `host:port` (allowHalfOpen, TCP_NODELAY on accepted sockets).
 * Connections accepted before `attach(handler)` is called are queued and handed to it then.
 *
 * @returns the listening server, the port it got (the assigned one when `port` is 0), and `attach`.
 * @throws {SshError} `ERR_SSH_FORWARD` with the socket error (EADDRINUSE, EACCES,
 *   EADDRNOTAVAIL...) as `cause`.
 */
export function listen(
  host: string,
  port: number,
  pauseOnConnect: boolean,
): Promise<{ server: net.Server; port: number; attach: (handler: (sock: net.Socket) => void) => void }> {
  let handler: ((sock: net.Socket) => void) | undefined;
  const early: net.Socket[] = [];
  const attach = (h: (sock: net.Socket) => void): void => {
    handler = h;
    for (const s of early.splice(0)) h(s);
  };
  const onConnection = (sock: net.Socket): void => {
    if (handler) handler(sock);
    else early.push(sock);
  };
  const server = net.createServer({ allowHalfOpen: true, pauseOnConnect, noDelay: true });
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      server.close();
      reject(new SshError('ERR_SSH_FORWARD', `cannot listen on ${fmtHostPort(host, port)}: ${err.code ?? err.message}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      // Accept errors (EMFILE...) must not crash the process; the listener keeps running.
      server.on('error', () => undefined);
      server.on('connection', onConnection);
      const addr = server.address();
      resolve({ server, port: typeof addr === 'object' && addr !== null ? addr.port : port, attach });
    });
  });
}

/** Stops listening and resolves once the port is free (connections must be destroyed first). */
export function closeServer(server: net.Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
  });
}

/** `host:port`, with brackets around an IPv6 address. */
export function fmtHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
