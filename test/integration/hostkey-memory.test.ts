// Issue 15 item 4: host keys without files — `knownHosts` (known_hosts lines in memory) and
// `hostVerifier` (a caller's decision), against the harness sshd.
import { afterAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, SshHostKeyError, type SshClientOptions } from '../../src/index.js';
import { sharedSshd } from '../helpers/shared.js';
import { startSshd, describeSshd, type SshdHandle } from '../helpers/sshd.js';
import { useClients, waitFor, writeSshConfig } from '../helpers/common.js';
import type { SshdInfo } from '../helpers/sshd.js';

const info = sharedSshd();
/** Every client a test makes is closed after it. */
const track = useClients();

/** Options that reach `server` with no known_hosts file at all (only what the test adds). */
function bare(server: Pick<SshdInfo, 'host' | 'port' | 'username' | 'privateKeyPath'>, extra: Partial<SshClientOptions>): SshClientOptions {
  return {
    host: server.host,
    port: server.port,
    username: server.username,
    identityFiles: [server.privateKeyPath],
    globalKnownHostsFiles: [],
    agent: false,
    sshConfig: false,
    ...extra,
  };
}

const lookup = `[${info.host}]:${info.port}`;
/** Another valid ed25519 key (the user's key): "the server presented something else". */
const otherKey = info.publicKey.split(/\s+/).slice(0, 2).join(' ');

async function failure(ssh: SshClient): Promise<SshError> {
  const err = await ssh.connect().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(SshError);
  return err as SshError;
}

