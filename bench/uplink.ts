/**
 * Issue 14 (congestion control): the sharer's uplink is a 1.2 Mbit/s bottleneck with a ~100 ms
 * tail-drop buffer while the stream asks for 2.5 Mbit/s. Three systems through the same
 * bottleneck, one after another in one run: `udpcast share` with congestion control (--adapt, the
 * default), `udpcast share --no-adapt` (a fixed bitrate, the baseline) and plain FFmpeg RTP at a
 * fixed 2500 kbit/s.
 *
 * udpcast: share → `udpcast impair` (the bottleneck, sharer → relay only) → relay → watch on a
 * clean link. The viewer's --stats-json (one line a second) gives fps and latency over time; its
 * --output is decoded afterwards for decoded frames and decoder error lines. The sharer's last
 * stats line gives what congestion control did.
 * Plain FFmpeg: plainRtpRun in plain-rtp.ts (shared with loss.ts), a file encoded beforehand
 * streamed with `-re -c copy` through the same bottleneck and decoded to framemd5 by a receiver
 * reading an SDP; clean frames are MD5 matches of the lossless decode. It has no capture clock, so
 * no latency and no fps over time: only clean frames (and clean frames per second of stream).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  OUT, lastStats, missing, ratio, round, shareWatchFiles, table, x264Args,
  type BenchContext, type BenchResult,
} from './lib.ts';
import {
  DELAY, FPS, GOP, KBPS, LATENCY_TARGET_MS, QUEUE, RATE, SETTLE_S, SIZE, SMOOTH_FPS, SMOOTH_RUN, bottleneckArgs, impairDrops, sharerBehind, sharerEndMs,
  smoothFigures, viewerSeconds,
} from './bottleneck.ts';
import { decodeMd5, plainRtpRun } from './plain-rtp.ts';

const SEED = 1400;

interface Row {
  system: string;
  seconds: number;
  /** Seconds from starting `udpcast share` to the end of the first of SMOOTH_RUN seconds at ≥ SMOOTH_FPS. */
  smoothAtS?: number | null;
  /** Where the steady-state window starts, seconds from starting share. */
  windowFromS?: number;
  meanFps?: number | null;
  smoothSecondsPct?: number | null;
  latencyP50Ms?: number | null;
  latencyP95Ms?: number | null;
  latencySamples?: number;
  framesSent: number;
  framesDecoded: number;
  decodeErrors: number;
  clean: number;
  cleanFps: number | null;
  viewerFramesDropped?: number;
  bottleneckForwarded: number | null;
  bottleneckDropped: number | null;
  /**
   * Times the relay's RFC 8083 circuit breaker paused media to the viewer. The viewer sits on a clean
   * link, but the loss at the uplink reaches it as gaps in the sequence numbers, so the relay may read
   * it as the viewer's path's and stop sending (for CB_RESUME_MS): part of what a collapse looks like.
   */
  breakerPauses?: number;
  retargets?: number | null;
  estimateKbps?: number | null;
  targetKbps?: number | null;
  keyframeRestarts?: number | null;
  fpsVsFixed?: number | null;
  cleanVsFixed?: number | null;
  dropsVsFixed?: number | null;
}

async function udpcastRun(adapt: boolean, seconds: number): Promise<Row> {
  const tag = `uplink-udpcast-${adapt ? 'adapt' : 'fixed'}`;
  const { out, wstats, sstats } = shareWatchFiles(tag);
  // In front of the relay: the sharer's uplink is the bottleneck; the viewer watches the relay directly.
  const bottleneck = bottleneckArgs('up', SEED);
  const { startMs, exitMs, relayStderr, impairStderr } = await sharerBehind(bottleneck, { out, wstats, sstats }, seconds, adapt ? [] : ['--no-adapt']);
  // The viewer's seconds are timed from the sharer's spawn.
  const v = smoothFigures(viewerSeconds(wstats, startMs, sharerEndMs(sstats, exitMs))).figures;
  const s = lastStats(sstats) ?? {};
  const w = lastStats(wstats) ?? {};
  const d = decodeMd5(out, ['-f', 'h264']);
  const clean = Math.max(0, d.md5s.length - d.errors);
  const num = (x: unknown) => (typeof x === 'number' ? x : null);
  const b = impairDrops(impairStderr, 'up');
  return {
    system: adapt ? 'udpcast (--adapt, default)' : 'udpcast --no-adapt',
    seconds,
    ...v,
    framesSent: Number(s.framesSent ?? 0),
    framesDecoded: d.md5s.length,
    decodeErrors: d.errors,
    clean,
    cleanFps: round(clean / seconds, 1),
    viewerFramesDropped: Number(w.framesDropped ?? 0),
    bottleneckForwarded: b.forwarded,
    bottleneckDropped: b.rateDropped,
    breakerPauses: (relayStderr.match(/paused: .*\(RFC 8083 circuit breaker\)/g) ?? []).length,
    retargets: num(s.retargets),
    estimateKbps: num(s.estimateKbps),
    targetKbps: num(s.targetKbps),
    keyframeRestarts: num(s.keyframeRestarts),
  };
}

