/**
 * SOCKS bad input, issue 6 item 19: raw `net` sockets against a real `SshClient.forwardDynamic()`
 * listener (the client connected to the shared sshd). Every case must end with a clean reply or a
 * close: never a crash, never a socket left open (the forward's `connectionsActive` back to 0, the
 * `health().forwards` counters adding up), and the client stays usable (a good SOCKS CONNECT
 * works afterwards). No `error` listener is attached to the client (item 25, see guard.ts).
 *
 * The handshake bound (`socksHandshakeTimeoutMs`) is not a client option: the slow client (one
 * byte per second) runs against the default, 10 s; it runs concurrently with the other cases, on
 * a forward of its own, so it adds no run time.
 */
import net from 'node:net';
import fc from 'fast-check';
import { SocksClient } from 'socks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, type DynamicForward } from '../../src/index.js';
import { DEFAULTS } from '../../src/options.js';
import { parseGreeting, parseRequest, SocksCommand } from '../../src/forward/socks5.js';
import { sharedSshd } from '../helpers/shared.js';
import { clientOptions, waitFor } from '../helpers/client.js';
import { echoServer } from '../integration/forward-util.js';
import { reliabilitySuite } from './guard.js';
import { sleep } from './util.js';

const suite = reliabilitySuite('SOCKS bad input (item 19)');
const info = sharedSshd();
const HANDSHAKE_BOUND_MS = DEFAULTS.forward.socksHandshakeTimeoutMs;
/** How long a bad-input connection may stay open after the client's last byte (not the handshake bound). */
const CLOSE_BOUND_MS = 3_000;

let ssh: SshClient;
let echo: Awaited<ReturnType<typeof echoServer>>;
beforeAll(async () => {
  echo = await echoServer();
  ssh = new SshClient(clientOptions(info, { reconnect: false }));
  await ssh.connect();
});
afterAll(async () => {
  await ssh.close();
  await echo.close();
});

/** What one raw connection saw. */
interface Outcome {
  /** Every byte the server sent. */
  received: Buffer;
  /** The socket closed within the bound. */
  closed: boolean;
  /** The error code seen, if any (ECONNRESET, EPIPE). */
  error: string | undefined;
}

/**
 * Connects to the SOCKS listener, sends `chunks` (each after the previous one was written), then
 * ends the socket the way `finish` says: `'end'` (FIN: the client is done sending), `'destroy'`
 * (close at once) or `'wait'` (keep sending nothing, wait for the server). Resolves when the
 * socket is closed, or after `boundMs` (then `closed` is false and the socket is destroyed).
 */
function rawSocks(port: number, chunks: Buffer[], finish: 'end' | 'destroy' | 'wait', boundMs = CLOSE_BOUND_MS): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const parts: Buffer[] = [];
    let error: string | undefined;
    let timer: NodeJS.Timeout | undefined;
    const done = (closed: boolean): void => {
      clearTimeout(timer);
      resolve({ received: Buffer.concat(parts), closed, error });
    };
    sock.on('data', (c: Buffer) => parts.push(c));
    sock.on('error', (e: NodeJS.ErrnoException) => (error = e.code ?? e.message));
    sock.on('close', () => done(true));
    sock.once('connect', () => {
      void (async () => {
        for (const c of chunks) {
          if (sock.destroyed) return;
          await new Promise<void>((r) => sock.write(c, () => r()));
        }
        timer = setTimeout(() => {
          sock.removeAllListeners('close');
          sock.destroy();
          done(false);
        }, boundMs);
        if (finish === 'end') sock.end();
        else if (finish === 'destroy') sock.destroy();
      })();
    });
  });
}

/** A SOCKS5 request `VER CMD RSV ATYP ADDR PORT` for an IPv4 address. */
function request(cmd: number, port: number, atyp = 1, addr: number[] = [127, 0, 0, 1]): Buffer {
  return Buffer.from([5, cmd, 0, atyp, ...addr, port >> 8, port & 255]);
}
const GREETING = Buffer.from([5, 1, 0]);
const METHOD_NO_AUTH = Buffer.from([5, 0]);
/** A reply with code `rep` and bound address 0.0.0.0:0 (what the forward sends). */
const reply = (rep: number): Buffer => Buffer.from([5, rep, 0, 1, 0, 0, 0, 0, 0, 0]);

