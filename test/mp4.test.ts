/**
 * Fragmented MP4 (ISO/IEC 14496-12 §8.8): a golden stream walked box by box, one fragment and the
 * ftyp written out byte by byte from the ISO field layouts, then real FFmpeg as the judge of files
 * made from x264 and MJPEG output with a 2 s freeze, whole and cut short as a SIGKILL leaves them.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mp4Writer, LONE_FRAME_TICKS, SAMPLE_FLAGS_NON_SYNC, SAMPLE_FLAGS_SYNC } from '../src/player/mp4.ts';
import { annexBToLengthPrefixed, avcConfig } from '../src/codecs/h264/avc.ts';
import type { ContainerCodec, ContainerFrame } from '../src/player/container.ts';
import { VIDEO_CLOCK_RATE } from '../src/defaults.ts';
import { skipUnless } from './helpers/tools.ts';
import { encodeFrames, probe } from './helpers/media.ts';

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
