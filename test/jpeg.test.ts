/**
 * RFC 2435 (RTP payload format for JPEG): golden packets built byte by byte from the RFC's field
 * layouts, one case table driving packetizer and depacketizer, loss handling, the size and
 * "not carriable" errors, fast-check properties, and FFmpeg-made images (when FFmpeg is here).
 *
 * The images that need no FFmpeg are written here byte by byte (T.81 Annex B): a flat mid-gray
 * picture whose scan we can spell out bit by bit, which every decoder shows as Y = 128.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { skipUnless } from './helpers/tools.ts';
import {
  JpegFormatError,
  JpegSizeError,
  JpegUnsupportedError,
  parseJpeg,
  type ParsedJpeg,
} from '../src/codecs/mjpeg/jpeg.ts';
import { JpegPacketizer, MIN_JPEG_PAYLOAD_LIMIT } from '../src/codecs/mjpeg/packetize.ts';
import { JpegDepacketizer } from '../src/codecs/mjpeg/depacketize.ts';
import { AC_CHROMA, AC_LUMA, DC_CHROMA, DC_LUMA, type HuffmanSpec } from '../src/codecs/mjpeg/tables.ts';
import { PacketError } from '../src/util/errors.ts';
import { parseRtp, type RtpPacket } from '../src/rtp/packet.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { DEFAULT_PAYLOAD_LIMIT, PT_JPEG } from '../src/defaults.ts';
import type { Payload } from '../src/rtp/frame.ts';

// ---- A baseline JFIF image, byte by byte ---------------------------------------------------------

interface SynthOptions {
  width: number;
  height: number;
  /** 0: Y 2x1 over 1x1 chroma (RFC 2435 type 0); 1: Y 2x2 (type 1). */
  subsampling: 0 | 1;
  restartInterval?: number;
  /** 64 bytes each, zigzag order. */
  luma?: Buffer;
  chroma?: Buffer;
  /** One DQT table for all three components, as FFmpeg writes when luma and chroma match. */
  sharedTable?: boolean;
  /** A luminance DC difference 1-7 in the first block after each reset: a different scan. */
  lumaDc?: number;
  /** Replaces the gray scan (must already be byte-stuffed). */
  scan?: Buffer;
  /** Overrides the DHT segment body. */
  dhtBody?: number[];
  /** Overrides the three H|V sampling bytes. */
  sampling?: [number, number, number];
}

/** Distinct, recognizable tables: luma 1..64, chroma 101..164 (zigzag order, as DQT stores them). */
const LUMA = Buffer.from(Array.from({ length: 64 }, (_, i) => i + 1));
const CHROMA = Buffer.from(Array.from({ length: 64 }, (_, i) => i + 101));

/** MSB-first bit writer with T.81 F.1.2.3 byte stuffing (0xFF → 0xFF 0x00) and 1-bit padding. */
class BitWriter {
  private bytes: number[] = [];
  private acc = 0;
  private n = 0;
  put(bits: string): void {
    for (const b of bits) {
      this.acc = (this.acc << 1) | (b === '1' ? 1 : 0);
      if (++this.n === 8) {
        this.bytes.push(this.acc);
        if (this.acc === 0xff) this.bytes.push(0x00);
        this.acc = 0;
        this.n = 0;
      }
    }
  }
  align(): void {
    while (this.n !== 0) this.put('1');
  }
  marker(code: number): void {
    this.bytes.push(0xff, code);
  }
  done(): Buffer {
    this.align();
    return Buffer.from(this.bytes);
  }
}

/**
 * A flat picture at level 128: every block has DC difference 0 and no AC coefficients, so with
 * the Annex K.3 tables a block is the DC code for category 0 then end-of-block:
 *   luminance   DC cat 0 = 00, EOB = 1010   (Tables K.3, K.5)
 *   chrominance DC cat 0 = 00, EOB = 00     (Tables K.4, K.6)
 * With a restart interval, each interval is padded to a byte and followed by RST0..RST7 in turn.
 */
function grayScan(o: SynthOptions): Buffer {
  const mcus = Math.ceil(o.width / 16) * Math.ceil(o.height / (o.subsampling === 1 ? 16 : 8));
  const yBlocks = o.subsampling === 1 ? 4 : 2;
  const ri = o.restartInterval ?? 0;
  const w = new BitWriter();
  for (let m = 0; m < mcus; m++) {
    if (ri > 0 && m > 0 && m % ri === 0) {
      w.align();
      w.marker(0xd0 + ((m / ri - 1) % 8));
    }
    const reset = ri > 0 ? m % ri === 0 : m === 0;
    for (let b = 0; b < yBlocks; b++) {
      if (reset && b === 0 && o.lumaDc) {
        // Table K.3: categories 1-3 are 010, 011, 100, then the difference in that many bits.
        const cat = o.lumaDc >= 4 ? 3 : o.lumaDc >= 2 ? 2 : 1;
        w.put(['', '010', '011', '100'][cat] + o.lumaDc.toString(2).padStart(cat, '0'));
      } else {
        w.put('00');
      }
      w.put('1010');
    }
    w.put('0000'); // Cb: DC cat 0, EOB
    w.put('0000'); // Cr
  }
  return w.done();
}

