/**
 * Fragmented MP4 (ISO/IEC 14496-12 §8.8): a golden stream walked box by box, one fragment and the
 * ftyp written out byte by byte from the ISO field layouts, then real FFmpeg as the judge of files
 * made from x264 and MJPEG output with a 2 s freeze, whole and cut short as a SIGKILL leaves them.
 * With sound: the Opus track ("Encapsulation of Opus in ISO Base Media File Format") and a fragment
 * of both tracks byte by byte, then FFmpeg judges picture and sound together (two streams, clean
 * decode, equal lengths, each beep on its flash), from Mp4Writer and through FileSink.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mp4Writer, LONE_FRAME_TICKS, SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC } from '../src/player/mp4.ts';
import { FileSink } from '../src/player/sinks.ts';
import { opusPacketSamples } from '../src/codecs/opus/opus.ts';
import { annexBToLengthPrefixed, avcConfig } from '../src/codecs/h264/avc.ts';
import type { ContainerCodec, ContainerFrame } from '../src/player/container.ts';
import { VIDEO_CLOCK_RATE } from '../src/defaults.ts';
import { skipUnless } from './helpers/tools.ts';
import { beepsOnFlashes, encodeBeeps, encodeFlashes, encodeFrames, probe, type EncodedFrame } from './helpers/media.ts';

/** Hex bytes with `#` comments to the end of each line. */
const hex = (s: string) => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

// ---- Reading boxes back ------------------------------------------------------------------------

interface Box {
  type: string;
  /** Offset of the box's first byte in the walked file. */
  start: number;
  size: number;
  /** What follows the 8-byte header. */
  body: Buffer;
}

/** The boxes laid end to end in `buf`; every size must fit exactly. */
function boxes(buf: Buffer, base = 0): Box[] {
  const out: Box[] = [];
  for (let o = 0; o < buf.length; ) {
    assert.ok(buf.length - o >= 8, `box header at byte ${base + o}: need 8 bytes, have ${buf.length - o}`);
    const size = buf.readUInt32BE(o);
    const type = buf.toString('latin1', o + 4, o + 8);
    assert.ok(size >= 8 && size <= buf.length - o, `box '${type}' at byte ${base + o}: size ${size}, ${buf.length - o} bytes left`);
    out.push({ type, start: base + o, size, body: buf.subarray(o + 8, o + size) });
    o += size;
  }
  return out;
}

/** The body of the box at `path` ("trak/mdia/mdhd") below a container's body. */
function find(body: Buffer, path: string): Buffer {
  let b = body;
  for (const type of path.split('/')) {
    const found = boxes(b).filter((x) => x.type === type);
    assert.equal(found.length, 1, `one '${type}' in ${path}`);
    b = found[0].body;
  }
  return b;
}

interface Fragment {
  sequence: number;
  baseTime: number;
  /** [duration, size, flags] per sample. */
  samples: [number, number, number][];
  /** trun data_offset, and where the mdat's payload really starts, both counted from the moof. */
  dataOffset: number;
  payloadOffset: number;
  payload: Buffer;
}

/** ftyp, moov, then moof + mdat pairs: the moov's body and each fragment as its fields say. */
function parseFile(file: Buffer): { ftyp: Buffer; moov: Buffer; fragments: Fragment[] } {
  const top = boxes(file);
  assert.deepEqual(top.slice(0, 2).map((b) => b.type), ['ftyp', 'moov']);
  const fragments: Fragment[] = [];
  for (let i = 2; i < top.length; i += 2) {
    const [moof, mdat] = [top[i], top[i + 1]];
    assert.deepEqual([moof.type, mdat?.type], ['moof', 'mdat'], `boxes ${i} and ${i + 1}`);
    const trun = find(moof.body, 'traf/trun');
    const count = trun.readUInt32BE(4);
    assert.equal(trun.length, 12 + 12 * count, `trun of ${count} samples`);
    const samples: [number, number, number][] = [];
    for (let s = 0; s < count; s++) samples.push([0, 4, 8].map((f) => trun.readUInt32BE(12 + 12 * s + f)) as [number, number, number]);
    fragments.push({
      sequence: find(moof.body, 'mfhd').readUInt32BE(4),
      baseTime: Number(find(moof.body, 'traf/tfdt').readBigUInt64BE(4)),
      samples,
      dataOffset: trun.readInt32BE(8),
      payloadOffset: mdat.start + 8 - moof.start,
      payload: mdat.body,
    });
  }
  return { ftyp: top[0].body, moov: top[1].body, fragments };
}

// ---- A golden stream ---------------------------------------------------------------------------

// A real x264 SPS (Constrained Baseline, 64x48) and PPS; the slices are stand-ins, for structure.
const SPS = '6742c00ada11ec0440000003004000000f03c489a8';
const PPS = '68ce0fc8';
const au = (...nalus: string[]) => hex(nalus.map((n) => `00000001${n}`).join(''));
const KEY = au(SPS, PPS, '658884');
const INTER = au('419a');
const KEY_SAMPLE = 4 + 21 + 4 + 4 + 4 + 3; // three NAL units behind 4-byte lengths
const INTER_SAMPLE = 4 + 2;
const h264 = (pts: number, keyframe: boolean): ContainerFrame => ({ codec: 'h264', data: keyframe ? KEY : INTER, keyframe, pts });

