/**
 * Glass to glass: what a person watching sees, not what a decoder hands over. Two virtual screens:
 * the shared one (Xvfb 1280x720) has its root window flipped black ↔ white at random moments
 * (xsetroot); the viewer's player opens its window on a second, larger Xvfb (1920x1080, so the
 * 1280x720 window fits), and a 250 fps x11grab of an 8x8 square inside that window, away from the
 * centre where the shared cursor is drawn, stamps when the window changes colour. Latency of a flip
 * = xsetroot's exit → first grabbed sample of the new colour. Side by side, 720p30, same x264
 * settings (ultrafast, zerolatency, GOP 60):
 *   (0) the probe on the shared screen itself, no player: what the measuring adds;
 *   (a) by hand: ffmpeg x11grab → libx264 → -f h264 pipe | ffplay -f h264 - (low-delay flags);
 *   (b) FFmpeg RTP: ffmpeg -f rtp → ffplay reading the SDP;
 *   (c) udpcast share (embedded relay) → udpcast watch, its own ffplay window;
 *   (d) the same with --codec mjpeg;
 *   (e) late join: watch started 0.5-1.8 s into the share's first GOP, flips right after joining;
 *   (f) recovery, on (c)'s session and on (a)'s as the baseline: the viewer's ffplay stopped
 *       (SIGSTOP 2 s) and paused (`p`, 6 s), then flips from the moment it resumes until one is
 *       back within 1.2× that session's live p50.
 */
import type { ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  Frames, OUT, TINY, TINY_OUT, childPids, cpuSeconds, flipLoop, flipSummary, freePort, freePortPair, missing, percentile, ratio, rng,
  round, run, showColour, sleep, stop, stopTree, table, udpcast, waitFor, waitForLine, x11grabIn, x264Args, xsetroot, xvfb,
  type BenchContext, type BenchResult, type Colour, type Flip,
} from './lib.ts';

export const SIZE = '1280x720';
/** The viewer's screen: larger than the video, so ffplay's window (video-sized) fits whole. */
export const VIEWER_SCREEN = '1920x1080';
export const FPS = 30;
export const GOP = 60;
const GOP_MS = (GOP / FPS) * 1000;
/** The probe square's offset from the player window's top-left corner, px (the cursor is at the centre). */
const PROBE_AT = 100;
const PROBE_FPS = 250;
/** A flip not seen within this long is missed. */
export const MISS_MS = 3000;
/** After a miss, wait up to this long more for the colour before flipping again (a player far behind). */
export const SETTLE_MS = 10_000;
/** Pause before each flip, ms: a few hundred ms to 1 s, seeded. */
export const GAP_MS: [number, number] = [300, 1000];
/** After a stall, flips come faster so the catching up is sampled often. */
const RECOVERY_GAP_MS: [number, number] = [150, 400];
/** A flip within this many times the live p50 counts as caught up. */
const CAUGHT_UP = 1.2;
/** How long after a stall the flips go on at least, and at most. */
const RECOVERY_MIN_MS = 3000;
const RECOVERY_MAX_MS = 30_000;
const STOP_MS = 2000;
const PAUSE_MS = 6000;
/** A window, a first frame or a probe sample not there by then is a failure. */
export const START_TIMEOUT_MS = 20_000;

const QUIET = ['-hide_banner', '-loglevel', 'error', '-nostdin'];
export const QUIET_PLAY = ['-hide_banner', '-loglevel', 'warning'];
/** (a): the ffplay flags a person would type for low delay when piping H.264 into it. */
const BY_HAND_FLAGS = ['-fflags', 'nobuffer', '-flags', 'low_delay', '-framedrop', '-probesize', '32', '-analyzeduration', '0', '-sync', 'ext'];
/** (b): ffplay reading FFmpeg's SDP. */
const RTP_FLAGS = ['-protocol_whitelist', 'file,udp,rtp', '-fflags', 'nobuffer', '-flags', 'low_delay', '-framedrop'];

export interface Screens {
  shared: string;
  viewer: string;
}

/**
 * The two Xvfb screens of a glass rig: the shared one (SIZE) and the viewer's (VIEWER_SCREEN, its
 * root mid grey, so a probe off the player's window sees neither colour); close() ends both.
 */