function seg(code: number, body: number[] | Buffer): Buffer {
  const len = body.length + 2;
  return Buffer.from([0xff, code, len >> 8, len & 0xff, ...body]);
}

function dht(tc: number, th: number, s: HuffmanSpec): number[] {
  return [(tc << 4) | th, ...s.bits, ...s.values];
}

const STANDARD_DHT = [...dht(0, 0, DC_LUMA), ...dht(1, 0, AC_LUMA), ...dht(0, 1, DC_CHROMA), ...dht(1, 1, AC_CHROMA)];

function synthJpeg(o: SynthOptions): Buffer {
  const luma = o.luma ?? LUMA;
  const chroma = o.chroma ?? CHROMA;
  const cq = o.sharedTable ? 0 : 1;
  const [hy, hcb, hcr] = o.sampling ?? [o.subsampling === 1 ? 0x22 : 0x21, 0x11, 0x11];
  const parts = [
    Buffer.from([0xff, 0xd8]), // SOI
    seg(0xe0, [0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]), // APP0 JFIF 1.02
    seg(0xfe, Buffer.from('udpcast test image')), // COM
    seg(0xdb, o.sharedTable ? [0x00, ...luma] : [0x00, ...luma, 0x01, ...chroma]), // DQT: Pq|Tq, 64 entries, repeated
  ];
  if (o.restartInterval) parts.push(seg(0xdd, [o.restartInterval >> 8, o.restartInterval & 0xff])); // DRI
  // SOF0: P, Y, X, Nf, then (C, H|V, Tq) for Y, Cb, Cr
  parts.push(seg(0xc0, [8, o.height >> 8, o.height & 0xff, o.width >> 8, o.width & 0xff, 3, 1, hy, 0, 2, hcb, cq, 3, hcr, cq]));
  parts.push(seg(0xc4, o.dhtBody ?? STANDARD_DHT)); // DHT: the four Annex K.3 tables
  parts.push(seg(0xda, [3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0])); // SOS: Ns, (Cs, Td|Ta) x3, Ss, Se, Ah|Al
  parts.push(o.scan ?? grayScan(o), Buffer.from([0xff, 0xd9])); // scan, EOI
  return Buffer.concat(parts);
}

// ---- RTP helpers ---------------------------------------------------------------------------------

function rtp(payload: Buffer | Payload, seq: number, ts: number, marker: boolean): RtpPacket {
  const p = Array.isArray(payload) ? Buffer.concat(payload) : payload;
  return { padding: 0, marker, payloadType: PT_JPEG, sequenceNumber: seq & 0xffff, timestamp: ts >>> 0, ssrc: 0x1234, csrc: [], payload: p };
}

/** One frame's payloads as packets numbered from `seq`, marker on the last. */
function packets(payloads: (Buffer | Payload)[], seq: number, ts: number): RtpPacket[] {
  return payloads.map((p, i) => rtp(p, seq + i, ts, i === payloads.length - 1));
}

function depacketize(pkts: RtpPacket[], d = new JpegDepacketizer()) {
  const frames = [];
  for (const p of pkts) {
    const f = d.push(p);
    if (f) frames.push(f);
  }
  return { frames, d };
}

/** The fields RFC 2435 carries, as plain values for deepEqual. */
function fields(j: ParsedJpeg) {
  return {
    width: j.width,
    height: j.height,
    type: j.type,
    restartInterval: j.restartInterval,
    quantTables: j.quantTables.map((t) => [...t]),
    scan: j.scan.toString('hex'),
  };
}

const range = (from: number, n: number) => Array.from({ length: n }, (_, i) => from + i);

// ---- Golden packets: one table drives both directions ---------------------------------------------

interface Case {
  name: string;
  image: SynthOptions;
  payloadLimit: number;
  /** Every payload, spelled out from RFC 2435 §3.1, §3.1.7 and §3.1.8. */
  golden: number[][];
}

// 16x16 at 4:2:0 is one MCU: four Y blocks (001010 each), Cb 0000, Cr 0000 = 32 bits exactly.
const GRAY_420_16x16 = [0x28, 0xa2, 0x8a, 0x00];
// 32x16 at 4:2:2 with restart interval 1: four MCUs of 20 bits (Y 001010 x2, Cb, Cr), each padded
// with 1s to 24 bits, RST0-RST2 between them.
const MCU_422 = [0x28, 0xa0, 0x0f];
const GRAY_422_32x16_RI1 = [...MCU_422, 0xff, 0xd0, ...MCU_422, 0xff, 0xd1, ...MCU_422, 0xff, 0xd2, ...MCU_422];

