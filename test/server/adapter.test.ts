// test/helpers/inproc-server.ts: the in-process server in the TestServer shape, driven through the
// same client helper the other server kinds use (key file + known_hosts file).
import { describe, expect, it } from 'vitest';
import { existsSync } from 'node:fs';
import { SshClient } from '../../src/index.js';
import { clientOptions } from '../helpers/client.js';
import { startInprocServer } from '../helpers/inproc-server.js';
import { untilState } from './util.js';

describe('inproc TestServer adapter', () => {
  it('logs in with the key and known_hosts files, shares homeDir between exec and SFTP, stops and starts', async () => {
    const ts = await startInprocServer({ extra: { maxSessions: 4 } });
    try {
      expect(ts.kind).toBe('inproc');
      const ssh = new SshClient(clientOptions(ts, { keepaliveIntervalMs: 300, keepaliveCountMax: 2, reconnect: { minDelayMs: 50, maxDelayMs: 300 } }));
      ssh.on('error', () => undefined);
      try {
        await ssh.connect();
        expect((await ssh.exec('pwd')).stdout).toBe(`${ts.homeDir}\n`);
        const sftp = await ssh.sftp();
        await sftp.writeFile(`${ts.homeDir}/via-sftp.txt`, 'x');
        expect((await ssh.exec('cat via-sftp.txt')).stdout).toBe('x');
        const reconnecting = untilState(ssh, 'reconnecting');
        await ts.stop();
        await reconnecting;
        const ready = untilState(ssh, 'ready');
        await ts.start();
        await ready;
        expect((await ssh.exec('echo back')).stdout).toBe('back\n');
      } finally {
        await ssh.close();
      }
    } finally {
      await ts.remove();
    }
    expect(existsSync(ts.homeDir)).toBe(false);
    expect(existsSync(ts.privateKeyPath)).toBe(false);
  });
});