export async function openScreens(): Promise<{ screens: Screens; close(): Promise<void> }> {
  const a = await xvfb(SIZE);
  const b = await xvfb(VIEWER_SCREEN).catch(async (err) => {
    await stop(a.server);
    throw err;
  });
  const close = async () => {
    await stop(b.server);
    await stop(a.server);
  };
  const screens: Screens = { shared: a.display, viewer: b.display };
  try {
    await xsetroot(screens.viewer, 'gray50');
  } catch (err) {
    await close();
    throw err;
  }
  return { screens, close };
}

export const onScreen = (display: string) => ({ env: { ...process.env, DISPLAY: display } });

/** xdotool on `display`: its stdout, or '' when it failed; ended after 5 s. */
export async function xdotool(display: string, args: string[]): Promise<string> {
  const p = run('xdotool', args, { ...onScreen(display), stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const closed = new Promise<void>((r) => p.once('close', () => r()));
  const timer = setTimeout(() => void stop(p), 5000);
  await closed;
  clearTimeout(timer);
  return p.exitCode === 0 ? out : '';
}

interface Win {
  id: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

async function geometry(display: string, id: string): Promise<Win | undefined> {
  const g = Object.fromEntries((await xdotool(display, ['getwindowgeometry', '--shell', id])).trim().split('\n').map((l) => l.split('=')));
  return g.WIDTH ? { id, x: Number(g.X), y: Number(g.Y), width: Number(g.WIDTH), height: Number(g.HEIGHT) } : undefined;
}

/**
 * The visible window of process `pid` (SDL sets _NET_WM_PID), polled until `timeoutMs`. Its
 * geometry is read 200 ms after it shows: SDL sizes the window to the video, then centres it.
 */
async function windowOf(display: string, pid: number, timeoutMs: number): Promise<Win> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const id = (await xdotool(display, ['search', '--onlyvisible', '--pid', String(pid)])).trim().split('\n')[0];
    if (id) {
      await sleep(200);
      const w = await geometry(display, id);
      if (w) return w;
    }
    if (performance.now() > end) throw new Error(`no visible window of pid ${pid} on ${display} within ${timeoutMs} ms`);
    await sleep(50);
  }
}

/** The 250 fps grab of an 8x8 square of the player window, as tiny frames stamped on arrival. */
export interface Probe {
  frames: Frames;
  proc: ChildProcess;
  win: Win;
}

export async function startProbe(display: string, win: Win): Promise<Probe> {
  const frames = new Frames();
  const at = `${display}+${win.x + PROBE_AT},${win.y + PROBE_AT}`;
  const proc = run('ffmpeg', [...QUIET, ...x11grabIn(at, PROBE_FPS, { drawMouse: false, size: `${TINY}x${TINY}` }), ...TINY_OUT], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr!.resume();
  frames.attach(proc.stdout!);
  await waitFor('probe samples', () => frames.list.length >= 25, 5000);
  return { frames, proc, win };
}

/** Samples per second the probe delivered over its whole run. */
export function probeRate(p: Probe): number | null {
  const l = p.frames.list;
  return l.length > 1 ? round(((l.length - 1) * 1000) / (l[l.length - 1].at - l[0].at), 0) : null;
}

/** One way of getting the shared screen into a window on the viewer's screen. */
export interface Pipeline {
  /** Every process, stopped in this order at the end, with whatever children they leave. */
  procs: ChildProcess[];
  /** The ffplay showing it now (a watch may replace its player). */
  player: () => number | undefined;
}

/** Waits for the pipeline's player and its window, and puts the probe on the window. */
export async function attach(screens: Screens, p: Pipeline): Promise<Probe> {
  let pid: number | undefined;
  await waitFor('the player process', () => (pid = p.player()) !== undefined, START_TIMEOUT_MS);
  return startProbe(screens.viewer, await windowOf(screens.viewer, pid!, START_TIMEOUT_MS));
}

export async function teardown(p: Pipeline | undefined, probe?: Probe): Promise<void> {
  await stop(probe?.proc);
  for (const c of p?.procs ?? []) await stopTree(c);
}

/** (a) ffmpeg … -f h264 pipe:1 | ffplay -f h264 -: a kernel pipe between the two, as a shell makes. */
function byHand(screens: Screens): Pipeline {
  const enc = run('ffmpeg', [...QUIET, ...x11grabIn(screens.shared, FPS), ...x264Args(GOP), '-f', 'h264', '-flush_packets', '1', 'pipe:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
  enc.stderr!.resume();
  const play = run('ffplay', [...QUIET_PLAY, ...BY_HAND_FLAGS, '-window_title', 'glass: by hand', '-f', 'h264', '-'], {
    ...onScreen(screens.viewer),
    stdio: [enc.stdout!, 'ignore', 'pipe'],
  });
  play.stderr!.resume();
  return { procs: [play, enc], player: () => play.pid };
}

/** (b) ffmpeg … -f rtp rtp://127.0.0.1:PORT -sdp_file F, then ffplay F. */
export async function ffmpegRtp(screens: Screens): Promise<Pipeline> {
  const port = await freePortPair();
  const sdp = path.join(OUT, 'glass-rtp.sdp');
  writeFileSync(sdp, '');
  const enc = run('ffmpeg', [...QUIET, ...x11grabIn(screens.shared, FPS), ...x264Args(GOP), '-f', 'rtp', '-sdp_file', sdp, `rtp://127.0.0.1:${port}`]);
  const p: Pipeline = { procs: [enc], player: () => undefined };
  try {
    await waitFor('the SDP file', () => readFileSync(sdp, 'utf8').includes('m=video'), 10_000);
  } catch (err) {
    await teardown(p);
    throw err;
  }
  const play = run('ffplay', [...QUIET_PLAY, ...RTP_FLAGS, '-window_title', 'glass: ffmpeg rtp', sdp], onScreen(screens.viewer));
  return { procs: [play, enc], player: () => play.pid };
}

/** `udpcast share` of the shared screen with its embedded relay; resolves once the relay hears it. */
export async function share(screens: Screens, codec: 'h264' | 'mjpeg', extra: string[] = []): Promise<{ proc: ChildProcess; port: number; sendingAt: number }> {
  const port = await freePort();
  const proc = udpcast([
    'share', '--source', 'screen', '--display', screens.shared, '--port', String(port), '--host', '127.0.0.1',
    '--fps', String(FPS), '--gop', String(GOP), '--codec', codec, '--no-dashboard', ...extra,
  ]);
  try {
    await waitForLine(proc, /publisher/, START_TIMEOUT_MS, 'udpcast share: the relay hearing its publisher');
  } catch (err) {
    await stopTree(proc);
    throw err;
  }
  return { proc, port, sendingAt: performance.now() };
}

/** `udpcast watch` with its own ffplay window on the viewer's screen; its lines about the player go to the log. */
function watch(screens: Screens, port: number, log: (l: string) => void): ChildProcess {
  const w = udpcast(['watch', `127.0.0.1:${port}`, '--no-dashboard'], onScreen(screens.viewer));
  let partial = '';
  w.stderr!.on('data', (c: Buffer) => {
    const lines = (partial + c.toString()).split('\n');
    partial = lines.pop()!;
    for (const l of lines) if (/ffplay|player/i.test(l) && !/^watch |deprecated pixel format/.test(l)) log(`glass watch: ${l}`);
  });
  return w;
}

const ffplayOf = (w: ChildProcess) => () => (w.pid ? childPids(w.pid, 'ffplay')[0] : undefined);

/** Black on both ends first, then `flips` flips at random moments. */
export async function liveFlips(screens: Screens, probe: Probe, flips: number, r: () => number): Promise<Flip[]> {
  await showColour(screens.shared, probe.frames, 'black', START_TIMEOUT_MS);
  return flipLoop(screens.shared, probe.frames, 'black', r, { flips, gapMs: GAP_MS, missAfterMs: MISS_MS, settleAfterMissMs: SETTLE_MS });
}

type Stall = 'sigstop' | 'pause';

interface Recovery {
  /** The variant stalled: udpcast-h264, or by-hand as the baseline. */
  path: string;
  stall: Stall;
  /** ffplay before the stall and after the flips: they differ when watch restarted its player. */
  pidBefore: number;
  pidAfter: number | null;
  /** ffplay's CPU over the stall, % of one core: near 0 shows the stall took. */
  stallCpuPct: number | null;
  /** Each flip after resuming: ms since the resume, latency (null: missed) and, if missed, when it did show. */
  flips: { afterMs: number; latencyMs: number | null; lateMs: number | null }[];
  /** Resume → the first flip shown within CAUGHT_UP × the live p50; null if none. */
  recoveredMs: number | null;
}

/**
 * Stalls the viewer's ffplay on a steady screen (SIGSTOP for 2 s, or `p` twice 6 s apart), then
 * flips from the moment it resumes until a flip is shown within 1.2× the live p50 (at least 3 s,
 * at most 30 s; a flip waits for the one before, however late). The probe follows the player if
 * watch has replaced it with a window elsewhere by the resume.
 */
async function recover(path: string, stall: Stall, screens: Screens, p: Pipeline, probe: Probe, from: Colour, liveP50: number, r: () => number, log: (l: string) => void): Promise<{ rec: Recovery; probe: Probe; colour: Colour }> {
  await sleep(1000);
  const pid = p.player();
  if (pid === undefined) throw new Error(`${stall}: no ffplay under watch`);
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  if (stall === 'sigstop') {
    process.kill(pid, 'SIGSTOP');
    try {
      await sleep(STOP_MS);
    } finally {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        /* gone meanwhile: the flips will say so */
      }
    }
  } else {
    const id = (await windowOf(screens.viewer, pid, 5000)).id;
    await xdotool(screens.viewer, ['key', '--window', id, 'p']);
    await sleep(PAUSE_MS);
    await xdotool(screens.viewer, ['key', '--window', id, 'p']);
  }
  const resumed = performance.now();
  const cpu1 = cpuSeconds(pid);
  const stallCpuPct = cpu0 !== null && cpu1 !== null ? round((100 * (cpu1 - cpu0)) / ((resumed - t0) / 1000), 1) : null;
  const pidNow = p.player();
  if (pidNow !== undefined && pidNow !== pid) {
    const w = await windowOf(screens.viewer, pidNow, 5000);
    log(`glass ${path} ${stall}: watch replaced ffplay ${pid} with ${pidNow}, window at ${w.x},${w.y} ${w.width}x${w.height}`);
    if (w.x !== probe.win.x || w.y !== probe.win.y) {
      await stop(probe.proc);
      probe = await startProbe(screens.viewer, w);
    }
  }
  const caughtUp = (f: Flip) => f.latencyMs !== null && f.latencyMs <= CAUGHT_UP * liveP50;
  const flips = await flipLoop(screens.shared, probe.frames, from, r, {
    flips: 200,
    gapMs: RECOVERY_GAP_MS,
    missAfterMs: MISS_MS,
    settleAfterMissMs: RECOVERY_MAX_MS,
    until: (done) => performance.now() - resumed > RECOVERY_MAX_MS || (performance.now() - resumed >= RECOVERY_MIN_MS && done.some(caughtUp)),
  });
  const back = flips.find(caughtUp);
  const rec: Recovery = {
    path,
    stall,
    pidBefore: pid,
    pidAfter: p.player() ?? null,
    stallCpuPct,
    flips: flips.map((f) => ({ afterMs: round(f.at - resumed, 0)!, latencyMs: round(f.latencyMs, 1), lateMs: round(f.lateMs, 1) })),
    recoveredMs: back ? round(back.at - resumed, 0) : null,
  };
  log(`glass recovery ${path} ${stall}: ${JSON.stringify(rec)}`);
  return { rec, probe, colour: flips.at(-1)?.colour ?? from };
}

interface Join {
  /** Watch spawned this long after the relay first heard the share: where in the first GOP. */
  joinAfterMs: number;
  /** Spawn → ffplay's window visible. */
  windowMs: number;
  flips: Flip[];
}

export async function glassBench(ctx: BenchContext): Promise<BenchResult> {
  const name = 'glass';
  const title = 'Glass to glass: screen → what the viewer sees in the player window';
  const gone = missing('Xvfb', 'xsetroot', 'xdotool', 'ffmpeg', 'ffplay');
  if (gone) return { name, title, skipped: gone, rows: [], markdown: '' };
  const flips = ctx.quick ? 8 : 25;
  const joins = ctx.quick ? 3 : 5;
  const flipsPerJoin = ctx.quick ? 3 : 4;
  const r = rng(11);
  const rows: Record<string, unknown>[] = [];
  const probeFps: number[] = [];
  const recoveries: Recovery[] = [];
  const lateJoins: Join[] = [];
  /** What failed and was carried on from, for the report. */
  const failures: string[] = [];

  const { screens, close } = await openScreens();
  try {
    const variant = async (label: string, start: () => Promise<Pipeline>, after?: (p: Pipeline, probe: Probe, done: Flip[]) => Promise<Probe>) => {
      await xsetroot(screens.shared, 'black');
      let p: Pipeline | undefined;
      let probe: Probe | undefined;
      try {
        p = await start();
        probe = await attach(screens, p);
        const w = probe.win;
        const done = await liveFlips(screens, probe, flips, r);
        rows.push({ variant: label, window: `${w.width}x${w.height}+${w.x}+${w.y}`, ...flipSummary(done), lateMs: done.flatMap((f) => (f.lateMs ? [round(f.lateMs, 0)] : [])) });
        ctx.log(`glass ${label}: ${JSON.stringify(rows.at(-1))}`);
        if (after) probe = await after(p, probe, done);
      } catch (err) {
        // One path failing (no window, no frames) is a result for that path, not the end of the run.
        ctx.log(`glass ${label}: FAILED: ${(err as Error).message}`);
        if (!rows.some((x) => x.variant === label)) rows.push({ variant: label, failed: (err as Error).message });
        else failures.push(`${label}, after its flips: ${(err as Error).message}`);
      } finally {
        if (probe) probeFps.push(probeRate(probe) ?? NaN);
        await teardown(p, probe);
      }
    };

    /** (f) on a variant's session, after its live flips: both stalls, one after the other. */
    const stalls = (path: string) => async (p: Pipeline, probe: Probe, done: Flip[]) => {
      const live = flipSummary(done).p50Ms;
      if (live === null) {
        ctx.log(`glass recovery ${path}: skipped, no live p50`);
        return probe;
      }
      let colour = done.at(-1)?.colour ?? 'black';
      for (const stall of ['sigstop', 'pause'] as const) {
        const res = await recover(path, stall, screens, p, probe, colour, live, r, ctx.log);
        recoveries.push(res.rec);
        probe = res.probe;
        colour = res.colour;
      }
      return probe;
    };

    // What the probe itself adds: the same grab on the shared screen, no player in between.
    {
      await xsetroot(screens.shared, 'black');
      const [w, h] = SIZE.split('x').map(Number);
      const probe = await startProbe(screens.shared, { id: 'root', x: 0, y: 0, width: w, height: h });
      try {
        rows.push({ variant: 'probe-floor', ...flipSummary(await liveFlips(screens, probe, flips, r)) });
        ctx.log(`glass probe-floor: ${JSON.stringify(rows.at(-1))}`);
      } finally {
        probeFps.push(probeRate(probe) ?? NaN);
        await stop(probe.proc);
      }
    }

    await variant('by-hand', async () => byHand(screens), stalls('by-hand'));
    await variant('ffmpeg-rtp', () => ffmpegRtp(screens));
    const udpcastPipeline = async (codec: 'h264' | 'mjpeg') => {
      const s = await share(screens, codec);
      const w = watch(screens, s.port, ctx.log);
      return { procs: [w, s.proc], player: ffplayOf(w) };
    };
    await variant('udpcast-h264', () => udpcastPipeline('h264'), stalls('udpcast-h264'));
    await variant('udpcast-mjpeg', () => udpcastPipeline('mjpeg'));

    // (e) late join: a fresh share each time, watch started at a random point of its first GOP.
    for (let i = 0; i < joins; i++) {
      await xsetroot(screens.shared, 'black');
      let p: Pipeline | undefined;
      let probe: Probe | undefined;
      try {
        const s = await share(screens, 'h264');
        p = { procs: [s.proc], player: () => undefined };
        await sleep(500 + r() * 1300);
        const t0 = performance.now();
        const w = watch(screens, s.port, ctx.log);
        p = { procs: [w, s.proc], player: ffplayOf(w) };
        probe = await attach(screens, p);
        const windowMs = performance.now() - t0;
        // No wait for a black frame first: the screen was black since before the share began.
        const done = await flipLoop(screens.shared, probe.frames, 'black', r, { flips: flipsPerJoin, gapMs: GAP_MS, missAfterMs: MISS_MS, settleAfterMissMs: SETTLE_MS });
        lateJoins.push({ joinAfterMs: round(t0 - s.sendingAt, 0)!, windowMs: round(windowMs, 0)!, flips: done });
        ctx.log(`glass late join ${i}: at ${round(t0 - s.sendingAt, 0)} ms, window after ${round(windowMs, 0)} ms, flips ${JSON.stringify(done.map((f) => round(f.latencyMs ?? f.lateMs, 0)))}`);
      } catch (err) {
        ctx.log(`glass late join ${i}: FAILED: ${(err as Error).message}`);
        failures.push(`late join ${i + 1}: ${(err as Error).message}`);
      } finally {
        if (probe) probeFps.push(probeRate(probe) ?? NaN);
        await teardown(p, probe);
      }
    }
  } finally {
    await close();
  }

  const joinFlips = lateJoins.flatMap((j) => j.flips);
  rows.push({ variant: 'udpcast-latejoin', ...flipSummary(joinFlips) });
  const firstAfterJoin = flipSummary(lateJoins.map((j) => j.flips[0]).filter((f): f is Flip => f !== undefined));

  const by = (v: string) => rows.find((x) => x.variant === v) as ReturnType<typeof flipSummary> & Record<string, unknown> | undefined;
  const hand = by('by-hand');
  for (const x of rows.filter((x) => x.variant !== 'probe-floor')) {
    x.p50VsByHand = ratio(x.p50Ms as number, hand?.p50Ms);
    x.p95VsByHand = ratio(x.p95Ms as number, hand?.p95Ms);
  }
  const h264 = by('udpcast-h264');
  const mjpeg = by('udpcast-mjpeg');
  const late = by('udpcast-latejoin');
  /** A ratio meets its target only if the flips it stands on were mostly seen (≤ 5% missed). */
  const meets = (v: typeof hand, x: number | null, limit: number) =>
    !v ? null : v.flips === 0 ? false : x === null ? null : x <= limit && v.missed <= 0.05 * (v.flips + v.missed);
  const stallLabel: Record<Stall, string> = {
    sigstop: `SIGSTOP ${STOP_MS / 1000} s, SIGCONT (a CPU stall)`,
    pause: `\`p\` pressed, ${PAUSE_MS / 1000} s, \`p\` again`,
  };
  const targets = [
    { target: 'udpcast H.264 p50 ≤ 0.6× by hand (ffmpeg piped into ffplay)', met: meets(h264, h264?.p50VsByHand as number, 0.6), detail: `${h264?.p50Ms} ms vs ${hand?.p50Ms} ms (${h264?.p50VsByHand}×), ${h264?.missed} missed` },
    { target: 'udpcast H.264 p95 ≤ 0.7× by hand', met: meets(h264, h264?.p95VsByHand as number, 0.7), detail: `${h264?.p95Ms} ms vs ${hand?.p95Ms} ms (${h264?.p95VsByHand}×)` },
    { target: 'udpcast MJPEG p50 ≤ 0.8× by-hand H.264 p50', met: meets(mjpeg, mjpeg?.p50VsByHand as number, 0.8), detail: `${mjpeg?.p50Ms} ms vs ${hand?.p50Ms} ms (${mjpeg?.p50VsByHand}×), ${mjpeg?.missed} missed` },
    // "Whatever the join point": the same limits for the flips right after a mid-GOP join.
    { target: 'udpcast H.264 joined mid-GOP: p50 ≤ 0.6× by hand', met: meets(late, late?.p50VsByHand as number, 0.6), detail: `${late?.p50Ms} ms (${late?.p50VsByHand}×); first flip after each join p50 ${firstAfterJoin.p50Ms} ms, ${late?.missed} missed` },
    { target: 'udpcast H.264 joined mid-GOP: p95 ≤ 0.7× by hand', met: meets(late, late?.p95VsByHand as number, 0.7), detail: `${late?.p95Ms} ms (${late?.p95VsByHand}×); first flip after each join p95 ${firstAfterJoin.p95Ms} ms` },
    ...recoveries
      .filter((x) => x.path !== 'by-hand')
      .map((x) => ({
        target: `${x.path}: after ${stallLabel[x.stall]}, a flip within ${CAUGHT_UP}× the live p50 within 1 s of resuming`,
        met: x.recoveredMs !== null && x.recoveredMs <= 1000,
        detail: x.recoveredMs === null ? `not within ${RECOVERY_MAX_MS / 1000} s` : `${x.recoveredMs} ms`,
      })),
  ];

  const label: Record<string, string> = {
    'probe-floor': '(0) the probe on the shared screen itself: what measuring adds',
    'by-hand': '(a) by hand: `ffmpeg x11grab → libx264 -f h264 - \\| ffplay -f h264 -`',
    'ffmpeg-rtp': '(b) FFmpeg RTP: `ffmpeg -f rtp` → `ffplay x.sdp`',
    'udpcast-h264': '(c) udpcast share → embedded relay → watch (H.264)',
    'udpcast-mjpeg': '(d) the same, `--codec mjpeg`',
    'udpcast-latejoin': `(e) (c) joined mid-GOP: the first ${flipsPerJoin} flips after each of ${joins} joins`,
  };
  const xsetrootMs = rows.flatMap((x) => (x.xsetrootMs as number[] | undefined) ?? []);
  const markdown = [
    table(
      ['path (720p30, x264 ultrafast/zerolatency, GOP 60, 2500 kbit/s)', 'flips seen', 'missed', 'p50 ms', 'p95 ms', 'max ms', 'p50 × by hand', 'p95 × by hand'],
      rows.map((x) => [label[x.variant as string], x.failed ? `failed: ${x.failed}` : x.flips, x.missed, x.p50Ms, x.p95Ms, x.maxMs, x.p50VsByHand, x.p95VsByHand]),
    ),
    '',
    table(
      ['target', 'measured', 'met'],
      [
        ...targets.map((t) => [t.target, t.detail, t.met === null ? 'n/a' : t.met ? 'yes' : '**no**']),
        ...recoveries
          .filter((x) => x.path === 'by-hand')
          .map((x) => [`by hand, for comparison: back live after ${stallLabel[x.stall]}`, x.recoveredMs === null ? `not within ${RECOVERY_MAX_MS / 1000} s` : `${x.recoveredMs} ms`, '–']),
      ],
    ),
    '',
    table(
      ['late join', 'joined, ms after the relay first heard the share', 'spawn → window ms', `flip latencies after joining, ms (× = missed, seen at)`],
      lateJoins.map((j, i) => [i + 1, j.joinAfterMs, j.windowMs, j.flips.map((f) => (f.latencyMs !== null ? fmtMs(f.latencyMs) : `× ${f.lateMs !== undefined ? fmtMs(f.lateMs) : '> ' + (MISS_MS + SETTLE_MS)}`)).join(', ')]),
    ),
    '',
    table(
      ['stall of the viewer\'s ffplay', 'ffplay CPU during it %', 'player replaced', 'first flip after resume: at ms / latency ms', 'flips started 1-3 s after resume: n, p50 / max ms, missed', `back within ${CAUGHT_UP}× live p50 after ms`],
      recoveries.map((x) => {
        const mid = x.flips.filter((f) => f.afterMs >= 1000 && f.afterMs <= 3000);
        const seen = mid.flatMap((f) => (f.latencyMs === null ? [] : [f.latencyMs]));
        const f0 = x.flips[0];
        return [
          `${label[x.path].slice(0, 3)} ${stallLabel[x.stall]}`,
          x.stallCpuPct,
          x.pidAfter === x.pidBefore ? 'no' : x.pidAfter === null ? 'gone' : 'yes',
          f0 ? `${f0.afterMs} / ${f0.latencyMs ?? (f0.lateMs !== null ? `× (seen at ${f0.lateMs})` : `× (not seen in ${(MISS_MS + RECOVERY_MAX_MS) / 1000} s)`)}` : '–',
          `${seen.length}, ${round(percentile(seen, 50), 1) ?? '–'} / ${seen.length ? round(Math.max(...seen), 1) : '–'}, ${mid.length - seen.length}`,
          x.recoveredMs ?? `none in ${RECOVERY_MAX_MS / 1000} s`,
        ];
      }),
    ),
    '',
    ...(failures.length ? [`Failed and carried on: ${failures.join('; ')}.`, ''] : []),
    `Two Xvfb screens: the shared one ${SIZE}, the viewer's ${VIEWER_SCREEN} (root mid grey, so a probe off the window sees ` +
      `neither colour). ${flips} flips per path at random moments ${GAP_MS[0]}-${GAP_MS[1]} ms apart (seeded), each after the ` +
      `previous one was seen. The flip time is when \`xsetroot -solid\` exits (it has synced with the X server by then; ` +
      `spawn → exit took p50 ${round(percentile(xsetrootMs, 50), 1)} ms, not counted). The probe: FFmpeg x11grab of an ` +
      `${TINY}x${TINY} square ${PROBE_AT} px into the player window from its top-left corner (the shared cursor is drawn at ` +
      `the centre), \`-framerate ${PROBE_FPS} -draw_mouse 0\`, \`${TINY_OUT.slice(0, -1).join(' ')}\`, samples stamped when they ` +
      `reach this process; it delivered p50 ${round(percentile(probeFps.filter(Number.isFinite), 50), 0)} samples/s, so add up to ` +
      `~${round(1000 / PROBE_FPS, 0)} ms of sampling granularity to every figure. A sample is the new colour when its mean grey ` +
      `level is ≤ 60 (black) or ≥ 195 (white). A flip not seen within ${MISS_MS / 1000} s is missed (percentiles are over the ` +
      `flips seen); the next flip then waits up to ${SETTLE_MS / 1000} s more for it, so an old frame of a player far behind ` +
      'is never taken for a new one. ffplay places its window at the video size (1280x720) centred on the viewer\'s screen; ' +
      `windows found by pid (\`xdotool search --onlyvisible --pid\`): ${rows.filter((x) => x.window).map((x) => `${x.variant} ${x.window}`).join(', ')}.`,
    '',
    `Exact ffplay flags: (a) \`ffplay ${[...QUIET_PLAY, ...BY_HAND_FLAGS].join(' ')} -f h264 -\` reading the encoder's ` +
      `stdout through a kernel pipe; (b) \`ffplay ${[...QUIET_PLAY, ...RTP_FLAGS].join(' ')} x.sdp\`; (c)-(f) whatever ` +
      '`udpcast watch` gives its ffplay. Encoders: `ffmpeg -f x11grab -draw_mouse 1 -framerate 30` (as `udpcast share ' +
      '--source screen` opens the screen) with the x264 settings of `udpcast share`. ' +
      `(e): ${joins} joins, each into a fresh \`udpcast share\` whose relay had heard it 0.5-1.8 s before (GOP ${GOP_MS / 1000} s), ` +
      `${flipsPerJoin} flips from the moment the window is there. (f): on (c)'s session the viewer's ffplay (a child of watch, ` +
      "found by pid), on (a)'s the by-hand ffplay, stalled on a steady screen; flips every " +
      `${RECOVERY_GAP_MS[0]}-${RECOVERY_GAP_MS[1]} ms from the resume until one is shown within ${CAUGHT_UP}× that session's p50 ` +
      `(at least ${RECOVERY_MIN_MS / 1000} s, at most ${RECOVERY_MAX_MS / 1000} s); recovery = resume → the start of that flip. ` +
      'The pause keys go to the window with `xdotool key --window`; the ffplay CPU column shows whether the stall took.',
  ].join('\n');
  return {
    name,
    title,
    rows: [...rows, { failures, firstFlipAfterJoin: firstAfterJoin, lateJoins: lateJoins.map((j) => ({ ...j, flips: j.flips.map((f) => ({ latencyMs: round(f.latencyMs, 1), lateMs: round(f.lateMs, 1) })) })), recoveries, probeFps }],
    markdown,
    targets,
  };
}

const fmtMs = (x: number) => String(round(x, 0));
