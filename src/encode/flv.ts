/**
 * Reading H.264 frames out of FFmpeg's FLV muxer on a pipe, with no frame of delay: every FLV tag
 * states its length up front, so a frame is whole the moment its last byte arrives.
 *
 * Adobe Flash Video File Format Specification v10.1, Annex E.
 *
 * FLV header (§E.2), then PreviousTagSize0 = 0, then tags, each followed by its size (§E.3):
 *
 *     +---+---+---+---------+--------+--------------------+--------------------+
 *     | F | L | V | version | flags  |  DataOffset (UI32) | PreviousTagSize0=0 | tag, size, tag, size …
 *     +---+---+---+---------+--------+--------------------+--------------------+
 *                     1       00000A0V      9 for v1
 *
 * FLV tag (§E.4.1), 11 bytes of header then DataSize bytes, then PreviousTagSize = 11 + DataSize:
 *
 *     +--------+-----------+-----------+-------+----------+------ … ------+-----------------+
 *     |rr F typ| DataSize  | Timestamp | TsExt | StreamID |     Data      | PreviousTagSize |
 *     +--------+-----------+-----------+-------+----------+------ … ------+-----------------+
 *       UI8       UI24        UI24       UI8      UI24=0                        UI32
 *     type: 8 audio, 9 video, 18 script data; F (filter) = encrypted
 *
 * Video tag data (§E.4.3.1) for AVC: a 5-byte header, then the payload:
 *
 *     +---------+---------+----------------+------------------------+---------------------
 *     |FrameType| CodecID | AVCPacketType  | CompositionTime (SI24) | payload
 *     +---------+---------+----------------+------------------------+---------------------
 *        UB4       UB4=7    0 sequence header: AVCDecoderConfigurationRecord
 *                           1 NALUs, each prefixed by its length (lengthSizeMinusOne + 1 bytes)
 *                           2 end of sequence
 *
 * AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1):
 *
 *     version=1 | profile | compat | level | 111111 lengthSizeMinusOne(2)
 *     | 111 numSPS(5) | { UI16 length, SPS }* | numPPS (UI8) | { UI16 length, PPS }*
 *
 * NAL units are returned as views of the chunks pushed in (copied only when a tag straddles
 * chunks), so a pushed chunk must not be reused afterwards; node's pipes hand out fresh ones.
 */
import { NAL_IDR, NAL_PPS, NAL_SPS, nalType } from '../codecs/h264/annexb.ts';
import { MAX_FRAME_BYTES, MAX_NALUS_PER_AU } from '../defaults.ts';
import { PacketError, need } from '../util/errors.ts';

/** One H.264 access unit, as NAL units without start codes or length prefixes. */
export interface EncodedFrame {
  /** Presentation time in ms (FLV timestamp + composition time). */
  ptsMs: number;
  /** For IDR frames, SPS and PPS from the configuration record come first. */
  nalus: Buffer[];
  keyframe: boolean;
  /** When the tag's first byte arrived, by the reader's clock (only when one was given). */
  firstByteAt?: number;
}

// §E.2 / §E.4.1 sizes and codes.
export const FLV_HEADER_SIZE = 9;
export const PREVIOUS_TAG_SIZE_BYTES = 4;
export const FLV_TAG_HEADER_SIZE = 11;
export const TAG_AUDIO = 8;
export const TAG_VIDEO = 9;
export const TAG_SCRIPT = 18;
/** §E.4.3.1 CodecID 7 = AVC. */
export const CODEC_AVC = 7;
export const AVC_SEQUENCE_HEADER = 0;
export const AVC_NALU = 1;
export const AVC_END_OF_SEQUENCE = 2;
/** §E.4.3.1 FrameType 1 = key frame. */
export const FRAME_TYPE_KEY = 1;
/** FrameType + CodecID, AVCPacketType, CompositionTime (SI24). */
const AVC_VIDEO_HEADER_SIZE = 5;


