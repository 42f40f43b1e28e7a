/**
 * What every benchmark shares: owned child processes (all killed on every exit path), CPU time
 * from /proc, percentiles, free ports, the udpcast command line, a relay behind an impair proxy,
 * the tiny FFmpeg decoder that timestamps frames on arrival, and the x264 settings both sides of a
 * comparison use.
 */
import net from 'node:net';
import { Prng } from '../src/impair/core.ts';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const OUT = path.join(ROOT, 'bench', 'out');
mkdirSync(OUT, { recursive: true });

export interface BenchContext {
  quick: boolean;
  log: (line: string) => void;
}

/** What one benchmark hands back: its rows (raw numbers and ratios) and notes on what it measured. */
export interface BenchResult {
  name: string;
  title: string;
  /** Skipped with a reason (a tool missing); rows may still hold what did run. */
  skipped?: string;
  rows: Record<string, unknown>[];
  /** Markdown: the table(s) and a few sentences. */
  markdown: string;
  targets?: { target: string; met: boolean | null; detail: string }[];
}

// ---------------------------------------------------------------------------------------------
// Owned child processes

const children = new Set<ChildProcess>();

export function run(cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], ...opts, cwd: opts.cwd ?? ROOT });
  children.add(child);
  child.once('exit', () => children.delete(child));
  child.on('error', () => children.delete(child));
  // A child's stderr that nobody reads must not fill its pipe and stall it.
  if (child.stderr && !opts.stdio) child.stderr.resume();
  return child;
}

/** SIGTERM, then SIGKILL after `graceMs` if it is still there; resolves when it has exited. */
export async function stop(child: ChildProcess | undefined, graceMs = 2000, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    child.kill(signal);
  } catch {
    return;
  }
  const t = setTimeout(() => {
    try {
      child.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }, graceMs);
  await exited;
  clearTimeout(t);
}

export async function stopAll(): Promise<void> {
  await Promise.all([...children].map((c) => stop(c, 1000)));
}

/** Last resort on the way out: nothing we started outlives the bench. */
export function killAllSync(): void {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* gone */
    }
  }
}

export function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((r) => child.once('exit', (code) => r(code)));
}

/**
 * What a child writes to stderr (its last 256 KiB), kept for reading after it exits: the impair
 * proxy's summary, the relay's log. `stamped`: each chunk as it came, after the wall-clock time it
 * came at (a log to line up with the stats files afterwards).
 */
export function captureStderr(child: ChildProcess, stamped = false): () => string {
  let text = '';
  child.stderr?.on('data', (c: Buffer) => {
    const chunk = stamped ? c.toString().replace(/^(?=.)/gm, `${new Date().toISOString()} `) : c.toString();
    text = (text + chunk).slice(-262_144);
  });
  return () => text;
}

/** `udpcast ARGS` as its own process, run from the sources through tsx (as `npm run` users would). */
export function udpcast(args: string[], opts: SpawnOptions = {}): ChildProcess {
  return run(process.execPath, ['--import', 'tsx', 'bin/udpcast.ts', ...args], opts);
}

/**
 * A share → watch run's files in bench/out, emptied so that a run that writes nothing is not read
 * as an earlier one's: the viewer's --output (TAG.h264) and the two --stats-json.
 */
export function shareWatchFiles(tag: string): { out: string; wstats: string; sstats: string } {
  const files = { out: path.join(OUT, `${tag}.h264`), wstats: path.join(OUT, `${tag}-watch.ndjson`), sstats: path.join(OUT, `${tag}-share.ndjson`) };
  for (const f of Object.values(files)) writeFileSync(f, '');
  return files;
}

export function which(name: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.trim() ? r.stdout.trim() : null;
}

