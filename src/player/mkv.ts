/**
 * A Matroska writer for one video track and, when asked, one Opus audio track, written strictly
 * forward so it can feed a pipe: the live player reads it on stdin, and `.mkv` recordings are the
 * same bytes in a file.
 *
 * Why a container at all: a raw Annex B or MJPEG stream has no end-of-frame mark, so FFmpeg's
 * parser holds each frame until the next one starts (one frame interval of delay), and has no
 * timestamps, so the player paces frames at a guessed rate and never catches up. A SimpleBlock
 * is one whole frame with its own time.
 *
 * Layout (Matroska, RFC 9559; EBML, RFC 8794), sizes "unknown" where the writer cannot know them
 * yet (RFC 8794 §6.2: all VINT_DATA bits set), which is how live Matroska is streamed:
 *
 *     EBML header                 1A45DFA3  DocType "matroska"
 *     Segment (unknown size)      18538067
 *       Info                      1549A966  TimestampScale 1 ms, [Void for Duration], apps
 *       Tracks                    1654AE6B
 *         TrackEntry              AE        number 1, video, CodecID, CodecPrivate (avcC), size
 *         TrackEntry              AE        (with audio) number 2, A_OPUS, OpusHead, CodecDelay,
 *                                           SeekPreRoll, Audio: 48000 Hz, channels
 *       Cluster (unknown size)    1F43B675  one per keyframe, or when 16-bit block times run out
 *         Timestamp               E7        the cluster's time in ms
 *         SimpleBlock             A3        track 1 (0x81) or 2 (0x82), int16 time relative to the
 *                                           cluster, flags (0x80 = keyframe), the frame
 *
 * SimpleBlock (RFC 9559 §10.2):
 *
 *     +--------------+----------------+--------+------------------------------+
 *     | track (VINT) | rel. time (16) | flags  | frame bytes                  |
 *     +--------------+----------------+--------+------------------------------+
 *
 * The Info element keeps an 11-byte Void where a Duration fits: a writer that owns a seekable file
 * can put the real duration there at the end (`durationPatch`), so players show the length of a
 * recording; a killed writer leaves the Void, which every reader skips.
 *
 * Audio (Opus, in the Matroska codec mapping's "A_OPUS" form) shares the video's clusters. A block
 * time is a signed 16-bit offset from its cluster's Timestamp (RFC 9559 §10.1), so an audio packet
 * that lands more than 32767 ms after the cluster's start opens a new cluster, and one up to 32768
 * ms before it takes a negative offset. A cluster's Timestamp never goes back: the video's keyframe
 * seeking and readers that check order rely on it. Audio older than that range, or from before the
 * file's first picture, cannot be placed right and is counted and dropped (`audioDropped`).
 */
import { codec } from '../codecs/registry.ts';
import { OPUS_RATE, opusPacketSamples, parseOpusHead, type OpusHead } from '../codecs/opus/opus.ts';
import { unlessMalformed } from '../util/errors.ts';
import { TICKS_PER_MS, type ContainerFrame, type ContainerWriter } from './container.ts';

// Element IDs (RFC 8794 §11.2 for the EBML header, RFC 9559 §5.1 for the rest).
const ID = {
  EBML: 0x1a45dfa3,
  EBMLVersion: 0x4286,
  EBMLReadVersion: 0x42f7,
  EBMLMaxIDLength: 0x42f2,
  EBMLMaxSizeLength: 0x42f3,
  DocType: 0x4282,
  DocTypeVersion: 0x4287,
  DocTypeReadVersion: 0x4285,
  Segment: 0x18538067,
  Info: 0x1549a966,
  TimestampScale: 0x2ad7b1,
  Duration: 0x4489,
  MuxingApp: 0x4d80,
  WritingApp: 0x5741,
  Tracks: 0x1654ae6b,
  TrackEntry: 0xae,
  TrackNumber: 0xd7,
  TrackUID: 0x73c5,
  TrackType: 0x83,
  FlagLacing: 0x9c,
  CodecID: 0x86,
  CodecPrivate: 0x63a2,
  CodecDelay: 0x56aa,
  SeekPreRoll: 0x56bb,
  Video: 0xe0,
  PixelWidth: 0xb0,
  PixelHeight: 0xba,
  Audio: 0xe1,
  SamplingFrequency: 0xb5,
  Channels: 0x9f,
  Cluster: 0x1f43b675,
  Timestamp: 0xe7,
  SimpleBlock: 0xa3,
  Void: 0xec,
} as const;

