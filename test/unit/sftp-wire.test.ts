// The SFTP v3 packet codec (src/sftp/wire.ts), on bytes written out by hand from
// draft-ietf-secsh-filexfer-02 (sections 3, 5, 6.3, 6.4, 7): request encoding, ATTRS and NAME
// parsing (names as exact bytes), and the NAME capture over a byte stream cut anywhere.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ATTR, FXP_NAME, NameCapture, OpenFlags, PacketBuilder, REQ, encodeWriteHead, parseAttrs, parseNames, pathBytes, toRawAttrs, writeHeadLength } from '../../src/sftp/wire.js';

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n >>> 0, 0);
  return b;
};
const u64 = (n: bigint): Buffer => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(n, 0);
  return b;
};
const str = (b: Buffer | string): Buffer => {
  const x = typeof b === 'string' ? Buffer.from(b, 'utf8') : b;
  return Buffer.concat([u32(x.length), x]);
};
const packet = (type: number, id: number, body: Buffer): Buffer => Buffer.concat([u32(5 + body.length), Buffer.from([type]), u32(id), body]);

describe('request encoding', () => {
  it('OPEN: length, type, id, path bytes, pflags, ATTRS with the flags of the fields set', () => {
    const path = Buffer.from([0x2f, 0x61, 0xff, 0xfe]); // "/a" + bytes that are not UTF-8
    const got = new PacketBuilder()
      .string(path)
      .u32(OpenFlags.WRITE | OpenFlags.CREAT | OpenFlags.TRUNC)
      .attrs({ mode: 0o640 })
      .build(REQ.OPEN, 7);
    const want = packet(3, 7, Buffer.concat([str(path), u32(0x02 | 0x08 | 0x10), u32(ATTR.PERMISSIONS), u32(0o640)]));
    expect(got).toEqual(want);
  });

  it('ATTRS in draft order (size, uid/gid, permissions, atime/mtime); a time alone sets both', () => {
    const got = new PacketBuilder().attrs({ size: 2 ** 40 + 5, uid: 1000, gid: 100, mode: 0o755, mtime: 1_700_000_000.9 }).build(REQ.SETSTAT, 1);
    const flags = ATTR.SIZE | ATTR.UIDGID | ATTR.PERMISSIONS | ATTR.ACMODTIME;
    expect(got).toEqual(packet(9, 1, Buffer.concat([u32(flags), u64(2n ** 40n + 5n), u32(1000), u32(100), u32(0o755), u32(1_700_000_000), u32(1_700_000_000)])));
    expect(new PacketBuilder().attrs(undefined).build(REQ.MKDIR, 2)).toEqual(packet(14, 2, u32(0)));
  });

  it('uid without gid is refused (SFTP v3 carries both in one field)', () => {
    expect(() => new PacketBuilder().attrs({ uid: 1 })).toThrow(/uid and gid must be set together/);
  });

  it('a request id past 2^31 is written unsigned', () => {
    const b = new PacketBuilder().string('x').build(REQ.STAT, 0xfffffffe);
    expect(b.readUInt32BE(5)).toBe(0xfffffffe);
  });

  it('WRITE head: handle, 64-bit offset, data length; the packet length counts the data', () => {
    const handle = Buffer.from('hh');
    const head = encodeWriteHead(9, handle, 2 ** 33 + 17, 1000, 3);
    expect(head.length).toBe(writeHeadLength(handle) + 3);
    const want = Buffer.concat([u32(writeHeadLength(handle) - 4 + 1000), Buffer.from([6]), u32(9), str(handle), u64(2n ** 33n + 17n), u32(1000)]);
    expect(head.subarray(0, writeHeadLength(handle))).toEqual(want);
  });

  it('paths: strings as UTF-8, Buffers as given', () => {
    expect(pathBytes('/é')).toEqual(Buffer.from([0x2f, 0xc3, 0xa9]));
    const raw = Buffer.from([0xff]);
    expect(pathBytes(raw)).toBe(raw);
  });
});

