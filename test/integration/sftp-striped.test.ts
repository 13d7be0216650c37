/**
 * Issue 18 item 4: striped `get`/`put` of a large file over several SFTP channels (each its own
 * channel window), within the MaxSessions budget, resumable and byte-exact, falling back to
 * fewer channels when the server refuses more. Real sshds (the shared one, and ones with
 * `MaxSessions 1` and `3`), plus a hostile server on ssh2's `Server` that fails one channel.
 *
 * Effects checked: the bytes on disk (the sshd runs on this machine, so remote files are read
 * directly), the SFTP channels the client really opened (diagnostics_channel `channel:open`),
 * and that none is left open afterwards (`health().openChannels`, and the hostile server's own
 * count of open SFTP channels).
 */
import { createHash, randomBytes } from 'node:crypto';
import diagnostics_channel from 'node:diagnostics_channel';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, type SftpClient } from '../../src/index.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import type { Link } from '../../src/connection/link.js';
import { SftpClient as BareSftpClient } from '../../src/sftp/index.js';
import { engineHooks } from '../../src/sftp/engine.js';
import { STRIPE_MAX_BUFFER_BYTES } from '../../src/sftp/striped.js';
import type { PacingStats } from '../../src/sftp/pacing.js';
import { FaultProxy } from '../helpers/fault-proxy.js';
import { startHostileSftp, type HostileSftpServer } from '../helpers/hostile-sftp-server.js';
import { RawLinkProvider } from '../helpers/raw-link.js';
import { sharedSshd } from '../helpers/shared.js';
import { startSshd, type SshdHandle, type SshdInfo } from '../helpers/sshd.js';

const MiB = 1024 * 1024;
/** Over 4 channels x 8 MiB (the smallest range), so lanes take several ranges each; an odd tail. */
const SIZE = 40 * MiB + 12_345;
/** Stripe anything from 1 MiB in these tests (the default is 64 MiB). */
const MIN = 1 * MiB;

const info = sharedSshd();
let local: string;
let content: Buffer;
let src: string;

beforeAll(async () => {
  local = await fsp.mkdtemp(path.join(os.tmpdir(), 'tether-striped-'));
  content = randomBytes(SIZE);
  src = path.join(local, 'src.bin');
  await fsp.writeFile(src, content);
});
afterAll(async () => {
  await fsp.rm(local, { recursive: true, force: true });
});

function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

/** Session channels opened by `ssh` while `fn` runs (diagnostics_channel). */
async function countOpens<T>(ssh: SshClient, fn: () => Promise<T>): Promise<{ value: T; opened: number }> {
  let opened = 0;
  const onOpen = (msg: unknown): void => {
    if ((msg as { client?: unknown }).client === ssh) opened++;
  };
  diagnostics_channel.subscribe('ssh-tether:channel:open', onOpen);
  try {
    return { value: await fn(), opened };
  } finally {
    diagnostics_channel.unsubscribe('ssh-tether:channel:open', onOpen);
  }
}

async function connect(i: Pick<SshdInfo, 'host' | 'port' | 'username' | 'privateKeyPath' | 'knownHostsPath' | 'hostPublicKey'>): Promise<{ ssh: SshClient; sftp: SftpClient; dir: string }> {
  const ssh = new SshClient(clientOptions(i, { reconnect: false, sftpChannelsPersistMs: 0 }));
  const sftp = await ssh.sftp();
  const home = (i as { homeDir?: string }).homeDir ?? info.homeDir;
  const dir = `${home}/striped-${randomBytes(4).toString('hex')}`;
  await sftp.mkdir(dir);
  return { ssh, sftp, dir };
}

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return await p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e,
  );
}

