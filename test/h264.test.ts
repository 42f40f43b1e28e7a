/**
 * H.264 over RTP, RFC 6184 packetization-mode 1. One case table drives both directions: the
 * packetizer must produce exactly the payloads written out byte by byte from the RFC's field
 * layouts, and the depacketizer must rebuild the access unit from those same bytes.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  NalType,
  avccToNalus,
  isKeyframe,
  joinAnnexB,
  nalType,
  splitAnnexB,
} from '../src/codecs/h264/annexb.ts';
import { H264Packetizer } from '../src/codecs/h264/packetize.ts';
import { H264Depacketizer, depacketizeAll } from '../src/codecs/h264/depacketize.ts';
import { PacketError } from '../src/util/errors.ts';
import { parseRtp, serializeRtpToBuffer, type RtpPacket } from '../src/rtp/packet.ts';
import { seqAdd } from '../src/rtp/seq.ts';
import { DEFAULT_PAYLOAD_LIMIT, MAX_FRAME_BYTES, MAX_NALUS_PER_AU, MIN_PAYLOAD_LIMIT } from '../src/defaults.ts';
import type { Payload } from '../src/rtp/frame.ts';

// ---- RFC 6184 field builders -------------------------------------------------------------------

/** NAL unit header, H.264 §7.3.1 / RFC 6184 §5.3: F(1) NRI(2) Type(5). */
function nalHeader(f: number, nri: number, type: number): number {
  return (f << 7) | (nri << 5) | type;
}
/** RFC 6184 §5.8 FU header: S(1) E(1) R(1) Type(5). */
function fuHeader(s: number, e: number, type: number): number {
  return (s << 7) | (e << 6) | type;
}
function u16(n: number): number[] {
  return [n >> 8, n & 0xff];
}
/** Concatenates byte values and buffers into one Buffer. */
function bytes(...parts: (number | number[] | Buffer)[]): Buffer {
  return Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(typeof p === 'number' ? [p] : p))));
}
/**
 * A NAL unit of `size` bytes. Slices (types 1, 2, 5) start their body with 0x88, i.e.
 * first_mb_in_slice = 0, so they may begin an access unit; the rest is a recognisable pattern.
 */
function nal(f: number, nri: number, type: number, size: number, seed = type): Buffer {
  const b = Buffer.alloc(size);
  b[0] = nalHeader(f, nri, type);
  for (let i = 1; i < size; i++) b[i] = (seed * 31 + i * 7 + 1) & 0xff;
  if (size > 1 && (type === 1 || type === 2 || type === 5)) b[1] = 0x88;
  return b;
}

// ---- RTP helpers -----------------------------------------------------------------------------

/** Payloads of one access unit as RTP packets (marker on the last), through the real serializer. */
function toPackets(payloads: (Buffer | Payload)[], firstSeq: number, timestamp: number): RtpPacket[] {
  return payloads.map((p, i) =>
    parseRtp(
      serializeRtpToBuffer({
        padding: 0,
        marker: i === payloads.length - 1,
        payloadType: 96,
        sequenceNumber: seqAdd(firstSeq, i),
        timestamp,
        ssrc: 0x1234abcd,
        csrc: [],
        payload: p,
      }),
    ),
  );
}
function flat(p: Payload): Buffer {
  return Buffer.concat(p);
}
/** A recording depacketizer. */
function recorder(opts: ConstructorParameters<typeof H264Depacketizer>[0] = {}) {
  const drops: string[] = [];
  const d = new H264Depacketizer({ ...opts, onDrop: (r) => drops.push(r) });
  const frames = (packets: RtpPacket[]) => packets.flatMap((p) => d.pushAll(p));
  return { d, drops, frames };
}

// ---- The case table ----------------------------------------------------------------------------

const SPS = nal(0, 3, NalType.SPS, 12);
const PPS = nal(0, 3, NalType.PPS, 4);
const SEI = nal(0, 0, NalType.SEI, 9);
const AUD = bytes(nalHeader(0, 0, NalType.AUD), 0xf0);
const IDR150 = nal(0, 3, NalType.IDR, 150);
const SLICE64 = nal(0, 2, NalType.SLICE, 64);
const SLICE65 = nal(0, 2, NalType.SLICE, 65);

interface Case {
  name: string;
  limit: number;
  nalus: Buffer[];
  payloads: Buffer[];
}

