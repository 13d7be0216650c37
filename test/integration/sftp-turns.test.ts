/**
 * Issue 18 item 7: a large SFTP `get` leaves the host's event loop its turns. libuv reads a
 * backed-up socket up to 32 x 64 KiB in one poll, and ssh2 handles each chunk at once; the SFTP
 * inbound hook pauses the transport after TURN_BUDGET_BYTES of channel data in one turn
 * (src/ssh2/sftp.ts TurnBudget). Measured in bytes per turn (never in time): socket bytes
 * received between two consecutive setImmediate turns, from the client's own counter
 * (`health().bytesIn`), while the host blocks its loop now and then so that MiBs wait in the
 * socket. The file stays byte-exact, and an exec on the same connection completes meanwhile.
 */
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type SftpClient } from '../../src/index.js';
import { TURN_BUDGET_BYTES } from '../../src/ssh2/sftp.js';
import { clientOptions } from '../helpers/client.js';
import { sharedSshd } from '../helpers/shared.js';
import { startSshd } from '../helpers/sshd.js';

const info = sharedSshd();
const MiB = 1024 * 1024;
/** Node's socket read size: a turn may finish the chunk it is in, and hand on one held back. */
const CHUNK = 64 * 1024;

async function sha256File(p: string): Promise<string> {
  const h = createHash('sha256');
  await pipeline(fs.createReadStream(p), h);
  return h.digest('hex');
}

let ssh: SshClient;
let sftp: SftpClient;
let local: string;
let remoteDir: string;

beforeAll(async () => {
  ssh = new SshClient(clientOptions(info, { reconnect: false }));
  sftp = await ssh.sftp();
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-turns-'));
  remoteDir = path.posix.join(info.homeDir, `turns-${randomBytes(4).toString('hex')}`);
  await sftp.mkdir(remoteDir);
});

afterAll(async () => {
  await sftp.rm(remoteDir, { recursive: true, force: true });
  await ssh.close();
  await fsp.rm(local, { recursive: true, force: true });
});

describe('SFTP get: bounded work per event-loop turn (issue 18 item 7)', () => {
  it('with MiBs waiting in the socket, one turn handles at most the budget (plus the chunks around it); the file is byte-exact; an exec completes meanwhile', async () => {
    const size = 48 * MiB + 12_345; // not a multiple of the read size or of a channel packet
    const src = path.join(local, 'src.bin');
    const fd = fs.openSync(src, 'w');
    const block = Buffer.allocUnsafe(4 * MiB);
    for (let off = 0; off < size; off += block.length) fs.writeSync(fd, randomFillSync(block), 0, Math.min(block.length, size - off), off);
    fs.closeSync(fd);
    const remote = `${remoteDir}/src.bin`;
    await sftp.put(src, remote);
    const want = await sha256File(src);

    let last = ssh.health().bytesIn;
    let max = 0;
    let turns = 0;
    let atBudget = 0;
    let done = false;
    const turn = (): void => {
      const now = ssh.health().bytesIn;
      const d = now - last;
      last = now;
      if (d > max) max = d;
      if (d >= TURN_BUDGET_BYTES) atBudget++;
      turns++;
      if (!done) setImmediate(turn);
    };
    setImmediate(turn);
    // A busy host: every 60 ms the loop is blocked for 20 ms, so the server fills the socket.
    let blocks = 0;
    const blocker = setInterval(() => {
      const t0 = performance.now();
      while (performance.now() - t0 < 20) blocks += 0; // busy: nothing else runs
      blocks++;
    }, 60);
    const dst = path.join(local, 'dst.bin');
    try {
      const [got, ex] = await Promise.all([sftp.get(remote, dst), ssh.exec(['sh', '-c', 'echo during-get'])]);
      expect(got.totalBytes).toBe(size);
      expect(ex.stdout).toBe('during-get\n');
    } finally {
      done = true;
      clearInterval(blocker);
    }
    expect(fs.statSync(dst).size).toBe(size);
    expect(await sha256File(dst)).toBe(want);
    expect(blocks).toBeGreaterThan(0);
    // the host was busy enough that a turn had the whole budget to handle (else this proves nothing)
    expect(atBudget).toBeGreaterThan(0);
    // without the budget one turn handled up to 32 socket reads (2 MiB)
    expect(max).toBeLessThanOrEqual(TURN_BUDGET_BYTES + 3 * CHUNK);
    expect(turns).toBeGreaterThan(size / (TURN_BUDGET_BYTES + 3 * CHUNK));
  }, 120_000);

  it('over a ProxyJump hop (the transport stream is a channel of the jump connection, which the budget pauses like a socket): the session opens and put/get are byte-exact', async () => {
    const jump = await startSshd({ extraConfig: [`PermitOpen ${info.host}:${info.port}`] });
    try {
      fs.appendFileSync(path.join(jump.dir, 'authorized_keys'), `${fs.readFileSync(`${info.privateKeyPath}.pub`, 'utf8').trim()}\n`);
      const knownHosts = path.join(local, 'known_hosts');
      fs.writeFileSync(knownHosts, fs.readFileSync(info.knownHostsPath, 'utf8') + fs.readFileSync(jump.knownHostsPath, 'utf8'));
      const viaJump = new SshClient(
        clientOptions(info, { reconnect: false, knownHostsFiles: [knownHosts], jump: `${jump.username}@${jump.host}:${String(jump.port)}` }),
      );
      try {
        const s2 = await viaJump.sftp();
        const size = 8 * MiB + 1;
        const src = path.join(local, 'jump-src.bin');
        fs.writeFileSync(src, randomBytes(size));
        const remote = `${remoteDir}/jump.bin`;
        await s2.put(src, remote);
        const dst = path.join(local, 'jump-dst.bin');
        await s2.get(remote, dst);
        expect(await sha256File(dst)).toBe(await sha256File(src));
        expect(await sha256File(remote)).toBe(await sha256File(src));
      } finally {
        await viaJump.close();
      }
    } finally {
      await jump.remove();
    }
  }, 120_000);
});
