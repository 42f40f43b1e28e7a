/**
 * The share side's picture source: runs FFmpeg (capture + encode), reads whole frames off its
 * stdout the moment each is complete (FLV tags for H.264, EOI for MJPEG) and emits them.
 *
 * If FFmpeg dies mid-share it is restarted with backoff (0.5 s, 1 s, 2 s, 4 s, then every 5 s; back
 * to 0.5 s after a healthy run). If it cannot be started at all, or its very first run ends before
 * a single frame (a bad display, an encoder this machine lacks), that is 'fatal': restarting would
 * only repeat the same error.
 *
 *   FFmpeg ──stdout──▶ FlvReader / MjpegSplitter ──▶ 'frame' (CapturedFrame)
 *          ──stderr──▶ log, line by line
 */
import { EventEmitter } from 'node:events';
import { performance } from 'node:perf_hooks';
import { isFileSource, type CaptureOptions } from '../capture/source.ts';
import { PacketError } from '../util/errors.ts';
import { OwnedProcess, type SpawnFn } from '../util/child.ts';
import { audioFd, buildShareArgs, layerFd, type EncodeOptions } from './ffmpeg-args.ts';
import { OggOpusReader } from './ogg.ts';
import { OPUS_RATE } from '../codecs/opus/opus.ts';
import { CODEC_NAMES, codec as codecOf, type CodecName } from '../codecs/registry.ts';
import type { FfmpegEncoding } from '../codecs/codec.ts';
import { FlvReader } from './flv.ts';
import { MJPEG_RATE_OVERSHOOT, MJPEG_RATE_WINDOW_S } from '../defaults.ts';
import { MjpegSplitter } from './mjpeg-stream.ts';

export interface CapturedFrame {
  codec: CodecName;
  /** The quality layer (0: the full picture; EncodeOptions.layers). */
  layer: number;
  /** The frame as the reader gives it: H.264's NAL units (SPS and PPS lead every IDR), or one JPEG. */
  units: Buffer[];
  keyframe: boolean;
  /** FFmpeg's presentation time in ms, starting near 0 at each (re)start. */
  ptsMs: number;
  /**
   * Wall-clock estimate of when the picture was captured: ptsMs + offset, where offset is the
   * smallest (arrival − ptsMs) seen so far in this FFmpeg run. It is the arrival time of the
   * fastest frame, so it excludes the encoder's minimum latency (it is a lower bound on how long
   * capture-to-pipe took, not a measurement of it). Reset at each restart.
   */
  captureUnixMs: number;
  /** Monotonic time (performance.now()) when the frame's first byte arrived on the pipe. */
  firstByteMs: number;
  /** Monotonic time (performance.now()) when the frame was complete and emitted. */
  readyMs: number;
}

export interface EncoderEvents {
  frame: [frame: CapturedFrame];
  /** One Opus packet of the sound (--audio), stamped on the same clock as the frames. */
  audio: [packet: CapturedAudio];
  /** FFmpeg died mid-share; it will be started again after delayMs. */
  restart: [attempt: number, delayMs: number];
  /** FFmpeg cannot run (missing binary, or its first run failed before any frame). The encoder has stopped. */
  fatal: [err: Error];
  /** FFmpeg (re)started with this pid. */
  started: [pid: number];
  /** FFmpeg's stdout ended with exit code 0 (a file --source ran out). The encoder has stopped. */
  end: [];
}

/** One Opus packet (20 ms) as the encoder hands it on. */
export interface CapturedAudio {
  data: Buffer;
  /** Wall-clock time (ms) its first sample was captured, on the frames' clock (CapturedFrame.captureUnixMs). */
  captureUnixMs: number;
}

export interface EncoderOptions {
  ffmpegPath: string;
  capture: CaptureOptions;
  encode: EncodeOptions;
  spawn?: SpawnFn;
  log?: (line: string) => void;
  /** Extra output arguments inserted before the output (tests: -frames:v N). */
  extraOutputArgs?: string[];
  /** Wall clock, default Date.now. */
  now?: () => number;
}

/**
 * Sound this near where the sound before it ended (ms, either way) is stamped there: a run's clock
 * is read from its first frames, late by up to the encoder's start-up at first, and a jump of that
 * size between two runs would be a hole (or an overlap) in the sound. Kept below the 45 ms by which
 * sound may lead its picture unnoticed (ITU-R BT.1359).
 */
