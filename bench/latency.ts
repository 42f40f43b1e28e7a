/**
 * Issue 7.1 / issue 3: screen → decoded frame latency on a virtual screen. Xvfb at 1280x720, the
 * root window flipped between black and white at random moments (xsetroot), and the stream decoded
 * by FFmpeg into 8x8 grey frames stamped on arrival here: latency = flip → first frame of the new
 * colour. Side by side, with the same decoder and x264 settings:
 *   (a) floor: x11grab → libx264 → pipe → decoder, no network;
 *   (b) plain FFmpeg RTP: x11grab → libx264 → -f rtp → FFmpeg reading the SDP (its own decoder);
 *   (c) udpcast share --source screen → udpcast relay → udpcast watch --output - → decoder.
 * Also the share process's CPU and its FFmpeg child's, from /proc, over the flips.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  Frames, LOW_DELAY_IN, OUT, TINY_OUT, childPids, cpuSeconds, flipLoop, flipSummary, freePort, freePortPair, missing, percentile, ratio,
  rng, round, run, showColour, sleep, stop, table, udpcast, waitFor, x11grabIn, x264Args, xvfb, type BenchContext, type BenchResult,
} from './lib.ts';

const SIZE = '1280x720';
const FPS = 30;
const GOP = 60;

/** The tiny decoder; udpcast's `watch --output -` is Matroska, the others raw H.264. */
function decoder(format: 'h264' | 'matroska' = 'h264'): ChildProcess {
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...LOW_DELAY_IN, '-f', format, '-i', 'pipe:0', ...TINY_OUT], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

const grabIn = (display: string) => x11grabIn(display, FPS);

/** Black first, then `flips` flips at random moments; each latency is xsetroot's exit → first frame. */
async function flipRun(display: string, frames: Frames, flips: number, seed: number, log: (l: string) => void) {
  await showColour(display, frames, 'black', 15_000);
  const done = await flipLoop(display, frames, 'black', rng(seed), { flips, gapMs: [400, 1000] });
  done.forEach((f, i) => f.latencyMs === null && log(`latency: flip ${i} to ${f.colour}: no frame within 3 s`));
  return flipSummary(done);
}