const cases: Case[] = [
  {
    name: '§5.6 single NAL unit packet: the NAL unit is the payload',
    limit: 64,
    nalus: [nal(0, 3, NalType.IDR, 40)],
    payloads: [nal(0, 3, NalType.IDR, 40)],
  },
  {
    name: '§5.6 a NAL unit exactly at the limit still goes single',
    limit: 64,
    nalus: [SLICE64],
    payloads: [SLICE64],
  },
  {
    name: '§5.7.1 STAP-A: SPS and PPS aggregated, NRI = max, sizes 16-bit',
    limit: 64,
    nalus: [SPS, PPS],
    payloads: [bytes(nalHeader(0, 3, 24), u16(12), SPS, u16(4), PPS)],
  },
  {
    name: '§5.7.1 STAP-A: F is the OR, NRI the largest of AUD(0), SEI(0), slice(2)',
    limit: 200,
    nalus: [AUD, SEI, nal(1, 2, NalType.SLICE, 20)],
    payloads: [bytes(nalHeader(1, 2, 24), u16(2), AUD, u16(9), SEI, u16(20), nal(1, 2, NalType.SLICE, 20))],
  },
  {
    name: '§5.7.1 STAP-A filling the limit exactly (1 + 2+30 + 2+29 = 64); NRI max(1, 2) = 2, not 1|2',
    limit: 64,
    nalus: [nal(0, 1, NalType.SLICE, 30), nal(0, 2, NalType.SLICE, 29, 9)],
    payloads: [bytes(nalHeader(0, 2, 24), u16(30), nal(0, 1, NalType.SLICE, 30), u16(29), nal(0, 2, NalType.SLICE, 29, 9))],
  },
  {
    name: 'one byte over: two single NAL unit packets instead of a 65-byte STAP-A',
    limit: 64,
    nalus: [nal(0, 1, NalType.SLICE, 30), nal(0, 1, NalType.SLICE, 30, 9)],
    payloads: [nal(0, 1, NalType.SLICE, 30), nal(0, 1, NalType.SLICE, 30, 9)],
  },
  {
    name: '§5.8 FU-A: 150-byte IDR at limit 64 → 62 + 62 + 25 body bytes, S then none then E',
    limit: 64,
    nalus: [IDR150],
    payloads: [
      bytes(nalHeader(0, 3, 28), fuHeader(1, 0, NalType.IDR), IDR150.subarray(1, 63)),
      bytes(nalHeader(0, 3, 28), fuHeader(0, 0, NalType.IDR), IDR150.subarray(63, 125)),
      bytes(nalHeader(0, 3, 28), fuHeader(0, 1, NalType.IDR), IDR150.subarray(125)),
    ],
  },
  {
    name: '§5.8 FU-A: one byte over the limit → two fragments (never S and E together)',
    limit: 64,
    nalus: [SLICE65],
    payloads: [
      bytes(nalHeader(0, 2, 28), fuHeader(1, 0, NalType.SLICE), SLICE65.subarray(1, 63)),
      bytes(nalHeader(0, 2, 28), fuHeader(0, 1, NalType.SLICE), SLICE65.subarray(63)),
    ],
  },
  {
    name: 'keyframe: STAP-A(AUD, SPS, PPS) then FU-A IDR, then a trailing SEI alone',
    limit: 64,
    nalus: [AUD, SPS, PPS, IDR150, SEI],
    payloads: [
      bytes(nalHeader(0, 3, 24), u16(2), AUD, u16(12), SPS, u16(4), PPS),
      bytes(nalHeader(0, 3, 28), fuHeader(1, 0, NalType.IDR), IDR150.subarray(1, 63)),
      bytes(nalHeader(0, 3, 28), fuHeader(0, 0, NalType.IDR), IDR150.subarray(63, 125)),
      bytes(nalHeader(0, 3, 28), fuHeader(0, 1, NalType.IDR), IDR150.subarray(125)),
      SEI,
    ],
  },
];

describe('RFC 6184 case table', () => {
  for (const c of cases) {
    test(`packetize: ${c.name}`, () => {
      const got = new H264Packetizer({ payloadLimit: c.limit }).packetize(c.nalus);
      assert.deepEqual(got.map(flat), c.payloads);
      for (const p of got) assert.ok(flat(p).length <= c.limit, 'payload within limit');
    });
    test(`depacketize: ${c.name}`, () => {
      const { d, drops, frames } = recorder();
      const out = frames(toPackets(c.payloads, 1000, 90000));
      assert.deepEqual(drops, []);
      assert.equal(out.length, 1);
      assert.deepEqual(out[0].data, joinAnnexB(c.nalus));
      assert.equal(out[0].timestamp, 90000);
      // A fresh depacketizer knows no parameter sets: an IDR is a keyframe only with its own.
      assert.equal(out[0].keyframe, isKeyframe(c.nalus) && carriesParameterSets(c.nalus));
      assert.equal(d.counters.framesComplete, 1);
    });
  }
});

