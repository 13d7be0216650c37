import { describe, expect, it, vi } from 'vitest';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { TRANSITIONS, canTransition, type ConnectionState } from '../../src/connection/state.js';
import { Keepalive, type Clock } from '../../src/connection/keepalive.js';
import { SessionLimiter } from '../../src/channel/limiter.js';
import { buildCommandLine, quoteArg, quoteArgv } from '../../src/exec/quote.js';
import { PidLineStripper } from '../../src/exec/process.js';
import ssh2 from 'ssh2';
import {
  ERROR_CODES,
  SshAuthError,
  SshChannelOpenError,
  SshConfigError,
  SshError,
  SshHostKeyError,
  TRANSIENT_NETWORK_CODES,
  authFailureReason,
  isConnectionLost,
  isRetryable,
  mapChannelError,
  mapConnectError,
  type SshErrorCode,
} from '../../src/errors.js';
import { SshClient } from '../../src/index.js';
import { resolveOptions } from '../../src/options.js';

describe('state table', () => {
  const all: ConnectionState[] = ['idle', 'connecting', 'ready', 'reconnecting', 'closing', 'closed'];
  it('allows exactly the documented transitions', () => {
    const allowed = all.flatMap((from) => all.filter((to) => canTransition(from, to)).map((to) => `${from}->${to}`));
    expect(allowed.sort()).toEqual(
      [
        'idle->connecting', 'idle->closing', 'idle->closed',
        'connecting->ready', 'connecting->idle', 'connecting->closing', 'connecting->closed',
        'ready->reconnecting', 'ready->idle', 'ready->closing', 'ready->closed',
        'reconnecting->ready', 'reconnecting->closing', 'reconnecting->closed',
        'closing->closed',
      ].sort(),
    );
    expect(TRANSITIONS.closed).toEqual([]);
    expect(Object.isFrozen(TRANSITIONS)).toBe(true);
  });
});

function fakeClock(): Clock & { advance(ms: number): void } {
  let now = 0;
  let timers: { at: number; fn: () => void; id: number }[] = [];
  let seq = 0;
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      const id = ++seq;
      timers.push({ at: now + ms, fn, id });
      return id;
    },
    clearTimeout: (h) => {
      timers = timers.filter((t) => t.id !== h);
    },
    advance(ms: number) {
      const end = now + ms;
      for (let guard = 0; guard < 10_000; guard++) {
        timers.sort((a, b) => a.at - b.at);
        const t = timers[0];
        if (!t || t.at > end) break;
        timers.shift();
        now = t.at;
        t.fn();
      }
      now = end;
    },
  };
}

describe('keep-alive (fake clock)', () => {
  it('declares a silent link dead at interval x (countMax + 1), after countMax probes', () => {
    const clock = fakeClock();
    const probes: number[] = [];
    const dead = vi.fn();
    new Keepalive(1_000, 3, { sendProbe: () => probes.push(clock.now()), onDead: dead, onRtt: () => undefined }, clock);
    clock.advance(3_999);
    expect(probes).toEqual([1_000, 2_000, 3_000]);
    expect(dead).not.toHaveBeenCalled();
    clock.advance(1);
    expect(dead).toHaveBeenCalledTimes(1);
  });

  it('any inbound packet resets the missed count; no probe while data flows', () => {
    const clock = fakeClock();
    const probes: number[] = [];
    const dead = vi.fn();
    const ka = new Keepalive(1_000, 2, { sendProbe: () => probes.push(clock.now()), onDead: dead, onRtt: () => undefined }, clock);
    for (let i = 0; i < 20; i++) {
      clock.advance(500);
      ka.received();
    }
    expect(probes).toEqual([]);
    clock.advance(1_500); // one probe at +1000
    expect(probes).toHaveLength(1);
    ka.received();
    expect(ka.missedProbes).toBe(0);
    clock.advance(2_999);
    expect(dead).not.toHaveBeenCalled();
    clock.advance(1);
    expect(dead).toHaveBeenCalledTimes(1);
  });

  it('reports the round trip of answered probes and stops cleanly', () => {
    const clock = fakeClock();
    const rtts: number[] = [];
    let reply: (() => void) | undefined;
    const dead = vi.fn();
    let probes = 0;
    const ka = new Keepalive(
      1_000,
      3,
      {
        sendProbe: (r) => {
          probes += 1;
          reply = r;
        },
        onDead: dead,
        onRtt: (ms) => rtts.push(ms),
      },
      clock,
    );
    clock.advance(1_000);
    clock.advance(42);
    reply?.();
    expect(rtts).toEqual([42]);
    ka.stop();
    const probesAtStop = probes;
    clock.advance(100_000); // a running keep-alive would have declared the link dead by now
    expect(dead).not.toHaveBeenCalled();
    expect(probes).toBe(probesAtStop);
  });
});