describe('striped get/put against the shared sshd', () => {
  let ssh: SshClient;
  let sftp: SftpClient;
  let dir: string;
  beforeAll(async () => {
    ({ ssh, sftp, dir } = await connect(info));
  });
  afterAll(async () => {
    await sftp.rm(dir, { recursive: true, force: true });
    await ssh.close();
  });

  it.each([2, 3, 4])('put then get over %i channels: byte-exact, every extra channel opened and closed again', async (channels) => {
    const remote = `${dir}/put-${channels}.bin`;
    expect(ssh.health().openChannels).toBe(1); // the SFTP session
    const put = await countOpens(ssh, () => sftp.put(src, remote, { channels, channelsMinBytes: MIN }));
    // every extra channel is opened; how many of them got a range (result.channels) depends on
    // how fast they joined (on loopback the first lane may take two ranges first)
    expect(put.value).toMatchObject({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0 });
    expect(put.value.channels).toBeGreaterThanOrEqual(2);
    expect(put.value.channels).toBeLessThanOrEqual(channels);
    expect(put.opened).toBe(channels - 1);
    expect(sha(fs.readFileSync(remote))).toBe(sha(content));
    expect(ssh.health().openChannels).toBe(1);

    const dst = path.join(local, `get-${channels}.bin`);
    const get = await countOpens(ssh, () => sftp.get(remote, dst, { channels, channelsMinBytes: MIN }));
    expect(get.value).toMatchObject({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0 });
    expect(get.value.channels).toBeGreaterThanOrEqual(2);
    expect(get.value.channels).toBeLessThanOrEqual(channels);
    expect(get.opened).toBe(channels - 1);
    expect(sha(fs.readFileSync(dst))).toBe(sha(content));
    expect(ssh.health().openChannels).toBe(1);
  });

  it('the range runs of a striped get reuse their request buffers: allocations stay within 2x the striped buffer budget however many ranges (byte-exact)', async () => {
    // 80 MiB over 2 channels: 10 ranges of 8 MiB, each a run of >= 16 requests of ~255 KiB.
    // Allocating per run (as before) makes >= 10 x 16 buffers of the request size; reused, the
    // two lanes hold at most 2 runs each within their share of STRIPE_MAX_BUFFER_BYTES.
    const big = randomBytes(80 * MiB);
    const bigSrc = path.join(local, 'big-src.bin');
    await fsp.writeFile(bigSrc, big);
    const remote = `${dir}/big.bin`;
    await sftp.put(bigSrc, remote, { channels: 1 });
    const dst = path.join(local, 'big-get.bin');
    const sizes: number[] = [];
    const saved = Object.getOwnPropertyDescriptor(Buffer, 'allocUnsafe')!;
    const orig = Buffer.allocUnsafe.bind(Buffer);
    Buffer.allocUnsafe = ((n: number): Buffer => {
      if (n >= 128 * 1024) sizes.push(n);
      return orig(n);
    }) as typeof Buffer.allocUnsafe;
    let r;
    try {
      r = await sftp.get(remote, dst, { channels: 2, channelsMinBytes: MIN });
    } finally {
      Object.defineProperty(Buffer, 'allocUnsafe', saved);
    }
    expect(r.channels).toBe(2);
    expect(sha(fs.readFileSync(dst))).toBe(sha(big));
    const chunk = Math.max(...sizes);
    const slotBuffers = sizes.filter((n) => n === chunk).length;
    expect(slotBuffers).toBeGreaterThan(0);
    expect(slotBuffers * chunk).toBeLessThanOrEqual(2 * STRIPE_MAX_BUFFER_BYTES);
    expect(slotBuffers).toBeLessThan(10 * 16);
    await fsp.rm(bigSrc);
    await fsp.rm(dst);
  });

  it('channels left out: no striping on loopback, where the file\'s round trip is < 5 ms (CPU, not the window, is the limit there)', async () => {
    const remote = `${dir}/default-loopback.bin`;
    // The decision reads the session's fastest request so far (a minimum: one busy moment of a
    // loaded machine does not make loopback look like a long link); a few requests give it samples.
    for (let i = 0; i < 5; i++) await sftp.stat(dir);
    const put = await countOpens(ssh, () => sftp.put(src, remote, { channelsMinBytes: MIN }));
    expect(put.value).toEqual({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0 });
    expect(put.opened).toBe(0);
    const get = await countOpens(ssh, () => sftp.get(remote, path.join(local, 'default-loopback.bin'), { channelsMinBytes: MIN }));
    expect(get.value.channels).toBeUndefined();
    expect(get.opened).toBe(0);
    expect(sha(fs.readFileSync(path.join(local, 'default-loopback.bin')))).toBe(sha(content));
  });

  it('below channelsMinBytes (and with channels: 1) one channel carries the file, as before', async () => {
    const remote = `${dir}/small.bin`;
    const r = await countOpens(ssh, () => sftp.put(src, remote, { channels: 4 }));
    expect(r.value).toEqual({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0 });
    expect(r.value.channels).toBeUndefined();
    expect(r.opened).toBe(0);
    const one = await countOpens(ssh, () => sftp.get(remote, path.join(local, 'one.bin'), { channels: 1, channelsMinBytes: 0 }));
    expect(one.value.channels).toBeUndefined();
    expect(one.opened).toBe(0);
    expect(sha(fs.readFileSync(path.join(local, 'one.bin')))).toBe(sha(content));
  });

  it('rejects bad channels / channelsMinBytes with ERR_SSH_INVALID_ARG naming the field, before any I/O', async () => {
    for (const [options, field] of [
      [{ channels: 0 }, 'channels'],
      [{ channels: 65 }, 'channels'],
      [{ channels: 2.5 }, 'channels'],
      [{ channelsMinBytes: -1 }, 'channelsMinBytes'],
      [{ channelsMinBytes: '1' }, 'channelsMinBytes'],
    ] as const) {
      const e = await rejection(sftp.put(src, `${dir}/never.bin`, options as never));
      expect((e as SshError).code).toBe('ERR_SSH_INVALID_ARG');
      expect((e as { field?: string }).field).toBe(field);
    }
    expect(await sftp.exists(`${dir}/never.bin`)).toBe(false);
  });
});