describe('reply parsing', () => {
  it('ATTRS: every field, extended pairs skipped, offset after them', () => {
    const flags = ATTR.SIZE | ATTR.UIDGID | ATTR.PERMISSIONS | ATTR.ACMODTIME | ATTR.EXTENDED;
    const b = Buffer.concat([Buffer.from([0xaa]), u32(flags), u64(12345n), u32(1), u32(2), u32(0o100644), u32(10), u32(20), u32(2), str('a'), str('bb'), str('c'), str(''), Buffer.from([0xbb])]);
    const [attrs, next] = parseAttrs(b, 1);
    expect(attrs).toEqual({ size: 12345, uid: 1, gid: 2, mode: 0o100644, atime: 10, mtime: 20 });
    expect(b[next]).toBe(0xbb);
    expect(parseAttrs(u32(0), 0)).toEqual([{ size: undefined, uid: undefined, gid: undefined, mode: undefined, atime: undefined, mtime: undefined }, 4]);
  });

  it('NAME: names and long names as exact bytes (not UTF-8)', () => {
    const n1 = Buffer.from([0x61, 0xff, 0x00, 0x62]);
    const payload = Buffer.concat([Buffer.from([FXP_NAME]), u32(3), u32(2), str(n1), str('long 1'), u32(ATTR.SIZE), u64(5n), str('b'), str('long 2'), u32(0)]);
    const names = parseNames(payload);
    expect(names.map((n) => n.filename)).toEqual([n1, Buffer.from('b')]);
    expect(names[0]?.longname.toString()).toBe('long 1');
    expect(names[0]?.attrs.size).toBe(5);
    expect(names[1]?.attrs.size).toBeUndefined();
  });

  it('a NAME cut short throws RangeError (the session maps it to BAD_MESSAGE)', () => {
    const payload = Buffer.concat([Buffer.from([FXP_NAME]), u32(3), u32(2), str('a'), str('l'), u32(0)]);
    expect(() => parseNames(payload)).toThrow(RangeError);
    const lying = Buffer.concat([Buffer.from([FXP_NAME]), u32(3), u32(1), u32(100), Buffer.from('abc')]);
    expect(() => parseNames(lying)).toThrow(RangeError);
  });

  it("ssh2's parsed attrs: numbers kept, anything else absent", () => {
    expect(toRawAttrs({ size: 3, uid: '1', mode: 0o600, mtime: null })).toEqual({ size: 3, uid: undefined, gid: undefined, mode: 0o600, atime: undefined, mtime: undefined });
    expect(toRawAttrs(undefined).size).toBeUndefined();
  });
});

describe('NAME capture over the channel byte stream', () => {
  const nameA = packet(FXP_NAME, 5, Buffer.concat([u32(1), str(Buffer.from([0xc3, 0x28])), str('x'), u32(0)]));
  const other = packet(101, 6, Buffer.concat([u32(0), str('ok'), str('')]));
  const nameNotWanted = packet(FXP_NAME, 8, Buffer.concat([u32(1), str('zz'), str('x'), u32(0)]));
  const data = packet(103, 9, str(Buffer.alloc(3000, 7)));
  const stream = Buffer.concat([other, nameA, data, nameNotWanted]);

  const run = (cuts: number[]): NameCapture => {
    const cap = new NameCapture();
    cap.wanted.add(5);
    let from = 0;
    for (const c of [...cuts].sort((a, b) => a - b)) {
      cap.scan(stream.subarray(from, c));
      from = c;
    }
    cap.scan(stream.subarray(from));
    return cap;
  };

  it('keeps the whole payload of the wanted NAME reply (type byte first) wherever the stream is cut, and nothing else', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: stream.length }), { maxLength: 12 }), (cuts) => {
        const cap = run(cuts);
        expect(cap.ok).toBe(true);
        expect([...cap.captured.keys()]).toEqual([5]);
        expect(cap.captured.get(5)).toEqual(nameA.subarray(4));
        expect(parseNames(cap.captured.get(5)!)[0]?.filename).toEqual(Buffer.from([0xc3, 0x28]));
      }),
      { numRuns: 300 },
    );
    for (let c = 0; c <= stream.length; c++) expect(run([c]).captured.get(5)).toEqual(nameA.subarray(4));
  });

  it('a packet length under 5 stops the capture for good (no framing to follow)', () => {
    const cap = new NameCapture();
    cap.wanted.add(5);
    cap.scan(Buffer.concat([u32(2), Buffer.alloc(5), nameA]));
    expect(cap.ok).toBe(false);
    expect(cap.captured.size).toBe(0);
  });
});