export async function latencyBench(ctx: BenchContext): Promise<BenchResult> {
  const gone = missing('Xvfb', 'xsetroot', 'ffmpeg');
  if (gone) return { name: 'latency', title: 'Screen → decoded frame latency (issues 3, 7.1)', skipped: gone, rows: [], markdown: '' };
  const flips = ctx.quick ? 10 : 25;
  const { display, server } = await xvfb(SIZE);
  const rows: Record<string, unknown>[] = [];
  let cpu: Record<string, number | null> = {};
  try {

    // (a) floor
    {
      const frames = new Frames();
      const dec = decoder();
      frames.attach(dec.stdout!);
      const enc = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...grabIn(display), ...x264Args(GOP), '-f', 'h264', '-flush_packets', '1', 'pipe:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
      enc.stdout!.pipe(dec.stdin!);
      dec.stdin!.on('error', () => {});
      try {
        await waitFor('floor frames', () => frames.list.length > 10, 15_000);
        const c0 = cpuSeconds(enc.pid!);
        const t0 = performance.now();
        const res = await flipRun(display, frames, flips, 1, ctx.log);
        const c1 = cpuSeconds(enc.pid!);
        cpu.floorFfmpegPct = c0 !== null && c1 !== null ? round((100 * (c1 - c0)) / ((performance.now() - t0) / 1000), 1) : null;
        rows.push({ variant: 'floor', ...res });
      } finally {
        await stop(enc);
        await stop(dec);
      }
    }
    ctx.log(`latency floor: ${JSON.stringify(rows.at(-1))}`);

    // (b) plain FFmpeg RTP
    {
      const port = await freePortPair();
      const sdp = path.join(OUT, 'latency-rtp.sdp');
      writeFileSync(sdp, '');
      const frames = new Frames();
      const enc = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...grabIn(display), ...x264Args(GOP), '-f', 'rtp', '-sdp_file', sdp, `rtp://127.0.0.1:${port}`]);
      let rx: ChildProcess | undefined;
      try {
        await waitFor('the SDP file', () => readFileSync(sdp, 'utf8').includes('m=video'), 10_000);
        rx = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', '-protocol_whitelist', 'file,udp,rtp', ...LOW_DELAY_IN, '-i', sdp, ...TINY_OUT], { stdio: ['ignore', 'pipe', 'pipe'] });
        rx.stderr!.resume();
        frames.attach(rx.stdout!);
        await waitFor('RTP frames', () => frames.list.length > 10, 15_000);
        const res = await flipRun(display, frames, flips, 2, ctx.log);
        rows.push({ variant: 'ffmpeg-rtp', ...res });
      } finally {
        await stop(rx);
        await stop(enc);
      }
    }
    ctx.log(`latency ffmpeg-rtp: ${JSON.stringify(rows.at(-1))}`);

    // (c) udpcast share → relay → watch
    {
      const port = await freePort();
      const stats = path.join(OUT, 'latency-share.ndjson');
      writeFileSync(stats, '');
      const relay = udpcast(['relay', '--port', String(port), '--host', '127.0.0.1', '--no-dashboard']);
      const frames = new Frames();
      const dec = decoder('matroska');
      frames.attach(dec.stdout!);
      dec.stdin!.on('error', () => {});
      const watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--output', '-', '--no-dashboard'], { stdio: ['ignore', 'pipe', 'pipe'] });
      watch.stdout!.pipe(dec.stdin!);
      watch.stderr!.resume();
      await sleep(500);
      const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'screen', '--display', display, '--fps', String(FPS), '--gop', String(GOP), '--no-dashboard', '--stats-json', stats]);
      try {
        await waitFor('udpcast frames', () => frames.list.length > 10, 20_000);
        const ff = childPids(share.pid!, 'ffmpeg')[0];
        const s0 = cpuSeconds(share.pid!);
        const f0 = ff ? cpuSeconds(ff) : null;
        const r0 = cpuSeconds(relay.pid!);
        const t0 = performance.now();
        const res = await flipRun(display, frames, flips, 3, ctx.log);
        const secs = (performance.now() - t0) / 1000;
        const pct = (a: number | null, b: number | null) => (a !== null && b !== null ? round((100 * (b - a)) / secs, 1) : null);
        cpu = {
          ...cpu,
          shareNodePct: pct(s0, cpuSeconds(share.pid!)),
          shareFfmpegPct: ff ? pct(f0, cpuSeconds(ff)) : null,
          relayPct: pct(r0, cpuSeconds(relay.pid!)),
        };
        rows.push({ variant: 'udpcast', ...res });
      } finally {
        await stop(share);
        await stop(watch);
        await stop(dec);
        await stop(relay);
      }
    }
    ctx.log(`latency udpcast: ${JSON.stringify(rows.at(-1))} cpu ${JSON.stringify(cpu)}`);
  } finally {
    await stop(server);
  }

  const floor = rows.find((r) => r.variant === 'floor');
  for (const r of rows) {
    r.p50VsFloor = ratio(r.p50Ms as number, floor?.p50Ms as number);
    r.p95VsFloor = ratio(r.p95Ms as number, floor?.p95Ms as number);
  }
  const u = rows.find((r) => r.variant === 'udpcast');
  const label: Record<string, string> = {
    floor: '(a) floor: x11grab → x264 → pipe → decoder',
    'ffmpeg-rtp': '(b) FFmpeg -f rtp → FFmpeg reading the SDP',
    udpcast: '(c) udpcast share → relay → watch --output - → decoder',
  };
  const markdown = [
    table(
      ['path', 'flips seen', 'p50 ms', 'p95 ms', 'min / max ms', 'p50 × floor', 'p95 × floor'],
      rows.map((r) => [label[r.variant as string], `${r.flips}/${(r.flips as number) + (r.missed as number)}`, r.p50Ms, r.p95Ms, `${r.minMs} / ${r.maxMs}`, r.p50VsFloor, r.p95VsFloor]),
    ),
    '',
    table(
      ['process (720p30 screen, during the flips)', 'CPU, % of one core'],
      [
        ['udpcast share (node: read FLV, packetize, send)', cpu.shareNodePct],
        ["udpcast share's FFmpeg child (x11grab + libx264)", cpu.shareFfmpegPct],
        ['udpcast relay', cpu.relayPct],
        ['floor FFmpeg (x11grab + libx264 → pipe), same settings', cpu.floorFfmpegPct],
      ],
    ),
    '',
    `Xvfb ${SIZE}x24; ${flips} flips per path at random moments 0.4-1.0 s apart; the flip time is when \`xsetroot\` ` +
      `exits (it has synced with the X server by then; xsetroot itself took p50 ${round(percentile(rows.flatMap((r) => r.xsetrootMs as number[]), 50), 1)} ms ` +
      'from spawn to exit, not counted). Frames: FFmpeg decodes to 8x8 grey (`-vf scale=8:8 -f rawvideo -pix_fmt gray`, ' +
      '`-fflags nobuffer -flags low_delay -probesize 32 -analyzeduration 0`), stamped when they reach this process; ' +
      'a frame counts as the new colour when its mean grey level is ≤ 60 (black) or ≥ 195 (white). Same x264 settings ' +
      `everywhere (ultrafast, zerolatency, no B-frames, GOP ${GOP}, 2500 kbit/s). The decoder of (a) and (c) reads Annex B ` +
      "from a pipe, so FFmpeg's H.264 parser sees the end of a frame only when the next one starts: every path but (b) " +
      'carries that one-frame wait at the decoder, the floor included.',
  ].join('\n');
  return {
    name: 'latency',
    title: 'Screen → decoded frame latency (issues 3, 7.1)',
    rows: [...rows, { cpu }],
    markdown,
    targets: [
      {
        target: 'udpcast p50 ≤ 1.05× the floor',
        met: u?.p50VsFloor != null ? (u.p50VsFloor as number) <= 1.05 : null,
        detail: `udpcast p50 ${u?.p50Ms} ms vs floor ${floor?.p50Ms} ms (${u?.p50VsFloor}×)`,
      },
    ],
  };
}
