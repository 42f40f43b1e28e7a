/**
 * The Matroska writer: EBML sizes and the SimpleBlock built byte by byte from RFC 8794 / RFC 9559,
 * then FFmpeg as the judge: real H.264 and MJPEG written with a 2 s freeze must decode without an
 * error and last as long as their timestamps say, also when the writer was killed mid-stream.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MkvWriter, vint } from '../src/player/mkv.ts';
import { avcConfig, annexBToLengthPrefixed } from '../src/codecs/h264/avc.ts';
import { codec } from '../src/codecs/registry.ts';
import { skipUnless } from './helpers/tools.ts';
import { encodeFrames, probe } from './helpers/media.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-mkv-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// A hand-made access unit: SPS (Baseline, 320x240), PPS, IDR slice. Enough for the structure; the
// FFmpeg tests below use real encoder output.
const SPS = Buffer.from('6742c01e8c8d40a0fd00f0884535', 'hex'); // profile 66, level 30, 320x240
const PPS = Buffer.from('68ce3c80', 'hex');
const IDR = Buffer.from('65888040', 'hex');
const au = Buffer.concat([Buffer.from([0, 0, 0, 1]), SPS, Buffer.from([0, 0, 0, 1]), PPS, Buffer.from([0, 0, 1]), IDR]);

describe('EBML variable-length sizes (RFC 8794 §4)', () => {
  test('shortest form, marker bit by length', () => {
    assert.deepEqual(vint(0), Buffer.from([0x80]));
    assert.deepEqual(vint(1), Buffer.from([0x81]));
    assert.deepEqual(vint(126), Buffer.from([0xfe]));
    // 127 is all ones in one byte, which means "unknown": it takes two.
    assert.deepEqual(vint(127), Buffer.from([0x40, 0x7f]));
    assert.deepEqual(vint(16382), Buffer.from([0x7f, 0xfe]));
    assert.deepEqual(vint(16383), Buffer.from([0x20, 0x3f, 0xff]));
    assert.deepEqual(vint(2 ** 32), Buffer.from([0x09, 0x00, 0x00, 0x00, 0x00]));
  });
});

describe('AVC decoder configuration (ISO/IEC 14496-15 §5.3.3.1)', () => {
  test('record fields from the SPS; NAL units length-prefixed', () => {
    const c = avcConfig(au)!;
    const expected = Buffer.concat([
      Buffer.from([1, 66, 0xc0, 30, 0xff, 0xe1]),
      Buffer.from([0, SPS.length]), SPS,
      Buffer.from([1, 0, PPS.length]), PPS,
    ]);
    assert.deepEqual(c.record, expected);
    assert.deepEqual({ width: c.width, height: c.height }, { width: 320, height: 240 });
    assert.deepEqual(
      annexBToLengthPrefixed(au),
      Buffer.concat([Buffer.from([0, 0, 0, SPS.length]), SPS, Buffer.from([0, 0, 0, PPS.length]), PPS, Buffer.from([0, 0, 0, IDR.length]), IDR]),
    );
  });

  test('no SPS or PPS: no configuration; a JPEG size from its SOF0', () => {
    assert.equal(avcConfig(Buffer.concat([Buffer.from([0, 0, 1]), IDR])), undefined);
    const jpeg = Buffer.from('ffd8ffdb0002ffc0000b0800f0014001011100ffda', 'hex');
    assert.deepEqual(codec('mjpeg').frameSize(jpeg), { width: 320, height: 240 });
    assert.equal(codec('mjpeg').frameSize(Buffer.from('ffd8ffda', 'hex')), undefined);
  });
});

describe('MkvWriter', () => {
  test('nothing before the first keyframe; then header, cluster, SimpleBlock', () => {
    const w = new MkvWriter();
    assert.deepEqual(w.write({ codec: 'h264', data: au, keyframe: false, pts: 0 }), []);
    const first = Buffer.concat(w.write({ codec: 'h264', data: au, keyframe: true, pts: 9000 }));
    assert.deepEqual(first.subarray(0, 4), Buffer.from('1a45dfa3', 'hex'), 'EBML header first');
    assert.ok(first.includes(Buffer.from('V_MPEG4/ISO/AVC')));
    assert.ok(first.includes(avcConfig(au)!.record), 'avcC as CodecPrivate');
    // A cluster of unknown size at time 0, then the block.
    const cluster = first.indexOf(Buffer.from('1f43b67501ffffffffffffff', 'hex'));
    assert.ok(cluster > 0);
    const payload = annexBToLengthPrefixed(au);
    const block = Buffer.concat([
      Buffer.from([0xe7, 0x81, 0x00]), // Timestamp 0
      Buffer.from([0xa3]), vint(4 + payload.length), // SimpleBlock
      Buffer.from([0x81, 0x00, 0x00, 0x80]), // track 1, +0 ms, keyframe
      payload,
    ]);
    assert.deepEqual(first.subarray(cluster + 12), block);
    // 3000 ticks later (33.3 ms): same cluster, +33 ms, not a keyframe.
    const next = Buffer.concat(w.write({ codec: 'h264', data: au, keyframe: false, pts: 12000 }));
    assert.deepEqual(next.subarray(0, 1 + vint(4 + payload.length).length + 4), Buffer.concat([Buffer.from([0xa3]), vint(4 + payload.length), Buffer.from([0x81, 0x00, 33, 0x00])]));
  });

  test('a new cluster at each keyframe and before the 16-bit block time overflows', () => {
    const w = new MkvWriter();
    const clusters = (b: Buffer[]) => Buffer.concat(b).includes(Buffer.from('1f43b675', 'hex'));
    assert.ok(clusters(w.write({ codec: 'h264', data: au, keyframe: true, pts: 0 })));
    assert.ok(!clusters(w.write({ codec: 'h264', data: au, keyframe: false, pts: 90 * 32000 })));
    assert.ok(clusters(w.write({ codec: 'h264', data: au, keyframe: false, pts: 90 * 33000 })));
    assert.ok(clusters(w.write({ codec: 'h264', data: au, keyframe: true, pts: 90 * 33100 })));
  });

  test('a malformed access unit gives no bytes, and the writer goes on with good ones', () => {
    const w = new MkvWriter();
    assert.deepEqual(w.write({ codec: 'h264', data: Buffer.from([1, 2, 3, 0, 0, 1, 0x65]), keyframe: true, pts: 0 }), []);
    assert.ok(Buffer.concat(w.write({ codec: 'h264', data: au, keyframe: true, pts: 3000 })).subarray(0, 4).equals(Buffer.from('1a45dfa3', 'hex')));
    assert.deepEqual(w.write({ codec: 'h264', data: Buffer.from([9, 9]), keyframe: false, pts: 6000 }), []);
    assert.ok(w.write({ codec: 'h264', data: au, keyframe: false, pts: 9000 }).length > 0);
  });

  test('the duration patch lands on the Void the header kept', () => {
    const w = new MkvWriter();
    const head = Buffer.concat(w.write({ codec: 'h264', data: au, keyframe: true, pts: 0 }));
    w.write({ codec: 'h264', data: au, keyframe: false, pts: 3000 });
    const p = w.durationPatch()!;
    assert.equal(head[p.at], 0xec, 'a Void element where the Duration goes');
    assert.equal(p.bytes.length, 11);
    assert.deepEqual(p.bytes.subarray(0, 3), Buffer.from([0x44, 0x89, 0x88]));
    assert.equal(p.bytes.readDoubleBE(3), 66, 'last frame at 33 ms + one frame of 33 ms');
  });
});

describe('FFmpeg reads what MkvWriter writes', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  for (const codec of ['h264', 'mjpeg'] as const) {
    test(`${codec}: 60 frames, a 2 s freeze after frame 30, duration patched: every frame decodes, 4 s long`, () => {
      const frames = encodeFrames(codec, 60);
      const file = join(dir, `freeze-${codec}.mkv`);
      const w = new MkvWriter();
      const fd = openSync(file, 'w');
      frames.forEach((f, i) => {
        for (const b of w.write({ codec, data: f.data, keyframe: f.keyframe, pts: i * 3000 + (i >= 30 ? 180_000 : 0) })) writeSync(fd, b);
      });
      const p = w.durationPatch()!;
      writeSync(fd, p.bytes, 0, p.bytes.length, p.at);
      closeSync(fd);
      const r = probe(file);
      assert.equal(r.errors, '');
      assert.equal(r.codec, codec);
      assert.equal(r.frames, 60);
      assert.ok(Math.abs(r.duration! - 4.0) < 0.04, `duration ${r.duration} s, expected 4.0`);
    });
  }

  test('cut off mid-stream (a killed watch): the frames before the cut still decode', () => {
    const frames = encodeFrames('h264', 60);
    const w = new MkvWriter();
    const parts: Buffer[] = [];
    frames.forEach((f, i) => parts.push(...w.write({ codec: 'h264', data: f.data, keyframe: f.keyframe, pts: i * 3000 })));
    const all = Buffer.concat(parts);
    const file = join(dir, 'cut.mkv');
    writeFileSync(file, all.subarray(0, Math.floor(all.length * 0.6)));
    const r = probe(file);
    assert.ok(r.frames >= 30, `${r.frames} frames decoded from 60% of the bytes`);
    assert.equal(r.codec, 'h264');
  });
});
