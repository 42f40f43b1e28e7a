/**
 * Where reassembled frames go besides the player window (ffplay.ts): a recording or stdout. Each
 * sink takes whole frames only (as the codec's depacketizer gives them: an Annex B access unit, a JPEG) with the time, on a monotonic
 * clock, they were handed over.
 *
 * Recordings take their container from the file name (outputFormat) and RTP's own timestamps.
 * stdout gets Matroska stamped on arrival like the player's: one block per whole frame, so
 * whatever reads the pipe decodes a frame the moment it arrives and plays it live; its sound is
 * stamped where the picture captured with it arrives (LiveClock.soundDue).
 */
import { createWriteStream, openSync, writeSync, closeSync, type WriteStream } from 'node:fs';
import { OUTPUT_BUFFER_MAX_BYTES, STALE_SLACK_MS } from '../defaults.ts';
import { UsageError } from '../util/errors.ts';
import { CODEC_NAMES, codec, type CodecName } from '../codecs/registry.ts';
import { LiveClock, RecordingClock } from './clock.ts';
import type { ContainerCodec, ContainerFrame, ContainerTracks, ContainerWriter } from './container.ts';
import type { ReceivedAudio } from './audio.ts';
import { opusHead } from '../codecs/opus/opus.ts';
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
  /** The sharer's sound, for a sink that keeps it. */
  writeAudio?(packet: ReceivedAudio, now: number): void;
  close(): Promise<void>;
}

/**
 * A recording's header names its tracks, so an .mkv or .mp4 waits this long (arrival time) after
 * its first keyframe for sound before it starts without (frames are kept meanwhile): Opus comes
 * every 10 or 20 ms.
 */
export const AUDIO_WAIT_MS = 300;
/**
 * The same for `--output -`, which a player reads live: the relay sends a joining viewer the sound
 * beside its cached keyframe, and a packet every 10-20 ms after, so sound that exists is seen
 * within this; a share without sound costs the pipe's first picture no more.
 */
export const AUDIO_WAIT_LIVE_MS = 60;
/**
 * How long a recording waits for its first sound to be placed on the picture's clock once sound has
 * come: that needs the sender reports of both, which a sharer sends every second and an RTSP
 * publisher through the relay too (FFmpeg itself only every 5 s). Past it the file starts with its
 * sound track anyway, and the sound joins when it can be placed.
 */
export const AUDIO_PLACE_WAIT_MS = 1500;

// ---- Output formats -------------------------------------------------------------------------

/** A container (.mkv, .mp4), or a codec's raw bitstream (named by the codec). */
export type OutputFormat = 'mkv' | 'mp4' | CodecName;

const EXTENSIONS: Record<string, OutputFormat> = {
  '.mkv': 'mkv',
  '.mp4': 'mp4',
  ...Object.fromEntries(CODEC_NAMES.flatMap((n) => codec(n).rawExtensions.map((ext) => [ext, n]))),
};
/** ".h264 or .mjpeg": each codec's first raw extension, for the error message. */
const RAW_EXAMPLES = CODEC_NAMES.map((n) => codec(n).rawExtensions[0]).join(' or ');

/** The container for `--output PATH`, from its extension; '-' (stdout) is Matroska. */
export function outputFormat(path: string): OutputFormat {
  if (path === '-') return 'mkv';
  const ext = /\.[^./\\]+$/.exec(path)?.[0].toLowerCase() ?? '';
  const format = EXTENSIONS[ext];
  if (!format) {
    throw new UsageError(
      `--output ${path}: unknown extension ${ext ? JSON.stringify(ext) : '(none)'}; use .mkv or .mp4 (timestamped recordings), ` +
        `${RAW_EXAMPLES} (the raw stream), or - for stdout`,
    );
  }
  return format;
}

function containerFor(format: 'mkv' | 'mp4', tracks: ContainerTracks = {}): ContainerWriter {
  return format === 'mkv' ? new MkvWriter(tracks) : new Mp4Writer(tracks);
}

// ---- Files and stdout ----------------------------------------------------------------------------