/** A good CONNECT through `fwd` to the echo server, with the `socks` npm client. */
async function goodRequest(fwd: DynamicForward, msg: string): Promise<string> {
  const { socket } = await SocksClient.createConnection({
    proxy: { host: fwd.localHost, port: fwd.localPort, type: 5 },
    command: 'connect',
    destination: { host: '127.0.0.1', port: echo.port },
    timeout: 10_000,
  });
  try {
    return await new Promise<string>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`echo timed out, got '${out}'`)), 10_000);
      socket.on('error', reject);
      socket.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.length >= msg.length) {
          clearTimeout(t);
          resolve(out);
        }
      });
      socket.write(msg);
    });
  } finally {
    socket.destroy();
  }
}

/** The forward's entry in `health().forwards`. */
function healthOf(fwd: DynamicForward): { connectionsTotal: number; connectionsActive: number; bytesIn: number; bytesOut: number } | undefined {
  return ssh.health().forwards.find((f) => f.id === `D:${fwd.localHost}:${fwd.localPort}`);
}

/** Waits until the forward has no open connection, then checks its counters. */
async function expectSettled(fwd: DynamicForward, total: number, goodOnes: number): Promise<void> {
  expect(await waitFor(() => fwd.stats().connectionsActive === 0, 5_000)).toBe(true);
  const h = healthOf(fwd);
  expect(h).toBeDefined();
  expect(h!.connectionsActive).toBe(0);
  expect(h!.connectionsTotal).toBe(total);
  // handshake bytes are not counted: only the good requests moved payload
  if (goodOnes === 0) expect([h!.bytesIn, h!.bytesOut]).toEqual([0, 0]);
  expect(ssh.state).toBe('ready');
  expect(ssh.health().disconnects).toBe(0);
}

