/**
 * Vitest globalSetup: starts one shared OpenSSH server for the whole run and hands its
 * description to the tests (`inject('sshd')`, or `sharedSshd()` from `test/helpers/shared.ts`).
 * Tests must not stop the shared server: start a private one with `startSshd()` for that.
 */
import type { TestProject } from 'vitest/node';
import { describeSshd, startSshd, type SshdInfo } from './helpers/sshd.js';
import { claimTestUsers } from './helpers/test-users.js';

declare module 'vitest' {
  export interface ProvidedContext {
    sshd: SshdInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // As root the suite creates the users tether, tetherpw and tethersec: remove those it created.
  const releaseUsers = claimTestUsers();
  const sshd = await startSshd();
  project.provide('sshd', describeSshd(sshd));
  return async () => {
    await sshd.stop();
    releaseUsers();
  };
}