describe('stopped mid-way (abort, deadline) on a slowed link: a TCP proxy adding 25 ms per chunk', () => {
  // slowed so that progress reports (every 100 ms) come many times during one transfer
  let proxy: FaultProxy;
  let ssh: SshClient;
  let sftp: SftpClient;
  let dir: string;
  beforeAll(async () => {
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
    proxy.delay(25);
    ssh = new SshClient(clientOptions(info, { reconnect: false, sftpChannelsPersistMs: 0 }, { host: proxy.host, port: proxy.port }));
    sftp = await ssh.sftp();
    dir = `${info.homeDir}/striped-stop-${randomBytes(4).toString('hex')}`;
    await sftp.mkdir(dir);
  });
  afterAll(async () => {
    await sftp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    await ssh.close();
    await proxy.close();
  });

  it('put aborted at 70%: the remote file is cut to its complete prefix, all extra channels closed; resume sends only the rest', async () => {
    const remote = `${dir}/abort-put.bin`;
    const ctl = new AbortController();
    const err = await rejection(
      sftp.put(src, remote, {
        channels: 2,
        channelsMinBytes: MIN,
        signal: ctl.signal,
        onProgress: (p) => {
          if (p.transferredBytes >= SIZE * 0.7) ctl.abort();
        },
      }),
    );
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_ABORTED');
    expect(ssh.health().openChannels).toBe(1);
    const kept = fs.readFileSync(remote);
    // a prefix of the source, never a hole, and short of the whole
    expect(kept.length).toBeLessThan(SIZE);
    expect(sha(kept)).toBe(sha(content.subarray(0, kept.length)));
    expect(kept.length).toBeGreaterThan(0);

    const r = await sftp.put(src, remote, { channels: 2, channelsMinBytes: MIN, resume: true });
    expect(r.resumedFrom).toBe(kept.length);
    expect(r.transferredBytes).toBe(SIZE - kept.length);
    expect(sha(fs.readFileSync(remote))).toBe(sha(content));
    expect(ssh.health().openChannels).toBe(1);
  });

  it('channels left out on a ~12 ms link: put stripes (it is held to the server\'s window), get does not (below 25 ms one adaptive channel carries it)', async () => {
    const near = await FaultProxy.start({ host: info.host, port: info.port });
    near.delay(6);
    const c = new SshClient(clientOptions(info, { reconnect: false, sftpChannelsPersistMs: 0 }, { host: near.host, port: near.port }));
    try {
      const s2 = await c.sftp();
      for (let i = 0; i < 3; i++) await s2.stat(dir);
      const remote = `${dir}/default-near.bin`;
      const put = await countOpens(c, () => s2.put(src, remote, { channelsMinBytes: MIN }));
      expect(put.value.channels).toBe(4);
      expect(put.opened).toBe(3);
      const dst = path.join(local, 'default-near.bin');
      const get = await countOpens(c, () => s2.get(remote, dst, { channelsMinBytes: MIN }));
      expect(get.value.channels).toBeUndefined();
      expect(get.opened).toBe(0);
      expect(sha(fs.readFileSync(dst))).toBe(sha(content));
    } finally {
      await c.close();
      await near.close();
    }
  });

  it('channels left out: a link whose round trip is >= 25 ms stripes both ways over the default 4 channels, byte-exact', async () => {
    const remote = `${dir}/default-slow.bin`;
    const put = await countOpens(ssh, () => sftp.put(src, remote, { channelsMinBytes: MIN }));
    expect(put.value).toEqual({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0, channels: 4 });
    expect(put.opened).toBe(3);
    const dst = path.join(local, 'default-slow.bin');
    const get = await countOpens(ssh, () => sftp.get(remote, dst, { channelsMinBytes: MIN }));
    expect(get.value.channels).toBe(4);
    expect(sha(fs.readFileSync(dst))).toBe(sha(content));
    expect(ssh.health().openChannels).toBe(1);
  });

  it('every lane adapts its requests in flight, and starts its later ranges where the last one ended (not from concurrency again)', async () => {
    const remote = `${dir}/adaptive-lanes.bin`;
    fs.writeFileSync(path.join(local, 'adaptive-src.bin'), content);
    await sftp.put(path.join(local, 'adaptive-src.bin'), remote, { channels: 1 });
    const runs: PacingStats[] = [];
    engineHooks.onPacing = (_kind, st) => runs.push(st);
    try {
      const dst = path.join(local, 'adaptive-lanes.bin');
      const r = await sftp.get(remote, dst, { channels: 2, channelsMinBytes: MIN, concurrency: 4, maxConcurrency: 64 });
      expect(r.channels).toBe(2);
      expect(sha(fs.readFileSync(dst))).toBe(sha(content));
    } finally {
      engineHooks.onPacing = undefined;
    }
    // one run per range (8 MiB ranges: 6 of them), each may grow past the 4 it was given, up to
    // its lane's share of the transfer's request buffers (sshd buffers the replies)...
    expect(runs.length).toBeGreaterThanOrEqual(5);
    // (the last range, 12345 bytes, is one small request: its cap counts buffers of that size)
    for (const st of runs.filter((r) => r.completed > 1)) expect(st.max).toBe(Math.floor(STRIPE_MAX_BUFFER_BYTES / 2 / (255 * 1024)));
    expect(Math.max(...runs.map((st) => st.peak))).toBeGreaterThan(4);
    // ...and a range started after its lane's earlier range ended begins at what that one learned
    expect(Math.max(...runs.map((st) => st.initial))).toBeGreaterThan(4);
    expect(ssh.health().openChannels).toBe(1);
  });

  it("a striped get leaves what its own session's lane learned to the session's next get (which starts there, not at concurrency)", async () => {
    const remote = `${dir}/memo-lanes.bin`;
    fs.writeFileSync(path.join(local, 'memo-src.bin'), content);
    await sftp.put(path.join(local, 'memo-src.bin'), remote, { channels: 1 });
    // a session of its own: no earlier transfer left a memo
    const fresh = new SshClient(clientOptions(info, { reconnect: false, sftpChannelsPersistMs: 0 }, { host: proxy.host, port: proxy.port }));
    const runs: PacingStats[] = [];
    try {
      const s2 = await fresh.sftp();
      const dst = path.join(local, 'memo-lanes.bin');
      engineHooks.onPacing = (_kind, st) => runs.push(st);
      // library defaults: ranges of 8 MiB, each too short (in rounds) to leave a memo by itself
      await s2.get(remote, dst, { channels: 2, channelsMinBytes: MIN });
      const striped = runs.length;
      expect(striped).toBeGreaterThanOrEqual(2);
      // its floor 4: it starts at 4 unless a memo says more (the lanes never end below their 16)
      await s2.get(remote, dst, { channels: 1, concurrency: 4 });
      expect(runs).toHaveLength(striped + 1);
      const single = runs[striped]!;
      expect(single.initial).toBe(4);
      expect(single.start).toBeGreaterThanOrEqual(16);
      expect(sha(fs.readFileSync(dst))).toBe(sha(content));
    } finally {
      engineHooks.onPacing = undefined;
      await fresh.close();
    }
  });

  it('get aborted at 70%: the local file is cut to its complete prefix; resume ends byte-exact', async () => {
    const remote = `${dir}/abort-get.bin`;
    await sftp.put(src, remote, { channels: 1 });
    const dst = path.join(local, 'abort-get.bin');
    const ctl = new AbortController();
    // late enough that range 0 (8 MiB, the first one the client's session takes) is complete:
    // at most 2 ranges per channel are in flight, so 70% done means some ranges are
    const err = await rejection(
      sftp.get(remote, dst, {
        channels: 2,
        channelsMinBytes: MIN,
        signal: ctl.signal,
        onProgress: (p) => {
          if (p.transferredBytes >= SIZE * 0.7) ctl.abort();
        },
      }),
    );
    expect((err as SshError).code).toBe('ERR_SSH_ABORTED');
    expect(ssh.health().openChannels).toBe(1);
    const kept = fs.readFileSync(dst);
    expect(kept.length).toBeLessThan(SIZE);
    expect(sha(kept)).toBe(sha(content.subarray(0, kept.length)));
    expect(kept.length).toBeGreaterThan(0);

    const r = await sftp.get(remote, dst, { channels: 2, channelsMinBytes: MIN, resume: true });
    // (whether the extra channel joined before the client's own session took both ranges of the
    // rest depends on timing: the session starts at what its earlier transfers learned)
    expect(r).toMatchObject({ transferredBytes: SIZE - kept.length, totalBytes: SIZE, resumedFrom: kept.length });
    expect(sha(fs.readFileSync(dst))).toBe(sha(content));
  });

  it('a deadline (ERR_SSH_TIMEOUT) during a striped put: no extra channel left, and what is left is never taken as more than it is', async () => {
    const remote = `${dir}/timeout-put.bin`;
    // the deadline fires half-way (as timeoutMs does: the scope aborts with ERR_SSH_TIMEOUT)
    let armed = false;
    const ctl = new AbortController();
    const err = await rejection(
      sftp.put(src, remote, {
        channels: 4,
        channelsMinBytes: MIN,
        timeoutMs: 60_000,
        signal: ctl.signal,
        onProgress: (p) => {
          if (!armed && p.transferredBytes >= SIZE / 2) {
            armed = true;
            ctl.abort(new SshError('ERR_SSH_TIMEOUT', 'test deadline'));
          }
        },
      }),
    );
    expect((err as SshError).code).toBe('ERR_SSH_TIMEOUT');
    // after a deadline the closes are not awaited (the call rejects on time): they finish soon after
    expect(await waitFor(() => ssh.health().openChannels === 1, 10_000)).toBe(true);
    // Either cut to its prefix, or left at the full size (which resume copies again): never a
    // shorter file with a hole that resume would skip.
    const kept = fs.readFileSync(remote);
    if (kept.length < SIZE) expect(sha(kept)).toBe(sha(content.subarray(0, kept.length)));
    const r = await sftp.put(src, remote, { channels: 4, channelsMinBytes: MIN, resume: true });
    expect(r.resumedFrom).toBe(kept.length < SIZE ? kept.length : 0);
    expect(sha(fs.readFileSync(remote))).toBe(sha(content));
  });

});

