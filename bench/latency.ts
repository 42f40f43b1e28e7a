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
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  LOW_DELAY_IN, OUT, TINY_OUT, childPids, cpuSeconds, exited, freePort, freePortPair, missing, percentile, ratio, rng, round,
  run, sleep, stop, table, tinyFrames, udpcast, waitFor, x264Args, type BenchContext, type BenchResult, type TinyFrame,
} from './lib.ts';

const SIZE = '1280x720';
const FPS = 30;
const GOP = 60;
const BLACK_MAX = 60;
const WHITE_MIN = 195;

type Colour = 'black' | 'white';
const colourOf = (level: number): Colour | null => (level <= BLACK_MAX ? 'black' : level >= WHITE_MIN ? 'white' : null);

class Frames {
  list: TinyFrame[] = [];
  attach(stream: NodeJS.ReadableStream): void {
    tinyFrames(stream, (f) => this.list.push(f));
  }
  /** First frame at or after `since` showing `c`. */
  firstAfter(since: number, c: Colour): TinyFrame | undefined {
    return this.list.find((f) => f.at >= since && colourOf(f.level) === c);
  }
}

async function xsetroot(display: string, c: Colour): Promise<number> {
  const t0 = performance.now();
  const p = run('xsetroot', ['-display', display, '-solid', c]);
  await exited(p);
  return performance.now() - t0;
}

function decoder(): ChildProcess {
  return run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...LOW_DELAY_IN, '-f', 'h264', '-i', 'pipe:0', ...TINY_OUT], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

const grabIn = (display: string) => ['-fflags', 'nobuffer', '-probesize', '32', '-analyzeduration', '0', '-f', 'x11grab', '-draw_mouse', '1', '-framerate', String(FPS), '-i', display];

interface VariantRun {
  latencies: number[];
  missed: number;
  xsetrootMs: number[];
}

/** Flips the screen `flips` times at random moments; each latency is xsetroot's exit → first frame. */
async function flipLoop(display: string, frames: Frames, flips: number, seed: number, log: (l: string) => void): Promise<VariantRun> {
  const r = rng(seed);
  const out: VariantRun = { latencies: [], missed: 0, xsetrootMs: [] };
  await xsetroot(display, 'black');
  await waitFor('a black frame', () => frames.firstAfter(performance.now() - 500, 'black') !== undefined, 15_000);
  let colour: Colour = 'black';
  for (let i = 0; i < flips; i++) {
    await sleep(400 + r() * 600); // a random moment, not in step with the 33 ms frame clock
    colour = colour === 'black' ? 'white' : 'black';
    const took = await xsetroot(display, colour);
    const at = performance.now();
    out.xsetrootMs.push(took);
    try {
      await waitFor(`a ${colour} frame`, () => frames.firstAfter(at, colour) !== undefined, 3000, 2);
      out.latencies.push(frames.firstAfter(at, colour)!.at - at);
    } catch {
      out.missed++;
      log(`latency: flip ${i} to ${colour}: no frame within 3 s`);
    }
  }
  return out;
}

export async function latencyBench(ctx: BenchContext): Promise<BenchResult> {
  const gone = missing('Xvfb', 'xsetroot', 'ffmpeg');
  if (gone) return { name: 'latency', title: 'Screen → decoded frame latency (issues 3, 7.1)', skipped: gone, rows: [], markdown: '' };
  const flips = ctx.quick ? 10 : 25;
  let n = 90 + Math.floor(Math.random() * 100);
  while (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) n++;
  const display = `:${n}`;
  const xvfb = run('Xvfb', [display, '-screen', '0', `${SIZE}x24`, '-noreset', '-nolisten', 'tcp']);
  const rows: Record<string, unknown>[] = [];
  let cpu: Record<string, number | null> = {};
  try {
    await waitFor('Xvfb', () => existsSync(`/tmp/.X11-unix/X${n}`), 10_000);
    await sleep(300);

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
        const res = await flipLoop(display, frames, flips, 1, ctx.log);
        const c1 = cpuSeconds(enc.pid!);
        cpu.floorFfmpegPct = c0 !== null && c1 !== null ? round((100 * (c1 - c0)) / ((performance.now() - t0) / 1000), 1) : null;
        rows.push({ variant: 'floor', ...summary(res) });
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
        const res = await flipLoop(display, frames, flips, 2, ctx.log);
        rows.push({ variant: 'ffmpeg-rtp', ...summary(res) });
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
      const dec = decoder();
      frames.attach(dec.stdout!);
      dec.stdin!.on('error', () => {});
      const watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--output', '-', '--no-dashboard'], { stdio: ['ignore', 'pipe', 'pipe'] });
      watch.stdout!.pipe(dec.stdin!);
      watch.stderr!.resume();
      await sleep(500);
      const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'screen', '--display', display, '--fps', String(FPS), '--gop', String(GOP), '--no-dashboard', '--stats-json', stats]);
      try {
        await waitFor('udpcast frames', () => frames.list.length > 10, 20_000);
        const ff = childPids(share.pid!).find((p) => readFileSync(`/proc/${p}/comm`, 'utf8').trim() === 'ffmpeg');
        const s0 = cpuSeconds(share.pid!);
        const f0 = ff ? cpuSeconds(ff) : null;
        const r0 = cpuSeconds(relay.pid!);
        const t0 = performance.now();
        const res = await flipLoop(display, frames, flips, 3, ctx.log);
        const secs = (performance.now() - t0) / 1000;
        const pct = (a: number | null, b: number | null) => (a !== null && b !== null ? round((100 * (b - a)) / secs, 1) : null);
        cpu = {
          ...cpu,
          shareNodePct: pct(s0, cpuSeconds(share.pid!)),
          shareFfmpegPct: ff ? pct(f0, cpuSeconds(ff)) : null,
          relayPct: pct(r0, cpuSeconds(relay.pid!)),
        };
        rows.push({ variant: 'udpcast', ...summary(res) });
      } finally {
        await stop(share);
        await stop(watch);
        await stop(dec);
        await stop(relay);
      }
    }
    ctx.log(`latency udpcast: ${JSON.stringify(rows.at(-1))} cpu ${JSON.stringify(cpu)}`);
  } finally {
    await stop(xvfb);
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

function summary(r: VariantRun) {
  return {
    flips: r.latencies.length,
    missed: r.missed,
    p50Ms: round(percentile(r.latencies, 50), 1),
    p95Ms: round(percentile(r.latencies, 95), 1),
    minMs: round(Math.min(...r.latencies), 1),
    maxMs: round(Math.max(...r.latencies), 1),
    latenciesMs: r.latencies.map((x) => round(x, 1)),
    xsetrootMs: r.xsetrootMs.map((x) => round(x, 1)!),
  };
}
