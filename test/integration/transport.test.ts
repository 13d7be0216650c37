// SshTransport (issue 12 §1, §4): one SSH connection opened one way, against the real sshd.
import { afterEach, describe, expect, it } from 'vitest';
import { CORK_BULK_BYTES, SshTransport } from '../../src/connection/transport.js';
import type { Clock } from '../../src/connection/keepalive.js';
import { resolveOptions, type ResolvedOptions } from '../../src/options.js';
import { createHostVerifier } from '../../src/known-hosts/index.js';
import { SshError } from '../../src/errors.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';

const info = sharedSshd();
const open: SshTransport[] = [];
afterEach(() => {
  for (const t of open.splice(0)) t.destroy(new SshError('ERR_SSH_CLOSED', 'test done'));
});

function settings(over: Parameters<typeof clientOptions>[1] = {}): ResolvedOptions {
  return resolveOptions(clientOptions(info, over));
}

function knownHostsCheck(o: ResolvedOptions) {
  return createHostVerifier({ host: o.host, port: o.port, knownHostsFiles: o.knownHostsFiles, globalKnownHostsFiles: [], strictHostKeyChecking: 'yes' });
}

async function openTransport(o: ResolvedOptions, extra: Partial<Parameters<typeof SshTransport.open>[1]> = {}): Promise<SshTransport> {
  const t = await SshTransport.open(o, { hostKeyCheck: knownHostsCheck(o), signal: new AbortController().signal, ...extra });
  open.push(t);
  return t;
}

/** A clock the test moves by hand. */
function manualClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  let id = 0;
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.set(++id, { at: now + ms, fn });
      return id;
    },
    clearTimeout: (h) => {
      timers.delete(h as number);
    },
    advance(ms: number) {
      now += ms;
      for (const [k, t] of [...timers].sort((a, b) => a[1].at - b[1].at)) {
        if (t.at > now || !timers.has(k)) continue;
        timers.delete(k);
        t.fn();
      }
    },
  };
}

function execEcho(t: SshTransport, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    t.client.exec(`echo ${text}`, (err, ch) => {
      if (err) return reject(err);
      let out = '';
      ch.on('data', (d: Buffer) => (out += d.toString()));
      ch.stderr.resume();
      ch.on('close', () => resolve(out.trim()));
    });
  });
}

describe('SshTransport', () => {
  it('opens, authenticates, carries a command; counts bytes both ways; end() aborts its signal and closes the connection', async () => {
    const t = await openTransport(settings());
    expect(await execEcho(t, 'transport-ok')).toBe('transport-ok');
    expect(t.bytesIn).toBeGreaterThan(0);
    expect(t.bytesOut).toBeGreaterThan(0);
    expect(t.signal.aborted).toBe(false);
    let closed = false;
    t.client.once('close', () => (closed = true));
    await t.end(1_000);
    expect(t.signal.reason).toMatchObject({ code: 'ERR_SSH_CLOSED' });
    expect(closed).toBe(true);
    expect(t.sock.destroyed).toBe(true);
  });

  it('the server closing the connection aborts the signal with ERR_SSH_CONNECTION_LOST', async () => {
    const t = await openTransport(settings());
    // Our FIN under ssh2's feet: sshd answers by closing the connection.
    t.sock.end();
    expect(await waitFor(() => t.signal.aborted, 5_000)).toBe(true);
    expect(t.signal.reason).toMatchObject({ code: 'ERR_SSH_CONNECTION_LOST' });
    expect(t.cause?.code).toBe('ERR_SSH_CONNECTION_LOST');
  });

  it('§4: a keep-alive probe that cannot be sent kills the transport visibly, with that cause', async () => {
    const clock = manualClock();
    const t = await openTransport(settings({ keepaliveIntervalMs: 1_000, keepaliveCountMax: 3 }), { clock });
    // Our side can no longer write (half-closed); the next probe cannot go out.
    t.sock.end();
    clock.advance(1_000);
    expect(t.signal.aborted).toBe(true);
    expect(t.cause?.code).toBe('ERR_SSH_CONNECTION_LOST');
    expect(t.cause?.message).toMatch(/keep-alive probe not sent: the connection is no longer writable/);
    expect(t.signal.reason).toBe(t.cause);
    expect(t.sock.destroyed).toBe(true);
  });

  it('unanswered probes: ERR_SSH_KEEPALIVE_TIMEOUT is the cause, the signal reason ERR_SSH_CONNECTION_LOST', async () => {
    const clock = manualClock();
    const t = await openTransport(settings({ keepaliveIntervalMs: 1_000, keepaliveCountMax: 2 }), { clock, label: 'jump host "x"' });
    // Probes go out but their answers are not counted before the clock says the link is dead.
    clock.advance(1_000);
    clock.advance(1_000);
    clock.advance(1_000);
    expect(t.signal.aborted).toBe(true);
    expect(t.cause?.code).toBe('ERR_SSH_KEEPALIVE_TIMEOUT');
    expect(t.cause?.message).toContain('jump host "x"');
    expect(t.signal.reason).toMatchObject({ code: 'ERR_SSH_CONNECTION_LOST', cause: t.cause });
  });

  it('host key: the tested toSsh2HostVerifier is the production path (unknown key; a foreign rejection becomes a non-retryable ERR_SSH_HANDSHAKE)', async () => {
    const o = settings();
    const unknown = createHostVerifier({ host: o.host, port: o.port, knownHostsFiles: [], globalKnownHostsFiles: [], strictHostKeyChecking: 'yes' });
    await expect(SshTransport.open(o, { hostKeyCheck: unknown, signal: new AbortController().signal })).rejects.toMatchObject({ code: 'ERR_SSH_HOST_KEY_UNKNOWN' });
    const err = (await SshTransport.open(o, { hostKeyCheck: () => Promise.reject(new TypeError('boom')), signal: new AbortController().signal }).catch((e: unknown) => e)) as SshError;
    expect(err.code).toBe('ERR_SSH_HANDSHAKE');
    expect(err.retryable).toBe(false);
    expect(err.message).toMatch(/host key verification failed: boom/);
  });

  it('aborting the signal while opening rejects with its reason and leaves nothing open', async () => {
    const ctl = new AbortController();
    const reason = new SshError('ERR_SSH_CLOSED', 'closed while connecting (test)');
    const p = SshTransport.open(settings(), {
      hostKeyCheck: async () => {
        ctl.abort(reason);
        await new Promise((r) => setTimeout(r, 10));
      },
      signal: ctl.signal,
    });
    await expect(p).rejects.toBe(reason);
  });
});