/** null when every tool is there, else the reason to print. */
export function missing(...names: string[]): string | null {
  const gone = names.filter((n) => !which(n));
  return gone.length ? `needs ${gone.join(', ')} on PATH` : null;
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc (proc(5): fields 14 utime and 15 stime, in clock ticks)

export const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function statFields(pid: number): string[] | null {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm may contain spaces and parentheses: fields start after the last ')'.
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

/** CPU seconds (user + system) a process has used so far, or null when it is gone. */
export function cpuSeconds(pid: number): number | null {
  const f = statFields(pid);
  if (!f) return null;
  // After the comm: state is field 3, so utime (14) is index 11 and stime (15) index 12.
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

/** A process's command name (proc(5) comm), or null when it is gone. */
export function commOf(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return null;
  }
}

/** Pids whose parent is `pid`; with `name`, only those whose command name is `name`. */
export function childPids(pid: number, name?: string): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const f = statFields(Number(entry));
    if (f && Number(f[1]) === pid && (name === undefined || commOf(Number(entry)) === name)) out.push(Number(entry));
  }
  return out;
}

/**
 * stop(), then SIGKILL whatever children it leaves running (a player it spawned, say), by the pids
 * read before it stopped and only while each still has the same name (a pid may be reused).
 */
export async function stopTree(child: ChildProcess | undefined, graceMs = 2000): Promise<void> {
  const kids = child?.pid ? childPids(child.pid).map((pid) => ({ pid, name: commOf(pid) })) : [];
  await stop(child, graceMs);
  for (const k of kids) {
    if (k.name === null || commOf(k.pid) !== k.name) continue;
    try {
      process.kill(k.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Numbers

export function percentile(values: number[], p: number): number | null {
  if (values.length === 0) return null;
  const s = [...values].sort((a, b) => a - b);
  const i = Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1));
  return s[i];
}

export function mean(values: number[]): number | null {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : null;
}

export function round(x: number | null | undefined, digits = 2): number | null {
  if (x === null || x === undefined || !Number.isFinite(x)) return null;
  const k = 10 ** digits;
  return Math.round(x * k) / k;
}

export function ratio(a: number | null | undefined, b: number | null | undefined, digits = 2): number | null {
  if (a === null || a === undefined || b === null || b === undefined || b === 0) return null;
  return round(a / b, digits);
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function fmt(x: unknown): string {
  if (x === null || x === undefined) return '–';
  if (typeof x === 'number') {
    if (Number.isInteger(x)) return String(x);
    // Small ratios keep two significant digits instead of rounding to 0.
    return Math.abs(x) < 0.1 ? String(Number(x.toPrecision(2))) : String(round(x, 2));
  }
  return String(x);
}

export function table(headers: string[], rows: unknown[][]): string {
  const lines = [`| ${headers.join(' | ')} |`, `|${headers.map(() => '---').join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(fmt).join(' | ')} |`);
  return lines.join('\n');
}

// ---------------------------------------------------------------------------------------------
// Ports

/** A UDP port free right now on 127.0.0.1 (bind 0, read it back, close). */
export async function freePort(): Promise<number> {
  const s = dgram.createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** A free TCP port on 127.0.0.1 (an RTSP server's, say). */
export async function freeTcpPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

/** An even free port whose successor is free too (RTP on P, RTCP on P+1, as FFmpeg wants). */
export async function freePortPair(): Promise<number> {
  for (;;) {
    const p = await freePort();
    const even = p & ~1;
    const ok = await Promise.all([even, even + 1].map(portIsFree));
    if (ok.every(Boolean) && even > 1024) return even;
  }
}

async function portIsFree(port: number): Promise<boolean> {
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.once('error', () => resolve(false));
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** Resolves when `pred` holds, polling every `everyMs`; rejects after `timeoutMs`. */
export async function waitFor(what: string, pred: () => boolean, timeoutMs: number, everyMs = 20): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// FFmpeg pieces shared by both sides of every comparison

/** The H.264 settings `udpcast share` gives libx264 (src/encode/ffmpeg-args.ts), for the baselines. */
export function x264Args(gop: number, kbps = 2500): string[] {
  return [
    '-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency',
    '-bf', '0', '-g', String(gop),
    '-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${Math.round(kbps / 2)}k`,
    '-pix_fmt', 'yuv420p',
  ];
}

/** Low-delay input flags every FFmpeg reader here uses. */
export const LOW_DELAY_IN = ['-fflags', 'nobuffer', '-flags', 'low_delay', '-probesize', '32', '-analyzeduration', '0'];

/** Side of the tiny decoded frames: 8x8 grey, 64 bytes each. */
export const TINY = 8;
const TINY_BYTES = TINY * TINY;

/** Output half of a decoder that writes one 8x8 grey frame per decoded picture, unbuffered. */
export const TINY_OUT = ['-vf', `scale=${TINY}:${TINY}`, '-fps_mode', 'passthrough', '-f', 'rawvideo', '-pix_fmt', 'gray', '-flush_packets', '1', 'pipe:1'];

export interface TinyFrame {
  /** performance.now() when the frame's last byte arrived. */
  at: number;
  /** Mean grey level 0-255. */
  level: number;
}

/** Splits a stream of 8x8 grey frames and stamps each one on arrival. */
export function tinyFrames(stream: NodeJS.ReadableStream, onFrame: (f: TinyFrame) => void): void {
  let pending: Buffer = Buffer.alloc(0);
  stream.on('data', (chunk: Buffer) => {
    const at = performance.now();
    pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
    while (pending.length >= TINY_BYTES) {
      let sum = 0;
      for (let i = 0; i < TINY_BYTES; i++) sum += pending[i];
      onFrame({ at, level: sum / TINY_BYTES });
      pending = pending.subarray(TINY_BYTES);
    }
  });
}

/** The version line of a tool (first line of `TOOL -version` / `--version`), or null. */
export function versionOf(cmd: string, flag = '-version'): string | null {
  const r = spawnSync(cmd, [flag], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.split('\n')[0].trim() : null;
}

/** Counters read from `--stats-json` files: one JSON object a line; the last complete one. */
export function lastStats(file: string): Record<string, unknown> | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return null;
  }
  const lines = text.trim().split('\n').filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      return JSON.parse(lines[i]);
    } catch {
      /* a line being written */
    }
  }
  return null;
}

export function allStats(file: string): Record<string, unknown>[] {
  try {
    return readFileSync(file, 'utf8')
      .trim()
      .split('\n')
      .filter(Boolean)
      .flatMap((l) => {
        try {
          return [JSON.parse(l)];
        } catch {
          return [];
        }
      });
  } catch {
    return [];
  }
}

/** A repeatable uniform [0, 1) generator: the impair proxy's mulberry32, one copy for the project. */
export function rng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next();
}

/** Resolves when the child's stderr (or stdout) has printed a line matching `re`; rejects on timeout or exit. */
export function waitForLine(child: ChildProcess, re: RegExp, timeoutMs: number, what = String(re)): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const streams = [child.stderr, child.stdout].filter((s): s is NonNullable<typeof s> => !!s);
    const done = (err?: Error) => {
      clearTimeout(timer);
      for (const s of streams) s.off('data', onData);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve();
    };
    const onData = (c: Buffer) => {
      seen = (seen + c.toString()).slice(-4096);
      if (re.test(seen)) done();
    };
    const onExit = () => done(new Error(`${what}: process exited first; it said: ${seen.slice(-300)}`));
    const timer = setTimeout(() => done(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)), timeoutMs);
    for (const s of streams) s.on('data', onData);
    child.once('exit', onExit);
  });
}

