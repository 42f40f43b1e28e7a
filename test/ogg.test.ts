/**
 * Reading Opus packets off FFmpeg's Ogg pipe: Ogg pages (RFC 3533 §6) carrying OpusHead, OpusTags
 * and audio packets (RFC 7845), packet durations from the TOC byte (RFC 6716 §3.1). Pages are
 * written out field by field, then cut at every place, corrupted, truncated and buried in junk; real
 * FFmpeg (and ffprobe) is the final judge.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import {
  FLAG_BOS,
  FLAG_CONTINUED,
  FLAG_EOS,
  MAX_BUFFERED_BYTES,
  MAX_OGG_PAGE_BYTES,
  MAX_OPUS_PACKET_BYTES,
  OggOpusReader,
  oggCrc32,
  oggPageCrc,
  type OpusPacket,
} from '../src/encode/ogg.ts';
import { opusPacketSamples, parseOpusHead } from '../src/codecs/opus/opus.ts';
import { PacketError } from '../src/util/errors.ts';
import { skipUnless, which } from './helpers/tools.ts';
import { pushAll, runFfmpeg } from './helpers/chunks.ts';

/** Hex bytes with `#` comments to the end of each line. */
const hex = (s: string) => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

// ---- Building pages, RFC 3533 §6 ------------------------------------------------------------
interface PageSpec {
  flags?: number;
  /** -1: no packet completes on the page. */
  granule: number;
  serial?: number;
  seq: number;
  lacing: number[];
  body: Buffer;
}

const SERIAL = 0x1234abcd;

function page({ flags = 0, granule, serial = SERIAL, seq, lacing, body }: PageSpec): Buffer {
  assert.equal(lacing.reduce((a, b) => a + b, 0), body.length, 'lacing values add up to the body');
  const h = Buffer.alloc(27 + lacing.length);
  h.write('OggS', 0, 'latin1'); // capture pattern
  h[4] = 0; // stream_structure_version
  h[5] = flags; // header_type_flag
  h.writeBigInt64LE(BigInt(granule), 6); // granule_position
  h.writeUInt32LE(serial, 14); // bitstream_serial_number
  h.writeUInt32LE(seq, 18); // page_sequence_number
  // 22-25: CRC_checksum, filled in below over the page with these bytes as zero
  h[26] = lacing.length; // number_page_segments
  lacing.forEach((v, i) => (h[27 + i] = v)); // segment_table
  const p = Buffer.concat([h, body]);
  p.writeUInt32LE(oggPageCrc(p), 22);
  return p;
}

/** Lacing values for a packet of n bytes that ends on this page (§5: 255s, then the rest < 255). */
const laceEnd = (n: number) => [...Array(Math.floor(n / 255)).fill(255), n % 255];
/** ...and for n bytes (a multiple of 255) of a packet that goes on at the next page. */
const laceOpen = (n: number) => (assert.equal(n % 255, 0), Array(n / 255).fill(255));

/** A page of whole packets (the last one maybe open, running on to the next page). */
function packetsPage(spec: Omit<PageSpec, 'lacing' | 'body'>, packets: Buffer[], open?: Buffer): Buffer {
  const lacing = packets.flatMap((p) => laceEnd(p.length));
  const body = [...packets];
  if (open) {
    lacing.push(...laceOpen(open.length));
    body.push(open);
  }
  return page({ ...spec, lacing, body: Buffer.concat(body) });
}

// ---- RFC 7845 header packets and RFC 6716 audio packets -----------------------------------------
const OPUS_HEAD = hex(`
  4f70757348656164    # "OpusHead"
  01                  # version 1
  02                  # 2 channels
  3801                # pre-skip 312 (LE)
  80bb0000            # input sample rate 48000 (LE)
  0000                # output gain 0
  00                  # mapping family 0: no table
`);
const OPUS_TAGS = hex(`
  4f70757354616773    # "OpusTags"
  04000000 74657374   # vendor string length 4, "test"
  00000000            # no user comments
`);