type SpiedSocket = import('node:net').Socket & {
  _write: (chunk: Buffer, enc: unknown, cb: (err?: Error | null) => void) => void;
  _writev: (chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void) => void;
};

/** Records every write the socket makes (one `_write`/`_writev` each): packets and bytes. */
function spyWrites(t: SshTransport): { packets: number; bytes: number }[] {
  const sock = t.sock as SpiedSocket;
  const writes: { packets: number; bytes: number }[] = [];
  const w1 = sock._write.bind(sock);
  const wv = sock._writev.bind(sock);
  sock._write = (chunk, enc, cb): void => {
    writes.push({ packets: 1, bytes: chunk.length });
    w1(chunk, enc, cb);
  };
  sock._writev = (chunks, cb): void => {
    let bytes = 0;
    for (const c of chunks as { chunk: Buffer }[]) bytes += c.chunk.length;
    writes.push({ packets: chunks.length, bytes });
    wv(chunks, cb);
  };
  return writes;
}

describe('packets written in one turn of the event loop', () => {
  it('reach the socket as one write (writev), not one write each; every channel still opens', async () => {
    const o = settings();
    const t = await openTransport(o);
    const spied = spyWrites(t);
    // eight CHANNEL_OPENs (and later their requests) written by ssh2 in one turn
    const outs = await Promise.all(Array.from({ length: 8 }, (_, i) => execEcho(t, `w${i}`)));
    expect(outs.map((s) => s.trim())).toEqual(Array.from({ length: 8 }, (_, i) => `w${i}`));
    const writes = spied.map((w) => w.packets);
    // the first kernel write carried all eight opens
    expect(writes[0]).toBe(8);
    expect(writes.length).toBeLessThan(8 * 3);
  });

  it('data packets are never held: each goes to the socket at once, not a window in one write; all of it arrives', async () => {
    const o = settings();
    const t = await openTransport(o);
    const payload = Buffer.alloc(1024 * 1024, 0x61);
    const got = await new Promise<string>((resolve, reject) => {
      t.client.exec('wc -c', (err, ch) => {
        if (err) return reject(err);
        let out = '';
        ch.on('data', (d: Buffer) => (out += d.toString()));
        ch.on('close', () => resolve(out.trim()));
        const writes = spyWrites(t);
        // 1 MiB in one turn: 32 data packets of 32 KiB (sshd's session window is 2 MiB)
        ch.end(payload);
        setImmediate(() => {
          try {
            const big = writes.filter((w) => w.bytes >= CORK_BULK_BYTES);
            expect(big.length).toBeGreaterThanOrEqual(32);
            for (const w of big) expect(w.packets).toBe(1);
            expect(big.reduce((n, w) => n + w.bytes, 0)).toBeGreaterThan(payload.length);
          } catch (e) {
            reject(e instanceof Error ? e : new Error(String(e)));
          }
        });
      });
    });
    expect(got).toBe(String(payload.length));
  });
});
