/**
 * Reading frames off FFmpeg's pipe: FLV (Adobe FLV spec v10.1 Annex E, AVC per ISO/IEC 14496-15)
 * and back-to-back JPEGs (ITU-T T.81 Annex B). Golden streams are written out byte by byte from the
 * field layouts, then cut at every possible place; real FFmpeg output is the final judge.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { FlvReader, type EncodedFrame } from '../src/encode/flv.ts';
import { MjpegSplitter } from '../src/encode/mjpeg-stream.ts';
import { buildShareArgs } from '../src/encode/ffmpeg-args.ts';
import { PacketError } from '../src/util/errors.ts';
import { MAX_FRAME_BYTES } from '../src/defaults.ts';
import { skipUnless, which } from './helpers/tools.ts';
import { pushAll, runFfmpeg } from './helpers/chunks.ts';

/** Hex bytes with `#` comments to the end of each line. */
const hex = (s: string) => Buffer.from(s.replace(/#.*$/gm, '').replace(/\s+/g, ''), 'hex');

// ---- A golden FLV stream ---------------------------------------------------------------------
const SPS = '6742c01e';
const PPS = '68ce';
const GOLDEN_FLV = hex(`
  464c56 01 01 00000009                 # FLV header: "FLV", version 1, flags = video, DataOffset 9
  00000000                              # PreviousTagSize0

  12 00000d 000000 00 000000            # script data tag, DataSize 13, ts 0, StreamID 0
  02 000a 6f6e4d65746144617461          # AMF0 string "onMetaData" (skipped)
  00000018                              # PreviousTagSize 11 + 13 = 24

  09 000016 000000 00 000000            # video tag, DataSize 22
  17 00 000000                          # key frame | AVC, sequence header, CompositionTime 0
  01 42 c0 1e ff                        # AVCDecoderConfigurationRecord: v1, profile, compat, level, lengthSizeMinusOne 3
  e1 0004 ${SPS}                        # 1 SPS of 4 bytes
  01 0002 ${PPS}                        # 1 PPS of 2 bytes
  00000021                              # PreviousTagSize 33

  09 000012 000000 00 000000            # video tag, DataSize 18, ts 0
  17 01 000000                          # key frame | AVC, NALU, CompositionTime 0
  00000003 658884                       # IDR slice 1 (type 5)
  00000002 6511                         # IDR slice 2
  0000001d                              # PreviousTagSize 29

  09 00000b 000021 00 000000            # video tag, DataSize 11, ts 33
  27 01 000000                          # inter frame | AVC, NALU
  00000002 419a                         # non-IDR slice (type 1)
  00000016                              # PreviousTagSize 22

  09 00000c 000043 01 000000            # video tag, DataSize 12, ts 0x01000043 (TimestampExtended 1)
  27 01 000002                          # inter frame | AVC, NALU, CompositionTime 2
  00000003 419b01
  00000017                              # PreviousTagSize 23

  08 000001 000050 00 000000            # audio tag, DataSize 1 (skipped)
  af
  0000000c                              # PreviousTagSize 12

  09 000005 000064 00 000000            # video tag, DataSize 5
  17 02 000000                          # AVC end of sequence
  00000010                              # PreviousTagSize 16
`);

const EXPECTED_FLV_FRAMES = [
  { ptsMs: 0, keyframe: true, nalus: [SPS, PPS, '658884', '6511'] },
  { ptsMs: 33, keyframe: false, nalus: ['419a'] },
  { ptsMs: 0x01000043 + 2, keyframe: false, nalus: ['419b01'] },
];

function simple(frames: EncodedFrame[]) {
  return frames.map((f) => ({ ptsMs: f.ptsMs, keyframe: f.keyframe, nalus: f.nalus.map((n) => n.toString('hex')) }));
}

describe('FlvReader: golden stream', () => {
  test('the golden bytes are what the comments say (sizes add up)', () => {
    assert.equal(GOLDEN_FLV.length, 13 + 24 + 4 + 33 + 4 + 29 + 4 + 22 + 4 + 23 + 4 + 12 + 4 + 16 + 4);
  });

  test('whole stream in one push: three frames; the IDR carries SPS and PPS in front', () => {
    const r = new FlvReader();
    assert.deepEqual(simple(r.push(GOLDEN_FLV)), EXPECTED_FLV_FRAMES);
    assert.deepEqual(r.counters, { videoTags: 5, skippedTags: 2, frames: 3 });
    assert.deepEqual(r.avcConfig?.sps.map((b) => b.toString('hex')), [SPS]);
  });

  test('every chunk size 1..N gives the same frames', () => {
    for (let step = 1; step <= GOLDEN_FLV.length; step++) {
      const cuts: number[] = [];
      for (let c = step; c < GOLDEN_FLV.length; c += step) cuts.push(c);
      assert.deepEqual(simple(pushAll(new FlvReader(), GOLDEN_FLV, cuts) as EncodedFrame[]), EXPECTED_FLV_FRAMES, `step ${step}`);
    }
  });

  test('every single cut point gives the same frames, and each frame comes out as soon as its tag ends', () => {
    // Where each frame's tag ends (before its PreviousTagSize): the frame must be out by then.
    const frameTagEnds = [13 + 28 + 37 + 29, 13 + 28 + 37 + 33 + 22, 13 + 28 + 37 + 33 + 26 + 23];
    for (let cut = 0; cut <= GOLDEN_FLV.length; cut++) {
      const r = new FlvReader();
      const first = r.push(GOLDEN_FLV.subarray(0, cut));
      assert.equal(first.length, frameTagEnds.filter((end) => end <= cut).length, `cut ${cut}`);
      assert.deepEqual(simple([...first, ...r.push(GOLDEN_FLV.subarray(cut))]), EXPECTED_FLV_FRAMES);
    }
  });

  test('property: any partition into chunks gives the same frames; input bytes untouched', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: GOLDEN_FLV.length - 1 }), { maxLength: 20 }), (cuts) => {
        const copy = Buffer.from(GOLDEN_FLV);
        const frames = pushAll(new FlvReader(), copy, cuts.sort((a, b) => a - b)) as EncodedFrame[];
        assert.deepEqual(simple(frames), EXPECTED_FLV_FRAMES);
        assert.ok(copy.equals(GOLDEN_FLV));
      }),
    );
  });

  test('a frame whose tag sits in one chunk is a view of it, not a copy', () => {
    const frames = new FlvReader().push(GOLDEN_FLV);
    assert.equal(frames[1].nalus[0].buffer, GOLDEN_FLV.buffer);
  });

  test('first-byte clock: each frame is stamped when its tag began, not when it ended', () => {
    let t = 0;
    const r = new FlvReader(() => t);
    const idrTagStart = 13 + 24 + 4 + 33 + 4;
    t = 1;
    r.push(GOLDEN_FLV.subarray(0, idrTagStart + 1)); // the IDR tag's first byte arrives at t=1
    t = 2;
    const [idr] = r.push(GOLDEN_FLV.subarray(idrTagStart + 1, idrTagStart + 29));
    assert.equal(idr.firstByteAt, 1);
  });
});

