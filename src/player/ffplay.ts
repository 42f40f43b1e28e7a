/**
 * The player window: ffplay, owned by watch and kept live.
 *
 * ffplay reads Matroska on stdin: one block per whole frame, so it decodes a frame the moment it
 * arrives instead of waiting for the next frame's start code, stamped on arrival (LiveClock), so
 * catch-up frames are decoded but not shown late. PlayerWatchdog reads ffplay's status lines and
 * our writes to it; when it stops keeping up (paused, stalled, its clock behind) frames are held
 * back instead of queued, and once it responds it is replaced by a new player fed from the last
 * keyframe, which this sink keeps with the frames after it.
 *
 * Sound (issue 15) is a second track of the same Matroska, declared from the start unless watch
 * was told --no-audio: an Opus track that never gets a packet costs ffplay nothing (it opens its
 * audio device and waits; measured: first picture as soon as without). ffplay plays sound as it
 * comes and only nudges its speed (at most 10%) towards its master clock (fftools/ffplay.c
 * synchronize_audio), so each packet is stamped on that clock, read from ffplay's status lines,
 * at the moment its picture is shown, or, when it came too late for that, at once. Sound waits for
 * the first picture: before it that clock does not run, and ffplay would set it from the sound.
 */
import { performance } from 'node:perf_hooks';
import { PLAYER_CHECK_MS, PLAYER_CLOCK_LEAD_MS, PLAYER_GOP_CACHE_BYTES, PLAYER_RESTART_MIN_MS, STALE_SLACK_MS } from '../defaults.ts';
import { opusHead } from '../codecs/opus/opus.ts';
import { OwnedProcess, type SpawnFn } from '../util/child.ts';
import { LiveClock } from './clock.ts';
import type { ReceivedAudio } from './audio.ts';
import { TICKS_PER_MS, type ContainerCodec } from './container.ts';
import { MkvWriter } from './mkv.ts';
import type { FrameSink, SinkFrame } from './sinks.ts';
import { PlayerWatchdog, parseStatusLine } from './watchdog.ts';

/**
 * ffplay reading our Matroska on stdin. Each option, and why:
 * - `-probesize 32 -analyzeduration 0`: the track header says codec and size; nothing to guess.
 *   (Not `-fflags nobuffer`: it throws away what was read while probing, the keyframe a joining
 *   viewer starts from.)
 * - `-sync ext -framedrop`: no audio clock to wait on (the sound follows this clock, not the other
 *   way round); frames late against the running clock are dropped, which is how stale catch-up
 *   frames are decoded but not shown.
 * - `-vf setpts=…RTCTIME…`: each picture is due the moment it is decoded, so ffplay's startup
 *   time never becomes a standing delay; every picture after the first PLAYER_CLOCK_LEAD_MS
 *   early, so a late phase ffplay's frame timer locked onto is corrected (see defaults.ts).
 * - `-autoexit`: end of input ends ffplay (unless it is paused), so it does not outlive watch.
 * - `-stats`: a status line every 30 ms with ffplay's clock, which PlayerWatchdog reads.
 * - `-an` without sound: no audio device is opened at all (SDL's audio is not even started, so a
 *   machine without one, or with a broken SDL_AUDIODRIVER, still gets its picture).
 * - `-af aresample=PLAYER_SOUND_RATE` with sound: the device opened at a rate where its buffer is
 *   shorter, and the sound heard sooner (see there).
 */
/**
 * The rate ffplay opens its sound device at. ffplay sizes the device's buffer from the rate, not
 * from a time (fftools/ffplay.c audio_open: 2 << log2(rate / 30) samples, at least 512): 2048
 * samples at 48 kHz, Opus's rate, are 42.7 ms; 61439 Hz is the highest rate still given 2048
 * (33.3 ms). The sound server (or ALSA's plug) converts to the card's rate; a device that refuses
 * it gets ffplay's own conversion back. Measured (bench lipsync, paired, 3 runs of 17 flashes
 * each): sound after its picture p50 16-19 ms at 61439 Hz, 25-31 ms at 48 kHz, 19-32 ms at
 * 60 kHz; so not the buffer's length alone, and taken as measured.
 */
