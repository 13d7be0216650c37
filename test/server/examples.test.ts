// The demo and the examples need nothing but `npm ci`: they run on the in-process server, import
// no test helper, and never start sshd.
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '../..');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : [],
  );
}

describe('demo and examples on a machine without sshd', () => {
  it('no example imports a test helper or names sshd', () => {
    const files = sources(path.join(ROOT, 'examples'));
    expect(files.length).toBeGreaterThanOrEqual(6);
    for (const f of files) {
      const text = readFileSync(f, 'utf8');
      expect(text, f).not.toMatch(/from ['"][^'"]*test\//);
      expect(text, f).not.toMatch(/import\(['"][^'"]*test\//);
      expect(text, f).not.toMatch(/sshd\.js|\/usr\/sbin\/sshd/);
    }
  });

  it('npm run demo (without SSH_HOST) runs every step and starts no sshd', { timeout: 180_000 }, async () => {
    const env = { ...process.env };
    delete env.SSH_HOST;
    const { stdout, stderr, code } = await new Promise<{ stdout: string; stderr: string; code: number | null }>((resolve) => {
      const child = execFile(
        process.execPath,
        ['--import', './scripts/ts-node-register.mjs', '--import', './test/server/fixtures/spawn-spy.ts', 'examples/quickstart.ts'],
        { cwd: ROOT, env, timeout: 170_000, maxBuffer: 16 * 1024 * 1024 },
        (err, out, errOut) => resolve({ stdout: out, stderr: errOut, code: err ? ((err as { code?: number }).code ?? 1) : 0 }),
      );
      child.stdin?.end();
    });
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(/started an in-process SSH server on 127\.0\.0\.1:\d+/);
    expect(stdout).toMatch(/step restart: .*reconnected in \d+ ms, same host key/);
    expect(stdout).toMatch(/step blackhole: .*\(ERR_SSH_KEEPALIVE_TIMEOUT\)/);
    expect(stdout).toMatch(/step blackhole: server\.faults\.resume\(\); the queued exec ran after the reconnect -> issued while the link was dead/);
    expect(stdout).toMatch(/closed: closed/);
    const spawned = stderr.split('\n').filter((l) => l.startsWith('SPAWN ')).map((l) => l.slice(6));
    // the spy works: the in-process server's commands are children of this very process
    expect(spawned).toContain('/bin/sh');
    expect(spawned.filter((f) => /sshd|setpriv|dropbear/.test(f))).toEqual([]);
  });
});