const AUDIO_SNAP_MS = 30;
/** A run replaced by another goes on handing on its sound until the new one's comes, at most this long. */
const AUDIO_HANDOVER_MAX_MS = 1000;

/** Restart delays: doubling from 0.5 s, capped at 5 s. */
export const RESTART_INITIAL_MS = 500;
export const RESTART_MAX_MS = 5000;
/** A run this long that produced frames counts as healthy: the next failure starts again at 0.5 s. */
export const HEALTHY_RUN_MS = 10_000;
/** Stderr lines kept to explain a fatal failure. */
const STDERR_TAIL_LINES = 5;

/**
 * FFmpeg warnings known to be harmless here, not shown (nor kept to explain a failure):
 *  - the screen grabbers probe with -probesize 32, too little to estimate a frame rate; -framerate
 *    sets it.
 *  - swscale calls yuvj420p "deprecated", but it is the full-range 4:2:0 that RFC 2435 type 1
 *    needs, and the mjpeg encoder takes no other full-range format.
 *  - the mjpeg encoder's rate control warns at a single picture over its buffer; whether the
 *    stream keeps to --bitrate is measured instead (MjpegRateCheck) and said in udpcast's words.
 */
const HARMLESS_FFMPEG_LINES = [
  /\[(x11grab|gdigrab|avfoundation|lavfi) @ [^\]]*\] (Stream #\d+: )?not enough frames to estimate rate; consider increasing probesize/,
  /\[swscaler @ [^\]]*\] deprecated pixel format used, make sure you did set range correctly/,
  ...CODEC_NAMES.flatMap((n) => codecOf(n).harmlessFfmpegLines ?? []),
];

export function isHarmlessFfmpegLine(line: string): boolean {
  return HARMLESS_FFMPEG_LINES.some((re) => re.test(line));
}

/** FFmpeg's collapse of repeated lines ("    Last message repeated 85 times"): it belongs to the line before. */
const REPEATED_LINE = /^\s*Last message repeated \d+ times?$/;

/** Keyframe requests closer together than this share one FFmpeg restart. */
export const KEYFRAME_RESTART_MIN_MS = 500;

/**
 * Whether a quality-driven codec (MJPEG) keeps to --bitrate: FFmpeg's rate control cannot go below
 * its lowest quality (qscale 31), so a rate too low for the size and frame rate is exceeded.
 * Measured over windows of MJPEG_RATE_WINDOW_S of pictures at the nominal rate; said once.
 */
export class RateCheck {
  private bytes = 0;
  private frames = 0;
  private said = false;
  constructor(
    private readonly kbps: number,
    private readonly fps: number,
  ) {}
  /** Counts one JPEG; returns the window's kbit/s the first time a window exceeds the rate by MJPEG_RATE_OVERSHOOT. */
  push(jpegBytes: number): number | undefined {
    if (this.said) return undefined;
    this.bytes += jpegBytes;
    if (++this.frames < Math.ceil(MJPEG_RATE_WINDOW_S * this.fps)) return undefined;
    const kbps = (this.bytes * 8 * this.fps) / this.frames / 1000;
    this.bytes = 0;
    this.frames = 0;
    if (kbps <= this.kbps * MJPEG_RATE_OVERSHOOT) return undefined;
    this.said = true;
    return kbps;
  }
}

/** A whole frame as a reader of FFmpeg's stdout gives it. */
interface ReadFrame {
  units: Buffer[];
  keyframe: boolean;
  /** FFmpeg's presentation time in ms. */
  ptsMs: number;
  /** When its first byte arrived (performance.now()). */
  firstByteMs: number;
}

/**
 * The readers of FFmpeg's stdout, by the name a codec gives (Codec.ffmpeg().reader): a new
 * container on the pipe is a reader here and a name in FfmpegEncoding.reader.
 */