const CASES: Case[] = [
  {
    name: 'type 1 (4:2:0), one packet, Q 255 with two 8-bit tables',
    image: { width: 16, height: 16, subsampling: 1 },
    payloadLimit: DEFAULT_PAYLOAD_LIMIT,
    golden: [
      [
        0x00, // type-specific
        0x00, 0x00, 0x00, // fragment offset 0
        1, // type 1
        255, // Q 255: tables in band, may change every frame
        16 / 8, 16 / 8, // width/8, height/8
        0x00, 0x00, 0x00, 128, // quantization table header: MBZ, precision 0 (8-bit), length 128
        ...range(1, 64), ...range(101, 64), // table 0 (luma), table 1 (chroma)
        ...GRAY_420_16x16,
      ],
    ],
  },
  {
    name: 'type 64 (4:2:2 + restart markers), split in two, restart header in both',
    image: { width: 32, height: 16, subsampling: 0, restartInterval: 1 },
    payloadLimit: 8 + 4 + 4 + 128 + 10, // the first packet takes 10 scan bytes
    golden: [
      [
        0x00, 0x00, 0x00, 0x00, // type-specific, offset 0
        64, 255, 32 / 8, 16 / 8, // type 64, Q 255, width/8, height/8
        0x00, 0x01, // restart interval 1 (as in DRI)
        0xff, 0xff, // F=1, L=1, restart count 0x3FFF: intervals not aligned to packets
        0x00, 0x00, 0x00, 128, // MBZ, precision, length
        ...range(1, 64), ...range(101, 64),
        ...GRAY_422_32x16_RI1.slice(0, 10),
      ],
      [
        0x00, 0x00, 0x00, 10, // offset 10
        64, 255, 4, 2,
        0x00, 0x01, 0xff, 0xff, // restart header again; no table header after offset 0
        ...GRAY_422_32x16_RI1.slice(10),
      ],
    ],
  },
  {
    name: 'one shared DQT table (as FFmpeg writes when luma and chroma match) is sent for both',
    image: { width: 16, height: 16, subsampling: 1, sharedTable: true },
    payloadLimit: DEFAULT_PAYLOAD_LIMIT,
    golden: [[0x00, 0x00, 0x00, 0x00, 1, 255, 2, 2, 0x00, 0x00, 0x00, 128, ...range(1, 64), ...range(1, 64), ...GRAY_420_16x16]],
  },
];

describe('RFC 2435 golden packets', () => {
  for (const c of CASES) {
    test(`packetize: ${c.name}`, () => {
      const payloads = new JpegPacketizer({ payloadLimit: c.payloadLimit }).packetize(synthJpeg(c.image));
      assert.deepEqual(
        payloads.map((p) => [...Buffer.concat(p)]),
        c.golden,
      );
      for (const p of payloads) assert.ok(Buffer.concat(p).length <= c.payloadLimit);
    });
    test(`depacketize: ${c.name}`, () => {
      const original = parseJpeg(synthJpeg(c.image));
      const { frames, d } = depacketize(packets(c.golden.map((g) => Buffer.from(g)), 65534, 0xfffffff0));
      assert.equal(frames.length, 1);
      assert.equal(d.counters.framesComplete, 1);
      assert.equal(frames[0].timestamp, 0xfffffff0);
      assert.equal(frames[0].keyframe, true);
      const rebuilt = parseJpeg(frames[0].data);
      const want = fields(original);
      assert.deepEqual(fields(rebuilt), want);
    });
  }

  test('the rebuilt headers say what RFC 2435 implies: DQT, DRI, SOF0 sampling, four standard DHTs, SOS', () => {
    const [c] = CASES.slice(1);
    const { frames } = depacketize(packets(c.golden.map((g) => Buffer.from(g)), 0, 0));
    const jpg = frames[0].data;
    const find = (code: number) => {
      for (let o = 2; o + 4 <= jpg.length; ) {
        const len = jpg.readUInt16BE(o + 2);
        if (jpg[o + 1] === code) return jpg.subarray(o + 4, o + 2 + len);
        if (jpg[o + 1] === 0xda) break;
        o += 2 + len;
      }
      return null;
    };
    assert.deepEqual([...jpg.subarray(0, 2)], [0xff, 0xd8]);
    assert.deepEqual([...find(0xdb)!], [0x00, ...range(1, 64), 0x01, ...range(101, 64)]);
    assert.deepEqual([...find(0xdd)!], [0x00, 0x01]);
    assert.deepEqual([...find(0xc0)!], [8, 0, 16, 0, 32, 3, 1, 0x21, 0, 2, 0x11, 1, 3, 0x11, 1]);
    assert.deepEqual([...find(0xc4)!], STANDARD_DHT);
    assert.deepEqual([...find(0xda)!], [3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0]);
    assert.deepEqual([...jpg.subarray(-2)], [0xff, 0xd9]);
    assert.equal(jpg.indexOf(Buffer.from([0xff, 0xd9])), jpg.length - 2, 'exactly one EOI');
  });
});

// ---- Depacketizer: Q values, tables, EOI ----------------------------------------------------------

/** A one-packet frame with the given main header fields and optional table header. */
function onePacket(o: { type?: number; q: number; tables?: { precision: number; data: number[] }; scan?: number[] }): Buffer {
  const head = [0, 0, 0, 0, o.type ?? 1, o.q, 2, 2];
  const qt = o.tables ? [0, o.tables.precision, o.tables.data.length >> 8, o.tables.data.length & 0xff, ...o.tables.data] : [];
  return Buffer.from([...head, ...qt, ...(o.scan ?? GRAY_420_16x16)]);
}