describe('item 19: SOCKS bad input against a real forwardDynamic listener', () => {
  it.concurrent(`one byte per second: closed at the handshake bound (${HANDSHAKE_BOUND_MS} ms, the default), no reply beyond the method selection`, async ({ expect }) => {
    const fwd = await ssh.forwardDynamic();
    try {
      // a valid greeting + CONNECT by name (32 bytes): the bound runs out long before the last byte
      const name = Buffer.from('slow-handshake.invalid');
      const bytes = Buffer.concat([GREETING, Buffer.from([5, SocksCommand.CONNECT, 0, 3, name.length]), name, Buffer.from([echo.port >> 8, echo.port & 255])]);
      const sock = net.connect({ host: '127.0.0.1', port: fwd.localPort });
      const parts: Buffer[] = [];
      let sent = 0;
      sock.on('data', (c: Buffer) => parts.push(c));
      sock.on('error', () => undefined);
      await new Promise<void>((r) => sock.once('connect', () => r()));
      const t0 = Date.now();
      const closed = new Promise<number>((r) => sock.once('close', () => r(Date.now() - t0)));
      let closedAfter: number | undefined;
      void closed.then((ms) => (closedAfter = ms));
      while (sent < bytes.length && closedAfter === undefined && Date.now() - t0 < HANDSHAKE_BOUND_MS + 5_000) {
        sock.write(bytes.subarray(sent, sent + 1));
        sent++;
        await Promise.race([sleep(1_000), closed]);
      }
      const ms = await Promise.race([closed, sleep(5_000).then(() => -1)]);
      sock.destroy();
      expect(ms, 'the slow connection was closed').toBeGreaterThan(0);
      expect(sent, 'closed before the request was complete').toBeLessThan(bytes.length);
      // the greeting (3 s) was answered, the request never
      expect(Buffer.concat(parts)).toEqual(METHOD_NO_AUTH);
      suite.figure(`item 19: slow handshake (1 byte/s) closed after (bound ${HANDSHAKE_BOUND_MS} ms)`, `${ms} ms, ${sent} of ${bytes.length} bytes sent`);
      await expectSettled(fwd, 1, 0);
      expect(await goodRequest(fwd, 'slow:after')).toBe('slow:after');
    } finally {
      await fwd.close();
    }
  }, HANDSHAKE_BOUND_MS + 20_000);

  it.concurrent('truncated greetings and requests, SOCKS4, BIND, UDP ASSOCIATE, unknown address types: a clean reply or a close, nothing left open', async ({ expect }) => {
    const fwd = await ssh.forwardDynamic();
    try {
      let n = 0;
      const run = async (chunks: Buffer[], finish: 'end' | 'destroy' | 'wait'): Promise<Outcome> => {
        n++;
        return rawSocks(fwd.localPort, chunks, finish);
      };
      // truncated, then the client closes: FIN (done sending) or an immediate close
      for (const finish of ['end', 'destroy'] as const) {
        for (const truncated of [
          [Buffer.from([5])],
          [Buffer.from([5, 2, 0])], // two methods announced, one sent
          [GREETING, Buffer.from([5, 1, 0])],
          [GREETING, Buffer.from([5, 1, 0, 1, 127, 0])],
          [GREETING, Buffer.from([5, 1, 0, 3, 20, 0x61, 0x62])], // domain name cut short
          [GREETING, Buffer.from([5, 1, 0, 4, 0, 0, 0, 0])], // IPv6 cut short
        ]) {
          const o = await run(truncated, finish);
          if (finish === 'end') {
            expect(o.closed, `truncated ${Buffer.concat(truncated).toString('hex')} then FIN: closed`).toBe(true);
            // the greeting may have been answered; nothing else
            expect([Buffer.alloc(0), METHOD_NO_AUTH].map((b) => b.toString('hex'))).toContain(o.received.toString('hex'));
          }
        }
      }
      // SOCKS4 CONNECT (04 01 port ip userid NUL): not version 5, closed without a reply
      for (const finish of ['wait', 'end'] as const) {
        const o = await run([Buffer.from([4, 1, echo.port >> 8, echo.port & 255, 127, 0, 0, 1, 0x75, 0])], finish);
        expect(o.closed).toBe(true);
        expect(o.received.length).toBe(0);
      }
      // version 5 offering no method, or only username/password (not configured): 05 FF or a close
      for (const bytes of [Buffer.from([5, 0]), Buffer.from([5, 1, 2])]) {
        const o = await run([bytes], 'wait');
        expect(o.closed).toBe(true);
        expect(['', '05ff']).toContain(o.received.toString('hex'));
      }
      // BIND and UDP ASSOCIATE -> 0x07; unknown address types -> 0x08; each then closed
      const cases: [string, Buffer, number][] = [
        ['BIND', request(SocksCommand.BIND, echo.port), 0x07],
        ['UDP ASSOCIATE', request(SocksCommand.UDP_ASSOCIATE, 0), 0x07],
        ['command 0', request(0, echo.port), 0x07],
        ['command 0xff', request(0xff, echo.port), 0x07],
        ['address type 0', request(SocksCommand.CONNECT, echo.port, 0), 0x08],
        ['address type 2', request(SocksCommand.CONNECT, echo.port, 2), 0x08],
        ['address type 5', request(SocksCommand.CONNECT, echo.port, 5), 0x08],
        ['address type 0xff', request(SocksCommand.CONNECT, echo.port, 0xff), 0x08],
      ];
      for (const [name, req, code] of cases) {
        for (const split of [false, true]) {
          // in one write, or greeting and request separately
          const o = await run(split ? [GREETING, req] : [Buffer.concat([GREETING, req])], 'wait');
          expect(o.closed, `${name}: closed`).toBe(true);
          expect(o.received.toString('hex'), name).toBe(Buffer.concat([METHOD_NO_AUTH, reply(code)]).toString('hex'));
        }
      }
      // a request version other than 5, and an empty domain name (-> 0x01)
      const badVer = await run([GREETING, Buffer.from([4, 1, 0, 1, 127, 0, 0, 1, 0, 80])], 'wait');
      expect(badVer.closed).toBe(true);
      expect(badVer.received.toString('hex')).toBe(METHOD_NO_AUTH.toString('hex'));
      const emptyName = await run([GREETING, Buffer.from([5, 1, 0, 3, 0, 0, 80])], 'wait');
      expect(emptyName.closed).toBe(true);
      expect(emptyName.received.toString('hex')).toBe(Buffer.concat([METHOD_NO_AUTH, reply(0x01)]).toString('hex'));
      // more than 1 KiB of handshake (a greeting announcing 255 methods, then junk)
      const long = await run([Buffer.concat([Buffer.from([5, 255]), Buffer.alloc(255, 1), Buffer.alloc(2048, 0x41)])], 'wait');
      expect(long.closed).toBe(true);
      suite.figure('item 19: scripted bad-input connections', n);
      await expectSettled(fwd, n, 0);
      expect(await goodRequest(fwd, 'scripted:after')).toBe('scripted:after');
      await expectSettled(fwd, n + 1, 1);
    } finally {
      await fwd.close();
    }
  }, 60_000);

  it.concurrent('random garbage (fast-check, 200 runs): a clean reply or a close, never a success, nothing left open; the client stays usable', async ({ expect }) => {
    const fwd = await ssh.forwardDynamic();
    try {
      const byte = fc.integer({ min: 0, max: 255 });
      const bytes = (max: number): fc.Arbitrary<number[]> => fc.array(byte, { maxLength: max });
      const notConnect = fc.integer({ min: 0, max: 255 }).filter((c) => c !== SocksCommand.CONNECT);
      // mostly protocol-shaped, so the parsers are reached at every depth
      const input = fc.oneof(
        bytes(64),
        fc.tuple(fc.integer({ min: 0, max: 255 }), bytes(300)).map(([n, rest]) => [5, n, ...rest]),
        fc.tuple(bytes(40)).map(([rest]) => [5, 1, 0, ...rest]),
        fc.tuple(notConnect, byte, fc.oneof(fc.constantFrom(1, 3, 4), byte), bytes(40)).map(([cmd, rsv, atyp, rest]) => [5, 1, 0, 5, cmd, rsv, atyp, ...rest]),
        fc.tuple(byte, bytes(30)).map(([atyp, rest]) => [5, 1, 0, 5, 1, 0, atyp === 1 || atyp === 3 || atyp === 4 ? 0x09 : atyp, ...rest]),
      );
      const finish = fc.constantFrom<'end' | 'destroy' | 'wait'>('end', 'destroy', 'wait');
      const split = fc.integer({ min: 0, max: 400 });
      const replies = new Map<string, number>();
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(input, finish, split, async (arr, how, cut) => {
          const buf = Buffer.from(arr);
          // a complete CONNECT would go out through sshd to a random address: not garbage
          const g = parseGreeting(buf);
          if (g.status === 'ok' && g.value.includes(0)) {
            const r = parseRequest(buf.subarray(g.consumed));
            fc.pre(!(r.status === 'ok' && r.value.command === SocksCommand.CONNECT));
          }
          // 'wait' only where the server has a reason to answer or close (else it waits for the bound)
          const complete = g.status !== 'incomplete' && (g.status === 'error' || !g.value.includes(0) || parseRequest(buf.subarray(g.consumed)).status !== 'incomplete');
          const mode = how === 'wait' && !complete ? 'end' : how;
          runs++;
          const at = Math.min(cut, buf.length);
          const chunks = [buf.subarray(0, at), buf.subarray(at)].filter((c) => c.length > 0);
          const o = await rawSocks(fwd.localPort, chunks, mode);
          if (mode !== 'destroy') expect(o.closed, `input ${buf.toString('hex')} (${mode}): closed`).toBe(true);
          // what came back: nothing, the method selection, a refusal, and at most one failure reply
          const hex = o.received.toString('hex');
          expect(hex, `input ${buf.toString('hex')}`).toMatch(/^(|05ff|0500|0500050[1-8]0001000000000000)$/);
          const key = hex === '' ? 'nothing' : hex.length <= 4 ? hex : `0500+reply 0x${hex.slice(6, 8)}`;
          replies.set(key, (replies.get(key) ?? 0) + 1);
        }),
        { numRuns: 200 },
      );
      suite.figure('item 19: fast-check garbage runs (each its own connection)', runs);
      suite.figure('item 19: what the garbage got back', [...replies].map(([k, v]) => `${k}: ${v}`).join(', '));
      await expectSettled(fwd, runs, 0);
      expect(fwd.rejectedConnections).toBe(0);
      expect(await goodRequest(fwd, 'garbage:after')).toBe('garbage:after');
      await expectSettled(fwd, runs + 1, 1);
    } finally {
      await fwd.close();
    }
  }, 60_000);
});

describe('after the bad input', () => {
  it('the client is usable: a new dynamic forward carries a good CONNECT, exec works, no forward is left behind', async () => {
    expect(ssh.health().forwards).toEqual([]);
    const fwd = await ssh.forwardDynamic();
    expect(await goodRequest(fwd, 'final')).toBe('final');
    await expectSettled(fwd, 1, 1);
    await fwd.close();
    expect((await ssh.exec('echo fine')).stdout).toBe('fine\n');
    expect(ssh.health().disconnects).toBe(0);
  });
});