// ---------------------------------------------------------------------------------------------
// A relay behind an impair proxy (the loss and uplink benchmarks' udpcast runs)

/**
 * `udpcast relay` on a free port with `udpcast impair --listen (a free port) --to (the relay)
 * IMPAIR…` in front of it (the relay takes `relayArgs` too, e.g. --stats-json); `body` runs once
 * both are up and is given both ports (which side of the proxy a sharer or viewer uses is the
 * caller's model) and what the relay has written to stderr so far (who joined, as whom). `body` stops what it starts in its own
 * finally, so the media ends before its path does; then the proxy and the relay are stopped.
 * Returns `body`'s result and what both wrote to stderr: impair prints its summary when stopped.
 */
export async function relayBehindImpair<T>(
  impairArgs: string[],
  body: (ports: { relayPort: number; impairPort: number; relaySaid: () => string }) => Promise<T>,
  relayArgs: string[] = [],
): Promise<{ result: T; relayStderr: string; impairStderr: string }> {
  const relayPort = await freePort();
  const impairPort = await freePort();
  const relay = udpcast(['relay', '--port', String(relayPort), '--host', '127.0.0.1', '--no-dashboard', ...relayArgs]);
  const relaySaid = captureStderr(relay, true);
  const impair = udpcast(['impair', '--listen', `127.0.0.1:${impairPort}`, '--to', `127.0.0.1:${relayPort}`, ...impairArgs]);
  const impairSaid = captureStderr(impair);
  let result: T;
  try {
    await Promise.all([waitForLine(relay, /listening/, 20_000, 'relay'), waitForLine(impair, /impair: up/, 20_000, 'impair')]);
    result = await body({ relayPort, impairPort, relaySaid });
  } finally {
    await stop(impair);
    await stop(relay);
  }
  return { result, relayStderr: relaySaid(), impairStderr: impairSaid() };
}

