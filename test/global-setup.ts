/**
 * Vitest globalSetup: starts one shared OpenSSH server for the whole run and hands its
 * description to the tests (`inject('sshd')`, or `sharedSshd()` from `test/helpers/shared.ts`).
 * Tests must not stop the shared server: start a private one with `startSshd()` for that.
 */
import type { TestProject } from 'vitest/node';
import { describeSshd, startSshd, type SshdInfo } from './helpers/sshd.js';
import { claimTestUsers } from './helpers/test-users.js';
import { ensureBinary } from './helpers/servers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    sshd: SshdInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // As root the suite creates the users tether, tetherpw and tethersec: remove those it created.
  // A fresh machine without OpenSSH's server: install it (root with apt-get), or stop at once
  // with one line naming the command to run. No suite is skipped silently.
  await ensureBinary('/usr/sbin/sshd', 'openssh-server', 'OpenSSH');
  await ensureBinary('/usr/bin/ssh-keygen', 'openssh-client', 'OpenSSH');
  const releaseUsers = claimTestUsers();
  const sshd = await startSshd();
  project.provide('sshd', describeSshd(sshd));
  return async () => {
    await sshd.stop();
    releaseUsers();
  };
}