describe('RFC 2435 depacketizer: quantization tables and Q', () => {
  // RFC 2435 Appendix A's jpeg_luma_quantizer: Annex K Table K.1 in zigzag order.
  const K1_ZIGZAG = [
    16, 11, 12, 14, 12, 10, 16, 14, 13, 14, 18, 17, 16, 19, 24, 40, 26, 24, 22, 22, 24, 49, 35, 37, 29, 40, 58, 51, 61, 60,
    57, 51, 56, 55, 64, 72, 92, 78, 64, 68, 87, 69, 55, 56, 80, 109, 81, 87, 95, 98, 103, 104, 103, 62, 77, 113, 121, 112,
    100, 120, 92, 101, 103, 99,
  ];
  // Table K.2 in zigzag order: the upper-left corner, then 99 everywhere.
  const K2_ZIGZAG_HEAD = [17, 18, 18, 24, 21, 24, 47, 26, 26, 47, 99, 66, 56, 66, 99, 99];

  const tablesFor = (q: number) => {
    const { frames } = depacketize([rtp(onePacket({ q }), 1, 0, true)]);
    assert.equal(frames.length, 1, `Q ${q} gives a frame`);
    return parseJpeg(frames[0].data).quantTables.map((t) => [...t]);
  };

  test('Q 50 is the Annex K tables unchanged, in zigzag order (Appendix A)', () => {
    const [luma, chroma] = tablesFor(50);
    assert.deepEqual(luma, K1_ZIGZAG);
    assert.deepEqual(chroma.slice(0, 16), K2_ZIGZAG_HEAD);
    assert.deepEqual(chroma.slice(16), new Array(48).fill(99));
  });

  test('Q scales like Appendix A: S = 5000/Q below 50, 200 - 2Q above; entries (T*S + 50)/100 within 1-255', () => {
    // Q 75: S = 50, so 16 → 8 (8.5 rounded down), 99 → 50 (50.0).
    assert.deepEqual([tablesFor(75)[0][0], tablesFor(75)[0][63], tablesFor(75)[1][63]], [8, 50, 50]);
    // Q 10: S = 500, so 16 → 80, 11 → 55, 99 → 255 (495 clamped).
    assert.deepEqual([tablesFor(10)[0][0], tablesFor(10)[0][1], tablesFor(10)[0][63]], [80, 55, 255]);
    // Q 1: S = 5000, every entry clamps to 255.
    assert.deepEqual(tablesFor(1)[0], new Array(64).fill(255));
    // Q 99: S = 2, so 16 → 0.82 → clamped to 1, 99 → 2.
    assert.deepEqual([tablesFor(99)[0][0], tablesFor(99)[0][63]], [1, 2]);
  });

  test('Q 128-254: tables sent once are reused when later frames send length 0; Q 255 never is', () => {
    const d = new JpegDepacketizer();
    const drops: string[] = [];
    d.onDrop = (r) => drops.push(r);
    const tables = { precision: 0, data: [...range(1, 64), ...range(101, 64)] };
    const first = d.push(rtp(onePacket({ q: 200, tables }), 1, 0, true));
    const second = d.push(rtp(onePacket({ q: 200, tables: { precision: 0, data: [] } }), 2, 3600, true));
    assert.ok(first && second);
    assert.deepEqual(fields(parseJpeg(second.data)).quantTables, fields(parseJpeg(first.data)).quantTables);
    assert.equal(d.push(rtp(onePacket({ q: 201, tables: { precision: 0, data: [] } }), 3, 7200, true)), null);
    assert.equal(d.push(rtp(onePacket({ q: 255, tables: { precision: 0, data: [] } }), 4, 10800, true)), null);
    assert.equal(drops.length, 2);
    assert.match(drops[0], /Q 201 without quantization tables/);
    assert.match(drops[1], /Q 255 without quantization tables/);
    assert.ok(d.push(rtp(onePacket({ q: 255, tables }), 5, 14400, true)), 'still decoding after the drops');
  });

  test('a single 64-byte table serves all three components (as FFmpeg sends it)', () => {
    const { frames } = depacketize([rtp(onePacket({ q: 255, tables: { precision: 0, data: range(1, 64) } }), 1, 0, true)]);
    const j = parseJpeg(frames[0].data);
    assert.deepEqual(fields(j).quantTables, [range(1, 64), range(1, 64)]);
  });

  test('a 16-bit table (precision bit set) becomes a Pq=1 DQT entry of 128 bytes', () => {
    const wide = range(0, 128).map((i) => i & 0xff);
    const { frames } = depacketize([rtp(onePacket({ q: 255, tables: { precision: 0b01, data: [...wide, ...range(101, 64)] } }), 1, 0, true)]);
    const jpg = frames[0].data;
    assert.deepEqual([...jpg.subarray(2, 6)], [0xff, 0xdb, 0x00, 2 + 129 + 65]);
    assert.equal(jpg[6], 0x10, 'Pq 1, Tq 0');
    assert.deepEqual([...jpg.subarray(7, 7 + 128)], wide);
    assert.equal(jpg[7 + 128], 0x01, 'Pq 0, Tq 1');
  });

  test('a scan that already ends with EOI is not given a second one', () => {
    const { frames } = depacketize(packets([onePacket({ q: 50, scan: [...GRAY_420_16x16.slice(0, 3)] }), Buffer.from([0, 0, 0, 3, 1, 50, 2, 2, 0x00, 0xff, 0xd9])], 7, 0));
    const jpg = frames[0].data;
    assert.deepEqual([...jpg.subarray(-4)], [0x8a, 0x00, 0xff, 0xd9]);
    assert.deepEqual(fields(parseJpeg(jpg)).scan, Buffer.from(GRAY_420_16x16).toString('hex'));
  });
});

