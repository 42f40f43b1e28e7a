/**
 * RTCP (RFC 3550 §6), Generic NACK and PLI (RFC 4585 §6.2.1, §6.3.1) and RFC 5761 demultiplexing.
 * Golden packets are written byte by byte from the RFC diagrams; each is parsed with every field
 * checked and serialized back to the same bytes.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  isRtcp,
  parseRtcp,
  serializeRtcp,
  RTCP_SR,
  RTCP_RR,
  RTCP_SDES,
  RTCP_BYE,
  RTCP_APP,
  RTCP_RTPFB,
  RTCP_PSFB,
  SDES_CNAME,
  SDES_TOOL,
  type RtcpPacket,
  type ReportBlock,
} from '../src/transport/rtcp.ts';
import { isRtp } from '../src/rtp/packet.ts';
import { PacketError } from '../src/util/errors.ts';
import { ntpMiddle32 } from '../src/transport/ntp.ts';
import { seqAdd } from '../src/rtp/seq.ts';

function throwsPacketError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PacketError, `expected PacketError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** Parses `bytes`, checks the result, and checks that serializing it gives `bytes` back. */
function golden(bytes: Buffer, expected: RtcpPacket[]): void {
  const before = Buffer.from(bytes);
  const parsed = parseRtcp(bytes);
  assert.deepEqual(parsed, expected);
  assert.deepEqual(serializeRtcp(parsed), bytes);
  assert.deepEqual(serializeRtcp(expected), bytes);
  assert.deepEqual(bytes, before, 'parse does not write to its input');
}

const ascii = (s: string) => [...Buffer.from(s, 'latin1')];

// ---- Golden packets --------------------------------------------------------------------------

const SR_BYTES = Buffer.from([
  0x81, // V=2 P=0 RC=1
  0xc8, // PT=200 SR
  0x00, 0x0c, // length 12: 13 words = 52 bytes
  0x12, 0x34, 0x56, 0x78, // SSRC of sender
  0xe7, 0xa1, 0xb2, 0xc3, // NTP timestamp, seconds
  0x80, 0x00, 0x00, 0x00, // NTP timestamp, fraction: 0.5 s
  0x00, 0x01, 0x5f, 0x90, // RTP timestamp 90000
  0x00, 0x00, 0x03, 0xe8, // sender's packet count 1000
  0x00, 0x0f, 0x42, 0x40, // sender's octet count 1000000
  // report block 1
  0x9a, 0xbc, 0xde, 0xf0, // SSRC_1
  0x40, // fraction lost 64/256 = 25 %
  0xff, 0xff, 0xfe, // cumulative lost -2 (24-bit two's complement)
  0x00, 0x01, 0x00, 0x05, // extended highest sequence number: 1 cycle, seq 5
  0x00, 0x00, 0x01, 0x23, // interarrival jitter 291
  0xb2, 0xc3, 0x80, 0x00, // LSR: middle 32 bits of an NTP timestamp
  0x00, 0x02, 0x00, 0x00, // DLSR: 2 s in 1/65536 s
]);
const SR_BLOCK: ReportBlock = {
  ssrc: 0x9abcdef0,
  fractionLost: 64,
  cumulativeLost: -2,
  highestSeq: 0x10005,
  jitter: 291,
  lsr: 0xb2c38000,
  dlsr: 0x20000,
};
const SR: RtcpPacket = {
  type: 'sr',
  ssrc: 0x12345678,
  ntpSec: 0xe7a1b2c3,
  ntpFrac: 0x80000000,
  rtpTimestamp: 90000,
  packetCount: 1000,
  octetCount: 1_000_000,
  reports: [SR_BLOCK],
};

const SDES_BYTES = Buffer.from([
  0x81, // V=2 P=0 SC=1
  0xca, // PT=202 SDES
  0x00, 0x06, // length 6: 28 bytes
  0x11, 0x22, 0x33, 0x44, // SSRC/CSRC_1
  0x01, // item type CNAME
  0x0e, // length 14
  ...ascii('alice@10.0.0.1'),
  0x00, // null item type: end of the list
  0x00, 0x00, 0x00, // nulls to the 32-bit boundary (4 + 2 + 14 + 1 = 21 → 24)
]);
const SDES: RtcpPacket = { type: 'sdes', chunks: [{ ssrc: 0x11223344, items: [{ type: SDES_CNAME, text: 'alice@10.0.0.1' }] }] };