describe('session limiter', () => {
  it('grants up to the limit and queues the rest FIFO', async () => {
    const l = new SessionLimiter(2);
    const r1 = await l.acquire();
    const r2 = await l.acquire();
    const order: number[] = [];
    const p3 = l.acquire().then((r) => (order.push(3), r));
    const p4 = l.acquire().then((r) => (order.push(4), r));
    expect(l.queued).toBe(2);
    r1();
    r1(); // idempotent
    const r3 = await p3;
    expect(l.open).toBe(2);
    r2();
    const r4 = await p4;
    expect(order).toEqual([3, 4]);
    r3();
    r4();
    expect(l.open).toBe(0);
  });

  it('a waiting caller aborts with its signal reason and leaves the queue', async () => {
    const l = new SessionLimiter(1);
    const r1 = await l.acquire();
    const ac = new AbortController();
    const p = l.acquire(ac.signal);
    ac.abort(new SshError('ERR_SSH_TIMEOUT', 'late'));
    await expect(p).rejects.toMatchObject({ code: 'ERR_SSH_TIMEOUT' });
    expect(l.queued).toBe(0);
    r1();
  });

  it('learns a lower limit after a refusal and resets on a new link', async () => {
    const l = new SessionLimiter(10);
    const held = await Promise.all([l.acquire(), l.acquire(), l.acquire()]);
    l.lowerLimit();
    expect(l.learnedLimit).toBe(2);
    held[2]();
    const waiting = l.acquire();
    expect(l.queued).toBe(1);
    l.reset();
    expect(l.learnedLimit).toBe(10);
    (await waiting)();
    held[0]();
    held[1]();
  });
});

describe('quoting', () => {
  it('leaves safe words alone and single-quotes the rest', () => {
    expect(quoteArg('ls')).toBe('ls');
    expect(quoteArg('')).toBe("''");
    expect(quoteArg("it's")).toBe(`'it'\\''s'`);
    expect(quoteArg('FOO=bar')).toBe("'FOO=bar'");
    expect(quoteArg('~')).toBe("'~'");
    expect(() => quoteArg('a\0b')).toThrow(TypeError);
    expect(() => quoteArgv([])).toThrow(TypeError);
  });

  it('round-trips through a real POSIX shell (sh -c) for awkward and random arguments', () => {
    const args = ["'", '"', '$(id)', '`id`', 'a b', '\n', '*', '?', '[a]', '~', '#', '&&', '|', ';', '\\', '!', '{a,b}', '-e', 'é中'];
    for (let i = 0; i < 20; i++) {
      args.push(Array.from({ length: 12 }, () => String.fromCharCode(1 + Math.floor(Math.random() * 126))).join(''));
    }
    const out = execFileSync('/bin/sh', ['-c', `printf '%s\\0' ${quoteArgv(args)}`]);
    expect(out.toString('utf8').split('\0').slice(0, -1)).toEqual(args);
  });

  it('builds the command line with pid report, env exports and cwd', () => {
    expect(buildCommandLine({ command: ['echo', 'x'], env: { A: "b'c" }, cwd: '/tmp/d e' })).toBe(`export A='b'\\''c'; cd -- '/tmp/d e' || exit 1; echo x`);
    const line = buildCommandLine({ command: 'echo "$A" "$__tg"; pwd', env: { A: "b'c" }, cwd: '/', reportPid: true });
    expect(line.endsWith(`export A='b'\\''c'; cd -- / || exit 1; echo "$A" "$__tg"; pwd`)).toBe(true);
    // Run by dash: as a group leader (like under sshd) it reports 'group' and runs in place; as a
    // member of someone else's group (Dropbear, tinysshd, asyncssh) it re-runs under setsid and
    // then leads a new group; without setsid it reports 'tree'.
    const run = (argv: string[], env?: NodeJS.ProcessEnv): { stdout: string; stderr: string } => {
      const r = spawnSync(argv[0] as string, argv.slice(1), { encoding: 'utf8', env: env ?? process.env });
      return { stdout: r.stdout, stderr: r.stderr };
    };
    const withPgid = buildCommandLine({ command: 'echo "$A" "$__tg"; pwd; ps -o pgid= -p $$', env: { A: "b'c" }, cwd: '/', reportPid: true });
    const leader = run(['setsid', '-w', '/bin/sh', '-c', withPgid]);
    const member = run(['/bin/sh', '-c', withPgid]);
    for (const r of [leader, member]) {
      const m = /^ssh-tether:pid=(\d+):group\n$/.exec(r.stderr);
      expect(m).not.toBeNull();
      expect(r.stdout.split('\n').slice(0, 2)).toEqual(["b'c ", '/']);
      expect(r.stdout.split('\n')[2]?.trim()).toBe(m?.[1]);
    }
    const noSetsid = mkdtempSync(join(tmpdir(), 'tether-nosetsid-'));
    for (const c of ['ps', 'cat']) symlinkSync(execFileSync('/bin/sh', ['-c', `command -v ${c}`], { encoding: 'utf8' }).trim(), join(noSetsid, c));
    const tree = run(['/bin/sh', '-c', `PATH=${noSetsid}; ${line}`]);
    expect(tree.stderr).toMatch(/^ssh-tether:pid=\d+:tree\n$/);
    expect(tree.stdout).toBe("b'c \n/\n");
    expect(() => buildCommandLine({ command: 'x', env: { 'BAD-NAME': '1' } })).toThrow(/env.BAD-NAME/);
  });
});