// ---- Loss and damage: drop the frame, count it, keep going ----------------------------------------

describe('RFC 2435 depacketizer: loss and damage', () => {
  const image = synthJpeg({ width: 256, height: 128, subsampling: 1, lumaDc: 5 });
  const payloads = new JpegPacketizer({ payloadLimit: 200 }).packetize(image);
  const want = fields(parseJpeg(image));

  test('the test frame spans several packets', () => assert.ok(payloads.length >= 4, `${payloads.length} packets`));

  /** Frame 1 at seq 100 after `mangle`, then frame 2 intact: frame 2 must come out whole. */
  function afterDamage(mangle: (p: RtpPacket[]) => RtpPacket[], d = new JpegDepacketizer()) {
    const drops: string[] = [];
    d.onDrop = (r) => drops.push(r);
    const f1 = packets(payloads, 100, 1000);
    const damaged = mangle(f1);
    const f2 = packets(payloads, 100 + f1.length, 4600);
    const { frames } = depacketize([...damaged, ...f2], d);
    return { frames, drops, d };
  }

  const LOSSES: { name: string; mangle: (p: RtpPacket[]) => RtpPacket[]; reason: RegExp; frames: number; dropped: number }[] = [
    { name: 'a middle packet lost', mangle: (p) => p.filter((_, i) => i !== 1), reason: /1 packet\(s\) lost/, frames: 1, dropped: 1 },
    { name: 'the first packet lost', mangle: (p) => p.slice(1), reason: /offset 0 was lost/, frames: 1, dropped: 1 },
    { name: 'the marker packet lost', mangle: (p) => p.slice(0, -1), reason: /lost/, frames: 1, dropped: 1 },
    {
      name: 'two packets swapped',
      mangle: (p) => [p[0], p[2], p[1], ...p.slice(3)],
      reason: /lost/,
      frames: 1,
      dropped: 1,
    },
    {
      name: 'a packet whose main header is cut short',
      mangle: (p) => p.map((x, i) => (i === 2 ? { ...x, payload: x.payload.subarray(0, 5) } : x)),
      reason: /need 8 bytes, have 5/,
      frames: 1,
      dropped: 1,
    },
    {
      name: 'a packet that changes the image size mid-frame',
      mangle: (p) => p.map((x, i) => (i === 2 ? { ...x, payload: Buffer.concat([x.payload.subarray(0, 6), Buffer.from([9]), x.payload.subarray(7)]) } : x)),
      reason: /the frame began with/,
      frames: 1,
      dropped: 1,
    },
    {
      name: 'a reserved type (2)',
      mangle: (p) => p.map((x, i) => (i === 0 ? { ...x, payload: Buffer.concat([x.payload.subarray(0, 4), Buffer.from([2]), x.payload.subarray(5)]) } : x)),
      reason: /type 2 is not one of/,
      frames: 1,
      dropped: 1,
    },
    { name: 'nothing (a duplicate packet is simply discarded)', mangle: (p) => [p[0], p[1], p[1], ...p.slice(2)], reason: /^$/, frames: 2, dropped: 0 },
  ];

  for (const l of LOSSES) {
    test(`${l.name}: frame ${l.dropped ? 'dropped and counted' : 'kept'}, the next one whole`, () => {
      const { frames, drops, d } = afterDamage(l.mangle);
      assert.equal(frames.length, l.frames);
      assert.equal(d.counters.framesDropped, l.dropped);
      assert.equal(drops.length, l.dropped);
      if (l.dropped) assert.match(drops[0], l.reason);
      for (const f of frames) assert.deepEqual(fields(parseJpeg(f.data)), want);
      assert.equal(frames[frames.length - 1].timestamp, 4600);
    });
  }

  test('sequence numbers wrapping 65535 → 0 inside a frame are no gap', () => {
    const { frames, d } = depacketize(packets(payloads, 65534, 0));
    assert.equal(frames.length, 1);
    assert.equal(d.counters.framesDropped, 0);
  });

  test('a frame past maxFrameBytes is dropped, and a smaller one after it is not', () => {
    const big = synthJpeg({ width: 512, height: 512, subsampling: 1 });
    const small = synthJpeg({ width: 16, height: 16, subsampling: 1 });
    const p = new JpegPacketizer();
    const d = new JpegDepacketizer({ maxFrameBytes: 2000 });
    const drops: string[] = [];
    d.onDrop = (r) => drops.push(r);
    const bigPackets = packets(p.packetize(big), 0, 0);
    const { frames } = depacketize([...bigPackets, ...packets(p.packetize(small), bigPackets.length, 3600)], d);
    assert.equal(frames.length, 1);
    assert.equal(frames[0].timestamp, 3600);
    assert.match(drops[0], /exceeds 2000/);
    assert.ok(frames[0].data.length <= 2000);
  });

  test('reset() forgets a partial frame and the expected sequence number', () => {
    const d = new JpegDepacketizer();
    const f1 = packets(payloads, 10, 0);
    for (const p of f1.slice(0, 2)) assert.equal(d.push(p), null);
    d.reset();
    const { frames } = depacketize(packets(payloads, 5000, 3600), d);
    assert.equal(frames.length, 1);
    assert.equal(d.counters.framesDropped, 0);
  });
});