/** An Opus packet: TOC byte, then filler standing in for the frames (the reader never reads them). */
function opus(toc: number, bytes: number, second?: number): Buffer {
  const b = Buffer.alloc(bytes, 0x5a);
  b[0] = toc;
  if (second !== undefined) b[1] = second;
  return b;
}
// TOC = config << 3 | s << 2 | code (RFC 6716 §3.1).
const CELT_FB_20MS = 31 << 3; // 960 samples
const CELT_FB_10MS = 30 << 3; // 480 samples
const A = opus(CELT_FB_20MS | 0, 10); // code 0: one 20 ms frame
const B = opus(CELT_FB_20MS | 1, 301); // code 1: two 20 ms frames of 150 bytes: 1920 samples
const C = opus(CELT_FB_20MS, 600); // spans pages 3 and 4
const D = opus(CELT_FB_20MS | 3, 40, 0x03); // code 3, CBR, 3 frames: 2880 samples
const E = opus(CELT_FB_10MS, 20); // 480 samples, the last packet, partly trimmed

const HEAD_PAGES = [
  page({ flags: FLAG_BOS, granule: 0, seq: 0, lacing: laceEnd(OPUS_HEAD.length), body: OPUS_HEAD }),
  page({ granule: 0, seq: 1, lacing: laceEnd(OPUS_TAGS.length), body: OPUS_TAGS }),
];
const GOLDEN_PAGES = [
  ...HEAD_PAGES,
  packetsPage({ seq: 2, granule: 960 + 1920 }, [A, B]), // two packets on one page
  packetsPage({ seq: 3, granule: -1 }, [], C.subarray(0, 510)), // only C's start: no granule
  packetsPage({ seq: 4, granule: 2880 + 960 + 2880, flags: FLAG_CONTINUED }, [C.subarray(510), D]),
  packetsPage({ seq: 5, granule: 6720 + 480 - 200, flags: FLAG_EOS }, [E]), // 200 samples trimmed
];
const GOLDEN = Buffer.concat(GOLDEN_PAGES);
const GOLDEN_PACKETS = [
  { data: A, samples: 960, endSample: 960 },
  { data: B, samples: 1920, endSample: 2880 },
  { data: C, samples: 960, endSample: 3840 },
  { data: D, samples: 2880, endSample: 6720 },
  { data: E, samples: 480, endSample: 7200, discardEnd: 200 },
];

type Simple = { data: string; samples: number; endSample: number; discardEnd?: number };
const simple = (ps: (OpusPacket | (typeof GOLDEN_PACKETS)[number])[]): Simple[] =>
  ps.map((p) => ({ data: p.data.toString('hex'), samples: p.samples, endSample: p.endSample, ...('discardEnd' in p && p.discardEnd !== undefined ? { discardEnd: p.discardEnd } : {}) }));

/** The golden packets, as compared. */
const g = simple(GOLDEN_PACKETS);

const CLEAN = {
  crcErrors: 0,
  skippedBytes: 0,
  strayPages: 0,
  sequenceGaps: 0,
  droppedFragments: 0,
  oversizePackets: 0,
  badPackets: 0,
  badHeads: 0,
  granuleMismatches: 0,
};

describe('the Ogg CRC (RFC 3533 §6)', () => {
  test('CRC-32 with polynomial 0x04c11db7, unreflected, init 0, no final XOR: check value of "123456789"', () => {
    // The catalogued CRC-32/CKSUM (same polynomial and init) has check 0x765e7680 after its final
    // XOR with 0xffffffff; without that XOR it is 0x89a1897f.
    assert.equal(oggCrc32(Buffer.from('123456789')), 0x89a1897f);
  });

  test("FFmpeg's own BOS page carries the CRC we compute", () => {
    const ffmpegBos = hex(`
      4f676753 00 02 0000000000000000   # "OggS", version 0, BOS, granule 0
      f8bcf31f 00000000 41a4bc56        # serial, page 0, CRC 0x56bca441
      01 13                             # one segment of 19 bytes
      4f70757348656164 01 01 7800 80bb0000 0000 00   # OpusHead: mono, pre-skip 120
    `);
    assert.equal(oggPageCrc(ffmpegBos), ffmpegBos.readUInt32LE(22));
    const r = new OggOpusReader();
    assert.deepEqual(r.push(ffmpegBos), []);
    assert.deepEqual(r.head, ffmpegBos.subarray(28));
    assert.equal(r.opusHead?.preSkip, 120);
  });
});