describe('H264Packetizer', () => {
  test('payload NAL bytes are views of the input, not copies', () => {
    const payloads = new H264Packetizer({ payloadLimit: 64 }).packetize([SPS, PPS, IDR150]);
    const chunks = payloads.flat();
    assert.ok(chunks.some((c) => c.buffer === SPS.buffer && c.byteOffset === SPS.byteOffset));
    const idrViews = chunks.filter((c) => c.buffer === IDR150.buffer);
    assert.equal(idrViews.length, 3, 'each FU-A fragment is a view of the IDR');
  });

  test('default limit comes from defaults.ts and every payload respects it', () => {
    const p = new H264Packetizer();
    assert.equal(p.payloadLimit, DEFAULT_PAYLOAD_LIMIT);
    const big = nal(0, 3, NalType.IDR, 10_000);
    for (const payload of p.packetize([SPS, PPS, big])) assert.ok(flat(payload).length <= DEFAULT_PAYLOAD_LIMIT);
  });

  test('a limit below MIN_PAYLOAD_LIMIT is refused with the numbers in the message', () => {
    assert.throws(() => new H264Packetizer({ payloadLimit: MIN_PAYLOAD_LIMIT - 1 }), /from 64 to \d+ bytes, got 63/);
    assert.throws(() => new H264Packetizer({ payloadLimit: 100.5 }), RangeError);
    assert.doesNotThrow(() => new H264Packetizer({ payloadLimit: MIN_PAYLOAD_LIMIT }));
  });

  test('empty NAL units and RTP-only types (0, 24-31) are refused with PacketError', () => {
    const p = new H264Packetizer();
    assert.throws(() => p.packetize([Buffer.alloc(0)]), PacketError);
    for (const t of [0, 24, 28, 31]) assert.throws(() => p.packetize([bytes(t, 1, 2)]), PacketError);
  });
});

