// The zero-copy DATA reply path (src/sftp/inbound.ts), on synthetic SFTP v3 byte streams cut at
// every possible place: diverted replies must fill their read buffers exactly as ssh2's handler
// would, and every other byte must reach ssh2's parser unchanged and in order.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DataReplySplitter } from '../../src/sftp/inbound.js';
import { readRequestTable } from '../../src/ssh2/sftp.js';

const DATA = 103;
const STATUS = 101;
const NAME = 104;

function packet(type: number, id: number, body: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32BE(5 + body.length, 0);
  head[4] = type;
  head.writeUInt32BE(id, 5);
  return Buffer.concat([head, body]);
}

function str(b: Buffer): Buffer {
  const l = Buffer.alloc(4);
  l.writeUInt32BE(b.length, 0);
  return Buffer.concat([l, b]);
}

const dataReply = (id: number, data: Buffer, trailing = Buffer.alloc(0)): Buffer => packet(DATA, id, Buffer.concat([str(data), trailing]));
const status = (id: number, code: number): Buffer => packet(STATUS, id, Buffer.concat([Buffer.from([0, 0, 0, code]), str(Buffer.from('msg')), str(Buffer.alloc(0))]));

interface Done {
  id: number;
  nb: number;
  bytes: Buffer;
  error?: { code: string; reason: string | undefined };
}

/** A splitter over a fake ssh2 request table; returns what was passed on and what completed. */
function harness(requests: Record<number, number>, opts: { maxInPktLen?: number; version?: number } = {}) {
  const done: Done[] = [];
  const passed: Buffer[] = [];
  // a stand-in for ssh2's fields, read through the same table as the real session (src/ssh2/sftp.ts)
  const target: { _requests: Record<number, { buffer: Buffer; cb: unknown } | undefined>; _maxInPktLen: number; _version: number; _debug: undefined } = {
    _requests: {},
    _maxInPktLen: opts.maxInPktLen ?? 256 * 1024,
    _version: opts.version ?? 3,
    _debug: undefined,
  };
  for (const [id, size] of Object.entries(requests)) {
    const buffer = Buffer.alloc(size, 0xee);
    target._requests[Number(id)] = {
      buffer,
      cb: (err: unknown, buf: Buffer, nb: number) => {
        if (err !== undefined) {
          const e = err as { code: string; reason?: string };
          done.push({ id: Number(id), nb: -1, bytes: Buffer.alloc(0), error: { code: e.code, reason: e.reason } });
          return;
        }
        expect(buf).toBe(buffer);
        done.push({ id: Number(id), nb, bytes: Buffer.from(buf.subarray(0, nb)) });
      },
    };
  }
  const splitter = new DataReplySplitter(readRequestTable(target), (c) => passed.push(Buffer.from(c)));
  return { splitter, target, done, passed: () => Buffer.concat(passed) };
}

function feed(splitter: DataReplySplitter, stream: Buffer, cuts: number[]): void {
  const points = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const c of [...points, stream.length]) {
    if (c > prev) splitter.push(stream.subarray(prev, c));
    prev = Math.max(prev, c);
  }
}

describe('DataReplySplitter', () => {
  const payloadA = Buffer.from(Array.from({ length: 700 }, (_, i) => i & 0xff));
  const payloadB = Buffer.from('tail bytes of the file');
  // DATA for 1 and 2 (requests waiting), STATUS for 3 (EOF), NAME for 4, DATA for 9 (nobody waits)
  const others = [status(3, 1), packet(NAME, 4, Buffer.concat([Buffer.from([0, 0, 0, 1]), str(Buffer.from([0x66, 0xff])), str(Buffer.from('long')), Buffer.alloc(4)])), dataReply(9, Buffer.from('orphan'))];
  const stream = Buffer.concat([dataReply(1, payloadA), others[0]!, others[1]!, dataReply(2, payloadB, Buffer.from('junk')), others[2]!]);

  it('copies DATA replies into their waiting buffers and passes every other packet on, whole and in order, wherever the stream is cut', () => {
    fc.assert(
      fc.property(fc.array(fc.nat(stream.length), { maxLength: 40 }), (cuts) => {
        const h = harness({ 1: 1024, 2: 64 });
        feed(h.splitter, stream, cuts);
        expect(h.done).toEqual([
          { id: 1, nb: payloadA.length, bytes: payloadA },
          { id: 2, nb: payloadB.length, bytes: payloadB },
        ]);
        expect(h.target._requests[1]).toBeUndefined();
        expect(h.target._requests[2]).toBeUndefined();
        expect(h.passed()).toEqual(Buffer.concat(others));
      }),
      { numRuns: 300 },
    );
    // every single cut point, one at a time
    for (let c = 0; c <= stream.length; c++) {
      const h = harness({ 1: 1024, 2: 64 });
      feed(h.splitter, stream, [c]);
      expect(h.done.map((d) => d.nb)).toEqual([payloadA.length, payloadB.length]);
      expect(h.passed()).toEqual(Buffer.concat(others));
    }
  });

  it('a DATA reply longer than the read asked for fails the read with an ERR_SSH_SFTP protocol error (issue 11 item 3), in any cut', () => {
    for (const cuts of [[3, 17, 50], [], [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14]]) {
      const h = harness({ 1: 100, 2: 1024 });
      feed(h.splitter, Buffer.concat([dataReply(1, payloadA), dataReply(2, payloadA.subarray(0, 10))]), cuts);
      expect(h.done).toEqual([
        { id: 1, nb: -1, bytes: Buffer.alloc(0), error: { code: 'ERR_SSH_SFTP', reason: 'protocol' } },
        { id: 2, nb: 10, bytes: payloadA.subarray(0, 10) },
      ]);
    }
  });

  it('hands a malformed DATA reply (string longer than its packet) to ssh2 byte for byte', () => {
    const bad = packet(DATA, 1, Buffer.concat([Buffer.from([0, 0, 1, 0]), Buffer.from('short')]));
    const after = status(5, 0);
    for (let c = 0; c <= bad.length + after.length; c++) {
      const h = harness({ 1: 1024 });
      feed(h.splitter, Buffer.concat([bad, after]), [c]);
      expect(h.done).toEqual([]);
      expect(h.passed()).toEqual(Buffer.concat([bad, after]));
    }
  });

  it('passes everything through before the VERSION packet and above ssh2 packet limit', () => {
    const reply = dataReply(1, payloadA);
    const early = harness({ 1: 1024 }, { version: -1 });
    feed(early.splitter, reply, [10]);
    expect(early.done).toEqual([]);
    expect(early.passed()).toEqual(reply);
    const big = harness({ 1: 1024 }, { maxInPktLen: 100 });
    feed(big.splitter, reply, [10]);
    expect(big.done).toEqual([]);
    expect(big.passed()).toEqual(reply);
  });

  it('gives up framing on a packet length below 5 and passes all later bytes through', () => {
    const broken = Buffer.concat([Buffer.from([0, 0, 0, 1, 9, 9, 9, 9, 9]), dataReply(1, payloadB)]);
    const h = harness({ 1: 1024 });
    feed(h.splitter, broken, [4, 12]);
    expect(h.done).toEqual([]);
    expect(h.passed()).toEqual(broken);
  });
});
