// Keyboard-interactive (RFC 4256) prompts answered by `password` (issue 11 item 8, first bullet):
// the password answers only non-echoed password prompts; an echoed "Username:" or a one-time code
// never receives it. An ssh2 `Server` asks the prompts (sshd offers keyboard-interactive only
// through PAM, which the harness does not run) and records every answer it receives.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { SshClient, SshError, type SshClientOptions } from '../../src/index.js';

const PASSWORD = 'Kbd-pw-51c9';
const OTP = '424242';
type Round = Array<{ prompt: string; echo: boolean }>;

/** Which rounds the server asks, per username; every answer it received, per connection. */
const scripts: Record<string, Round[]> = {
  // an echoed username prompt beside a password prompt
  mixed: [
    [
      { prompt: 'Username: ', echo: true },
      { prompt: 'Password: ', echo: false },
    ],
  ],
  // a password round only
  plain: [[{ prompt: "someone@box's password: ", echo: false }]],
  // a password round, then a one-time code round (not echoed either)
  otp: [[{ prompt: 'Password: ', echo: false }], [{ prompt: 'Verification code: ', echo: false }]],
};
const expected: Record<string, string[][]> = {
  mixed: [['someone', PASSWORD]],
  plain: [[PASSWORD]],
  otp: [[PASSWORD], [OTP]],
};
const received: Record<string, string[][]> = {};

const dir = mkdtempSync(join(tmpdir(), 'tether-kbd-'));
let server: ssh2.Server;
let port = 0;
let knownHosts = '';
const clients: SshClient[] = [];

beforeAll(async () => {
  const keyPath = join(dir, 'host');
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
  server = new ssh2.Server({ hostKeys: [readFileSync(keyPath)] }, (conn) => {
    conn.on('error', () => undefined);
    conn.on('authentication', (ctx) => {
      if (ctx.method !== 'keyboard-interactive') return ctx.reject(['keyboard-interactive']);
      const rounds = scripts[ctx.username];
      const want = expected[ctx.username];
      if (!rounds || !want) return ctx.reject();
      const got: string[][] = (received[ctx.username] = []);
      const ask = (i: number): void => {
        ctx.prompt(rounds[i] as Round, 'tether-login', `round ${i + 1}`, (answers) => {
          got.push([...answers]);
          if (JSON.stringify(answers) !== JSON.stringify(want[i])) return ctx.reject();
          if (i + 1 < rounds.length) return ask(i + 1);
          ctx.accept();
        });
      };
      ask(0);
    });
    conn.on('ready', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  knownHosts = join(dir, 'known_hosts');
  writeFileSync(knownHosts, `[127.0.0.1]:${port} ${readFileSync(`${keyPath}.pub`, 'utf8').split(' ').slice(0, 2).join(' ')}\n`);
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const options = (username: string, o: Partial<SshClientOptions>): SshClientOptions => ({
  host: '127.0.0.1',
  port,
  username,
  knownHostsFiles: [knownHosts],
  globalKnownHostsFiles: [],
  identityFiles: [],
  agent: false,
  sshConfig: false,
  reconnect: false,
  keepaliveIntervalMs: 0,
  ...o,
});

const connect = async (username: string, o: Partial<SshClientOptions>): Promise<unknown> => {
  const ssh = new SshClient(options(username, o));
  clients.push(ssh);
  return ssh.connect().then(
    () => 'connected',
    (e: unknown) => e,
  );
};

describe('keyboard-interactive with a password and no callback', () => {
  it('an echoed "Username:" beside "Password:": the password is never sent; ERR_SSH_AUTH names the prompt', async () => {
    const err = await connect('mixed', { password: PASSWORD });
    expect(err).toBeInstanceOf(SshError);
    expect((err as SshError).code).toBe('ERR_SSH_AUTH');
    expect((err as SshError).message).toContain('"Username: " (echoed) is not a password prompt');
    expect((err as SshError).message).toContain('keyboardInteractive callback');
    expect((err as SshError).message).not.toContain(PASSWORD);
    expect(received['mixed']).toEqual([['', '']]);
  });

  it('a round of one non-echoed password prompt is answered with the password and logs in', async () => {
    expect(await connect('plain', { password: PASSWORD })).toBe('connected');
    expect(received['plain']).toEqual([[PASSWORD]]);
  });

  it('a later one-time-code round ("Verification code:", not echoed) does not get the password', async () => {
    const err = await connect('otp', { password: PASSWORD });
    expect((err as SshError).code).toBe('ERR_SSH_AUTH');
    expect((err as SshError).message).toContain('"Verification code: " (not echoed) is not a password prompt');
    expect(received['otp']).toEqual([[PASSWORD], ['']]);
  });
});

describe('keyboard-interactive with a callback', () => {
  it('the callback answers every prompt (echoed ones included) and logs in', async () => {
    const asked: Round[] = [];
    const r = await connect('mixed', {
      password: 'not-used',
      keyboardInteractive: (prompts) => {
        asked.push([...prompts]);
        return ['someone', PASSWORD];
      },
    });
    expect(r).toBe('connected');
    expect(asked).toEqual(scripts['mixed']);
    expect(received['mixed']).toEqual([['someone', PASSWORD]]);
  });

  it('with the callback, a password round and an OTP round both go to it', async () => {
    const r = await connect('otp', { keyboardInteractive: (prompts) => [prompts[0]?.prompt.startsWith('Password') ? PASSWORD : OTP] });
    expect(r).toBe('connected');
    expect(received['otp']).toEqual([[PASSWORD], [OTP]]);
  });
});