// ---- What RFC 2435 cannot carry: errors that say what to do ---------------------------------------

describe('RFC 2435 limits and the errors that explain them', () => {
  const packetize = (o: SynthOptions) => new JpegPacketizer().packetize(synthJpeg(o));

  test('2048 pixels wide is over 2040: JpegSizeError says how to fix it', () => {
    assert.throws(() => packetize({ width: 2048, height: 16, subsampling: 1 }), (e: unknown) => {
      assert.ok(e instanceof JpegSizeError);
      assert.equal(
        e.message,
        'JPEG over RTP (RFC 2435) carries at most 2040x2040 in multiples of 8; got 2048x16: scale with --size (e.g. --size 1280x720) or use --codec h264',
      );
      return true;
    });
  });

  test('100x100 is not a multiple of 8', () => {
    assert.throws(() => packetize({ width: 100, height: 100, subsampling: 1 }), (e: unknown) => e instanceof JpegSizeError && /got 100x100: scale with --size/.test(e.message));
  });

  test('2040x2040 and 8x8, the extremes, go through', () => {
    for (const [w, h] of [
      [2040, 2040],
      [8, 8],
    ]) {
      const img = synthJpeg({ width: w, height: h, subsampling: 1 });
      const { frames } = depacketize(packets(new JpegPacketizer().packetize(img), 0, 0));
      assert.deepEqual(fields(parseJpeg(frames[0].data)), fields(parseJpeg(img)));
    }
  });

  test('optimized (non-standard) Huffman tables: use -huffman 0', () => {
    // Swap two symbols of the AC luminance table: same code lengths, different codes, as an
    // optimizing encoder would. AC luma's values start after DC luma (1 + 16 + 12 bytes) and AC
    // luma's own class/destination byte and 16 counts.
    const body = [...STANDARD_DHT];
    const acLumaValues = 1 + 16 + 12 + 1 + 16;
    [body[acLumaValues], body[acLumaValues + 1]] = [body[acLumaValues + 1], body[acLumaValues]];
    assert.throws(() => packetize({ width: 16, height: 16, subsampling: 1, dhtBody: body }), (e: unknown) => {
      // A settings problem, not line noise: receive loops must not mistake it for a bad packet.
      assert.ok(e instanceof JpegUnsupportedError && !(e instanceof PacketError));
      assert.match(e.message, /Huffman table AC0 is not the standard one \(JPEG Annex K\.3\).*: encode with -huffman 0/);
      return true;
    });
  });

  test("FFmpeg's 4:2:2 layout (Y 2x2, chroma 1x2) fits no RFC 2435 type: use yuvj420p", () => {
    assert.throws(() => packetize({ width: 16, height: 16, subsampling: 1, sampling: [0x22, 0x12, 0x12] }), /22\/12\/12.*-pix_fmt yuvj420p/);
    assert.throws(() => packetize({ width: 16, height: 16, subsampling: 1, sampling: [0x11, 0x11, 0x11] }), JpegUnsupportedError);
  });

  test('a broken file is a JpegFormatError (a PacketError) that counts bytes', () => {
    const img = synthJpeg({ width: 16, height: 16, subsampling: 1 });
    assert.throws(() => parseJpeg(img.subarray(0, img.length - 2)), (e: unknown) => e instanceof JpegFormatError && e instanceof PacketError && /no EOI/.test(e.message));
    assert.throws(() => parseJpeg(img.subarray(0, 40)), (e: unknown) => e instanceof PacketError && /need \d+ bytes, have \d+/.test(e.message));
    assert.throws(() => parseJpeg(Buffer.from([0x89, 0x50, 0x4e, 0x47])), /expected SOI 0xFFD8/);
  });

  test('the payload limit must leave room for the first packet\'s headers', () => {
    assert.throws(() => new JpegPacketizer({ payloadLimit: MIN_JPEG_PAYLOAD_LIMIT - 1 }), RangeError);
    assert.doesNotThrow(() => new JpegPacketizer({ payloadLimit: MIN_JPEG_PAYLOAD_LIMIT }));
  });
});

// ---- Properties ---------------------------------------------------------------------------------

/** Random scan bytes, byte-stuffed so every 0xFF is followed by 0x00 (T.81 F.1.2.3). */
const arbScan = fc.uint8Array({ minLength: 1, maxLength: 3000 }).map((a) => {
  const out: number[] = [];
  for (const b of a) {
    out.push(b);
    if (b === 0xff) out.push(0x00);
  }
  return Buffer.from(out);
});

const arbImage: fc.Arbitrary<SynthOptions> = fc.record({
  width: fc.integer({ min: 1, max: 255 }).map((n) => n * 8),
  height: fc.integer({ min: 1, max: 255 }).map((n) => n * 8),
  subsampling: fc.constantFrom(0 as const, 1 as const),
  restartInterval: fc.integer({ min: 0, max: 300 }),
  luma: fc.uint8Array({ minLength: 64, maxLength: 64 }).map((a) => Buffer.from(a)),
  chroma: fc.uint8Array({ minLength: 64, maxLength: 64 }).map((a) => Buffer.from(a)),
  sharedTable: fc.boolean(),
  scan: arbScan,
});

