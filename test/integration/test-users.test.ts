import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { claimTestUsers } from '../helpers/test-users.js';

const root = process.getuid?.() === 0;

function exists(user: string): boolean {
  try {
    execFileSync('getent', ['passwd', user], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('system users made by the test suite (as root)', () => {
  it('removes a user created during the run, with its home, and keeps one that existed before', () => {
    const state = mkdtempSync(join(tmpdir(), 'tether-users-'));
    const created = `tthu${process.pid % 100000}`;
    const before = `tthk${process.pid % 100000}`;
    try {
      if (!root) {
        expect(claimTestUsers([created], state)()).toEqual([]);
        return;
      }
      execFileSync('useradd', ['-m', '-s', '/bin/sh', before], { stdio: 'ignore' });
      expect(exists(created)).toBe(false);
      const release = claimTestUsers([created, before], state);
      execFileSync('useradd', ['-m', '-s', '/bin/sh', created], { stdio: 'ignore' });
      expect(existsSync(`/home/${created}`)).toBe(true);
      // another live run (this process's parent stands in for it) defers the removal
      writeFileSync(join(state, `run-${process.ppid}`), '');
      expect(release()).toEqual([]);
      expect(exists(created)).toBe(true);
      rmSync(join(state, `run-${process.ppid}`));
      const again = claimTestUsers([created, before], state);
      expect(again()).toEqual([created]);
      expect(exists(created)).toBe(false);
      expect(existsSync(`/home/${created}`)).toBe(false);
      expect(exists(before)).toBe(true);
    } finally {
      for (const u of [created, before]) if (root && exists(u)) execFileSync('userdel', ['-r', u], { stdio: 'ignore' });
      rmSync(state, { recursive: true, force: true });
    }
  });
});
