/**
 * Where reassembled frames go: ffplay, a file, or stdout. Each sink takes whole frames only (an
 * Annex B access unit or one JPEG) with the time they were handed over.
 *
 * The player and stdout get Matroska, not the raw stream: one block per whole frame, so the
 * player decodes a frame the moment it arrives instead of waiting for the next frame's start code,
 * and stamped on arrival (LiveClock), so catch-up frames are decoded but not shown late.
 * Recordings take their container from the file name (outputFormat) and RTP's own timestamps.
 */
import { createWriteStream, openSync, writeSync, closeSync, type WriteStream } from 'node:fs';
import { KEYFRAME_CACHE_BYTES } from '../defaults.ts';
import { OwnedProcess, type SpawnFn } from '../util/child.ts';
import { UsageError } from '../util/errors.ts';
import { LiveClock, RecordingClock } from './clock.ts';
import type { ContainerCodec, ContainerWriter } from './container.ts';
import { MkvWriter } from './mkv.ts';
import { PlayerWatchdog, parseStatusLine } from './watchdog.ts';
import { Mp4Writer } from './mp4.ts';

/** A whole frame as watch hands it on. */
export interface SinkFrame {
  codec: ContainerCodec;
  data: Buffer;
  keyframe: boolean;
  /** RTP timestamp (90 kHz). */
  timestamp: number;
  /** Capture → complete, ms, when the sender's clock mapping is known. */
  latencyMs?: number;
}

export interface FrameSink {
  write(frame: SinkFrame, now: number): void;
  close(): Promise<void>;
}

// ---- Output formats -------------------------------------------------------------------------

export type OutputFormat = 'mkv' | 'mp4' | 'h264' | 'mjpeg';

const EXTENSIONS: Record<string, OutputFormat> = {
  '.mkv': 'mkv',
  '.mp4': 'mp4',
  '.h264': 'h264',
  '.264': 'h264',
  '.mjpeg': 'mjpeg',
  '.mjpg': 'mjpeg',
};

/** The container for `--output PATH`, from its extension; '-' (stdout) is Matroska. */
export function outputFormat(path: string): OutputFormat {
  if (path === '-') return 'mkv';
  const ext = /\.[^./\\]+$/.exec(path)?.[0].toLowerCase() ?? '';
  const format = EXTENSIONS[ext];
  if (!format) {
    throw new UsageError(
      `--output ${path}: unknown extension ${ext ? JSON.stringify(ext) : '(none)'}; use .mkv or .mp4 (timestamped recordings), ` +
        '.h264 or .mjpeg (the raw stream), or - for stdout',
    );
  }
  return format;
}

function containerFor(format: 'mkv' | 'mp4'): ContainerWriter {
  return format === 'mkv' ? new MkvWriter() : new Mp4Writer();
}

// ---- Files and stdout ----------------------------------------------------------------------------

/**
 * A recording (.mkv/.mp4 with RTP's timestamps, or the raw stream) or stdout (Matroska stamped on
 * arrival, like the player's, so whatever reads the pipe can play it live).
 */
export class FileSink implements FrameSink {
  private readonly out: WriteStream | NodeJS.WriteStream;
  private readonly toStdout: boolean;
  private readonly format: OutputFormat;
  private readonly container?: ContainerWriter;
  private readonly recordingClock = new RecordingClock();
  private readonly liveClock = new LiveClock();
  /** The codec of the first frame written: a file holds one. */
  private codec?: ContainerCodec;
  /** Frames not written because their codec differs from the file's (a sharer restarted with another). */
  skipped = 0;

  constructor(
    private readonly path: string,
    private readonly opts: { budgetMs?: () => number; log?: (line: string) => void } = {},
  ) {
    this.toStdout = path === '-';
    this.format = outputFormat(path);
    this.container = this.format === 'mkv' || this.format === 'mp4' ? containerFor(this.format) : undefined;
    this.out = this.toStdout ? process.stdout : createWriteStream(path);
    this.out.on('error', () => {}); // a closed stdout (EPIPE) ends output, not the viewer
  }