describe('H264Depacketizer: loss and damage drop the whole access unit', () => {
  const packetizer = new H264Packetizer({ payloadLimit: 64 });
  const au1 = [AUD, SPS, PPS, IDR150];
  const au2 = [AUD, nal(0, 2, NalType.SLICE, 200, 3)];
  const p1 = packetizer.packetize(au1); // STAP-A + 3 FU-A
  const p2 = packetizer.packetize(au2);

  test('a gap inside an access unit drops it, counts it, and the next one still decodes', () => {
    const { d, drops, frames } = recorder();
    const pk1 = toPackets(p1, 500, 3000);
    const pk2 = toPackets(p2, 500 + pk1.length, 6000);
    const out = frames([pk1[0], pk1[1], pk1[3], ...pk2]); // the middle FU-A fragment is lost
    assert.equal(out.length, 1);
    assert.deepEqual(out[0].data, joinAnnexB(au2));
    assert.equal(out[0].timestamp, 6000);
    assert.equal(d.counters.framesDropped, 1);
    assert.equal(d.counters.framesComplete, 1);
    assert.equal(d.counters.packetsDiscarded, 3);
    assert.equal(drops.length, 1);
    assert.match(drops[0], /1 packet\(s\) lost inside the access unit/);
  });

  test('a gap at an access unit boundary drops the one before; the next, starting with its AUD, is whole', () => {
    // The marker packet of access unit 1 is lost. Access unit 2 begins with an AUD, which only
    // ever comes first: the missing packet was 1's tail.
    const { d, drops, frames } = recorder();
    const pk1 = toPackets(p1, 100, 3000);
    const pk2 = toPackets(p2, 100 + pk1.length, 6000);
    const pk3 = toPackets(p2, 100 + pk1.length + pk2.length, 9000);
    const out = frames([...pk1.slice(0, -1), ...pk2, ...pk3]);
    assert.deepEqual(out.map((f) => f.timestamp), [6000, 9000]);
    assert.deepEqual(out[0].data, joinAnnexB(au2));
    assert.equal(d.counters.framesDropped, 1);
    assert.match(drops[0], /timestamp 3000 dropped: 1 packet\(s\) lost at the end of the access unit/);
  });

  test('after a gap, a packet that cannot begin an access unit drops the one it is in', () => {
    // The first two packets of access unit 2 (its AUD and the slice's first fragment) are lost:
    // what follows is a fragment's middle, and whatever came before it is gone.
    const { d, drops, frames } = recorder();
    const pk1 = toPackets(p1, 100, 3000);
    const pk2 = toPackets(p2, 100 + pk1.length, 6000);
    const pk3 = toPackets(p2, 100 + pk1.length + pk2.length, 9000);
    const out = frames([...pk1, ...pk2.slice(2), ...pk3]);
    assert.deepEqual(out.map((f) => f.timestamp), [3000, 9000]);
    assert.equal(d.counters.framesDropped, 1);
    assert.match(drops[0], /timestamp 6000 dropped: 2 packet\(s\) lost before the access unit/);
  });

  test('losing only the AUD of an access unit: the picture still comes, without it', () => {
    const { d, frames } = recorder();
    const pk1 = toPackets(p1, 100, 3000);
    const pk2 = toPackets(p2, 100 + pk1.length, 6000);
    const pk3 = toPackets(packetizer.packetize(au1), 100 + pk1.length + pk2.length, 9000);
    assert.equal(flat(p2[0]).length, AUD.length, 'the AUD goes alone in the first packet');
    const out = frames([...pk1, ...pk2.slice(1), ...pk3]);
    assert.deepEqual(out.map((f) => f.timestamp), [3000, 6000, 9000]);
    assert.deepEqual(out[1].data, joinAnnexB(au2.slice(1)));
    assert.equal(d.counters.framesDropped, 0);
  });

  test('a keyframe right after a loss is handed out whole, and one that lost its SPS/PPS is no keyframe', () => {
    // The sharer's answer to a narrowed path: its old frames tail-dropped, its new keyframe whole.
    const { d, frames } = recorder();
    const pk1 = toPackets(p1, 100, 3000);
    const pk2 = toPackets(p2, 100 + pk1.length, 6000);
    const pk3 = toPackets(p1, 100 + pk1.length + pk2.length, 9000);
    const out = frames([...pk1, ...pk2.slice(0, 1), ...pk3]);
    assert.deepEqual(out.map((f) => [f.timestamp, f.keyframe]), [[3000, true], [9000, true]]);
    assert.deepEqual(out[1].data, joinAnnexB(au1));
    // Its STAP-A (AUD, SPS, PPS) lost too: the IDR alone comes out, not called a keyframe (the SPS
    // lost with it may not be the one seen before).
    const again = recorder();
    const pk4 = toPackets(p1, 900, 3000);
    const pk5 = toPackets(p1, 900 + pk4.length + 3, 9000);
    const out2 = again.frames([...pk4, ...pk5.slice(1)]);
    assert.deepEqual(out2.map((f) => [f.timestamp, f.keyframe]), [[3000, true], [9000, false]]);
    assert.equal(again.d.counters.keyframesWithoutParameterSets, 1);
    assert.equal(d.counters.framesDropped, 1);
  });

  test('an access unit without a marker is emitted when the next timestamp follows with no gap', () => {
    const { d, frames } = recorder();
    const pk1 = toPackets(p1, 7, 3000);
    const pk2 = toPackets(p2, 7 + pk1.length, 6000);
    pk1[pk1.length - 1].marker = false;
    const out = frames([...pk1, ...pk2]);
    assert.deepEqual(out.map((f) => f.data), [joinAnnexB(au1), joinAnnexB(au2)]);
    assert.equal(d.counters.framesDropped, 0);
  });

  test('push() hands out both frames when one packet completes two access units', () => {
    const d = new H264Depacketizer();
    const a = toPackets([AUD, nal(0, 2, NalType.SLICE, 10)], 1, 3000);
    a[1].marker = false;
    const b = toPackets([AUD], 3, 6000); // one-packet access unit with its marker
    const c = toPackets([SEI], 4, 9000);
    c[0].marker = false;
    assert.equal(d.push(a[0]), null);
    assert.equal(d.push(a[1]), null);
    assert.equal(d.push(b[0])?.timestamp, 3000);
    assert.equal(d.push(c[0])?.timestamp, 6000);
  });

  test('an FU-A fragment without its start drops the access unit', () => {
    const { d, drops, frames } = recorder();
    const pk1 = toPackets(p2, 40, 3000);
    // Access unit 2: the FU-A start is replaced by a middle fragment with S cleared, seq continuous.
    const bad = toPackets(
      [bytes(nalHeader(0, 2, 28), fuHeader(0, 0, 1), 1, 2, 3), bytes(nalHeader(0, 2, 28), fuHeader(0, 1, 1), 4)],
      40 + pk1.length,
      6000,
    );
    const pk3 = toPackets(p2, 40 + pk1.length + 2, 9000);
    const out = frames([...pk1, ...bad, ...pk3]);
    assert.deepEqual(out.map((f) => f.timestamp), [3000, 9000]);
    assert.equal(d.counters.malformedPackets, 1);
    assert.match(drops[0], /FU-A: fragment without its start/);
  });

  test('an FU-A whose end never comes drops the access unit at the marker', () => {
    const { drops, frames } = recorder();
    const out = frames(toPackets([AUD, bytes(nalHeader(0, 2, 28), fuHeader(1, 0, 1), 0x88, 2)], 1, 3000));
    assert.deepEqual(out, []);
    assert.match(drops[0], /no end fragment/);
  });

  const malformed: [string, Buffer, RegExp][] = [
    ['STAP-A with a truncated size field', bytes(nalHeader(0, 3, 24), u16(2), AUD, 0x00), /STAP-A NAL unit size at byte 5: need 2 bytes, have 1/],
    ['STAP-A whose size runs past the payload', bytes(nalHeader(0, 3, 24), u16(40), SPS), /need 40 bytes, have 12/],
    ['STAP-A with a zero size', bytes(nalHeader(0, 3, 24), u16(0)), /zero-size/],
    ['STAP-A with nothing in it', bytes(nalHeader(0, 3, 24)), /no NAL unit/],
    ['STAP-A nesting an FU-A', bytes(nalHeader(0, 3, 24), u16(2), nalHeader(0, 3, 28), 0x85), /type 28, must be 1-23/],
    ['FU-A with S and E both set', bytes(nalHeader(0, 3, 28), fuHeader(1, 1, 5), 1, 2), /both set/],
    ['FU-A cut after the indicator', bytes(nalHeader(0, 3, 28)), /need 2 bytes, have 1/],
    ['empty payload', Buffer.alloc(0), /need 1 bytes, have 0/],
  ];
  for (const [name, payload, reason] of malformed) {
    test(`malformed: ${name} → dropped, counted, next access unit decodes`, () => {
      const { d, drops, frames } = recorder();
      const bad = toPackets([AUD, payload], 10, 3000);
      const good = toPackets(p2, 12, 6000);
      const out = frames([...bad, ...good]);
      assert.deepEqual(out.map((f) => f.data), [joinAnnexB(au2)]);
      assert.equal(d.counters.malformedPackets, 1);
      assert.equal(d.counters.framesDropped, 1);
      assert.match(drops[0], reason);
    });
  }

  for (const [type, name] of [[25, 'STAP-B'], [26, 'MTAP16'], [27, 'MTAP24'], [29, 'FU-B'], [30, 'reserved']] as const) {
    test(`unsupported: ${name} (type ${type}) is counted and drops its access unit`, () => {
      const { d, drops, frames } = recorder();
      const out = frames([...toPackets([AUD, bytes(nalHeader(0, 3, type), 0, 1, 2, 3)], 10, 3000), ...toPackets(p2, 12, 6000)]);
      assert.deepEqual(out.map((f) => f.timestamp), [6000]);
      assert.equal(d.counters.unsupportedPackets, 1);
      assert.match(drops[0], new RegExp(`type ${type} \\(${name}\\)`));
    });
  }

  test('duplicates and late packets are discarded without harming the access unit', () => {
    const { d, frames } = recorder();
    const pk = toPackets(p1, 200, 3000);
    const out = frames([pk[0], pk[1], pk[0], pk[2], pk[1], pk[3]]);
    assert.deepEqual(out.map((f) => f.data), [joinAnnexB(au1)]);
    assert.equal(d.counters.packetsDiscarded, 2);
  });

  test('joining mid access unit (first packet is not an access unit start) drops it; the next decodes', () => {
    const { d, drops, frames } = recorder();
    const pk1 = toPackets(p1, 300, 3000);
    const pk2 = toPackets(p2, 300 + pk1.length, 6000);
    const out = frames([...pk1.slice(2), ...pk2]); // starts at a middle FU-A fragment
    assert.deepEqual(out.map((f) => f.timestamp), [6000]);
    assert.match(drops[0], /joined the stream mid access unit/);
    // A slice with first_mb_in_slice != 0 (first body bit 0) cannot start one either.
    const { drops: drops2, frames: frames2 } = recorder();
    assert.deepEqual(frames2(toPackets([bytes(nalHeader(0, 2, 1), 0x40, 1, 2)], 9, 3000)), []);
    assert.equal(drops2.length, 1);
    assert.equal(d.counters.framesComplete, 1);
  });

  test('reset() forgets a partial access unit', () => {
    const { d, frames } = recorder();
    const pk1 = toPackets(p1, 1, 3000);
    frames(pk1.slice(0, 2));
    d.reset();
    const out = frames(toPackets(p2, 5000, 6000)); // unrelated sequence numbers are fine after reset
    assert.deepEqual(out.map((f) => f.data), [joinAnnexB(au2)]);
    assert.equal(d.counters.framesDropped, 0);
  });
});

