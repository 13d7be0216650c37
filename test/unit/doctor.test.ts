import { describe, expect, it } from 'vitest';
import { SshConfigError } from '../../src/errors.js';
import { DIAGNOSE_EXIT_CODES, DIAGNOSE_STEPS, parseTarget, targetClientOptions, type DiagnoseReport } from '../../src/doctor/index.js';
import { formatReport, progressLine } from '../../src/cli/commands.js';

describe('doctor target parsing', () => {
  it('splits [user@]host at the last @', () => {
    expect(parseTarget('box')).toEqual({ user: undefined, alias: 'box' });
    expect(parseTarget('me@box')).toEqual({ user: 'me', alias: 'box' });
    expect(parseTarget('a@b@box')).toEqual({ user: 'a@b', alias: 'box' });
  });

  it('rejects empty parts with ERR_SSH_CONFIG naming the field', () => {
    for (const bad of ['', '  ', '@box', 'me@']) {
      let e: unknown;
      try {
        parseTarget(bad);
      } catch (err) {
        e = err;
      }
      expect(e).toBeInstanceOf(SshConfigError);
      expect((e as SshConfigError).field).toBe('target');
    }
  });

  it('an explicit username wins over user@', () => {
    expect(targetClientOptions('me@box', { port: 2222 })).toEqual({ host: 'box', username: 'me', port: 2222 });
    expect(targetClientOptions('me@box', { username: 'other' })).toEqual({ host: 'box', username: 'other' });
  });
});

describe('doctor exit codes and report format', () => {
  it('has one distinct exit code per step, 10 + its index', () => {
    DIAGNOSE_STEPS.forEach((s, i) => expect(DIAGNOSE_EXIT_CODES[s]).toBe(10 + i));
    expect(new Set(Object.values(DIAGNOSE_EXIT_CODES)).size).toBe(DIAGNOSE_STEPS.length);
  });

  it('prints one line per step with a mark and the time, then the hint', () => {
    const r: DiagnoseReport = {
      target: 'box',
      ok: false,
      failedStep: 'tcp',
      exitCode: 12,
      steps: [
        { step: 'config', ok: true, durationMs: 1.25, detail: 'me@box:22' },
        { step: 'dns', ok: true, durationMs: 0.5, detail: 'box -> 10.0.0.1' },
        { step: 'tcp', ok: false, durationMs: 3, detail: 'refused', hint: 'is sshd running?' },
      ],
    };
    expect(formatReport(r).split('\n')).toEqual([
      'ssh-tether doctor box',
      '  ✓ config       1.3 ms  me@box:22',
      '  ✓ dns          0.5 ms  box -> 10.0.0.1',
      '  ✗ tcp          3.0 ms  refused',
      '      hint: is sshd running?',
      'failed at tcp (exit code 12)',
    ]);
  });

  it('draws a progress bar', () => {
    expect(progressLine({ transferredBytes: 512 * 1024, totalBytes: 1024 * 1024, bytesPerSecond: 2 * 1024 * 1024 }, 10)).toBe('[#####.....]  50% 512.0 KiB/1.0 MiB 2.0 MiB/s');
    expect(progressLine({ transferredBytes: 0, totalBytes: 0, bytesPerSecond: 0 }, 4)).toBe('[####] 100% 0 B/0 B 0 B/s');
  });
});
