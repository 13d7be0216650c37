import { beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseCliForward } from '../../src/cli/args.js';
import { parseForwardArgs } from '../../src/cli/commands.js';
import { sharedSshd } from '../helpers/shared.js';
import { CLI, ROOT, ensureCliBuilt } from '../helpers/cli.js';
import { waitFor, writeSshConfig } from '../helpers/common.js';

const info = sharedSshd();

beforeAll(ensureCliBuilt, 120_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI; resolves when it exits (bounded by `timeoutMs`, then SIGKILL). */
function cli(args: string[], opts: { stdin?: string; timeoutMs?: number } = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: '' } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (opts.stdin !== undefined) child.stdin.end(opts.stdin);
  });
}

const dir = mkdtempSync(join(tmpdir(), 'tether-cli-'));
const config = writeSshConfig(
  [
    {
      host: 'box',
      HostName: info.host,
      Port: info.port,
      User: info.username,
      IdentityFile: info.privateKeyPath,
      UserKnownHostsFile: info.knownHostsPath,
      GlobalKnownHostsFile: 'none',
      IdentityAgent: 'none',
    },
  ],
  dir,
);
const F = ['-F', config];

describe('ssh-tether CLI', () => {
  it('prints help for every command and exits 0; bad usage exits 2', async () => {
    const main = await cli(['--help']);
    expect(main.code).toBe(0);
    expect(main.stdout).toMatch(/Usage: ssh-tether <command>/);
    for (const c of ['doctor', 'exec', 'forward', 'get', 'put']) {
      const r = await cli([c, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`Usage: ssh-tether ${c}`);
      expect(r.stdout).toContain('--config');
    }
    const unknown = await cli(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "frobnicate"/);
    const badPort = await cli(['doctor', 'box', '-p', 'x']);
    expect(badPort.code).toBe(2);
    expect(badPort.stderr).toMatch(/--port: expected a whole number from 1 to 65535/);
  });

  it('doctor: a readable report with one line per step, exit 0', async () => {
    const r = await cli(['doctor', ...F, 'box', '--sftp']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    for (const s of ['config', 'dns', 'tcp', 'banner', 'kex', 'hostkey', 'auth', 'session', 'sftp']) {
      expect(lines.some((l) => new RegExp(`^  ✓ ${s} +\\d+\\.\\d ms  `).test(l))).toBe(true);
    }
    expect(r.stdout).toContain(info.hostKeyFingerprint);
    expect(r.stdout).toMatch(/all checks passed/);
  });

  it('doctor --json; a failing layer sets its exit code and prints the fix', async () => {
    const json = await cli(['doctor', ...F, 'box', '--json']);
    expect(json.code).toBe(0);
    const report = JSON.parse(json.stdout) as { ok: boolean; steps: Array<{ step: string; ok: boolean }> };
    expect(report.ok).toBe(true);
    expect(report.steps.map((s) => s.step)).toEqual(['config', 'dns', 'tcp', 'banner', 'kex', 'hostkey', 'auth', 'session']);

    const empty = join(dir, 'empty_known_hosts');
    writeFileSync(empty, '');
    const unknown = await cli(['doctor', ...F, 'box', '--known-hosts', empty]);
    expect(unknown.code).toBe(15);
    expect(unknown.stdout).toMatch(/✗ hostkey/);
    expect(unknown.stdout).toMatch(/hint: .*accept-new/);

    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    await new Promise<void>((r) => srv.close(() => r()));
    const refused = await cli(['doctor', ...F, 'box', '-p', String(port)]);
    expect(refused.code).toBe(12);
    expect(refused.stdout).toMatch(/✗ tcp .*refused/);
  });

  it('exec: passes stdout, stderr and the exit status through; --argv passes each word literally', async () => {
    const r = await cli(['exec', ...F, '--argv', 'box', '--', 'sh', '-c', 'echo out; echo err >&2; exit 7'], { stdin: '' });
    expect(r).toEqual({ code: 7, stdout: 'out\n', stderr: 'err\n' });
    const q = await cli(['exec', ...F, '--argv', 'box', 'printf', '[%s]\\n', "it's", '$(nope)', 'a b'], { stdin: '' });
    expect(q.code).toBe(0);
    expect(q.stdout).toBe("[it's]\n[$(nope)]\n[a b]\n");
  });

  it('exec: option parsing stops at the host; the words form one shell command line, as ssh', async () => {
    // `-n` belongs to uname (the node name), not to us: the old parser printed `Linux`
    const n = await cli(['exec', ...F, 'box', 'uname', '-n'], { stdin: '' });
    expect(n).toEqual({ code: 0, stdout: `${hostname()}\n`, stderr: '' });
    // `-l /tmp` belongs to ls, not our -l (user)
    const ls = await cli(['exec', ...F, 'box', 'ls', '-ld', '/tmp'], { stdin: '' });
    expect(ls.code).toBe(0);
    expect(ls.stdout).toMatch(/^d\S+ .* \/tmp\n$/);
    // joined with spaces and parsed by the remote shell: a pipeline in one word, quotes re-split
    const pipe = await cli(['exec', ...F, 'box', 'printf "%s\\n" x y z | wc -l'], { stdin: '' });
    expect(pipe.stdout.trim()).toBe('3');
    const split = await cli(['exec', ...F, 'box', 'printf', '[%s]', 'a  b'], { stdin: '' });
    expect(split.stdout).toBe('[a][b]');
    const literal = await cli(['exec', ...F, '--argv', 'box', 'printf', '[%s]', 'a  b'], { stdin: '' });
    expect(literal.stdout).toBe('[a  b]');
    // `--` after the host is still accepted and dropped
    const dash = await cli(['exec', ...F, 'box', '--', 'echo', 'hi'], { stdin: '' });
    expect(dash).toEqual({ code: 0, stdout: 'hi\n', stderr: '' });
  });

  it('exec: -p/-P, -l and user@host, -i, -o Keyword=Value, -J without a config file', async () => {
    const base = ['-F', 'none', '-i', info.privateKeyPath, '--known-hosts', info.knownHostsPath, '--no-agent'];
    const a = await cli(['exec', ...base, '-p', String(info.port), `${info.username}@${info.host}`, 'id', '-un'], { stdin: '' });
    expect(a).toEqual({ code: 0, stdout: `${info.username}\n`, stderr: '' });
    const b = await cli(['exec', ...base, `-P${info.port}`, '-l', info.username, info.host, 'id', '-un'], { stdin: '' });
    expect(b).toEqual({ code: 0, stdout: `${info.username}\n`, stderr: '' });
    const o = await cli(
      ['exec', '-F', 'none', '--no-agent', '-o', `Port=${info.port}`, '-o', `User ${info.username}`, '-o', `IdentityFile=${info.privateKeyPath}`, '-o', `UserKnownHostsFile=${info.knownHostsPath}`, info.host, 'id', '-un'],
      { stdin: '' },
    );
    expect(o).toEqual({ code: 0, stdout: `${info.username}\n`, stderr: '' });
    const badO = await cli(['exec', '-o', 'ControlPath=/x', 'box', 'true']);
    expect(badO.code).toBe(2);
    expect(badO.stderr).toMatch(/unsupported ssh_config keyword "ControlPath"/);
    // -J: through the same sshd as a jump host works; a jump host that does not exist fails naming it
    const j = await cli(['exec', ...F, '-J', 'box', 'box', 'echo', 'jumped'], { stdin: '' });
    expect(j).toEqual({ code: 0, stdout: 'jumped\n', stderr: '' });
    const jbad = await cli(['exec', ...F, '-J', 'nosuchhost.invalid', 'box', 'true'], { stdin: '' });
    expect(jbad.code).toBe(255);
    expect(jbad.stderr).toMatch(/nosuchhost\.invalid/);
  }, 90_000);

  it('exec: feeds stdin; -n does not; a failed login exits 255', async () => {
    const r = await cli(['exec', ...F, 'box', '--', 'tr', 'a-z', 'A-Z'], { stdin: 'hello\n' });
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('HELLO\n');
    const n = await cli(['exec', ...F, '-n', 'box', '--', 'cat']);
    expect(n.code).toBe(0);
    expect(n.stdout).toBe('');
    const bad = await cli(['exec', ...F, '-l', 'nosuchuser', 'box', '--', 'true'], { stdin: '' });
    expect(bad.code).toBe(255);
    expect(bad.stderr).toMatch(/authentication as 'nosuchuser'/);
  });

  it('unknown options and --version', async () => {
    const u = await cli(['exec', '--frobnicate', 'box', 'true']);
    expect(u.code).toBe(2);
    expect(u.stderr).toBe('ssh-tether: unknown option --frobnicate (see ssh-tether exec --help)\n');
    const v = await cli(['--version']);
    expect(v).toEqual({ code: 0, stdout: `${(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version}\n`, stderr: '' });
  });

  it('put then get round-trips a file and reports the bytes; no progress bar when stdout is not a TTY', async () => {
    const local = join(dir, 'data.bin');
    const data = randomBytes(300 * 1024 + 7);
    writeFileSync(local, data);
    const remote = `/tmp/tether-cli-${process.pid}-${Date.now()}.bin`;
    const put = await cli(['put', ...F, 'box', local, remote]);
    expect(put.stderr).toContain(`${local} -> box:${remote}: ${data.length} bytes`);
    expect(put.code).toBe(0);
    expect(put.stdout).toBe('');
    expect(put.stderr).not.toContain('\r');
    const back = join(dir, 'back.bin');
    const get = await cli(['get', ...F, 'box', remote, back]);
    expect(get.code).toBe(0);
    expect(get.stdout).toBe('');
    expect(get.stderr).not.toMatch(/\r|\[#/);
    expect(readFileSync(back).equals(data)).toBe(true);
    const missing = await cli(['get', ...F, 'box', '/nonexistent/file', join(dir, 'x')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/ssh-tether: /);
    await cli(['exec', ...F, '-n', 'box', '--', 'rm', '-f', remote]);
  });

  it('scp-style host:path, a directory as destination, -r for trees', async () => {
    const rdir = `/tmp/tether-cli-dir-${process.pid}-${Date.now()}`;
    const mk = await cli(['exec', ...F, '-n', 'box', `mkdir -p ${rdir}/dest`]);
    expect(mk.code).toBe(0);
    try {
      const local = join(dir, 'one.txt');
      writeFileSync(local, 'one\n');
      // put into an existing remote directory: saved under its own name
      const put = await cli(['put', ...F, local, `box:${rdir}/dest`]);
      expect(put.code).toBe(0);
      const cat = await cli(['exec', ...F, '-n', 'box', 'cat', `${rdir}/dest/one.txt`]);
      expect(cat.stdout).toBe('one\n');
      // get into an existing local directory: saved under its own name
      const into = mkdtempSync(join(dir, 'into-'));
      const get = await cli(['get', ...F, `box:${rdir}/dest/one.txt`, into]);
      expect(get.code).toBe(0);
      expect(readFileSync(join(into, 'one.txt'), 'utf8')).toBe('one\n');
      // -r: a tree up and down again
      const tree = mkdtempSync(join(dir, 'tree-'));
      mkdirSync(join(tree, 'sub'));
      writeFileSync(join(tree, 'a.txt'), 'A');
      writeFileSync(join(tree, 'sub', 'b.txt'), 'B');
      const up = await cli(['put', ...F, '-r', tree, `box:${rdir}/up`]);
      expect(up.code).toBe(0);
      expect(up.stderr).toMatch(/2 file\(s\), 2 bytes/);
      const down = join(dir, `down-${Date.now()}`);
      const dl = await cli(['get', ...F, '-r', `box:${rdir}/up`, down]);
      expect(dl.code).toBe(0);
      expect(readFileSync(join(down, 'a.txt'), 'utf8')).toBe('A');
      expect(readFileSync(join(down, 'sub', 'b.txt'), 'utf8')).toBe('B');
      // -r into an existing directory: the tree lands in it under its own name (as scp -r)
      const dl2 = await cli(['get', ...F, '-r', `box:${rdir}/up`, into]);
      expect(dl2.code).toBe(0);
      expect(readFileSync(join(into, 'up', 'sub', 'b.txt'), 'utf8')).toBe('B');
      const bad = await cli(['get', ...F, 'nocolon', join(dir, 'x')]);
      expect(bad.code).toBe(2);
      expect(bad.stderr).toMatch(/is not of the form \[user@\]host:path/);
    } finally {
      await cli(['exec', ...F, '-n', 'box', 'rm', '-rf', rdir]);
    }
  }, 120_000);

  it('forward: usage errors for missing or malformed specs', async () => {
    const none = await cli(['forward', ...F, 'box']);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/give at least one -L, -R or -D/);
    const bad = await cli(['forward', ...F, 'box', '-L', '8080:nohostport']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected -L [bind_address:]port:host:hostport');
  });
});

/** What a terminal shows after `text`: `\r` returns to column 0, characters overwrite. */
function screen(text: string): string[] {
  const lines: string[] = [''];
  let col = 0;
  for (const ch of text) {
    if (ch === '\r') col = 0;
    else if (ch === '\n') {
      lines.push('');
      col = 0;
    } else {
      const l = lines[lines.length - 1] ?? '';
      lines[lines.length - 1] = l.slice(0, col) + ch + l.slice(col + 1);
      col++;
    }
  }
  return lines;
}

/**
 * Runs the bin on a pseudo-terminal with script(1) (util-linux); `onOutput` sees the output so
 * far and may write to the terminal (e.g. `\x03`, Ctrl-C). Bounded by a kill timer.
 */
function onTty(args: string[], onOutput?: (out: string, write: (s: string) => void) => void): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const line = [process.execPath, CLI, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
    const child = spawn('script', ['-qfec', line, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, SSH_AUTH_SOCK: '' } });
    let out = '';
    const write = (s: string): void => {
      child.stdin.write(s);
    };
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      onOutput?.(out, write);
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out });
    });
  });
}