export const READERS = {
  // Each FLV tag states its length: a frame is whole the moment its tag is.
  flv: () => {
    const r = new FlvReader(() => performance.now());
    return { push: (chunk: Buffer): ReadFrame[] => r.push(chunk).map((f) => ({ units: f.nalus, keyframe: f.keyframe, ptsMs: f.ptsMs, firstByteMs: f.firstByteAt! })) };
  },
  // Bare JPEGs, each ending with EOI, each standing alone. The mjpeg muxer carries no timestamps,
  // but -r makes the output constant-rate.
  'jpeg-sequence': (fps: number) => {
    const splitter = new MjpegSplitter();
    const starts: number[] = [];
    splitter.onImageStart = () => starts.push(performance.now());
    const frameMs = 1000 / fps;
    let index = 0;
    return {
      push: (chunk: Buffer): ReadFrame[] =>
        splitter.push(chunk).map((jpeg) => ({ units: [jpeg], keyframe: true, ptsMs: Math.round(index++ * frameMs), firstByteMs: starts.shift()! })),
    };
  },
} as const satisfies Record<FfmpegEncoding['reader'], (fps: number) => { push(chunk: Buffer): ReadFrame[] }>;

export function restartDelayMs(attempt: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_INITIAL_MS * 2 ** Math.max(0, attempt - 1));
}

export class Encoder extends EventEmitter<EncoderEvents> {
  private readonly opts: EncoderOptions;
  /** The encoding now: its bitrate follows retarget(). */
  private encode: EncodeOptions;
  private args: string[];
  private readonly log: (line: string) => void;
  private readonly now: () => number;
  private proc: OwnedProcess | null = null;
  private stopped = false;
  private started = false;
  private stopPromise: Promise<void> | null = null;
  private restartTimer: NodeJS.Timeout | null = null;
  /** Consecutive failed runs; 0 after a healthy one. */
  private attempt = 0;
  private everProducedFrame = false;
  private stderrTail: string[] = [];
  /** MJPEG with --bitrate: whether the encoder keeps to it (null: a fixed quality, or H.264). */
  private readonly rateCheck: RateCheck | null;
  /** How FFmpeg's stdout is read (the codec's choice). */
  private readonly reader: FfmpegEncoding['reader'];
  private _framesEncoded = 0;
  private _restarts = 0;
  /** A second FFmpeg started to answer a keyframe request; it replaces `proc` at its first frame. */
  private successor: OwnedProcess | null = null;
  /** Whether the successor was started by retarget() (else by requestKeyframe()). */
  private successorRetargets = false;
  /** Runs ended on purpose (replaced by a successor): their death is not a crash. */
  private readonly retired = new WeakSet<OwnedProcess>();
  private lastKeyframeRestart = -Infinity;
  /** Where the sound handed on so far ends (wall-clock ms): a new run's sound starts there. */
  private audioUntil = -Infinity;
  /** A run whose frames were replaced, still handing on its sound until the new run's sound comes. */
  private soundOld: OwnedProcess | null = null;
  private soundOldTimer: NodeJS.Timeout | null = null;
  /** Runs that have handed on sound. */
  private readonly soundSent = new WeakSet<OwnedProcess>();
  /** A keyframe asked for with `defer` inside KEYFRAME_RESTART_MIN_MS: it starts when the interval is over. */
  private deferredKeyframe: NodeJS.Timeout | null = null;
  private _keyframeRestarts = 0;
  private _retargets = 0;
  /** The source is a file: each FFmpeg run plays it from its start. */
  private readonly replays: boolean;

  constructor(opts: EncoderOptions) {
    super();
    this.opts = opts;
    // Built now, so a usage mistake (a bad --encoder, Wayland) surfaces before anything runs.
    this.encode = opts.encode;
    this.args = this.buildArgs();
    this.log = opts.log ?? (() => {});
    this.now = opts.now ?? Date.now;
    this.replays = isFileSource(opts.capture);
    const e = opts.encode;
    this.reader = codecOf(e.codec).ffmpeg(e).reader;
    // A quality-driven codec following --bitrate may not reach it: measured, said once.
    this.rateCheck = codecOf(e.codec).quality && e.quality === undefined ? new RateCheck(e.bitrateKbps, e.fps) : null;
  }

  private buildArgs(): string[] {
    const args = buildShareArgs(this.opts.capture, this.encode);
    if (this.opts.extraOutputArgs?.length) args.splice(args.lastIndexOf('-f'), 0, ...this.opts.extraOutputArgs);
    return args;
  }