describe('FlvReader: malformed streams raise PacketError, stay bounded, and recover', () => {
  function expectPacketError(data: Buffer, re: RegExp) {
    const r = new FlvReader();
    assert.throws(() => r.push(data), (e: Error) => e instanceof PacketError && re.test(e.message));
    // The same reader then reads a good stream from its start.
    assert.deepEqual(simple(r.push(GOLDEN_FLV)), EXPECTED_FLV_FRAMES);
  }

  test('bad signature: rejected on the first wrong byte', () => {
    expectPacketError(hex('464c58'), /signature 464c58/);
    expectPacketError(hex('00'), /signature/);
  });

  test('a tag whose DataSize lies: the PreviousTagSize after it disagrees', () => {
    const lying = Buffer.from(GOLDEN_FLV);
    lying.writeUIntBE(12, 13 + 1, 3); // the script tag says 12 bytes of data, holds 13
    expectPacketError(lying, /PreviousTagSize 1627389952 bytes does not match the previous tag \(23 bytes\)/);
    // A video tag that lies cuts its NAL units short, which is caught even before its trailer.
    const lyingVideo = Buffer.from(GOLDEN_FLV);
    lyingVideo.writeUIntBE(10, 13 + 28 + 37 + 33 + 1, 3); // the first P-frame tag: 10, holds 11
    expectPacketError(lyingVideo, /AVC NALU: need 2 bytes, have 1/);
  });

  test('a DataSize past the frame cap is refused from the tag header alone (nothing buffered)', () => {
    const big = Buffer.concat([GOLDEN_FLV.subarray(0, 13), hex('09 ffffff 000000 00 000000')]);
    expectPacketError(big, new RegExp(`16777215 bytes exceeds the ${MAX_FRAME_BYTES}-byte`));
  });

  test('a NALU length running past its tag', () => {
    const bad = Buffer.from(GOLDEN_FLV);
    bad[13 + 28 + 37 + 11 + 5 + 3] = 0x0a; // first IDR NALU says 10 bytes; 9 follow in the tag
    expectPacketError(bad, /AVC NALU: need 10 bytes, have 9/);
  });

  test('NALU before any sequence header, encrypted tag, unknown tag type, non-AVC codec', () => {
    const head = GOLDEN_FLV.subarray(0, 13);
    expectPacketError(Buffer.concat([head, GOLDEN_FLV.subarray(13 + 28 + 37, 13 + 28 + 37 + 33)]), /before the sequence header/);
    expectPacketError(Buffer.concat([head, hex('29 000001 000000 00 000000 17 00000c')]), /encrypted/);
    expectPacketError(Buffer.concat([head, hex('0b 000001 000000 00 000000 00 0000000c')]), /tag type 11/);
    expectPacketError(Buffer.concat([head, hex('09 000001 000000 00 000000 12 0000000c')]), /CodecID 2/);
  });

  test('property: random bytes after a valid header only ever raise PacketError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), fc.integer({ min: 1, max: 64 }), (junk, step) => {
        const r = new FlvReader();
        const data = Buffer.concat([GOLDEN_FLV.subarray(0, 13 + 28 + 37), Buffer.from(junk)]);
        try {
          for (let i = 0; i < data.length; i += step) r.push(data.subarray(i, i + step));
        } catch (e) {
          assert.ok(e instanceof PacketError, String(e));
        }
      }),
    );
  });
});