describe('opusPacketSamples (RFC 6716 §3.1)', () => {
  test('frame size from the config, frame count from the code', () => {
    const cases: [string, Buffer, number][] = [
      ['SILK NB 10 ms, code 0', hex('00'), 480],
      ['SILK WB 20 ms, code 0', hex('48'), 960], // config 9
      ['SILK MB 60 ms, code 0', hex('38'), 2880], // config 7
      ['Hybrid FB 20 ms, code 0', hex('78'), 960], // config 15
      ['CELT NB 2.5 ms, code 0', hex('80'), 120], // config 16
      ['CELT FB 20 ms, code 0', hex('f8 0102'), 960], // config 31
      ['CELT FB 20 ms stereo, code 1 (two equal frames)', hex('fd 0102'), 1920],
      ['SILK WB 20 ms, code 2 (two frames)', hex('4a 01 00'), 1920],
      ['CELT SWB 10 ms, code 3, 12 frames = 120 ms', hex('d3 0c'), 5760], // config 26
      ['CELT NB 2.5 ms, code 3, VBR with padding, 48 frames = 120 ms', hex('83 f0'), 5760],
      ['SILK NB 40 ms, code 3, 3 frames', hex('13 03'), 5760], // config 2
      ['DTX: a TOC and an empty frame still lasts its frame', hex('f8'), 960],
    ];
    for (const [name, packet, samples] of cases) assert.equal(opusPacketSamples(packet), samples, name);
  });

  test('malformed: PacketError, saying what and counting bytes', () => {
    const cases: [string, Buffer, RegExp][] = [
      ['empty (RFC 7845 §3: an illegal TOC)', hex(''), /TOC: need 1 bytes, have 0/],
      ['code 3 without its frame count byte', hex('fb'), /frame count: need 2 bytes, have 1/],
      ['code 3 with 0 frames [R5]', hex('fb 00'), /frame count of 0/],
      ['code 3 of 7 × 20 ms = 140 ms [R5]', hex('fb 07'), /7 × 960 samples exceeds 120 ms/],
      ['code 3 of 3 × 60 ms [R5]', hex('1b 03'), /3 × 2880 samples/],
    ];
    for (const [name, packet, re] of cases) {
      assert.throws(() => opusPacketSamples(packet), (e: Error) => e instanceof PacketError && re.test(e.message), name);
    }
  });
});

describe('parseOpusHead (RFC 7845 §5.1)', () => {
  test('family 0 and family 1 headers', () => {
    assert.deepEqual(parseOpusHead(OPUS_HEAD), {
      version: 1, channels: 2, preSkip: 312, inputSampleRate: 48000, outputGain: 0, mappingFamily: 0, streams: 1, coupledStreams: 1,
    });
    const surround = hex('4f70757348656164 01 06 3801 80bb0000 0001 01  04 02  000405020301'); // 5.1: 4 streams, 2 coupled
    assert.deepEqual(parseOpusHead(surround), {
      version: 1, channels: 6, preSkip: 312, inputSampleRate: 48000, outputGain: 256, mappingFamily: 1, streams: 4, coupledStreams: 2,
    });
  });

  test('malformed: PacketError', () => {
    const cases: [Buffer, RegExp][] = [
      [OPUS_HEAD.subarray(0, 18), /OpusHead: need 19 bytes, have 18/],
      [Buffer.concat([hex('4f70757354616773'), OPUS_HEAD.subarray(8)]), /magic 4f70757354616773/],
      [Buffer.concat([OPUS_HEAD.subarray(0, 8), hex('10'), OPUS_HEAD.subarray(9)]), /version 16/],
      [Buffer.concat([OPUS_HEAD.subarray(0, 9), hex('00'), OPUS_HEAD.subarray(10)]), /channel count 0/],
      [Buffer.concat([OPUS_HEAD.subarray(0, 9), hex('03'), OPUS_HEAD.subarray(10)]), /3 channels in mapping family 0/],
      [hex('4f70757348656164 01 06 3801 80bb0000 0000 01 04 02 0004050203'), /mapping table: need 8 bytes, have 7/],
      [hex('4f70757348656164 01 02 3801 80bb0000 0000 01 01 02 0001'), /2 coupled streams of 1/],
      [hex('4f70757348656164 01 02 3801 80bb0000 0000 01 01 01 0002'), /channel 1 maps to decoded channel 2 of 2/],
      [hex('4f70757348656164 01 09 3801 80bb0000 0000 01 05 04 000102030405060708'), /9 channels in mapping family 1/],
    ];
    for (const [b, re] of cases) {
      assert.throws(() => parseOpusHead(b), (e: Error) => e instanceof PacketError && re.test(e.message), re.source);
    }
  });
});