  /** The bitrate FFmpeg is asked for now (kbit/s). */
  get bitrateKbps(): number {
    return this.encode.bitrateKbps;
  }

  /**
   * Congestion control moved the rate the path takes: a fresh FFmpeg run at `kbps` takes over at its
   * first frame (a keyframe), as for requestKeyframe, since FFmpeg takes no commands at run time.
   * A keyframe run still starting is replaced (this one starts with a keyframe as well, and at
   * the old rate that keyframe would be the largest frame sent onto a path just found narrower).
   * False when it cannot now: not running, another re-target's run already starting (asked again
   * later), or a file source (a new run would play it from its start).
   */
  retarget(kbps: number): boolean {
    if (this.stopped || !this.started || this.replays || !this.proc) return false;
    if (this.successor) {
      if (this.successorRetargets) return false;
      this.retired.add(this.successor);
      void this.successor.kill();
      this.successor = null;
    }
    this.encode = { ...this.encode, bitrateKbps: kbps };
    this.args = this.buildArgs();
    this._retargets++;
    this.successorRetargets = true;
    this.run(true);
    return true;
  }

  /** FFmpeg runs started to change the bitrate. */
  get retargets(): number {
    return this._retargets;
  }

  /** The FFmpeg argv (without the binary), for logs and tests. */
  get argv(): readonly string[] {
    return this.args;
  }
  get framesEncoded(): number {
    return this._framesEncoded;
  }
  get restarts(): number {
    return this._restarts;
  }
  /** FFmpeg runs started to answer keyframe requests. */
  get keyframeRestarts(): number {
    return this._keyframeRestarts;
  }

  /**
   * A viewer lost a reference frame and asked for a keyframe (RTCP PLI). FFmpeg takes no commands
   * at run time, so a second FFmpeg is started beside the running one: its first frame is an IDR
   * (with SPS/PPS), and at that frame it takes over and the old run is ended (with sound, once the
   * new run's sound has taken over too: handSoundOver). The stream never
   * pauses; the IDR leaves about one FFmpeg start-up after the request (~0.2 s, measured by
   * `npm run bench`). Requests within KEYFRAME_RESTART_MIN_MS of the last are coalesced into it,
   * or with `defer`, started when that interval is over. Returns whether a new run was started
   * now. MJPEG needs none: every JPEG stands alone. Nor does a file: a new run would play it from
   * its start again; the next keyframe comes with the GOP.
   */
  requestKeyframe(opts: { defer?: boolean } = {}): boolean {
    if (this.stopped || !this.started || codecOf(this.opts.encode.codec).everyFrameKey || this.replays) return false;
    if (this.successor || !this.proc) return false;
    const now = this.now();
    const wait = KEYFRAME_RESTART_MIN_MS - (now - this.lastKeyframeRestart);
    if (wait > 0) {
      // Coalesced; `defer`: the keyframe is needed all the same (a layer paused or resumed, whose
      // viewers wait for it), so it starts once the interval allows.
      if (opts.defer && !this.deferredKeyframe) {
        this.deferredKeyframe = setTimeout(() => {
          this.deferredKeyframe = null;
          // Deferred again if the timer fired a little early by the wall clock.
          this.requestKeyframe({ defer: true });
        }, wait);
      }
      return false;
    }
    this.lastKeyframeRestart = now;
    this._keyframeRestarts++;
    this.successorRetargets = false;
    this.run(true);
    return true;
  }
  /** pid of the running FFmpeg, if any. */
  get pid(): number | undefined {
    return this.proc?.running ? this.proc.pid : undefined;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.run();
  }

  /** Ends FFmpeg and any pending restart. Idempotent; resolves when FFmpeg is gone. */
  stop(): Promise<void> {
    if (this.stopPromise) return this.stopPromise;
    this.stopped = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = null;
    if (this.deferredKeyframe) clearTimeout(this.deferredKeyframe);
    this.deferredKeyframe = null;
    const procs = [this.proc, this.successor, this.soundOld].filter((p): p is OwnedProcess => p !== null);
    this.successor = null;
    this.soundOld = null;
    if (this.soundOldTimer) clearTimeout(this.soundOldTimer);
    this.soundOldTimer = null;
    this.stopPromise = Promise.all(procs.map((p) => p.kill())).then(() => undefined);
    return this.stopPromise;
  }

