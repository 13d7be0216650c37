import { describe, expect, it } from 'vitest';
import { configLinesFromOptions, parseCommandLine, targetOptionsFrom, UsageError, CONNECT_OPTIONS } from '../../src/cli/args.js';
import { parseExecArgs, parseTransferArgs, runCli, splitRemote, VERSION, type Io } from '../../src/cli/commands.js';
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';

describe('exec argument parsing stops at the host (as ssh)', () => {
  it('keeps the words after the host for the command, options included', () => {
    expect(parseExecArgs(['web1', 'uname', '-n']).command).toBe('uname -n');
    expect(parseExecArgs(['web1', 'ls', '-l', '/tmp']).command).toBe('ls -l /tmp');
    const p = parseExecArgs(['-n', '-p', '2222', 'me@web1', '-n', '--timeout', '5']);
    expect(p.target).toBe('me@web1');
    expect(p.values['no-stdin']).toBe(true);
    expect(p.values.port).toBe('2222');
    expect(p.command).toBe('-n --timeout 5');
  });

  it('joins the words with spaces (one shell command line); --argv keeps each word one argument', () => {
    expect(parseExecArgs(['web1', 'ls', '-l', '/a b']).command).toBe('ls -l /a b');
    expect(parseExecArgs(['web1', 'ls / | wc -l']).command).toBe('ls / | wc -l');
    expect(parseExecArgs(['--argv', 'web1', 'ls', '-l', '/a b']).command).toEqual(['ls', '-l', '/a b']);
  });

  it('accepts -- before or after the host', () => {
    expect(parseExecArgs(['web1', '--', 'echo', '--', 'x']).command).toBe('echo -- x');
    expect(parseExecArgs(['-n', '--', 'web1', 'true']).target).toBe('web1');
  });

  it('reports a missing host or command as usage errors', () => {
    expect(() => parseExecArgs([])).toThrow(/missing <host>/);
    expect(() => parseExecArgs(['web1'])).toThrow(/missing command after web1/);
  });
});

describe('option parsing', () => {
  it('takes bundled short flags, attached values, --name=value and repeats', () => {
    const r = parseCommandLine(['-p2222', '-oUser=me', '-o', 'Port=1', '--identity=k1', '-i', 'k2', 'host', 'x'], CONNECT_OPTIONS);
    expect(r.values).toMatchObject({ port: '2222', option: ['User=me', 'Port=1'], identity: ['k1', 'k2'] });
    expect(r.positionals).toEqual(['host', 'x']);
  });

  it('throws our own messages for unknown options, missing values and values on flags', () => {
    expect(() => parseCommandLine(['-x'], CONNECT_OPTIONS)).toThrow(new UsageError('unknown option -x'));
    expect(() => parseCommandLine(['--bogus'], CONNECT_OPTIONS)).toThrow(new UsageError('unknown option --bogus'));
    expect(() => parseCommandLine(['-p'], CONNECT_OPTIONS)).toThrow(new UsageError('option -p needs a value'));
    expect(() => parseCommandLine(['--no-agent=1'], CONNECT_OPTIONS)).toThrow(new UsageError('option --no-agent takes no value'));
    expect(() => parseCommandLine(['--constructor'], CONNECT_OPTIONS)).toThrow(/unknown option --constructor/);
  });

  it('maps -p/-P, -l, -i, -J and the rest to client options', () => {
    const t = targetOptionsFrom(parseCommandLine(['-P', '2200', '-l', 'me', '-i', 'key', '-J', 'a@b:2,c', '--no-agent', '-F', 'none'], CONNECT_OPTIONS).values);
    expect(t.options).toEqual({ port: 2200, username: 'me', identityFiles: ['key'], jump: 'a@b:2,c', agent: false, sshConfig: false });
    t.cleanup();
    expect(() => targetOptionsFrom({ port: '0' })).toThrow(/--port: expected a whole number from 1 to 65535/);
  });

  it('-o: checks Keyword=Value against the keywords ssh-tether applies and writes them first in the config list', () => {
    expect(configLinesFromOptions(['port=2222', 'ProxyJump = a@b', 'StrictHostKeyChecking accept-new'])).toEqual([
      'Port 2222',
      'ProxyJump a@b',
      'StrictHostKeyChecking accept-new',
    ]);
    expect(() => configLinesFromOptions(['ControlPath=/x'])).toThrow(/unsupported ssh_config keyword "ControlPath"; accepted: HostName, Port/);
    expect(() => configLinesFromOptions(['Port'])).toThrow(/expected Keyword=Value/);
    const t = targetOptionsFrom({ option: ['Port=2222'], config: 'my.conf' });
    const list = t.options.sshConfig as string[];
    expect(list[1]).toBe('my.conf');
    expect(readFileSync(list[0] ?? '', 'utf8')).toBe('Port 2222\n');
    t.cleanup();
    expect(() => readFileSync(list[0] ?? '')).toThrow(/ENOENT/);
    const none = targetOptionsFrom({ option: ['User=x'], config: 'none' });
    expect((none.options.sshConfig as string[]).length).toBe(1);
    none.cleanup();
  });
});

