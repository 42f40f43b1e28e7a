/**
 * The RTP header (RFC 3550 §5.1), RFC 8285 header extensions, and the wraparound arithmetic of
 * seq.ts. Golden packets are written byte by byte from the RFC's field layout.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  buildExtension,
  EXT_PROFILE_ONE_BYTE,
  EXT_PROFILE_TWO_BYTE,
  isRtp,
  parseExtensionElements,
  parseRtp,
  rtpHeaderLength,
  serializeRtp,
  serializeRtpToBuffer,
  type RtpPacket,
} from '../src/rtp/packet.ts';
import { PacketError } from '../src/util/errors.ts';
import { seqAdd, seqDiff, seqGt, tsAdd, tsDiff, tsGt, SEQ_MOD, TS_MOD } from '../src/rtp/seq.ts';

/** Asserts `fn` throws a PacketError whose message matches every pattern. */
function throwsPacketError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PacketError, `expected PacketError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** The serialized form of a parsed packet, as one buffer. */
function reserialize(p: RtpPacket): Buffer {
  return serializeRtpToBuffer(p);
}

describe('RTP golden packets (RFC 3550 §5.1)', () => {
  test('plain: no CSRC, no extension, no padding', () => {
    const bytes = Buffer.from([
      0x80, // V=2 P=0 X=0 CC=0
      0x60, // M=0 PT=96
      0x12, 0x34, // sequence number 0x1234
      0x11, 0x22, 0x33, 0x44, // timestamp
      0xde, 0xad, 0xbe, 0xef, // SSRC
      0x01, 0x02, 0x03, // payload
    ]);
    const p = parseRtp(bytes);
    assert.equal(p.padding, 0);
    assert.equal(p.marker, false);
    assert.equal(p.payloadType, 96);
    assert.equal(p.sequenceNumber, 0x1234);
    assert.equal(p.timestamp, 0x11223344);
    assert.equal(p.ssrc, 0xdeadbeef);
    assert.deepEqual(p.csrc, []);
    assert.equal(p.extension, undefined);
    assert.deepEqual([...p.payload], [1, 2, 3]);
    assert.equal(rtpHeaderLength(p), 12);
    assert.deepEqual(reserialize(p), bytes);
    assert.ok(isRtp(bytes));
  });

  test('two CSRCs and the marker bit', () => {
    const bytes = Buffer.from([
      0x82, // V=2 P=0 X=0 CC=2
      0xe0, // M=1 PT=96
      0xff, 0xff, // sequence number 65535
      0xff, 0xff, 0xff, 0xff, // timestamp 2^32-1
      0x00, 0x00, 0x00, 0x01, // SSRC 1
      0xca, 0xfe, 0xba, 0xbe, // CSRC 1
      0x00, 0x00, 0x00, 0x07, // CSRC 2
      0xaa, // payload
    ]);
    const p = parseRtp(bytes);
    assert.equal(p.marker, true);
    assert.equal(p.payloadType, 96);
    assert.equal(p.sequenceNumber, 65535);
    assert.equal(p.timestamp, 0xffffffff);
    assert.equal(p.ssrc, 1);
    assert.deepEqual(p.csrc, [0xcafebabe, 7]);
    assert.deepEqual([...p.payload], [0xaa]);
    assert.equal(rtpHeaderLength(p), 20);
    assert.deepEqual(reserialize(p), bytes);
  });

  test('padding: the last byte counts the pad bytes, itself included', () => {
    const bytes = Buffer.from([
      0xa0, // V=2 P=1 X=0 CC=0
      0x1a, // M=0 PT=26 (JPEG)
      0x00, 0x05, // sequence number 5
      0x00, 0x01, 0x5f, 0x90, // timestamp 90000
      0x12, 0x34, 0x56, 0x78, // SSRC
      0x10, 0x20, 0x30, // payload
      0x00, 0x00, 0x00, 0x04, // padding: three zeros and the count 4
    ]);
    const p = parseRtp(bytes);
    assert.equal(p.padding, 4);
    assert.equal(p.payloadType, 26);
    assert.equal(p.sequenceNumber, 5);
    assert.equal(p.timestamp, 90000);
    assert.deepEqual([...p.payload], [0x10, 0x20, 0x30]);
    assert.deepEqual(reserialize(p), bytes);
  });

  test('padding that takes every byte after the header leaves an empty payload', () => {
    const bytes = Buffer.from([0xa0, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x02]);
    const p = parseRtp(bytes);
    assert.equal(p.padding, 2);
    assert.equal(p.payload.length, 0);
    assert.deepEqual(reserialize(p), bytes);
  });

  test('RFC 8285 §4.2 one-byte extension, laid out like the RFC example', () => {
    const bytes = Buffer.from([
      0x90, // V=2 P=0 X=1 CC=0
      0x60, // PT=96
      0x00, 0x64, // sequence number 100
      0x00, 0x00, 0x03, 0xe8, // timestamp 1000
      0x00, 0x00, 0x00, 0x2a, // SSRC 42
      0xbe, 0xde, // "defined by profile" 0xBEDE: one-byte form
      0x00, 0x03, // length: 3 words
      0x10, 0xaa, // ID=1 L=0: one byte of data
      0x21, 0xbb, 0xcc, // ID=2 L=1: two bytes
      0x00, 0x00, // two padding bytes between elements
      0x33, 0x01, 0x02, 0x03, 0x04, // ID=3 L=3: four bytes
      0x99, // payload
    ]);
    const p = parseRtp(bytes);
    assert.equal(p.sequenceNumber, 100);
    assert.equal(p.timestamp, 1000);
    assert.equal(p.ssrc, 42);
    assert.ok(p.extension);
    assert.equal(p.extension.profile, EXT_PROFILE_ONE_BYTE);
    assert.equal(p.extension.data.length, 12);
    assert.deepEqual([...p.payload], [0x99]);
    const elements = parseExtensionElements(p.extension);
    assert.deepEqual(
      elements.map((e) => [e.id, [...e.data]]),
      [
        [1, [0xaa]],
        [2, [0xbb, 0xcc]],
        [3, [1, 2, 3, 4]],
      ],
    );
    assert.deepEqual(reserialize(p), bytes);

    // buildExtension packs the same elements without the inner padding and pads the end.
    const built = buildExtension(elements);
    assert.equal(built.profile, EXT_PROFILE_ONE_BYTE);
    assert.deepEqual([...built.data], [0x10, 0xaa, 0x21, 0xbb, 0xcc, 0x33, 1, 2, 3, 4, 0, 0]);
  });

  test('RFC 8285 §4.2: ID 15 stops processing, its length ignored', () => {
    const ext = { profile: EXT_PROFILE_ONE_BYTE, data: Buffer.from([0x10, 0xaa, 0xff, 0x21, 0xbb, 0xcc, 0, 0]) };
    assert.deepEqual(
      parseExtensionElements(ext).map((e) => [e.id, [...e.data]]),
      [[1, [0xaa]]],
    );
  });

  test('RFC 8285 §4.3 two-byte extension, laid out like the RFC example', () => {
    const bytes = Buffer.from([
      0x90, // V=2 P=0 X=1 CC=0
      0x60, // PT=96
      0x00, 0x01, // sequence number 1
      0x00, 0x00, 0x00, 0x02, // timestamp 2
      0x00, 0x00, 0x00, 0x03, // SSRC 3
      0x10, 0x00, // "defined by profile" 0x100 << 4 | appbits 0: two-byte form
      0x00, 0x03, // length: 3 words
      0x01, 0x00, // ID=1 L=0: no data (allowed in the two-byte form)
      0x14, 0x01, 0xee, // ID=20 L=1
      0x00, // padding
      0xc8, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, // ID=200 L=4
      0x55, 0x66, // payload
    ]);
    const p = parseRtp(bytes);
    assert.ok(p.extension);
    assert.equal(p.extension.profile, EXT_PROFILE_TWO_BYTE);
    assert.deepEqual([...p.payload], [0x55, 0x66]);
    const elements = parseExtensionElements(p.extension);
    assert.deepEqual(
      elements.map((e) => [e.id, [...e.data]]),
      [
        [1, []],
        [20, [0xee]],
        [200, [0x0a, 0x0b, 0x0c, 0x0d]],
      ],
    );
    assert.deepEqual(reserialize(p), bytes);

    // Element 20 does not fit the one-byte form, so buildExtension picks the two-byte form.
    const built = buildExtension(elements);
    assert.equal(built.profile, EXT_PROFILE_TWO_BYTE);
    assert.deepEqual([...built.data], [0x01, 0x00, 0x14, 0x01, 0xee, 0xc8, 0x04, 0x0a, 0x0b, 0x0c, 0x0d, 0x00]);
  });

  test('an extension profile that is not RFC 8285 is refused by parseExtensionElements', () => {
    throwsPacketError(() => parseExtensionElements({ profile: 0x1234, data: Buffer.alloc(4) }), /0x1234/);
  });
});

describe('RTP lengths that lie', () => {
  const fixed = [0x60, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]; // byte 1 onwards of the fixed header

  test('shorter than the fixed header', () => {
    throwsPacketError(() => parseRtp(Buffer.from([0x80, 0x60, 0, 1, 0, 0, 0])), /need 12 bytes, have 7/);
  });

  test('CSRC count beyond the buffer', () => {
    // CC=3 promises 12 bytes of CSRCs; only one CSRC is present.
    const bytes = Buffer.from([0x83, ...fixed, 0, 0, 0, 1]);
    throwsPacketError(() => parseRtp(bytes), /3 CSRCs/, /need 24 bytes, have 16/);
  });

  test('extension header cut short', () => {
    const bytes = Buffer.from([0x90, ...fixed, 0xbe, 0xde]);
    throwsPacketError(() => parseRtp(bytes), /need 16 bytes, have 14/);
  });

  test('extension length beyond the buffer', () => {
    // 5 words of extension promised (12 + 4 + 20 = 36 bytes), 4 bytes present.
    const bytes = Buffer.from([0x90, ...fixed, 0xbe, 0xde, 0x00, 0x05, 0x10, 0xaa, 0, 0]);
    throwsPacketError(() => parseRtp(bytes), /5 words/, /need 36 bytes, have 20/);
  });

  test('pad count larger than the bytes after the header', () => {
    const bytes = Buffer.from([0xa0, ...fixed, 1, 2, 3, 200]);
    throwsPacketError(() => parseRtp(bytes), /pad count 200/, /4 bytes/);
  });

  test('pad count reaching into the extension', () => {
    const bytes = Buffer.from([0xb0, ...fixed, 0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0, 0, 0x00, 0x06]);
    throwsPacketError(() => parseRtp(bytes), /pad count 6/, /2 bytes/);
  });

  test('pad count 0 with the P bit set', () => {
    const bytes = Buffer.from([0xa0, ...fixed, 1, 2, 3, 0]);
    throwsPacketError(() => parseRtp(bytes), /pad count is 0/);
  });

  test('pad count 0 names the byte counts', () => {
    const bytes = Buffer.from([0xa0, ...fixed, 1, 2, 3, 0]);
    throwsPacketError(() => parseRtp(bytes), /16-byte packet/);
  });

  test('version other than 2', () => {
    throwsPacketError(() => parseRtp(Buffer.from([0x40, ...fixed])), /version 1/);
    assert.equal(isRtp(Buffer.from([0x40, ...fixed])), false);
  });

  test('one-byte extension element longer than the extension', () => {
    // ID=1 L=7 wants 8 data bytes; 3 are left.
    throwsPacketError(
      () => parseExtensionElements({ profile: EXT_PROFILE_ONE_BYTE, data: Buffer.from([0x17, 1, 2, 3]) }),
      /need 8 bytes, have 3/,
    );
  });

  test('two-byte extension element longer than the extension', () => {
    throwsPacketError(
      () => parseExtensionElements({ profile: EXT_PROFILE_TWO_BYTE, data: Buffer.from([0x05, 0x09, 1, 2]) }),
      /need 9 bytes, have 2/,
    );
  });

  test('after every error the parser still parses a valid packet', () => {
    const good = Buffer.from([0x80, 0x60, 0, 9, 0, 0, 0, 1, 0, 0, 0, 2, 0x42]);
    for (const bad of [[0x83, ...fixed], [0xa0, ...fixed, 0], [0x90, ...fixed, 0xbe]]) {
      assert.throws(() => parseRtp(Buffer.from(bad)), PacketError);
      assert.equal(parseRtp(good).sequenceNumber, 9);
    }
  });
});

describe('RTP parsing returns views', () => {
  test('mutating the source buffer changes the parsed payload and extension', () => {
    const bytes = Buffer.from([0x90, 0x60, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xbe, 0xde, 0, 1, 0x10, 0xaa, 0, 0, 7, 8, 9]);
    const p = parseRtp(bytes);
    assert.deepEqual([...p.payload], [7, 8, 9]);
    bytes[20] = 0x70;
    bytes[17] = 0xab;
    assert.equal(p.payload[0], 0x70, 'payload is a view, not a copy');
    assert.equal(p.extension!.data[1], 0xab, 'extension data is a view, not a copy');
    assert.equal(p.payload.buffer, bytes.buffer);
  });

  test('serializeRtp hands back the payload chunks themselves', () => {
    const a = Buffer.from([1, 2]);
    const b = Buffer.from([3]);
    const parts = serializeRtp({ padding: 0, marker: true, payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3, csrc: [], payload: [a, b] });
    assert.equal(parts.length, 3);
    assert.equal(parts[1], a);
    assert.equal(parts[2], b);
  });

  test('serializeRtp refuses fields that do not fit the header', () => {
    const base = { padding: 0, marker: false, payloadType: 96, sequenceNumber: 1, timestamp: 2, ssrc: 3, payload: Buffer.alloc(0) };
    throwsPacketError(() => serializeRtp({ ...base, csrc: new Array(16).fill(1) }), /16 CSRCs/);
    throwsPacketError(() => serializeRtp({ ...base, csrc: [], extension: { profile: 0xbede, data: Buffer.alloc(3) } }), /3 bytes/);
    throwsPacketError(() => serializeRtp({ ...base, csrc: [], padding: 256 }), /padding 256/);
  });
});

describe('RTP properties', () => {
  test('random bytes: parseRtp returns or throws PacketError, and never writes to its input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 80 }), fc.boolean(), (arr, forceV2) => {
        const buf = Buffer.from(arr);
        // Half the cases get version 2 so the parser goes past the first check.
        if (forceV2 && buf.length > 0) buf[0] = (buf[0] & 0x3f) | 0x80;
        const before = Buffer.from(buf);
        try {
          const p = parseRtp(buf);
          if (p.extension) {
            try {
              parseExtensionElements(p.extension);
            } catch (e) {
              if (!(e instanceof PacketError)) throw e;
            }
          }
        } catch (e) {
          if (!(e instanceof PacketError)) throw e;
        }
        assert.deepEqual(buf, before);
      }),
      { numRuns: 3000 },
    );
  });

  const packetArb = fc.record({
    padding: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })),
    marker: fc.boolean(),
    payloadType: fc.integer({ min: 0, max: 127 }),
    sequenceNumber: fc.integer({ min: 0, max: 0xffff }),
    timestamp: fc.integer({ min: 0, max: 0xffffffff }),
    ssrc: fc.integer({ min: 0, max: 0xffffffff }),
    csrc: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 15 }),
    extension: fc.option(
      fc.record({
        profile: fc.integer({ min: 0, max: 0xffff }),
        data: fc.integer({ min: 0, max: 8 }).chain((w) => fc.uint8Array({ minLength: w * 4, maxLength: w * 4 })),
      }),
      { nil: undefined },
    ),
    payload: fc.uint8Array({ maxLength: 64 }),
  });

  test('parse(serialize(p)) = p and serialize(parse(x)) = x for random valid packets', () => {
    fc.assert(
      fc.property(packetArb, (raw) => {
        const p: RtpPacket = {
          ...raw,
          extension: raw.extension && { profile: raw.extension.profile, data: Buffer.from(raw.extension.data) },
          payload: Buffer.from(raw.payload),
        };
        const bytes = serializeRtpToBuffer(p);
        const before = Buffer.from(bytes);
        const q = parseRtp(bytes);
        assert.equal(q.padding, p.padding);
        assert.equal(q.marker, p.marker);
        assert.equal(q.payloadType, p.payloadType);
        assert.equal(q.sequenceNumber, p.sequenceNumber);
        assert.equal(q.timestamp, p.timestamp);
        assert.equal(q.ssrc, p.ssrc);
        assert.deepEqual(q.csrc, p.csrc);
        assert.deepEqual(q.extension, p.extension);
        assert.deepEqual(q.payload, p.payload);
        assert.deepEqual(serializeRtpToBuffer(q), bytes);
        assert.deepEqual(bytes, before);
      }),
      { numRuns: 1000 },
    );
  });

  test('buildExtension then parseExtensionElements gives the elements back', () => {
    const oneByte = fc.array(
      fc.record({ id: fc.integer({ min: 1, max: 14 }), data: fc.uint8Array({ minLength: 1, maxLength: 16 }) }),
      { maxLength: 6 },
    );
    const twoByte = fc.array(
      fc.record({ id: fc.integer({ min: 1, max: 255 }), data: fc.uint8Array({ minLength: 0, maxLength: 40 }) }),
      { maxLength: 6 },
    );
    fc.assert(
      fc.property(fc.oneof(oneByte, twoByte), (els) => {
        const elements = els.map((e) => ({ id: e.id, data: Buffer.from(e.data) }));
        const ext = buildExtension(elements);
        assert.equal(ext.data.length % 4, 0);
        assert.deepEqual(parseExtensionElements(ext), elements);
      }),
      { numRuns: 500 },
    );
  });
});

describe('RFC 5761 demultiplexing: isRtp', () => {
  test('payload types 64-95 are RTCP territory whatever the marker bit', () => {
    const pkt = (b1: number) => Buffer.from([0x80, b1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(isRtp(pkt(63)), true); // PT 63
    assert.equal(isRtp(pkt(64)), false); // PT 64
    assert.equal(isRtp(pkt(95)), false); // PT 95
    assert.equal(isRtp(pkt(96)), true); // PT 96
    assert.equal(isRtp(pkt(0x80 | 63)), true); // M=1 PT 63: byte 191
    assert.equal(isRtp(pkt(0x80 | 64)), false); // byte 192 = RTCP SR
    assert.equal(isRtp(pkt(0x80 | 95)), false); // byte 223
    assert.equal(isRtp(pkt(0x80 | 96)), true); // byte 224
    assert.equal(isRtp(pkt(96).subarray(0, 11)), false, 'shorter than the fixed header');
  });
});

describe('seq.ts wraparound arithmetic (RFC 3550 §5.1, A.1)', () => {
  test('16-bit sequence numbers at 65535 → 0', () => {
    assert.equal(seqAdd(65535, 1), 0);
    assert.equal(seqAdd(0, -1), 65535);
    assert.equal(seqAdd(65530, 10), 4);
    assert.equal(seqAdd(5, -65536), 5);
    assert.equal(seqDiff(65535, 0), 1);
    assert.equal(seqDiff(0, 65535), -1);
    assert.equal(seqDiff(65000, 100), 636);
    assert.equal(seqDiff(7, 7), 0);
    assert.equal(seqDiff(0, 32767), 32767);
    assert.equal(seqDiff(0, 32768), -32768, 'half-way is read as behind');
    assert.equal(seqGt(0, 65535), true);
    assert.equal(seqGt(65535, 0), false);
    assert.equal(seqGt(1, 1), false);
  });

  test('32-bit timestamps at 2^32 → 0', () => {
    assert.equal(tsAdd(0xffffffff, 1), 0);
    assert.equal(tsAdd(0xfffffff0, 0x20), 0x10);
    assert.equal(tsAdd(0, -1), 0xffffffff);
    assert.equal(tsDiff(0xffffffff, 0), 1);
    assert.equal(tsDiff(0, 0xffffffff), -1);
    assert.equal(tsDiff(0xfffe7960, 3000), 103000); // 2^32 - 100000 → 3000 is 103000 ticks
    assert.equal(tsDiff(0, 0x7fffffff), 0x7fffffff);
    assert.equal(tsDiff(0, 0x80000000), -0x80000000);
    assert.equal(tsGt(5, 0xfffffff0), true);
    assert.equal(tsGt(0xfffffff0, 5), false);
  });

  const seq = fc.integer({ min: 0, max: SEQ_MOD - 1 });
  const ts = fc.integer({ min: 0, max: TS_MOD - 1 });

  test('seqAdd and seqDiff undo each other; seqGt is a strict order within half the space', () => {
    fc.assert(
      fc.property(seq, seq, fc.integer({ min: -32768, max: 32767 }), (a, b, n) => {
        assert.equal(seqAdd(a, seqDiff(a, b)), b);
        assert.equal(seqDiff(a, seqAdd(a, n)), n);
        const r = seqAdd(a, n);
        assert.ok(r >= 0 && r < SEQ_MOD && Number.isInteger(r));
        if (a !== b && Math.abs(seqDiff(a, b)) !== 32768) {
          assert.notEqual(seqGt(a, b), seqGt(b, a));
          assert.equal(seqDiff(a, b), -seqDiff(b, a));
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('tsAdd and tsDiff undo each other; tsGt is a strict order within half the space', () => {
    fc.assert(
      fc.property(ts, ts, fc.integer({ min: -0x80000000, max: 0x7fffffff }), (a, b, n) => {
        assert.equal(tsAdd(a, tsDiff(a, b)), b);
        assert.equal(tsDiff(a, tsAdd(a, n)), n);
        const r = tsAdd(a, n);
        assert.ok(r >= 0 && r < TS_MOD && Number.isInteger(r));
        if (a !== b && Math.abs(tsDiff(a, b)) !== 0x80000000) {
          assert.notEqual(tsGt(a, b), tsGt(b, a));
          assert.equal(tsDiff(a, b), -tsDiff(b, a));
        }
      }),
      { numRuns: 2000 },
    );
  });
});