async function ffmpegRun(ref: string, refMd5: Set<string>, refFrames: number, seconds: number): Promise<Row> {
  const p = await plainRtpRun({
    tag: 'uplink-ffmpeg',
    impair: bottleneckArgs('up', SEED),
    ref,
    refMd5,
    fps: FPS,
    txLimitMs: (seconds + 20) * 1000,
  });
  const b = impairDrops(p.impairStderr, 'up');
  return {
    system: `plain FFmpeg RTP, fixed ${KBPS} kbit/s`,
    seconds,
    framesSent: refFrames,
    framesDecoded: p.framesDecoded,
    decodeErrors: p.errors,
    clean: p.clean,
    cleanFps: round(p.clean / seconds, 1),
    bottleneckForwarded: b.forwarded,
    bottleneckDropped: b.rateDropped,
  };
}

export async function uplinkBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Uplink bottleneck: 2.5 Mbit/s asked of a 1.2 Mbit/s uplink (issue 14)';
  const gone = missing('ffmpeg');
  if (gone) return { name: 'uplink', title, skipped: gone, rows: [], markdown: '' };
  const seconds = ctx.quick ? 12 : 25;
  // The reference for plain FFmpeg: encoded once, streamed as is, decoded losslessly for MD5s.
  const ref = path.join(OUT, `uplink-ref-${seconds}s.h264`);
  const enc = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=${SIZE}:rate=${FPS}`, '-t', String(seconds), ...x264Args(GOP, KBPS), '-x264-params', 'repeat-headers=1', '-f', 'h264', ref], { encoding: 'utf8' });
  if (enc.status !== 0) throw new Error(`reference encode failed: ${enc.stderr}`);
  const refDecode = decodeMd5(ref, ['-framerate', String(FPS), '-f', 'h264']);
  ctx.log(`uplink: reference ${refDecode.md5s.length} frames`);

  const rows: Row[] = [];
  for (const adapt of [true, false]) {
    rows.push(await udpcastRun(adapt, seconds));
    ctx.log(`uplink ${JSON.stringify(rows.at(-1))}`);
  }
  rows.push(await ffmpegRun(ref, new Set(refDecode.md5s), refDecode.md5s.length, seconds));
  ctx.log(`uplink ${JSON.stringify(rows.at(-1))}`);

  const [adaptive, fixed, ff] = rows;
  for (const r of rows) {
    if (r === fixed) continue;
    // No latency ratio: the baseline usually completes no frames to time. FFmpeg has no fps over time.
    if (r.meanFps !== undefined) r.fpsVsFixed = ratio(r.meanFps, fixed.meanFps);
    r.cleanVsFixed = ratio(r.clean, fixed.clean);
    // Defined even when the baseline delivers nothing: how much less the bottleneck had to throw away
    // (udpcast only: FFmpeg is another fixed-rate sender, its drops say nothing about adapting).
    if (r.meanFps !== undefined) r.dropsVsFixed = ratio(r.bottleneckDropped, fixed.bottleneckDropped);
  }
  const markdown = [
    table(
      [
        'system', '≥ 20 fps at s', 'window from s', 'mean fps', 's ≥ 20 fps %', 'latency p50 ms', 'p95 ms', 'frames sent', 'decoded',
        'decoder errors', 'clean', 'clean fps', 'bottleneck: forwarded / dropped', 'viewer paused by relay', 're-targets', 'estimate kbit/s', 'encoder kbit/s',
        'key restarts', 'mean fps × no-adapt', 'clean × no-adapt', 'bottleneck drops × no-adapt',
      ],
      rows.map((r) => [
        r.system, r.smoothAtS ?? (r.meanFps === undefined ? null : 'never'), r.windowFromS, r.meanFps, r.smoothSecondsPct, r.latencyP50Ms, r.latencyP95Ms,
        r.framesSent, r.framesDecoded, r.decodeErrors, r.clean, r.cleanFps,
        r.bottleneckForwarded === null ? null : `${r.bottleneckForwarded} / ${r.bottleneckDropped}`, r.breakerPauses,
        r.retargets, r.estimateKbps, r.targetKbps, r.keyframeRestarts, r.fpsVsFixed, r.cleanVsFixed, r.dropsVsFixed,
      ]),
    ),
    '',
    `The model: \`udpcast impair --up-rate ${RATE} --up-queue ${QUEUE} --delay ${DELAY}\` between sender and receiver, ` +
      `a 1.2 Mbit/s link (token bucket, 10 ms deep) behind a tail-drop FIFO of ${QUEUE} datagrams: ` +
      `${QUEUE} × ~1250 bytes at 1.2 Mbit/s is ~100 ms of buffer; a datagram that finds it full is dropped. 10 ms one-way delay ` +
      'both ways (20 ms RTT); nothing else is impaired. udpcast: share → impair → relay → watch, the viewer on a clean link ' +
      `(the bottleneck is the sharer's uplink); \`share --source test --size ${SIZE} --fps ${FPS} --gop ${GOP}\`, asking for ` +
      `${KBPS} kbit/s (the default --bitrate), for ${seconds} s, with congestion control (the default, --adapt) and with ` +
      `--no-adapt (a fixed ${KBPS} kbit/s, the baseline). Plain FFmpeg: \`testsrc2\` ${SIZE} encoded beforehand with the same ` +
      `x264 settings (ultrafast/zerolatency, GOP ${GOP}, ${KBPS} kbit/s), streamed with \`-re -c copy -f rtp\` through the same ` +
      'bottleneck, received by FFmpeg from an SDP and decoded to framemd5; clean = received pictures whose MD5 equals one of ' +
      'the lossless decode\'s. Its receiver has no capture clock, so for FFmpeg only clean frames are measured.',
    '',
    `Figures. "≥ 20 fps at s": seconds from starting \`udpcast share\` (process start, so it includes start-up) to the end of the ` +
      `first of ${SMOOTH_RUN} consecutive viewer stats seconds at ≥ ${SMOOTH_FPS} fps ("never" if it never got there; ` +
      `target ≤ ${SETTLE_S} s). The window: from that point, or from second ${SETTLE_S} if later, to the sharer's last full ` +
      `second; over it, the viewer's mean fps (frames completed per second, from --stats-json), the share of its seconds ` +
      `at ≥ ${SMOOTH_FPS} fps, and latency p50 / p95 (target ≤ ${LATENCY_TARGET_MS} ms). Latency is the viewer's \`latencyMs\`: ` +
      'capture → frame complete at the viewer, a component figure (no decode or display); it is sampled once a second (the ' +
      'last frame completed in that second; seconds that completed none are left out). Decoded / decoder errors: the ' +
      'viewer\'s --output decoded by FFmpeg (`-f h264`) afterwards, error lines counted; clean = decoded − error lines (as in ' +
      'the loss benchmark); clean fps = clean / the stream\'s seconds. Bottleneck forwarded / dropped: datagrams the impair ' +
      'proxy passed and tail-dropped towards the receiver (its summary). Viewer paused by relay: times the relay\'s RFC 8083 ' +
      'circuit breaker stopped media to the viewer (for 10 s each): the uplink\'s loss reaches the viewer as sequence gaps ' +
      'and can be taken for loss on the viewer\'s own, clean, path. Sharer figures are from its last stats line: ' +
      'congestion control\'s re-targets of the encoder, its estimate of what the path takes and the encoder bitrate at the ' +
      'end (no estimate with --no-adapt), and keyframe restarts (fresh encoder runs for viewers\' keyframe requests). ' +
      'The × no-adapt ratios divide by the --no-adapt row; "–" where that row has nothing to divide by.',
  ].join('\n');
  const fixedNote = `--no-adapt: ${fixed.smoothAtS ?? 'never'}${fixed.smoothAtS !== null ? ' s' : ''}, ${fixed.meanFps ?? '–'} fps; FFmpeg: ${ff.cleanFps} clean fps`;
  const targets: BenchResult['targets'] = [
    {
      target: `1.2 Mbit/s uplink: --adapt reaches ≥ ${SMOOTH_FPS} fps within ${SETTLE_S} s (issue 14)`,
      met: adaptive.smoothAtS !== null && adaptive.smoothAtS! <= SETTLE_S,
      detail: `${adaptive.smoothAtS === null ? 'never' : `at ${adaptive.smoothAtS} s`} (${fixedNote})`,
    },
    {
      target: `1.2 Mbit/s uplink: --adapt mean ≥ ${SMOOTH_FPS} fps after that (issue 14)`,
      met: adaptive.meanFps == null ? null : adaptive.meanFps >= SMOOTH_FPS,
      detail: `${adaptive.meanFps} fps from second ${adaptive.windowFromS}, ${adaptive.smoothSecondsPct}% of seconds ≥ ${SMOOTH_FPS} (--no-adapt: ${fixed.meanFps} fps)`,
    },
    {
      target: `1.2 Mbit/s uplink: --adapt latency p95 ≤ ${LATENCY_TARGET_MS} ms (issue 14)`,
      met: adaptive.latencyP95Ms == null ? null : adaptive.latencyP95Ms <= LATENCY_TARGET_MS,
      detail: `p95 ${adaptive.latencyP95Ms} ms, p50 ${adaptive.latencyP50Ms} ms over ${adaptive.latencySamples} seconds (--no-adapt p95: ${fixed.latencyP95Ms ?? '–'} ms)`,
    },
    {
      target: '1.2 Mbit/s uplink: --adapt, 0 decoder errors in the viewer\'s recording (issue 14)',
      met: adaptive.framesDecoded > 0 && adaptive.decodeErrors === 0,
      detail: `${adaptive.decodeErrors} error lines, ${adaptive.framesDecoded} frames decoded (--no-adapt: ${fixed.decodeErrors} errors, ${fixed.framesDecoded} frames)`,
    },
  ];
  return { name: 'uplink', title, rows: rows as unknown as Record<string, unknown>[], markdown, targets };
}
