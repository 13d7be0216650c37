// The SOCKS5 byte protocol (RFC 1928 / RFC 1929) of src/forward/socks5.ts: pure parsers and
// encoders, then the server-side handshake over real loopback sockets (no SSH involved).
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { SocksClient } from 'socks';
import { SshChannelOpenError, SshError } from '../../src/errors.js';
import {
  acceptSocks5,
  encodeReply,
  formatIPv6,
  parseGreeting,
  parseRequest,
  parseUserPass,
  replyForChannelError,
  SocksReply,
  type Socks5AcceptOptions,
  type Socks5Pending,
} from '../../src/forward/socks5.js';

const b = (...bytes: number[]): Buffer => Buffer.from(bytes);

describe('parseGreeting', () => {
  it('parses the offered methods and waits for more bytes', () => {
    expect(parseGreeting(b())).toEqual({ status: 'incomplete' });
    expect(parseGreeting(b(5))).toEqual({ status: 'incomplete' });
    expect(parseGreeting(b(5, 2, 0))).toEqual({ status: 'incomplete' });
    expect(parseGreeting(b(5, 2, 0, 2, 9))).toEqual({ status: 'ok', value: [0, 2], consumed: 4 });
  });
  it('rejects another version and an empty method list', () => {
    expect(parseGreeting(b(4, 1, 0)).status).toBe('error');
    expect(parseGreeting(b(5, 0)).status).toBe('error');
  });
});

describe('parseUserPass', () => {
  it('parses RFC 1929 credentials', () => {
    const msg = Buffer.concat([b(1, 3), Buffer.from('bob'), b(2), Buffer.from('pw')]);
    for (let i = 0; i < msg.length; i++) expect(parseUserPass(msg.subarray(0, i)).status).toBe('incomplete');
    const r = parseUserPass(msg);
    expect(r.status).toBe('ok');
    if (r.status !== 'ok') return;
    expect(r.value.username.toString()).toBe('bob');
    expect(r.value.password.toString()).toBe('pw');
    expect(r.consumed).toBe(msg.length);
  });
  it('accepts an empty password, rejects a wrong version and an empty username', () => {
    expect(parseUserPass(b(1, 1, 0x61, 0)).status).toBe('ok');
    expect(parseUserPass(b(5, 1, 0x61, 0)).status).toBe('error');
    expect(parseUserPass(b(1, 0, 0)).status).toBe('error');
  });
});

describe('parseRequest', () => {
  it('parses IPv4, domain and IPv6 CONNECT requests', () => {
    expect(parseRequest(b(5, 1, 0, 1, 127, 0, 0, 1, 0x1f, 0x90))).toEqual({
      status: 'ok',
      value: { command: 1, addressType: 'ipv4', host: '127.0.0.1', port: 8080 },
      consumed: 10,
    });
    const dom = Buffer.concat([b(5, 1, 0, 3, 9), Buffer.from('localhost'), b(0, 80)]);
    expect(parseRequest(dom)).toEqual({ status: 'ok', value: { command: 1, addressType: 'domain', host: 'localhost', port: 80 }, consumed: dom.length });
    const v6 = Buffer.concat([b(5, 1, 0, 4), Buffer.alloc(15), b(1), b(1, 0xbb)]);
    expect(parseRequest(v6)).toEqual({ status: 'ok', value: { command: 1, addressType: 'ipv6', host: '::1', port: 443 }, consumed: 22 });
  });
  it('waits for a whole request', () => {
    const full = Buffer.concat([b(5, 1, 0, 3, 4), Buffer.from('host'), b(0, 80)]);
    for (let i = 0; i < full.length; i++) expect(parseRequest(full.subarray(0, i)).status).toBe('incomplete');
  });
  it('returns BIND and UDP ASSOCIATE for the caller to refuse', () => {
    const r = parseRequest(b(5, 2, 0, 1, 1, 2, 3, 4, 0, 1));
    expect(r.status === 'ok' && r.value.command).toBe(2);
  });
  it('flags an unknown address type with reply 0x08 and a wrong version as an error', () => {
    expect(parseRequest(b(5, 1, 0, 9, 0, 0))).toMatchObject({ status: 'error', reply: 0x08 });
    expect(parseRequest(b(4, 1, 0, 1, 1, 2, 3, 4, 0, 1)).status).toBe('error');
    expect(parseRequest(b(5, 1, 0, 3, 0, 0, 80)).status).toBe('error');
  });
});

