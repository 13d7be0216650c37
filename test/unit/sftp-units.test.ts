import { describe, expect, it } from 'vitest';
import { SshError } from '../../src/errors.js';
import { mapSftpError, SshSftpError, sftpStatusName } from '../../src/sftp/errors.js';
import { baseOf, joinRemote, parentOf, toStats, typeOfMode } from '../../src/sftp/paths.js';

describe('sftp errors', () => {
  it('maps SFTP status replies to SshSftpError with name, number and path', () => {
    const e = mapSftpError(Object.assign(new Error('No such file'), { code: 2 }), 'stat', '/x/y');
    expect(e).toBeInstanceOf(SshSftpError);
    expect(e).toMatchObject({ code: 'ERR_SSH_SFTP', status: 'NO_SUCH_FILE', statusCode: 2, path: '/x/y', retryable: false });
    const raw = mapSftpError(Object.assign(new Error('denied'), { code: 3 }), 'open', Buffer.from([0x61, 0xff])) as SshSftpError;
    expect(raw.status).toBe('PERMISSION_DENIED');
    expect(raw.rawPath).toEqual(Buffer.from([0x61, 0xff]));
    expect(sftpStatusName(99)).toBe('UNKNOWN');
  });

  it('maps a channel that closed with the request pending to the session death reason or ERR_SSH_CONNECTION_LOST', () => {
    const lost = new SshError('ERR_SSH_CONNECTION_LOST', 'keep-alive timeout');
    expect(mapSftpError(new Error('No response from server'), 'read', '/f', lost)).toBe(lost);
    expect(mapSftpError(new Error('No response from server'), 'read', '/f').code).toBe('ERR_SSH_CONNECTION_LOST');
    expect(mapSftpError(new Error('weird'), 'read').code).toBe('ERR_SSH_SFTP');
  });
});

describe('sftp paths', () => {
  it('joins, splits and keeps raw bytes', () => {
    expect(joinRemote('/a', 'b')).toBe('/a/b');
    expect(joinRemote('/a/', 'b')).toBe('/a/b');
    expect(joinRemote(Buffer.from('/a'), Buffer.from([0xff]))).toEqual(Buffer.from([0x2f, 0x61, 0x2f, 0xff]));
    expect(parentOf('/a/b/c')).toBe('/a/b');
    expect(parentOf('/a')).toBe('/');
    expect(parentOf('a')).toBe('.');
    expect(parentOf('/a/b/')).toBe('/a');
    expect(parentOf(Buffer.from([0x2f, 0xfe, 0x2f, 0x61]))).toEqual(Buffer.from([0x2f, 0xfe]));
    expect(baseOf('/a/b.txt').toString()).toBe('b.txt');
  });

  it('derives entry types and stats from st_mode and ATTRS', () => {
    expect(typeOfMode(0o100644)).toBe('file');
    expect(typeOfMode(0o040755)).toBe('directory');
    expect(typeOfMode(0o120777)).toBe('symlink');
    expect(typeOfMode(0o020666)).toBe('other');
    expect(typeOfMode(undefined)).toBe('other');
    const st = toStats({ size: 5, uid: 1, gid: 2, mode: 0o100600, atime: 10, mtime: 20 });
    expect(st).toEqual({ type: 'file', size: 5, mode: 0o100600, mtime: new Date(20_000), atime: new Date(10_000), uid: 1, gid: 2 });
  });
});