describe('pid line stripper', () => {
  it('removes only the leading pid line, even split across chunks', async () => {
    let pid: number | undefined;
    let mode: string | undefined;
    const s = new PidLineStripper((p, m) => {
      pid = p;
      mode = m;
    });
    const out: Buffer[] = [];
    s.on('data', (c: Buffer) => out.push(c));
    s.write(Buffer.from('ssh-tether:p'));
    s.write(Buffer.from('id=1234:gro'));
    s.write(Buffer.from('up\nreal stderr\n'));
    s.end(Buffer.from('more'));
    await new Promise((r) => s.on('end', r));
    expect(pid).toBe(1234);
    expect(mode).toBe('group');
    expect(Buffer.concat(out).toString()).toBe('real stderr\nmore');
    // no mode (or an unknown one) never claims a process group
    const modes: string[] = [];
    for (const line of ['ssh-tether:pid=77\n', 'ssh-tether:pid=77:tree\n', 'ssh-tether:pid=77:evil\n']) {
      const t = new PidLineStripper((_p, m) => modes.push(m));
      t.resume();
      t.end(Buffer.from(line));
      await new Promise((r) => t.on('end', r));
    }
    expect(modes).toEqual(['tree', 'tree']);
  });

  it('passes stderr through untouched when there is no marker', async () => {
    const s = new PidLineStripper(() => undefined);
    const out: Buffer[] = [];
    s.on('data', (c: Buffer) => out.push(c));
    s.end(Buffer.from('ssh: not a marker\n'));
    await new Promise((r) => s.on('end', r));
    expect(Buffer.concat(out).toString()).toBe('ssh: not a marker\n');
  });
});