/** With fragmentMs 100 (9000 ticks): a frame before the keyframe, a 2 s freeze, a second keyframe. */
const GOLDEN_FRAMES = [
  h264(1_000, false), // before the first keyframe: dropped
  h264(10_000, true), // time 0
  h264(13_000, false),
  h264(16_000, false),
  h264(19_000, false), // 9000 ticks buffered: fragment 1 goes out
  h264(199_000, false), // after a 2 s freeze: fragment 2 is one 180000-tick sample
  h264(202_000, true), // a keyframe starts fragment 4
  h264(205_000, false), // its duration at end() is the previous one's
];
const S = SAMPLE_FLAGS_SYNC;
const N = SAMPLE_FLAGS_NON_SYNC;
const EXPECTED_FRAGMENTS = [
  { sequence: 1, baseTime: 0, samples: [[3000, KEY_SAMPLE, S], [3000, INTER_SAMPLE, N], [3000, INTER_SAMPLE, N]] },
  { sequence: 2, baseTime: 9000, samples: [[180_000, INTER_SAMPLE, N]] },
  { sequence: 3, baseTime: 189_000, samples: [[3000, INTER_SAMPLE, N]] },
  { sequence: 4, baseTime: 192_000, samples: [[3000, KEY_SAMPLE, S], [3000, INTER_SAMPLE, N]] },
];

/** Each write()'s buffers, then end()'s. */
function writeAll(frames: ContainerFrame[], opts?: { fragmentMs?: number }): Buffer[][] {
  const w = new Mp4Writer(opts);
  return [...frames.map((f) => w.write(f)), w.end()];
}
const topTypes = (bufs: Buffer[]) => boxes(Buffer.concat(bufs)).map((b) => b.type);

describe('Mp4Writer: golden stream', () => {
  const calls = writeAll(GOLDEN_FRAMES, { fragmentMs: 100 });
  const file = Buffer.concat(calls.flat());

  test('nothing before the first keyframe; then the header; each fragment when the next one starts', () => {
    assert.deepEqual(calls.map(topTypes), [
      [],
      ['ftyp', 'moov'],
      [],
      [],
      ['moof', 'mdat'],
      ['moof', 'mdat'],
      ['moof', 'mdat'],
      [],
      ['moof', 'mdat'], // end()
    ]);
  });

  test('box layout: sizes add up to the file; ftyp, moov, then moof + mdat per fragment', () => {
    const top = boxes(file);
    assert.equal(top.reduce((n, b) => n + b.size, 0), file.length);
    assert.deepEqual(top.map((b) => b.type), ['ftyp', 'moov', ...Array(4).fill(['moof', 'mdat']).flat()]);
  });

  test('ftyp byte by byte (§4.3): major brand isom, minor version 0, compatible brands', () => {
    assert.deepEqual(calls[1][0], hex(`
      00000024 66747970         # size 36, 'ftyp'
      69736f6d 00000000         # major_brand 'isom', minor_version 0
      69736f6d 69736f35 69736f36 6d703431 61766331  # 'isom' 'iso5' 'iso6' 'mp41' 'avc1'
    `));
  });

  test('moov: timescale 90000, durations 0, track 1 of 64x48, avc1 + avcC, empty sample tables, trex', () => {
    const { moov } = parseFile(file);
    assert.deepEqual(boxes(moov).map((b) => b.type), ['mvhd', 'trak', 'mvex']);
    const mvhd = find(moov, 'mvhd');
    assert.deepEqual([mvhd.readUInt32BE(12), mvhd.readUInt32BE(16), mvhd.readUInt32BE(mvhd.length - 4)], [VIDEO_CLOCK_RATE, 0, 2]);
    const tkhd = find(moov, 'trak/tkhd');
    assert.equal(tkhd.readUInt32BE(0), 3, 'version 0, flags enabled | in movie');
    assert.deepEqual([tkhd.readUInt32BE(12), tkhd.readUInt32BE(20)], [1, 0], 'track_ID, duration');
    assert.deepEqual([tkhd.readUInt32BE(tkhd.length - 8), tkhd.readUInt32BE(tkhd.length - 4)], [64 << 16, 48 << 16]);
    const mdhd = find(moov, 'trak/mdia/mdhd');
    assert.deepEqual([mdhd.readUInt32BE(12), mdhd.readUInt32BE(16)], [VIDEO_CLOCK_RATE, 0]);
    assert.equal(find(moov, 'trak/mdia/hdlr').toString('latin1', 8, 12), 'vide');
    assert.equal(find(moov, 'trak/mdia/minf/vmhd').readUInt32BE(0), 1);
    const dref = find(moov, 'trak/mdia/minf/dinf/dref');
    assert.deepEqual(dref, hex('00000000 00000001  0000000c 75726c20 00000001'), "one 'url ', flags 1: this file");
    const stbl = (p: string) => find(moov, `trak/mdia/minf/stbl/${p}`);
    for (const empty of ['stts', 'stsc', 'stco']) assert.deepEqual(stbl(empty), hex('00000000 00000000'), empty);
    assert.deepEqual(stbl('stsz'), hex('00000000 00000000 00000000'));
    const stsd = stbl('stsd');
    assert.equal(stsd.readUInt32BE(4), 1, 'entry_count');
    const [entry] = boxes(stsd.subarray(8));
    assert.equal(entry.type, 'avc1');
    assert.equal(entry.body.readUInt16BE(6), 1, 'data_reference_index');
    assert.deepEqual([entry.body.readUInt16BE(24), entry.body.readUInt16BE(26)], [64, 48]);
    // VisualSampleEntry's fields are 78 bytes (§12.1.3.2); its boxes follow.
    assert.deepEqual(find(entry.body.subarray(78), 'avcC'), avcConfig(KEY)!.record);
    assert.deepEqual(find(moov, 'mvex/trex'), hex('00000000 00000001 00000001 00000000 00000000 00000000'));
  });

  test('fragments: mfhd from 1, tfdt from 0, trun durations (the 2 s freeze kept), sizes, flags, data_offset', () => {
    const { fragments } = parseFile(file);
    assert.deepEqual(
      fragments.map(({ sequence, baseTime, samples }) => ({ sequence, baseTime, samples })),
      EXPECTED_FRAGMENTS,
    );
    for (const f of fragments) {
      assert.equal(f.dataOffset, f.payloadOffset, `fragment ${f.sequence}: data_offset points at the mdat payload`);
      assert.equal(f.payload.length, f.samples.reduce((n, s) => n + s[1], 0));
    }
    assert.deepEqual(fragments[0].payload, Buffer.concat([KEY, INTER, INTER].map(annexBToLengthPrefixed)));
  });

  test('fragment 2 byte by byte from the ISO field layout (§8.8.4-§8.8.8, §8.8.12)', () => {
    assert.deepEqual(Buffer.concat(calls[5]), hex(`
      00000064 6d6f6f66                          # moof, 100 bytes
        00000010 6d666864 00 000000 00000002     #   mfhd: version 0, flags 0, sequence_number 2
        0000004c 74726166                        #   traf, 76 bytes
          00000010 74666864 00 020000 00000001   #     tfhd: flags default-base-is-moof, track_ID 1
          00000014 74666474 01 000000            #     tfdt: version 1 (64-bit time)
            00000000 00002328                    #       baseMediaDecodeTime 9000
          00000020 7472756e 00 000701 00000001   #     trun: data-offset, duration, size, flags; 1 sample
            0000006c                             #       data_offset 108 = moof 100 + mdat header 8
            0002bf20 00000006 01010000           #       duration 180000, size 6, depends on others, non-sync
      0000000e 6d646174                          # mdat, 14 bytes
        00000002 419a                            #   the P slice behind its 4-byte length
    `));
  });
});

