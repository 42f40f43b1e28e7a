// Every parser under a mutation fuzzer and under random bytes: only each module's declared errors
// may escape. Seeds: H.264, JPEG and FLV written field by field (test/helpers/fuzz-seeds.ts), packed
// by our packetizers, RTCP of every kind we send and FEC parity, so every target runs without
// FFmpeg; with FFmpeg, real x264, MJPEG and FLV output joins them. `npm run bench` runs the same
// targets for minutes.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { encodedMaterial, runFuzz, targets } from '../bench/fuzz.ts';
import { NAL_FU_A, NAL_PPS, NAL_SPS, NAL_STAP_A, joinAnnexB, nalType } from '../src/codecs/h264/annexb.ts';
import { H264Depacketizer } from '../src/codecs/h264/depacketize.ts';
import { H264Packetizer } from '../src/codecs/h264/packetize.ts';
import { spsSize } from '../src/codecs/h264/sps.ts';
import { JpegDepacketizer } from '../src/codecs/mjpeg/depacketize.ts';
import { parseJpeg } from '../src/codecs/mjpeg/jpeg.ts';
import { JpegPacketizer } from '../src/codecs/mjpeg/packetize.ts';
import { PT_H264, PT_JPEG } from '../src/defaults.ts';
import { FlvReader } from '../src/encode/flv.ts';
import { MjpegSplitter } from '../src/encode/mjpeg-stream.ts';
import { parseRtp } from '../src/rtp/packet.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { concatMaterial, generatedMaterial } from './helpers/fuzz-seeds.ts';
import { which } from './helpers/tools.ts';

/** Per parser and input kind; the bench runs 8 s each. */
const MS = 400;

const generated = generatedMaterial();
const withFfmpeg = which('ffmpeg') !== null;
if (!withFfmpeg) console.log('# fuzz: no ffmpeg on PATH: seeds from test/helpers/fuzz-seeds.ts only (with FFmpeg, its x264, MJPEG and FLV output join them)');
const all = targets(withFfmpeg ? concatMaterial(generated, encodedMaterial()) : generated);

/** RTP packets of each frame, through our packetizer and RtpSender, parsed back. */
function overRtp<T>(frames: T[], pt: number, packetize: (f: T) => Buffer[][]) {
  const sender = new RtpSender({ payloadType: pt, ssrc: 0x5eed, initialSequence: 65530 });
  return frames.flatMap((f, i) => sender.frame(packetize(f), i * 3000).map((d) => parseRtp(Buffer.concat(d))));
}

// The generated seeds must be input the parsers accept, or the fuzzer would only ever explore how
// they reject it.
describe('generated seeds are valid input', () => {
  test('the SPSs give their picture sizes: Baseline 320x240, High 1920x1080 (cropped, scaling list)', () => {
    const sizes = generated.accessUnits.flat().filter((n) => nalType(n) === NAL_SPS).map(spsSize);
    assert.deepEqual(sizes, [{ width: 320, height: 240 }, { width: 1920, height: 1080 }]);
  });

  test('H.264 access units survive packetize → depacketize, through STAP-A, FU-A and single NAL units', () => {
    const h264 = new H264Packetizer();
    const packets = overRtp(generated.accessUnits, PT_H264, (au) => h264.packetize(au));
    const kinds = new Set(packets.map((p) => p.payload[0] & 0x1f));
    assert.ok(kinds.has(NAL_STAP_A) && kinds.has(NAL_FU_A) && kinds.size >= 3, `payload kinds ${[...kinds]}`);
    const d = new H264Depacketizer();
    const frames = packets.flatMap((p) => d.pushAll(p));
    assert.deepEqual(frames.map((f) => f.data), generated.accessUnits.map(joinAnnexB));
    assert.deepEqual(frames.map((f) => f.keyframe), generated.accessUnits.map((au) => au.some((n) => nalType(n) === NAL_SPS)));
  });

  test('each JPEG parses, both RFC 2435 types with and without restart markers; each survives RTP', () => {
    const types = generated.jpegs.map((j) => parseJpeg(j).type);
    assert.deepEqual(new Set(types), new Set([0, 1, 64, 65]));
    const jp = new JpegPacketizer();
    const packets = overRtp(generated.jpegs, PT_JPEG, (j) => jp.packetize(j));
    assert.ok(packets.length > generated.jpegs.length, 'some JPEGs span several packets');
    const d = new JpegDepacketizer();
    const frames = packets.flatMap((p) => d.pushAll(p));
    assert.equal(frames.length, generated.jpegs.length);
    // The depacketizer rebuilds the headers (RFC 2435 Appendix A/B); the scan is carried as is.
    frames.forEach((f, i) => assert.deepEqual(parseJpeg(f.data).scan, parseJpeg(generated.jpegs[i]).scan));
  });

  test('the MJPEG splitter returns each image of the stream, cut at any chunk size', () => {
    const stream = Buffer.concat(generated.jpegs);
    for (const size of [1, 777, stream.length]) {
      const s = new MjpegSplitter();
      const out: Buffer[] = [];
      for (let o = 0; o < stream.length; o += size) out.push(...s.push(stream.subarray(o, o + size)));
      assert.deepEqual(out, generated.jpegs, `chunks of ${size}`);
    }
  });

  test('the FLV reader returns every access unit, SPS and PPS from the sequence header', () => {
    const r = new FlvReader();
    const frames = r.push(generated.flv[0]);
    assert.equal(frames.length, generated.accessUnits.length);
    assert.equal(r.counters.skippedTags, 2, 'script data and audio are skipped');
    const [sps, pps] = generated.accessUnits[0].filter((n) => nalType(n) === NAL_SPS || nalType(n) === NAL_PPS);
    assert.deepEqual(r.avcConfig?.sps, [sps]);
    assert.deepEqual(r.avcConfig?.pps, [pps]);
    frames.forEach((f, i) => assert.ok(generated.accessUnits[i].every((n) => f.nalus.some((m) => m.equals(n))), `access unit ${i}`));
  });
});

describe('fuzzing every parser raises only declared errors', () => {
  test('every parser is a target', () => assert.ok(all.length >= 12, `${all.length} targets`));

  for (const t of all) {
    test(t.name, () => {
      assert.ok(t.seeds.length > 0, `${t.name} has seeds`);
      const failures: string[] = [];
      // The seeds themselves are valid input: none may be called a crash.
      for (const seed of t.seeds) {
        try {
          t.feed(seed);
        } catch (err) {
          if (!t.allowed(err)) failures.push(`on a valid seed: ${(err as Error).message}`);
        }
      }
      let execs = 0;
      for (const mode of ['mutation', 'random'] as const) {
        const r = runFuzz(t, mode, MS, (input, _i, err) => `${mode}: ${(err as Error)?.name}: ${(err as Error)?.message} on ${input.toString('hex').slice(0, 80)}`);
        execs += r.execs;
        failures.push(...r.found);
      }
      console.log(`# fuzz ${t.name}: ${t.seeds.length} seeds, ${execs} executions`);
      assert.deepEqual(failures, []);
    });
  }
});