describe('error mapping', () => {
  it('maps ssh2 error levels to codes', () => {
    expect(mapConnectError(Object.assign(new Error('x'), { level: 'client-authentication' }))).toBeInstanceOf(SshAuthError);
    expect(mapConnectError(Object.assign(new Error('x'), { level: 'client-timeout' })).code).toBe('ERR_SSH_CONNECT_TIMEOUT');
    expect(mapConnectError(Object.assign(new Error('x'), { level: 'handshake' })).code).toBe('ERR_SSH_HANDSHAKE');
    expect(mapConnectError(Object.assign(new Error('ECONNREFUSED'), { level: 'client-socket', code: 'ECONNREFUSED' })).code).toBe('ERR_SSH_CONNECT');
    const ch = mapChannelError(Object.assign(new Error('(SSH) Channel open failure: open failed'), { reason: 2 }));
    expect(ch).toBeInstanceOf(SshChannelOpenError);
    expect((ch as SshChannelOpenError).reason).toBe(2);
    expect(mapChannelError(new Error('No response from server')).code).toBe('ERR_SSH_CONNECTION_LOST');
  });

  it('never retries auth, key, host key and config errors', () => {
    for (const code of ['ERR_SSH_AUTH', 'ERR_SSH_KEY', 'ERR_SSH_HOST_KEY_UNKNOWN', 'ERR_SSH_HOST_KEY_MISMATCH', 'ERR_SSH_HOST_KEY_REVOKED', 'ERR_SSH_CONFIG'] as const) {
      expect(isRetryable(new SshError(code, 'x'))).toBe(false);
    }
    expect(isRetryable(new SshError('ERR_SSH_CONNECT', 'x'))).toBe(true);
    expect(isRetryable(new SshError('ERR_SSH_CONNECTION_LOST', 'x'))).toBe(true);
  });

  it('reads retryable from the one code table; an override wins', () => {
    const codes = Object.keys(ERROR_CODES) as SshErrorCode[];
    expect(codes.length).toBeGreaterThanOrEqual(22);
    for (const code of codes) expect(new SshError(code, 'x').retryable).toBe(ERROR_CODES[code].retryable);
    expect(codes.filter((c) => !ERROR_CODES[c].retryable).sort()).toEqual(
      ['ERR_SSH_AUTH', 'ERR_SSH_CONFIG', 'ERR_SSH_HOST_KEY_MISMATCH', 'ERR_SSH_HOST_KEY_REVOKED', 'ERR_SSH_HOST_KEY_UNKNOWN', 'ERR_SSH_INVALID_ARG', 'ERR_SSH_KEY'].sort(),
    );
    expect(new SshError('ERR_SSH_CONNECT', 'x', { retryable: false }).retryable).toBe(false);
    expect(new SshError('ERR_SSH_CONFIG', 'x', { retryable: true }).retryable).toBe(true);
  });

  it('isRetryable: only our retryable codes and transient network errors, not any Error', () => {
    for (const code of ['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE', 'EAI_AGAIN']) {
      expect(TRANSIENT_NETWORK_CODES.has(code)).toBe(true);
      expect(isRetryable(Object.assign(new Error(`connect ${code}`), { code }))).toBe(true);
    }
    expect(isRetryable(new Error('boom'))).toBe(false);
    expect(isRetryable(new TypeError('x is not a function'))).toBe(false);
    expect(isRetryable(Object.assign(new Error('getaddrinfo ENOTFOUND nohost'), { code: 'ENOTFOUND' }))).toBe(false);
    expect(isRetryable(Object.assign(new Error('EACCES'), { code: 'EACCES' }))).toBe(false);
    expect(isRetryable({ code: 'ECONNRESET' })).toBe(false); // not an Error
    expect(isRetryable('ECONNRESET')).toBe(false);
    expect(isRetryable(undefined)).toBe(false);
  });

  it('isConnectionLost: our lost codes and ssh2 1.17 texts, nothing else', () => {
    // The real text, from a real ssh2 client that is not connected (lib/client.js).
    let thrown: unknown;
    try {
      new ssh2.Client().exec('true', () => undefined);
    } catch (err) {
      thrown = err;
    }
    expect((thrown as Error).message).toBe('Not connected');
    expect(isConnectionLost(thrown)).toBe(true);
    expect(isConnectionLost(new Error('No response from server'))).toBe(true);
    expect(isConnectionLost(new Error('Connection lost before handshake'))).toBe(true);
    expect(isConnectionLost(new SshError('ERR_SSH_CONNECTION_LOST', 'x'))).toBe(true);
    expect(isConnectionLost(new SshError('ERR_SSH_KEEPALIVE_TIMEOUT', 'x'))).toBe(true);
    expect(isConnectionLost(new SshError('ERR_SSH_CLOSED', 'client closed'))).toBe(false);
    // a server's text that merely mentions it is not ssh2's report
    expect(isConnectionLost(new Error('remote said: No response from server'))).toBe(false);
    expect(isConnectionLost(new Error('file closed'))).toBe(false);
    expect(isConnectionLost(undefined)).toBe(false);
    expect(mapChannelError(thrown).code).toBe('ERR_SSH_CONNECTION_LOST');
    expect(mapChannelError(Object.assign(new Error('(SSH) Channel open failure: server closed channel unexpectedly'), { reason: '' })).code).toBe(
      'ERR_SSH_CONNECTION_LOST',
    );
    expect(mapChannelError(new Error('open failed: channel closed by policy'))).toBeInstanceOf(SshChannelOpenError);
  });

  it('SshAuthError.reason: from the cause and the methods tried, or given', () => {
    expect(authFailureReason([], new Error('All configured authentication methods failed'))).toBe('no-credentials');
    expect(authFailureReason(['publickey ssh-ed25519 SHA256:x (k)'], new Error('All configured authentication methods failed'))).toBe('all-methods-failed');
    expect(authFailureReason(['publickey'], new Error('Too many authentication failures'))).toBe('too-many-attempts');
    const mapped = mapConnectError(Object.assign(new Error('All configured authentication methods failed'), { level: 'client-authentication' }), ['password']);
    expect((mapped as SshAuthError).reason).toBe('all-methods-failed');
    expect(new SshAuthError('x', { methodsTried: [], reason: 'too-many-attempts' }).reason).toBe('too-many-attempts');
  });

  it('brand: instanceof holds for a copy of the classes carrying the Symbol.for brand, not for a plain Error', () => {
    const brand = Symbol.for('ssh-tether.SshError');
    // A stand-in for another copy of the library: classes of the same names, branded.
    class OtherSshError extends Error {}
    Object.defineProperty(OtherSshError, 'name', { value: 'SshError' });
    Object.defineProperty(OtherSshError.prototype, brand, { value: true });
    class OtherConfigError extends OtherSshError {}
    Object.defineProperty(OtherConfigError, 'name', { value: 'SshConfigError' });
    const other = new OtherConfigError('x');
    expect(other instanceof SshError).toBe(true);
    expect(other instanceof SshConfigError).toBe(true);
    expect(other instanceof SshHostKeyError).toBe(false);
    expect(new OtherSshError('x') instanceof SshConfigError).toBe(false);
    expect(new Error('x') instanceof SshError).toBe(false);
    expect(Object.assign(new Error('x'), { name: 'SshConfigError', code: 'ERR_SSH_CONFIG' }) instanceof SshConfigError).toBe(false);
    expect(new SshConfigError('x') instanceof SshError).toBe(true);
    expect(new SshConfigError('x') instanceof SshHostKeyError).toBe(false);
    expect((null as unknown as object) instanceof SshError).toBe(false);
  });
});

