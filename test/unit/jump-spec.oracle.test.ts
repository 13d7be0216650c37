/**
 * Oracle test of the one ProxyJump parser (src/config/ssh-config/jump-spec.ts) against OpenSSH:
 * what `ssh -F /dev/null -G -J '<spec>' x` prints (`proxyjump ...`, or "Invalid -J argument"),
 * recorded from OpenSSH 9.2p1 (Debian 12) below and, when ssh is installed, checked live too.
 *
 * ssh -G prints the hops before the last as written and the last one re-assembled from what
 * parse_jump read (user, host, port): `[host]` when the host holds a `:` or only digits and dots.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseHopSpec, parseJumpHop, parseJumpSpec, splitJumpList, type JumpHop } from '../../src/config/ssh-config/jump-spec.js';
import { parseJumpOption } from '../../src/options.js';
import { resolveSshConfig } from '../../src/config/ssh-config.js';
import { SshConfigError } from '../../src/errors.js';

/** `ssh -G -J <spec>`: the proxyjump line it printed, or null for "Invalid -J argument". */
const RECORDED: ReadonlyArray<readonly [string, string | null]> = [
  // the forms named in issue 12
  ['h', 'h'],
  ['u@h', 'u@h'],
  ['h:2222', 'h:2222'],
  ['u@h:2222', 'u@h:2222'],
  ['[::1]:22', '[::1]:22'],
  ['ssh://u@h:22', 'u@h:22'],
  ['a,b', 'a,b'],
  ['ssh://us%40er@h', 'us@er@h'], // the URI user is %-decoded (parseHopSpec kept "us%40er")
  ['user@h:22:33', null], // the host ends at the first ':' (parseHopSpec read host "h:22:33")
  ['ssh://h/x', null], // no path in a jump URI (parseHopSpec read host "h/x")
  ['::1', null], // empty host before the first ':' (parseHopSpec read host "::1")
  // more
  ['[::1]', '[::1]'],
  ['u@[::1]', 'u@[::1]'],
  ['u@[fe80::1%eth0]:22', 'u@[fe80::1%eth0]:22'],
  ['127.0.0.1', '[127.0.0.1]'],
  ['127.0.0.1:22', '[127.0.0.1]:22'],
  ['h:65535', 'h:65535'],
  ['h:', 'h'],
  ['h:+22', 'h:22'],
  ['h:022', 'h:22'],
  ['a@b@h', 'a@b@h'],
  ['u+v@h', 'u+v@h'],
  ['h_x', 'h_x'],
  ['h]', 'h]'],
  ['[h]', 'h'],
  ['hé', 'hé'],
  ['SSH://u@h', 'SSH://u@h'], // the scheme is lower case only: this is user "SSH://u"
  ['ssh://u@h', 'u@h'],
  ['ssh://h/', 'h'],
  ['ssh://h:22/', 'h:22'],
  ['ssh://u;fp=x@h', 'u@h'],
  ['ssh://u+v@h', 'u v@h'],
  ['ssh://%75@h', 'u@h'],
  ['ssh://u%40@h', 'u@@h'],
  ['ssh://u:p@h', 'u:p@h'],
  ['ssh://h_x', 'h_x'],
  ['ssh://h.', 'h'],
  ['a,none', 'a,none'],
  ['h:0', null],
  ['h:65536', null],
  ['h:abc', null],
  ['h:0x16', null],
  ['h:22/x', null],
  ['h/22', null],
  ['h/x', null],
  ['@h', null],
  ['u@', null],
  ['[h', null],
  ['[h]x', null],
  ['[::1]22', null],
  ['[::1]:22:33', null],
  ['[::1]:0', null],
  ['ssh:/h', null],
  ['ssh://', null],
  ['ssh://@h', null],
  ['ssh://u@', null],
  ['ssh://a@b@h', null], // the URI user ends at the first '@': host "b@h" is no domain
  ['ssh://[::1]:2222', null], // a URI host must pass valid_domain
  ['ssh://h:0', null],
  ['ssh://u@h:22:33', null],
  ['ssh://u%zz@h', null],
  ['ssh://u%00v@h', null],
  ['ssh://-h', null],
  ['ssh://h..x', null],
  ['ssh://h%41', null],
  ['ssh://h;x', null],
  ['a,user@h:22:33', null],
  ['user@h:22:33,b', null],
  ['a,,b', null],
  [',a', null],
  ['a,', null],
];

/**
 * Where we differ on purpose (documented in jump-spec.ts): ssh resolves a service name as port
 * and accepts an empty bracketed host; we refuse both.
 */
const DEVIATIONS: ReadonlyArray<readonly [string, string]> = [
  ['h:ssh', 'h:22'],
  ['ssh://h:ssh', 'h:22'],
  ['[]', '[]'],
  ['[]:22', '[]:22'],
];

/**
 * Refused by `ssh -J` only through its command-line `valid_hostname` check ("invalid hostname"),
 * not by parse_jump: in an ssh_config `ProxyJump` ssh -G accepts them, and so does the parser.
 */
const HOSTNAME_CHECKED = ['-h', 'a,-h', 'u@-h', 'h;x', "h'x", 'h$x', 'u@h\\x'];