/** RFC 8794 §6.2: an 8-byte size with every data bit set means "unknown". */
const UNKNOWN_SIZE = Buffer.from([0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
/** RFC 9559 §5.1.4.1.1: TrackType 1 is video. */
const TRACK_TYPE_VIDEO = 1;
/** One tick of the block timestamps: 1,000,000 ns = 1 ms (TimestampScale). */
const TIMESTAMP_SCALE_NS = 1_000_000;
/** A SimpleBlock's time is a signed 16-bit offset from its cluster's: start a new cluster before it overflows. */
const MAX_BLOCK_OFFSET_MS = 32767;
/** The other end of the int16: the furthest a block may sit before its cluster's Timestamp. */
const MIN_BLOCK_OFFSET_MS = -32768;
const FLAG_KEYFRAME = 0x80;
/** Track number 1 as a one-byte VINT (RFC 8794 §4: marker bit 0x80 | 1). */
const TRACK_1_VINT = 0x81;
/** Track number 2, the audio track, as a one-byte VINT. */
const TRACK_2_VINT = 0x82;
/** RFC 9559 §5.1.4.1.3: TrackType 2 is audio. */
const TRACK_TYPE_AUDIO = 2;
/** Matroska codec mapping, A_OPUS. */
const OPUS_CODEC_ID = 'A_OPUS';
/** Opus always decodes at 48 kHz (RFC 7845 §5.1: pre-skip and granule positions count 48 kHz samples). */
const OPUS_SAMPLES_PER_MS = OPUS_RATE / 1000;
/** Matroska codec mapping, A_OPUS: SeekPreRoll SHOULD be 80 ms, in ns, so the decoder has settled by the seek target. */
const OPUS_SEEK_PRE_ROLL_NS = 80_000_000;
/** A SimpleBlock's header: track VINT (1 byte), signed 16-bit relative time, flags (1 byte). */
const BLOCK_HEADER_BYTES = 4;
/** Duration: 2-byte ID, 1-byte size, 8-byte float = 11 bytes, the size of the Void kept for it. */
const DURATION_ELEMENT_BYTES = 11;

/** An element ID: its bytes as written (the length marker is part of the ID). */
function id(value: number): Buffer {
  const n = value > 0xffffff ? 4 : value > 0xffff ? 3 : value > 0xff ? 2 : 1;
  const b = Buffer.alloc(n);
  b.writeUIntBE(value, 0, n);
  return b;
}

/** A data size as an EBML variable-length integer (RFC 8794 §4), shortest form. */
export function vint(size: number): Buffer {
  for (let len = 1; len <= 8; len++) {
    // 7 usable bits per byte; the all-ones value is reserved for "unknown".
    if (size < 2 ** (7 * len) - 1) {
      const b = Buffer.alloc(len);
      let v = size;
      for (let i = len - 1; i >= 0; i--) {
        b[i] = v % 256;
        v = Math.floor(v / 256);
      }
      b[0] |= 0x80 >> (len - 1);
      return b;
    }
  }
  throw new RangeError(`EBML: size ${size} does not fit 8 bytes`);
}

function element(elementId: number, ...body: Buffer[]): Buffer {
  const data = Buffer.concat(body);
  return Buffer.concat([id(elementId), vint(data.length), data]);
}

function uint(elementId: number, value: number): Buffer {
  let n = 1;
  while (n < 6 && value >= 2 ** (8 * n)) n++; // values here stay far below 2^48
  const b = Buffer.alloc(n);
  b.writeUIntBE(value, 0, n);
  return element(elementId, b);
}

function str(elementId: number, value: string): Buffer {
  return element(elementId, Buffer.from(value, 'utf8'));
}

function float(elementId: number, value: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeDoubleBE(value);
  return element(elementId, b);
}

/** What MkvWriter takes besides video. */
export interface MkvOptions {
  /** An Opus track (track 2): `head` is its OpusHead (RFC 7845 §5.1), checked here (PacketError). */
  audio?: { head: Buffer };
}

/** One Opus packet (RFC 6716 §3, as RFC 7587 carries it) for the audio track. */
export interface AudioPacket {
  data: Buffer;
  /**
   * Time in the video frames' timeline (90 kHz ticks, ContainerFrame.pts) of the packet's first
   * sample as the decoder gives it, pre-skip included: what its RTP timestamp says. Readers
   * subtract CodecDelay (RFC 9559 §11.2), which takes the pre-skip back out.
   */
  pts: number;
}

export class MkvWriter implements ContainerWriter {
  /** Bytes written so far: where the next write lands in the file. */
  private offset = 0;
  private started = false;
  private firstPts = 0;
  private clusterMs = -Infinity;
  private lastMs = 0;
  private frameMs = 0;
  /** Where the Void kept for Duration starts, from the start of the file. */
  private durationAt = 0;
  /** The audio track, when there is one. */
  /** The audio track's OpusHead, read and as given (its CodecPrivate). */
  private readonly opus: (OpusHead & { bytes: Buffer }) | undefined;
  /** When the audio written so far stops playing, in ms (after CodecDelay). */
  private audioEndMs = -Infinity;
  /**
   * Audio packets given no bytes: before the file started (before the first video keyframe, or
   * timed before its first picture), older than the current cluster can reach, malformed (not an
   * Opus packet by RFC 6716 §3.4), or given to a writer without an audio track.
   */
  readonly audioDropped = { beforeStart: 0, tooOld: 0, malformed: 0, noTrack: 0 };

  constructor(options: MkvOptions = {}) {
    this.opus = options.audio ? { ...parseOpusHead(options.audio.head), bytes: options.audio.head } : undefined;
  }

  write(frame: ContainerFrame): Buffer[] {
    const out: Buffer[] = [];
    // Annex B our depacketizer did not build could be malformed: such a frame is dropped.
    const payload = codec(frame.codec).container.sample(frame.data);
    if (!payload) return out;
    if (!this.started) {
      if (!frame.keyframe) return out;
      const header = this.header(frame);
      if (!header) return out;
      this.started = true;
      this.firstPts = frame.pts;
      out.push(header);
    }
    const ms = Math.round((frame.pts - this.firstPts) / TICKS_PER_MS);
    if (ms > this.lastMs) this.frameMs = ms - this.lastMs;
    this.lastMs = Math.max(this.lastMs, ms);
    const rel = ms - this.clusterMs;
    // An audio block may have opened the cluster a little after this frame's time: the frame then
    // takes a negative offset, and a keyframe's new cluster keeps that Timestamp rather than go back.
    // Video alone never steps back (ContainerFrame.pts); if it does, its own time wins, as before.
    const behindAudio = this.opus !== undefined && rel < 0 && rel >= MIN_BLOCK_OFFSET_MS;
    if (frame.keyframe || rel > MAX_BLOCK_OFFSET_MS || (rel < 0 && !behindAudio)) {
      this.openCluster(behindAudio ? this.clusterMs : ms, out);
    }
    this.block(TRACK_1_VINT, ms, frame.keyframe ? FLAG_KEYFRAME : 0, payload, out);
    for (const b of out) this.offset += b.length;
    return out;
  }

  /**
   * The bytes for one Opus packet on track 2 (none when dropped: see `audioDropped`). Every Opus
   * packet decodes on its own once the decoder has run SeekPreRoll, so each is a keyframe.
   */
  writeAudio(packet: AudioPacket): Buffer[] {
    const out: Buffer[] = [];
    if (!this.opus) {
      this.audioDropped.noTrack++;
      return out;
    }
    // The header needs the first video keyframe (its size and decoder configuration).
    if (!this.started) {
      this.audioDropped.beforeStart++;
      return out;
    }
    const samples = unlessMalformed(() => opusPacketSamples(packet.data), undefined);
    if (samples === undefined) {
      this.audioDropped.malformed++;
      return out;
    }
    const ms = Math.round((packet.pts - this.firstPts) / TICKS_PER_MS);
    // RFC 9559 §11.2: a block's time SHOULD NOT be negative; the file starts at its first picture.
    if (ms < 0) {
      this.audioDropped.beforeStart++;
      return out;
    }
    const rel = ms - this.clusterMs;
    if (rel < MIN_BLOCK_OFFSET_MS) {
      this.audioDropped.tooOld++;
      return out;
    }
    if (rel > MAX_BLOCK_OFFSET_MS) this.openCluster(ms, out);
    this.block(TRACK_2_VINT, ms, FLAG_KEYFRAME, packet.data, out);
    this.audioEndMs = Math.max(this.audioEndMs, ms + (samples - this.opus.preSkip) / OPUS_SAMPLES_PER_MS);
    for (const b of out) this.offset += b.length;
    return out;
  }

  end(): Buffer[] {
    return [];
  }

  /**
   * For a seekable file, after the last write: the bytes and file offset that turn the Void kept
   * in Info into the recording's Duration (last frame's time plus one frame, or the end of the
   * last audio packet as played, after CodecDelay, when that is later). Undefined when nothing
   * was written.
   */
  durationPatch(): { at: number; bytes: Buffer } | undefined {
    if (!this.started) return undefined;
    return { at: this.durationAt, bytes: float(ID.Duration, Math.max(this.lastMs + this.frameMs, this.audioEndMs)) };
  }

  private openCluster(ms: number, out: Buffer[]): void {
    this.clusterMs = ms;
    out.push(id(ID.Cluster), UNKNOWN_SIZE, uint(ID.Timestamp, ms));
  }

  /** A SimpleBlock in the current cluster; the payload is sent as is (a view, not copied). */
  private block(trackVint: number, ms: number, flags: number, payload: Buffer, out: Buffer[]): void {
    const head = Buffer.alloc(BLOCK_HEADER_BYTES);
    head[0] = trackVint;
    head.writeInt16BE(ms - this.clusterMs, 1);
    head[3] = flags;
    out.push(id(ID.SimpleBlock), vint(head.length + payload.length), head, payload);
  }

  private header(frame: ContainerFrame): Buffer | undefined {
    const c = codec(frame.codec);
    const config = c.container.config?.(frame.data);
    const size = c.frameSize(frame.data);
    // A keyframe without its decoder configuration, or whose size cannot be read, cannot start the file.
    if (config === null || !size) return undefined;
    const codecPrivate = config ? [element(ID.CodecPrivate, config.record)] : [];
    const ebml = element(
      ID.EBML,
      uint(ID.EBMLVersion, 1),
      uint(ID.EBMLReadVersion, 1),
      uint(ID.EBMLMaxIDLength, 4),
      uint(ID.EBMLMaxSizeLength, 8),
      str(ID.DocType, 'matroska'),
      uint(ID.DocTypeVersion, 4),
      uint(ID.DocTypeReadVersion, 2),
    );
    const voidForDuration = element(ID.Void, Buffer.alloc(DURATION_ELEMENT_BYTES - 2));
    const infoHead = uint(ID.TimestampScale, TIMESTAMP_SCALE_NS);
    const infoBody = [infoHead, voidForDuration, str(ID.MuxingApp, 'udpcast'), str(ID.WritingApp, 'udpcast')];
    const info = element(ID.Info, ...infoBody);
    const segmentHead = Buffer.concat([id(ID.Segment), UNKNOWN_SIZE]);
    const infoSizeBytes = vint(infoBody.reduce((n, b) => n + b.length, 0)).length;
    this.durationAt = ebml.length + segmentHead.length + id(ID.Info).length + infoSizeBytes + infoHead.length;
    const tracks = element(
      ID.Tracks,
      element(
        ID.TrackEntry,
        uint(ID.TrackNumber, 1),
        uint(ID.TrackUID, 1),
        uint(ID.TrackType, TRACK_TYPE_VIDEO),
        uint(ID.FlagLacing, 0),
        str(ID.CodecID, c.container.matroskaId),
        ...codecPrivate,
        element(ID.Video, uint(ID.PixelWidth, size.width), uint(ID.PixelHeight, size.height)),
      ),
      ...(this.opus ? [this.audioTrack(this.opus)] : []),
    );
    return Buffer.concat([ebml, segmentHead, info, tracks]);
  }

  /** Track 2 by the Matroska codec mapping for A_OPUS (the codec_specs "A_OPUS" section). */
  private audioTrack(head: OpusHead & { bytes: Buffer }): Buffer {
    // CodecDelay is the pre-skip in ns; a pre-skip that is not a whole number of ns rounds to the nearest.
    const codecDelayNs = Math.round((head.preSkip * 1e9) / OPUS_RATE);
    return element(
      ID.TrackEntry,
      uint(ID.TrackNumber, 2),
      uint(ID.TrackUID, 2),
      uint(ID.TrackType, TRACK_TYPE_AUDIO),
      uint(ID.FlagLacing, 0),
      str(ID.CodecID, OPUS_CODEC_ID),
      element(ID.CodecPrivate, head.bytes),
      uint(ID.CodecDelay, codecDelayNs),
      uint(ID.SeekPreRoll, OPUS_SEEK_PRE_ROLL_NS),
      // The decoder's rate, not the OpusHead's informational input rate (RFC 7845 §5.1).
      element(ID.Audio, float(ID.SamplingFrequency, OPUS_RATE), uint(ID.Channels, head.channels)),
    );
  }
}