export const PLAYER_SOUND_RATE = 61_439;

export function ffplayArgs(title: string, sound = true): string[] {
  return [
    '-hide_banner', '-loglevel', 'warning', '-autoexit', '-stats',
    ...(sound ? ['-af', `aresample=${PLAYER_SOUND_RATE}`] : ['-an']),
    '-sync', 'ext', '-framedrop',
    '-window_title', title,
    ...playerInputArgs(),
    '-vf', `setpts=(RTCTIME-RTCSTART)/(TB*1000000)-gt(N\\,0)*${PLAYER_CLOCK_LEAD_MS / 1000}/TB`,
    '-i', 'pipe:0',
  ];
}

/** The input options of the player (and of any FFmpeg reading `--output -` the same way). */
export function playerInputArgs(): string[] {
  return ['-flags', 'low_delay', '-probesize', '32', '-analyzeduration', '0', '-f', 'matroska'];
}

/**
 * ffplay lines that say nothing a viewer can act on: the frame-rate guess it cannot make from a
 * 32-byte probe (the stream's timestamps are what counts), SDL's note about XDG_RUNTIME_DIR, and
 * swscale's note on full-range JPEG pixel formats (yuvj420p), printed for every MJPEG picture.
 */
const HARMLESS_FFPLAY_LINES = /not enough frames to estimate rate|XDG_RUNTIME_DIR|deprecated pixel format used/;
/**
 * ffplay could not open a sound device (fftools/ffplay.c audio_open: "No more combinations to try,
 * audio open failed"): it plays the picture alone. Said once in words; the lines before it (ALSA's
 * own complaints, each SDL_OpenAudio attempt) are dropped.
 */
