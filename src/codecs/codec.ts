/**
 * What udpcast needs to know about a video codec, in one place. Everything codec-specific sits in
 * the codec's folder (codecs/h264/, codecs/mjpeg/) behind this interface; the rest of udpcast asks
 * the registry (registry.ts) and never names a codec. Adding one is a folder and a registry line
 * (checklist in ARCHITECTURE.md).
 */
import type { Depacketizer, Payload } from '../rtp/frame.ts';

/**
 * A well-formed frame the payload format cannot carry (a JPEG RFC 2435 has no way to signal): a
 * settings problem, not line noise, so the share stops and the message says what to change.
 */
export class FrameUnsupportedError extends Error {
  override name = 'FrameUnsupportedError';
}

export interface Size {
  width: number;
  height: number;
}

/** What the share asked the encoder for (src/encode/ffmpeg-args.ts fills it from the options). */
export interface EncoderSettings {
  /** --encoder: an FFmpeg encoder name, when the codec has a choice. */
  encoder?: string;
  bitrateKbps: number;
  fps: number;
  /** Keyframe interval in frames. */
  gop: number;
  /** --quality, for codecs that take a fixed quality instead of a bitrate. */
  quality?: number;
  /** The environment, for encoder options taken from it (a VA-API device). */
  env?: NodeJS.ProcessEnv;
}

/** The FFmpeg arguments a codec adds to the share's command line, in the places they go. */
export interface FfmpegEncoding {
  /** Global options, before the input. */
  global: string[];
  /** Filters appended to the -vf chain (after scaling and size fitting). */
  filters: string[];
  /** Encoder options and the container on stdout (`pipe:1`). */
  output: string[];
  /**
   * How src/encode reads FFmpeg's stdout: FLV tags (each states its length, so a frame is whole
   * the moment its tag is), or a sequence of JPEGs (each ends with EOI).
   */
  reader: 'flv' | 'jpeg-sequence';
}

export interface Packetizer {
  /** One frame as the encoder's reader gives it (its units: NAL units, or one JPEG) → RTP payloads. */
  packetize(units: Buffer[]): Payload[];
}

/** How a codec is stored in the containers watch writes (src/player/mkv.ts, mp4.ts). */
export interface ContainerMapping {
  /** Matroska CodecID (Matroska codec specs). */
  matroskaId: string;
  /** ISO BMFF sample entry type (stsd), and the brands it needs in ftyp. */
  mp4SampleEntry: string;
  mp4Brands: string[];
  /**
   * The decoder configuration a keyframe gives (H.264: the avcC record), written as Matroska
   * CodecPrivate and inside the MP4 sample entry as `box`. Undefined: the codec needs none. Null:
   * the keyframe lacks it (malformed or incomplete), so the file cannot start there.
   */
  config?(keyframe: Buffer): { record: Buffer; box: string } | null;
  /** A frame as the container stores it (H.264: length-prefixed NAL units); undefined if malformed. */
  sample(frame: Buffer): Buffer | undefined;
}

/** One payload format of an SDP offer (a=rtpmap and its a=fmtp), as a browser offers it. */
export interface OfferedFormat {
  payloadType: number;
  /** The encoding name, lower case. */
  name: string;
  clockRate: number;
  /** a=fmtp parameters, keys lower case. */
  fmtp: ReadonlyMap<string, string>;
}

export interface Codec {
  /** The --codec value. */
  readonly name: string;
  /** How a person names it: "H.264". */
  readonly label: string;
  /** RTP payload type (static per RFC 3551, or udpcast's dynamic choice in defaults.ts). */
  readonly payloadType: number;
  readonly clockRate: number;
  /** SDP a=rtpmap encoding name (RFC 6184 §8.1, RFC 2435 / RFC 3551 §6). */
  readonly rtpmapName: string;
  /**
   * For a codec driven by a fixed quality (FFmpeg -q:v) unless --bitrate is given: its range and
   * default. Absent: the codec is driven by --bitrate alone.
   */
  readonly quality?: {
    min: number;
    max: number;
    default: number;
    /** Added to the notice that even the lowest quality exceeds --bitrate: another way out. */
    otherwise?: string;
  };
  /** FFmpeg stderr lines of this codec's encoder that say nothing a person can act on. */
  readonly harmlessFfmpegLines?: readonly RegExp[];
  /** SDP a=fmtp parameters, if any (RFC 8866 §6.15). */
  fmtp?(params: { profileLevelId?: string; spropParameterSets?: string }): string | undefined;
  /** Those parameters read off the RTP payloads of a keyframe (the relay's cache), for an SDP it serves. */
  sdpParams?(payloads: readonly Buffer[]): { profileLevelId?: string; spropParameterSets?: string };
  /**
   * A stream another tool publishes (RTSP ANNOUNCE) may give its decoder configuration only in the
   * SDP's a=fmtp (H.264: sprop-parameter-sets, as FFmpeg does for a stream copied from MP4), while
   * watch and the keyframe cache need it in-band. Given that fmtp, a function that returns the
   * payloads (each at most `maxPayload` bytes) to send in front of `payload`, a packet of the
   * picture with RTP time `timestamp` (none, mostly); undefined when the fmtp has nothing to send.
   */
  inBandConfig?(fmtp: string, maxPayload: number): ((payload: Buffer, timestamp: number) => Buffer[]) | undefined;
  /**
   * For a browser (WebRTC, relay/webrtc/): which of the payload formats it offers can take this
   * stream's picture as it is (no transcoding), given the cached keyframe's payloads; undefined:
   * none can. Absent: browsers get no picture of this codec.
   */
  webrtcFormat?(offered: readonly OfferedFormat[], payloads: readonly Buffer[]): number | undefined;
  /**
   * A payload that begins a picture and says so without coding any of it (H.264: an access unit
   * delimiter, 7.3.2.4). The relay's RTSP server sends it ahead of the next picture to a player
   * whose parser holds each picture until the next one's first bytes come (OutgoingStream.pictureEnd).
   * Absent: the codec's pictures end on the RTP marker for every player (RFC 2435 JPEG).
   */
  readonly nextPictureDelimiter?: Buffer;
  /** Every picture stands alone: no reference to lose, nothing to ask a keyframe for. */
  readonly everyFrameKey: boolean;
  /** Picture sizes the encoder and payload format can carry: multiples of `unit`, at most `max`. */
  readonly sizeRule: {
    unit: number;
    max: number;
    /** Why, in a person's words, when a picture is fitted to the rule. */
    what: string;
    /** Added to the refusal of a --size that breaks the rule: the source of the rule, another way out. */
    refusal?: string;
    otherwise?: string;
  };
  /** File extensions of the raw bitstream (watch --output). */
  readonly rawExtensions: readonly string[];
  packetizer(opts: { payloadLimit: number }): Packetizer;
  depacketizer(): Depacketizer;
  /**
   * Whether an RTP payload begins a picture a new viewer can start from, read from its first bytes
   * without depacketizing (the relay's keyframe cache asks this of every frame's first packet).
   */
  startsKeyframe(payload: Buffer): boolean;
  /** Picture size read off the RTP payloads of a keyframe (the relay's cache, which depacketizes nothing); undefined when they do not say. */
  payloadsSize?(payloads: readonly Buffer[]): Size | undefined;
  /** Picture size read from a keyframe; undefined when it cannot be read. */
  frameSize(keyframe: Buffer): Size | undefined;
  /** The encoder's FFmpeg arguments; a setting the codec cannot honour is a UsageError. */
  ffmpeg(settings: EncoderSettings): FfmpegEncoding;
  readonly container: ContainerMapping;
}
