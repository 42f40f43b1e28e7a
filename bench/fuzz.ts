/**
 * Issue 6 / 7.5: every parser for a fixed time with random bytes and with a mutation fuzzer seeded
 * from real packets. Only each module's declared errors may escape; anything else is a crash, and
 * its input is saved to bench/out/ so it can be replayed.
 *
 * Seeds: the material of test/helpers/fuzz-seeds.ts (H.264, JPEG and FLV written field by field,
 * no FFmpeg needed) plus real x264, MJPEG and FLV output from FFmpeg. test/fuzz.test.ts runs the same
 * targets briefly, with the FFmpeg material only when FFmpeg is there.
 *
 * Declared errors, from each module's doc comments: parseRtp, parseRtcp, parseControl, spsSize,
 * FlvReader.push and MjpegSplitter.push raise PacketError; parseJpeg raises JpegFormatError (a
 * PacketError) or JpegUnsupportedError/JpegSizeError; the depacketizers' push never throws, and
 * FecDecoder.pushFec returns [] for malformed input, so for those any exception is a crash.
 */
import { writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { PT_H264, PT_JPEG } from '../src/defaults.ts';
import { NAL_SPS, nalType } from '../src/codecs/h264/annexb.ts';
import { FlvReader } from '../src/encode/flv.ts';
import { RelayCore } from '../src/relay/core.ts';
import { ViewerCore } from '../src/player/viewer.ts';
import { JpegUnsupportedError, parseJpeg } from '../src/codecs/mjpeg/jpeg.ts';
import { MjpegSplitter } from '../src/encode/mjpeg-stream.ts';
import { spsSize } from '../src/codecs/h264/sps.ts';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { PacketError } from '../src/util/errors.ts';
import { FecDecoder, FecEncoder } from '../src/transport/fec.ts';
import { H264Depacketizer } from '../src/codecs/h264/depacketize.ts';
import { H264Packetizer } from '../src/codecs/h264/packetize.ts';
import { JpegDepacketizer } from '../src/codecs/mjpeg/depacketize.ts';
import { JpegPacketizer } from '../src/codecs/mjpeg/packetize.ts';
import { parseRtcp, serializeRtcp, type App } from '../src/transport/rtcp.ts';
import { parseRtp, serializeRtpToBuffer, type RtpPacket } from '../src/rtp/packet.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { concatMaterial, generatedMaterial, type SeedMaterial } from '../test/helpers/fuzz-seeds.ts';
import { OUT, rng, round, table, x264Args, type BenchContext, type BenchResult } from './lib.ts';
import { h264AccessUnits, mjpegFrames } from './sample.ts';

type Allowed = (err: unknown) => boolean;
const packetError: Allowed = (e) => e instanceof PacketError;
const jpegErrors: Allowed = (e) => e instanceof PacketError || e instanceof JpegUnsupportedError;
const nothing: Allowed = () => false;

export interface Target {
  name: string;
  allowed: Allowed;
  /** What may escape, for the report. */
  declared: string;
  seeds: Buffer[];
  /** Feeds one input; state, if any, lives in the closure and persists across inputs. */
  feed: (input: Buffer) => void;
}

/** A parsed packet for the depacketizers, even when the bytes are not valid RTP. */
function asRtp(input: Buffer, pt: number): RtpPacket | null {
  try {
    return parseRtp(input);
  } catch (err) {
    if (!(err instanceof PacketError)) throw err;
  }
  if (input.length < 4) return null;
  // Not parseable: still exercise the payload parser, as if the header had been fine.
  return {
    padding: 0, marker: (input[0] & 1) === 1, payloadType: pt, sequenceNumber: input.readUInt16BE(0),
    timestamp: input[2] * 3000, ssrc: 1, csrc: [], payload: input.subarray(3),
  } as RtpPacket;
}

function flvSample(): Buffer {
  const file = path.join(OUT, 'sample-2s.flv');
  if (!existsSync(file)) {
    const r = spawnSync('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-y', '-f', 'lavfi', '-i', 'testsrc2=size=320x240:rate=30', '-t', '2', ...x264Args(30), '-f', 'flv', file], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ffmpeg flv encode failed: ${r.stderr}`);
  }
  return readFileSync(file);
}

/** Real encoder output (bench/sample.ts, cached in bench/out/): needs FFmpeg on PATH. */
export function encodedMaterial(): SeedMaterial {
  return { accessUnits: h264AccessUnits(10).slice(0, 90), jpegs: mjpegFrames(10), flv: [flvSample()] };
}

/**
 * Every parser with its seeds and declared errors. Seeds come from `material`: by default the
 * generated material and FFmpeg's; the test passes the generated one alone when FFmpeg is missing.
 */
export function targets(material: SeedMaterial = concatMaterial(generatedMaterial(), encodedMaterial())): Target[] {
  const aus = material.accessUnits;
  const h264 = new H264Packetizer();
  const sender = new RtpSender({ payloadType: PT_H264, ssrc: 0xabc, initialSequence: 65500 });
  const h264Packets: Buffer[] = [];
  aus.forEach((au, i) => {
    for (const d of sender.frame(h264.packetize(au), i * 3000)) h264Packets.push(Buffer.concat(d));
  });
  const jpegs = material.jpegs;
  const jpegSender = new RtpSender({ payloadType: PT_JPEG, ssrc: 0xdef, initialSequence: 65530 });
  const jp = new JpegPacketizer();
  const jpegPackets: Buffer[] = [];
  jpegs.forEach((j, i) => {
    for (const d of jpegSender.frame(jp.packetize(j), i * 3000)) jpegPackets.push(Buffer.concat(d));
  });
  const fecEnc = new FecEncoder({ mediaSsrc: 0xabc, groupSize: 5, mode: '2d', depth: 4, initialSequence: 7 });
  const fecPackets: Buffer[] = [];
  for (const p of h264Packets.slice(0, 400)) fecPackets.push(...fecEnc.push(p));
  fecPackets.push(...fecEnc.flush());
  const block = { ssrc: 0xabc, fractionLost: 12, cumulativeLost: 300, highestSeq: 70000, jitter: 45, lsr: 0x12345678, dlsr: 655 };
  const rtcpPackets = [
    serializeRtcp([{ type: 'sr', ssrc: 0xabc, ntpSec: 3900000000, ntpFrac: 123456, rtpTimestamp: 999, packetCount: 10, octetCount: 12000, reports: [block] }, { type: 'sdes', chunks: [{ ssrc: 0xabc, items: [{ type: 1, text: 'udpcast@bench' }] }] }]),
    serializeRtcp([{ type: 'rr', ssrc: 5, reports: [block, { ...block, ssrc: 6 }] }, controlApp({ kind: ControlType.Publish, stream: 'main' }, 5)]),
    serializeRtcp([{ type: 'rr', ssrc: 5, reports: [] }, controlApp({ kind: ControlType.Subscribe, stream: 'team.a-1' }, 5)]),
    serializeRtcp([{ type: 'rr', ssrc: 5, reports: [] }, { type: 'nack', senderSsrc: 5, mediaSsrc: 0xabc, lost: [1, 2, 3, 17, 40, 65535] }]),
    serializeRtcp([{ type: 'rr', ssrc: 5, reports: [] }, { type: 'pli', senderSsrc: 5, mediaSsrc: 0xabc }]),
    serializeRtcp([{ type: 'rr', ssrc: 5, reports: [] }, { type: 'bye', ssrcs: [5, 6], reason: 'viewer left' }, controlApp({ kind: ControlType.Leave, stream: 'main' }, 5)]),
    serializeRtcp([controlApp({ kind: ControlType.Ack, stream: 'main', live: true }, 0)]),
  ];
  const appSeeds = rtcpPackets.flatMap((b) => parseRtcp(b).filter((p): p is App => p.type === 'app').map((a) => Buffer.concat([Buffer.from([a.subtype]), a.data])));
  const sps = aus.flat().filter((n) => nalType(n) === NAL_SPS);
  const flvChunks: Buffer[] = [];
  for (const flv of material.flv) for (let o = 0; o < flv.length; o += 4096) flvChunks.push(flv.subarray(o, o + 4096));
  const mjpegStream = Buffer.concat(jpegs);
  const mjChunks: Buffer[] = [];
  for (let o = 0; o < mjpegStream.length; o += 2048) mjChunks.push(mjpegStream.subarray(o, o + 2048));

  let h264D = new H264Depacketizer();
  let jpegD = new JpegDepacketizer();
  let fecD = new FecDecoder();
  let flvR = new FlvReader();
  let mjS = new MjpegSplitter();
  const publisher = { address: '10.0.0.1', port: 1 };
  /** A relay with a latched publisher, so mutated media from it is routed, not just refused. */
  const newRelay = () => {
    const r = new RelayCore(0);
    r.onDatagram(rtcpPackets[1], publisher, 0);
    return r;
  };
  let relay = newRelay();
  const stranger = { address: '10.0.0.9', port: 9 };
  let viewer = new ViewerCore('main');
  let n = 0;
  /** Start every so often from a fresh object, so both fresh and long-lived state get inputs. */
  const fresh = () => ++n % 5000 === 0;
  return [
    { name: 'parseRtp', allowed: packetError, declared: 'PacketError', seeds: [...h264Packets.slice(0, 200), ...jpegPackets, ...fecPackets.slice(0, 50)], feed: (b) => void parseRtp(b) },
    { name: 'parseRtcp', allowed: packetError, declared: 'PacketError', seeds: rtcpPackets, feed: (b) => void parseRtcp(b) },
    {
      name: 'parseControl', allowed: packetError, declared: 'PacketError', seeds: appSeeds,
      // First byte: the APP subtype (5 bits); the rest: its application-dependent data.
      feed: (b) => void parseControl({ type: 'app', subtype: (b[0] ?? 0) & 0x1f, ssrc: 1, name: 'UDPC', data: b.subarray(1) }),
    },
    {
      name: 'H264Depacketizer.pushAll', allowed: nothing, declared: 'nothing (never throws)', seeds: h264Packets,
      feed: (b) => {
        if (fresh()) h264D = new H264Depacketizer();
        const p = asRtp(b, PT_H264);
        if (p) h264D.pushAll(p);
      },
    },
    {
      name: 'JpegDepacketizer.pushAll', allowed: nothing, declared: 'nothing (never throws)', seeds: jpegPackets,
      feed: (b) => {
        if (fresh()) jpegD = new JpegDepacketizer();
        const p = asRtp(b, PT_JPEG);
        if (p) jpegD.pushAll(p);
      },
    },
    {
      name: 'FecDecoder.pushFec', allowed: nothing, declared: 'nothing (malformed → [])', seeds: [...fecPackets, ...h264Packets.slice(0, 50)],
      feed: (b) => {
        if (fresh()) fecD = new FecDecoder();
        // Media now and then, so rebuilds are attempted against mutated parity.
        if (b.length > 12 && (b[b.length - 1] & 7) === 0) {
          try {
            fecD.pushMedia(b);
          } catch (err) {
            if (!(err instanceof PacketError)) throw err;
          }
        }
        fecD.pushFec(b);
      },
    },
    {
      name: 'FlvReader.push', allowed: packetError, declared: 'PacketError (then resets)', seeds: flvChunks,
      feed: (b) => {
        if (fresh()) flvR = new FlvReader();
        flvR.push(b);
      },
    },
    {
      name: 'MjpegSplitter.push', allowed: packetError, declared: 'PacketError', seeds: mjChunks,
      feed: (b) => {
        if (fresh()) mjS = new MjpegSplitter();
        mjS.push(b);
      },
    },
    {
      // The receive loops themselves: whatever arrives, they count and drop, never throw.
      name: 'RelayCore.onDatagram', allowed: nothing, declared: 'nothing (counts and drops)', seeds: [...rtcpPackets, ...h264Packets.slice(0, 100), ...fecPackets.slice(0, 20)],
      feed: (b) => {
        if (fresh()) relay = newRelay();
        relay.onDatagram(b, (b[0] & 1) === 0 ? publisher : stranger, n);
        relay.tick(n);
      },
    },
    {
      name: 'ViewerCore.onDatagram', allowed: nothing, declared: 'nothing (counts and drops)', seeds: [...h264Packets.slice(0, 200), ...fecPackets.slice(0, 50), ...rtcpPackets, ...jpegPackets.slice(0, 50)],
      feed: (b) => {
        if (fresh()) viewer = new ViewerCore('main');
        viewer.onDatagram(b, n);
        viewer.poll(n);
      },
    },
    { name: 'parseJpeg', allowed: jpegErrors, declared: 'JpegFormatError (PacketError), JpegUnsupportedError', seeds: jpegs, feed: (b) => void parseJpeg(b) },
    { name: 'spsSize', allowed: packetError, declared: 'PacketError', seeds: sps.slice(0, 4), feed: (b) => void spsSize(b) },
  ];
}

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xfe, 0x1c, 0x18, 0x5c, 0x3c];

/** 1-8 random edits of a seed: bit flips, byte sets, interesting values, cuts, growth, splices. */
function mutate(seed: Buffer, other: Buffer, r: () => number): Buffer {
  let b = Buffer.from(seed);
  const edits = 1 + Math.floor(r() * 8);
  for (let e = 0; e < edits; e++) {
    const at = b.length ? Math.floor(r() * b.length) : 0;
    switch (Math.floor(r() * 8)) {
      case 0:
        if (b.length) b[at] ^= 1 << Math.floor(r() * 8);
        break;
      case 1:
        if (b.length) b[at] = Math.floor(r() * 256);
        break;
      case 2:
        if (b.length) b[at] = INTERESTING[Math.floor(r() * INTERESTING.length)];
        break;
      case 3:
        b = b.subarray(0, Math.floor(r() * (b.length + 1)));
        break;
      case 4: {
        const extra = Buffer.alloc(1 + Math.floor(r() * 64));
        for (let i = 0; i < extra.length; i++) extra[i] = Math.floor(r() * 256);
        b = Buffer.concat([b.subarray(0, at), extra, b.subarray(at)]);
        break;
      }
      case 5:
        if (b.length >= 2 && at + 1 < b.length) b.writeUInt16BE(r() < 0.5 ? 0xffff : Math.floor(r() * 65536), at);
        break;
      case 6:
        b = Buffer.concat([b.subarray(0, at), other.subarray(Math.floor(r() * other.length))]);
        break;
      case 7:
        if (b.length > 4) b = Buffer.concat([b, b.subarray(at, Math.min(b.length, at + 1 + Math.floor(r() * 32)))]);
        break;
    }
  }
  return b;
}

function randomBytes(r: () => number, max: number): Buffer {
  const len = Math.floor(r() * max);
  const b = Buffer.alloc(len + 3);
  // Four bytes per draw: the generator, not the parser, would otherwise dominate the time.
  for (let i = 0; i < len; i += 4) b.writeUInt32LE(Math.floor(r() * 4294967296), i);
  return b.subarray(0, len);
}

export interface FuzzRun<C> {
  execs: number;
  /** Inputs that raised a declared error. */
  rejected: number;
  /** Inputs that raised anything else, and the first five of them as `record` described them. */
  crashes: number;
  found: C[];
  seconds: number;
}

/**
 * Feeds `t` random or mutated inputs for `ms` milliseconds from a fixed seed (repeatable), and
 * records any error its module does not declare.
 */
export function runFuzz<C>(t: Target, mode: 'random' | 'mutation', ms: number, record: (input: Buffer, index: number, err: unknown) => C): FuzzRun<C> {
  const r = rng(0x5eed ^ t.name.length ^ (mode === 'random' ? 0 : 0x1000));
  let execs = 0;
  let rejected = 0;
  let crashes = 0;
  const found: C[] = [];
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    for (let k = 0; k < 256; k++) {
      const input =
        mode === 'random'
          ? randomBytes(r, 1500)
          : mutate(t.seeds[Math.floor(r() * t.seeds.length)], t.seeds[Math.floor(r() * t.seeds.length)], r);
      execs++;
      try {
        t.feed(input);
      } catch (err) {
        if (t.allowed(err)) {
          rejected++;
          continue;
        }
        crashes++;
        if (found.length < 5) found.push(record(input, found.length, err));
      }
    }
    now = performance.now();
  }
  return { execs, rejected, crashes, found, seconds: (now - start) / 1000 };
}

export async function fuzzBench(ctx: BenchContext): Promise<BenchResult> {
  const perMode = ctx.quick ? 1000 : 8000;
  const all = targets();
  const rows: Record<string, unknown>[] = [];
  let crashes = 0;
  for (const t of all) {
    for (const mode of ['random', 'mutation'] as const) {
      const { execs, rejected, crashes: n, found, seconds: secs } = runFuzz(t, mode, perMode, (input, i, err) => {
        const file = path.join(OUT, `crash-${t.name}-${mode}-${i}.bin`);
        writeFileSync(file, input);
        const e = err as Error;
        return { file: path.relative(process.cwd(), file), error: `${e?.name}: ${e?.message}`.slice(0, 200) };
      });
      crashes += n;
      rows.push({ parser: t.name, mode, declared: t.declared, seconds: round(secs, 1), execs, execsPerSec: Math.round(execs / secs), rejectedPct: round((100 * rejected) / execs, 1), crashes: found.length ? found : 0 });
      ctx.log(`fuzz ${t.name} ${mode}: ${execs} execs, ${Math.round(execs / secs)}/s, ${found.length} crash kinds`);
    }
  }
  const markdown = [
    table(
      ['parser', 'input', 'may raise', 'execs/s', 'raised a declared error', 'crashes'],
      rows.map((r) => [r.parser, r.mode, r.declared, r.execsPerSec, `${r.rejectedPct}%`, Array.isArray(r.crashes) ? `**${(r.crashes as unknown[]).length}** (inputs in bench/out/)` : 0]),
    ),
    '',
    `${perMode / 1000} s per parser and input kind on one core. Random: 0-1499 random bytes. Mutation: 1-8 edits (bit ` +
      'flips, byte sets, boundary values, cuts, insertions, 16-bit fields, splices) of valid inputs: RTP packets from ' +
      'the H.264 and JPEG packetizers over x264/mjpeg encodes and over H.264 and JPEG written field by field ' +
      '(test/helpers/fuzz-seeds.ts: two SPS kinds, STAP-A and FU-A sizes, restart intervals, in-band tables), RTCP ' +
      'compounds of every kind udpcast sends, 2-D FEC parity, FFmpeg and hand-written FLV streams in 4 KiB chunks, a ' +
      'concatenated MJPEG stream in 2 KiB chunks, the JPEGs and SPSs themselves. ' +
      'The stateful parsers keep their state across inputs and start fresh every 5000. There is no baseline: ' +
      'execs/s is reported as measured, and the figure that matters is the crash count.',
    ...rows.flatMap((r) => (Array.isArray(r.crashes) ? (r.crashes as { file: string; error: string }[]).map((c) => `- ${r.parser} (${r.mode}): \`${c.error}\`, input ${c.file}`) : [])),
  ].join('\n');
  return {
    name: 'fuzz',
    title: 'Fuzzing every parser (issue 6)',
    rows,
    markdown,
    targets: [{ target: 'only declared errors escape', met: crashes === 0, detail: `${crashes} crashing inputs over ${rows.reduce((n, r) => n + (r.execs as number), 0)} executions` }],
  };
}