describe('Mp4Writer: edge cases', () => {
  test('a pts that goes back is put one tick after the previous frame; later frames keep their own', () => {
    const calls = writeAll([h264(0, true), h264(3000, false), h264(2000, false), h264(9000, false)]);
    const [f] = parseFile(Buffer.concat(calls.flat())).fragments;
    assert.deepEqual(f.samples.map((s) => s[0]), [3000, 1, 5999, 5999]);
  });

  test(`a lone frame lasts ${LONE_FRAME_TICKS} ticks (1/30 s); end() gives its bytes once`, () => {
    const w = new Mp4Writer();
    const file = Buffer.concat([...w.write(h264(5000, true)), ...w.end()]);
    const { fragments } = parseFile(file);
    assert.deepEqual(fragments.map((f) => [f.baseTime, f.samples]), [[0, [[LONE_FRAME_TICKS, KEY_SAMPLE, S]]]]);
    assert.deepEqual(w.end(), []);
    assert.deepEqual(w.write(h264(8000, false)), [], 'nothing after end()');
  });

  test('no file without a usable keyframe: no SPS/PPS, or no frames at all', () => {
    assert.deepEqual(writeAll([{ ...h264(0, true), data: au('658884') }]).flat(), []);
    assert.deepEqual(new Mp4Writer().end(), []);
  });

  test('one track, one codec: a JPEG in an H.264 recording is dropped', () => {
    const w = new Mp4Writer();
    const head = w.write(h264(0, true));
    assert.deepEqual(w.write({ codec: 'mjpeg', data: Buffer.from('ffd8ffd9', 'hex'), keyframe: true, pts: 3000 }), []);
    const [f] = parseFile(Buffer.concat([...head, ...w.end()])).fragments;
    assert.deepEqual(f.samples, [[LONE_FRAME_TICKS, KEY_SAMPLE, S]]);
  });

  test('fragmentMs: 15 frames a fragment at 500 ms and 30 fps, a keyframe starting one early', () => {
    const frames = Array.from({ length: 40 }, (_, i) => h264(i * 3000, i === 0 || i === 20));
    const { fragments } = parseFile(Buffer.concat(writeAll(frames).flat()));
    assert.deepEqual(fragments.map((f) => f.samples.length), [15, 5, 15, 5]);
  });
});

// ---- With sound: an Opus track ------------------------------------------------------------------

// An OpusHead from RFC 7845 §5.1's layout (little-endian): stereo, pre-skip 312, input rate 48000,
// output gain 0x0105 (1.02 dB in Q7.8), mapping family 0.
const HEAD = hex(`
  4f707573 48656164   # 'OpusHead'
  01 02 3801          # version 1, 2 channels, pre-skip 312
  80bb0000            # input sample rate 48000
  0501 00             # output gain 0x0105, mapping family 0
`);
// An Opus packet: TOC config 31 (CELT, fullband, 20 ms = 960 samples), code 0 (one frame).
const OPUS = hex('f8 fffe');