describe('scp-style host:path', () => {
  it('splits [user@]host:path as scp, a path with / before the colon is local', () => {
    expect(splitRemote('web1:/etc/hosts')).toEqual({ target: 'web1', path: '/etc/hosts' });
    expect(splitRemote('me@web1:')).toEqual({ target: 'me@web1', path: '' });
    expect(splitRemote('[::1]:f')).toEqual({ target: '::1', path: 'f' });
    expect(splitRemote('me@[::1]:f')).toEqual({ target: 'me@::1', path: 'f' });
    expect(splitRemote('./a:b')).toBeUndefined();
    expect(splitRemote('file')).toBeUndefined();
    expect(splitRemote(':x')).toBeUndefined();
  });

  it('parses get/put in the scp and the three-word forms, -r and options anywhere', () => {
    expect(parseTransferArgs('get', ['-r', 'web1:logs', 'out'])).toMatchObject({ target: 'web1', src: 'logs', dst: 'out', values: { recursive: true } });
    expect(parseTransferArgs('get', ['web1:', 'out'])).toMatchObject({ src: '.' });
    expect(parseTransferArgs('put', ['a.txt', 'me@web1:/tmp/', '-P', '22'])).toMatchObject({ target: 'me@web1', src: 'a.txt', dst: '/tmp/', values: { 'port-scp': '22' } });
    expect(parseTransferArgs('put', ['web1', 'a', 'b'])).toMatchObject({ target: 'web1', src: 'a', dst: 'b' });
    expect(() => parseTransferArgs('get', ['local', 'other'])).toThrow(/"local" is not of the form \[user@\]host:path/);
    expect(() => parseTransferArgs('put', ['x'])).toThrow(/expected <local-path> <host>:<remote-path>/);
  });
});

function memIo(): { io: Io; stdout: () => string; stderr: () => string } {
  const o = new PassThrough();
  const e = new PassThrough();
  let so = '';
  let se = '';
  o.on('data', (d: Buffer) => (so += d.toString()));
  e.on('data', (d: Buffer) => (se += d.toString()));
  return { io: { stdout: o, stderr: e, stdin: new PassThrough() }, stdout: () => so, stderr: () => se };
}

describe('runCli', () => {
  it('--version prints the package version', async () => {
    const m = memIo();
    expect(await runCli(['--version'], m.io)).toBe(0);
    expect(m.stdout()).toBe(`${(JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version}\n`);
    expect(VERSION).toMatch(/^\d+\.\d+\.\d+/);
  });

  it('unknown options print our message naming the command help, exit 2, not parseArgs text', async () => {
    for (const args of [['exec', '--frob', 'h', 'true'], ['get', '-Z', 'h:a', 'b'], ['doctor', '--jsn', 'h'], ['--frob']]) {
      const m = memIo();
      expect(await runCli(args, m.io)).toBe(2);
      expect(m.stderr()).toMatch(/^ssh-tether: unknown option -/);
      expect(m.stderr()).toMatch(/see ssh-tether (\w+ )?--help/);
      expect(m.stderr()).not.toMatch(/ERR_PARSE_ARGS|To specify a positional argument/);
    }
  });
});