/**
 * A FIFO of pushed chunks that hands out exactly n bytes: a view when they sit in one chunk, a
 * single copy when they straddle several. Avoids re-concatenating on every small push.
 */
export class ByteQueue {
  private chunks: Buffer[] = [];
  private head = 0; // bytes of chunks[0] already consumed
  length = 0;

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** The first n bytes without consuming them; caller ensures n <= length. */
  peek(n: number): Buffer {
    const first = this.chunks[0];
    if (first.length - this.head >= n) return first.subarray(this.head, this.head + n);
    // Straddles chunks: merge just enough of them into one so the next peek is a view.
    const parts: Buffer[] = [first.subarray(this.head)];
    let have = parts[0].length;
    let i = 1;
    while (have < n) {
      parts.push(this.chunks[i]);
      have += this.chunks[i].length;
      i++;
    }
    const merged = Buffer.concat(parts, have);
    this.chunks.splice(0, i, merged);
    this.head = 0;
    return merged.subarray(0, n);
  }

  skip(n: number): void {
    this.length -= n;
    while (n > 0) {
      const avail = this.chunks[0].length - this.head;
      if (n < avail) {
        this.head += n;
        return;
      }
      n -= avail;
      this.chunks.shift();
      this.head = 0;
    }
  }

  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.length = 0;
  }
}

/** SPS/PPS and the NAL length size from an AVCDecoderConfigurationRecord. */
export interface AvcConfig {
  lengthSize: number;
  sps: Buffer[];
  pps: Buffer[];
}

/** ISO/IEC 14496-15 §5.3.3.1. Returns views of `b`. */
export function parseAvcConfig(b: Buffer): AvcConfig {
  need('AVCDecoderConfigurationRecord', b.length, 6);
  if (b[0] !== 1) throw new PacketError(`AVCDecoderConfigurationRecord: configurationVersion ${b[0]}, expected 1`);
  const lengthSize = (b[4] & 0x03) + 1;
  if (lengthSize === 3) throw new PacketError('AVCDecoderConfigurationRecord: NAL length size 3 is not allowed');
  let off = 5;
  const readSets = (count: number, what: string): Buffer[] => {
    const out: Buffer[] = [];
    for (let i = 0; i < count; i++) {
      need(`AVCDecoderConfigurationRecord ${what} length`, b.length - off, 2);
      const len = b.readUInt16BE(off);
      off += 2;
      need(`AVCDecoderConfigurationRecord ${what} ${i}`, b.length - off, len);
      if (len > 0) out.push(b.subarray(off, off + len));
      off += len;
    }
    return out;
  };
  const sps = readSets(b[off++] & 0x1f, 'SPS');
  need('AVCDecoderConfigurationRecord numOfPictureParameterSets', b.length - off, 1);
  const pps = readSets(b[off++], 'PPS');
  return { lengthSize, sps, pps };
}

/** Splits length-prefixed NAL units (views of `b`). */
export function splitLengthPrefixed(b: Buffer, lengthSize: number): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (off < b.length) {
    need('AVC NALU length', b.length - off, lengthSize);
    const len = b.readUIntBE(off, lengthSize);
    off += lengthSize;
    need('AVC NALU', b.length - off, len);
    if (len > 0) out.push(b.subarray(off, off + len));
    off += len;
    if (out.length > MAX_NALUS_PER_AU) {
      throw new PacketError(`AVC access unit has more than ${MAX_NALUS_PER_AU} NAL units`);
    }
  }
  return out;
}

type State = 'header' | 'tag' | 'trailer';

/**
 * Incremental FLV demuxer for one AVC video stream: push chunks of any size, get whole frames.
 * A malformed stream raises PacketError and the reader resets: it then expects a fresh FLV header
 * (a new FFmpeg), holding nothing from before. Buffering is bounded by one tag of MAX_FRAME_BYTES.
 */