describe('the progress bar on a terminal (script(1) pty)', () => {
  it('redraws in place and ends with a newline; Ctrl-C ends the line and exits 130', async () => {
    const remote = `/tmp/tether-cli-tty-${process.pid}-${Date.now()}`;
    expect((await cli(['exec', ...F, '-n', 'box', `head -c 8388608 /dev/urandom > ${remote}.small && truncate -s 8G ${remote}.big`])).code).toBe(0);
    try {
      const local = join(dir, 'tty-small');
      const r = await onTty(['get', ...F, `box:${remote}.small`, local]);
      expect(r.code).toBe(0);
      expect(r.out).toMatch(/\r\[[#.]{30}\] +\d+%/);
      const shown = screen(r.out.replace(/\r\n/g, '\n'));
      const barLine = shown.find((l) => l.startsWith('[##############################] 100% 8.0 MiB/8.0 MiB'));
      expect(barLine).toBeDefined();
      expect(barLine).toMatch(/ \d+(\.\d)? [KMG]?i?B\/s *$/);
      expect(shown.some((l) => l.startsWith(`box:${remote}.small -> ${local}: 8388608 bytes`))).toBe(true);

      let sent = false;
      const big = join(dir, 'tty-big');
      const i = await onTty(['get', ...F, `box:${remote}.big`, big], (out, write) => {
        if (!sent && /\] +\d+% /.test(out)) {
          sent = true;
          write('\x03');
        }
      });
      expect(sent).toBe(true);
      expect(i.code).toBe(130);
      const lines = screen(i.out.replace(/\r\n/g, '\n'));
      const at = lines.findIndex((l) => l.startsWith('ssh-tether: interrupted'));
      expect(at).toBeGreaterThan(0);
      expect(lines[at - 1]).toMatch(/^(\^C)?\[[#.]{30}\]/);
    } finally {
      await cli(['exec', ...F, '-n', 'box', 'rm', '-f', `${remote}.small`, `${remote}.big`]);
      rmSync(join(dir, 'tty-big'), { force: true });
    }
  }, 150_000);
});

describe('forward argument parsing (as ssh -L/-R/-D)', () => {
  it('parses local, remote and dynamic specs, with bind addresses and IPv6 brackets', () => {
    expect(parseCliForward('-L', '8080:db.internal:5432')).toEqual({
      type: 'local',
      spec: '8080:db.internal:5432',
      options: { localPort: 8080, remoteHost: 'db.internal', remotePort: 5432 },
    });
    expect(parseCliForward('-L', '127.0.0.2:8081:localhost:80').options).toEqual({ localPort: 8081, localHost: '127.0.0.2', remoteHost: 'localhost', remotePort: 80 });
    expect(parseCliForward('-L', '[::1]:8080:[fe80::1]:22').options).toEqual({ localPort: 8080, localHost: '::1', remoteHost: 'fe80::1', remotePort: 22 });
    expect(parseCliForward('-R', '9000:localhost:3000')).toEqual({
      type: 'remote',
      spec: '9000:localhost:3000',
      options: { remotePort: 9000, localHost: 'localhost', localPort: 3000 },
    });
    expect(parseCliForward('-R', '*:9000:127.0.0.1:3000').options).toEqual({ remotePort: 9000, remoteHost: '0.0.0.0', localHost: '127.0.0.1', localPort: 3000 });
    expect(parseCliForward('-D', '1080')).toEqual({ type: 'dynamic', spec: '1080', options: { localPort: 1080 } });
    expect(parseCliForward('-D', '127.0.0.1:1080').options).toEqual({ localPort: 1080, localHost: '127.0.0.1' });
  });

  it('rejects malformed specs naming the accepted form', () => {
    expect(() => parseCliForward('-L', '8080')).toThrow(/expected -L \[bind_address:\]port:host:hostport/);
    expect(() => parseCliForward('-L', '70000:h:1')).toThrow(/not a valid forward/);
    expect(() => parseCliForward('-D', 'a:b:c:d')).toThrow(/expected -D \[bind_address:\]port/);
    expect(() => parseCliForward('-L', '/tmp/sock:h:1')).toThrow();
  });

  it('collects repeated -L/-R/-D and the connection options', () => {
    const p = parseForwardArgs(['-F', 'cfg', 'me@box', '-L', '1:a:2', '-L', '3:b:4', '-R', '5:c:6', '-D', '7']);
    expect(p.target).toBe('me@box');
    expect(p.forwards.map((f) => f.type)).toEqual(['local', 'local', 'remote', 'dynamic']);
    expect(p.values.config).toBe('cfg');
  });
});

describe('the built bin', () => {
  it('is an executable ESM file with a shebang', () => {
    expect(readFileSync(CLI, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(execFileSync(CLI, ['--help'], { encoding: 'utf8' })).toMatch(/ssh-tether/);
  });
});

describe('ssh-tether forward', () => {
  it('-L keeps a local forward up until SIGINT, then exits 0', async () => {
    const echo = net.createServer((s) => {
      s.on('error', () => undefined);
      s.on('data', (d) => s.write(`echo:${d.toString()}`));
    });
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const echoPort = (echo.address() as net.AddressInfo).port;
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const localPort = (probe.address() as net.AddressInfo).port;
    await new Promise((r) => probe.close(r));

    const child = spawn(process.execPath, [CLI, 'forward', ...F, 'box', '-L', `${localPort}:127.0.0.1:${echoPort}`], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, SSH_AUTH_SOCK: '' },
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    try {
      await waitFor(() => stderr.includes('forwarding -L'), 10_000);
      expect(stderr).toContain(`listening on 127.0.0.1:${localPort}`);
      const reply = await new Promise<string>((resolve, reject) => {
        const s = net.connect({ host: '127.0.0.1', port: localPort });
        s.on('error', reject);
        s.on('data', (d) => {
          s.destroy();
          resolve(d.toString());
        });
        s.write('hi');
      });
      expect(reply).toBe('echo:hi');
      child.kill('SIGINT');
      expect(await exited).toBe(0);
      expect(stderr).toContain('stopping');
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
      await new Promise((r) => echo.close(r));
    }
  });
});