const NO_SOUND_DEVICE = /audio open failed/;
/** Sound this far behind the picture (ffplay's A-V, ms) on SOUND_BEHIND_LINES status lines in a row is drained. */
const SOUND_BEHIND_MS = 120;
const SOUND_BEHIND_LINES = 2;
/** The longest the sound is drained at once. */
const SOUND_DRAIN_MAX_MS = 1500;
/** After a drain, A-V is not read for this long: two of ffplay's 2048-sample sound buffers (33.3 ms at PLAYER_SOUND_RATE), and a status line, with room. */
const SOUND_DRAIN_SETTLE_MS = 120;
const SOUND_DEVICE_NOISE = /^ALSA lib |^SDL_OpenAudio \(/;


/**
 * ffplay's own exit status for SIGINT and SIGTERM: its handler calls exit(123) (fftools/ffplay.c
 * sigterm_handler), so a player stopped by `kill` or a window manager's "force quit" ends with
 * 123, not with a signal.
 */
export const FFPLAY_SIGNAL_EXIT = 123;
/**
 * What Xlib prints (then ffplay exits 1) when its window is taken away by force: the X server cut
 * the connection (`xkill`, `xdotool windowkill`, a window manager's forced close: "X connection
 * to :0 broken (explicit kill or server shutdown)", or "XIO: fatal IO error"), or the window was
 * destroyed under it (`xdotool windowclose`: "X Error of failed request: BadDrawable").
 */
const X_CONNECTION_CUT = /^XIO:|fatal IO error|^X connection to .* broken/;
const X_WINDOW_DESTROYED = /^X Error of failed request:\s+Bad(Drawable|Window)/;
/** The lines Xlib prints under "X Error of failed request": the request's details. */
const X_ERROR_DETAIL = /^\s*(Major|Minor) opcode of failed request|^\s*Resource id in failed request|^\s*(Current )?[Ss]erial number (of failed request|in output stream)/;

/** How the player ended, in a person's words, and whether that is a normal end for watch. */
export interface PlayerExit {
  line: string;
  /** True when a person closed the window: watch ends with 0. */
  closed: boolean;
}

/**
 * Describes a player that ended by itself (not by watch): closed by a person (its window's close
 * button, `q`, or its X connection cut), killed by a signal, or failed.
 */
export function describePlayerExit(code: number | null, signal: NodeJS.Signals | null, forced?: 'cut' | 'destroyed'): PlayerExit {
  if (forced === 'cut') return { line: 'the player window was closed by force (its connection to the display was cut)', closed: true };
  if (forced === 'destroyed') return { line: 'the player window was closed by force (the window was destroyed)', closed: true };
  if (code === 0) return { line: 'the player window was closed', closed: true };
  if (code === null) return { line: `the player (ffplay) was killed${signal ? ` (${signal})` : ''}`, closed: false };
  if (code === FFPLAY_SIGNAL_EXIT) return { line: 'the player (ffplay) was killed (SIGTERM or SIGINT)', closed: false };
  return { line: `the player (ffplay) failed: it exited with code ${code}`, closed: false };
}

export interface FfplaySinkOptions {
  ffplayPath: string;
  title: string;
  /** The viewer's current repair budget (ms): frames later than it are stale. */
  budgetMs: () => number;
  /** The player ended by itself (`how` says how, see describePlayerExit); `err` when it never started. */
  onExit: (how: PlayerExit | null, err?: Error) => void;
  log: (line: string) => void;
  /** A new player has nothing to start from (no keyframe kept): ask the sharer for one. */
  onNeedKeyframe?: () => void;
  /** Play the sharer's sound (a second track); false: the player opens no audio device (`-an`). */
  sound?: boolean;
  spawn?: SpawnFn;
  /** A monotonic clock in ms; performance.now by default. */
  now?: () => number;
  /** Check the player every PLAYER_CHECK_MS on a timer (default); false: the caller calls tick(). */
  timer?: boolean;
}

export type PlayerState = 'live' | 'behind';

export class FfplaySink implements FrameSink {
  state: PlayerState = 'live';
  /** When it fell behind: it is back only once it prints a status line after this. */
  private behindSince = 0;
  /** Times the player was restarted because it had fallen behind (or the codec changed). */
  restarts = 0;
  /** Frames not given to a player that had stopped keeping up. */
  framesHeldBack = 0;
  /** Sound packets given to the player. */
  soundPlayed = 0;
  /**
   * Sound packets not given to it: before its first picture (its clock does not run yet), stale
   * (its picture is older than the repair budget), or while it was not keeping up.
   */
  soundNotPlayed = 0;
  private proc!: OwnedProcess;
  private container!: MkvWriter;
  private watchdog!: PlayerWatchdog;
  private codec?: ContainerCodec;
  /**
   * Until when the sound is drained: ffplay's sound fell SOUND_BEHIND_MS behind its picture (its
   * status line's A-V), so no sound is given for as long as it is behind (at most
   * SOUND_DRAIN_MAX_MS), and what is queued plays out. ffplay plays sound back to back and only
   * works a lag off at 10% faster: with PulseAudio its device stalls for a few hundred ms about
   * 0.6 s after it opens, and the sound queued meanwhile was heard 0.4 s late, then for 4 s after.
   * A short silence is what a call does instead.
   */
  private soundDrainUntil?: number;
  /** Status lines in a row with the sound behind. */
  private soundBehindLines = 0;
  /** Times the sound was drained. */
  soundDrains = 0;
  private readonly clock = new LiveClock();
  private readonly now: () => number;
  private readonly timer?: NodeJS.Timeout;
  private lastTick: number;
  private closed = false;
  private lastRestart: number;
  /** Players ended by a restart and not gone yet: close() waits for them too. */
  private readonly dying = new Set<OwnedProcess>();
  /** What the players before this one dropped. */
  private droppedBefore = 0;
  /** The last keyframe and every frame after it, to restart a player from. */
  private gop: SinkFrame[] = [];
  private gopBytes = 0;

  constructor(private readonly opts: FfplaySinkOptions) {
    this.now = opts.now ?? (() => performance.now());
    this.lastTick = this.now();
    this.lastRestart = this.lastTick;
    this.start();
    if (opts.timer !== false) {
      this.timer = setInterval(() => this.tick(), PLAYER_CHECK_MS);
      this.timer.unref();
    }
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Frames the players dropped themselves as late (ffplay's own count, over every restart). */
  get playerDropped(): number {
    return this.droppedBefore + this.watchdog.dropped;
  }

  /** Frames stamped stale (catch-up, or released late), so the player decodes but does not show them. */
  get framesStale(): number {
    return this.clock.stale;
  }

  write(frame: SinkFrame, now: number): void {
    if (this.closed) return;
    this.remember(frame);
    // A sharer restarted with another codec: this player's track cannot carry it.
    if (frame.keyframe && this.codec !== undefined && frame.codec !== this.codec) {
      this.restart(now, `the stream is now ${frame.codec}`, true);
      return;
    }
    if (this.state === 'behind') {
      this.framesHeldBack++;
      return;
    }
    this.send(frame, now, false);
  }

  /** One Opus packet, stamped on the player's clock where its picture is shown (see the top). */
  writeAudio(packet: ReceivedAudio, now: number): void {
    if (this.closed || !this.opts.sound) return;
    const due = this.clock.soundDue(packet.videoTimestamp, now);
    const offset = this.watchdog.clockOffsetMs;
    // A mark for sound that never came (player/audio.ts) comes with the packet after the hole, when
    // the hole's time has passed: ffplay played it as silence already, and marks played now
    // would put all that follows behind by the hole's length.
    if (packet.concealed || this.state === 'behind' || offset === undefined || due === undefined || due < now - this.opts.budgetMs() - STALE_SLACK_MS || (this.soundDrainUntil !== undefined && now < this.soundDrainUntil)) {
      this.soundNotPlayed++;
      return;
    }
    // Sound that came after its picture (the usual case: Opus waits for a packet's samples, the
    // picture does not) plays at once, and is stamped so: stamped where its picture was, ffplay
    // would find it late for good and speed it up (by up to 10%) into an empty queue.
    const at = this.clock.placeSound(packet, Math.max(due, now));
    const stdin = this.proc.stdin;
    if (!stdin) return;
    const bytes = this.container.writeAudio({ data: packet.data, pts: Math.round((at - offset) * TICKS_PER_MS) });
    if (bytes.length) this.soundPlayed++;
    else this.soundNotPlayed++;
    let ok = true;
    for (const b of bytes) ok = stdin.write(b);
    if (!ok) this.watchdog.blocked(now);
  }

  /** ffplay's A-V (seconds; NaN without sound) from a status line: drain the sound when it lags. */
  private soundLag(avSec: number, now: number): void {
    // During a drain, and for SOUND_DRAIN_SETTLE_MS after: ffplay's A-V is read from the last
    // sound its device took, so it says the old lag until new sound has been played.
    if (this.soundDrainUntil !== undefined && now < this.soundDrainUntil + SOUND_DRAIN_SETTLE_MS) return;
    this.soundBehindLines = avSec * 1000 < -SOUND_BEHIND_MS ? this.soundBehindLines + 1 : 0;
    if (this.soundBehindLines >= SOUND_BEHIND_LINES) {
      this.soundDrainUntil = now + Math.min(SOUND_DRAIN_MAX_MS, -avSec * 1000);
      this.soundBehindLines = 0;
      this.soundDrains++;
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.all([this.proc.kill(), ...[...this.dying].map((p) => p.kill())]);
  }

  /** Every PLAYER_CHECK_MS: is the player keeping up? */
  tick(now = this.now()): void {
    const late = now - this.lastTick - PLAYER_CHECK_MS;
    this.lastTick = now;
    if (this.closed) return;
    // Watch itself was held up: what the player said meanwhile may not have been read yet.
    if (late > PLAYER_CHECK_MS) {
      this.watchdog.excuse(now);
      return;
    }
    const health = this.watchdog.check(now);
    if (this.state === 'live' && health === 'stalled') {
      this.state = 'behind';
      this.behindSince = now;
      this.opts.log(
        `player fell behind (nothing read or shown for ${this.watchdog.silentMs(now)} ms: paused or stalled); ` +
          'holding frames back, it restarts live once it responds again',
      );
    } else if (this.state === 'behind' && health !== 'stalled' && this.watchdog.spokeSince(this.behindSince)) {
      this.restart(now, 'it responds again');
    } else if (this.state === 'live' && health === 'lagging' && now - this.lastRestart >= PLAYER_RESTART_MIN_MS) {
      this.restart(now, `it was ${Math.round(this.watchdog.lagMs)} ms behind (resumed after a pause, or too slow)`);
    }
  }

  private start(): void {
    const proc = new OwnedProcess({
      name: 'ffplay',
      command: this.opts.ffplayPath,
      args: ffplayArgs(this.opts.title, this.opts.sound === true),
      stdin: 'pipe', // Matroska, one block per whole frame
      stdout: 'ignore',
      spawn: this.opts.spawn,
    });
    const watchdog = new PlayerWatchdog(this.now());
    /** Set when Xlib says the window was taken away (then ffplay exits 1): said in words at its exit. */
    let forced: 'cut' | 'destroyed' | undefined;
    this.proc = proc;
    this.watchdog = watchdog;
    // Opus with an ID header made here (RTP carries none), pre-skip 0: each packet's time is its
    // sound's capture time, as in recordings (sinks.ts).
    this.container = new MkvWriter(this.opts.sound ? { audio: { head: opusHead(2) } } : {});
    this.codec = undefined;
    this.clock.reset();
    this.soundDrainUntil = undefined;
    this.soundBehindLines = 0;
    proc.on('started', (pid: number) => this.opts.log(`ffplay started (pid ${pid})`));
    proc.on('stderr-line', (line: string) => {
      const status = parseStatusLine(line);
      if (status) {
        watchdog.status(status.clockSec, status.dropped, this.now());
        this.soundLag(status.avSec, this.now());
      }
      else if (X_CONNECTION_CUT.test(line)) forced = 'cut';
      else if (X_WINDOW_DESTROYED.test(line)) forced ??= 'destroyed';
      else if (forced && X_ERROR_DETAIL.test(line)) return;
      else if (NO_SOUND_DEVICE.test(line)) this.opts.log('ffplay could not open a sound device: the picture plays without sound');
      else if (SOUND_DEVICE_NOISE.test(line)) return;
      else if (!HARMLESS_FFPLAY_LINES.test(line)) this.opts.log(`ffplay: ${line}`);
    });
    proc.on('failed-to-start', (err: Error) => {
      if (proc === this.proc && !this.closed) this.opts.onExit(null, err);
    });
    proc.on('died', (code: number | null, signal: NodeJS.Signals | null, expected: boolean) => {
      if (proc === this.proc && !expected && !this.closed) this.opts.onExit(describePlayerExit(code, signal, forced));
    });
    proc.stdin?.on('drain', () => watchdog.drained(this.now()));
  }

  /**
   * A fresh player, fed the last keyframe and what followed it as stale frames, then live ones.
   * At most one per PLAYER_RESTART_MIN_MS unless `now` says it must (a codec change): a machine
   * too slow to keep up is not made slower by a new window every moment.
   */
  private restart(now: number, why: string, force = false): void {
    if (this.closed || (!force && now - this.lastRestart < PLAYER_RESTART_MIN_MS)) return;
    this.lastRestart = now;
    this.restarts++;
    this.state = 'live';
    const old = this.proc;
    this.droppedBefore += this.watchdog.dropped;
    this.dying.add(old);
    void old.kill().then(() => this.dying.delete(old));
    this.start();
    this.opts.log(`player restarted live: ${why} (restart ${this.restarts})`);
    if (this.gop.length === 0) this.opts.onNeedKeyframe?.();
    for (const f of this.gop) this.send(f, now, true);
  }

  private send(frame: SinkFrame, now: number, stale: boolean): void {
    const { pts } = this.clock.stamp(stale ? { latencyMs: Infinity } : frame, now, this.opts.budgetMs());
    const stdin = this.proc.stdin;
    if (!stdin) return;
    const bytes = this.container.write({ codec: frame.codec, data: frame.data, keyframe: frame.keyframe, pts });
    if (bytes.length) this.codec ??= frame.codec;
    let ok = true;
    for (const b of bytes) ok = stdin.write(b);
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
    // Past the cap, a restart waits for the next keyframe instead (and asks for one).
    if (this.gopBytes > PLAYER_GOP_CACHE_BYTES) this.gop = [];
    else this.gop.push(frame);
  }
}