/**
 * A recording (.mkv/.mp4 with RTP's timestamps, or the raw stream) or stdout (Matroska stamped on
 * arrival, like the player's, so whatever reads the pipe can play it live).
 *
 * The file is opened (created, or an existing one replaced) with its first bytes, not before: a
 * watch that ends before recording anything (no display, no relay, no such stream) leaves what
 * was there untouched and no empty file behind.
 */
export class FileSink implements FrameSink {
  /** stdout from the start; a file's stream from its first bytes on (emit). */
  private out?: WriteStream | NodeJS.WriteStream;
  private readonly toStdout: boolean;
  private readonly format: OutputFormat;
  private container?: ContainerWriter;
  /** An .mkv or .mp4 file, or stdout, unless told --no-audio: it takes the sound as a second track. */
  private readonly takesAudio: boolean;
  /** Whether the file's tracks are settled (picture alone, or with sound). */
  private tracksSettled: boolean;
  private audioSeen = false;
  /** Frames from the first keyframe on, while the tracks are not settled. */
  private startWait?: { since: number; frames: ContainerFrame[] };
  /** Sound packets not written: before the file started, or into a file that has no sound track. */
  audioNotWritten = 0;
  private readonly recordingClock = new RecordingClock();
  private readonly liveClock = new LiveClock();
  /** The codec of the first frame written: a file holds one. */
  private codec?: ContainerCodec;
  /** Frames not written because their codec differs from the file's (a sharer restarted with another). */
  skipped = 0;
  /** Frames not written because the reader of stdout, or the disk, fell OUTPUT_BUFFER_MAX_BYTES behind. */
  framesNotWritten = 0;
  private waitForKeyframe = false;
  private failed?: string;

  constructor(
    private readonly path: string,
    private readonly opts: {
      budgetMs?: () => number;
      log?: (line: string) => void;
      audio?: boolean;
      /** Whether the stream's sound came, even before it can be placed (its sender report not in yet). */
      soundHeard?: () => boolean;
    } = {},
  ) {
    this.toStdout = path === '-';
    this.format = outputFormat(path);
    this.container = this.format === 'mkv' || this.format === 'mp4' ? containerFor(this.format) : undefined;
    this.takesAudio = (this.format === 'mkv' || this.format === 'mp4') && opts.audio !== false;
    this.tracksSettled = !this.takesAudio;
    if (this.toStdout) this.open(process.stdout);
  }

  private open(out: WriteStream | NodeJS.WriteStream): WriteStream | NodeJS.WriteStream {
    this.out = out;
    // A closed stdout (EPIPE) or a full disk ends this output, not the viewer: said once.
    out.on('error', (err: NodeJS.ErrnoException) => {
      if (this.failed) return;
      this.failed = err.code ?? err.message;
      if (err.code !== 'EPIPE') this.opts.log?.(`--output ${this.path}: cannot write (${this.failed}); watching goes on without it`);
    });
    return out;
  }

  /** Bytes for the output: the first ones open the file. */
  private emit(bytes: Buffer): void {
    if (bytes.length === 0) return;
    (this.out ?? this.open(createWriteStream(this.path))).write(bytes);
  }

  /** Bytes given to the output and not yet written (0 before the file is opened). */
  private get unwritten(): number {
    return this.out?.writableLength ?? 0;
  }

