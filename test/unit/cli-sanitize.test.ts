import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { sanitizeLine, sanitizeText, signalName } from '../../src/internal/sanitize.js';
import { SshError, mapConnectError } from '../../src/errors.js';
import { safeJson, formatReport } from '../../src/cli/commands.js';

// ESC, CSI (8-bit), other C0/C1 controls, DEL, lone CR: none may survive.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const DANGEROUS = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

describe('sanitizeText', () => {
  it('shows control characters escaped, keeps tab and newline and printable text', () => {
    expect(sanitizeText('a\x1b]0;pwned\x07b')).toBe('a\\x1b]0;pwned\\x07b');
    expect(sanitizeText('\x1b[2J\x1b[Hall checks passed')).toBe('\\x1b[2J\\x1b[Hall checks passed');
    expect(sanitizeText('x\u009b31my')).toBe('x\\x9b31my');
    expect(sanitizeText('tab\there\nnext')).toBe('tab\there\nnext');
    expect(sanitizeText('fake\roverwrite')).toBe('fake\\roverwrite');
    expect(sanitizeText('dos\r\nline')).toBe('dos\nline');
    expect(sanitizeText('del\x7f nul\x00')).toBe('del\\x7f nul\\x00');
    expect(sanitizeText('abc\u202edcba')).toBe('abc\\u202edcba');
    expect(sanitizeText('ünïcödé ✓ 😀')).toBe('ünïcödé ✓ 😀');
    expect(sanitizeText('lone \ud800 x')).toBe('lone \\ud800 x');
  });

  it('bounds the length', () => {
    const s = sanitizeText('x'.repeat(5000), { maxLength: 100 });
    expect(s).toBe(`${'x'.repeat(100)}…(4900 more)`);
    expect(sanitizeText('\x1b'.repeat(10), { maxLength: 8 })).toBe('\\x1b\\x1b…(8 more)');
  });

  it('sanitizeLine escapes newline and tab too', () => {
    expect(sanitizeLine('SSH-2.0-x\nall checks passed\t')).toBe('SSH-2.0-x\\nall checks passed\\t');
  });

  it('never lets a control character through (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => {
        const out = sanitizeText(s);
        expect(DANGEROUS.test(out)).toBe(false);
        expect(/\r(?!\n)/.test(out)).toBe(false);
        expect(DANGEROUS.test(sanitizeLine(s))).toBe(false);
        expect(/[\n\t\r]/.test(sanitizeLine(s))).toBe(false);
      }),
      { numRuns: 200 },
    );
  });
});

describe('signalName', () => {
  it('accepts only a signal-name token', () => {
    expect(signalName('SIGKILL')).toBe('SIGKILL');
    expect(signalName('TERM')).toBe('SIGTERM');
    expect(signalName('USR1')).toBe('SIGUSR1');
    for (const bad of ['KILL\x1b[2J', 'kill', 'SIG', '', 'TERM ', '1HUP', 'A'.repeat(40), undefined, 9]) expect(signalName(bad)).toBeNull();
  });
});

describe('server text in errors and CLI output', () => {
  it('SshError messages are sanitized, including mapped ssh2 errors (DISCONNECT description)', () => {
    expect(new SshError('ERR_SSH_SFTP', 'failed: \x1b[31mred').message).toBe('failed: \\x1b[31mred');
    const e = Object.assign(new Error('bye\x1b]2;owned\x07'), { level: 'protocol' });
    expect(mapConnectError(e).message).toBe('SSH handshake failed: bye\\x1b]2;owned\\x07');
  });

  it('the doctor report and its JSON carry no raw control characters', () => {
    const r = {
      target: 'box',
      ok: true,
      exitCode: 0,
      failedStep: undefined,
      steps: [{ step: 'banner', ok: true, durationMs: 1, detail: 'SSH-2.0-evil\x1b[2J\u009b1m', hint: 'x\ny' }],
    } as unknown as Parameters<typeof formatReport>[0];
    const text = formatReport(r);
    expect(DANGEROUS.test(text)).toBe(false);
    expect(text).toContain('SSH-2.0-evil\\x1b[2J\\x9b1m');
    const json = safeJson(r);
    expect(DANGEROUS.test(json)).toBe(false);
    expect((JSON.parse(json) as { steps: Array<{ detail: string }> }).steps[0]?.detail).toBe('SSH-2.0-evil\x1b[2J\u009b1m');
  });
});