/** A moof's trafs: track, tfdt, and per sample [duration, size] (and flags when the trun has them). */
function trafs(moof: Buffer): { track: number; baseTime: number; samples: number[][]; dataOffset: number; rest: string[] }[] {
  return boxes(moof).filter((b) => b.type === 'traf').map((t) => {
    const trun = find(t.body, 'trun');
    const count = trun.readUInt32BE(4);
    const perSample = (trun.length - 12) / count / 4;
    const samples = Array.from({ length: count }, (_, i) => Array.from({ length: perSample }, (_, f) => trun.readUInt32BE(12 + 4 * (i * perSample + f))));
    return {
      track: find(t.body, 'tfhd').readUInt32BE(4),
      baseTime: Number(find(t.body, 'tfdt').readBigUInt64BE(4)),
      samples,
      dataOffset: trun.readInt32BE(8),
      rest: boxes(t.body).slice(3).map((b) => b.type),
    };
  });
}

describe('Mp4Writer with an Opus track', () => {
  /** Each call's buffers, in order, and the writer. */
  function goldenAv() {
    const w = new Mp4Writer({ audio: { head: HEAD } });
    const calls = [
      w.writeAudio({ data: OPUS, pts: 0 }), // before the first keyframe: dropped
      w.write(h264(10_000, true)), // time 0: the header
      w.writeAudio({ data: OPUS, pts: 10_000 - 900 }), // 10 ms before the first picture: dropped
      w.writeAudio({ data: OPUS, pts: 10_000 + 900 }), // 10 ms: sample 480
      w.writeAudio({ data: OPUS, pts: 10_000 + 2700 }), // 30 ms: sample 1440; the next one is lost
      w.write(h264(13_000, false)),
      w.writeAudio({ data: OPUS, pts: 10_000 + 6300 }), // 70 ms: sample 3360
      w.writeAudio({ data: OPUS, pts: 10_000 + 6300 }), // no later than the one before: dropped
      w.writeAudio({ data: Buffer.alloc(0), pts: 10_000 + 8100 }), // no TOC byte: malformed
      w.write(h264(16_000, true)), // a keyframe: fragment 1 goes out, both tracks
      w.end(), // fragment 2: the last frame alone
    ];
    return { w, calls, file: Buffer.concat(calls.flat()) };
  }

  test('moov: two tracks; the sound trak is soun, smhd, timescale 48000, Opus + dOps, an edit from pre-skip; trex for each', () => {
    const { calls } = goldenAv();
    const [ftyp, moovBox] = boxes(Buffer.concat(calls[1]));
    assert.equal(ftyp.body.toString('latin1', 8), 'isomiso5iso6mp41avc1Opus', "compatible brands, 'Opus' last (Opus-in-ISOBMFF §4.1)");
    const moov = moovBox.body;
    assert.deepEqual(boxes(moov).map((b) => b.type), ['mvhd', 'trak', 'trak', 'mvex']);
    const mvhd = find(moov, 'mvhd');
    assert.equal(mvhd.readUInt32BE(mvhd.length - 4), 3, 'next_track_ID');
    const sound = boxes(moov)[2].body;
    assert.deepEqual(boxes(sound).map((b) => b.type), ['tkhd', 'edts', 'mdia']);
    const tkhd = find(sound, 'tkhd');
    assert.deepEqual([tkhd.readUInt32BE(0), tkhd.readUInt32BE(12), tkhd.readUInt16BE(36)], [3, 2, 0x0100], 'enabled | in movie, track_ID 2, volume 1.0');
    assert.deepEqual([tkhd.readUInt32BE(tkhd.length - 8), tkhd.readUInt32BE(tkhd.length - 4)], [0, 0], 'no width or height');
    assert.deepEqual(find(sound, 'edts/elst'), hex(`
      00 000000   # version 0, flags 0
      00000001    # entry_count
      00000000    # segment_duration 0: as long as all the samples, fragments included (§4.4)
      00000138    # media_time 312: the pre-skip is trimmed
      0001 0000   # media_rate 1.0
    `));
    const mdhd = find(sound, 'mdia/mdhd');
    assert.deepEqual([mdhd.readUInt32BE(12), mdhd.readUInt32BE(16)], [48000, 0], 'timescale, duration');
    assert.equal(find(sound, 'mdia/hdlr').toString('latin1', 8, 12), 'soun');
    assert.deepEqual(find(sound, 'mdia/minf/smhd'), hex('00000000 0000 0000'), 'balance 0, reserved');
    assert.deepEqual(find(sound, 'mdia/minf/dinf/dref'), hex('00000000 00000001  0000000c 75726c20 00000001'));
    const stbl = (p: string) => find(sound, `mdia/minf/stbl/${p}`);
    assert.deepEqual(boxes(find(sound, 'mdia/minf/stbl')).map((b) => b.type), ['stsd', 'stts', 'stsc', 'stsz', 'stco', 'sgpd', 'sbgp']);
    assert.deepEqual(stbl('stsd'), hex(`
      00000000 00000001               # stsd: version 0, entry_count 1
      00000037 4f707573               # 'Opus', 55 bytes (Opus-in-ISOBMFF §4.3.1)
        000000000000 0001             #   reserved, data_reference_index 1
        00000000 00000000             #   reserved[2]
        0002 0010 0000 0000           #   channelcount 2, samplesize 16, pre_defined, reserved
        bb800000                      #   samplerate 48000 << 16
        00000013 644f7073             #   'dOps', 19 bytes (§4.3.2): OpusHead's fields, big-endian
          00 02                       #     Version 0, OutputChannelCount 2
          0138                        #     PreSkip 312
          0000bb80                    #     InputSampleRate 48000
          0105                        #     OutputGain 0x0105
          00                          #     ChannelMappingFamily 0: no table
    `));
    // Opus-in-ISOBMFF §4.3.6.2: roll groups in the stbl, empty since its samples are in fragments.
    assert.deepEqual(stbl('sgpd'), hex('01000000 726f6c6c 00000002 00000000'), "version 1, 'roll', default_length 2, no entries");
    assert.deepEqual(stbl('sbgp'), hex('00000000 726f6c6c 00000000'), "'roll', no entries");
    const trex = boxes(find(moov, 'mvex')).map((b) => b.body);
    assert.deepEqual(trex, [
      hex('00000000 00000001 00000001 00000000 00000000 00000000'),
      hex('00000000 00000002 00000001 00000000 00000000 02000000'), // every Opus sample a sync sample (§4.3.6.1)
    ]);
  });

  test('fragment 1 byte by byte: a traf per track (the sound two, split at a lost packet), the sound after the picture in the mdat; drops counted', () => {
    const { w, calls } = goldenAv();
    assert.deepEqual(calls.map(topTypes), [[], ['ftyp', 'moov'], [], [], [], [], [], [], [], ['moof', 'mdat'], ['moof', 'mdat']]);
    assert.deepEqual(w.audioDropped, { beforeStart: 2, tooOld: 1, malformed: 1, noTrack: 0 });
    const samples = Buffer.concat([annexBToLengthPrefixed(KEY), annexBToLengthPrefixed(INTER), OPUS, OPUS, OPUS]);
    assert.deepEqual(Buffer.concat(calls[9]), Buffer.concat([hex(`
      00000174 6d6f6f66                          # moof, 372 bytes
        00000010 6d666864 00000000 00000001      #   mfhd: sequence_number 1
        00000058 74726166                        #   traf, 88 bytes: the picture
          00000010 74666864 00020000 00000001    #     tfhd: default-base-is-moof, track 1
          00000014 74666474 01000000             #     tfdt, version 1
            00000000 00000000                    #       baseMediaDecodeTime 0
          0000002c 7472756e 00000701 00000002    #     trun: data-offset, duration, size, flags; 2 samples
            0000017c                             #       data_offset 380 = moof 372 + mdat header 8
            00000bb8 00000028 02000000           #       3000 ticks, 40 bytes, sync
            00000bb8 00000006 01010000           #       3000 ticks, 6 bytes, non-sync
        00000086 74726166                        #   traf, 134 bytes: the sound up to the lost packet
          00000010 74666864 00020000 00000002    #     tfhd: default-base-is-moof, track 2
          00000014 74666474 01000000             #     tfdt, version 1
            00000000 000001e0                    #       480: 10 ms after the first picture
          00000024 7472756e 00000301 00000002    #     trun: data-offset, duration, size (flags: trex's); 2 samples
            000001aa                             #       data_offset 426 = 380 + the picture's 46 bytes
            000003c0 00000003                    #       960: each as long as its TOC says
            000003c0 00000003
          0000001a 73677064 01000000 726f6c6c    #     sgpd: version 1, 'roll'
            00000002 00000001 fffc               #       default_length 2, 1 entry: roll_distance -4 (80 ms)
          0000001c 73626770 00000000 726f6c6c    #     sbgp: 'roll'
            00000001 00000002 00010001           #       1 entry: 2 samples, the traf's sgpd entry 1
        0000007e 74726166                        #   traf, 126 bytes: the sound after it, placed by its tfdt
          00000010 74666864 00020000 00000002    #     tfhd: track 2
          00000014 74666474 01000000             #     tfdt, version 1
            00000000 00000d20                    #       3360 = 480 + 960 + the lost packet's 1920
          0000001c 7472756e 00000301 00000001    #     trun: 1 sample
            000001b0                             #       data_offset 432 = 426 + 6
            000003c0 00000003                    #       960
          0000001a 73677064 01000000 726f6c6c    #     sgpd
            00000002 00000001 fffc
          0000001c 73626770 00000000 726f6c6c    #     sbgp: 1 sample
            00000001 00000001 00010001
      0000003f 6d646174                          # mdat, 63 bytes: the frames, then the packets
    `), samples]));
    const [f2] = boxes(Buffer.concat(calls[10]));
    assert.deepEqual(trafs(f2.body).map((t) => t.track), [1], 'no sound waiting: no sound traf');
  });

  test('a frozen picture: sound goes out alone once it has waited 2 × fragmentMs', () => {
    const w = new Mp4Writer({ audio: { head: HEAD }, fragmentMs: 100 });
    const out = [...w.write(h264(0, true))];
    const calls = Array.from({ length: 12 }, (_, k) => w.writeAudio({ data: OPUS, pts: k * 1800 }));
    // 20 ms packets from 0: the 11th (200 ms after the first) sends the first ten.
    assert.deepEqual(calls.map((c) => c.length > 0), [...Array(10).fill(false), true, false]);
    out.push(...calls.flat(), ...w.end());
    const top = boxes(Buffer.concat(out));
    const moofs = top.filter((b) => b.type === 'moof').map((m) => trafs(m.body));
    assert.deepEqual(moofs.map((m) => m.map((t) => [t.track, t.baseTime, t.samples.length])), [
      [[2, 0, 10]],
      [[1, 0, 1], [2, 9600, 2]],
    ]);
    for (const m of top.filter((b) => b.type === 'moof')) {
      const mdat = top[top.indexOf(m) + 1];
      assert.equal(trafs(m.body)[0].dataOffset, m.size + 8, 'the first traf starts the mdat');
      assert.equal(mdat.type, 'mdat');
    }
  });

  test('sound without a sound track is counted, not written; a bad OpusHead is refused', () => {
    const w = new Mp4Writer();
    w.write(h264(0, true));
    assert.deepEqual(w.writeAudio({ data: OPUS, pts: 900 }), []);
    assert.equal(w.audioDropped.noTrack, 1);
    assert.throws(() => new Mp4Writer({ audio: { head: HEAD.subarray(0, 10) } }), /OpusHead/);
  });
});

