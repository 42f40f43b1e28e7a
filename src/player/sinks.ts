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

/**
 * How long the player may leave what we wrote unread before it counts as fallen behind (paused,
 * stalled, too slow). Writes only back up once ffplay's own queue (about 25 frames) and the pipe
 * (64 KB) are full, so this adds to roughly a second of frames already waiting there.
 */
export const PLAYER_STALL_MS = 300;

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
 */
export function ffplayArgs(title: string): string[] {
  return [
    '-hide_banner', '-loglevel', 'warning', '-autoexit',
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

/**
 * ffplay lines that say nothing a viewer can act on: the frame-rate guess it cannot make from a
 * 32-byte probe (the stream's timestamps are what counts), and SDL's note about XDG_RUNTIME_DIR.
 */
const HARMLESS_FFPLAY_LINES = /not enough frames to estimate rate|XDG_RUNTIME_DIR/;

/**
 * ffplay as a sink that stays live. When it stops reading (paused, stalled, too slow), frames are
 * held back instead of queued; once it reads again it is restarted from the last keyframe, which
 * this sink keeps with the frames after it, so the new window is live at once.
 */
export class FfplaySink implements FrameSink {
  state: PlayerState = 'live';
  /** Times the player was restarted because it had fallen behind. */
  restarts = 0;
  /** Frames not given to a player that had stopped reading. */
  framesHeldBack = 0;
  private proc!: OwnedProcess;
  private container!: MkvWriter;
  private readonly clock = new LiveClock();
  private closed = false;
  /** When the player last left a write unread; undefined while it keeps up. */
  private blockedSince?: number;
  /** The last keyframe and every frame after it, to restart a player from. */
  private gop: SinkFrame[] = [];
  private gopBytes = 0;

  constructor(private readonly opts: FfplaySinkOptions) {
    this.start();
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  write(frame: SinkFrame, now: number): void {
    if (this.closed) return;
    this.remember(frame);
    if (this.state === 'live' && this.blockedSince !== undefined && now - this.blockedSince > PLAYER_STALL_MS) {
      this.state = 'behind';
      this.opts.log(
        `player fell behind (nothing read for ${now - this.blockedSince} ms: paused or stalled); ` +
          'holding frames back, it restarts live once it reads again',
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
    this.proc = proc;
    this.container = new MkvWriter();
    this.clock.reset();
    this.blockedSince = undefined;
    proc.on('started', (pid: number) => this.opts.log(`ffplay started (pid ${pid})`));
    proc.on('stderr-line', (line: string) => {
      if (!HARMLESS_FFPLAY_LINES.test(line)) this.opts.log(`ffplay: ${line}`);
    });
    proc.on('failed-to-start', (err: Error) => {
      if (proc === this.proc && !this.closed) this.opts.onExit(null, err);
    });
    proc.on('died', (code: number | null, _signal, expected: boolean) => {
      if (proc === this.proc && !expected && !this.closed) this.opts.onExit(code);
    });
    proc.stdin?.on('drain', () => {
      if (proc !== this.proc) return;
      this.blockedSince = undefined;
      if (this.state === 'behind') this.restart();
    });
  }

  /** A fresh player, fed the last keyframe and what followed it as stale frames, then live ones. */
  private restart(): void {
    this.restarts++;
    this.state = 'live';
    const old = this.proc;
    void old.kill();
    this.start();
    const now = Date.now();
    for (const f of this.gop) this.send(f, now, true);
    this.opts.log(`player restarted live (restart ${this.restarts})`);
  }

  private send(frame: SinkFrame, now: number, stale: boolean): void {
    const { pts } = this.clock.stamp(stale ? { latencyMs: Infinity } : frame, now, this.opts.budgetMs());
    const stdin = this.proc.stdin;
    if (!stdin) return;
    let ok = true;
    for (const b of this.container.write({ codec: frame.codec, data: frame.data, keyframe: frame.keyframe, pts })) ok = stdin.write(b);
    if (!ok) this.blockedSince ??= now;
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