describe('knownHosts: known_hosts lines in memory', () => {
  it('a line for [host]:port trusts the key: connects with no known_hosts file read', async () => {
    // A user file that would refuse: with knownHosts given, the default ~/.ssh/known_hosts is not read,
    // and here HOME's file does not exist anyway; the in-memory line must be what trusts the key.
    const ssh = track(new SshClient(bare(info, { knownHosts: ['# from a secret', `${lookup} ${info.hostPublicKey.trim()}`] })));
    expect((await ssh.exec('echo ok')).stdout).toBe('ok\n');
  });

  it('another key for the host: ERR_SSH_HOST_KEY_MISMATCH; no line for the host: ERR_SSH_HOST_KEY_UNKNOWN; @revoked: _REVOKED', async () => {
    const mismatch = await failure(new SshClient(bare(info, { knownHosts: [`${lookup} ${otherKey}`] })));
    expect(mismatch.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
    expect(mismatch.retryable).toBe(false);
    expect((mismatch as SshHostKeyError).known).toEqual({ file: 'knownHosts option', line: 1, keyType: otherKey.split(' ')[0] });
    const unknown = await failure(new SshClient(bare(info, { knownHosts: [`[other.invalid]:22 ${info.hostPublicKey.trim()}`] })));
    expect(unknown.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
    expect(unknown.message).toMatch(/knownHosts option/);
    const revoked = await failure(
      new SshClient(bare(info, { knownHosts: [`${lookup} ${info.hostPublicKey.trim()}`, `@revoked ${lookup} ${info.hostPublicKey.trim()}`] })),
    );
    expect(revoked.code).toBe('ERR_SSH_HOST_KEY_REVOKED');
    expect((revoked as SshHostKeyError).known).toEqual({ file: 'knownHosts option', line: 2, keyType: info.hostPublicKey.split(/\s+/)[0] });
  });

  it("ssh_config's StrictHostKeyChecking no does not weaken knownHosts", async () => {
    const cfg = writeSshConfig([{ host: '*', StrictHostKeyChecking: 'no' }]);
    const err = await failure(new SshClient(bare(info, { sshConfig: cfg, knownHosts: [`${lookup} ${otherKey}`] })));
    expect(err.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
  });

  it('explicit knownHostsFiles are still read beside the lines', async () => {
    const ssh = track(new SshClient(bare(info, { knownHosts: [`[other.invalid]:22 ${otherKey}`], knownHostsFiles: [info.knownHostsPath] })));
    expect((await ssh.exec('echo ok')).stdout).toBe('ok\n');
  });
});

describe('hostVerifier: the caller decides', () => {
  it('gets { type, fingerprint, blob } and the known_hosts host string; true (sync or async) trusts the key', async () => {
    const seen: Array<{ type: string; fingerprint: string; blob: Buffer; host: string }> = [];
    const sync = track(
      new SshClient(
        bare(info, {
          hostVerifier: (key, host) => {
            seen.push({ ...key, host });
            return key.fingerprint === info.hostKeyFingerprint;
          },
        }),
      ),
    );
    expect((await sync.exec('echo ok')).stdout).toBe('ok\n');
    expect(seen).toHaveLength(1);
    const s = seen[0];
    expect(s?.type).toBe('ssh-ed25519');
    expect(s?.fingerprint).toBe(info.hostKeyFingerprint);
    expect(s?.host).toBe(lookup);
    expect(s?.blob.equals(Buffer.from(info.hostPublicKey.trim().split(/\s+/)[1] ?? '', 'base64'))).toBe(true);

    const asyncOk = track(
      new SshClient(
        bare(info, {
          hostVerifier: async (key) => {
            await new Promise((r) => setTimeout(r, 50));
            return key.fingerprint === info.hostKeyFingerprint;
          },
        }),
      ),
    );
    expect((await asyncOk.exec('echo ok')).stdout).toBe('ok\n');
  });

  it('false, a throw or a rejection refuses the key: ERR_SSH_HOST_KEY_UNKNOWN, never retried, client closed', async () => {
    const no = new SshClient(bare(info, { hostVerifier: () => false }));
    const e1 = await failure(no);
    expect(e1.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
    expect(e1.retryable).toBe(false);
    expect(e1.message).toContain(info.hostKeyFingerprint);
    expect(no.state).toBe('closed');
    const boom = new Error('vault unreachable');
    const e2 = await failure(new SshClient(bare(info, { hostVerifier: () => Promise.reject(boom) })));
    expect(e2.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
    expect(e2.message).toMatch(/vault unreachable/);
    expect(e2.cause).toBe(boom);
    const e3 = await failure(
      new SshClient(
        bare(info, {
          hostVerifier: () => {
            throw boom;
          },
        }),
      ),
    );
    expect(e3.code).toBe('ERR_SSH_HOST_KEY_UNKNOWN');
  });

  describe('server-initiated re-keys and a changed key on reconnect', () => {
    let server: SshdHandle | undefined;
    afterAll(async () => {
      await server?.stop();
    });

    it('re-keys are answered without asking again; a new key after a reconnect is ERR_SSH_HOST_KEY_MISMATCH', async () => {
      server = await startSshd({ extraConfig: ['RekeyLimit 256K'] });
      const first = describeSshd(server);
      let calls = 0;
      let kex = 0;
      const count = (_o: unknown, msg?: string): void => {
        if (typeof msg === 'string' && msg.includes('Handshake: KEX algorithm')) kex += 1;
      };
      const logger = { debug: count, info: () => undefined, warn: () => undefined, error: () => undefined };
      const ssh = track(
        new SshClient(
          bare(first, {
            logger,
            debugProtocol: true,
            reconnect: { minDelayMs: 50, maxDelayMs: 200 },
            connectTimeoutMs: 3_000,
            hostVerifier: async (key) => {
              calls += 1;
              await new Promise((r) => setTimeout(r, 10));
              return key.fingerprint === first.hostKeyFingerprint;
            },
          }),
        ),
      );
      // 4 MiB through a 256 KiB RekeyLimit: the server re-keys ~16 times on this connection.
      const r = await ssh.exec('head -c 4194304 /dev/zero | wc -c');
      expect(r.stdout.trim()).toBe('4194304');
      const big = await ssh.exec('head -c 4194304 /dev/zero', { encoding: 'buffer' });
      expect(big.stdout.length).toBe(4194304);
      expect(kex).toBeGreaterThan(2); // re-keys did happen on this connection
      expect(calls).toBe(1);
      expect(ssh.health().reconnects).toBe(0);

      const port = server.port;
      await server.stop();
      server = await startSshd({ port }); // same port, fresh host key
      expect(await waitFor(() => ssh.state === 'closed', 15_000)).toBe(true);
      expect(ssh.health().closedBy?.code).toBe('ERR_SSH_HOST_KEY_MISMATCH');
      // decided by the hostVerifier option: no known_hosts line behind it
      expect((ssh.health().closedBy as SshHostKeyError).known).toBeUndefined();
      expect(calls).toBeGreaterThanOrEqual(2);
    });
  });
});

describe('refused combinations', () => {
  it("knownHosts or hostVerifier with strictHostKeyChecking 'no': ERR_SSH_CONFIG saying why", () => {
    const a = (): SshClient => new SshClient(bare(info, { knownHosts: [`${lookup} ${otherKey}`], strictHostKeyChecking: 'no' }));
    expect(a).toThrow(SshError);
    expect(a).toThrow(/'no' accepts every host key, so knownHosts would never be consulted/);
    const b = (): SshClient => new SshClient(bare(info, { hostVerifier: () => true, strictHostKeyChecking: 'no' }));
    expect(b).toThrow(/'no' accepts every host key, so hostVerifier would never be consulted/);
    try {
      b();
    } catch (e) {
      expect((e as SshError).code).toBe('ERR_SSH_CONFIG');
    }
    expect(() => new SshClient(bare(info, { hostVerifier: () => true, knownHosts: [] }))).toThrow(/either hostVerifier or knownHosts/);
    expect(() => new SshClient(bare(info, { knownHosts: [], strictHostKeyChecking: 'accept-new' }))).toThrow(/needs knownHostsFiles/);
  });
});