describe('formatIPv6 / encodeReply', () => {
  it('formats IPv6 per RFC 5952', () => {
    const hex = (s: string): Buffer => Buffer.from(s.replace(/:/g, ''), 'hex');
    expect(formatIPv6(hex('2001:0db8:0000:0000:0000:0000:0002:0001'))).toBe('2001:db8::2:1');
    expect(formatIPv6(Buffer.alloc(16))).toBe('::');
    expect(formatIPv6(hex('2001:0db8:0000:0001:0001:0001:0001:0001'))).toBe('2001:db8:0:1:1:1:1:1');
    expect(formatIPv6(hex('2001:0000:0000:0001:0000:0000:0000:0001'))).toBe('2001:0:0:1::1');
  });
  it('encodes replies with IPv4, IPv6 and domain bound addresses', () => {
    expect([...encodeReply(SocksReply.SUCCEEDED)]).toEqual([5, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    expect([...encodeReply(SocksReply.CONNECTION_REFUSED, { host: '10.1.2.3', port: 258 })]).toEqual([5, 5, 0, 1, 10, 1, 2, 3, 1, 2]);
    expect([...encodeReply(SocksReply.SUCCEEDED, { host: '::1', port: 1 })]).toEqual([5, 0, 0, 4, ...new Array<number>(15).fill(0), 1, 0, 1]);
    expect([...encodeReply(SocksReply.SUCCEEDED, { host: 'ab', port: 1 })]).toEqual([5, 0, 0, 3, 2, 0x61, 0x62, 0, 1]);
    // Round trip of a non-trivial IPv6 address through the request parser.
    const rep = encodeReply(SocksReply.SUCCEEDED, { host: '2001:db8::2:1', port: 7 });
    expect(parseRequest(rep)).toMatchObject({ status: 'ok', value: { host: '2001:db8::2:1', port: 7 } });
  });
});

describe('replyForChannelError', () => {
  it('maps RFC 4254 channel-open failures to SOCKS replies', () => {
    const chan = (reason: number, description: string): SshChannelOpenError =>
      new SshChannelOpenError(`channel open failed: (SSH) Channel open failure: ${description}`, { reason });
    expect(replyForChannelError(chan(1, 'administratively prohibited: open failed'))).toBe(0x02);
    expect(replyForChannelError(chan(2, 'Connection refused'))).toBe(0x05);
    expect(replyForChannelError(chan(2, 'Network is unreachable'))).toBe(0x03);
    expect(replyForChannelError(chan(2, 'No route to host'))).toBe(0x04);
    expect(replyForChannelError(chan(2, 'getaddrinfo: Name or service not known'))).toBe(0x04);
    expect(replyForChannelError(chan(3, 'unknown channel type'))).toBe(0x07);
    expect(replyForChannelError(chan(4, 'resource shortage'))).toBe(0x01);
    expect(replyForChannelError(new SshError('ERR_SSH_CONNECTION_LOST', 'lost'))).toBe(0x01);
  });
});

// ------------------------------------------------------------------------------------------
// The handshake over real sockets.

const servers: net.Server[] = [];
const accepted: net.Socket[] = [];
afterEach(async () => {
  for (const s of accepted.splice(0)) s.destroy();
  await Promise.all(servers.splice(0).map((s) => new Promise<void>((r) => s.close(() => r()))));
});

interface Harness {
  port: number;
  /** Outcome of the server side of each accepted connection. */
  results: Promise<Socks5Pending | SshError>[];
  /** The accepted server-side sockets. */
  sockets: net.Socket[];
}

async function socksServer(options: Socks5AcceptOptions, onPending?: (sock: net.Socket, p: Socks5Pending) => void): Promise<Harness> {
  const h: Harness = { port: 0, results: [], sockets: [] };
  const server = net.createServer({ allowHalfOpen: true }, (sock) => {
    h.sockets.push(sock);
    accepted.push(sock);
    sock.on('error', () => undefined);
    h.results.push(
      acceptSocks5(sock, options).then(
        (p) => {
          onPending?.(sock, p);
          return p;
        },
        (e: unknown) => e as SshError,
      ),
    );
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  h.port = (server.address() as net.AddressInfo).port;
  return h;
}

/** Connects, writes `bytes`, and collects everything until the server closes (bounded). */
function exchange(port: number, bytes: Buffer, waitMs = 3_000): Promise<{ data: Buffer; closed: boolean }> {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let closed = false;
    sock.on('error', () => undefined);
    sock.on('data', (c: Buffer) => chunks.push(c));
    sock.on('close', () => {
      closed = true;
      clearTimeout(t);
      resolve({ data: Buffer.concat(chunks), closed });
    });
    const t = setTimeout(() => {
      sock.destroy();
      resolve({ data: Buffer.concat(chunks), closed });
    }, waitMs);
    sock.write(bytes);
  });
}

const until = async (h: Harness, n = 1): Promise<void> => {
  for (let i = 0; i < 200 && h.results.length < n; i++) await new Promise((r) => setTimeout(r, 10));
};

describe('acceptSocks5', () => {
  it('negotiates with the socks npm client (no auth) and hands over the request and optimistic data', async () => {
    const h = await socksServer({ handshakeTimeoutMs: 5_000 }, (sock, p) => {
      sock.write(encodeReply(SocksReply.SUCCEEDED));
      sock.write(Buffer.concat([Buffer.from('echo:'), p.rest]));
      sock.resume();
      sock.on('data', (c: Buffer) => sock.write(c));
    });
    const { socket } = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: h.port, type: 5 },
      command: 'connect',
      destination: { host: 'example.invalid', port: 4242 },
      timeout: 5_000,
    });
    const got = await new Promise<string>((resolve) => {
      let s = '';
      socket.on('data', (c: Buffer) => {
        s += c.toString();
        if (s.includes('ping')) resolve(s);
      });
      socket.write('ping');
    });
    socket.destroy();
    expect(got).toBe('echo:ping');
    const p = await h.results[0]!;
    expect(p).toMatchObject({ request: { command: 1, addressType: 'domain', host: 'example.invalid', port: 4242 } });
  });

  it('requires RFC 1929 credentials when auth is set', async () => {
    const auth = { username: 'user', password: 's3cret' };
    const h = await socksServer({ auth, handshakeTimeoutMs: 5_000 }, (sock) => {
      sock.end(encodeReply(SocksReply.SUCCEEDED));
    });
    const ok = await SocksClient.createConnection({
      proxy: { host: '127.0.0.1', port: h.port, type: 5, userId: 'user', password: 's3cret' },
      command: 'connect',
      destination: { host: '::1', port: 80 },
      timeout: 5_000,
    });
    ok.socket.destroy();
    await expect(h.results[0]!).resolves.toMatchObject({ request: { addressType: 'ipv6', host: '::1', port: 80 } });

    await expect(
      SocksClient.createConnection({
        proxy: { host: '127.0.0.1', port: h.port, type: 5, userId: 'user', password: 'wrong' },
        command: 'connect',
        destination: { host: '127.0.0.1', port: 80 },
        timeout: 5_000,
      }),
    ).rejects.toThrow(/auth/i);
    await until(h, 2);
    const bad = await h.results[1]!;
    expect(bad).toBeInstanceOf(SshError);
    expect((bad as SshError).code).toBe('ERR_SSH_FORWARD');
    expect((bad as SshError).message).not.toContain('wrong');

    // A client that offers only "no authentication" gets 05 FF.
    const r = await exchange(h.port, b(5, 1, 0));
    expect([...r.data]).toEqual([5, 0xff]);
    expect(r.closed).toBe(true);
  });

  it('answers wrong credentials with 01 01 and closes', async () => {
    const h = await socksServer({ auth: { username: 'u', password: 'p' }, handshakeTimeoutMs: 5_000 });
    const r = await exchange(h.port, Buffer.concat([b(5, 1, 2), b(1, 1, 0x75, 1, 0x78)]));
    expect([...r.data]).toEqual([5, 2, 1, 1]);
    expect(r.closed).toBe(true);
  });

  it('answers BIND and UDP ASSOCIATE with 0x07 and an unknown address type with 0x08', async () => {
    const h = await socksServer({ handshakeTimeoutMs: 5_000 });
    for (const cmd of [2, 3]) {
      const r = await exchange(h.port, Buffer.concat([b(5, 1, 0), b(5, cmd, 0, 1, 127, 0, 0, 1, 0, 80)]));
      expect([...r.data.subarray(0, 4)]).toEqual([5, 0, 5, 0x07]);
      expect(r.closed).toBe(true);
    }
    const r = await exchange(h.port, Buffer.concat([b(5, 1, 0), b(5, 1, 0, 7, 1, 2)]));
    expect([...r.data.subarray(0, 4)]).toEqual([5, 0, 5, 0x08]);
    expect(r.closed).toBe(true);
  });

  it('closes a malformed handshake at once', async () => {
    const h = await socksServer({ handshakeTimeoutMs: 5_000 });
    const r = await exchange(h.port, Buffer.from('GET / HTTP/1.1\r\n\r\n'));
    expect(r.data.length).toBe(0);
    expect(r.closed).toBe(true);
    await until(h);
    expect(await h.results[0]!).toMatchObject({ code: 'ERR_SSH_FORWARD' });
  });

  it('closes a handshake slower than the bound', async () => {
    const h = await socksServer({ handshakeTimeoutMs: 200 });
    const r = await exchange(h.port, b(5, 1), 5_000); // greeting never completed
    expect(r.closed).toBe(true);
    await until(h);
    expect(await h.results[0]!).toMatchObject({ code: 'ERR_SSH_TIMEOUT' });
  });
});