describe('RTCP golden packets (RFC 3550 §6.4-6.7)', () => {
  test('SR with one report block (§6.4.1)', () => {
    golden(SR_BYTES, [SR]);
    assert.equal(ntpMiddle32(0xe7a1b2c3, 0x80000000), SR_BLOCK.lsr, 'LSR is the middle of that NTP time');
  });

  test('RR with no report blocks (§6.4.2)', () => {
    golden(Buffer.from([0x80, 0xc9, 0x00, 0x01, 0x00, 0x00, 0x00, 0x2a]), [{ type: 'rr', ssrc: 42, reports: [] }]);
  });

  test('RR with two report blocks, cumulative lost at both 24-bit limits', () => {
    const bytes = Buffer.from([
      0x82, // V=2 P=0 RC=2
      0xc9, // PT=201 RR
      0x00, 0x0d, // length 13: 56 bytes
      0xaa, 0xbb, 0xcc, 0xdd, // SSRC of packet sender
      // block 1
      0x00, 0x00, 0x00, 0x01, // SSRC_1
      0xff, // fraction lost 255/256
      0x7f, 0xff, 0xff, // cumulative lost +8388607, the largest
      0xff, 0xff, 0xff, 0xff, // extended highest sequence number
      0x80, 0x00, 0x00, 0x00, // jitter
      0x00, 0x00, 0x00, 0x00, // LSR: no SR yet
      0x00, 0x00, 0x00, 0x00, // DLSR
      // block 2
      0x00, 0x00, 0x00, 0x02, // SSRC_2
      0x00, // fraction lost 0
      0x80, 0x00, 0x00, // cumulative lost -8388608, the smallest
      0x00, 0x00, 0xff, 0xff, // extended highest sequence number 65535
      0x00, 0x00, 0x00, 0x00, // jitter
      0x01, 0x02, 0x03, 0x04, // LSR
      0x00, 0x00, 0x80, 0x00, // DLSR 0.5 s
    ]);
    golden(bytes, [
      {
        type: 'rr',
        ssrc: 0xaabbccdd,
        reports: [
          { ssrc: 1, fractionLost: 255, cumulativeLost: 0x7fffff, highestSeq: 0xffffffff, jitter: 0x80000000, lsr: 0, dlsr: 0 },
          { ssrc: 2, fractionLost: 0, cumulativeLost: -0x800000, highestSeq: 65535, jitter: 0, lsr: 0x01020304, dlsr: 0x8000 },
        ],
      },
    ]);
  });

  test('SDES CNAME: null-terminated item list padded to 32 bits (§6.5)', () => {
    golden(SDES_BYTES, [SDES]);
  });

  test('SDES with two chunks: a list ending on a word boundary still gets a whole null word', () => {
    const bytes = Buffer.from([
      0x83, // V=2 P=0 SC=3
      0xca, // PT=202
      0x00, 0x07, // length 7: 32 bytes
      0x00, 0x00, 0x00, 0x01, // chunk 1 SSRC
      0x01, 0x02, ...ascii('ab'), // CNAME "ab": 4 + 2 + 2 = 8, on a boundary
      0x00, 0x00, 0x00, 0x00, // so the terminator takes a whole word
      0x00, 0x00, 0x00, 0x02, // chunk 2 SSRC
      0x01, 0x01, ...ascii('x'), // CNAME "x": 4 + 2 + 1 = 7
      0x00, // one null reaches the boundary
      0x00, 0x00, 0x00, 0x03, // chunk 3 SSRC, no items (RFC: valid but useless)
      0x00, 0x00, 0x00, 0x00, // four nulls
    ]);
    golden(bytes, [
      {
        type: 'sdes',
        chunks: [
          { ssrc: 1, items: [{ type: SDES_CNAME, text: 'ab' }] },
          { ssrc: 2, items: [{ type: SDES_CNAME, text: 'x' }] },
          { ssrc: 3, items: [] },
        ],
      },
    ]);
  });

  test('BYE with a reason for leaving, padded to 32 bits (§6.6)', () => {
    const bytes = Buffer.from([
      0x81, // V=2 P=0 SC=1
      0xcb, // PT=203 BYE
      0x00, 0x03, // length 3: 16 bytes
      0x12, 0x34, 0x56, 0x78, // SSRC
      0x04, // reason length 4
      ...ascii('done'),
      0x00, 0x00, 0x00, // padding (1 + 4 = 5 → 8)
    ]);
    golden(bytes, [{ type: 'bye', ssrcs: [0x12345678], reason: 'done' }]);
  });

  test('BYE with two SSRCs and no reason', () => {
    const bytes = Buffer.from([0x82, 0xcb, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2]);
    golden(bytes, [{ type: 'bye', ssrcs: [1, 2] }]);
  });

  test('APP with subtype, name and data (§6.7)', () => {
    const bytes = Buffer.from([
      0x83, // V=2 P=0 subtype=3
      0xcc, // PT=204 APP
      0x00, 0x04, // length 4: 20 bytes
      0x00, 0x00, 0x10, 0x00, // SSRC
      ...ascii('UDPC'), // name
      0x04, ...ascii('main'), 0x00, 0x00, 0x00, // application-dependent data, 8 bytes
    ]);
    const [app] = parseRtcp(bytes);
    assert.equal(app.type, 'app');
    golden(bytes, [{ type: 'app', subtype: 3, ssrc: 0x1000, name: 'UDPC', data: Buffer.from([4, ...ascii('main'), 0, 0, 0]) }]);
  });

  test('Generic NACK: lost 100, 101, 105, 116 fit one PID/BLP (RFC 4585 §6.2.1)', () => {
    // PID = 100; BLP bit i means PID + i + 1 is lost:
    //   101 = 100 + 0 + 1 → bit 0
    //   105 = 100 + 4 + 1 → bit 4
    //   116 = 100 + 15 + 1 → bit 15
    // BLP = 0x8000 | 0x0010 | 0x0001 = 0x8011
    const bytes = Buffer.from([
      0x81, // V=2 P=0 FMT=1
      0xcd, // PT=205 RTPFB
      0x00, 0x03, // length 3: 16 bytes
      0x00, 0x00, 0x00, 0x01, // SSRC of packet sender
      0x00, 0x00, 0x00, 0x02, // SSRC of media source
      0x00, 0x64, // PID 100
      0x80, 0x11, // BLP
    ]);
    golden(bytes, [{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [100, 101, 105, 116] }]);
    // Order and repeats in the input do not matter to the packing.
    assert.deepEqual(serializeRtcp([{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [116, 105, 100, 101, 105] }]), bytes);
  });

  test('Generic NACK spanning two FCIs: 117 is 17 past PID 100, beyond BLP', () => {
    const bytes = Buffer.from([
      0x81, 0xcd, 0x00, 0x04, // FMT=1 RTPFB, length 4: 20 bytes
      0x00, 0x00, 0x00, 0x01,
      0x00, 0x00, 0x00, 0x02,
      0x00, 0x64, 0x00, 0x02, // PID 100, BLP bit 1: 102
      0x00, 0x75, 0x00, 0x01, // PID 117, BLP bit 0: 118
    ]);
    golden(bytes, [{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [100, 102, 117, 118] }]);
  });

  test('Generic NACK across 65535 → 0', () => {
    // PID 65534; 65535 is PID+1 → bit 0; 0 is PID+2 → bit 1; 3 is PID+5 → bit 4. BLP = 0x0013.
    const bytes = Buffer.from([0x81, 0xcd, 0x00, 0x03, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x00, 0x13]);
    golden(bytes, [{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [65534, 65535, 0, 3] }]);
    assert.deepEqual(serializeRtcp([{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [0, 3, 65535, 65534] }]), bytes);
  });

  test('PLI (RFC 4585 §6.3.1)', () => {
    const bytes = Buffer.from([
      0x81, // V=2 P=0 FMT=1
      0xce, // PT=206 PSFB
      0x00, 0x02, // length 2: no FCI
      0x00, 0x00, 0x00, 0x07, // SSRC of packet sender
      0xde, 0xad, 0xbe, 0xef, // SSRC of media source
    ]);
    golden(bytes, [{ type: 'pli', senderSsrc: 7, mediaSsrc: 0xdeadbeef }]);
  });

  test('compound SR + SDES (§6.1)', () => {
    const srNoBlocks = Buffer.from([
      0x80, 0xc8, 0x00, 0x06, // RC=0, SR, 28 bytes
      0x12, 0x34, 0x56, 0x78,
      0xe7, 0xa1, 0xb2, 0xc3,
      0x80, 0x00, 0x00, 0x00,
      0x00, 0x01, 0x5f, 0x90,
      0x00, 0x00, 0x03, 0xe8,
      0x00, 0x0f, 0x42, 0x40,
    ]);
    golden(Buffer.concat([srNoBlocks, SDES_BYTES]), [{ ...SR, reports: [] } as RtcpPacket, SDES]);
  });

  test('packet types and feedback formats we do not interpret come back as unknown', () => {
    const bytes = Buffer.from([
      0x80, 0xcf, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04, // PT=207 (XR), body 4 bytes
      0x8f, 0xcd, 0x00, 0x01, 0x05, 0x06, 0x07, 0x08, // RTPFB FMT=15
      0x84, 0xce, 0x00, 0x01, 0x09, 0x0a, 0x0b, 0x0c, // PSFB FMT=4 (FIR)
    ]);
    golden(bytes, [
      { type: 'unknown', packetType: 207, count: 0, body: Buffer.from([1, 2, 3, 4]) },
      { type: 'unknown', packetType: RTCP_RTPFB, count: 15, body: Buffer.from([5, 6, 7, 8]) },
      { type: 'unknown', packetType: RTCP_PSFB, count: 4, body: Buffer.from([9, 10, 11, 12]) },
    ]);
  });

  test('the P bit: the last byte of that packet counts padding, which is not part of the body', () => {
    const bytes = Buffer.from([
      0xa0, 0xc9, 0x00, 0x02, // P=1 RC=0 RR, 12 bytes
      0x00, 0x00, 0x00, 0x2a, // SSRC
      0x00, 0x00, 0x00, 0x04, // 4 bytes of padding
    ]);
    assert.deepEqual(parseRtcp(bytes), [{ type: 'rr', ssrc: 42, reports: [] }]);
    // An unknown packet's body stops before the padding.
    const xr = Buffer.from([0xa0, 0xcf, 0x00, 0x02, 1, 2, 3, 4, 0, 0, 0, 4]);
    const [u] = parseRtcp(xr);
    assert.ok(u.type === 'unknown');
    assert.deepEqual([...u.body], [1, 2, 3, 4]);
  });

  test('profile-specific extensions after the report blocks are skipped (§6.4.1)', () => {
    const bytes = Buffer.from([0x80, 0xc9, 0x00, 0x02, 0, 0, 0, 5, 0xee, 0xee, 0xee, 0xee, 0x80, 0xc9, 0x00, 0x01, 0, 0, 0, 6]);
    assert.deepEqual(parseRtcp(bytes), [
      { type: 'rr', ssrc: 5, reports: [] },
      { type: 'rr', ssrc: 6, reports: [] },
    ]);
  });

  test('parsed APP data and unknown bodies are views into the datagram', () => {
    const bytes = Buffer.from([0x80, 0xcc, 0x00, 0x03, 0, 0, 0, 1, ...ascii('TEST'), 1, 2, 3, 4]);
    const [app] = parseRtcp(bytes);
    assert.ok(app.type === 'app');
    bytes[12] = 0x99;
    assert.equal(app.data[0], 0x99);
  });

  test('constants are the IANA packet types', () => {
    assert.deepEqual([RTCP_SR, RTCP_RR, RTCP_SDES, RTCP_BYE, RTCP_APP, RTCP_RTPFB, RTCP_PSFB], [200, 201, 202, 203, 204, 205, 206]);
    assert.equal(SDES_CNAME, 1);
  });
});