describe('H264Depacketizer: an IDR is a keyframe only with its parameter sets', () => {
  const packetizer = new H264Packetizer({ payloadLimit: 64 });
  const withSets = packetizer.packetize([AUD, SPS, PPS, IDR150]); // STAP-A(AUD, SPS, PPS) + FU-As
  const bare = (au: Buffer[], seq: number, ts: number) => toPackets(packetizer.packetize(au), seq, ts);

  test('joining at an IDR whose SPS/PPS packet was lost: a frame, but not a keyframe, and counted', () => {
    // A viewer moved to another layer: its first packet of that layer is the IDR's first fragment.
    const { d, frames } = recorder();
    const out = frames(toPackets(withSets, 100, 3000).slice(1));
    assert.equal(out.length, 1);
    assert.equal(out[0].keyframe, false, 'no decoder can start from it');
    assert.deepEqual(out[0].data, joinAnnexB([IDR150]));
    assert.equal(d.counters.keyframesWithoutParameterSets, 1);
  });

  test('an IDR without them after one with them gets the ones seen (after its AUD) and is a keyframe', () => {
    const { d, frames } = recorder();
    const first = toPackets(withSets, 100, 3000);
    const second = bare([AUD, IDR150], 100 + first.length, 6000);
    const third = bare([IDR150], 100 + first.length + second.length, 9000);
    const out = frames([...first, ...second, ...third]);
    assert.deepEqual(out.map((f) => f.keyframe), [true, true, true]);
    assert.deepEqual(out[1].data, joinAnnexB([AUD, SPS, PPS, IDR150]));
    assert.deepEqual(out[2].data, joinAnnexB([SPS, PPS, IDR150]));
    assert.equal(d.counters.parameterSetsAdded, 2);
    assert.equal(d.counters.keyframesWithoutParameterSets, 0);
  });

  test('an IDR carrying only its PPS gets the SPS seen last; a P slice is never called a keyframe', () => {
    const { frames } = recorder();
    const first = toPackets(withSets, 1, 3000);
    const second = bare([PPS, IDR150], 1 + first.length, 6000);
    const third = bare([SLICE64], 1 + first.length + second.length, 9000);
    const out = frames([...first, ...second, ...third]);
    assert.deepEqual(out[1].data, joinAnnexB([SPS, PPS, IDR150]));
    assert.deepEqual(out.map((f) => f.keyframe), [true, true, false]);
    assert.deepEqual(out[2].data, joinAnnexB([SLICE64]));
  });

  test('reset() forgets them: the next encoder may use other ones', () => {
    const { d, frames } = recorder();
    frames(toPackets(withSets, 100, 3000));
    d.reset();
    const out = frames(bare([IDR150], 7000, 6000));
    assert.equal(out[0].keyframe, false);
    assert.equal(d.counters.keyframesWithoutParameterSets, 1);
  });
});