describe('OggOpusReader: the golden stream', () => {
  test('the golden pages are what the comments say', () => {
    assert.equal(opusPacketSamples(B), 1920); // B is code 1: two 20 ms frames
    assert.deepEqual([...GOLDEN_PAGES[3].subarray(26, 29)], [2, 255, 255]); // C's start: two 255s
    assert.equal(GOLDEN_PAGES[3].readBigInt64LE(6), -1n);
  });

  test('whole stream in one push: OpusHead kept, OpusTags skipped, every packet timed', () => {
    const r = new OggOpusReader();
    assert.deepEqual(simple(r.push(GOLDEN)), simple(GOLDEN_PACKETS));
    assert.deepEqual(r.head, OPUS_HEAD);
    assert.equal(r.opusHead?.preSkip, 312);
    assert.deepEqual(r.counters, { ...CLEAN, pages: 6, packets: 5 });
    assert.equal(r.bufferedBytes, 0);
  });

  test('every single cut point (inside headers, lacing tables, packets) gives the same packets, each out with its page', () => {
    const pageEnds = GOLDEN_PAGES.map((_, i) => Buffer.concat(GOLDEN_PAGES.slice(0, i + 1)).length);
    const outAfterPage = [0, 0, 2, 2, 4, 5]; // packets whole once page i is
    for (let cut = 0; cut <= GOLDEN.length; cut++) {
      const r = new OggOpusReader();
      const first = r.push(GOLDEN.subarray(0, cut));
      const pagesIn = pageEnds.filter((e) => e <= cut).length;
      assert.equal(first.length, pagesIn === 0 ? 0 : outAfterPage[pagesIn - 1], `cut ${cut}`);
      assert.deepEqual(simple([...first, ...r.push(GOLDEN.subarray(cut))]), simple(GOLDEN_PACKETS), `cut ${cut}`);
    }
  });

  test('chunk sizes 1..64, then every 37th up to the whole stream, give the same packets', () => {
    for (let step = 1; step <= GOLDEN.length; step += step < 64 ? 1 : 37) {
      const cuts: number[] = [];
      for (let c = step; c < GOLDEN.length; c += step) cuts.push(c);
      assert.deepEqual(simple(pushAll(new OggOpusReader(), GOLDEN, cuts)), simple(GOLDEN_PACKETS), `step ${step}`);
    }
  });

  test('a packet inside one page is a view of the pushed chunk; one spanning pages is a copy', () => {
    const input = Buffer.from(GOLDEN);
    const out = new OggOpusReader().push(input);
    input.fill(0);
    assert.ok(out[0].data.every((b) => b === 0), 'A changed with the chunk: a view');
    assert.ok(out[2].data.equals(C), 'C did not: a copy');
  });

  test('reset() mid-packet: the held bytes are forgotten, the next stream read from its start', () => {
    const r = new OggOpusReader();
    r.push(GOLDEN.subarray(0, GOLDEN.length - P5.length - 50));
    r.reset();
    assert.equal(r.bufferedBytes, 0);
    assert.equal(r.head, undefined);
    assert.deepEqual(simple(r.push(GOLDEN)), g);
  });

  test('property: any partition gives the same packets; the input is not touched', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: GOLDEN.length - 1 }), { maxLength: 24 }), (cuts) => {
        const copy = Buffer.from(GOLDEN);
        assert.deepEqual(simple(pushAll(new OggOpusReader(), copy, cuts.sort((a, b) => a - b))), simple(GOLDEN_PACKETS));
        assert.ok(copy.equals(GOLDEN));
      }),
    );
  });
});

