import { describe, expect, it } from 'vitest';
import { isConfinedRel, isInsideDir, isSafeName, showName, unsafeNameReason } from '../../src/sftp/paths.js';

describe('sftp name safety (issue 11 item 1, CVE-2019-6111 class)', () => {
  it('refuses names that are not one path component', () => {
    for (const bad of ['', '.', '..', '../x', 'a/b', '/abs', 'x/', 'a\0b', Buffer.from([0x61, 0x2f, 0x62]), Buffer.from([0])]) {
      expect(isSafeName(bad, false)).toBe(false);
      expect(unsafeNameReason(bad, false)).toBeTypeOf('string');
    }
  });

  it('accepts ordinary names, dots inside, non-UTF-8 bytes, and \\ on POSIX only', () => {
    for (const ok of ['a', '...', '.hidden', 'a..b', '..a', 'file.txt', Buffer.from([0xff, 0xfe]), 'a\\b']) {
      expect(isSafeName(ok, false)).toBe(true);
    }
    expect(isSafeName('a\\b', true)).toBe(false);
    expect(isSafeName('..\\x', true)).toBe(false);
  });

  it('a relative path is confined when every component is safe', () => {
    expect(isConfinedRel(Buffer.from('a/b/c.txt'), false)).toBe(true);
    for (const bad of ['', 'a/../../b', '../x', 'a//b', '/a', 'a/', 'a/./b']) expect(isConfinedRel(Buffer.from(bad), false)).toBe(false);
  });

  it('isInsideDir compares canonical paths by component, not by string prefix', () => {
    const b = (s: string): Buffer => Buffer.from(s);
    expect(isInsideDir(b('/t/root'), b('/t/root'), 0x2f)).toBe(true);
    expect(isInsideDir(b('/t/root'), b('/t/root/a/b'), 0x2f)).toBe(true);
    expect(isInsideDir(b('/t/root'), b('/t/rootkit/a'), 0x2f)).toBe(false);
    expect(isInsideDir(b('/t/root'), b('/t'), 0x2f)).toBe(false);
    expect(isInsideDir(b('/'), b('/etc'), 0x2f)).toBe(true);
  });

  it('showName escapes control characters for messages', () => {
    expect(showName('a\x1b[2Jb\0\x9b')).toBe('a\\x1b[2Jb\\x00\\x9b');
  });
});
