/**
 * Issues 5 / 7.4: time to the first decodable frame for a viewer that joins mid-GOP, with a 10 s
 * GOP (--gop 300 at 30 fps). udpcast: a `watch --output -` spawned while a share runs through a
 * relay, its output into the tiny FFmpeg decoder; timed from spawn to the first output byte and
 * to the first decoded frame, plus watch's own `firstFrameMs` (first SUBSCRIBE → first whole
 * frame). Plain FFmpeg RTP: an FFmpeg reading the SDP started mid-stream, timed from spawn to its
 * first decoded frame. Joins happen one after another at random points of the GOP.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  LOW_DELAY_IN, OUT, TINY_OUT, allStats, freePort, freePortPair, missing, percentile, ratio, rng, round, run, sleep, stop, table,
  tinyFrames, udpcast, waitFor, x264Args, type BenchContext, type BenchResult,
} from './lib.ts';

const GOP = 300;
const FPS = 30;
const GOP_MS = (GOP / FPS) * 1000;
/** A join that has no frame after this long has failed (more than one whole GOP). */
const JOIN_TIMEOUT_MS = GOP_MS + 3000;
/**
 * Decoder input flags for a join: LOW_DELAY_IN without `-fflags nobuffer`, which throws away the
 * packets FFmpeg reads while probing, so a stream that opens with its only keyframe for 10 s (the
 * relay's catch-up) would decode nothing until the next one. Same flags for both systems.
 */
const JOIN_IN = LOW_DELAY_IN.filter((a, i, all) => a !== 'nobuffer' && !(a === '-fflags' && all[i + 1] === 'nobuffer'));

interface Join {
  /** Where in the GOP the join happened, ms since the stream started, modulo the GOP. */
  gopPhaseMs: number;
  firstByteMs: number | null;
  firstFrameMs: number | null;
  watchFirstFrameMs?: number | null;
}

async function timeFirstFrame(child: ChildProcess, frames: NodeJS.ReadableStream, t0: number, bytes?: NodeJS.ReadableStream): Promise<{ firstByteMs: number | null; firstFrameMs: number | null }> {
  let firstByte: number | null = null;
  let firstFrame: number | null = null;
  bytes?.once('data', () => (firstByte = performance.now() - t0));
  tinyFrames(frames, () => (firstFrame ??= performance.now() - t0));
  try {
    await waitFor('a first frame', () => firstFrame !== null || child.exitCode !== null, JOIN_TIMEOUT_MS, 5);
  } catch {
    /* no frame within a GOP and a bit: reported as null */
  }
  return { firstByteMs: firstByte, firstFrameMs: firstFrame };
}

/** The tiny decoder; udpcast's `watch --output -` is Matroska, the others raw H.264. */
function decoder(format: 'h264' | 'matroska' = 'h264'): ChildProcess {
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...JOIN_IN, '-f', format, '-i', 'pipe:0', ...TINY_OUT], { stdio: ['pipe', 'pipe', 'pipe'] });
}