// ---- Real FFmpeg as the judge ------------------------------------------------------------------

const FPS = 30;
const SECONDS = 3;
const TICKS_PER_FRAME = VIDEO_CLOCK_RATE / FPS;
/** A 2 s freeze (the screen did not change, so the encoder sent nothing) before frame 30. */
const FREEZE_BEFORE = 30;
const FREEZE_TICKS = 2 * VIDEO_CLOCK_RATE;
const ptsOf = (i: number) => i * TICKS_PER_FRAME + (i >= FREEZE_BEFORE ? FREEZE_TICKS : 0);
const CODECS: ContainerCodec[] = ['h264', 'mjpeg'];

/** What FFmpeg may say about a file cut inside a sample: the cut, and nothing else. */
const TRUNCATION = /partial file|Invalid NAL unit size|Error splitting the input into NAL units|overread|Error while decoding stream|Invalid data found when processing input/;

const tmp = mkdtempSync(join(tmpdir(), 'udpcast-mp4-'));
after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

describe('FFmpeg judges Mp4Writer', { skip: skipUnless('ffmpeg', 'ffprobe'), timeout: 60_000 }, () => {
  for (const codec of CODECS) {
    test(`${codec}: testsrc2 with a 2 s freeze → .mp4 that ffprobe reads whole, at its real length; cut after a fragment, it still plays`, async () => {
      const frames = encodeFrames(codec, FPS * SECONDS);
      assert.equal(frames.length, FPS * SECONDS);

      const w = new Mp4Writer();
      const out: Buffer[] = [];
      let bytes = 0;
      /** After each fragment: the file's length and the frames it holds. */
      const boundaries: { bytes: number; frames: number }[] = [];
      frames.forEach((f, i) => {
        const bufs = w.write({ codec, data: f.data, keyframe: f.keyframe, pts: ptsOf(i) });
        for (const b of bufs) bytes += b.length;
        if (i > 0 && bufs.length > 0) boundaries.push({ bytes, frames: i }); // frame i started a fragment
        out.push(...bufs);
      });
      out.push(...w.end());
      const file = Buffer.concat(out);
      const mp4 = join(tmp, `${codec}.mp4`);
      writeFileSync(mp4, file);

      const { moov, fragments } = parseFile(file);
      assert.equal(boxes(find(moov, 'trak/mdia/minf/stbl/stsd').subarray(8))[0].type, codec === 'h264' ? 'avc1' : 'jpeg');
      if (codec === 'mjpeg') assert.ok(fragments.every((f) => f.samples.every((s) => s[2] === SAMPLE_FLAGS_SYNC)), 'every JPEG a sync sample');

      const expectedSeconds = (ptsOf(frames.length - 1) + TICKS_PER_FRAME) / VIDEO_CLOCK_RATE;
      const p = probe(mp4);
      console.log(`${codec}: ffprobe says ${p.codec} ${p.width}x${p.height}, ${p.frames} frames, ${p.duration} s (expected ${expectedSeconds} s), ${fragments.length} fragments`);
      assert.deepEqual([p.codec, p.width, p.height, p.frames, p.errors], [codec, 320, 240, frames.length, '']);
      assert.ok(Math.abs(p.duration! - expectedSeconds) <= 0.02 * expectedSeconds, `duration ${p.duration} s, expected ${expectedSeconds} s`);

      // Killed right after a fragment: every frame before it plays, without a word from FFmpeg.
      const cut = boundaries[Math.floor(boundaries.length / 2)];
      const atBoundary = join(tmp, `${codec}-cut.mp4`);
      writeFileSync(atBoundary, file.subarray(0, cut.bytes));
      const q = probe(atBoundary);
      assert.deepEqual([q.frames, q.errors], [cut.frames, ''], `cut at byte ${cut.bytes}`);

      // Killed halfway through the next fragment's samples: the frames before still play, and
      // FFmpeg speaks only of the cut.
      const [, nextMdat] = boxes(file.subarray(cut.bytes), cut.bytes);
      const midSample = join(tmp, `${codec}-cut-mid.mp4`);
      writeFileSync(midSample, file.subarray(0, nextMdat.start + 8 + Math.floor(nextMdat.body.length / 2)));
      const r = probe(midSample);
      assert.ok(r.frames >= cut.frames && r.frames < frames.length, `${r.frames} frames read, ${cut.frames} before the cut fragment`);
      for (const line of r.errors.split('\n').filter(Boolean)) assert.match(line, TRUNCATION);
    });
  }
});

