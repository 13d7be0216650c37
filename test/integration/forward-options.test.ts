// Option schemas of the forwards (no server needed).
import { describe, expect, it } from 'vitest';
import { SshConfigError, SshInvalidArgError } from '../../src/errors.js';
import { forwardSpecSchema, parseForwardOptions, parseForwardSpecs } from '../../src/forward/index.js';

function configError(f: () => unknown): SshConfigError {
  try {
    f();
  } catch (e) {
    if (e instanceof SshConfigError) return e;
    throw e;
  }
  throw new Error('expected an SshConfigError');
}

/** The options of one forward are call arguments: ERR_SSH_INVALID_ARG. */
function argError(f: () => unknown): SshInvalidArgError {
  try {
    f();
  } catch (e) {
    if (e instanceof SshInvalidArgError) return e;
    throw e;
  }
  throw new Error('expected an SshInvalidArgError');
}

describe('forward options', () => {
  it('applies the defaults (loopback bind, port 0, remote bind on localhost)', () => {
    expect(parseForwardOptions('local', { remotePort: 5432 })).toEqual({ localHost: '127.0.0.1', localPort: 0, remotePort: 5432 });
    expect(parseForwardOptions('remote', { localPort: 3000 })).toEqual({ localHost: '127.0.0.1', localPort: 3000 });
    expect(parseForwardOptions('dynamic', {})).toEqual({ localHost: '127.0.0.1', localPort: 0 });
    expect(parseForwardOptions('local', { localHost: '0.0.0.0', localPort: 8080, remotePath: '/run/x.sock' })).toEqual({
      localHost: '0.0.0.0',
      localPort: 8080,
      remotePath: '/run/x.sock',
    });
  });

  it.each([-1, 65536, 1.5, Number.NaN, '22'])('rejects the port %s with ERR_SSH_INVALID_ARG naming the field', (bad) => {
    const e = argError(() => parseForwardOptions('local', { localPort: bad, remotePort: 22 }));
    expect(e.code).toBe('ERR_SSH_INVALID_ARG');
    expect(e.field).toBe('localPort');
    expect(e.message).toMatch(/integer port from 0 to 65535/);
    expect(argError(() => parseForwardOptions('remote', { localPort: 1, remotePort: bad })).field).toBe('remotePort');
    expect(argError(() => parseForwardOptions('dynamic', { localPort: bad })).field).toBe('localPort');
  });

  it('requires exactly one target of a local forward and rejects unknown keys', () => {
    expect(argError(() => parseForwardOptions('local', {})).field).toBe('remotePort');
    expect(argError(() => parseForwardOptions('local', { remotePort: 0 })).field).toBe('remotePort');
    expect(argError(() => parseForwardOptions('local', { remotePort: 1, remotePath: '/x' })).field).toBe('remotePath');
    expect(argError(() => parseForwardOptions('remote', { remotePort: 1, remotePath: '/x', localPort: 1 })).field).toBe('remotePath');
    const unknown = argError(() => parseForwardOptions('local', { remotePort: 1, bindAddress: 'x' }));
    expect(unknown.field).toBe('bindAddress');
    expect(unknown.message).toContain('localHost, localPort, remoteHost, remotePort, remotePath');
    expect(argError(() => parseForwardOptions('remote', {})).field).toBe('localPort');
  });

  it('validates SOCKS credentials without echoing them', () => {
    const e = argError(() => parseForwardOptions('dynamic', { auth: { username: 'u', password: 'x'.repeat(300) } }));
    expect(e.field).toBe('auth.password');
    expect(e.message).not.toContain('xxxx');
  });

  it('parses declared forwards by type, naming the entry of a bad one', () => {
    const specs = parseForwardSpecs([
      { type: 'local', remotePort: 80 },
      { type: 'remote', localPort: 8080, remotePort: 9000 },
      { type: 'dynamic', localPort: 1080 },
    ]);
    expect(specs.map((s) => s.type)).toEqual(['local', 'remote', 'dynamic']);
    expect(specs[0]).toMatchObject({ localHost: '127.0.0.1', localPort: 0 });
    expect(configError(() => parseForwardSpecs([{ type: 'local', remotePort: 80 }, { type: 'remote', localPort: 1, remotePort: 99999 }])).field).toBe(
      'forwards.1.remotePort',
    );
    expect(configError(() => parseForwardSpecs([{ type: 'tunnel' }])).field).toBe('forwards.0.type');
    expect(forwardSpecSchema.safeParse({ type: 'dynamic', extra: 1 }).success).toBe(false);
  });
});