// ---- Damaged streams -------------------------------------------------------------------------
const [P0, P1, P2, P3, P4, P5] = GOLDEN_PAGES;
const corrupt = (p: Buffer, at: number) => {
  const c = Buffer.from(p);
  c[at] ^= 0x01;
  return c;
};
const JUNK = Buffer.alloc(1000, 'OggX'); // close to a capture pattern, never one
const PAGE_OF_ANOTHER_STREAM = packetsPage({ seq: 0, granule: 960, serial: 0x99 }, [A]);
const HUGE = opus(CELT_FB_20MS, MAX_OPUS_PACKET_BYTES + 100);

interface Case {
  name: string;
  bytes: Buffer;
  packets: Simple[];
  counters: Partial<typeof CLEAN>;
  buffered?: number;
}

const CASES: Case[] = [
  {
    name: 'a bad CRC: that page is dropped and counted, the next is read and its granule moves the clock past the loss',
    bytes: Buffer.concat([P0, P1, P2, corrupt(P3, 40), P4, P5]),
    // C lost its head with page 3 (its tail on page 4 is dropped); D is placed by page 4's granule.
    packets: [g[0], g[1], g[3], g[4]],
    counters: { crcErrors: 1, skippedBytes: P3.length, sequenceGaps: 1, droppedFragments: 1 },
  },
  {
    name: 'a bad CRC in a page header (the granule): same',
    bytes: Buffer.concat([P0, P1, corrupt(P2, 7), P3, P4, P5]),
    packets: [g[2], g[3], g[4]],
    counters: { crcErrors: 1, skippedBytes: P2.length, sequenceGaps: 1 },
  },
  {
    name: 'junk before the first page: skipped and counted',
    bytes: Buffer.concat([JUNK, GOLDEN]),
    packets: g,
    counters: { skippedBytes: JUNK.length },
  },
  {
    name: 'junk between pages, holding "OggS" and a header no page has',
    bytes: Buffer.concat([P0, P1, P2, hex('0102 4f676753 07 00'), JUNK, P3, P4, P5]),
    packets: g,
    counters: { skippedBytes: 8 + JUNK.length },
  },
  {
    name: 'a false "OggS" claiming a long page: its CRC fails once the bytes are in, and the pages inside are read',
    bytes: Buffer.concat([P0, P1, hex('4f676753 00 00 0000000000000000 01000000 00000000 00000000 02 ffff'), P2, P3, P4, P5]),
    packets: g,
    counters: { crcErrors: 1, skippedBytes: 29 },
  },
  {
    name: 'truncated inside a packet that spans pages: nothing for it, no throw',
    bytes: Buffer.concat([P0, P1, P2, P3, P4.subarray(0, 40)]),
    packets: [g[0], g[1]],
    counters: {},
    buffered: 510 + 40,
  },
  {
    name: 'truncated inside a page header',
    bytes: Buffer.concat([P0, P1, P2.subarray(0, 20)]),
    packets: [],
    counters: {},
    buffered: 20,
  },
  {
    name: 'a lost page in the middle of a packet: the part held is dropped, the next page placed by its granule',
    bytes: Buffer.concat([P0, P1, P2, P3, P5]),
    // E is placed by its page's granule; the trim cannot be told from a granule we never saw (§4.4).
    packets: [g[0], g[1], { data: g[4].data, samples: 480, endSample: 7000 }],
    counters: { sequenceGaps: 1, droppedFragments: 1 },
  },
  {
    name: "another stream's page (other serial) is dropped",
    bytes: Buffer.concat([P0, P1, P2, PAGE_OF_ANOTHER_STREAM, P3, P4, P5]),
    packets: g,
    counters: { strayPages: 1 },
  },
  {
    name: 'pages before any OpusHead are dropped (joined mid-stream): reading starts at a BOS',
    bytes: Buffer.concat([P3, P4, GOLDEN]),
    packets: g,
    counters: { strayPages: 2 },
  },
  {
    name: 'a BOS page without an OpusHead: that stream is not read',
    bytes: Buffer.concat([page({ flags: FLAG_BOS, granule: 0, seq: 0, lacing: [8], body: Buffer.from('OpusTags') }), P1, P2]),
    packets: [],
    counters: { badHeads: 1, strayPages: 2 },
  },
  {
    name: 'a packet whose TOC gives no duration is dropped; the next page is placed by its granule',
    bytes: Buffer.concat([P0, P1, packetsPage({ seq: 2, granule: 2880 }, [A, hex('fb 00')]), P3, P4, P5]),
    packets: [g[0], g[2], g[3], g[4]],
    counters: { badPackets: 1 },
  },
  {
    name: 'a granule that disagrees with the durations is counted, the running sum kept',
    bytes: Buffer.concat([P0, P1, P2, P3, packetsPage({ seq: 4, granule: 9999, flags: FLAG_CONTINUED }, [C.subarray(510), D]), P5]),
    packets: g,
    counters: { granuleMismatches: 1 },
  },
  {
    name: 'a stream starting past sample 0 (RFC 7845 §4.5): its first granule places it',
    bytes: Buffer.concat([P0, P1, packetsPage({ seq: 2, granule: 48000 + 2880 }, [A, B]), P3,
      packetsPage({ seq: 4, granule: 48000 + 6720, flags: FLAG_CONTINUED }, [C.subarray(510), D])]),
    packets: [g[0], g[1], g[2], g[3]].map((p) => ({ ...p, endSample: p.endSample + 48000 })),
    counters: {},
  },
  {
    name: 'a packet over MAX_OPUS_PACKET_BYTES is dropped; the granule still counts its samples; the next is read',
    bytes: Buffer.concat([P0, P1,
      packetsPage({ seq: 2, granule: -1 }, [], HUGE.subarray(0, 255 * 255)),
      packetsPage({ seq: 3, granule: 960 + 960, flags: FLAG_CONTINUED }, [HUGE.subarray(255 * 255), A])]),
    // The muxer counted the dropped packet's 960 samples: A is placed after them.
    packets: [{ ...g[0], endSample: 1920 }],
    counters: { oversizePackets: 1 },
  },
  {
    name: 'an OpusTags over three pages is skipped without being buffered',
    bytes: Buffer.concat([P0,
      packetsPage({ seq: 1, granule: 0 }, [], Buffer.concat([OPUS_TAGS, Buffer.alloc(510 - OPUS_TAGS.length)])),
      packetsPage({ seq: 2, granule: 0, flags: FLAG_CONTINUED }, [], Buffer.alloc(255)),
      packetsPage({ seq: 3, granule: 0, flags: FLAG_CONTINUED }, [Buffer.alloc(7)]),
      packetsPage({ seq: 4, granule: 960 }, [A])]),
    packets: [g[0]],
    counters: {},
  },
  {
    name: 'a chained stream (EOS, then a new BOS): a new OpusHead, the clock from 0 again',
    bytes: Buffer.concat([GOLDEN, packetsPage({ seq: 6, granule: 9999 }, [A]), page({ flags: FLAG_BOS, granule: 0, seq: 0, serial: 7, lacing: [19], body: OPUS_HEAD }),
      page({ granule: 0, seq: 1, serial: 7, lacing: laceEnd(OPUS_TAGS.length), body: OPUS_TAGS }),
      packetsPage({ seq: 2, granule: 960, serial: 7 }, [A])]),
    packets: [...g, g[0]],
    counters: { strayPages: 1 }, // the page after EOS
  },
];

