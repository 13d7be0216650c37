/**
 * The doctor against every server kind: the healthy path passes wherever the server has the
 * feature, and a server that allows one session per connection (tinysshd) is diagnosed as
 * such instead of being blamed for a missing SFTP subsystem. Branches on traits, never on kind.
 */
import { once } from 'node:events';
import net, { type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { diagnose, type DiagnoseOptions, type DiagnoseReport } from '../../src/doctor/index.js';
import { startTestServer, type ServerKind, type TestServer } from '../helpers/servers.js';

const KINDS: ServerKind[] = ['openssh', 'dropbear', 'asyncssh', 'tinysshd'];

function step(r: DiagnoseReport, name: string) {
  const s = r.steps.find((x) => x.step === name);
  if (!s) throw new Error(`no step ${name} in ${JSON.stringify(r.steps.map((x) => x.step))}`);
  return s;
}

describe.each(KINDS)('doctor: %s', (kind) => {
  let server: TestServer;
  let echo: net.Server;
  let echoPort = 0;
  beforeAll(async () => {
    server = await startTestServer(kind);
    echo = net.createServer((s) => {
      s.on('error', () => undefined);
      s.pipe(s);
    });
    echo.listen(0, '127.0.0.1');
    await once(echo, 'listening');
    echoPort = (echo.address() as AddressInfo).port;
  }, 60_000);
  afterAll(async () => {
    echo?.close();
    await server?.remove();
  });

  const opts = (over: DiagnoseOptions = {}): DiagnoseOptions => ({
    port: server.port,
    username: server.username,
    identityFiles: [server.privateKeyPath],
    knownHostsFiles: [server.knownHostsPath],
    globalKnownHostsFiles: [],
    agent: false,
    sshConfig: false,
    stepTimeoutMs: 10_000,
    ...over,
  });

  it('session and SFTP pass where the server has SFTP; one session per connection is named as such', async () => {
    const r = await diagnose(server.host, opts({ sftp: true }));
    expect(step(r, 'session').ok).toBe(true);
    const s = step(r, 'sftp');
    expect(s.ok).toBe(server.traits.sftp);
    if (server.traits.sessionsPerConnection === 1) {
      expect(s.detail).toMatch(/the server allows one session per connection/);
      expect(s.data?.['sessionsPerConnection']).toBe(1);
    } else {
      expect(s.detail).not.toMatch(/own connection|second connection/);
    }
    expect(r.ok).toBe(server.traits.sftp);
  });

  it('forward passes where the server has direct-tcpip, else fails without blaming SFTP', async () => {
    const r = await diagnose(server.host, opts({ forward: { host: '127.0.0.1', port: echoPort } }));
    const f = step(r, 'forward');
    expect(f.ok).toBe(server.traits.localForward);
    if (!server.traits.localForward) {
      expect(r.failedStep).toBe('forward');
      expect(f.hint).toMatch(/forwarding/);
      expect(f.hint).not.toMatch(/Subsystem/);
    }
  });
});
