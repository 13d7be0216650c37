/**
 * The shared test helpers (issue 12 §6): one `waitFor`, `useClients()` (every client a test makes
 * is closed after it), and one ssh_config writer. Import from here rather than writing a local
 * copy in a test file. (`waitFor` itself lives in ./wait.ts, free of vitest, so non-test scripts
 * such as the bench can use it too.)
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach } from 'vitest';
import { SshClient, type SshClientOptions } from '../../src/index.js';

export { waitFor } from './wait.js';

/** Anything `useClients()` can close: an SshClient, an SshGroup, a server handle... */
export interface Closable {
  close(): Promise<unknown>;
}

/** What {@link useClients} returns: make-and-track for options, track for a made object. */
export interface TrackClients {
  /** A new {@link SshClient} for `options`, closed after the test. */
  (options: SshClientOptions): SshClient;
  /** Tracks `thing` (closed after the test) and returns it. */
  <T extends Closable>(thing: T): T;
  /** Closes everything tracked so far now (in parallel); the hook calls this too. */
  closeAll(): Promise<void>;
}

/**
 * Registers an `afterEach` (or, with `{ after: 'all' }`, an `afterAll`) hook in the current
 * file or `describe` that closes every client made or tracked through the returned function.
 * Call it at module level or inside `describe`, not inside a test.
 *
 * @example
 * ```ts
 * const track = useClients();
 * it('...', async () => {
 *   const ssh = track(clientOptions(info));      // new SshClient, closed after the test
 *   const group = track(new SshGroup(hosts));    // any object with close()
 * });
 * ```
 */
export function useClients(options: { after?: 'each' | 'all' } = {}): TrackClients {
  const tracked: Closable[] = [];
  const closeAll = async (): Promise<void> => {
    const list = tracked.splice(0);
    const results = await Promise.allSettled(list.map((c) => c.close()));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  const track = ((thing: SshClientOptions | Closable): Closable => {
    const c = typeof (thing as Partial<Closable>).close === 'function' ? (thing as Closable) : new SshClient(thing as SshClientOptions);
    tracked.push(c);
    return c;
  }) as TrackClients;
  track.closeAll = closeAll;
  (options.after === 'all' ? afterAll : afterEach)(closeAll);
  return track;
}

/** One `Host` block of {@link writeSshConfig}: `host` is the pattern list, the rest are keywords. */
export interface SshConfigBlock {
  /** `Host` patterns, e.g. `'primary'`, `'*'`, `'box *.lan'`. */
  host: string;
  /** ssh_config keywords as written (`HostName`, `Port`, `IdentityFile`...); an array repeats the line. */
  [keyword: string]: string | number | boolean | readonly (string | number)[] | undefined;
}

/**
 * Writes an ssh_config file (mode 0600) into `dir` (default: a new temp dir) and returns its
 * path. `config` is either the file's text or `Host` blocks: each keyword becomes
 * `  Keyword value` (booleans `yes`/`no`, arrays one line per value, `undefined` skipped).
 *
 * @example
 * ```ts
 * const file = writeSshConfig([{ host: 'primary', HostName: '127.0.0.1', Port: 2222, IdentityFile: [key] }]);
 * ```
 */
export function writeSshConfig(config: string | readonly SshConfigBlock[], dir?: string, name = 'ssh_config'): string {
  const text =
    typeof config === 'string'
      ? config
      : config
          .map(({ host, ...keywords }) => {
            const lines = [`Host ${host}`];
            for (const [k, v] of Object.entries(keywords)) {
              if (v === undefined) continue;
              const values = Array.isArray(v) ? v : [v];
              for (const x of values) lines.push(`  ${k} ${typeof x === 'boolean' ? (x ? 'yes' : 'no') : String(x)}`);
            }
            return `${lines.join('\n')}\n`;
          })
          .join('');
  const file = join(dir ?? mkdtempSync(join(tmpdir(), 'tether-ssh-config-')), name);
  writeFileSync(file, text, { mode: 0o600 });
  return file;
}
