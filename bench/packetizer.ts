/**
 * Issue 2: H.264 packetize → serialize → parse → depacketize on one core, in Gbit/s of access-unit
 * payload, against a plain copy of the same bytes measured in the same run.
 *
 * The pipeline per access unit is what a sharer and a viewer do between FFmpeg and the socket:
 * H264Packetizer.packetize, RtpSender.frame (header + payload views), one datagram per packet
 * (Buffer.concat: the copy the kernel would make in sendmsg), parseRtp, H264Depacketizer.pushAll.
 */
import { performance } from 'node:perf_hooks';
import { H264Depacketizer } from '../src/codecs/h264/depacketize.ts';
import { H264Packetizer } from '../src/codecs/h264/packetize.ts';
import { parseRtp } from '../src/rtp/packet.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { PT_H264, DEFAULT_PAYLOAD_LIMIT } from '../src/defaults.ts';
import { h264AccessUnits } from './sample.ts';
import { ratio, round, table, type BenchContext, type BenchResult } from './lib.ts';

/** RTP ticks per frame at 30 fps on the 90 kHz clock. */
const TICKS_PER_FRAME = 3000;

/** Runs `pass` (one pass over every access unit, returning bytes handled) for `ms`; bits per second. */
function measure(ms: number, pass: () => number): { gbps: number; passes: number } {
  // Warm-up: let V8 optimise before the clock starts.
  const warmEnd = performance.now() + Math.min(500, ms / 4);
  while (performance.now() < warmEnd) pass();
  let bytes = 0;
  let passes = 0;
  const start = performance.now();
  let now = start;
  while (now - start < ms) {
    bytes += pass();
    passes++;
    now = performance.now();
  }
  return { gbps: (bytes * 8) / ((now - start) / 1000) / 1e9, passes };
}

export async function packetizerBench(ctx: BenchContext): Promise<BenchResult> {
  const aus = h264AccessUnits(10);
  const auBytes = aus.map((au) => au.reduce((n, x) => n + x.length, 0));
  const totalBytes = auBytes.reduce((a, b) => a + b, 0);
  const ms = ctx.quick ? 1500 : 5000;
  ctx.log(`packetizer: ${aus.length} access units of a 720p30 x264 encode, ${(totalBytes / 1e6).toFixed(2)} MB; ${ms} ms per measurement`);

  const packetizer = new H264Packetizer({ payloadLimit: DEFAULT_PAYLOAD_LIMIT });
  const sender = new RtpSender({ payloadType: PT_H264, ssrc: 0x1234, initialSequence: 0 });
  const depack = new H264Depacketizer();
  let ts = 0;
  let packets = 0;
  let frames = 0;
  const pipeline = (): number => {
    let bytes = 0;
    for (let i = 0; i < aus.length; i++) {
      ts = (ts + TICKS_PER_FRAME) >>> 0;
      const datagrams = sender.frame(packetizer.packetize(aus[i]), ts);
      for (const d of datagrams) {
        const got = depack.pushAll(parseRtp(Buffer.concat(d)));
        frames += got.length;
      }
      packets += datagrams.length;
      bytes += auBytes[i];
    }
    return bytes;
  };

  // Baselines over the same bytes: a plain memcpy of each access unit into a buffer we own (the
  // memory-speed ceiling), and Buffer.concat of each access unit (allocation + copy, what any
  // path that hands out a fresh frame must at least do).
  const sink = Buffer.alloc(Math.max(...auBytes) + 1024);
  const memcpy = (): number => {
    let bytes = 0;
    for (const au of aus) {
      let off = 0;
      for (const nalu of au) off += nalu.copy(sink, off);
      bytes += off;
    }
    return bytes;
  };
  const concat = (): number => {
    let bytes = 0;
    for (let i = 0; i < aus.length; i++) bytes += Buffer.concat(aus[i]).length;
    return bytes;
  };

  // Interleave the measurements (A B C A B C) so a noisy neighbour hits all of them alike.
  const rounds = ctx.quick ? 1 : 2;
  const res = { pipeline: [] as number[], memcpy: [] as number[], concat: [] as number[] };
  for (let r = 0; r < rounds; r++) {
    res.pipeline.push(measure(ms, pipeline).gbps);
    res.memcpy.push(measure(ms, memcpy).gbps);
    res.concat.push(measure(ms, concat).gbps);
  }
  const best = (xs: number[]) => Math.max(...xs);
  const pipe = best(res.pipeline);
  const mem = best(res.memcpy);
  const cat = best(res.concat);
  if (depack.counters.framesDropped > 0) throw new Error(`depacketizer dropped ${depack.counters.framesDropped} frames in a lossless loop`);
  const pktPerAu = packets / Math.max(1, frames);

  const rows = [
    { path: 'udpcast packetize → serialize → parse → depacketize', gbps: round(pipe, 3), vsMemcpy: ratio(pipe, mem, 3) },
    { path: 'baseline: memcpy of each access unit into one buffer', gbps: round(mem, 3), vsMemcpy: 1 },
    { path: 'baseline: Buffer.concat of each access unit (allocate + copy)', gbps: round(cat, 3), vsMemcpy: ratio(cat, mem, 3) },
  ];
  const met = pipe >= 1;
  const markdown = [
    table(['path (one core, best of ' + rounds + ')', 'Gbit/s of payload', '× memcpy'], rows.map((r) => [r.path, r.gbps, r.vsMemcpy])),
    '',
    `Input: ${aus.length} access units (10 s of 720p30 testsrc2, x264 ultrafast/zerolatency at 2500 kbit/s, ` +
      `${(totalBytes / aus.length / 1024).toFixed(1)} KiB each on average, ${pktPerAu.toFixed(1)} RTP packets each at a ` +
      `${DEFAULT_PAYLOAD_LIMIT}-byte payload limit), looped for ${ms / 1000} s per measurement. Every access unit ` +
      `came out whole (${depack.counters.framesDropped} dropped).`,
  ].join('\n');
  return {
    name: 'packetizer',
    title: 'H.264 packetizer throughput (issue 2)',
    rows: rows.map((r) => ({ ...r, runsGbps: r.vsMemcpy === 1 ? res.memcpy : r.path.startsWith('udpcast') ? res.pipeline : res.concat })),
    markdown,
    targets: [{ target: '≥ 1 Gbit/s of payload on one core', met, detail: `${round(pipe, 2)} Gbit/s (${ratio(pipe, mem, 3)}× memcpy)` }],
  };
}