  write(frame: SinkFrame, now: number): void {
    this.codec ??= frame.codec;
    if (frame.codec !== this.codec || (!this.container && frame.codec !== this.format)) {
      if (this.skipped++ === 0) {
        this.opts.log?.(`--output ${this.path}: the stream is ${frame.codec}, the file ${this.container ? this.codec : this.format}: frames not written`);
      }
      return;
    }
    if (!this.container) {
      this.out.write(frame.data);
      return;
    }
    const pts = this.toStdout
      ? this.liveClock.stamp(frame, now, this.opts.budgetMs?.() ?? 0).pts
      : this.recordingClock.stamp(frame.timestamp, now);
    for (const b of this.container.write({ codec: frame.codec, data: frame.data, keyframe: frame.keyframe, pts })) this.out.write(b);
  }

  async close(): Promise<void> {
    const tail = this.container?.end() ?? [];
    for (const b of tail) this.out.write(b);
    if (this.toStdout) return;
    await new Promise<void>((resolve) => (this.out as WriteStream).end(() => resolve()));
    // A finished .mkv gets its duration written into the space its header kept for it.
    const patch = this.container instanceof MkvWriter ? this.container.durationPatch() : undefined;
    if (patch) {
      try {
        const fd = openSync(this.path, 'r+');
        writeSync(fd, patch.bytes, 0, patch.bytes.length, patch.at);
        closeSync(fd);
      } catch {
        // The recording plays without it; players then find the length by reading.
      }
    }
  }
}

// ---- ffplay ----------------------------------------------------------------------------------------

/**
 * ffplay reading our Matroska on stdin. Each option, and why:
 * - `-probesize 32 -analyzeduration 0`: the track header says codec and size; nothing to guess.
 *   (Not `-fflags nobuffer`: it throws away what was read while probing, the keyframe a joining
 *   viewer starts from.)
 * - `-sync ext -framedrop`: no audio clock to wait on; frames late against the running clock are
 *   dropped, which is how stale catch-up frames are decoded but not shown.
 * - `-vf setpts=…RTCTIME…`: each picture is due the moment it is decoded, so ffplay's startup
 *   time never becomes a standing delay.
 * - `-autoexit`: end of input ends ffplay, so it never outlives watch, even when watch is killed.
 * - `-stats`: a status line every 30 ms with ffplay's clock, which PlayerWatchdog reads.
 */
export function ffplayArgs(title: string): string[] {
  return [
    '-hide_banner', '-loglevel', 'warning', '-autoexit', '-stats',
    '-sync', 'ext', '-framedrop',
    '-window_title', title,
    ...playerInputArgs(),
    '-vf', 'setpts=(RTCTIME-RTCSTART)/(TB*1000000)',
    '-i', 'pipe:0',
  ];
}

/** The input options of the player (and of any FFmpeg reading `--output -` the same way). */
export function playerInputArgs(): string[] {
  return ['-flags', 'low_delay', '-probesize', '32', '-analyzeduration', '0', '-f', 'matroska'];
}

export interface FfplaySinkOptions {
  ffplayPath: string;
  title: string;
  /** The viewer's current repair budget (ms): frames later than it are stale. */
  budgetMs: () => number;
  /** The player ended by itself: 0 when its window was closed; `err` when it never started. */
  onExit: (code: number | null, err?: Error) => void;
  log: (line: string) => void;
  spawn?: SpawnFn;
}

export type PlayerState = 'live' | 'behind';

/** Restarts of a player at most this often (see FfplaySink.restart). */
export const PLAYER_RESTART_MIN_MS = 2000;

/**
 * ffplay lines that say nothing a viewer can act on: the frame-rate guess it cannot make from a
 * 32-byte probe (the stream's timestamps are what counts), SDL's note about XDG_RUNTIME_DIR, and
 * swscale's note on full-range JPEG pixel formats (yuvj420p), printed for every MJPEG picture.
 */
const HARMLESS_FFPLAY_LINES = /not enough frames to estimate rate|XDG_RUNTIME_DIR|deprecated pixel format used/;

/**
 * ffplay as a sink that stays live. When it stops keeping up (PlayerWatchdog: paused, stalled,
 * its clock behind), frames are held back instead of queued; as soon as it shows signs of life it
 * is replaced by a new player fed from the last keyframe, which this sink keeps with the frames
 * after it, so the new window is live at once.
 */
export class FfplaySink implements FrameSink {
  state: PlayerState = 'live';
  /** Times the player was restarted because it had fallen behind. */
  restarts = 0;
  /** Frames not given to a player that had stopped keeping up. */
  framesHeldBack = 0;
  private proc!: OwnedProcess;
  private container!: MkvWriter;
  private watchdog!: PlayerWatchdog;
  private readonly clock = new LiveClock();
  private closed = false;
  private lastRestart = -Infinity;
  /** The last keyframe and every frame after it, to restart a player from. */
  private gop: SinkFrame[] = [];
  private gopBytes = 0;

