/**
 * Transport behaviours of servers other than OpenSSH (issue 13 items 2 and 3, keep-alive bullet):
 *
 * - asyncssh re-keying every 3 s (`rekey_seconds=3`) sends IGNORE during its re-keys, which plain
 *   ssh2 1.17 refuses under strict kex and drops the link; src/ssh2 lets them through during
 *   re-keys only. A 64 MiB SFTP get and an idle keep-alive link ride through.
 * - tinysshd answers keep-alive global requests with UNIMPLEMENTED: each answer now counts (RTT
 *   recorded) and ssh2's callback queue stays empty.
 *
 * Servers from test/helpers/servers.ts (the `servers` helper's harness).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chownSync, createReadStream, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient } from '../../src/index.js';
import { ssh2Adapter } from '../../src/ssh2/index.js';
import { clientOptions } from '../helpers/client.js';
import { startTestServer, type TestServer } from '../helpers/servers.js';

const local = mkdtempSync(join(tmpdir(), 'tether-other-'));
afterAll(() => rmSync(local, { recursive: true, force: true }));

const sha256File = (file: string): Promise<string> =>
  new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(file)
      .on('data', (c) => h.update(c))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });

/** ssh2's global-request callback queue of the client's live link (the leak the fix removes). */
async function queueOf(ssh: SshClient): Promise<{ callbacks: number; adapter: ReturnType<typeof ssh2Adapter> }> {
  const link = await ssh.link();
  return {
    callbacks: (link.client as unknown as { _callbacks: unknown[] })._callbacks.length,
    adapter: ssh2Adapter(link.client),
  };
}

describe('asyncssh re-keying every 3 s and every 8 MiB (issue 13 item 2)', () => {
  let server: TestServer;
  beforeAll(async () => {
    // rekey_bytes as well, so a fast transfer still spans several re-keys
    server = await startTestServer('asyncssh', { extra: { listen: { rekey_seconds: 3, rekey_bytes: 8 * 1024 * 1024 } } });
  }, 30_000);
  afterAll(async () => {
    await server?.remove();
  });

  it('an idle link with keep-alives stays up across >= 3 server re-keys (same link, RTTs recorded)', async () => {
    const ssh = new SshClient(clientOptions(server, { keepaliveIntervalMs: 500, keepaliveCountMax: 3, reconnect: false }));
    const events: string[] = [];
    let rtts = 0;
    ssh.on('reconnecting', () => events.push('reconnecting'));
    ssh.on('keepalive', () => rtts++);
    try {
      await ssh.connect();
      const first = await ssh.link();
      // asyncssh re-keys on its timer when it next sends or receives: the keep-alives drive it.
      const end = Date.now() + 20_000;
      while (ssh2Adapter(first.client).rekeys < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 200));
      const { adapter } = await queueOf(ssh);
      expect(adapter.rekeys).toBeGreaterThanOrEqual(3);
      // asyncssh did send IGNORE/DEBUG during those re-keys, and they were let through
      expect(adapter.relaxedDuringRekey).toBeGreaterThanOrEqual(1);
      expect(ssh.state).toBe('ready');
      expect((await ssh.link()).client).toBe(first.client);
      expect(events).toEqual([]);
      expect(rtts).toBeGreaterThan(0);
      const r = await ssh.exec(['echo', 'still-here']);
      expect(r.stdout.trim()).toBe('still-here');
    } finally {
      await ssh.close();
    }
  }, 40_000);

  it('a 64 MiB SFTP get across server re-keys arrives whole (sha256), on one link', async () => {
    const size = 64 * 1024 * 1024;
    const name = `rekey-${process.pid}.bin`;
    const remote = join(server.homeDir, name);
    writeFileSync(remote, randomBytes(size));
    if (process.getuid?.() === 0) {
      const st = statSync(server.homeDir);
      chownSync(remote, st.uid, st.gid);
    }
    const want = await sha256File(remote);
    const ssh = new SshClient(clientOptions(server, { keepaliveIntervalMs: 1_000, reconnect: false }));
    const events: string[] = [];
    ssh.on('reconnecting', () => events.push('reconnecting'));
    try {
      await ssh.connect();
      const link = await ssh.link();
      const before = ssh2Adapter(link.client).rekeys;
      const sftp = await ssh.sftp();
      const out = join(local, name);
      const started = Date.now();
      await sftp.get(remote, out);
      const tookMs = Date.now() - started;
      expect(statSync(out).size).toBe(size);
      expect(await sha256File(out)).toBe(want);
      expect(events).toEqual([]);
      expect((await ssh.link()).client).toBe(link.client);
      const during = ssh2Adapter(link.client).rekeys - before;
      // 64 MiB at a re-key per 8 MiB (or per 3 s)
      expect(during).toBeGreaterThanOrEqual(4);
      console.log(`64 MiB get from asyncssh: ${tookMs} ms, ${during} re-keys during it`);
    } finally {
      await ssh.close();
      rmSync(remote, { force: true });
    }
  }, 120_000);
});

describe('tinysshd answers keep-alives with UNIMPLEMENTED (issue 13 item 3)', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer('tinysshd');
  }, 30_000);
  afterAll(async () => {
    await server?.remove();
  });

  it('every probe is answered (RTT recorded) and ssh2 queue stays bounded after many probes', async () => {
    const ssh = new SshClient(clientOptions(server, { keepaliveIntervalMs: 100, keepaliveCountMax: 3, reconnect: false }));
    const rtts: number[] = [];
    ssh.on('keepalive', ({ rttMs }) => rtts.push(rttMs));
    try {
      await ssh.connect();
      const end = Date.now() + 15_000;
      let maxQueued = 0;
      while (rtts.length < 30 && Date.now() < end) {
        await new Promise((r) => setTimeout(r, 50));
        maxQueued = Math.max(maxQueued, (await queueOf(ssh)).callbacks);
      }
      const q = await queueOf(ssh);
      expect(rtts.length).toBeGreaterThanOrEqual(30);
      expect(q.adapter.unimplementedAnswers).toBeGreaterThanOrEqual(30);
      // only probes in flight (at most countMax), never one per probe sent (30+)
      expect(maxQueued).toBeLessThanOrEqual(3);
      expect(q.callbacks).toBeLessThanOrEqual(3);
      expect(ssh.state).toBe('ready');
    } finally {
      await ssh.close();
    }
  }, 30_000);
});
