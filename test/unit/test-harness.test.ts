/**
 * The harness's answer on a machine that lacks a server binary (issue 14 §3): install it when
 * root with apt-get, else stop at once with one line naming the command to run.
 */
import { describe, expect, it } from 'vitest';
import { ensureBinary } from '../helpers/servers.js';

describe('ensureBinary', () => {
  it('a present binary: nothing to do', async () => {
    await expect(ensureBinary('/bin/sh', 'dash', 'shell', { install: false })).resolves.toBeUndefined();
  });
  it('a missing binary without the right to install: one line naming the package and the command', async () => {
    const err = await ensureBinary('/nonexistent/usr/sbin/sshd', 'openssh-server', 'OpenSSH', { install: false }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    const message = (err as Error).message;
    expect(message).toBe('OpenSSH test server needs /nonexistent/usr/sbin/sshd: install the Debian package openssh-server (apt-get install openssh-server)');
    expect(message).not.toContain('\n');
  });
});