  constructor(private readonly opts: FfplaySinkOptions) {
    this.start();
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Frames the current player dropped itself as late (its own count). */
  get playerDropped(): number {
    return this.watchdog.dropped;
  }

  write(frame: SinkFrame, now: number): void {
    if (this.closed) return;
    this.remember(frame);
    if (this.state === 'live' && this.watchdog.check(now) === 'stalled') {
      this.state = 'behind';
      this.opts.log(
        `player fell behind (nothing read or shown for ${this.watchdog.silentMs(now)} ms: paused or stalled); ` +
          'holding frames back, it restarts live once it responds again',
      );
    }
    if (this.state === 'behind') {
      this.framesHeldBack++;
      return;
    }
    this.send(frame, now, false);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.proc.kill();
  }

  private start(): void {
    const proc = new OwnedProcess({
      name: 'ffplay',
      command: this.opts.ffplayPath,
      args: ffplayArgs(this.opts.title),
      stdin: 'pipe', // Matroska, one block per whole frame
      stdout: 'ignore',
      spawn: this.opts.spawn,
    });
    const watchdog = new PlayerWatchdog();
    this.proc = proc;
    this.watchdog = watchdog;
    this.container = new MkvWriter();
    this.clock.reset();
    proc.on('started', (pid: number) => this.opts.log(`ffplay started (pid ${pid})`));
    proc.on('stderr-line', (line: string) => {
      const status = parseStatusLine(line);
      if (status) {
        if (proc === this.proc) this.onStatus(status.clockSec, status.dropped, Date.now());
      } else if (!HARMLESS_FFPLAY_LINES.test(line)) {
        this.opts.log(`ffplay: ${line}`);
      }
    });
    proc.on('failed-to-start', (err: Error) => {
      if (proc === this.proc && !this.closed) this.opts.onExit(null, err);
    });
    proc.on('died', (code: number | null, _signal, expected: boolean) => {
      if (proc === this.proc && !expected && !this.closed) this.opts.onExit(code);
    });
    proc.stdin?.on('drain', () => {
      if (proc !== this.proc) return;
      watchdog.drained();
      if (this.state === 'behind') this.restart(Date.now(), 'it reads again');
    });
  }

  private onStatus(clockSec: number, dropped: number, now: number): void {
    this.watchdog.status(clockSec, dropped, now);
    if (this.state === 'behind') this.restart(now, 'it responds again');
    else if (this.watchdog.check(now) === 'lagging') {
      this.opts.log(`player is ${Math.round(this.watchdog.lagMs)} ms behind (resumed after a pause, or too slow)`);
      this.restart(now, 'it was behind');
    }
  }

  /**
   * A fresh player, fed the last keyframe and what followed it as stale frames, then live ones.
   * At most one restart per PLAYER_RESTART_MIN_MS: a machine too slow to keep up is not made
   * slower by a new window every moment.
   */
  private restart(now: number, why: string): void {
    if (this.closed || now - this.lastRestart < PLAYER_RESTART_MIN_MS) return;
    this.lastRestart = now;
    this.restarts++;
    this.state = 'live';
    void this.proc.kill();
    this.start();
    for (const f of this.gop) this.send(f, now, true);
    this.opts.log(`player restarted live: ${why} (restart ${this.restarts})`);
  }

  private send(frame: SinkFrame, now: number, stale: boolean): void {
    const { pts } = this.clock.stamp(stale ? { latencyMs: Infinity } : frame, now, this.opts.budgetMs());
    const stdin = this.proc.stdin;
    if (!stdin) return;
    let ok = true;
    for (const b of this.container.write({ codec: frame.codec, data: frame.data, keyframe: frame.keyframe, pts })) ok = stdin.write(b);
    if (!ok) this.watchdog.blocked(now);
  }
  private remember(frame: SinkFrame): void {
    if (frame.keyframe) {
      this.gop = [];
      this.gopBytes = 0;
    } else if (this.gop.length === 0) {
      return;
    }
    this.gopBytes += frame.data.length;
    // Past the cache's cap, a restart waits for the next keyframe instead.
    if (this.gopBytes > KEYFRAME_CACHE_BYTES) this.gop = [];
    else this.gop.push(frame);
  }
}