// ---- Real FFmpeg judges picture and sound ------------------------------------------------------

/** What FFmpeg makes of a file with sound: its streams, its decode, each stream's span and start. */
function judgeAv(file: string) {
  const r = spawnSync('ffprobe', ['-v', 'error', '-show_entries', 'stream=index,codec_name,width,height,sample_rate,channels,start_time:packet=stream_index,pts_time', '-of', 'json', file], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  const j = JSON.parse(r.stdout || '{}') as { streams?: Record<string, string | number>[]; packets?: { stream_index: number; pts_time: string }[] };
  const span = (index: number) => {
    const t = (j.packets ?? []).filter((p) => p.stream_index === index).map((p) => Number(p.pts_time));
    return { packets: t.length, seconds: t.length ? Math.max(...t) - Math.min(...t) : 0 };
  };
  // framemd5 decodes every frame of both tracks (see audio.test.ts on why not the null muxer).
  const decode = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
  return { probeErrors: r.stderr.trim(), streams: j.streams ?? [], video: span(0), audio: span(1), decodeErrors: decode.stderr.trim(), decodeStatus: decode.status };
}

describe('FFmpeg judges Mp4Writer with sound', { skip: skipUnless('ffmpeg', 'ffprobe'), timeout: 120_000 }, () => {
  const SOUND_FPS = 30;
  const FRAMES = 4 * SOUND_FPS;
  /** Where the first frame is on the RTP-like timeline the writer is given. */
  const START = 10_000;
  const PACKET_TICKS = (opusPacketSamples(OPUS) * VIDEO_CLOCK_RATE) / 48_000;
  let flashes: EncodedFrame[] = [];

  // Sound whose first packet is 30 ms before the first picture (two packets dropped, the third
  // starts 10 ms in) or 50 ms after it; the second with the picture frozen for 2 s after 1.5 s
  // (frame 45 and on 2 s later, still flashing on the half second) while the sound goes on, so
  // sound goes out in fragments of its own.
  for (const { from, freeze } of [{ from: -0.03, freeze: false }, { from: 0.05, freeze: true }]) {
    test(`sound from ${from * 1000} ms${freeze ? ', a frozen picture' : ''}: two streams, clean decode, equal lengths, beeps on flashes; cut after a fragment, both still play`, () => {
      if (flashes.length === 0) flashes = encodeFlashes(FRAMES);
      assert.equal(flashes.length, FRAMES);
      const { head, packets } = encodeBeeps(freeze ? 6 : 4, from);
      type Item = { pts: number; frame?: EncodedFrame; packet?: Buffer };
      const items: Item[] = flashes.map((f, i) => ({ pts: START + i * TICKS_PER_FRAME + (freeze && i >= FREEZE_BEFORE + 15 ? FREEZE_TICKS : 0), frame: f }));
      items.push(...packets.map((p, k) => ({ pts: START + from * VIDEO_CLOCK_RATE + k * PACKET_TICKS, packet: p })));
      // By time; at a tie the picture first.
      items.sort((a, b) => a.pts - b.pts || (a.frame ? -1 : 0) - (b.frame ? -1 : 0));

      const w = new Mp4Writer({ audio: { head } });
      const out: Buffer[] = [];
      let bytes = 0;
      const boundaries: number[] = [];
      for (const it of items) {
        const bufs = it.frame ? w.write({ codec: 'h264', data: it.frame.data, keyframe: it.frame.keyframe, pts: it.pts }) : w.writeAudio({ data: it.packet!, pts: it.pts });
        if (bufs.length && bufs[0].toString('latin1', 4, 8) === 'moof') boundaries.push(bytes); // where the file was whole
        for (const b of bufs) bytes += b.length;
        out.push(...bufs);
      }
      out.push(...w.end());
      const file = Buffer.concat(out);
      const mp4 = join(tmp, `av${from}.mp4`);
      writeFileSync(mp4, file);
      assert.deepEqual(w.audioDropped, { beforeStart: from < 0 ? 2 : 0, tooOld: 0, malformed: 0, noTrack: 0 });
      const moofs = boxes(file).filter((b) => b.type === 'moof').map((m) => trafs(m.body).map((t) => t.track));
      if (freeze) assert.ok(moofs.some((m) => m.join() === '2'), `a fragment of sound alone: ${JSON.stringify(moofs)}`);

      const j = judgeAv(mp4);
      const [v, a] = j.streams;
      console.log(`# sound from ${from} s: video ${j.video.packets} packets over ${j.video.seconds.toFixed(3)} s, audio ${j.audio.packets} over ${j.audio.seconds.toFixed(3)} s from ${a?.start_time} s; ${moofs.length} fragments`);
      assert.equal(j.probeErrors, '');
      assert.deepEqual([v?.codec_name, v?.width, v?.height], ['h264', 320, 240]);
      assert.deepEqual([a?.codec_name, a?.sample_rate, a?.channels], ['opus', '48000', 1]);
      assert.deepEqual([j.decodeStatus, j.decodeErrors], [0, ''], 'both tracks decode without an error');
      assert.ok(Math.abs(j.audio.seconds - j.video.seconds) <= 0.02 * j.video.seconds, `sound ${j.audio.seconds} s, picture ${j.video.seconds} s`);
      // The first packet kept, after the edit trims the 312-sample pre-skip: tfdt and elst together.
      const firstSound = (from < 0 ? 0.01 : from) - 312 / 48_000;
      assert.ok(Math.abs(Number(a.start_time) - firstSound) < 0.001, `sound starts at ${a.start_time} s, expected ${firstSound.toFixed(4)} s`);
      const sync = beepsOnFlashes(mp4);
      console.log(`# flashes ${sync.flashes.join(', ')}; beeps ${sync.onsets.map((t) => t.toFixed(3)).join(', ')}; worst ${sync.worstMs} ms`);
      assert.ok(sync.flashes.length >= (freeze ? 2 : 4), `${sync.flashes.length} flashes`);
      assert.ok(sync.worstMs <= 10, `a beep ${sync.worstMs} ms from its flash`);

      // Killed right after a fragment: both tracks up to it, without a word from FFmpeg.
      const cut = boundaries[Math.floor(boundaries.length / 2)];
      const atBoundary = join(tmp, `av${from}-cut.mp4`);
      writeFileSync(atBoundary, file.subarray(0, cut));
      const c = judgeAv(atBoundary);
      assert.deepEqual([c.probeErrors, c.decodeErrors, c.streams.map((s) => s.codec_name)], ['', '', ['h264', 'opus']], `cut at byte ${cut}`);
      assert.ok(c.video.packets > 0 && c.video.packets < j.video.packets && c.audio.packets > 0 && c.audio.packets < j.audio.packets);
      // Killed inside the next fragment's sound: FFmpeg speaks only of the cut.
      const [nextMoof, nextMdat] = boxes(file.subarray(cut), cut);
      const soundAt = trafs(nextMoof.body).at(-1)!.dataOffset;
      const midSound = join(tmp, `av${from}-cut-mid.mp4`);
      writeFileSync(midSound, file.subarray(0, nextMoof.start + soundAt + 5));
      assert.ok(nextMoof.start + soundAt + 5 < nextMdat.start + nextMdat.size);
      const m = judgeAv(midSound);
      assert.ok(m.video.packets >= c.video.packets, `${m.video.packets} frames`);
      for (const line of `${m.probeErrors}\n${m.decodeErrors}`.split('\n').filter(Boolean)) assert.match(line, TRUNCATION);
    });
  }

  test('FileSink → .mp4: frames and Opus packets as watch hands them on (RTP timestamps, arrival times) make a file in sync', async () => {
    if (flashes.length === 0) flashes = encodeFlashes(FRAMES);
    const from = -0.05;
    const { packets } = encodeBeeps(4, from);
    const file = join(tmp, 'sink.mp4');
    const sink = new FileSink(file);
    const RTP = 1_000_000;
    /** Everything arrives 10 ms after its capture; a packet's capture time is its first sample's, after the pre-skip. */
    type Event = { now: number; frame?: number; packet?: number };
    const events: Event[] = flashes.map((_, i) => ({ now: (i * 1000) / SOUND_FPS + 10, frame: i }));
    const captured = (k: number) => from + (k * opusPacketSamples(packets[k]) - 312) / 48_000;
    events.push(...packets.map((_, k) => ({ now: captured(k) * 1000 + 10, packet: k })));
    events.sort((a, b) => a.now - b.now);
    for (const e of events) {
      if (e.frame !== undefined) {
        const f = flashes[e.frame];
        sink.write({ codec: 'h264', data: f.data, keyframe: f.keyframe, timestamp: RTP + e.frame * TICKS_PER_FRAME }, e.now);
      } else {
        const k = e.packet!;
        const videoTimestamp = RTP + Math.round(captured(k) * VIDEO_CLOCK_RATE);
        sink.writeAudio({ data: packets[k], ssrc: 1, timestamp: k * 960, videoTimestamp, concealed: false }, e.now);
      }
    }
    await sink.close();
    const j = judgeAv(file);
    const [v, a] = j.streams;
    console.log(`# FileSink: video ${j.video.packets} packets over ${j.video.seconds.toFixed(3)} s, audio ${j.audio.packets} over ${j.audio.seconds.toFixed(3)} s from ${a?.start_time} s; ${sink.audioNotWritten} packets before the first frame`);
    assert.deepEqual([v?.codec_name, a?.codec_name, a?.channels], ['h264', 'opus', 2], 'the sink makes a stereo track (RTP carries no OpusHead)');
    assert.deepEqual([j.probeErrors, j.decodeStatus, j.decodeErrors], ['', 0, '']);
    assert.ok(Math.abs(j.audio.seconds - j.video.seconds) <= 0.02 * j.video.seconds, `sound ${j.audio.seconds} s, picture ${j.video.seconds} s`);
    const sync = beepsOnFlashes(file);
    console.log(`# flashes ${sync.flashes.join(', ')}; beeps ${sync.onsets.map((t) => t.toFixed(3)).join(', ')}; worst ${sync.worstMs} ms`);
    assert.ok(sync.flashes.length >= 4 && sync.worstMs <= 10, `a beep ${sync.worstMs} ms from its flash`);
    assert.ok(readFileSync(file).includes(Buffer.from('dOps')));
  });
});