describe('options', () => {
  const bad: Array<[Record<string, unknown>, string]> = [
    [{}, 'host'],
    [{ host: 'h', port: 0 }, 'port'],
    [{ host: 'h', port: 70000 }, 'port'],
    [{ host: 'h', port: 22.5 }, 'port'],
    [{ host: 'h', port: '22' }, 'port'],
    [{ host: 'h', keepaliveIntervalMs: -1 }, 'keepaliveIntervalMs'],
    [{ host: 'h', keepaliveCountMax: 0 }, 'keepaliveCountMax'],
    [{ host: 'h', strictHostKeyChecking: 'maybe' }, 'strictHostKeyChecking'],
    [{ host: 'h', reconnect: { minDelayMs: 'x' } }, 'reconnect'],
    [{ host: 'h', reconnect: { minDelayMs: 500, maxDelayMs: 100 } }, 'reconnect.maxDelayMs'],
    [{ host: 'h', maxSessions: 0 }, 'maxSessions'],
    [{ host: 'h', identityFiles: 'id_rsa' }, 'identityFiles'],
    [{ host: 'h', privateKey: 42 }, 'privateKey'],
    [{ host: 'h', bogus: true }, 'bogus'],
  ];
  it.each(bad)('%o is ERR_SSH_CONFIG naming %s', (opts, field) => {
    let err: unknown;
    try {
      new SshClient(opts as never);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_CONFIG');
    expect((err as Error).message).toContain(field);
  });

  it('lists the accepted option names for an unknown key', () => {
    expect(() => new SshClient({ host: 'h', hots: 1 } as never)).toThrow(/accepted options: host, port/);
  });

  it('keeps secrets out of inspect, JSON and enumeration', () => {
    const o = resolveOptions({ host: 'h', password: 'hunter2-secret', passphrase: 'pp-secret', privateKey: 'KEY-MATERIAL-secret' });
    const shown = inspect(o, { depth: 5 }) + JSON.stringify(o) + inspect(new SshClient({ host: 'h', password: 'hunter2-secret' }), { depth: 5, showHidden: true });
    for (const s of ['hunter2-secret', 'pp-secret', 'KEY-MATERIAL-secret']) expect(shown).not.toContain(s);
    expect(o.password?.reveal()).toBe('hunter2-secret');
  });

  it('defaults follow OpenSSH', () => {
    const o = resolveOptions({ host: 'h', agent: false });
    expect(o).toMatchObject({ port: 22, keepaliveIntervalMs: 15_000, keepaliveCountMax: 3, maxSessions: 10, strictHostKeyChecking: 'yes' });
    expect(o.reconnect).toMatchObject({ retries: Infinity });
  });
});