// ---- MJPEG -----------------------------------------------------------------------------------
const JPEG_A = hex(`
  ffd8                                  # SOI
  ffe0 0010 4a46494600 0101 00 0001 0001 0000   # APP0 JFIF, length 16
  fffe 0006 ffd9 ffd9                   # COM whose bytes look like EOI: skipped by its length
  ffdb 0005 000102                      # DQT-shaped segment, length 5
  ffdd 0004 0002                        # DRI: restart interval 2
  ffda 0008 01 0100 003f00              # SOS, length 8
  12 ff00 34 ffd0 56 ff00 ff d1 78      # entropy data: stuffed FF00, RST0, FF00, then "ff d1" = RST1
  ffff d9                               # a fill byte, then EOI
`);
const JPEG_B = hex('ffd8 ffda 0002 ab ffd9');
const JPEG_C = hex('ffd8 ffd9');
const MJPEG = Buffer.concat([JPEG_A, JPEG_B, JPEG_C]);

describe('MjpegSplitter', () => {
  const expected = [JPEG_A, JPEG_B, JPEG_C].map((b) => b.toString('hex'));
  const split = (cuts: number[]) => (pushAll(new MjpegSplitter(), MJPEG, cuts) as Buffer[]).map((b) => b.toString('hex'));

  test('golden: three images, split at EOI only (not at FFD9 inside a segment, nor at FF00/RSTn)', () => {
    assert.deepEqual(split([]), expected);
  });

  test('every chunk size and every single cut point give the same images', () => {
    for (let step = 1; step <= MJPEG.length; step++) {
      const cuts: number[] = [];
      for (let c = step; c < MJPEG.length; c += step) cuts.push(c);
      assert.deepEqual(split(cuts), expected, `step ${step}`);
    }
    for (let cut = 0; cut <= MJPEG.length; cut++) {
      const s = new MjpegSplitter();
      const first = s.push(MJPEG.subarray(0, cut));
      // An image comes out in the very push that delivers its EOI.
      assert.equal(first.length, [JPEG_A.length, JPEG_A.length + JPEG_B.length, MJPEG.length].filter((e) => e <= cut).length);
      assert.deepEqual([...first, ...s.push(MJPEG.subarray(cut))].map((b) => b.toString('hex')), expected);
    }
  });

  test('property: any partition gives the same images', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: MJPEG.length - 1 }), { maxLength: 16 }), (cuts) => {
        assert.deepEqual(split(cuts.sort((a, b) => a - b)), expected);
      }),
    );
  });

  test('malformed: garbage before SOI, a length under 2, a second SOI; the splitter then recovers', () => {
    for (const [bad, re] of [
      [hex('00ffd8'), /byte 0x00 where an SOI/],
      [hex('ffd8 ffdb 0001'), /length 1 bytes, at least 2/],
      [hex('ffd8 ffda 0002 11 ffd8'), /unexpected FFd8/],
      [hex('ffd8 12'), /where a marker/],
    ] as const) {
      const s = new MjpegSplitter();
      assert.throws(() => s.push(bad), (e: Error) => e instanceof PacketError && re.test(e.message), bad.toString('hex'));
      assert.deepEqual(s.push(MJPEG).map((b) => b.toString('hex')), expected);
    }
  });

  test('bounded: an image that never ends is refused once past the frame cap', () => {
    const s = new MjpegSplitter();
    s.push(hex('ffd8 ffda 0002'));
    const mb = Buffer.alloc(1024 * 1024, 0x11);
    let pushed = 0;
    assert.throws(() => {
      for (;;) {
        s.push(mb);
        pushed += mb.length;
        assert.ok(pushed <= MAX_FRAME_BYTES, 'should have thrown by now');
      }
    }, PacketError);
    assert.deepEqual(s.push(MJPEG).map((b) => b.toString('hex')), expected);
  });
});

