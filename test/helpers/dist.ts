/**
 * The library as published: `dist/index.js` (ESM), `dist/index.cjs` (CommonJS) and
 * `dist/prometheus.{js,cjs}`, built (without types) when missing or older than src/. Under CI
 * `npm run build` ran before the tests, so the build is a no-op there.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

/** The repository root. */
export const ROOT = new URL('../../', import.meta.url).pathname;
/** The built entry points. */
export const DIST = {
  esm: join(ROOT, 'dist/index.js'),
  cjs: join(ROOT, 'dist/index.cjs'),
  prometheusEsm: join(ROOT, 'dist/prometheus.js'),
  prometheusCjs: join(ROOT, 'dist/prometheus.cjs'),
} as const;

/** Newest mtime under `dir`, recursively (bounded walk of the source tree). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function mtime(p: string): number {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return 0;
  }
}

/** Builds the ESM and CJS library entries into dist/ when missing or stale (use in `beforeAll`, 120 s bound). */
export async function ensureLibBuilt(): Promise<void> {
  const built = Math.min(...Object.values(DIST).map(mtime));
  if (built >= newest(join(ROOT, 'src'))) return;
  const { build } = await import('tsup');
  await build({
    entry: { index: join(ROOT, 'src/index.ts'), prometheus: join(ROOT, 'src/metrics/prometheus.ts') },
    outDir: join(ROOT, 'dist'),
    format: ['esm', 'cjs'],
    dts: false,
    clean: false,
    sourcemap: true,
    target: 'node20',
    splitting: false,
    treeshake: true,
    silent: true,
    config: false,
    tsconfig: join(ROOT, 'tsconfig.build.json'),
  });
}