describe('sequence numbers wrap at 65535 → 0 (via seq.ts)', () => {
  const payloads = new H264Packetizer({ payloadLimit: 64 }).packetize([AUD, SPS, PPS, IDR150]);
  test('an access unit spanning 65534, 65535, 0, 1 decodes', () => {
    const pk = toPackets(payloads, 65534, 1);
    assert.deepEqual(pk.map((p) => p.sequenceNumber), [65534, 65535, 0, 1]);
    const out = depacketizeAll(pk);
    assert.deepEqual(out.map((f) => f.data), [joinAnnexB([AUD, SPS, PPS, IDR150])]);
  });
  test('losing 0 between 65535 and 1 is a gap', () => {
    const pk = toPackets(payloads, 65534, 1);
    const { d, drops, frames } = recorder();
    assert.deepEqual(frames([pk[0], pk[1], pk[3]]), []);
    assert.equal(d.counters.framesDropped, 1);
    assert.match(drops[0], /1 packet\(s\) lost/);
  });
});

describe('caps', () => {
  test(`MAX_NALUS_PER_AU (${MAX_NALUS_PER_AU}) NAL units pass, one more drops the access unit`, () => {
    const p = new H264Packetizer({ payloadLimit: 1400 });
    const tiny = (n: number) => Array.from({ length: n }, (_, i) => bytes(nalHeader(0, 0, NalType.SEI), i & 0xff, 0x80));
    const ok = depacketizeAll(toPackets(p.packetize(tiny(MAX_NALUS_PER_AU)), 1, 3000));
    assert.equal(ok.length, 1);
    assert.equal(splitAnnexB(ok[0].data).length, MAX_NALUS_PER_AU);
    const { d, drops, frames } = recorder();
    assert.deepEqual(frames(toPackets(p.packetize(tiny(MAX_NALUS_PER_AU + 1)), 1, 3000)), []);
    assert.equal(d.counters.framesDropped, 1);
    assert.match(drops[0], new RegExp(`more than ${MAX_NALUS_PER_AU} NAL units`));
  });

  test(`MAX_FRAME_BYTES (${MAX_FRAME_BYTES}) of Annex B pass, one byte more drops the access unit`, () => {
    const p = new H264Packetizer({ payloadLimit: 60_000 });
    const fits = nal(0, 3, NalType.IDR, MAX_FRAME_BYTES - 4); // + 4-byte start code = the cap
    const ok = depacketizeAll(toPackets(p.packetize([fits]), 1, 3000));
    assert.equal(ok.length, 1);
    assert.equal(ok[0].data.length, MAX_FRAME_BYTES);
    const { d, drops, frames } = recorder();
    assert.deepEqual(frames(toPackets(p.packetize([nal(0, 3, NalType.IDR, MAX_FRAME_BYTES - 3)]), 1, 3000)), []);
    assert.equal(d.counters.framesDropped, 1);
    assert.match(drops[0], new RegExp(`exceeds ${MAX_FRAME_BYTES} bytes`));
  });

  test('caps are options, and the depacketizer keeps working after hitting one', () => {
    const { d, frames } = recorder({ maxFrameBytes: 100, maxNalusPerAu: 2 });
    const p = new H264Packetizer({ payloadLimit: 64 });
    assert.deepEqual(frames(toPackets(p.packetize([IDR150]), 1, 3000)), []);
    assert.deepEqual(frames(toPackets(p.packetize([AUD, SEI, SEI]), 4, 6000)), []);
    assert.equal(frames(toPackets(p.packetize([AUD, SEI]), 5, 9000)).length, 1);
    assert.equal(d.counters.framesDropped, 2);
  });
});

