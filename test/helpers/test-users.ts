/**
 * The system users the tests create when they run as root (`tether` by test/helpers/sshd.ts,
 * `tetherpw` by auth-password.test.ts, `tethersec` by security.test.ts), and their removal.
 *
 * The vitest globalSetup calls {@link claimTestUsers} first: it notes which of these users do
 * not exist yet (a marker file per user) and registers this run (a file named by its pid).
 * Its teardown calls the returned release: once no other test run on the machine is alive,
 * every user that a run created is removed with `userdel -r` (its home directory too). Users
 * that existed before are never touched. `TETHER_KEEP_TEST_USERS=1` keeps them all.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The users the test suite may create. */
export const TEST_USERS: readonly string[] = Object.freeze(['tether', 'tetherpw', 'tethersec']);

/** Shared state of the test runs on this machine (root only). */
const STATE_DIR = join(tmpdir(), 'ssh-tether-test-users');

function userExists(user: string): boolean {
  try {
    execFileSync('getent', ['passwd', user], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Registers this test run; returns the function to call when it ends. Does nothing unless
 * running as root (the suite creates users only then).
 *
 * @returns release: removes the users test runs created once no other run is alive; the
 *   names it removed (for the log).
 */
export function claimTestUsers(users: readonly string[] = TEST_USERS, stateDir = STATE_DIR): () => string[] {
  if (process.getuid?.() !== 0) return () => [];
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  for (const user of users) {
    const marker = join(stateDir, `created-${user}`);
    if (!userExists(user) && !existsSync(marker)) writeFileSync(marker, '');
  }
  const mine = join(stateDir, `run-${process.pid}`);
  writeFileSync(mine, '');
  return () => {
    rmSync(mine, { force: true });
    if (process.env.TETHER_KEEP_TEST_USERS === '1') return [];
    const others = readdirSync(stateDir).filter((f) => f.startsWith('run-') && pidAlive(Number(f.slice(4))));
    if (others.length > 0) return [];
    const removed: string[] = [];
    for (const user of users) {
      const marker = join(stateDir, `created-${user}`);
      if (!existsSync(marker)) continue;
      if (userExists(user)) {
        try {
          execFileSync('userdel', ['-r', user], { stdio: 'ignore' });
          removed.push(user);
        } catch {
          // still in use (a lingering session): leave it and its marker for the next run
          continue;
        }
      }
      rmSync(marker, { force: true });
    }
    return removed;
  };
}