describe('RFC 5761 §4: telling RTCP from RTP on one port', () => {
  const datagram = (b0: number, b1: number) => Buffer.from([b0, b1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

  test('second byte 192-223 is RTCP; no datagram is both', () => {
    for (let b1 = 0; b1 < 256; b1++) {
      const d = datagram(0x80, b1);
      assert.equal(isRtcp(d), b1 >= 192 && b1 <= 223, `second byte ${b1}`);
      assert.ok(!(isRtcp(d) && isRtp(d)), `second byte ${b1} claimed by both`);
    }
  });

  test('the boundaries, byte by byte', () => {
    // 191 = M=1 PT=63: RTP. 192 = SR (M=1 PT=64). 223 = M=1 PT=95. 224 = M=1 PT=96: RTP.
    assert.deepEqual([isRtcp(datagram(0x80, 191)), isRtp(datagram(0x80, 191))], [false, true]);
    assert.deepEqual([isRtcp(datagram(0x80, 192)), isRtp(datagram(0x80, 192))], [true, false]);
    assert.deepEqual([isRtcp(datagram(0x80, 223)), isRtp(datagram(0x80, 223))], [true, false]);
    assert.deepEqual([isRtcp(datagram(0x80, 224)), isRtp(datagram(0x80, 224))], [false, true]);
  });

  test('not version 2, or shorter than a header: neither', () => {
    for (const b0 of [0x00, 0x40, 0xc0]) {
      assert.equal(isRtcp(datagram(b0, 200)), false);
      assert.equal(isRtp(datagram(b0, 96)), false);
    }
    assert.equal(isRtcp(Buffer.from([0x80, 0xc8, 0x00])), false);
  });

  test('every golden packet is RTCP and not RTP', () => {
    for (const b of [SR_BYTES, SDES_BYTES, serializeRtcp([{ type: 'pli', senderSsrc: 1, mediaSsrc: 2 }])]) {
      assert.equal(isRtcp(b), true);
      assert.equal(isRtp(b), false);
    }
  });
});

describe('RTCP that lies', () => {
  const ssrc = [0x00, 0x00, 0x00, 0x2a];
  const block = new Array(24).fill(0);

  test('empty and truncated datagrams', () => {
    throwsPacketError(() => parseRtcp(Buffer.alloc(0)), /need 4 bytes, have 0/);
    throwsPacketError(() => parseRtcp(Buffer.from([0x80, 0xc9, 0x00])), /need 4 bytes, have 3/);
    // A whole RR, then two stray bytes.
    throwsPacketError(() => parseRtcp(Buffer.from([0x80, 0xc9, 0x00, 0x01, ...ssrc, 0x80, 0xc9])), /at byte 8/, /need 4 bytes, have 2/);
  });

  test('length field beyond the datagram', () => {
    // length 6 promises 28 bytes; 8 are here.
    throwsPacketError(() => parseRtcp(Buffer.from([0x80, 0xc9, 0x00, 0x06, ...ssrc])), /length field: need 28 bytes, have 8/);
  });

  test('report count beyond the length', () => {
    // RC=2 needs 4 + 48 body bytes; the length (7 → 32 bytes) leaves 28.
    throwsPacketError(
      () => parseRtcp(Buffer.from([0x82, 0xc9, 0x00, 0x07, ...ssrc, ...block])),
      /RR body with 2 report blocks: need 52 bytes, have 28/,
    );
    // SR with RC=1 and no room for the block.
    throwsPacketError(
      () => parseRtcp(Buffer.from([0x81, 0xc8, 0x00, 0x06, ...ssrc, ...new Array(20).fill(0)])),
      /SR body with 1 report blocks: need 48 bytes, have 24/,
    );
  });

  test('SDES chunk count, item lengths and terminators', () => {
    // SC=2, one chunk present.
    throwsPacketError(
      () => parseRtcp(Buffer.from([0x82, 0xca, 0x00, 0x02, ...ssrc, 0, 0, 0, 0])),
      /SDES chunk 2 of 2 at body byte 8: need 4 bytes, have 0/,
    );
    // CNAME of length 20 with 6 bytes after its header.
    throwsPacketError(
      () => parseRtcp(Buffer.from([0x81, 0xca, 0x00, 0x03, ...ssrc, 0x01, 20, 1, 2, 3, 4, 5, 6])),
      /item type 1 of 20 bytes: need 20 bytes, have 6/,
    );
    // Items run to the end of the packet with no null terminator.
    throwsPacketError(
      () => parseRtcp(Buffer.from([0x81, 0xca, 0x00, 0x02, ...ssrc, 0x01, 0x02, 0x61, 0x62])),
      /no null terminator/,
      /need 1 bytes, have 0/,
    );
  });

  test('BYE SSRC count and reason length', () => {
    throwsPacketError(() => parseRtcp(Buffer.from([0x83, 0xcb, 0x00, 0x01, ...ssrc])), /BYE body with 3 SSRCs: need 12 bytes, have 4/);
    throwsPacketError(
      () => parseRtcp(Buffer.from([0x81, 0xcb, 0x00, 0x02, ...ssrc, 0x09, 0x61, 0x62, 0x63])),
      /reason of 9 bytes: need 9 bytes, have 3/,
    );
  });

  test('APP without its name, NACK without FCI, PLI with FCI', () => {
    throwsPacketError(() => parseRtcp(Buffer.from([0x80, 0xcc, 0x00, 0x01, ...ssrc])), /need 8 bytes, have 4/);
    throwsPacketError(() => parseRtcp(Buffer.from([0x81, 0xcd, 0x00, 0x02, ...ssrc, ...ssrc])), /NACK body with one FCI: need 12 bytes, have 8/);
    throwsPacketError(() => parseRtcp(Buffer.from([0x81, 0xce, 0x00, 0x03, ...ssrc, ...ssrc, 0, 0, 0, 0])), /PLI must be 12 bytes/, /has 16/);
  });

  test('padding that lies', () => {
    throwsPacketError(() => parseRtcp(Buffer.from([0xa0, 0xc9, 0x00, 0x01, 0, 0, 0, 0])), /pad count is 0/);
    throwsPacketError(() => parseRtcp(Buffer.from([0xa0, 0xc9, 0x00, 0x01, 0, 0, 0, 9])), /pad count 9 exceeds the 4 bytes/);
    // Padding that eats into the SSRC leaves the RR too short.
    throwsPacketError(() => parseRtcp(Buffer.from([0xa0, 0xc9, 0x00, 0x01, 0, 0, 0, 2])), /RR body with 0 report blocks: need 4 bytes, have 2/);
  });

  test('a bad version in the second packet of a compound', () => {
    throwsPacketError(() => parseRtcp(Buffer.from([0x80, 0xc9, 0x00, 0x01, ...ssrc, 0x40, 0xc9, 0x00, 0x01, ...ssrc])), /at byte 8: version 1/);
  });

  test('after every error the parser still parses a valid compound packet', () => {
    const bad = [
      [0x82, 0xc9, 0x00, 0x07, ...ssrc, ...block],
      [0x80, 0xc9, 0x00, 0x06, ...ssrc],
      [0x81, 0xca, 0x00, 0x02, ...ssrc, 0x01, 0x02, 0x61, 0x62],
      [0xa0, 0xc9, 0x00, 0x01, 0, 0, 0, 0],
    ];
    for (const b of bad) {
      assert.throws(() => parseRtcp(Buffer.from(b)), PacketError);
      assert.deepEqual(parseRtcp(SR_BYTES), [SR]);
    }
  });

  test('serializing fields that do not fit throws PacketError', () => {
    const rb = { ...SR_BLOCK };
    throwsPacketError(() => serializeRtcp([{ type: 'rr', ssrc: 1, reports: new Array(32).fill(rb) }]), /32, at most 31/);
    throwsPacketError(() => serializeRtcp([{ type: 'rr', ssrc: 1, reports: [{ ...rb, cumulativeLost: 0x800000 }] }]), /signed 24 bits/);
    throwsPacketError(() => serializeRtcp([{ type: 'rr', ssrc: 1, reports: [{ ...rb, fractionLost: 256 }] }]), /0-255/);
    throwsPacketError(() => serializeRtcp([{ type: 'rr', ssrc: -1, reports: [] }]), /uint32/);
    throwsPacketError(() => serializeRtcp([{ type: 'app', subtype: 0, ssrc: 1, name: 'ABC', data: Buffer.alloc(0) }]), /4 printable ASCII/);
    throwsPacketError(() => serializeRtcp([{ type: 'app', subtype: 0, ssrc: 1, name: 'ABCD', data: Buffer.alloc(3) }]), /3 bytes/);
    throwsPacketError(() => serializeRtcp([{ type: 'app', subtype: 32, ssrc: 1, name: 'ABCD', data: Buffer.alloc(0) }]), /subtype 32/);
    throwsPacketError(() => serializeRtcp([{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [] }]), /at least one/);
    throwsPacketError(() => serializeRtcp([{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [65536] }]), /65536/);
    throwsPacketError(
      () => serializeRtcp([{ type: 'sdes', chunks: [{ ssrc: 1, items: [{ type: SDES_CNAME, text: 'x'.repeat(256) }] }] }]),
      /256 bytes, at most 255/,
    );
    throwsPacketError(() => serializeRtcp([{ type: 'sdes', chunks: [{ ssrc: 1, items: [{ type: 0, text: 'x' }] }] }]), /type 0/);
    throwsPacketError(() => serializeRtcp([{ type: 'bye', ssrcs: [1], reason: 'é'.repeat(128) }]), /256 bytes/);
  });
});

// ---- Properties ------------------------------------------------------------------------------

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const words = (max: number) => fc.integer({ min: 0, max }).chain((n) => fc.uint8Array({ minLength: n * 4, maxLength: n * 4 })).map((a) => Buffer.from(a));
const text = fc.string({ unit: 'grapheme', maxLength: 20 }).filter((s) => Buffer.byteLength(s) <= 255);

const blockArb: fc.Arbitrary<ReportBlock> = fc.record({
  ssrc: u32,
  fractionLost: fc.integer({ min: 0, max: 255 }),
  cumulativeLost: fc.integer({ min: -0x800000, max: 0x7fffff }),
  highestSeq: u32,
  jitter: u32,
  lsr: u32,
  dlsr: u32,
}, { noNullPrototype: true });

const packetArb: fc.Arbitrary<RtcpPacket> = fc.oneof(
  fc.record({
    type: fc.constant('sr' as const),
    ssrc: u32,
    ntpSec: u32,
    ntpFrac: u32,
    rtpTimestamp: u32,
    packetCount: u32,
    octetCount: u32,
    reports: fc.array(blockArb, { maxLength: 3 }),
  }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('rr' as const), ssrc: u32, reports: fc.array(blockArb, { maxLength: 3 }) }, { noNullPrototype: true }),
  fc.record({
    type: fc.constant('sdes' as const),
    chunks: fc.array(
      fc.record(
        { ssrc: u32, items: fc.array(fc.record({ type: fc.integer({ min: 1, max: 255 }), text }, { noNullPrototype: true }), { maxLength: 3 }) },
        { noNullPrototype: true },
      ),
      { maxLength: 3 },
    ),
  }, { noNullPrototype: true }),
  fc.record({ type: fc.constant('bye' as const), ssrcs: fc.array(u32, { maxLength: 4 }), reason: text }, { requiredKeys: ['type', 'ssrcs'], noNullPrototype: true }),
  fc.record({
    type: fc.constant('app' as const),
    subtype: fc.integer({ min: 0, max: 31 }),
    ssrc: u32,
    name: fc.array(fc.integer({ min: 0x20, max: 0x7e }), { minLength: 4, maxLength: 4 }).map((a) => String.fromCharCode(...a)),
    data: words(4),
  }, { noNullPrototype: true }),
  // Lost numbers in increasing order from a random start, possibly across 65535 → 0.
  fc
    .record({
      senderSsrc: u32,
      mediaSsrc: u32,
      base: fc.integer({ min: 0, max: 0xffff }),
      offsets: fc.uniqueArray(fc.integer({ min: 0, max: 300 }), { minLength: 1, maxLength: 40 }),
    })
    .map(({ senderSsrc, mediaSsrc, base, offsets }) => ({
      type: 'nack' as const,
      senderSsrc,
      mediaSsrc,
      lost: [...offsets].sort((a, b) => a - b).map((o) => seqAdd(base, o)),
    })),
  fc.record({ type: fc.constant('pli' as const), senderSsrc: u32, mediaSsrc: u32 }, { noNullPrototype: true }),
  fc.record({
    type: fc.constant('ccfb' as const),
    senderSsrc: u32,
    streams: fc.array(
      fc.record({
        ssrc: u32,
        beginSeq: fc.integer({ min: 0, max: 0xffff }),
        packets: fc.array(
          fc.oneof(
            fc.constant({ received: false, ecn: 0, ato: 0 }),
            fc.record({ received: fc.constant(true), ecn: fc.integer({ min: 0, max: 3 }), ato: fc.integer({ min: 0, max: 0x1fff }) }, { noNullPrototype: true }),
          ),
          { maxLength: 9 },
        ),
      }, { noNullPrototype: true }),
      { maxLength: 3 },
    ),
    reportTimestamp: u32,
  }, { noNullPrototype: true }),
  fc.record({
    type: fc.constant('unknown' as const),
    packetType: fc.oneof(fc.integer({ min: 192, max: 199 }), fc.integer({ min: 207, max: 223 })),
    count: fc.integer({ min: 0, max: 31 }),
    body: words(4),
  }, { noNullPrototype: true }),
);

describe('RTCP properties', () => {
  test('parse(serialize(packets)) = packets, and serializing again gives the same bytes', () => {
    fc.assert(
      fc.property(fc.array(packetArb, { minLength: 1, maxLength: 4 }), (packets) => {
        const bytes = serializeRtcp(packets);
        assert.equal(bytes.length % 4, 0);
        assert.ok(isRtcp(bytes));
        const parsed = parseRtcp(bytes);
        assert.deepEqual(parsed, packets);
        assert.deepEqual(serializeRtcp(parsed), bytes);
      }),
      { numRuns: 1000 },
    );
  });

  test('random bytes: parseRtcp returns or throws PacketError, and never writes to its input', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), fc.boolean(), (arr, steer) => {
        const buf = Buffer.from(arr);
        // Half the cases look like RTCP in their first two bytes, so the parser goes deeper.
        if (steer && buf.length >= 2) {
          buf[0] = (buf[0] & 0x3f) | 0x80;
          buf[1] = RTCP_SR + (buf[1] % 8);
        }
        const before = Buffer.from(buf);
        try {
          parseRtcp(buf);
        } catch (e) {
          if (!(e instanceof PacketError)) throw e;
        }
        assert.deepEqual(buf, before);
      }),
      { numRuns: 3000 },
    );
  });

  test('well-framed packets with random bodies and counts: only PacketError, and the parser recovers', () => {
    // Each packet has a truthful length but a random count, type (SR..PSFB), P bit and body,
    // which drives every per-type check.
    const framed = fc.array(
      fc.record({ p: fc.boolean(), count: fc.integer({ min: 0, max: 31 }), pt: fc.integer({ min: 200, max: 206 }), body: words(12) }, { noNullPrototype: true }),
      { minLength: 1, maxLength: 3 },
    );
    fc.assert(
      fc.property(framed, (packets) => {
        const buf = Buffer.concat(
          packets.map(({ p, count, pt, body }) =>
            Buffer.concat([Buffer.from([0x80 | (p ? 0x20 : 0) | count, pt, 0, body.length / 4]), body]),
          ),
        );
        const before = Buffer.from(buf);
        try {
          const parsed = parseRtcp(buf);
          assert.equal(parsed.length, packets.length);
        } catch (e) {
          if (!(e instanceof PacketError)) throw e;
          assert.deepEqual(parseRtcp(SR_BYTES), [SR]);
        }
        assert.deepEqual(buf, before);
      }),
      { numRuns: 3000 },
    );
  });

  test('SDES TOOL and non-ASCII text survive the round trip as UTF-8', () => {
    const p: RtcpPacket = { type: 'sdes', chunks: [{ ssrc: 9, items: [{ type: SDES_CNAME, text: 'zoë@höst' }, { type: SDES_TOOL, text: 'udpcast 0.1' }] }] };
    const bytes = serializeRtcp([p]);
    // 4 + (2 + 10) + (2 + 11) + 1 null = 30 → 32, plus the 4-byte header.
    assert.equal(bytes.length, 36);
    assert.equal(bytes[9], 10, 'item length counts UTF-8 bytes, not characters');
    assert.deepEqual(parseRtcp(bytes), [p]);
  });
});
