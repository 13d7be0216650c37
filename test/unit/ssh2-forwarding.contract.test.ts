/**
 * Contract test for src/ssh2/forwarding.ts: the ssh2 private field it adjusts
 * (`Client._forwarding`, `"bindAddr:bindPort" -> bound port`) and ssh2's use of it for
 * `forwarded-tcpip` opens (an entry with port 0 substitutes `destPort`). Fails if ssh2 changes
 * either; then src/ssh2/forwarding.ts must follow.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { setPortZeroAlias } from '../../src/ssh2/forwarding.js';

let dir = '';
let server: ssh2.Server;
let port = 0;
let serverConn: ssh2.Connection | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tether-ssh2-fwd-'));
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'host')]);
  server = new ssh2.Server({ hostKeys: [readFileSync(join(dir, 'host'))] }, (conn) => {
    serverConn = conn;
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx) => ctx.accept());
    conn.on('ready', () => conn.on('request', (accept, _reject, name) => (name === 'tcpip-forward' ? accept?.(43210) : accept?.())));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

it('ssh2 keeps remote forwards in Client._forwarding and substitutes destPort from a port-0 entry', async () => {
  const client = new ssh2.Client();
  client.on('error', () => undefined);
  await new Promise<void>((resolve) => {
    client.on('ready', () => resolve());
    client.connect({ host: '127.0.0.1', port, username: 'u', password: 'p', hostVerifier: () => true });
  });
  try {
    const bound = await new Promise<number>((resolve, reject) => client.forwardIn('127.0.0.1', 0, (err, p) => (err ? reject(err) : resolve(p))));
    expect(bound).toBe(43210);
    const table = (client as unknown as { _forwarding: unknown })._forwarding;
    expect(table).toEqual({ '127.0.0.1:43210': 43210 });
    // Without an alias ssh2 rejects an open reported for port 0 ...
    const open = (): Promise<string> =>
      new Promise((resolve) => {
        serverConn?.forwardOut('127.0.0.1', 0, '127.0.0.1', 1, (err, ch) => {
          if (err) return resolve('refused');
          ch.close();
          resolve('opened');
        });
      });
    const seen: number[] = [];
    client.on('tcp connection', (info, accept) => {
      seen.push(info.destPort);
      accept().close();
    });
    expect(await open()).toBe('refused');
    // ... with one it passes the open on, destPort replaced by the entry's value.
    expect(setPortZeroAlias(client, '127.0.0.1', 43210)).toBe(true);
    expect(await open()).toBe('opened');
    expect(seen).toEqual([43210]);
    expect(setPortZeroAlias(client, '127.0.0.1', undefined)).toBe(true);
    expect(table).toEqual({ '127.0.0.1:43210': 43210 });
  } finally {
    client.end();
  }
});
