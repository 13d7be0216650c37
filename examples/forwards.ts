/**
 * Forwarding example: a local forward to a service on the server, a SOCKS proxy used by an HTTP
 * request, and a remote forward exposing a local port — all surviving a reconnect.
 *
 *   npm run example -- examples/forwards.ts     # against an in-process SSH server (its connections reset mid-way)
 *
 * The services stand in for "a service on the server" and "an app on your side", so both run on
 * this machine: this example always uses the in-process server (`ssh-tether/server`), not SSH_HOST.
 */
import http from 'node:http';
import net from 'node:net';
import { SocksClient } from 'socks';
import { SshClient } from '../src/index.js';
import { startServer } from '../src/server/index.js';

/** A tiny HTTP service on loopback: "the service on the server" (same machine here). */
async function service(name: string): Promise<{ port: number; close: () => Promise<void> }> {
  const srv = http.createServer((req, res) => res.end(`${name} says hello to ${req.url ?? '/'}\n`));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as net.AddressInfo).port, close: () => new Promise((r) => srv.close(() => r())) };
}

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, timeout: 10_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body.trim()));
    }).on('error', reject);
  });
}

async function viaSocks(socksPort: number, targetPort: number, path: string): Promise<string> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: '127.0.0.1', port: socksPort, type: 5 },
    command: 'connect',
    destination: { host: 'localhost', port: targetPort },
  });
  return new Promise((resolve, reject) => {
    let body = '';
    socket.on('data', (d: Buffer) => (body += d.toString()));
    socket.on('end', () => resolve(body.split('\r\n\r\n')[1]?.trim() ?? body));
    socket.on('error', reject);
    socket.write(`GET ${path} HTTP/1.0\r\nHost: localhost\r\n\r\n`);
  });
}

/** A port free on 127.0.0.1 right now. */
async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

async function main(): Promise<void> {
  const server = await startServer();
  const remoteSide = await service('remote-service');
  const localSide = await service('local-app');
  const ssh = new SshClient({
    ...server.clientOptions(),
    keepaliveIntervalMs: 1_000,
    keepaliveCountMax: 2,
    reconnect: { minDelayMs: 200, maxDelayMs: 2_000 },
  });
  ssh.on('forward', ({ forward, state, cause }) => console.log(`  [forward] ${forward.type} ${state}${cause ? ` (${cause.code})` : ''}`));
  ssh.on('state', ({ state }) => console.log(`  [state] ${state}`));
  try {
    const local = await ssh.forwardLocal({ remoteHost: '127.0.0.1', remotePort: remoteSide.port });
    console.log(`local forward 127.0.0.1:${local.localPort} -> server's 127.0.0.1:${remoteSide.port}`);
    console.log(`  ${await get(local.localPort, '/via-local-forward')}`);

    const socks = await ssh.forwardDynamic();
    console.log(`SOCKS5 proxy on 127.0.0.1:${socks.localPort}`);
    console.log(`  ${await viaSocks(socks.localPort, remoteSide.port, '/via-socks')}`);

    const exposedPort = await freePort();
    const remote = await ssh.forwardRemote({ remoteHost: '127.0.0.1', remotePort: exposedPort, localHost: '127.0.0.1', localPort: localSide.port });
    console.log(`remote forward server:${remote.remotePort} -> local app 127.0.0.1:${localSide.port}`);
    console.log(`  ${await get(exposedPort, '/via-remote-forward')}`);

    console.log('resetting the connection (server.faults.reset())...');
    const healed = new Promise<void>((resolve) => ssh.once('ready', () => resolve()));
    server.faults.reset();
    await healed;
    await new Promise<void>((resolve) => {
      const check = (): void => void (remote.state === 'up' ? resolve() : setTimeout(check, 100));
      check();
    });
    console.log('after the reconnect, the same ports:');
    console.log(`  ${await get(local.localPort, '/local-again')}`);
    console.log(`  ${await viaSocks(socks.localPort, remoteSide.port, '/socks-again')}`);
    console.log(`  ${await get(exposedPort, '/remote-again')}`);
    console.log('forwards:', ssh.health().forwards.map((f) => `${f.id} ${f.state} conns=${f.connectionsTotal}`));
  } finally {
    await ssh.close();
    await remoteSide.close();
    await localSide.close();
    await server.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