describe('Annex B and AVCC', () => {
  test('3- and 4-byte start codes, leading and trailing zeros', () => {
    const stream = bytes(0, 0, 0, 0, 1, SPS, 0, 0, 1, PPS, 0, 0, 0, 0, 0, 1, AUD, 0, 0);
    const got = splitAnnexB(stream);
    assert.deepEqual(got, [SPS, PPS, AUD]);
    assert.ok(got.every((n) => n.buffer === stream.buffer), 'views, not copies');
    assert.deepEqual(splitAnnexB(joinAnnexB([SPS, PPS, IDR150])), [SPS, PPS, IDR150]);
    assert.deepEqual(joinAnnexB([AUD]), bytes(0, 0, 0, 1, AUD));
    assert.deepEqual(splitAnnexB(bytes(0, 0, 1, 0, 0, 1, AUD)), [AUD], 'empty NAL unit skipped');
    assert.deepEqual(splitAnnexB(Buffer.alloc(5)), []);
  });
  test('bytes before the first start code that are not zero are refused', () => {
    assert.throws(() => splitAnnexB(bytes(7, 0, 0, 1, AUD)), PacketError);
    assert.throws(() => splitAnnexB(bytes(7, 8, 9)), /no start code in 3 bytes/);
  });
  test('nalType, isKeyframe', () => {
    assert.equal(nalType(IDR150), 5);
    assert.equal(nalType(SPS), 7);
    assert.throws(() => nalType(Buffer.alloc(0)), PacketError);
    assert.equal(isKeyframe([SPS, PPS, IDR150]), true);
    assert.equal(isKeyframe([AUD, SLICE64]), false);
  });
  test('avccToNalus: length-prefixed views, and lying lengths raise PacketError', () => {
    const buf = bytes(0, 0, 0, 12, SPS, 0, 0, 0, 4, PPS);
    assert.deepEqual(avccToNalus(buf), [SPS, PPS]);
    assert.deepEqual(avccToNalus(bytes(u16(2), AUD), 2), [AUD]);
    assert.deepEqual(avccToNalus(bytes(2, AUD), 1), [AUD]);
    assert.throws(() => avccToNalus(bytes(0, 0, 0, 13, SPS)), /need 13 bytes, have 12/);
    assert.throws(() => avccToNalus(bytes(0, 0, 0, 0)), /zero-length/);
    assert.throws(() => avccToNalus(bytes(0, 0, 0, 12, SPS, 0, 0)), /need 4 bytes, have 2/);
    assert.throws(() => avccToNalus(buf, 3), PacketError);
  });
});

// ---- Properties --------------------------------------------------------------------------------

/** A NAL unit with a random type 1-23 (as encoders produce), F 0, random NRI and body. */
const arbNalu = fc
  .record({
    type: fc.integer({ min: 1, max: 23 }),
    nri: fc.integer({ min: 0, max: 3 }),
    size: fc.integer({ min: 1, max: 5000 }),
    seed: fc.integer({ min: 0, max: 255 }),
  })
  .map(({ type, nri, size, seed }) => nal(0, nri, type, size, seed));
const arbAu = fc.array(arbNalu, { minLength: 1, maxLength: 8 });

const typeOf = (n: Buffer) => n[0] & 0x1f;
function carriesParameterSets(nalus: Buffer[]): boolean {
  return nalus.some((n) => typeOf(n) === NalType.SPS) && nalus.some((n) => typeOf(n) === NalType.PPS);
}

/**
 * What the depacketizer should make of a run of access units, written plainly: the first SPS and
 * PPS of a unit with both are kept; an IDR missing either gets the kept one after a leading AUD and
 * is a keyframe, or with none kept is not one.
 */
function withParameterSetsModel(aus: Buffer[][]): Array<{ nalus: Buffer[]; keyframe: boolean }> {
  let kept: { sps: Buffer; pps: Buffer } | undefined;
  return aus.map((au) => {
    const sps = au.find((n) => typeOf(n) === NalType.SPS);
    const pps = au.find((n) => typeOf(n) === NalType.PPS);
    if (sps && pps) {
      kept = { sps, pps };
      return { nalus: au, keyframe: isKeyframe(au) };
    }
    if (!isKeyframe(au) || !kept) return { nalus: au, keyframe: false };
    const at = typeOf(au[0]) === NalType.AUD ? 1 : 0;
    const add = [...(sps ? [] : [kept.sps]), ...(pps ? [] : [kept.pps])];
    return { nalus: [...au.slice(0, at), ...add, ...au.slice(at)], keyframe: true };
  });
}