  write(frame: SinkFrame, now: number): void {
    if (this.failed) return;
    // A reader that stopped reading (a paused player on the pipe) or a slow disk: frames wait for
    // the next keyframe instead of piling up here.
    if (this.unwritten > OUTPUT_BUFFER_MAX_BYTES) {
      if (!this.waitForKeyframe) this.opts.log?.(`--output ${this.path}: ${OUTPUT_BUFFER_MAX_BYTES >> 20} MB not yet written: frames skipped until it catches up`);
      this.waitForKeyframe = true;
    }
    if (this.waitForKeyframe) {
      if (!frame.keyframe || this.unwritten > OUTPUT_BUFFER_MAX_BYTES / 2) {
        this.framesNotWritten++;
        return;
      }
      this.waitForKeyframe = false;
    }
    this.codec ??= frame.codec;
    if (frame.codec !== this.codec || (!this.container && frame.codec !== this.format)) {
      if (this.skipped++ === 0) {
        this.opts.log?.(`--output ${this.path}: the stream is ${frame.codec}, the file ${this.container ? this.codec : this.format}: frames not written`);
      }
      return;
    }
    if (!this.container) {
      this.emit(frame.data);
      return;
    }
    const pts = this.toStdout
      ? this.liveClock.stamp(frame, now, this.opts.budgetMs?.() ?? 0).pts
      : this.recordingClock.stamp(frame.timestamp, now);
    const f: ContainerFrame = { codec: frame.codec, data: frame.data, keyframe: frame.keyframe, pts };
    if (!this.tracksSettled && (frame.keyframe || this.startWait)) {
      // The file's start: is there sound? Frames wait until some comes, or AUDIO_WAIT_MS (live: AUDIO_WAIT_LIVE_MS).
      (this.startWait ??= { since: now, frames: [] }).frames.push(f);
      const wait = this.toStdout ? AUDIO_WAIT_LIVE_MS : this.soundHeard ? AUDIO_PLACE_WAIT_MS : AUDIO_WAIT_MS;
      if (this.audioSeen || now - this.startWait.since >= wait) this.settleTracks();
      return;
    }
    for (const b of this.container.write(f)) this.emit(b);
  }

  /** One Opus packet: into a recording's second track, at its place on the frames' timeline. */
  writeAudio(packet: ReceivedAudio, now: number): void {
    if (this.failed || !this.takesAudio) return;
    this.audioSeen = true;
    if (!this.tracksSettled && this.startWait) this.settleTracks();
    const pts = this.toStdout ? this.liveSoundPts(packet, now) : this.recordingClock.at(packet.videoTimestamp);
    if (!this.tracksSettled || pts === undefined || !this.container?.writeAudio) {
      this.audioNotWritten++;
      return;
    }
    for (const b of this.container.writeAudio({ data: packet.data, pts })) this.emit(b);
  }

  /**
   * stdout: where the picture captured with the packet arrives (LiveClock), at the sound's own
   * pace. Sound older than the repair budget allows a frame is stale, as such a frame would be.
   */
  private liveSoundPts(packet: ReceivedAudio, now: number): number | undefined {
    // A mark for sound that never came arrives after the hole's time: a player reading the pipe
    // has played the hole already (see FfplaySink.writeAudio). Recordings keep them.
    if (packet.concealed) return undefined;
    const due = this.liveClock.soundDue(packet.videoTimestamp, now);
    if (due === undefined || due < now - (this.opts.budgetMs?.() ?? 0) - STALE_SLACK_MS) return undefined;
    return this.liveClock.ticksAt(this.liveClock.placeSound(packet, due));
  }

  /**
   * The tracks are known: with sound, a writer with an Opus track (an ID header made here: RTP
   * carries none; pre-skip 0, since the packets' times are already their sound's capture times).
   * The frames kept meanwhile are written.
   */
  private settleTracks(): void {
    this.tracksSettled = true;
    if (this.audioSeen || this.soundHeard) this.container = containerFor(this.format as 'mkv' | 'mp4', { audio: { head: opusHead(2) } });
    const frames = this.startWait?.frames ?? [];
    this.startWait = undefined;
    for (const f of frames) for (const b of this.container!.write(f)) this.emit(b);
  }

  /** Sound came (this sink takes it), placed or not. */
  private get soundHeard(): boolean {
    return this.takesAudio && (this.opts.soundHeard?.() ?? false);
  }

  async close(): Promise<void> {
    if (!this.tracksSettled && this.startWait && !this.failed) this.settleTracks();
    const tail = this.container?.end() ?? [];
    for (const b of tail) this.emit(b);
    // Nothing written: no file was opened, and one that was there is as it was.
    if (this.toStdout || !this.out) return;
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