/** Real packets: RtpSender numbers them from a random sequence number, parseRtp reads them back. */
function viaRtp(payloads: Payload[], sender: RtpSender, ts: number): RtpPacket[] {
  return sender.frame(payloads, ts).map((d) => parseRtp(Buffer.concat(d)));
}

describe('RFC 2435 properties (fast-check)', () => {
  test('depacketize(packetize(jpeg)) carries dims, type, tables and scan unchanged, for any payload limit', () => {
    fc.assert(
      fc.property(arbImage, fc.integer({ min: MIN_JPEG_PAYLOAD_LIMIT, max: 1500 }), fc.integer({ min: 0, max: 0xffff }), (o, limit, seq) => {
        const img = synthJpeg(o);
        const payloads = new JpegPacketizer({ payloadLimit: limit }).packetize(img);
        for (const p of payloads) assert.ok(Buffer.concat(p).length <= limit);
        const { frames, d } = depacketize(viaRtp(payloads, new RtpSender({ payloadType: PT_JPEG, initialSequence: seq }), 90000));
        assert.equal(frames.length, 1);
        assert.equal(d.counters.framesDropped, 0);
        assert.deepEqual(fields(parseJpeg(frames[0].data)), fields(parseJpeg(img)));
      }),
      { numRuns: 200 },
    );
  });

  test('packetize never mutates its input, and payloads are views of its scan', () => {
    fc.assert(
      fc.property(arbImage, (o) => {
        const img = synthJpeg(o);
        const copy = Buffer.from(img);
        const payloads = new JpegPacketizer().packetize(img);
        assert.ok(img.equals(copy));
        // The scan chunk shares memory with the input: same ArrayBuffer.
        for (const p of payloads) assert.equal(p[p.length - 1].buffer, img.buffer);
      }),
      { numRuns: 50 },
    );
  });

  // Payloads that mostly look like RFC 2435 (so the deep paths run) and some that are pure noise.
  const arbPayload = fc.oneof(
    fc.uint8Array({ maxLength: 200 }).map((a) => Buffer.from(a)),
    fc
      .record({
        offset: fc.constantFrom(0, 0, 4, 100, 0xffffff),
        type: fc.constantFrom(0, 1, 64, 65, 2, 130),
        q: fc.constantFrom(50, 255, 128, 0, 100),
        w: fc.integer({ min: 0, max: 255 }),
        rest: fc.uint8Array({ maxLength: 300 }),
      })
      .map((r) => Buffer.concat([Buffer.from([0, r.offset >> 16, (r.offset >> 8) & 0xff, r.offset & 0xff, r.type, r.q, r.w, 2]), r.rest])),
  );

  test('random payloads only count drops: push never throws, frames out are whole JPEG files, input untouched', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ payload: arbPayload, seq: fc.integer({ min: 0, max: 0xffff }), ts: fc.integer({ min: 0, max: 3 }), marker: fc.boolean() }), {
          maxLength: 40,
        }),
        (items) => {
          const d = new JpegDepacketizer();
          let out = 0;
          const copies = items.map((i) => Buffer.from(i.payload));
          for (const i of items) {
            const f = d.push(rtp(i.payload, i.seq, i.ts, i.marker));
            if (f) {
              out++;
              assert.deepEqual([...f.data.subarray(0, 2)], [0xff, 0xd8]);
              assert.deepEqual([...f.data.subarray(-2)], [0xff, 0xd9]);
            }
          }
          assert.equal(d.counters.framesComplete, out);
          assert.ok(d.counters.framesComplete + d.counters.framesDropped <= items.length);
          items.forEach((i, k) => assert.ok(i.payload.equals(copies[k])));
        },
      ),
      { numRuns: 300 },
    );
  });

  test('parseJpeg of noise or of any truncation throws only PacketError or JpegUnsupportedError', () => {
    const img = synthJpeg({ width: 32, height: 32, subsampling: 1, restartInterval: 2 });
    const ok = (e: unknown) => e instanceof PacketError || e instanceof JpegUnsupportedError;
    for (let n = 0; n < img.length - 1; n++) {
      assert.throws(() => parseJpeg(img.subarray(0, n)), ok, `truncated at ${n}`);
    }
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), fc.boolean(), (a, withSoi) => {
        const buf = withSoi ? Buffer.concat([Buffer.from([0xff, 0xd8]), Buffer.from(a)]) : Buffer.from(a);
        try {
          parseJpeg(buf);
        } catch (e) {
          assert.ok(ok(e), String(e));
        }
      }),
      { numRuns: 500 },
    );
  });
});

// ---- FFmpeg-made images ---------------------------------------------------------------------------