// ---- Real FFmpeg -----------------------------------------------------------------------------

describe('real FFmpeg as the judge', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  const FRAMES = 30;
  const capture = { source: 'test', fps: 60, env: {} };
  const size = { width: 320, height: 240 };

  test(`testsrc → FLV pipe → FlvReader: exactly ${FRAMES} frames, keyframes carry SPS/PPS, ffprobe decodes them`, async () => {
    const args = buildShareArgs(capture, { codec: 'h264', bitrateKbps: 800, fps: 60, gop: 10, quality: 5, size });
    args.splice(args.lastIndexOf('-f'), 0, '-frames:v', String(FRAMES));
    const reader = new FlvReader();
    const frames: EncodedFrame[] = [];
    await runFfmpeg(args, (b) => frames.push(...reader.push(b)));
    assert.equal(frames.length, FRAMES);
    const keys = frames.filter((f) => f.keyframe);
    assert.equal(keys.length, FRAMES / 10);
    for (const k of keys) assert.deepEqual(k.nalus.slice(0, 2).map((n) => n[0] & 0x1f), [7, 8]);
    for (let i = 1; i < frames.length; i++) assert.ok(frames[i].ptsMs > frames[i - 1].ptsMs);

    // Write them out as Annex B: FFmpeg must count the same frames at the same size.
    const dir = mkdtempSync(join(tmpdir(), 'udpcast-flv-'));
    try {
      const file = join(dir, 'out.h264');
      writeFileSync(file, Buffer.concat(frames.flatMap((f) => f.nalus.flatMap((n) => [hex('00000001'), n]))));
      const probe = spawnSync(which('ffprobe')!, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'csv=p=0', file], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(probe.stdout.trim(), `320,240,${FRAMES}`, probe.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test(`testsrc → MJPEG pipe → MjpegSplitter: exactly ${FRAMES} JPEGs, each decodable`, async () => {
    const args = buildShareArgs(capture, { codec: 'mjpeg', bitrateKbps: 800, fps: 60, gop: 10, quality: 5, size });
    args.splice(args.lastIndexOf('-f'), 0, '-frames:v', String(FRAMES));
    const splitter = new MjpegSplitter();
    const jpegs: Buffer[] = [];
    await runFfmpeg(args, (b) => jpegs.push(...splitter.push(b)));
    assert.equal(jpegs.length, FRAMES);
    const dir = mkdtempSync(join(tmpdir(), 'udpcast-mjpeg-'));
    try {
      const file = join(dir, 'out.mjpeg');
      writeFileSync(file, Buffer.concat(jpegs));
      const probe = spawnSync(which('ffprobe')!, ['-v', 'error', '-f', 'mjpeg', '-count_frames', '-show_entries', 'stream=width,height,nb_read_frames', '-of', 'csv=p=0', file], { encoding: 'utf8', timeout: 10_000 });
      assert.equal(probe.stdout.trim(), `320,240,${FRAMES}`, probe.stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