export class FlvReader {
  /**
   * `clock` (e.g. performance.now) stamps each frame with the arrival of its first byte, which
   * shows how long a frame spends on the pipe and proves no frame waits for the next.
   */
  private readonly clock?: () => number;
  constructor(clock?: () => number) {
    this.clock = clock;
  }
  private q = new ByteQueue();
  private tagFirstByteAt: number | undefined;
  private state: State = 'header';
  private lastTagSize = 0;
  private config: AvcConfig | null = null;
  private tagStarted = false;
  /** Tags seen, by kind, for stats and tests. */
  readonly counters = { videoTags: 0, skippedTags: 0, frames: 0 };
  /**
   * Called with the tag type (8, 9, 18) as soon as the first byte of a tag arrives, before the
   * tag is complete: lets a caller see when a new frame's data starts (the no-delay test uses it).
   */
  onTagStart?: (tagType: number) => void;

  /** SPS/PPS from the last sequence header, e.g. for SDP sprop-parameter-sets. */
  get avcConfig(): AvcConfig | null {
    return this.config;
  }

  /** Forgets everything: the next byte must start an FLV header. */
  reset(): void {
    this.q.clear();
    this.state = 'header';
    this.lastTagSize = 0;
    this.config = null;
    this.tagStarted = false;
  }

  push(chunk: Buffer): EncodedFrame[] {
    const frames: EncodedFrame[] = [];
    this.q.push(chunk);
    try {
      for (;;) {
        if (this.state === 'header') {
          if (!this.readHeader()) break;
        } else if (this.state === 'trailer') {
          if (!this.readTrailer()) break;
        } else {
          const r = this.readTag();
          if (r === null) break;
          if (r !== 'skipped') frames.push(r);
        }
      }
    } catch (err) {
      this.reset();
      throw err;
    }
    this.counters.frames += frames.length;
    return frames;
  }

  /** §E.2 header plus PreviousTagSize0. */
  private readHeader(): boolean {
    if (this.q.length === 0) return false;
    // Reject a wrong signature as soon as its bytes are in, rather than after 13 bytes.
    const sig = this.q.peek(Math.min(3, this.q.length));
    for (let i = 0; i < sig.length; i++) {
      if (sig[i] !== 'FLV'.charCodeAt(i)) {
        throw new PacketError(`FLV header: bad signature ${sig.toString('hex')}, expected 464c56 ("FLV")`);
      }
    }
    if (this.q.length < FLV_HEADER_SIZE) return false;
    const h = this.q.peek(FLV_HEADER_SIZE);
    const dataOffset = h.readUInt32BE(5);
    if (dataOffset < FLV_HEADER_SIZE || dataOffset > 1024) {
      throw new PacketError(`FLV header: DataOffset ${dataOffset} bytes, expected at least ${FLV_HEADER_SIZE}`);
    }
    if (this.q.length < dataOffset + PREVIOUS_TAG_SIZE_BYTES) return false;
    this.q.skip(dataOffset);
    this.lastTagSize = 0;
    this.state = 'trailer';
    return true;
  }

  /** PreviousTagSize after each tag: must equal what we just read, or the stream is lying. */
  private readTrailer(): boolean {
    if (this.q.length < PREVIOUS_TAG_SIZE_BYTES) return false;
    const size = this.q.peek(PREVIOUS_TAG_SIZE_BYTES).readUInt32BE(0);
    if (size !== this.lastTagSize) {
      throw new PacketError(`FLV PreviousTagSize ${size} bytes does not match the previous tag (${this.lastTagSize} bytes)`);
    }
    this.q.skip(PREVIOUS_TAG_SIZE_BYTES);
    this.state = 'tag';
    return true;
  }

