/**
 * Hostile key exchange (issue 11 item 5): a server answering diffie-hellman-group-exchange-sha256
 * with a group smaller than the client asked for (RFC 4419 section 3; RFC 8270: at least 2048 bits).
 * ssh2 1.17 does not check ("TODO: validate prime"); OpenSSH's client aborts with "DH_GEX group out
 * of range". The hostile server is a raw-TCP KEX server (ssh2's `Server` has no group exchange).
 */
import { createDiffieHellman, getDiffieHellman } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SshClientOptions } from '../../src/index.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { gexServer } from '../helpers/raw-kex.js';
import { sharedSshd } from '../helpers/shared.js';
import { reliabilitySuite } from './guard.js';
import { rejection } from './util.js';

const suite = reliabilitySuite('Hostile key exchange (issue 11 item 5)');

const GEX = 'diffie-hellman-group-exchange-sha256';
const groups: Record<number, Buffer> = {
  // RFC 2409 group 2 (1024 bits) and RFC 3526 group 14 (2048 bits), as Node ships them.
  1024: getDiffieHellman('modp2').getPrime(),
  2048: getDiffieHellman('modp14').getPrime(),
  // A fresh 512-bit safe prime.
  512: createDiffieHellman(512).getPrime(),
};

// Never read: these servers fail before any host key is shown.
const knownHosts = join(mkdtempSync(join(tmpdir(), 'tether-kex-')), 'known_hosts');
writeFileSync(knownHosts, '');

const servers: Record<number, Awaited<ReturnType<typeof gexServer>>> = {};
beforeAll(async () => {
  for (const bits of [512, 1024, 2048]) servers[bits] = await gexServer(groups[bits] as Buffer);
});
afterAll(async () => {
  for (const s of Object.values(servers)) await s.close();
});

const options = (port: number, extra: Partial<SshClientOptions> = {}): SshClientOptions => ({
  host: '127.0.0.1',
  port,
  username: 'nobody',
  identityFiles: [],
  agent: false,
  sshConfig: false,
  knownHostsFiles: [knownHosts],
  globalKnownHostsFiles: [],
  reconnect: false,
  keepaliveIntervalMs: 0,
  connectTimeoutMs: 5_000,
  ...extra,
});

describe('a group smaller than the requested minimum is refused', () => {
  for (const bits of [512, 1024]) {
    it(`${bits}-bit group: ERR_SSH_HANDSHAKE "out of range", the client never sends KEX_DH_GEX_INIT, DISCONNECT key-exchange-failed`, async () => {
      const srv = servers[bits]!;
      const before = srv.sessions.length;
      const ssh = new SshClient(options(srv.port, { algorithms: { kex: [GEX] } }));
      const err = await rejection(ssh.connect());
      expect(err.code).toBe('ERR_SSH_HANDSHAKE');
      expect(err.retryable).toBe(false);
      expect(err.message).toContain(`group has ${bits} bits, outside the 2048-8192 bits requested`);
      const session = srv.sessions[before]!;
      expect(session.request?.min).toBe(2048);
      expect(session.sentInit).toBe(false);
      // RFC 4253 section 11.1: SSH_DISCONNECT_KEY_EXCHANGE_FAILED
      expect(await waitFor(() => session.disconnectReason === 3, 2_000)).toBe(true);
      await ssh.close();
      suite.figure(`${bits}-bit GEX group`, 'refused (ERR_SSH_HANDSHAKE)');
    });
  }

  it('the default algorithm list (which offers GEX) is protected too', async () => {
    const srv = servers[1024]!;
    const before = srv.sessions.length;
    const ssh = new SshClient(options(srv.port));
    const err = await rejection(ssh.connect());
    expect(err.code).toBe('ERR_SSH_HANDSHAKE');
    expect(err.message).toContain('group has 1024 bits');
    expect(srv.sessions[before]!.sentInit).toBe(false);
    await ssh.close();
  });

  it('with reconnect on, the refusal is final: one connection, no retries', async () => {
    const srv = servers[1024]!;
    const before = srv.sessions.length;
    const ssh = new SshClient(options(srv.port, { reconnect: { retries: 5, minDelayMs: 50, maxDelayMs: 100 } }));
    const err = await rejection(ssh.connect());
    expect(err.code).toBe('ERR_SSH_HANDSHAKE');
    await new Promise((r) => setTimeout(r, 500));
    expect(srv.sessions.length - before).toBe(1);
    expect(ssh.state).toBe('closed');
    await ssh.close();
  });

  it('a 2048-bit group is accepted by the check: the client goes on with KEX_DH_GEX_INIT', async () => {
    const srv = servers[2048]!;
    const before = srv.sessions.length;
    const ssh = new SshClient(options(srv.port, { algorithms: { kex: [GEX] } }));
    // This server stops after KEX_DH_GEX_INIT, so the connect fails later, for another reason.
    const err = await rejection(ssh.connect());
    expect(err.message).not.toContain('out of range');
    expect(srv.sessions[before]!.sentInit).toBe(true);
    await ssh.close();
  });
});

describe('real sshd with group exchange forced', () => {
  it('connects and runs a command: the server group (>= 2048 bits) passes', async () => {
    const lines: string[] = [];
    const logger = { debug: (_o: unknown, m?: string) => lines.push(String(m ?? _o)), info: () => undefined, warn: () => undefined, error: () => undefined };
    const ssh = new SshClient(clientOptions(sharedSshd(), { algorithms: { kex: [GEX] }, reconnect: false, debugProtocol: true, logger }));
    try {
      await ssh.connect();
      const r = await ssh.exec(['echo', 'gex-ok']);
      expect(r.stdout.trim()).toBe('gex-ok');
      expect(lines.some((l) => l.includes(`KEX algorithm: ${GEX}`))).toBe(true);
      expect(lines.some((l) => l.includes('Received DH GEX Group'))).toBe(true);
    } finally {
      await ssh.close();
    }
  });
});