// ---------------------------------------------------------------------------------------------
// Virtual screens: Xvfb, the root window flipped black ↔ white, and the frames that show it

/** An Xvfb of `size` (WxH) on a display number nobody uses (no socket, no lock), ready when its socket is. */
export async function xvfb(size: string): Promise<{ display: string; server: ChildProcess }> {
  let n = 90 + Math.floor(Math.random() * 100);
  while (existsSync(`/tmp/.X11-unix/X${n}`) || existsSync(`/tmp/.X${n}-lock`)) n++;
  const server = run('Xvfb', [`:${n}`, '-screen', '0', `${size}x24`, '-noreset', '-nolisten', 'tcp']);
  try {
    await waitFor(`Xvfb :${n}`, () => existsSync(`/tmp/.X11-unix/X${n}`), 10_000);
  } catch (err) {
    await stop(server);
    throw err;
  }
  await sleep(300);
  return { display: `:${n}`, server };
}

/** x11grab input as `udpcast share --source screen` opens it (src/capture/source.ts): low-delay probing, cursor drawn. */
export function x11grabIn(display: string, fps: number, opts: { drawMouse?: boolean; size?: string } = {}): string[] {
  return [
    '-fflags', 'nobuffer', '-probesize', '32', '-analyzeduration', '0',
    '-f', 'x11grab', '-draw_mouse', opts.drawMouse === false ? '0' : '1', '-framerate', String(fps),
    ...(opts.size ? ['-video_size', opts.size] : []),
    '-i', display,
  ];
}

export type Colour = 'black' | 'white';
/** Mean grey levels at or below which a tiny frame is black, at or above which white; between is neither. */
const BLACK_MAX = 60;
const WHITE_MIN = 195;
export const colourOf = (level: number): Colour | null => (level <= BLACK_MAX ? 'black' : level >= WHITE_MIN ? 'white' : null);

/** Tiny frames as they arrive, in arrival order. */
export class Frames {
  list: TinyFrame[] = [];
  attach(stream: NodeJS.ReadableStream): void {
    tinyFrames(stream, (f) => this.list.push(f));
  }
  /** First frame at or after `since` showing `c` (a binary search to `since`: the list grows at 250 frames/s). */
  firstAfter(since: number, c: Colour): TinyFrame | undefined {
    let lo = 0;
    let hi = this.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.list[mid].at < since) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.list.length; i++) if (colourOf(this.list[i].level) === c) return this.list[i];
    return undefined;
  }
}

/** `xsetroot -solid COLOUR` on `display`; resolves with how long it took from spawn to exit, in ms. */
export async function xsetroot(display: string, colour: string): Promise<number> {
  const t0 = performance.now();
  await exited(run('xsetroot', ['-display', display, '-solid', colour]));
  return performance.now() - t0;
}

