/**
 * The ESM and the CommonJS copies of the library loaded in one process (an app importing
 * `ssh-tether` while a dependency requires it): `instanceof SshError` and its subclasses hold
 * across the copies through the `Symbol.for('ssh-tether.SshError')` brand.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { EventEmitter } from 'eventemitter3';
import { DIST, ensureLibBuilt } from '../helpers/dist.js';

type Lib = typeof import('../../src/index.js');
type Prom = typeof import('../../src/metrics/prometheus.js');

let esm: Lib;
let cjs: Lib;

beforeAll(async () => {
  await ensureLibBuilt();
  esm = (await import(pathToFileURL(DIST.esm).href)) as Lib;
  cjs = createRequire(import.meta.url)(DIST.cjs) as Lib;
}, 120_000);

describe('dual package: ESM and CJS copies in one process', () => {
  it('are two copies (distinct classes)', () => {
    expect(esm.SshError).not.toBe(cjs.SshError);
    expect(esm.SshConfigError).not.toBe(cjs.SshConfigError);
  });

  it('instanceof SshError and a subclass hold both ways', () => {
    for (const [a, b] of [
      [esm, cjs],
      [cjs, esm],
    ] as const) {
      const base = new a.SshError('ERR_SSH_CONNECT', 'x');
      const config = new a.SshConfigError('bad option', { field: 'port' });
      const auth = new a.SshAuthError('denied', { methodsTried: ['password'] });
      expect(base instanceof b.SshError).toBe(true);
      expect(config instanceof b.SshError).toBe(true);
      expect(config instanceof b.SshConfigError).toBe(true);
      expect(auth instanceof b.SshAuthError).toBe(true);
      // not another subclass
      expect(base instanceof b.SshConfigError).toBe(false);
      expect(config instanceof b.SshAuthError).toBe(false);
      expect(auth instanceof b.SshHostKeyError).toBe(false);
      // isRetryable of one copy reads the other copy's errors as SshErrors
      expect(b.isRetryable(base)).toBe(true);
      expect(b.isRetryable(config)).toBe(false);
    }
  });

  it('a plain Error, or one dressed up with a code and name, is not an SshError in either copy', () => {
    for (const lib of [esm, cjs]) {
      expect(new Error('x') instanceof lib.SshError).toBe(false);
      const fake = Object.assign(new Error('x'), { name: 'SshConfigError', code: 'ERR_SSH_CONFIG' });
      expect(fake instanceof lib.SshError).toBe(false);
      expect(fake instanceof lib.SshConfigError).toBe(false);
    }
  });

  it('ssh-tether/prometheus (its own bundled copy) classifies an SshAuthError of the CJS copy by reason', async () => {
    const prom = (await import(pathToFileURL(DIST.prometheusEsm).href)) as Prom;
    const { Registry } = await import('prom-client');
    const registry = new Registry();
    class Stub extends EventEmitter {
      health(): unknown {
        return { state: 'idle' };
      }
    }
    const stub = new Stub();
    const unregister = prom.registerMetrics(stub as never, { registry });
    stub.emit('error', new cjs.SshAuthError('x', { methodsTried: ['publickey'], reason: 'too-many-attempts' }));
    stub.emit('error', new esm.SshAuthError('x', { methodsTried: [] }));
    const text = await registry.metrics();
    expect(text).toMatch(/^ssh_tether_auth_failures_total\{reason="too_many_attempts"\} 1$/m);
    expect(text).toMatch(/^ssh_tether_auth_failures_total\{reason="no_method"\} 1$/m);
    unregister();
  });
});