describe('extra channels kept for the next striped transfer (sftpChannelsPersistMs), on a slowed link', () => {
  let proxy: FaultProxy;
  let dir: string;
  let remote: string;
  beforeAll(async () => {
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
    proxy.delay(25);
    const c = await connect(info);
    dir = c.dir;
    remote = `${dir}/kept.bin`;
    await c.sftp.put(src, remote, { channels: 1 });
    await c.ssh.close();
  });
  afterAll(async () => {
    const c = await connect(info);
    await c.sftp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    await c.ssh.close();
    await proxy.close();
  });
  const client = (o: { sftpChannelsPersistMs: number; maxSessions?: number }): SshClient =>
    new SshClient(clientOptions(info, { reconnect: false, ...o }, { host: proxy.host, port: proxy.port }));

  it('the next striped get takes the kept channels (none opened), byte-exact; they close once the persist time is over', async () => {
    const ssh = client({ sftpChannelsPersistMs: 1_500 });
    try {
      const sftp = await ssh.sftp();
      await sftp.exists('/x'); // the SFTP session (channel 0) is open
      const dst = path.join(local, 'kept-1.bin');
      const first = await countOpens(ssh, () => sftp.get(remote, dst, { channels: 4, channelsMinBytes: MIN }));
      expect(first.opened).toBe(3);
      expect(sha(fs.readFileSync(dst))).toBe(sha(content));
      // kept: the client's own session and the 3 extra ones
      expect(ssh.health().openChannels).toBe(4);
      const second = await countOpens(ssh, () => sftp.get(remote, dst, { channels: 4, channelsMinBytes: MIN }));
      expect(second.opened).toBe(0);
      expect(second.value.channels).toBeGreaterThanOrEqual(2);
      expect(sha(fs.readFileSync(dst))).toBe(sha(content));
      // a put takes them too (a kept session holds no handle of the get)
      const put = await countOpens(ssh, () => sftp.put(src, `${dir}/kept-put.bin`, { channels: 4, channelsMinBytes: MIN }));
      expect(put.opened).toBe(0);
      expect(sha(fs.readFileSync(`${dir}/kept-put.bin`))).toBe(sha(content));
      expect(ssh.health().openChannels).toBe(4);
      // 1.5 s after the last transfer they are closed
      expect(await waitFor(() => ssh.health().openChannels === 1, 6_000)).toBe(true);
    } finally {
      await ssh.close();
    }
  });

  it('a command waiting for a MaxSessions slot closes the kept channels at once (it never waits out the persist time)', async () => {
    const ssh = client({ sftpChannelsPersistMs: 600_000, maxSessions: 4 });
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'kept-2.bin');
      await sftp.get(remote, dst, { channels: 4, channelsMinBytes: MIN });
      expect(ssh.health().openChannels).toBe(4);
      // all 4 slots held: the exec queues, the kept channels make room
      const r = await ssh.exec('echo made-room', { timeoutMs: 20_000 });
      expect(r.stdout).toBe('made-room\n');
      expect(await waitFor(() => ssh.health().openChannels === 1, 5_000)).toBe(true);
      // nothing kept now: the next striped get opens its channels again, byte-exact
      const again = await countOpens(ssh, () => sftp.get(remote, dst, { channels: 4, channelsMinBytes: MIN }));
      expect(again.opened).toBe(3);
      expect(sha(fs.readFileSync(dst))).toBe(sha(content));
    } finally {
      await ssh.close();
    }
  });

  it('kept sessions joining many transfers gather no listeners (no MaxListenersExceededWarning after 15 striped gets)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      if (w.name === 'MaxListenersExceededWarning') warnings.push(w.message);
    };
    process.on('warning', onWarning);
    // loopback: quick
    const ssh = new SshClient(clientOptions(info, { reconnect: false, sftpChannelsPersistMs: 600_000 }));
    try {
      const sftp = await ssh.sftp();
      const small = content.subarray(0, 6 * MiB + 17);
      const smallRemote = `${dir}/kept-small.bin`;
      await sftp.writeFile(smallRemote, small);
      const dst = path.join(local, 'kept-small.bin');
      let opened = 0;
      for (let i = 0; i < 15; i++) {
        const r = await countOpens(ssh, () => sftp.get(smallRemote, dst, { channels: 4, channelsMinBytes: MIN }));
        opened += r.opened;
        expect(sha(fs.readFileSync(dst)), `get ${i}`).toBe(sha(small));
      }
      // the first get opened the 3 extra channels, the others took them
      expect(opened).toBe(3);
      // warnings are emitted on the next tick
      await new Promise((resolve) => setImmediate(resolve));
      expect(warnings).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await ssh.close();
    }
  });

  it('a striped get that fails (aborted) keeps nothing; closing the SFTP client closes what was kept', async () => {
    const ssh = client({ sftpChannelsPersistMs: 600_000 });
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'kept-3.bin');
      const ctl = new AbortController();
      const err = await rejection(
        sftp.get(remote, dst, {
          channels: 4,
          channelsMinBytes: MIN,
          signal: ctl.signal,
          onProgress: (p) => {
            if (p.transferredBytes >= SIZE / 2) ctl.abort();
          },
        }),
      );
      expect((err as SshError).code).toBe('ERR_SSH_ABORTED');
      expect(ssh.health().openChannels).toBe(1);
      await sftp.get(remote, dst, { channels: 4, channelsMinBytes: MIN });
      expect(ssh.health().openChannels).toBe(4);
      await sftp.close();
      expect(await waitFor(() => ssh.health().openChannels === 0, 5_000)).toBe(true);
    } finally {
      await ssh.close();
    }
  });
});

