/**
 * Every codec in the registry, through the Codec interface alone: what adding a codec must pass.
 * FFmpeg encodes a few pictures with the codec's own arguments (Codec.ffmpeg), our reader splits
 * them, the codec's packetizer and depacketizer carry them over RTP, and ffprobe decodes the
 * Matroska file written from what came out.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { CODECS, CODEC_NAMES, codec, codecOfPayloadType } from '../src/codecs/registry.ts';
import { DEFAULT_PAYLOAD_LIMIT } from '../src/defaults.ts';
import { READERS } from '../src/encode/encoder.ts';
import { MkvWriter } from '../src/player/mkv.ts';
import { parseRtp } from '../src/rtp/packet.ts';
import { startsKeyframe } from '../src/transport/keyframe.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { buildSdp } from '../src/transport/sdp.ts';
import { probe } from './helpers/media.ts';
import { skipUnless } from './helpers/tools.ts';

const FRAMES = 6;
const WIDTH = 320;
const HEIGHT = 240;

test('the registry: names match their keys; payload types and raw extensions are unique', () => {
  for (const [key, c] of Object.entries(CODECS)) {
    assert.equal(c.name, key);
    assert.equal(codecOfPayloadType(c.payloadType), c);
  }
  const pts = CODEC_NAMES.map((n) => codec(n).payloadType);
  assert.equal(new Set(pts).size, pts.length);
  const exts = CODEC_NAMES.flatMap((n) => codec(n).rawExtensions);
  assert.equal(new Set(exts).size, exts.length);
  assert.equal(codecOfPayloadType(127), undefined);
});

/** The units of each frame FFmpeg wrote with the codec's arguments, split by the reader it names (the encoder's table). */
function encode(name: (typeof CODEC_NAMES)[number]): { units: Buffer[]; keyframe: boolean }[] {
  const enc = codec(name).ffmpeg({ bitrateKbps: 1000, fps: 30, gop: 3 });
  const args = ['-nostdin', '-v', 'error', '-f', 'lavfi', '-i', `testsrc2=size=${WIDTH}x${HEIGHT}:rate=30`, '-frames:v', String(FRAMES)];
  const r = spawnSync('ffmpeg', [...enc.global, ...args, ...(enc.filters.length ? ['-vf', enc.filters.join(',')] : []), ...enc.output], {
    maxBuffer: 64 * 1024 * 1024,
    timeout: 60_000,
  });
  assert.equal(r.status, 0, r.stderr?.toString());
  return READERS[enc.reader](30).push(r.stdout);
}

for (const name of CODEC_NAMES) {
  describe(`codec ${name}`, { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
    test('FFmpeg → packetizer → RTP → depacketizer → Matroska that ffprobe decodes whole', () => {
      const c = codec(name);
      const frames = encode(name);
      assert.equal(frames.length, FRAMES);
      assert.ok(frames[0].keyframe, 'the stream starts with a keyframe');

      const packetizer = c.packetizer({ payloadLimit: DEFAULT_PAYLOAD_LIMIT });
      const sender = new RtpSender({ payloadType: c.payloadType });
      const depacketizer = c.depacketizer();
      const mkv = new MkvWriter();
      const file: Buffer[] = [];
      let out = 0;
      frames.forEach((f, i) => {
        const datagrams = sender.frame(packetizer.packetize(f.units), i * 3000).map((d) => Buffer.concat(d));
        // The relay's keyframe test, from the first packet's payload alone.
        assert.equal(startsKeyframe(datagrams[0]), f.keyframe, `frame ${i}: keyframe test`);
        for (const d of datagrams) {
          for (const whole of depacketizer.pushAll(parseRtp(d))) {
            assert.equal(whole.keyframe, f.keyframe);
            if (whole.keyframe) assert.deepEqual(c.frameSize(whole.data), { width: WIDTH, height: HEIGHT });
            file.push(...mkv.write({ codec: name, data: whole.data, keyframe: whole.keyframe, pts: i * 3000 }));
            out++;
          }
        }
      });
      assert.equal(out, FRAMES, 'every frame came out whole');

      const dir = mkdtempSync(path.join(tmpdir(), 'udpcast-codec-'));
      try {
        const mkvPath = path.join(dir, 'out.mkv');
        writeFileSync(mkvPath, Buffer.concat(file));
        const p = probe(mkvPath);
        assert.equal(p.errors, '');
        assert.equal(p.frames, FRAMES);
        assert.equal(p.width, WIDTH);
        assert.equal(p.height, HEIGHT);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
}

for (const name of CODEC_NAMES) {
  test(`${name}: an SDP names the payload type, rtpmap and clock rate`, () => {
    const c = codec(name);
    const sdp = buildSdp({ codec: name, address: '127.0.0.1', port: 5004 });
    assert.match(sdp, new RegExp(`^m=video 5004 RTP/AVP ${c.payloadType}\\r$`, 'm'));
    assert.match(sdp, new RegExp(`^a=rtpmap:${c.payloadType} ${c.rtpmapName}/${c.clockRate}\\r$`, 'm'));
  });
}