  /** `old`'s frames were replaced: its sound goes on until the new run's comes (or the limit). */
  private handSoundOver(old: OwnedProcess): void {
    if (this.soundOld && !this.soundSent.has(old)) {
      // Replaced again before its sound took over: the run still sending the sound goes on.
      void old.kill();
    } else {
      this.endOldSound();
      this.soundOld = old;
    }
    if (this.soundOldTimer) clearTimeout(this.soundOldTimer);
    this.soundOldTimer = setTimeout(() => this.endOldSound(), AUDIO_HANDOVER_MAX_MS);
  }

  private endOldSound(): void {
    if (this.soundOldTimer) clearTimeout(this.soundOldTimer);
    this.soundOldTimer = null;
    const old = this.soundOld;
    this.soundOld = null;
    if (old) void old.kill();
  }

  /** Starts an FFmpeg run; `successor` runs beside the current one until its first frame. */
  private run(successor = false): void {
    const codec = this.encode.codec;
    const layers = this.encode.layers ?? 1;
    const audio = this.encode.audio !== undefined;
    const proc = new OwnedProcess({ command: this.opts.ffmpegPath, args: this.args, name: 'ffmpeg', spawn: this.opts.spawn, extraOutputs: layers - 1 + (audio ? 1 : 0) });
    if (successor) this.successor = proc;
    else this.proc = proc;
    const runStartedAt = this.now();
    let framesThisRun = 0;
    // The wall-clock anchor: min over frames of (arrival − pts). Fresh per run, since a new FFmpeg
    // starts its timestamps near 0 again.
    let offset = Infinity;
    const emitFrame = (f: Omit<CapturedFrame, 'captureUnixMs' | 'readyMs'>): void => {
      if (this.successor === proc) {
        // The new run's first frame (an IDR, of any layer: they start together): it takes over,
        // the old run is ended (with sound, once the new run's sound has taken over).
        const old = this.proc;
        this.proc = proc;
        this.successor = null;
        if (old) {
          this.retired.add(old);
          if (audio) this.handSoundOver(old);
          else void old.kill();
        }
      }
      if (this.proc !== proc) return;
      const arrival = this.now();
      offset = Math.min(offset, arrival - f.ptsMs);
      if (f.layer === 0) {
        framesThisRun++;
        this._framesEncoded++;
      }
      this.everProducedFrame = true;
      this.emit('frame', { ...f, captureUnixMs: f.ptsMs + offset, readyMs: performance.now() });
    };

    const c = codecOf(codec);
    const push = (reader: { push(chunk: Buffer): ReadFrame[] }, layer: number, chunk: Buffer): void => {
      for (const f of reader.push(chunk)) {
        if (this.stopped) return;
        const over = layer === 0 ? this.rateCheck?.push(f.units.reduce((n, u) => n + u.length, 0)) : undefined;
        if (over !== undefined) {
          this.log(
            `--bitrate ${this.encode.bitrateKbps}k is less than ${c.label} needs at this size and frame rate even at its lowest quality ` +
              `(${Math.round(over)} kbit/s): lower --size or --fps${c.quality?.otherwise ?? ''}`,
          );
        }
        emitFrame({ codec, layer, ...f });
      }
    };

    proc.on('started', (pid) => {
      this.log(`ffmpeg started (pid ${pid})`);
      this.emit('started', pid);
    });
    let lastHidden = false;
    proc.on('stderr-line', (line) => {
      if (REPEATED_LINE.test(line) && lastHidden) return;
      lastHidden = isHarmlessFfmpegLine(line);
      if (lastHidden) return;
      this.stderrTail.push(line);
      if (this.stderrTail.length > STDERR_TAIL_LINES) this.stderrTail.shift();
      this.log(`ffmpeg: ${line}`);
    });
    for (let layer = 0; layer < layers; layer++) {
      const reader = READERS[this.reader](this.opts.encode.fps);
      proc.output(layerFd(layer))?.on('data', (chunk: Buffer) => {
        if (this.stopped || (this.proc !== proc && this.successor !== proc)) return;
        try {
          push(reader, layer, chunk);
        } catch (err) {
          if (!(err instanceof PacketError)) throw err;
          // A broken stream cannot be resynchronised reliably: start FFmpeg afresh.
          this.log(`ffmpeg output is malformed (${err.message}); restarting ffmpeg`);
          void proc.kill();
        }
      });
    }
    if (audio) {
      // The sound's pipe: read from the run's start (its pages must be whole), handed on while this
      // run sends the frames (or, replaced, until its successor's sound takes over), on the
      // frames' clock: the beep stays on its flash.
      const ogg = new OggOpusReader();
      proc.output(audioFd(layers))?.on('data', (chunk: Buffer) => {
        const packets = ogg.push(chunk); // bad pages are counted there, never thrown
        // The run's clock is the frames' (their offset): sound before its first frame has none
        // yet. Letting the sound move that offset too shifted the next frames' times by up to a
        // packet (16 ms between two frames in a recording).
        if (this.stopped || (this.proc !== proc && this.soundOld !== proc) || !ogg.head || offset === Infinity) return;
        const preSkip = ogg.opusHead?.preSkip ?? 0;
        for (const p of packets) {
          let captureUnixMs = ((p.endSample - p.samples - preSkip) * 1000) / OPUS_RATE + offset;
          if (this.soundOld !== null && this.proc === proc) {
            // The new run's sound: the old run's goes on until this one reaches where it got to.
            if (captureUnixMs < this.audioUntil - AUDIO_SNAP_MS) continue;
            this.endOldSound();
          }
          // Continuous sound stays continuous; a run taking over starts where the one before had
          // got to: no sample twice.
          if (Math.abs(captureUnixMs - this.audioUntil) <= AUDIO_SNAP_MS) captureUnixMs = this.audioUntil;
          else if (captureUnixMs < this.audioUntil) continue;
          this.audioUntil = captureUnixMs + (p.samples * 1000) / OPUS_RATE;
          this.soundSent.add(proc);
          this.emit('audio', { data: p.data, captureUnixMs });
        }
      });
    }
    proc.on('failed-to-start', (err) => {
      if (this.successor === proc) {
        this.successor = null; // the running FFmpeg carries on; the keyframe comes with the GOP
        this.log(`ffmpeg for a keyframe failed to start: ${err.message}`);
        return;
      }
      this.proc = null;
      if (this.stopped) return;
      this.stopped = true;
      this.emit('fatal', new Error(`${err.message} (pass --ffmpeg PATH to use another FFmpeg)`, { cause: err }));
    });
    proc.on('died', (code, signal) => {
      if (this.retired.has(proc)) return; // replaced by a keyframe run, ended on purpose
      if (this.successor === proc) {
        this.successor = null;
        if (!this.stopped) this.log('ffmpeg for a keyframe ended before its first frame; the running one carries on');
        return;
      }
      if (this.proc === proc) this.proc = null;
      if (this.stopped) return;
      if (this.successor) {
        // A keyframe run is already starting: it takes over now instead of a restart.
        this.proc = this.successor;
        this.successor = null;
        return;
      }
      const how = signal ? `was killed by ${signal}` : `exited with code ${code}`;
      if (!this.everProducedFrame) {
        this.stopped = true;
        this.endOldSound();
        const tail = this.stderrTail.length ? `: ${this.stderrTail.join(' | ')}` : '';
        this.emit('fatal', new Error(`ffmpeg ${how} before producing a frame${tail}`));
        return;
      }
      if (code === 0 && !signal) {
        this.stopped = true;
        this.endOldSound();
        this.log('ffmpeg finished: the input ended');
        this.emit('end');
        return;
      }
      if (framesThisRun > 0 && this.now() - runStartedAt >= HEALTHY_RUN_MS) this.attempt = 0;
      this.attempt++;
      const delay = restartDelayMs(this.attempt);
      this.log(`ffmpeg ${how} mid-share; restarting it in ${delay / 1000} s (attempt ${this.attempt})`);
      this.emit('restart', this.attempt, delay);
      this.restartTimer = setTimeout(() => {
        this.restartTimer = null;
        if (this.stopped) return;
        this._restarts++;
        this.run();
      }, delay);
    });
  }
}
