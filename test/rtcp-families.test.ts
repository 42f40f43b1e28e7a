/**
 * The paths of src/transport/rtcp/ that test/rtcp.test.ts does not reach deterministically: the
 * common header's limits (header.ts), and the body checks that only a P bit can trigger, since
 * padding is the one way a body stops short of a 32-bit boundary (RFC 3550 §6.4.1).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseRtcp, serializeRtcp, MAX_PACKET_BYTES, type RtcpPacket } from '../src/transport/rtcp.ts';
import { PacketError } from '../src/util/errors.ts';

function throwsPacketError(fn: () => unknown, ...patterns: RegExp[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PacketError, `expected PacketError, got ${String(e)}`);
    for (const p of patterns) assert.match(e.message, p);
    return true;
  });
}

/** A valid RR the parser must still read after any error (it keeps no state between calls). */
const RR = Buffer.from([0x80, 0xc9, 0x00, 0x01, 0x00, 0x00, 0x00, 0x2a]);
const stillParses = () => assert.deepEqual(parseRtcp(RR), [{ type: 'rr', ssrc: 42, reports: [] }]);

describe('header.ts: the common header (RFC 3550 §6.4.1)', () => {
  test('the largest packet: length 0xffff is 65536 words, and one word more is refused', () => {
    const body = Buffer.alloc(MAX_PACKET_BYTES - 4, 0xab);
    const bytes = Buffer.concat([Buffer.from([0x80, 0xcf, 0xff, 0xff]), body]); // PT=207, length 65535
    const packet: RtcpPacket = { type: 'unknown', packetType: 207, count: 0, body };
    assert.deepEqual(parseRtcp(bytes), [packet]);
    assert.deepEqual(serializeRtcp([packet]), bytes);
    throwsPacketError(
      () => serializeRtcp([{ ...packet, body: Buffer.alloc(MAX_PACKET_BYTES - 4 + 4) }]),
      /RTCP packet of 262148 bytes, at most 262144/,
    );
  });

  test('an unknown packet must fit the header: PT one byte, count five bits, body whole words', () => {
    const unknown = (packetType: number, count: number, bodyLen: number): RtcpPacket[] => [
      { type: 'unknown', packetType, count, body: Buffer.alloc(bodyLen) },
    ];
    throwsPacketError(() => serializeRtcp(unknown(256, 0, 4)), /packet type 256, must be 0-255/);
    throwsPacketError(() => serializeRtcp(unknown(-1, 0, 4)), /packet type -1/);
    throwsPacketError(() => serializeRtcp(unknown(207.5, 0, 4)), /packet type 207.5/);
    throwsPacketError(() => serializeRtcp(unknown(207, 32, 4)), /RTCP count field: 32, at most 31/);
    throwsPacketError(() => serializeRtcp(unknown(207, 0, 6)), /RTCP body is 6 bytes, not a multiple of 4/);
  });
});

describe('family bodies cut short by padding', () => {
  test('sdes.ts: a chunk whose null padding would run past the padded body (§6.5)', () => {
    const bytes = Buffer.from([
      0xa1, // V=2 P=1 SC=1
      0xca, // PT=202 SDES
      0x00, 0x02, // length 2: 12 bytes
      0x00, 0x00, 0x00, 0x07, // SSRC
      0x00, // null item: end of the list, at body byte 4
      0x00, 0x00, // would pad the chunk to body byte 8...
      0x01, // ...but the pad count takes this byte, leaving a 7-byte body
    ]);
    throwsPacketError(() => parseRtcp(bytes), /at byte 0/, /SDES chunk 1 padding runs to body byte 8, body has 7/);
    stillParses();
  });

  test('feedback.ts: a Generic NACK FCI that is not whole PID/BLP words (RFC 4585 §6.2.1)', () => {
    const bytes = Buffer.from([
      0xa1, // V=2 P=1 FMT=1
      0xcd, // PT=205 RTPFB
      0x00, 0x04, // length 4: 20 bytes
      0x00, 0x00, 0x00, 0x01, // SSRC of packet sender
      0x00, 0x00, 0x00, 0x02, // SSRC of media source
      0x00, 0x64, 0x00, 0x00, // PID 100, BLP 0
      0x00, 0x65, // half of a second FCI...
      0x00, 0x02, // ...then 2 bytes of padding: the FCI is 6 bytes
    ]);
    throwsPacketError(() => parseRtcp(bytes), /Generic NACK FCI is 6 bytes, not a multiple of 4/);
    stillParses();
    // The same packet with whole-word padding is a NACK for 100 alone.
    const padded = Buffer.from([0xa1, 0xcd, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 2, 0x00, 0x64, 0x00, 0x00, 0, 0, 0, 4]);
    assert.deepEqual(parseRtcp(padded), [{ type: 'nack', senderSsrc: 1, mediaSsrc: 2, lost: [100] }]);
  });
});

test('app.ts: a name of four characters that are not all printable ASCII (§6.7)', () => {
  for (const name of ['AB\x01D', 'ABC\x7f', 'ABCé']) {
    throwsPacketError(() => serializeRtcp([{ type: 'app', subtype: 0, ssrc: 1, name, data: Buffer.alloc(0) }]), /not 4 printable ASCII/);
  }
});

describe('feedback.ts: congestion control feedback (RFC 8888 §3.1)', () => {
  // Sender 0x01020304; stream 0x0a0b0c0d from seq 65535: received 1 ms (1/1024 s) before the
  // report with ECT(0), lost, received with an unknown time; 16 bits of padding; timestamp 0x11223344.
  const bytes = Buffer.from([
    0x8b, 0xcd, 0x00, 0x06, 0x01, 0x02, 0x03, 0x04,
    0x0a, 0x0b, 0x0c, 0x0d, 0xff, 0xff, 0x00, 0x03,
    0xc0, 0x01, 0x00, 0x00, 0x9f, 0xff, 0x00, 0x00,
    0x11, 0x22, 0x33, 0x44,
  ]);
  const packet: RtcpPacket = {
    type: 'ccfb',
    senderSsrc: 0x01020304,
    streams: [{ ssrc: 0x0a0b0c0d, beginSeq: 0xffff, packets: [{ received: true, ecn: 2, ato: 1 }, { received: false, ecn: 0, ato: 0 }, { received: true, ecn: 0, ato: 0x1fff }] }],
    reportTimestamp: 0x11223344,
  };

  test('FMT 11 in RTPFB, no media SSRC, an odd count padded to a word, the timestamp last', () => {
    assert.deepEqual(serializeRtcp([packet]), bytes);
    assert.deepEqual(parseRtcp(bytes), [packet]);
  });

  test('a report block whose count runs past the timestamp is a PacketError, and the parser carries on', () => {
    const lying = Buffer.from(bytes);
    lying.writeUInt16BE(5, 14); // 5 packets need 12 bytes; 8 are left before the timestamp
    throwsPacketError(() => parseRtcp(lying), /CCFB report block of 5 packets/);
    // Only the sender's SSRC: no room for the report timestamp.
    throwsPacketError(() => parseRtcp(Buffer.from([0x8b, 0xcd, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04])), /congestion control feedback body/);
    stillParses();
  });

  test('fields that do not fit are refused when serializing', () => {
    throwsPacketError(() => serializeRtcp([{ ...packet, streams: [{ ...packet.streams[0], beginSeq: 0x10000 }] }]), /begin_seq 65536/);
    throwsPacketError(() => serializeRtcp([{ ...packet, reportTimestamp: -1 }]), /report timestamp -1/);
  });
});