export async function lateJoinBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Late join: first decodable frame with a 10 s GOP (issues 5, 7.4)';
  const gone = missing('ffmpeg');
  if (gone) return { name: 'latejoin', title, skipped: gone, rows: [], markdown: '' };
  const joins = ctx.quick ? 3 : 6;
  const r = rng(7);
  const udp: Join[] = [];
  const ff: Join[] = [];

  // udpcast
  {
    const port = await freePort();
    const relay = udpcast(['relay', '--port', String(port), '--host', '127.0.0.1', '--no-dashboard']);
    await sleep(1000);
    const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--gop', String(GOP), '--fps', String(FPS), '--no-dashboard']);
    const start = performance.now();
    try {
      await sleep(2500);
      for (let i = 0; i < joins; i++) {
        await sleep(500 + r() * 3000);
        const stats = path.join(OUT, `latejoin-watch-${i}.ndjson`);
        writeFileSync(stats, '');
        const dec = decoder('matroska');
        dec.stdin!.on('error', () => {});
        const t0 = performance.now();
        const watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--output', '-', '--stats-json', stats, '--no-dashboard'], { stdio: ['ignore', 'pipe', 'pipe'] });
        watch.stderr!.resume();
        watch.stdout!.pipe(dec.stdin!);
        try {
          const t = await timeFirstFrame(dec, dec.stdout!, t0, watch.stdout!);
          await sleep(1500); // one stats line after the first frame
          const first = allStats(stats).map((s) => s.firstFrameMs).find((x) => typeof x === 'number') as number | undefined;
          udp.push({ gopPhaseMs: Math.round((t0 - start) % GOP_MS), ...t, watchFirstFrameMs: first ?? null });
          ctx.log(`latejoin udpcast: ${JSON.stringify(udp.at(-1))}`);
        } finally {
          await stop(watch);
          await stop(dec);
        }
      }
    } finally {
      await stop(share);
      await stop(relay);
    }
  }

  // plain FFmpeg RTP
  {
    const port = await freePortPair();
    const sdp = path.join(OUT, 'latejoin-rtp.sdp');
    writeFileSync(sdp, '');
    const tx = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-re', '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=${FPS}`, ...x264Args(GOP), '-f', 'rtp', '-sdp_file', sdp, `rtp://127.0.0.1:${port}`]);
    const start = performance.now();
    try {
      await waitFor('the SDP file', () => readFileSync(sdp, 'utf8').includes('m=video'), 10_000);
      await sleep(2500);
      for (let i = 0; i < joins; i++) {
        await sleep(500 + r() * 3000);
        const t0 = performance.now();
        const rx = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-protocol_whitelist', 'file,udp,rtp', ...JOIN_IN, '-i', sdp, ...TINY_OUT], { stdio: ['ignore', 'pipe', 'pipe'] });
        rx.stderr!.resume();
        try {
          const t = await timeFirstFrame(rx, rx.stdout!, t0);
          ff.push({ gopPhaseMs: Math.round((t0 - start) % GOP_MS), firstByteMs: null, firstFrameMs: t.firstFrameMs });
          ctx.log(`latejoin ffmpeg: ${JSON.stringify(ff.at(-1))}`);
        } finally {
          await stop(rx);
        }
      }
    } finally {
      await stop(tx);
    }
  }

  const stat = (xs: (number | null | undefined)[]) => {
    const v = xs.filter((x): x is number => typeof x === 'number');
    return { p50: round(percentile(v, 50), 0), p95: round(percentile(v, 95), 0), n: v.length };
  };
  const uFrame = stat(udp.map((j) => j.firstFrameMs));
  const uByte = stat(udp.map((j) => j.firstByteMs));
  const uWatch = stat(udp.map((j) => j.watchFirstFrameMs));
  const fFrame = stat(ff.map((j) => j.firstFrameMs));
  const rows = [
    { system: 'udpcast: spawn watch → first decoded frame', ...uFrame, vsFfmpeg: ratio(uFrame.p50, fFrame.p50, 3) },
    { system: 'udpcast: spawn watch → first output byte', ...uByte, vsFfmpeg: ratio(uByte.p50, fFrame.p50, 3) },
    { system: "udpcast: watch's firstFrameMs (SUBSCRIBE → whole frame)", ...uWatch, vsFfmpeg: ratio(uWatch.p50, fFrame.p50, 3) },
    { system: 'plain FFmpeg RTP: spawn → first decoded frame', ...fFrame, vsFfmpeg: 1 },
  ];
  const markdown = [
    table(['measure', 'joins with a frame', 'p50 ms', 'p95 ms', 'p50 × FFmpeg'], rows.map((x) => [x.system, `${x.n}/${joins}`, x.p50, x.p95, x.vsFfmpeg])),
    '',
    `${joins} joins per system, one after another, 0.5-3.5 s apart (seeded), into a 720p30 testsrc2 stream with ` +
      `GOP ${GOP} (one keyframe every ${GOP_MS / 1000} s); join points in the GOP (ms): udpcast ` +
      `${udp.map((j) => j.gopPhaseMs).join(', ')}; FFmpeg ${ff.map((j) => j.gopPhaseMs).join(', ')}. Both decoders are FFmpeg ` +
      'with `-flags low_delay -probesize 32 -analyzeduration 0` writing 8x8 grey frames; not `-fflags nobuffer`, which ' +
      'discards the packets read while probing: with it the decoder loses the keyframe a joining udpcast viewer gets ' +
      'first and shows nothing until the next one (an earlier run measured 5-9 s that way). The spawn ' +
      'times include starting node + tsx (udpcast) or FFmpeg; a join with no frame within ' +
      `${JOIN_TIMEOUT_MS / 1000} s counts as missing.`,
  ].join('\n');
  return {
    name: 'latejoin',
    title,
    rows: [...rows, { udpcastJoins: udp, ffmpegJoins: ff }],
    markdown,
    targets: [
      {
        target: 'watch start → first decodable frame p95 ≤ 300 ms whatever the GOP (issue 5)',
        met: uWatch.p95 !== null ? uWatch.p95 <= 300 : null,
        detail: `firstFrameMs p95 ${uWatch.p95} ms; spawn → first decoded frame p95 ${uFrame.p95} ms (FFmpeg RTP p50 ${fFrame.p50} ms)`,
      },
    ],
  };
}