/** Sets the root window to `c` and waits until a frame shows it. */
export async function showColour(display: string, frames: Frames, c: Colour, timeoutMs: number): Promise<void> {
  await xsetroot(display, c);
  const at = performance.now();
  await waitFor(`a ${c} frame`, () => frames.firstAfter(at, c) !== undefined, timeoutMs);
}

export interface Flip {
  /** performance.now() when xsetroot exited: the X server has the new colour by then. */
  at: number;
  colour: Colour;
  /** xsetroot's exit → first frame of the new colour; null when none came within `missAfterMs`. */
  latencyMs: number | null;
  /** A missed flip's latency when it did show within `settleAfterMissMs` more (not counted as seen). */
  lateMs?: number;
  /** xsetroot from spawn to exit. */
  xsetrootMs: number;
}

export interface FlipOptions {
  /** At most this many flips. */
  flips: number;
  /** A random pause (seeded) before each flip, ms: [min, max). */
  gapMs: [number, number];
  /** A flip not seen within this long is missed. Default 3000. */
  missAfterMs?: number;
  /**
   * After a miss, wait up to this long more for the colour before flipping again, so a player far
   * behind does not later count an old frame of the next colour as new; a flip not seen by then
   * ends the loop. Default 0 (flip on).
   */
  settleAfterMissMs?: number;
  /** Stops early when this holds after a flip. */
  until?: (done: Flip[]) => boolean;
}

/**
 * Flips the root window of `display` between black and white, starting from `from`, at random
 * moments not in step with any frame clock, and times each flip to the first frame of the new
 * colour. The next flip waits until this one was seen or missed.
 */
export async function flipLoop(display: string, frames: Frames, from: Colour, r: () => number, o: FlipOptions): Promise<Flip[]> {
  const missAfterMs = o.missAfterMs ?? 3000;
  const done: Flip[] = [];
  let colour = from;
  for (let i = 0; i < o.flips && !o.until?.(done); i++) {
    await sleep(o.gapMs[0] + r() * (o.gapMs[1] - o.gapMs[0]));
    colour = colour === 'black' ? 'white' : 'black';
    const xsetrootMs = await xsetroot(display, colour);
    const at = performance.now();
    const c = colour;
    const flip: Flip = { at, colour: c, latencyMs: null, xsetrootMs };
    try {
      await waitFor(`a ${c} frame`, () => frames.firstAfter(at, c) !== undefined, missAfterMs, 2);
      flip.latencyMs = frames.firstAfter(at, c)!.at - at;
    } catch {
      if (o.settleAfterMissMs) {
        try {
          await waitFor(`a ${c} frame`, () => frames.firstAfter(at, c) !== undefined, o.settleAfterMissMs, 5);
          flip.lateMs = frames.firstAfter(at, c)!.at - at;
        } catch {
          /* not even late */
        }
      }
    }
    done.push(flip);
    // Never shown even late: the player is stuck on the old colour, so a flip back to that colour
    // would look seen at once. Stop here rather than count it.
    if (o.settleAfterMissMs && flip.latencyMs === null && flip.lateMs === undefined) break;
  }
  return done;
}

/** p50/p95/min/max of the flips seen in time, how many were missed, and every raw number. */
export function flipSummary(flips: Flip[]) {
  const seen = flips.flatMap((f) => (f.latencyMs === null ? [] : [f.latencyMs]));
  return {
    flips: seen.length,
    missed: flips.length - seen.length,
    p50Ms: round(percentile(seen, 50), 1),
    p95Ms: round(percentile(seen, 95), 1),
    minMs: seen.length ? round(Math.min(...seen), 1) : null,
    maxMs: seen.length ? round(Math.max(...seen), 1) : null,
    latenciesMs: seen.map((x) => round(x, 1)),
    xsetrootMs: flips.map((f) => round(f.xsetrootMs, 1)!),
  };
}