describe('RFC 2435 with images FFmpeg made', { skip: skipUnless('ffmpeg'), timeout: 20_000 }, () => {
  let dir = '';
  const img: Record<string, Buffer> = {};
  const ffmpeg = (args: string[], input?: Buffer) =>
    spawnSync('ffmpeg', ['-nostdin', '-v', 'error', ...args], { input, timeout: 10_000, maxBuffer: 64 << 20 });
  const encode = (name: string, size: string, extra: string[]) => {
    const file = join(dir, `${name}.jpg`);
    const r = ffmpeg(['-f', 'lavfi', '-i', `testsrc=size=${size}:rate=25`, '-frames:v', '1', '-c:v', 'mjpeg', ...extra, '-y', file]);
    assert.equal(r.status, 0, String(r.stderr));
    img[name] = readFileSync(file);
  };

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'udpcast-jpeg-'));
    encode('q5', '320x240', ['-huffman', '0', '-pix_fmt', 'yuvj420p', '-q:v', '5']);
    encode('two-tables', '640x360', ['-huffman', '0', '-pix_fmt', 'yuvj420p', '-q:v', '20', '-force_duplicated_matrix', '1']);
    // Slice threading makes FFmpeg's mjpeg encoder write DRI and RST markers (one MCU row each).
    encode('restart', '320x240', ['-huffman', '0', '-pix_fmt', 'yuvj420p', '-q:v', '3', '-threads', '4', '-thread_type', 'slice', '-slices', '4']);
    encode('optimal', '320x240', ['-huffman', '1', '-pix_fmt', 'yuvj420p']);
    encode('yuv422', '320x240', ['-huffman', '0', '-pix_fmt', 'yuvj422p']);
    encode('wide', '2048x64', ['-huffman', '0', '-pix_fmt', 'yuvj420p']);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('FFmpeg -huffman 0 images parse as RFC 2435 type 1 (the DHT matches our Annex K.3 tables)', () => {
    const q5 = parseJpeg(img.q5);
    assert.deepEqual([q5.width, q5.height, q5.type, q5.restartInterval], [320, 240, 1, 0]);
    assert.ok(q5.quantTables[0].equals(q5.quantTables[1]), 'one DQT table serves luma and chroma');
    const two = parseJpeg(img['two-tables']);
    assert.deepEqual([two.width, two.height, two.type], [640, 360, 1]);
    const rst = parseJpeg(img.restart);
    assert.equal(rst.type, 65);
    assert.equal(rst.restartInterval, 320 / 16, 'one MCU row per interval');
    assert.ok(rst.scan.includes(Buffer.from([0xff, 0xd0])));
  });

  test('round trip of FFmpeg images for any payload limit', () => {
    fc.assert(
      fc.property(fc.constantFrom('q5', 'two-tables', 'restart'), fc.integer({ min: MIN_JPEG_PAYLOAD_LIMIT, max: 9000 }), (name, limit) => {
        const payloads = new JpegPacketizer({ payloadLimit: limit }).packetize(img[name]);
        const { frames } = depacketize(packets(payloads, 60000, 0));
        assert.deepEqual(fields(parseJpeg(frames[0].data)), fields(parseJpeg(img[name])));
      }),
      { numRuns: 60 },
    );
  });

  test('FFmpeg decodes the rebuilt images pixel for pixel like the originals (types 1 and 65)', () => {
    for (const name of ['q5', 'two-tables', 'restart']) {
      const { frames } = depacketize(packets(new JpegPacketizer().packetize(img[name]), 0, 0));
      const decode = (jpg: Buffer) => ffmpeg(['-f', 'mjpeg', '-i', 'pipe:0', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', 'pipe:1'], jpg);
      const a = decode(img[name]);
      const b = decode(frames[0].data);
      assert.equal(String(b.stderr), '', `${name}: FFmpeg decodes the rebuilt JPEG without a word`);
      assert.ok(a.stdout.length > 0 && a.stdout.equals(b.stdout), `${name}: same pixels`);
    }
  });

  test('FFmpeg decodes the rebuilt hand-made images (types 0, 1, 64, 65) as flat gray, Y = 128', () => {
    for (const o of [
      { width: 48, height: 32, subsampling: 0 as const },
      { width: 48, height: 32, subsampling: 1 as const },
      { width: 48, height: 32, subsampling: 0 as const, restartInterval: 2 },
      { width: 48, height: 32, subsampling: 1 as const, restartInterval: 1 },
    ]) {
      // Quantization tables of 1s: DC 0 stays 0, so every sample is the level shift, 128.
      const jpg = synthJpeg({ ...o, luma: Buffer.alloc(64, 1), chroma: Buffer.alloc(64, 1) });
      const { frames } = depacketize(packets(new JpegPacketizer({ payloadLimit: MIN_JPEG_PAYLOAD_LIMIT }).packetize(jpg), 0, 0));
      const r = ffmpeg(['-f', 'mjpeg', '-i', 'pipe:0', '-f', 'rawvideo', '-pix_fmt', 'gray', 'pipe:1'], frames[0].data);
      assert.equal(String(r.stderr), '', `type ${parseJpeg(jpg).type}: no decoder complaint`);
      assert.equal(r.stdout.length, o.width * o.height);
      assert.ok(r.stdout.every((y) => y === 128), `type ${parseJpeg(jpg).type}: every Y sample is 128`);
    }
  });

  test('what FFmpeg can make but RFC 2435 cannot carry fails with the fix in the message', () => {
    const p = new JpegPacketizer();
    assert.throws(() => p.packetize(img.optimal), /-huffman 0/);
    assert.throws(() => p.packetize(img.yuv422), /yuvj420p/);
    assert.throws(() => p.packetize(img.wide), (e: unknown) => e instanceof JpegSizeError && /got 2048x64: scale with --size/.test(e.message));
  });
});