const tmp = mkdtempSync(path.join(os.tmpdir(), 'ssh-tether-jump-oracle-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const sshAvailable = spawnSync('ssh', ['-V'], { encoding: 'utf8', timeout: 10_000 }).error === undefined;

/** Runs `ssh -G` and returns the proxyjump line's value ('' when none), or null when ssh refused. */
function sshG(args: string[]): { value: string | null; stderr: string } {
  const r = spawnSync('ssh', [...args, '-G', 'x'], { encoding: 'utf8', timeout: 10_000, env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: tmp } });
  if (r.status !== 0) return { value: null, stderr: r.stderr };
  const line = r.stdout.split('\n').find((l) => l.startsWith('proxyjump '));
  return { value: line === undefined ? '' : line.slice('proxyjump '.length), stderr: r.stderr };
}

/** dump_client_config's proxyjump line, from our parse of every hop. */
function printed(spec: string): string | null {
  const hops = splitJumpList(spec);
  if (hops === undefined) return null;
  if (hops.length === 0) return '';
  const last: JumpHop = parseJumpHop(hops[hops.length - 1]!)!;
  const bracket = last.host.includes(':') || /^[0-9.]*$/.test(last.host);
  const rebuilt = `${last.user === undefined ? '' : `${last.user}@`}${bracket ? `[${last.host}]` : last.host}${last.port === undefined ? '' : `:${last.port}`}`;
  return [...hops.slice(0, -1), rebuilt].join(',');
}

describe('ProxyJump parser vs ssh -G', () => {
  it.each(RECORDED)('%j -> %j', (spec, want) => {
    expect(printed(spec)).toBe(want);
    if (sshAvailable) expect(sshG(['-F', '/dev/null', '-J', spec]).value).toBe(want);
  });

  it('"none" is no jump, for ssh and for both parsers', () => {
    expect(splitJumpList('none')).toEqual([]);
    expect(splitJumpList('NONE')).toEqual([]);
    expect(parseJumpOption('none')).toEqual([]);
    if (sshAvailable) expect(sshG(['-F', '/dev/null', '-J', 'none']).value).toBe('');
  });

  it.each(DEVIATIONS)('deliberate difference: %j (ssh -G: %j) is refused', (spec, theirs) => {
    expect(parseJumpSpec(spec).ok).toBe(false);
    if (sshAvailable) expect(sshG(['-F', '/dev/null', '-J', spec]).value).toBe(theirs);
  });

  it.each(HOSTNAME_CHECKED)('%j: syntax ssh_config ProxyJump accepts (ssh -J refuses the host name only)', (spec) => {
    expect(printed(spec)).toBe(spec);
    if (sshAvailable) {
      const j = sshG(['-F', '/dev/null', '-J', spec]);
      expect(j.value).toBeNull();
      expect(j.stderr).toMatch(/invalid hostname/);
      const cfg = path.join(tmp, 'cfg');
      if (!spec.includes("'")) {
        // (h'x cannot be written in a config line: the quote opens a quoted argument)
        writeFileSync(cfg, `Host x\n  ProxyJump ${spec}\n`);
        expect(sshG(['-F', cfg]).value).toBe(spec);
      }
    }
  });

  it('blanks and control characters are refused (ssh -J cuts at the first blank)', () => {
    for (const spec of ['h x', ' h', 'h\tx', 'h\x01', 'u@h x:22']) expect(parseJumpSpec(spec).ok, JSON.stringify(spec)).toBe(false);
  });
});

describe('one parser for ssh_config, the jump option and the hops', () => {
  it('ssh_config ProxyJump is checked with it (every hop), as ssh -G -F does', async () => {
    for (const [spec, want] of [...RECORDED.filter(([s]) => !s.includes(',')), ['a,user@h:22:33', null] as const, ['a,b', 'a,b'] as const]) {
      const cfg = path.join(tmp, 'pj');
      writeFileSync(cfg, `Host x\n  ProxyJump ${spec}\n`);
      const ours = await resolveSshConfig('x', { sshConfig: cfg }).then(
        (r) => r.proxyJump.join(','),
        (e: unknown) => (e instanceof SshConfigError ? null : e),
      );
      // Accepted by both, refused by both (ssh -G -F prints the value as written when valid).
      expect(ours === null, `${spec}: ours ${String(ours)}`).toBe(want === null);
      if (want !== null) expect(ours).toBe(spec);
      if (sshAvailable) expect(sshG(['-F', cfg]).value === null, spec).toBe(want === null);
    }
  });

  it('the jump option is checked at construction with the same parser (ERR_SSH_CONFIG, field jump)', () => {
    expect(parseJumpOption('u@a:2222, ssh://b')).toEqual(['u@a:2222', 'ssh://b']);
    expect(parseJumpOption(['[::1]:22'])).toEqual(['[::1]:22']);
    expect(parseJumpOption(false)).toEqual([]);
    for (const bad of ['user@h:22:33', 'ssh://h/x', '::1', 'a,,b', 'a,', ['ok', 'h:0']]) {
      let err: unknown;
      try {
        parseJumpOption(bad);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(bad)).toBeInstanceOf(SshConfigError);
      expect((err as SshConfigError).field).toBe('jump');
    }
  });

  it('parseHopSpec (used for each hop connection) gives the same hop, or ERR_SSH_CONFIG naming why', () => {
    expect(parseHopSpec('ssh://us%40er@h')).toEqual({ user: 'us@er', host: 'h', port: undefined });
    expect(parseHopSpec('[::1]:2200')).toEqual({ user: undefined, host: '::1', port: 2200 });
    expect(parseHopSpec('a@b@h:22')).toEqual({ user: 'a@b', host: 'h', port: 22 });
    expect(() => parseHopSpec('user@h:22:33')).toThrow(/invalid jump host "user@h:22:33": port is not an integer from 1 to 65535/);
    expect(() => parseHopSpec('ssh://h/x')).toThrow(/a path is not allowed/);
    expect(() => parseHopSpec('::1')).toThrow(/missing host/);
  });
});
