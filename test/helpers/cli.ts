/**
 * The CLI bin for tests that run it: its path, and a build of dist/cli.js (only the CLI entry,
 * no types) when it is missing or older than src/. Under CI `npm run build` ran before the tests,
 * so the build is a no-op there.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The repository root. */
export const ROOT = new URL('../../', import.meta.url).pathname;
/** The built bin, `dist/cli.js`. */
export const CLI = join(ROOT, 'dist/cli.js');

/** Newest mtime under `dir`, recursively (bounded walk of the source tree). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Builds dist/cli.js when it is missing or older than src/ (use in `beforeAll`, 120 s bound). */
export async function ensureCliBuilt(): Promise<void> {
  let built: number;
  try {
    built = statSync(CLI).mtimeMs;
  } catch {
    built = 0;
  }
  if (built >= newest(join(ROOT, 'src'))) return;
  const { build } = await import('tsup');
  await build({
    entry: { cli: join(ROOT, 'src/cli/main.ts') },
    outDir: join(ROOT, 'dist'),
    format: ['esm'],
    dts: false,
    clean: false,
    sourcemap: true,
    target: 'node20',
    splitting: false,
    silent: true,
    config: false,
    tsconfig: join(ROOT, 'tsconfig.build.json'),
    banner: { js: '#!/usr/bin/env node' },
  });
}