  /** One tag: a frame, 'skipped' (not video data), or null when more bytes are needed. */
  private readTag(): EncodedFrame | 'skipped' | null {
    if (this.q.length === 0) return null;
    if (!this.tagStarted) {
      this.tagStarted = true;
      this.tagFirstByteAt = this.clock?.();
      this.onTagStart?.(this.q.peek(1)[0] & 0x1f);
    }
    if (this.q.length < FLV_TAG_HEADER_SIZE) return null;
    const h = this.q.peek(FLV_TAG_HEADER_SIZE);
    if (h[0] & 0x20) throw new PacketError('FLV tag is encrypted (Filter bit set)');
    const type = h[0] & 0x1f;
    const dataSize = h.readUIntBE(1, 3);
    const timestamp = (h.readUIntBE(4, 3) | (h[7] << 24)) >>> 0;
    const streamId = h.readUIntBE(8, 3);
    if (type !== TAG_AUDIO && type !== TAG_VIDEO && type !== TAG_SCRIPT) {
      throw new PacketError(`FLV tag type ${type} is not audio (8), video (9) or script data (18)`);
    }
    if (streamId !== 0) throw new PacketError(`FLV tag StreamID ${streamId}, expected 0`);
    if (dataSize > MAX_FRAME_BYTES) {
      throw new PacketError(`FLV tag of ${dataSize} bytes exceeds the ${MAX_FRAME_BYTES}-byte frame cap`);
    }
    if (this.q.length < FLV_TAG_HEADER_SIZE + dataSize) return null;
    const tag = this.q.peek(FLV_TAG_HEADER_SIZE + dataSize);
    const data = tag.subarray(FLV_TAG_HEADER_SIZE);
    this.q.skip(FLV_TAG_HEADER_SIZE + dataSize);
    this.lastTagSize = FLV_TAG_HEADER_SIZE + dataSize;
    this.state = 'trailer';
    this.tagStarted = false;
    if (type !== TAG_VIDEO) {
      this.counters.skippedTags++;
      return 'skipped';
    }
    this.counters.videoTags++;
    return this.readVideo(data, timestamp) ?? 'skipped';
  }

  /** §E.4.3.1 video tag data. */
  private readVideo(data: Buffer, timestamp: number): EncodedFrame | null {
    need('FLV video tag', data.length, 1);
    const frameType = data[0] >> 4;
    const codecId = data[0] & 0x0f;
    if (codecId !== CODEC_AVC) throw new PacketError(`FLV video CodecID ${codecId}, expected AVC (7)`);
    need('FLV AVC video tag header', data.length, AVC_VIDEO_HEADER_SIZE);
    const packetType = data[1];
    const compositionTime = data.readIntBE(2, 3);
    const payload = data.subarray(AVC_VIDEO_HEADER_SIZE);
    if (packetType === AVC_SEQUENCE_HEADER) {
      this.config = parseAvcConfig(payload);
      return null;
    }
    if (packetType === AVC_END_OF_SEQUENCE) return null;
    if (packetType !== AVC_NALU) throw new PacketError(`FLV AVCPacketType ${packetType} is not 0, 1 or 2`);
    if (!this.config) throw new PacketError('FLV AVC NALU tag before the sequence header');
    const nalus = splitLengthPrefixed(payload, this.config.lengthSize);
    if (nalus.length === 0) return null;
    const type = nalType;
    const hasIdr = nalus.some((n) => type(n) === NAL_IDR);
    if (hasIdr) {
      // Parameter sets in band with every IDR, so a viewer joining late can start at any keyframe.
      let lastSps = -1;
      nalus.forEach((n, i) => {
        if (type(n) === NAL_SPS) lastSps = i;
      });
      if (!nalus.some((n) => type(n) === NAL_PPS)) nalus.splice(lastSps + 1, 0, ...this.config.pps);
      if (lastSps < 0) nalus.unshift(...this.config.sps);
    }
    const keyframe = hasIdr || frameType === FRAME_TYPE_KEY;
    const frame: EncodedFrame = { ptsMs: timestamp + compositionTime, nalus, keyframe };
    if (this.tagFirstByteAt !== undefined) frame.firstByteAt = this.tagFirstByteAt;
    return frame;
  }
}