describe('the link lost mid-way (blackhole through a TCP proxy)', () => {
  let proxy: FaultProxy;
  let links: RawLinkProvider;
  let sftp: BareSftpClient;
  let dir: string;
  beforeAll(async () => {
    proxy = await FaultProxy.start({ host: info.host, port: info.port });
    links = new RawLinkProvider({ ...info, host: proxy.host, port: proxy.port });
    links.onLink((link: Link) => link.client.setNoDelay(true));
    // an SftpClient without the facade: extra channels opened with link.client.sftp()
    sftp = new BareSftpClient(links, { channelsPersistMs: 0 });
    dir = `${info.homeDir}/striped-loss-${randomBytes(4).toString('hex')}`;
    await sftp.mkdir(dir);
  });
  afterAll(async () => {
    proxy.resume();
    await sftp.rm(dir, { recursive: true, force: true }).catch(() => undefined);
    await sftp.close();
    await links.close();
    await proxy.close();
  });

  /** Runs `fn` with a progress callback that blackholes the link once `at` bytes are done. */
  async function lose(fn: (onProgress: (p: { transferredBytes: number }) => void) => Promise<unknown>, at: number): Promise<SshError> {
    let holed = false;
    proxy.delay(25); // slowed: progress reports come many times before the end (resume() undoes it)
    const err = await rejection(
      fn((p) => {
        if (!holed && p.transferredBytes >= at) {
          holed = true;
          proxy.blackhole();
          // a real client's keep-alive declares such a link dead; here the test does
          setTimeout(() => void links.drop(), 300);
        }
      }),
    );
    proxy.resume();
    return err as SshError;
  }

  it('put: the remote file is never left as a shorter file with a hole; resume ends byte-exact', async () => {
    const remote = `${dir}/loss-put.bin`;
    const err = await lose((onProgress) => sftp.put(src, remote, { channels: 4, channelsMinBytes: MIN, onProgress }), SIZE * 0.6);
    expect(err.code).toBe('ERR_SSH_CONNECTION_LOST');
    // nothing could be cut back: the file keeps the source's full size, which resume does not trust
    const kept = fs.readFileSync(remote);
    if (kept.length < SIZE) expect(sha(kept)).toBe(sha(content.subarray(0, kept.length)));
    const r = await sftp.put(src, remote, { channels: 4, channelsMinBytes: MIN, resume: true });
    expect(r.resumedFrom).toBe(kept.length < SIZE ? kept.length : 0);
    expect(sha(fs.readFileSync(remote))).toBe(sha(content));
  });

  it('get: the local file is cut to its complete prefix; resume (sha256) continues from it, byte-exact', async () => {
    const remote = `${dir}/loss-get.bin`;
    await sftp.put(src, remote, { channels: 1 });
    const dst = path.join(local, 'loss-get.bin');
    const err = await lose((onProgress) => sftp.get(remote, dst, { channels: 2, channelsMinBytes: MIN, onProgress }), SIZE * 0.7);
    expect(err.code).toBe('ERR_SSH_CONNECTION_LOST');
    const kept = fs.readFileSync(dst);
    expect(kept.length).toBeLessThan(SIZE);
    expect(sha(kept)).toBe(sha(content.subarray(0, kept.length)));
    const r = await sftp.get(remote, dst, { channels: 2, channelsMinBytes: MIN, resume: { verify: 'sha256' } });
    expect(r.resumedFrom).toBe(kept.length);
    expect(sha(fs.readFileSync(dst))).toBe(sha(content));
  });
});