describe('OggOpusReader: damaged streams are counted and dropped, never thrown, and reading goes on', () => {
  for (const c of CASES) {
    test(c.name, () => {
      for (const step of [c.bytes.length, 7, 1]) {
        const r = new OggOpusReader();
        const cuts: number[] = [];
        for (let i = step; i < c.bytes.length; i += step) cuts.push(i);
        assert.deepEqual(simple(pushAll(r, c.bytes, cuts)), c.packets, `step ${step}`);
        const { pages: _pages, packets, ...counters } = r.counters;
        assert.deepEqual(counters, { ...CLEAN, ...c.counters }, `step ${step}`);
        assert.equal(packets, c.packets.length);
        assert.equal(r.bufferedBytes, c.buffered ?? 0, `step ${step}`);
      }
    });
  }

  test('the comment header is skipped as it comes, never held', () => {
    const r = new OggOpusReader();
    r.push(P0);
    r.push(packetsPage({ seq: 1, granule: 0 }, [], Buffer.concat([OPUS_TAGS, Buffer.alloc(255 * 255 - OPUS_TAGS.length)])));
    assert.equal(r.bufferedBytes, 0);
  });

  test('bounded: a megabyte of junk leaves 3 bytes held (a capture pattern may start in them)', () => {
    const r = new OggOpusReader();
    const junk = Buffer.alloc(4096, 'OggX');
    for (let i = 0; i < 256; i++) {
      assert.deepEqual(r.push(junk), []);
      assert.ok(r.bufferedBytes <= 3);
    }
    assert.equal(r.counters.skippedBytes, 256 * 4096 - 3);
    assert.deepEqual(simple(r.push(GOLDEN)), g);
  });

  test('bounded: a packet that never ends holds no more than the cap, and the stream goes on after it', () => {
    const r = new OggOpusReader();
    r.push(Buffer.concat([P0, P1]));
    const spanning = (seq: number) => packetsPage({ seq, granule: -1, flags: seq > 2 ? FLAG_CONTINUED : 0 }, [], Buffer.alloc(255 * 255));
    for (let seq = 2; seq < 40; seq++) {
      assert.deepEqual(r.push(spanning(seq)), []);
      assert.ok(r.bufferedBytes <= MAX_BUFFERED_BYTES);
    }
    assert.equal(r.counters.oversizePackets, 1);
    const out = r.push(packetsPage({ seq: 40, granule: 1920, flags: FLAG_CONTINUED }, [hex('00'), A]));
    assert.deepEqual(simple(out), [{ ...g[0], endSample: 1920 }]);
    assert.equal(r.bufferedBytes, 0);
  });

  test('property: random bytes, golden pieces and bit flips in any chunks never throw and stay bounded', () => {
    const piece = fc.oneof(
      fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)),
      fc.integer({ min: 0, max: GOLDEN.length }).chain((a) => fc.integer({ min: a, max: GOLDEN.length }).map((b) => GOLDEN.subarray(a, b))),
      fc.tuple(fc.integer({ min: 0, max: GOLDEN.length - 1 }), fc.integer({ min: 1, max: 255 })).map(([at, x]) => {
        const c = Buffer.from(GOLDEN);
        c[at] ^= x;
        return c;
      }),
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 12 }), fc.integer({ min: 1, max: 600 }), (pieces, step) => {
        const data = Buffer.concat(pieces);
        const r = new OggOpusReader();
        for (let i = 0; i < data.length; i += step) {
          for (const p of r.push(data.subarray(i, i + step))) {
            assert.ok(p.samples > 0 && p.samples <= 5760 && p.endSample >= p.samples);
          }
          assert.ok(r.bufferedBytes <= MAX_BUFFERED_BYTES);
        }
        // And it still reads a good stream after whatever came before: a fresh BOS restarts it,
        // once a false page that began in the junk has had its bytes (up to a page) and failed.
        const after = [...r.push(GOLDEN), ...r.push(Buffer.alloc(MAX_OGG_PAGE_BYTES))];
        assert.deepEqual(simple(after.slice(-g.length)), g);
      }),
      { numRuns: 200 },
    );
  });
});