describe('properties', () => {
  test('depacketize(packetize(au)) = au, for random access units and payload limits', () => {
    fc.assert(
      fc.property(
        fc.array(arbAu, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 64, max: 1500 }),
        fc.integer({ min: 0, max: 65535 }),
        (aus, limit, firstSeq) => {
          const p = new H264Packetizer({ payloadLimit: limit });
          const copies = aus.map((au) => au.map((n) => Buffer.from(n)));
          // A one-AUD access unit first, so the random ones are not "joined mid access unit".
          const packets: RtpPacket[] = toPackets([AUD], firstSeq, 0);
          let seq = seqAdd(firstSeq, 1);
          aus.forEach((au, i) => {
            const payloads = p.packetize(au);
            for (const pl of payloads) assert.ok(flat(pl).length <= limit);
            packets.push(...toPackets(payloads, seq, (i + 1) * 3000));
            seq = seqAdd(seq, payloads.length);
          });
          const { d, drops, frames } = recorder();
          const out = frames(packets);
          assert.deepEqual(drops, []);
          const want = withParameterSetsModel(aus);
          assert.deepEqual(out.slice(1).map((f) => f.data), want.map((w) => joinAnnexB(w.nalus)));
          assert.deepEqual(out.slice(1).map((f) => f.keyframe), want.map((w) => w.keyframe));
          assert.equal(d.counters.framesComplete, aus.length + 1);
          assert.deepEqual(aus, copies, 'packetize and depacketize never mutate their input');
        },
      ),
      { numRuns: 150 },
    );
  });

  test('random payloads: push never throws, only counts; every frame out is valid Annex B', () => {
    const arbPacket = fc.record({
      seqStep: fc.integer({ min: -3, max: 3 }),
      tsStep: fc.constantFrom(0, 0, 0, 3000),
      marker: fc.boolean(),
      payload: fc.oneof(
        fc.uint8Array({ maxLength: 64 }),
        // Payloads that look like our structures, to get past the first byte more often.
        fc.tuple(fc.constantFrom(24, 28, 0x7c, 0x78, 0x65, 0x09), fc.uint8Array({ maxLength: 40 })).map(([h, rest]) => Uint8Array.of(h, ...rest)),
      ),
    });
    fc.assert(
      fc.property(fc.array(arbPacket, { maxLength: 60 }), fc.integer({ min: 0, max: 65535 }), (list, seq0) => {
        const d = new H264Depacketizer({ maxFrameBytes: 2000, maxNalusPerAu: 16 });
        let seq = seq0;
        let ts = 0;
        let completeSeen = 0;
        for (const r of list) {
          seq = seqAdd(seq, r.seqStep);
          ts += r.tsStep;
          const payload = Buffer.from(r.payload);
          const before = Buffer.from(payload);
          const packet = { padding: 0, marker: r.marker, payloadType: 96, sequenceNumber: seq, timestamp: ts, ssrc: 1, csrc: [], payload };
          for (const f of d.pushAll(packet)) {
            completeSeen++;
            assert.ok(f.data.length <= 2000);
            const nalus = splitAnnexB(f.data);
            assert.ok(nalus.length >= 1 && nalus.length <= 16);
          }
          assert.deepEqual(payload, before, 'payload not mutated');
        }
        assert.equal(d.counters.framesComplete, completeSeen);
      }),
      { numRuns: 500 },
    );
  });

  test('random bytes into parseRtp, splitAnnexB, avccToNalus and packetize raise only PacketError', () => {
    const onlyPacketError = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof PacketError, `unexpected ${String(e)}`);
      }
    };
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(1, 2, 4), (u8, lengthSize) => {
        const buf = Buffer.from(u8);
        const copy = Buffer.from(buf);
        const d = new H264Depacketizer();
        onlyPacketError(() => d.push(parseRtp(buf)));
        onlyPacketError(() => splitAnnexB(buf));
        onlyPacketError(() => avccToNalus(buf, lengthSize));
        onlyPacketError(() => new H264Packetizer({ payloadLimit: 64 }).packetize([buf, buf.subarray(1)]));
        assert.deepEqual(buf, copy);
      }),
      { numRuns: 1000 },
    );
  });

  test('splitAnnexB(joinAnnexB(nalus)) = nalus for NAL units that do not end in zero', () => {
    fc.assert(
      fc.property(fc.array(arbNalu, { maxLength: 10 }), (nalus) => {
        // H.264 §7.4.1: the last byte of a NAL unit is never 0; emulation prevention keeps start
        // codes out of the body. Make our random bodies obey both.
        const clean = nalus.map((n) => Buffer.from(n.map((b, i) => (i > 0 && b < 4 ? b + 4 : b))));
        assert.deepEqual(splitAnnexB(joinAnnexB(clean)), clean);
      }),
    );
  });
});
