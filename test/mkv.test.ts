/**
 * The Matroska writer: EBML sizes and the SimpleBlock built byte by byte from RFC 8794 / RFC 9559,
 * then FFmpeg as the judge: real H.264 and MJPEG written with a 2 s freeze must decode without an
 * error and last as long as their timestamps say, also when the writer was killed mid-stream.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MkvWriter, vint } from '../src/player/mkv.ts';
import { opusPacketSamples } from '../src/codecs/opus/opus.ts';
import { OggOpusReader } from '../src/encode/ogg.ts';
import { unlessMalformed } from '../src/util/errors.ts';
import { PacketError } from '../src/util/errors.ts';
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

// ---- Opus audio on track 2 -------------------------------------------------------------------

// An OpusHead built from RFC 7845 §5.1's layout: mono, pre-skip 312 (6.5 ms, what libopus uses),
// input rate 48000, gain 0, mapping family 0.
const HEAD = Buffer.concat([
  Buffer.from('OpusHead', 'latin1'),
  Buffer.from([1, 1]), // version 1, 1 channel
  Buffer.from([0x38, 0x01]), // pre-skip 312, little-endian
  Buffer.from([0x80, 0xbb, 0x00, 0x00]), // input sample rate 48000
  Buffer.from([0x00, 0x00, 0x00]), // output gain 0, mapping family 0
]);
// An Opus packet as the writer sees it: TOC config 31 (CELT, fullband, 20 ms), code 0 (one frame).
const OPUS = Buffer.from([0xf8, 0xff, 0xfe]);
const float64 = (v: number) => {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(v);
  return b;
};
const hasCluster = (b: Buffer[]) => Buffer.concat(b).includes(Buffer.from('1f43b675', 'hex'));

describe('Opus packet length from the TOC byte (RFC 6716 §3.1, §3.4)', () => {
  const cases: [string, number[], number | undefined][] = [
    ['SILK NB 10 ms, one frame', [0x00], 480],
    ['SILK NB 20 ms', [0x08], 960],
    ['Hybrid FB 20 ms', [0x78], 960],
    ['CELT FB 20 ms', [0xf8], 960],
    ['CELT NB 2.5 ms, code 1: two frames', [0x81, 0], 240],
    ['CELT FB 20 ms, code 3: three frames', [0xfb, 0x03], 2880],
    ['CELT FB 2.5 ms, code 3: 48 frames = 120 ms, the most allowed', [0xe3, 0x30], 5760],
    ['code 3, seven 20 ms frames = 140 ms (R5)', [0xfb, 0x07], undefined],
    ['code 3 with no frames (R5)', [0xfb, 0x00], undefined],
    ['code 3 without its count byte', [0xfb], undefined],
    ['empty (R1)', [], undefined],
  ];
  for (const [name, bytes, samples] of cases) {
    test(name, () => assert.equal(unlessMalformed(() => opusPacketSamples(Buffer.from(bytes)), undefined), samples));
  }
});

describe('MkvWriter with an Opus track', () => {
  test('no audio asked for: the bytes are what the writer gave before audio existed', () => {
    const seq: [boolean, number][] = [[false, 0], [true, 9000], [false, 12000], [false, 15000], [false, 90 * 40000], [true, 90 * 40100], [false, 90 * 40133], [true, 90 * 80000]];
    const run = (w: MkvWriter) => Buffer.concat(seq.flatMap(([keyframe, pts]) => w.write({ codec: 'h264', data: au, keyframe, pts })));
    const plain = run(new MkvWriter());
    // Taken from the writer before the audio track was added: 517 bytes, header, 3 clusters, 7 blocks.
    assert.equal(plain.length, 517);
    assert.equal(createHash('sha256').update(plain).digest('hex'), 'aa432f2559a1ea7c90a5a78b7a9e61ff6f4f1c82f3df1e01eed6ee446d75460c');
    assert.deepEqual(run(new MkvWriter({})), plain);
    assert.deepEqual(run(new MkvWriter({ audio: undefined })), plain);
  });

  test('the header: the same bytes up to Tracks, then track 1 unchanged and track 2 by the A_OPUS mapping', () => {
    const plainWriter = new MkvWriter();
    const plain = Buffer.concat(plainWriter.write({ codec: 'h264', data: au, keyframe: true, pts: 0 }));
    const withAudio = new MkvWriter({ audio: { head: HEAD } });
    const head = Buffer.concat(withAudio.write({ codec: 'h264', data: au, keyframe: true, pts: 0 }));
    const tracksId = Buffer.from('1654ae6b', 'hex');
    const at = plain.indexOf(tracksId);
    assert.ok(at > 0);
    assert.deepEqual(head.subarray(0, at), plain.subarray(0, at), 'EBML header, Segment and Info unchanged');
    assert.equal(withAudio.durationPatch()!.at, plainWriter.durationPatch()!.at);
    // The video TrackEntry as the plain writer wrote it (Tracks' size is one byte here: < 127).
    assert.ok(plain[at + 4] & 0x80, 'a one-byte size');
    const videoEntry = plain.subarray(at + 5, at + 5 + (plain[at + 4] & 0x7f));
    assert.equal(videoEntry[0], 0xae);
    const audioBody = Buffer.concat([
      Buffer.from([0xd7, 0x81, 0x02]), // TrackNumber 2
      Buffer.from([0x73, 0xc5, 0x81, 0x02]), // TrackUID 2
      Buffer.from([0x83, 0x81, 0x02]), // TrackType 2: audio (RFC 9559 §5.1.4.1.3)
      Buffer.from([0x9c, 0x81, 0x00]), // FlagLacing 0
      Buffer.from([0x86, 0x86]), Buffer.from('A_OPUS'), // CodecID
      Buffer.from([0x63, 0xa2, 0x93]), HEAD, // CodecPrivate: the 19-byte OpusHead (RFC 7845 §5.1)
      Buffer.from([0x56, 0xaa, 0x83, 0x63, 0x2e, 0xa0]), // CodecDelay: 312 × 1e9 / 48000 = 6,500,000 ns
      Buffer.from([0x56, 0xbb, 0x84, 0x04, 0xc4, 0xb4, 0x00]), // SeekPreRoll: 80,000,000 ns
      Buffer.from([0xe1, 0x8d]), // Audio, 13 bytes:
      Buffer.from([0xb5, 0x88]), float64(48000), // SamplingFrequency 48000.0
      Buffer.from([0x9f, 0x81, 0x01]), // Channels 1
    ]);
    const audioEntry = Buffer.concat([Buffer.from([0xae]), vint(audioBody.length), audioBody]);
    const tracksBody = Buffer.concat([videoEntry, audioEntry]);
    const tracks = Buffer.concat([tracksId, vint(tracksBody.length), tracksBody]);
    assert.deepEqual(head.subarray(at, at + tracks.length), tracks);
    // Then the same first cluster and video block as without audio.
    assert.deepEqual(head.subarray(at + tracks.length), plain.subarray(at + 5 + videoEntry.length));
  });

  test('audio before the first keyframe, or timed before the first picture, gives no bytes and is counted', () => {
    const w = new MkvWriter({ audio: { head: HEAD } });
    assert.deepEqual(w.writeAudio({ data: OPUS, pts: 0 }), []);
    assert.deepEqual(w.write({ codec: 'h264', data: au, keyframe: false, pts: 3000 }), []);
    assert.deepEqual(w.writeAudio({ data: OPUS, pts: 4800 }), []);
    assert.equal(w.audioDropped.beforeStart, 2);
    assert.ok(w.write({ codec: 'h264', data: au, keyframe: true, pts: 9000 }).length > 0);
    // 20 ms before the first picture (time zero): a negative block time (RFC 9559 §11.2).
    assert.deepEqual(w.writeAudio({ data: OPUS, pts: 9000 - 1800 }), []);
    assert.equal(w.audioDropped.beforeStart, 3);
    // 20 ms after it: a SimpleBlock on track 2 in the open cluster, +20 ms, keyframe, the packet.
    assert.deepEqual(
      Buffer.concat(w.writeAudio({ data: OPUS, pts: 9000 + 1800 })),
      Buffer.from([0xa3, 0x87, 0x82, 0x00, 0x14, 0x80, ...OPUS]),
    );
    assert.deepEqual(w.audioDropped, { beforeStart: 3, tooOld: 0, malformed: 0, noTrack: 0 });
  });

  test('audio outside the int16 reach of the cluster: a new cluster ahead, a negative offset behind, never a cluster back in time', () => {
    const w = new MkvWriter({ audio: { head: HEAD } });
    w.write({ codec: 'h264', data: au, keyframe: true, pts: 0 });
    // 40 s on, the picture frozen: 40000 ms does not fit +32767, so a cluster at 40000 (0x9c40) opens.
    assert.deepEqual(
      Buffer.concat(w.writeAudio({ data: OPUS, pts: 90 * 40000 })),
      Buffer.concat([Buffer.from('1f43b67501ffffffffffffff', 'hex'), Buffer.from([0xe7, 0x82, 0x9c, 0x40]), Buffer.from([0xa3, 0x87, 0x82, 0x00, 0x00, 0x80, ...OPUS])]),
    );
    // 10 ms older than that cluster: -10 ms in it, no new cluster.
    assert.deepEqual(Buffer.concat(w.writeAudio({ data: OPUS, pts: 90 * 39990 })), Buffer.from([0xa3, 0x87, 0x82, 0xff, 0xf6, 0x80, ...OPUS]));
    // A video keyframe 5 ms before the cluster the audio opened: its own cluster, still at 40000, the frame at -5 ms.
    const key = Buffer.concat(w.write({ codec: 'h264', data: au, keyframe: true, pts: 90 * 39995 }));
    assert.deepEqual(key.subarray(0, 16), Buffer.concat([Buffer.from('1f43b67501ffffffffffffff', 'hex'), Buffer.from([0xe7, 0x82, 0x9c, 0x40])]));
    const payload = annexBToLengthPrefixed(au);
    assert.deepEqual(key.subarray(16), Buffer.concat([Buffer.from([0xa3]), vint(4 + payload.length), Buffer.from([0x81, 0xff, 0xfb, 0x80]), payload]));
    // A non-keyframe just behind it goes in the same cluster too.
    assert.ok(!hasCluster(w.write({ codec: 'h264', data: au, keyframe: false, pts: 90 * 39998 })));
    // 35 s older than the cluster: no int16 offset reaches it, and a cluster may not go back: dropped.
    assert.deepEqual(w.writeAudio({ data: OPUS, pts: 90 * 5000 }), []);
    assert.equal(w.audioDropped.tooOld, 1);
    // The writer goes on: 32767 ms after the cluster still fits, 32768 opens the next one.
    assert.ok(!hasCluster(w.writeAudio({ data: OPUS, pts: 90 * (40000 + 32767) })));
    assert.ok(hasCluster(w.writeAudio({ data: OPUS, pts: 90 * (40000 + 32768) })));
  });

  test('malformed packets and audio without an audio track are counted, never thrown; a bad OpusHead is a PacketError', () => {
    const w = new MkvWriter({ audio: { head: HEAD } });
    w.write({ codec: 'h264', data: au, keyframe: true, pts: 0 });
    for (const bad of [[], [0xfb], [0xfb, 0x00], [0xfb, 0x07]]) assert.deepEqual(w.writeAudio({ data: Buffer.from(bad), pts: 1800 }), []);
    assert.equal(w.audioDropped.malformed, 4);
    assert.ok(w.writeAudio({ data: OPUS, pts: 1800 }).length > 0, 'and a good packet after them is written');
    const plain = new MkvWriter();
    plain.write({ codec: 'h264', data: au, keyframe: true, pts: 0 });
    assert.deepEqual(plain.writeAudio({ data: OPUS, pts: 1800 }), []);
    assert.equal(plain.audioDropped.noTrack, 1);
    const mutate = (at: number, value: number) => Buffer.from(HEAD).fill(value, at, at + 1);
    for (const [why, head] of [
      ['18 bytes', HEAD.subarray(0, 18)],
      ['not OpusHead', Buffer.concat([Buffer.from('OpusTags', 'latin1'), HEAD.subarray(8)])],
      ['major version 1', mutate(8, 0x10)],
      ['no channels', mutate(9, 0)],
      ['3 channels in family 0', mutate(9, 3)],
      ['family 1 without its table', mutate(18, 1)],
    ] as const) {
      assert.throws(() => new MkvWriter({ audio: { head } }), PacketError, why);
    }
  });

  test('the duration patch runs to the end of the audio when it ends after the video', () => {
    const w = new MkvWriter({ audio: { head: HEAD } });
    w.write({ codec: 'h264', data: au, keyframe: true, pts: 0 });
    w.write({ codec: 'h264', data: au, keyframe: false, pts: 3000 });
    w.writeAudio({ data: OPUS, pts: 0 });
    assert.equal(w.durationPatch()!.bytes.readDoubleBE(3), 66, 'audio ending first (13.5 ms) leaves the video\'s 66 ms');
    w.writeAudio({ data: OPUS, pts: 90 * 100 });
    // 100 ms + 20 ms of packet - 6.5 ms of pre-skip (CodecDelay) = 113.5 ms as played.
    assert.equal(w.durationPatch()!.bytes.readDoubleBE(3), 113.5);
  });
});

function run(cmd: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('FFmpeg reads video and Opus audio that MkvWriter interleaved', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  test('2 s of H.264 and 2 s of a 1 kHz sine: two streams, no decode errors, audio as long as the video (2%)', () => {
    // 60 frames at 30 fps of testsrc2 through x264 (-bf 0, an AUD before each access unit, split there).
    const frames = encodeFrames('h264', 60);
    const ogg = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', 'sine=frequency=1000:sample_rate=48000:duration=2',
      '-c:a', 'libopus', '-frame_duration', '20', '-page_duration', '20000', '-f', 'opus', '-'], { maxBuffer: 16 * 1024 * 1024, timeout: 60_000 });
    assert.equal(ogg.status, 0, ogg.stderr?.toString());
    const reader = new OggOpusReader();
    const packets = reader.push(ogg.stdout).map((p) => p.data);
    const head = reader.head!;
    assert.equal(head.toString('latin1', 0, 8), 'OpusHead');

    // Each packet starts where the samples before it end: 48 kHz samples to 90 kHz ticks.
    type Item = { pts: number; video?: (typeof frames)[number]; audio?: Buffer };
    const items: Item[] = frames.map((f, i) => ({ pts: i * 3000, video: f }));
    let samples = 0;
    for (const p of packets) {
      items.push({ pts: (samples * 90_000) / 48_000, audio: p });
      samples += opusPacketSamples(p)!;
    }
    // By time; at a tie the picture first, so the file starts (its first keyframe) before audio at 0.
    items.sort((a, b) => a.pts - b.pts || (a.video ? -1 : 0) - (b.video ? -1 : 0));

    const file = join(dir, 'av.mkv');
    const w = new MkvWriter({ audio: { head } });
    const fd = openSync(file, 'w');
    for (const it of items) {
      const out = it.video ? w.write({ codec: 'h264', data: it.video.data, keyframe: it.video.keyframe, pts: it.pts }) : w.writeAudio({ data: it.audio!, pts: it.pts });
      for (const b of out) writeSync(fd, b);
    }
    const p = w.durationPatch()!;
    writeSync(fd, p.bytes, 0, p.bytes.length, p.at);
    closeSync(fd);
    assert.deepEqual(w.audioDropped, { beforeStart: 0, tooOld: 0, malformed: 0, noTrack: 0 });

    const streams = run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height,sample_rate,channels', '-of', 'json', file]);
    const s = (JSON.parse(streams.stdout) as { streams: Record<string, string | number>[] }).streams;
    assert.equal(s.length, 2, streams.stdout);
    assert.deepEqual([s[0].codec_type, s[0].codec_name, s[0].width, s[0].height], ['video', 'h264', 320, 240]);
    assert.deepEqual([s[1].codec_type, s[1].codec_name, s[1].sample_rate, s[1].channels], ['audio', 'opus', '48000', 1]);

    const decode = run('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-']);
    assert.equal(decode.status, 0);
    assert.equal(decode.stderr, '', 'FFmpeg decodes both streams without an error');

    // Each stream's length as decoded, from its frames' times: SimpleBlocks carry no durations, so
    // a picture lasts the mean frame interval and an audio frame its samples (pre-skip already cut).
    const decoded = run('ffprobe', ['-v', 'error', '-show_entries', 'frame=stream_index,pts_time,nb_samples', '-of', 'json', file]);
    const all = (JSON.parse(decoded.stdout) as { frames: { stream_index: number; pts_time: string; nb_samples?: number }[] }).frames;
    const times = (index: number) => all.filter((f) => f.stream_index === index).map((f) => ({ pts: Number(f.pts_time), samples: f.nb_samples ?? 0 }));
    const v = times(0);
    const a = times(1);
    assert.equal(v.length, 60);
    const video = ((v[v.length - 1].pts - v[0].pts) * v.length) / (v.length - 1);
    const audio = a[a.length - 1].pts + a[a.length - 1].samples / 48_000 - a[0].pts;
    assert.ok(Math.abs(video - 2.0) < 0.04, `video ${video} s, expected 2.0`);
    assert.ok(Math.abs(a[0].pts - v[0].pts) < 0.02, `audio starts at ${a[0].pts} s, video at ${v[0].pts} s`);
    assert.ok(Math.abs(audio - video) / video < 0.02, `audio ${audio} s, video ${video} s`);
  });
});