// ---- Real FFmpeg ---------------------------------------------------------------------------
/** xorshift32: the same chunking on every run. */
function chunkSizes(seed: number, total: number): number[] {
  let x = seed;
  const cuts: number[] = [];
  for (let at = 0; ; ) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const r = x >>> 0;
    // Mostly small chunks (they split page headers and lacing tables), some up to 4 KiB.
    at += r % 4 === 0 ? 1 + (r >>> 8) % 4096 : 1 + (r >>> 8) % 40;
    if (at >= total) return cuts;
    cuts.push(at);
  }
}

describe('real FFmpeg as the judge', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  const SECONDS = 2;
  test(`${SECONDS} s of sine → libopus 20 ms frames → Ogg pipe → OggOpusReader`, async () => {
    const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-f', 'lavfi', '-i', `sine=frequency=1000:sample_rate=48000:duration=${SECONDS}`,
      '-c:a', 'libopus', '-b:a', '64k', '-frame_duration', '20', '-application', 'lowdelay', '-f', 'opus', 'pipe:1'];
    const live = new OggOpusReader();
    const livePackets: OpusPacket[] = [];
    const chunks: Buffer[] = [];
    await runFfmpeg(args, (b) => {
      chunks.push(b);
      livePackets.push(...live.push(b));
    });
    const bytes = Buffer.concat(chunks);

    // Seeded random chunks, and the whole output in one push: the same packets as the live pipe.
    const chunked = new OggOpusReader();
    const packets = pushAll(chunked, bytes, chunkSizes(0x0a1b2c3d, bytes.length));
    const whole = new OggOpusReader();
    assert.deepEqual(simple(whole.push(bytes)), simple(packets));
    assert.deepEqual(simple(livePackets), simple(packets));
    assert.deepEqual(chunked.counters, { ...CLEAN, pages: chunked.counters.pages, packets: packets.length });

    // OpusHead as ffprobe reads it from the same bytes (its extradata, printed as a hex dump).
    const probe = spawnSync(which('ffprobe')!, ['-v', 'error', '-show_data', '-show_entries', 'stream=channels,extradata', '-of', 'json', '-'], { input: bytes, encoding: 'utf8', timeout: 10_000 });
    const stream = JSON.parse(probe.stdout).streams[0] as { channels: number; extradata: string };
    const extradata = Buffer.from(stream.extradata.split('\n').filter(Boolean).map((l) => l.slice(10, 49).replace(/ /g, '')).join(''), 'hex');
    assert.ok(chunked.head?.subarray(0, 8).equals(Buffer.from('OpusHead')));
    assert.deepEqual(chunked.head, extradata);
    assert.equal(chunked.opusHead?.channels, stream.channels);
    const preSkip = extradata.readUInt16LE(10);
    assert.equal(chunked.opusHead?.preSkip, preSkip);

    // Every packet is 20 ms, back to back from sample 0.
    packets.forEach((p, i) => {
      assert.equal(p.samples, 960, `packet ${i}`);
      assert.equal(p.endSample, (i + 1) * 960, `packet ${i}`);
    });
    // The last page's granule is the input's length plus pre-skip (RFC 7845 §7): the packets cover
    // it, and the part of the last packet past it is trimmed (§4.4).
    const last = bytes.lastIndexOf('OggS');
    assert.equal(bytes[last + 5] & FLAG_EOS, FLAG_EOS);
    const lastGranule = Number(bytes.readBigInt64LE(last + 6));
    assert.equal(lastGranule, SECONDS * 48000 + preSkip);
    const trimmed = packets.at(-1)!.discardEnd ?? 0;
    assert.ok(trimmed < 960);
    assert.equal(packets.length * 960 - trimmed, lastGranule);
  });
});