describe.each([
  [1, 1],
  [3, 3],
])('sshd MaxSessions %i: a 4-channel transfer runs on %i channel(s) without failing', (maxSessions, expected) => {
  let server: SshdHandle;
  let ssh: SshClient;
  let sftp: SftpClient;
  let dir: string;
  beforeAll(async () => {
    server = await startSshd({ extraConfig: [`MaxSessions ${maxSessions}`] });
    ({ ssh, sftp, dir } = await connect(server));
  });
  afterAll(async () => {
    await ssh.close();
    await server.remove();
  });

  it('put and get stay byte-exact, within the budget; no channel is left over', async () => {
    let maxOpen = 0;
    const onProgress = (): void => {
      maxOpen = Math.max(maxOpen, ssh.health().openChannels);
    };
    const remote = `${dir}/big.bin`;
    const put = await sftp.put(src, remote, { channels: 4, channelsMinBytes: MIN, onProgress });
    expect(put).toEqual({ transferredBytes: SIZE, totalBytes: SIZE, resumedFrom: 0, channels: expected });
    expect(sha(fs.readFileSync(remote))).toBe(sha(content));
    // the limiter learned the server's limit from the refusal
    expect(ssh.health().sessionLimit).toBe(maxSessions);
    const dst = path.join(local, `ms${maxSessions}.bin`);
    const get = await sftp.get(remote, dst, { channels: 4, channelsMinBytes: MIN, onProgress });
    expect(get.channels).toBe(expected);
    expect(sha(fs.readFileSync(dst))).toBe(sha(content));
    expect(maxOpen).toBeLessThanOrEqual(maxSessions);
    expect(ssh.health().openChannels).toBe(1);
    // the session budget is whole again: an exec still runs beside the SFTP session
    if (maxSessions > 1) expect((await ssh.exec('echo ok')).stdout).toBe('ok\n');
  });
});

/**
 * A gate the first channel's requests wait at until an extra channel sent its first request
 * (bounded: 10 s), so an extra channel surely takes part however the event loop runs.
 */
function gate(): { open: () => void; wait: <T>(v: T) => Promise<T> } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  const bounded = Promise.race([opened, new Promise<void>((resolve) => setTimeout(resolve, 10_000).unref())]);
  return { open, wait: (v) => bounded.then(() => v) };
}

describe('a hostile server failing one channel', () => {
  const SMALL = 6 * MiB + 777;
  const data = randomBytes(SMALL);
  let server: HostileSftpServer;
  let g = gate();
  const slice = (off: number, len: number): Buffer | 'eof' => (off >= SMALL ? 'eof' : data.subarray(off, off + len));
  beforeAll(async () => {
    // channel 0 is the client's SFTP session (one new client per test), 1 and up the extras
    server = await startHostileSftp({
      node: (p) => {
        if (p === '/fail-read') return { type: 'file', content: data, read: (off, len, ch) => (ch === 0 ? g.wait(slice(off, len)) : (g.open(), 'fail')) };
        // short reads on the extra channels: at most 1000 bytes per reply
        if (p === '/short-read') return { type: 'file', content: data, read: (off, len, ch) => (ch === 0 ? g.wait(slice(off, len)) : (g.open(), slice(off, Math.min(len, 1000)))) };
        if (p === '/fail-write') return { type: 'file', content: Buffer.alloc(0), write: (_off, _len, ch) => (ch === 0 ? g.wait('ok' as const) : ch === 1 ? (g.open(), 'fail') : 'ok') };
        return undefined;
      },
    });
  });
  afterAll(async () => {
    await server.close();
  });

  async function client(): Promise<{ ssh: SshClient; sftp: SftpClient }> {
    g = gate();
    const ssh = new SshClient(server.clientOptions({ sftpChannelsPersistMs: 0 }));
    const sftp = await ssh.sftp();
    await sftp.exists('/x'); // the SFTP session (channel 0) is open
    return { ssh, sftp };
  }

  it('a READ failure on an extra channel fails the get with ERR_SSH_SFTP; every extra channel is closed', async () => {
    const { ssh, sftp } = await client();
    try {
      const err = await rejection(sftp.get('/fail-read', path.join(local, 'fail-read.bin'), { channels: 3, channelsMinBytes: MIN }));
      expect(err).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_SFTP');
      expect(ssh.health().openChannels).toBe(1);
      expect(server.log.sftpChannelsOpen).toBe(1);
    } finally {
      await ssh.close();
    }
  });

  it('short reads on the extra channels: the get still ends byte-exact', async () => {
    const { ssh, sftp } = await client();
    try {
      const dst = path.join(local, 'short.bin');
      const r = await sftp.get('/short-read', dst, { channels: 2, channelsMinBytes: MIN });
      expect(r.channels).toBe(2);
      expect(sha(fs.readFileSync(dst))).toBe(sha(data));
      expect(ssh.health().openChannels).toBe(1);
    } finally {
      await ssh.close();
    }
  });

  it('a WRITE failure on an extra channel fails the put with ERR_SSH_SFTP; every extra channel is closed', async () => {
    const { ssh, sftp } = await client();
    try {
      const srcSmall = path.join(local, 'small-src.bin');
      fs.writeFileSync(srcSmall, data);
      const before = server.log.sftpChannelsOpened;
      const err = await rejection(sftp.put(srcSmall, '/fail-write', { channels: 3, channelsMinBytes: MIN }));
      expect((err as SshError).code).toBe('ERR_SSH_SFTP');
      expect(ssh.health().openChannels).toBe(1);
      expect(server.log.sftpChannelsOpen).toBe(1);
      expect(server.log.sftpChannelsOpened - before).toBe(2);
    } finally {
      await ssh.close();
    }
  });
});

