/**
 * One `warning` stream for the user (issue 17): the SFTP client's warnings (a name sent by the
 * server that a directory transfer refused) arrive as the SshClient's own `warning` events, next
 * to ssh_config and exec-kill warnings. The server is a hostile SFTP server built on ssh2's
 * `Server` (test/helpers/hostile-sftp-server.ts); the effect on disk is checked too.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SshClient, type ClientWarning } from '../../src/index.js';
import { startHostileSftp, type HostileSftpServer } from '../helpers/hostile-sftp-server.js';

const servers: HostileSftpServer[] = [];
const clients: SshClient[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.close()));
});

describe('SshClient warning events', () => {
  it("re-emits the SFTP client's warnings (refused READDIR names) as its own, once each, with the SFTP details", async () => {
    const server = await startHostileSftp({
      node(p) {
        if (p === '/evil') {
          return {
            type: 'dir',
            names: ['ok.txt', '../escape.txt', 'a/../../b.txt'].map((name) => ({ name, attrs: { size: 6, mode: 0o100644 } })),
          };
        }
        if (p.startsWith('/evil/')) return { type: 'file', content: Buffer.from('pwned!') };
        return undefined;
      },
    });
    servers.push(server);
    const ssh = new SshClient(server.clientOptions());
    clients.push(ssh);
    const warnings: ClientWarning[] = [];
    ssh.on('warning', (w) => warnings.push(w));
    const sftp = await ssh.sftp();
    const own: string[] = [];
    sftp.on('warning', (w) => own.push(w.path));
    const sandbox = mkdtempSync(join(tmpdir(), 'tether-client-events-'));
    try {
      const local = join(sandbox, 'target');
      const summary = await sftp.getDir('/evil', local);
      expect(readdirSync(local)).toEqual(['ok.txt']);
      expect(existsSync(join(sandbox, 'escape.txt'))).toBe(false);
      expect(summary.skipped.map((s) => s.path).sort()).toEqual(['../escape.txt', 'a/../../b.txt']);
      // The SftpClient still emits its own, and the client carries each one once.
      expect(own.sort()).toEqual(['../escape.txt', 'a/../../b.txt']);
      const sftpWarnings = warnings.filter((w) => w.keyword === 'sftp unsafe-name');
      expect(sftpWarnings).toHaveLength(2);
      expect(sftpWarnings.map((w) => w.sftp?.path).sort()).toEqual(['../escape.txt', 'a/../../b.txt']);
      for (const w of sftpWarnings) {
        expect(w.sftp).toMatchObject({ reason: 'unsafe-name', operation: 'getDir' });
        expect(w.message).toBe(w.sftp?.message);
      }
      // A second sftp() is the same SFTP client: no duplicate listener.
      expect(await ssh.sftp()).toBe(sftp);
      await sftp.getDir('/evil', join(sandbox, 'again'));
      expect(warnings.filter((w) => w.keyword === 'sftp unsafe-name')).toHaveLength(4);
    } finally {
      rmSync(sandbox, { recursive: true, force: true });
    }
  });
});