describe('a lane left without ranges takes half of what another lane has not requested yet', () => {
  // 40 MiB over 2 channels: 5 ranges of 8 MiB. The client's own channel (0) gets range 0 and is
  // answered only once the extra channel has read below 8 MiB (bounded: 10 s), so its run keeps
  // 16 requests in flight and ~4 MiB of range 0 unrequested while the extra lane copies
  // ranges 1-4. Without stealing, the extra lane then idles and nothing below 8 MiB is read on it.
  const BIG = 40 * MiB + 4321;
  const data = randomBytes(BIG);
  let server: HostileSftpServer;
  const reads: { off: number; len: number; ch: number }[] = [];
  let g = gate();
  beforeAll(async () => {
    server = await startHostileSftp({
      node: (p) => {
        if (p !== '/steal') return undefined;
        return {
          type: 'file',
          content: data,
          read: (off, len, ch) => {
            reads.push({ off, len, ch });
            const answer = off >= BIG ? ('eof' as const) : data.subarray(off, off + len);
            if (ch === 0) return g.wait(answer);
            if (off < 8 * MiB) g.open();
            return answer;
          },
        };
      },
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('get: the idle extra lane reads part of the main lane\'s range; byte-exact, no channel left', async () => {
    g = gate();
    const ssh = new SshClient(server.clientOptions({ sftpChannelsPersistMs: 0 }));
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'steal.bin');
      const runs: PacingStats[] = [];
      engineHooks.onPacing = (_kind, st) => runs.push(st);
      let r;
      try {
        r = await sftp.get('/steal', dst, { channels: 2, channelsMinBytes: MIN });
      } finally {
        engineHooks.onPacing = undefined;
      }
      expect(r.channels).toBe(2);
      // The extra lane copied the 4321-byte last range (its requests counted in 4321-byte
      // buffers, started from the lane's memo in bytes: ~7x as many) before it took part of
      // range 0: that run starts at the bytes in flight the lane had, not at the tiny run's
      // request count (before: 119 requests of the full size where the lanes ran 16).
      expect(runs.length).toBeGreaterThanOrEqual(6);
      // (on this in-process server the lanes do not grow past the 16 they start with)
      const fromDefault = runs.filter((st) => st.completed > 1 && st.initial === 16);
      const most = Math.max(16, ...fromDefault.map((st) => st.limit));
      for (const st of runs) expect(st.initial).toBeLessThanOrEqual(Math.ceil(most * 1.5));
      expect(sha(fs.readFileSync(dst))).toBe(sha(data));
      const stolen = reads.filter((x) => x.ch !== 0 && x.off < 8 * MiB);
      expect(stolen.length).toBeGreaterThan(0);
      // what was taken is the back of range 0, never a byte the main lane had asked for
      const mainAsked = reads.filter((x) => x.ch === 0 && x.off < 8 * MiB);
      const mainTop = Math.max(...mainAsked.map((x) => x.off + x.len));
      expect(Math.min(...stolen.map((x) => x.off))).toBeGreaterThanOrEqual(mainTop);
      expect(ssh.health().openChannels).toBe(1);
      expect(server.log.sftpChannelsOpen).toBe(1);
    } finally {
      await ssh.close();
    }
  });
});

describe('a get with kept extra channels sends the file\'s OPEN on them with its own', () => {
  const small = randomBytes(6 * MiB + 99);
  it('the kept channels\' OPENs reach the server before the client\'s own OPEN is answered; byte-exact; a small file gives them back', async () => {
    // OPENs of /warm seen on extra channels, and how many when channel 0's OPEN was answered
    let extraOpens = 0;
    let atAnswer = -1;
    let gate = false;
    const server = await startHostileSftp({
      node: (p) => (p === '/warm' ? { type: 'file', content: small } : p === '/tiny' ? { type: 'file', content: Buffer.from('tiny') } : undefined),
      beforeOpen: async (p, ch) => {
        if (p !== '/warm') return;
        if (ch !== 0) {
          extraOpens++;
          return;
        }
        if (!gate) return;
        // the client's own OPEN is answered once the 3 kept channels sent theirs (or after 3 s)
        await waitFor(() => extraOpens >= 3, 3_000);
        atAnswer = extraOpens;
      },
    });
    const ssh = new SshClient(server.clientOptions({ sftpChannelsPersistMs: 600_000 }));
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'warm.bin');
      // cold: opens the 3 extra channels, which are kept
      await sftp.get('/warm', dst, { channels: 4, channelsMinBytes: MIN });
      expect(server.log.sftpChannelsOpened).toBe(4);
      extraOpens = 0;
      gate = true;
      const r = await sftp.get('/warm', dst, { channels: 4, channelsMinBytes: MIN });
      gate = false;
      expect(atAnswer).toBe(3);
      expect(r.channels).toBeGreaterThanOrEqual(2);
      expect(sha(fs.readFileSync(dst))).toBe(sha(small));
      // no channel opened by the warm get
      expect(server.log.sftpChannelsOpened).toBe(4);
      // a file too small to stripe: the kept channels' files are closed and they are kept again
      await sftp.get('/tiny', path.join(local, 'tiny.bin'), { channels: 4, channelsMinBytes: MIN });
      expect(fs.readFileSync(path.join(local, 'tiny.bin')).toString()).toBe('tiny');
      expect(await waitFor(() => server.log.requests.filter((x) => x === 'OPEN /tiny').length === 4 && server.log.requests.filter((x) => x === 'CLOSE').length >= server.log.requests.filter((x) => x.startsWith('OPEN')).length, 5_000)).toBe(true);
      const again = await sftp.get('/warm', dst, { channels: 4, channelsMinBytes: MIN });
      expect(again.channels).toBeGreaterThanOrEqual(2);
      expect(server.log.sftpChannelsOpened).toBe(4);
      expect(ssh.health().openChannels).toBe(4);
    } finally {
      await ssh.close();
      await server.close();
    }
  });
});

describe('a put (and a get, by a STAT sent with its OPEN) opens its extra channels while its own OPEN is on the way', () => {
  let server: HostileSftpServer;
  /** SFTP channels open when the main session's OPEN of `/pre-put` or `/pre-get` was answered. */
  let openAtAnswer = -1;
  /** Whether the main session's OPEN waits for the extra channels. */
  let gateOpens = true;
  // small (the in-process server keeps every write): 4 ranges of 1.5 MiB
  const small = randomBytes(6 * MiB + 321);
  let smallSrc: string;
  beforeAll(async () => {
    smallSrc = path.join(local, 'pre-small.bin');
    fs.writeFileSync(smallSrc, small);
    server = await startHostileSftp({
      node: (p) => (p === '/pre-get' ? { type: 'file', content: small } : undefined),
      beforeOpen: async (p, ch) => {
        if (ch !== 0) return;
        if (p === '/refused-put') {
          // answered once the extras are on their way (bounded), then refused
          await waitFor(() => server.log.sftpChannelsOpen >= 4, 3_000);
          return 'fail';
        }
        if ((p !== '/pre-put' && p !== '/pre-get') || !gateOpens) return;
        // the main OPEN is answered once the 3 extra channels are open (or after 3 s without them)
        await waitFor(() => server.log.sftpChannelsOpen >= 4, 3_000);
        openAtAnswer = server.log.sftpChannelsOpen;
      },
    });
  });
  afterAll(async () => {
    await server.close();
  });

  it('the extra channels are open before the file\'s OPEN is answered, and the put is byte-exact over 4 channels', async () => {
    const ssh = new SshClient(server.clientOptions({ sftpChannelsPersistMs: 0 }));
    try {
      const sftp = await ssh.sftp();
      await sftp.exists('/x'); // the SFTP session (channel 0) is open
      const r = await sftp.put(smallSrc, '/pre-put', { channels: 4, channelsMinBytes: MIN });
      expect(openAtAnswer).toBe(4);
      expect(r.channels).toBeGreaterThanOrEqual(2);
      expect(sha(server.log.writes.get('/pre-put')!)).toBe(sha(small));
      expect(ssh.health().openChannels).toBe(1);
      expect(await waitFor(() => server.log.sftpChannelsOpen === 1, 5_000)).toBe(true);
    } finally {
      await ssh.close();
    }
  });

  it('get: the STAT sent with the OPEN starts the extra channels; they are open before the OPEN is answered; byte-exact', async () => {
    const ssh = new SshClient(server.clientOptions({ sftpChannelsPersistMs: 0 }));
    try {
      const sftp = await ssh.sftp();
      await sftp.exists('/x');
      openAtAnswer = -1;
      const dst = path.join(local, 'pre-get.bin');
      const r = await sftp.get('/pre-get', dst, { channels: 4, channelsMinBytes: MIN });
      expect(openAtAnswer).toBe(4);
      expect(r.channels).toBeGreaterThanOrEqual(2);
      expect(sha(fs.readFileSync(dst))).toBe(sha(small));
      expect(ssh.health().openChannels).toBe(1);
      expect(await waitFor(() => server.log.sftpChannelsOpen === 1, 5_000)).toBe(true);
      // a copy that cannot be striped: its STAT (the early size) opens no extra channel
      gateOpens = false;
      const opened = server.log.sftpChannelsOpened;
      await sftp.get('/pre-get', dst, { channels: 1 });
      gateOpens = true;
      expect(server.log.sftpChannelsOpened).toBe(opened);
      expect(sha(fs.readFileSync(dst))).toBe(sha(small));
    } finally {
      await ssh.close();
    }
  });

  it('get: a server that never answers the STAT sent ahead still gets a complete, striped get (the STAT is never waited for)', async () => {
    const mute = await startHostileSftp({ node: (p) => (p === '/f' ? { type: 'file', content: small } : undefined), statNever: true });
    const ssh = new SshClient(mute.clientOptions({ sftpChannelsPersistMs: 0 }));
    try {
      const sftp = await ssh.sftp();
      const dst = path.join(local, 'mute-stat.bin');
      const r = await sftp.get('/f', dst, { channels: 4, channelsMinBytes: MIN, timeoutMs: 15_000 });
      // striped (how many lanes got a range depends on how fast the extras joined)
      expect(r.channels).toBeGreaterThanOrEqual(2);
      expect(mute.log.sftpChannelsOpened).toBe(4);
      expect(sha(fs.readFileSync(dst))).toBe(sha(small));
      expect(mute.log.requests.some((x) => x.startsWith('STAT'))).toBe(true);
      expect(ssh.health().openChannels).toBe(1);
    } finally {
      await ssh.close();
      await mute.close();
    }
  });

  it('an OPEN that fails closes the extra channels opened ahead: ERR_SSH_SFTP, no channel left', async () => {
    const ssh = new SshClient(server.clientOptions({ sftpChannelsPersistMs: 0 }));
    try {
      const sftp = await ssh.sftp();
      await sftp.exists('/x');
      const before = server.log.sftpChannelsOpened;
      const err = await rejection(sftp.put(smallSrc, '/refused-put', { channels: 4, channelsMinBytes: MIN }));
      expect(err).toBeInstanceOf(SshError);
      expect((err as SshError).code).toBe('ERR_SSH_SFTP');
      // they were opened (ahead), and are closed again
      expect(server.log.sftpChannelsOpened - before).toBe(3);
      expect(ssh.health().openChannels).toBe(1);
      expect(await waitFor(() => server.log.sftpChannelsOpen === 1, 5_000)).toBe(true);
    } finally {
      await ssh.close();
    }
  });
});
