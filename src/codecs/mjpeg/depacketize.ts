/**
 * JPEG RTP depacketizer, RFC 2435: collects one frame's fragments and rebuilds the JFIF image the
 * sender left out, so any JPEG decoder (FFmpeg's included) can read it.
 *
 * Each payload starts with the main JPEG header (§3.1); types 64-127 add the restart marker header
 * (§3.1.7); at fragment offset 0 with Q 128-255 the quantization table header and tables follow
 * (§3.1.8). See packetize.ts for the diagrams:
 *
 *     | type-specific | fragment offset (24) | type | Q | width/8 | height/8 |
 *     | restart interval (16) | F | L | restart count (14) |               (types 64-127)
 *     | MBZ | precision | length (16) | table data ... |                    (offset 0, Q >= 128)
 *
 * A frame is the packets of one RTP timestamp, its scan bytes placed by fragment offset in
 * sequence order, and complete at the packet with the marker bit (§3). A frame with a sequence
 * gap, a missing offset, a malformed or unsupported header, or one past the size cap is dropped
 * whole and reported; the next frame starts clean. push() never throws on what arrives.
 *
 * The rebuilt image (§3.1 and Appendix B, in the spirit of its MakeHeaders):
 *   SOI, DQT (the two tables), DRI (types 64-127), SOF0 (sampling from the type), DHT (the four
 *   Annex K.3 tables), SOS, the scan, EOI.
 * Scan fragments stay views of the packets until the frame is written out in one copy.
 */
import { MAX_FRAME_BYTES, MAX_MISORDER } from '../../defaults.ts';
import {
  DHT,
  DQT,
  DRI,
  EOI,
  JPEG_DIMENSION_UNIT,
  JPEG_TYPE_420,
  JPEG_TYPE_422,
  JPEG_TYPE_RESTART,
  MARKER_PREFIX,
  SOF0,
  SOI,
  SOS,
} from './jpeg.ts';
import { PacketError, need } from '../../util/errors.ts';
import type { Depacketizer, DepacketizerCounters, Frame } from '../../rtp/frame.ts';
import type { RtpPacket } from '../../rtp/packet.ts';
import { seqAdd, seqDiff } from '../../rtp/seq.ts';
import { MAIN_HEADER_BYTES, QTABLE_HEADER_BYTES, RESTART_HEADER_BYTES } from './packetize.ts';
import {
  AC_CHROMA,
  AC_LUMA,
  BLOCK_SIZE,
  DC_CHROMA,
  DC_LUMA,
  HUFFMAN_AC,
  HUFFMAN_DC,
  Q_DYNAMIC,
  Q_IN_BAND_MIN,
  Q_SCALED_MAX,
  Q_SCALED_MIN,
  scaledQuantTables,
  type HuffmanSpec,
} from './tables.ts';

/** One quantization table: its entries, and whether each is 16-bit (precision bit set, §3.1.8). */
export interface QuantTable {
  data: Buffer;
  wide: boolean;
}

/** Everything the JFIF headers need, from one frame's RTP JPEG headers. */
export interface JpegFrameHeader {
  /** 0 or 1, plus 64 with restart markers. */
  type: number;
  width: number;
  height: number;
  restartInterval: number;
  /** One table (shared by all components) or two (luminance, chrominance). */
  tables: QuantTable[];
}

/** One parsed payload. */
export interface JpegPayloadHeader {
  offset: number;
  type: number;
  q: number;
  width: number;
  height: number;
  restartInterval: number;
  /** In-band tables (offset 0, Q >= 128, length > 0), as views; null when none were sent. */
  tables: QuantTable[] | null;
  /** Scan bytes (a view). */
  data: Buffer;
}

/**
 * Splits one RTP JPEG payload into its headers and scan fragment. Throws PacketError for a
 * payload that breaks RFC 2435's layout or uses a type this side does not know.
 */
export function parseJpegPayload(payload: Buffer): JpegPayloadHeader {
  need('RTP JPEG main header', payload.length, MAIN_HEADER_BYTES);
  const offset = payload.readUIntBE(1, 3);
  const type = payload[4];
  const q = payload[5];
  const width = payload[6] * JPEG_DIMENSION_UNIT;
  const height = payload[7] * JPEG_DIMENSION_UNIT;
  const base = type & ~JPEG_TYPE_RESTART;
  if (type >= 128 || (base !== JPEG_TYPE_422 && base !== JPEG_TYPE_420)) {
    throw new PacketError(`RTP JPEG: type ${type} is not one of 0, 1, 64, 65 (RFC 2435 §4.1)`);
  }
  if (q === 0 || (q > Q_SCALED_MAX && q < Q_IN_BAND_MIN)) throw new PacketError(`RTP JPEG: Q ${q} is reserved (RFC 2435 §3.1.4)`);
  if (width === 0 || height === 0) throw new PacketError(`RTP JPEG: image size ${width}x${height}`);
  let o = MAIN_HEADER_BYTES;
  let restartInterval = 0;
  if (type & JPEG_TYPE_RESTART) {
    need('RTP JPEG restart marker header', payload.length - o, RESTART_HEADER_BYTES);
    restartInterval = payload.readUInt16BE(o);
    o += RESTART_HEADER_BYTES;
  }
  let tables: QuantTable[] | null = null;
  if (offset === 0 && q >= Q_IN_BAND_MIN) {
    need('RTP JPEG quantization table header', payload.length - o, QTABLE_HEADER_BYTES);
    const precision = payload[o + 1];
    const length = payload.readUInt16BE(o + 2);
    o += QTABLE_HEADER_BYTES;
    need(`RTP JPEG quantization tables of ${length} bytes`, payload.length - o, length);
    if (length > 0) tables = splitTables(payload.subarray(o, o + length), precision);
    o += length;
  }
  return { offset, type, q, width, height, restartInterval, tables, data: payload.subarray(o) };
}

/** §3.1.8: tables back to back, table i 128 bytes when precision bit i is set, else 64. */
function splitTables(data: Buffer, precision: number): QuantTable[] {
  const out: QuantTable[] = [];
  let o = 0;
  while (o < data.length) {
    const wide = ((precision >> out.length) & 1) === 1;
    const size = wide ? 2 * BLOCK_SIZE : BLOCK_SIZE;
    if (data.length - o < size) {
      throw new PacketError(`RTP JPEG: quantization table ${out.length} needs ${size} bytes, ${data.length - o} left of ${data.length}`);
    }
    out.push({ data: data.subarray(o, o + size), wide });
    o += size;
  }
  if (out.length > 2) throw new PacketError(`RTP JPEG: ${out.length} quantization tables, types 0 and 1 use at most 2`);
  return out;
}

/** The JFIF headers (SOI through SOS) for a frame; the caller appends scan and EOI. */
export function buildJpegHeader(h: JpegFrameHeader): Buffer {
  const parts: Buffer[] = [Buffer.from([MARKER_PREFIX, SOI])];
  parts.push(segment(DQT, Buffer.concat(h.tables.flatMap((t, i) => [Buffer.from([(t.wide ? 0x10 : 0) | i]), t.data]))));
  if (h.restartInterval > 0) {
    const ri = Buffer.alloc(2);
    ri.writeUInt16BE(h.restartInterval);
    parts.push(segment(DRI, ri));
  }
  const chromaTable = h.tables.length > 1 ? 1 : 0;
  const lumaSampling = (h.type & ~JPEG_TYPE_RESTART) === JPEG_TYPE_420 ? 0x22 : 0x21;
  const sof = Buffer.alloc(15);
  sof[0] = 8; // sample precision
  sof.writeUInt16BE(h.height, 1);
  sof.writeUInt16BE(h.width, 3);
  sof[5] = 3; // components: Y, Cb, Cr with JFIF's ids 1, 2, 3
  sof.set([1, lumaSampling, 0, 2, 0x11, chromaTable, 3, 0x11, chromaTable], 6);
  parts.push(segment(SOF0, sof));
  parts.push(
    segment(
      DHT,
      Buffer.concat([
        huffman(HUFFMAN_DC, 0, DC_LUMA),
        huffman(HUFFMAN_AC, 0, AC_LUMA),
        huffman(HUFFMAN_DC, 1, DC_CHROMA),
        huffman(HUFFMAN_AC, 1, AC_CHROMA),
      ]),
    ),
  );
  // Y with Huffman tables 0/0, Cb and Cr with 1/1; Ss 0, Se 63, Ah/Al 0: one baseline scan.
  parts.push(segment(SOS, Buffer.from([3, 1, 0x00, 2, 0x11, 3, 0x11, 0, BLOCK_SIZE - 1, 0])));
  return Buffer.concat(parts);
}

function segment(code: number, body: Buffer): Buffer {
  const head = Buffer.from([MARKER_PREFIX, code, 0, 0]);
  head.writeUInt16BE(body.length + 2, 2);
  return Buffer.concat([head, body]);
}

function huffman(tc: number, th: number, spec: HuffmanSpec): Buffer {
  return Buffer.from([(tc << 4) | th, ...spec.bits, ...spec.values]);
}

export interface JpegDepacketizerCounters extends DepacketizerCounters {
  /** Packets that broke RFC 2435's layout or used a type or Q this side does not know. */
  malformedPackets: number;
}

export interface JpegDepacketizerOptions {
  /** Bytes per rebuilt JPEG (headers, scan, EOI); default MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
  onDrop?: (reason: string) => void;
}

/** One frame being collected. */
interface PendingFrame {
  timestamp: number;
  /** From the first packet seen; every later packet must agree. */
  header: Pick<JpegPayloadHeader, 'type' | 'q' | 'width' | 'height' | 'restartInterval'> | null;
  tables: QuantTable[] | null;
  chunks: Buffer[];
  /** The fragment offset the next packet must carry. */
  nextOffset: number;
  packets: number;
  /** Why this frame will be dropped; once set, its packets are only counted. */
  broken: string | null;
}

/** EOI, appended unless the scan already ends with it. */
const EOI_BYTES = Buffer.from([MARKER_PREFIX, EOI]);

export class JpegDepacketizer implements Depacketizer {
  readonly counters: JpegDepacketizerCounters = {
    framesComplete: 0,
    framesDropped: 0,
    packetsDiscarded: 0,
    malformedPackets: 0,
  };
  onDrop?: (reason: string) => void;
  private readonly maxFrameBytes: number;
  private expected: number | null = null;
  private frame: PendingFrame | null = null;
  /**
   * §3.1.8: for Q 128-254 a sender may send the tables once and then length 0; they are kept by
   * Q (at most 127 entries of two tables). Q 255 is never cached: its tables may change per frame.
   */
  private readonly tableCache = new Map<number, QuantTable[]>();

  constructor(opts: JpegDepacketizerOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.onDrop = opts.onDrop;
  }

  /** Every JPEG frame ends at its marker, so a packet completes at most one frame. */
  pushAll(packet: RtpPacket): Frame[] {
    const f = this.push(packet);
    return f ? [f] : [];
  }

  push(packet: RtpPacket): Frame | null {
    const seq = packet.sequenceNumber;
    let lost = 0; // packets missing right before this one; -1 when unknown (a restart)
    if (this.expected !== null) {
      const d = seqDiff(this.expected, seq);
      if (d < 0 && d >= -MAX_MISORDER) {
        // A duplicate or a late packet: its gap was already counted against its frame.
        this.counters.packetsDiscarded++;
        return null;
      }
      lost = d > 0 ? d : d < 0 ? -1 : 0;
    }
    this.expected = seqAdd(seq, 1);

    if (this.frame && this.frame.timestamp !== packet.timestamp) {
      // RFC 2435 §3: the last packet of a frame has the marker bit. Without it, the frame's tail
      // (or just its marker) is missing: either way it cannot be trusted, so this never yields a frame.
      this.breakFrame(this.frame, lost !== 0 ? lostReason(lost) : 'ended without its marker packet');
      this.finish(this.frame);
      this.frame = null;
    }
    if (!this.frame) {
      this.frame = {
        timestamp: packet.timestamp,
        header: null,
        tables: null,
        chunks: [],
        nextOffset: 0,
        packets: 0,
        broken: null,
      };
    } else if (lost !== 0) {
      this.breakFrame(this.frame, lostReason(lost));
    }
    const frame = this.frame;
    frame.packets++;

    if (!frame.broken) {
      try {
        this.addPayload(frame, packet.payload);
      } catch (err) {
        if (!(err instanceof PacketError)) throw err;
        this.counters.malformedPackets++;
        this.breakFrame(frame, err.message);
      }
    }

    if (packet.marker) {
      this.frame = null;
      return this.finish(frame);
    }
    return null;
  }

  reset(): void {
    this.expected = null;
    this.frame = null;
    this.tableCache.clear();
  }

  private addPayload(frame: PendingFrame, payload: Buffer): void {
    const p = parseJpegPayload(payload);
    if (p.offset !== frame.nextOffset) {
      throw new PacketError(
        frame.nextOffset === 0
          ? `RTP JPEG: first packet has fragment offset ${p.offset} (the packet at offset 0 was lost)`
          : `RTP JPEG: fragment offset ${p.offset}, expected ${frame.nextOffset}`,
      );
    }
    if (!frame.header) {
      frame.header = { type: p.type, q: p.q, width: p.width, height: p.height, restartInterval: p.restartInterval };
      frame.tables = this.tablesFor(p);
    } else {
      const h = frame.header;
      if (p.type !== h.type || p.q !== h.q || p.width !== h.width || p.height !== h.height) {
        throw new PacketError(
          `RTP JPEG: packet at offset ${p.offset} says type ${p.type} Q ${p.q} ${p.width}x${p.height}, ` +
            `the frame began with type ${h.type} Q ${h.q} ${h.width}x${h.height}`,
        );
      }
    }
    frame.chunks.push(p.data);
    frame.nextOffset += p.data.length;
    if (frame.nextOffset > this.maxFrameBytes) {
      this.breakFrame(frame, `frame exceeds ${this.maxFrameBytes} bytes (${frame.nextOffset} bytes of scan so far)`);
    }
  }

  /** §3.1.4: Q 1-99 scaled standard tables; 128-255 in-band, or cached for 128-254. */
  private tablesFor(p: JpegPayloadHeader): QuantTable[] {
    if (p.q >= Q_SCALED_MIN && p.q <= Q_SCALED_MAX) return scaledTables(p.q);
    if (p.tables) {
      if (p.q !== Q_DYNAMIC) {
        // Copied: the cache outlives the packet's buffer.
        this.tableCache.set(p.q, p.tables.map((t) => ({ data: Buffer.from(t.data), wide: t.wide })));
      }
      return p.tables;
    }
    const cached = p.q === Q_DYNAMIC ? undefined : this.tableCache.get(p.q);
    if (!cached) throw new PacketError(`RTP JPEG: Q ${p.q} without quantization tables, and none received earlier`);
    return cached;
  }

  /** Marks the frame for dropping and lets go of its views; the first reason wins. */
  private breakFrame(frame: PendingFrame, reason: string): void {
    if (frame.broken) return;
    frame.broken = reason;
    frame.chunks = [];
  }

  /** Writes out a whole frame as JFIF, or drops and reports a broken one. */
  private finish(frame: PendingFrame): Frame | null {
    if (!frame.broken && (!frame.header || !frame.tables || frame.nextOffset === 0)) {
      this.breakFrame(frame, 'frame without scan data');
    }
    let header: Buffer | null = null;
    let total = 0;
    let endsWithEoi = false;
    if (!frame.broken) {
      header = buildJpegHeader({ ...frame.header!, tables: frame.tables! });
      endsWithEoi = scanEndsWithEoi(frame.chunks);
      total = header.length + frame.nextOffset + (endsWithEoi ? 0 : EOI_BYTES.length);
      if (total > this.maxFrameBytes) this.breakFrame(frame, `frame of ${total} bytes exceeds ${this.maxFrameBytes}`);
    }
    if (frame.broken || !header) {
      this.counters.framesDropped++;
      this.counters.packetsDiscarded += frame.packets;
      this.onDrop?.(`JPEG frame at timestamp ${frame.timestamp} dropped: ${frame.broken}`);
      return null;
    }
    const data = Buffer.allocUnsafe(total);
    let o = header.copy(data, 0);
    for (const c of frame.chunks) o += c.copy(data, o);
    if (!endsWithEoi) EOI_BYTES.copy(data, o);
    this.counters.framesComplete++;
    return { timestamp: frame.timestamp, data, keyframe: true };
  }
}

/** Feeds packets to a fresh depacketizer and returns every frame (tests, files). */
export function depacketizeAll(packets: RtpPacket[], opts?: JpegDepacketizerOptions): Frame[] {
  const d = new JpegDepacketizer(opts);
  const out: Frame[] = [];
  for (const p of packets) {
    const f = d.push(p);
    if (f) out.push(f);
  }
  return out;
}

const scaledCache = new Map<number, QuantTable[]>();

function scaledTables(q: number): QuantTable[] {
  let t = scaledCache.get(q);
  if (!t) {
    t = scaledQuantTables(q).map((data) => ({ data, wide: false }));
    scaledCache.set(q, t);
  }
  return t;
}

/** Whether the last two scan bytes, possibly split across chunks, are 0xFF 0xD9. */
function scanEndsWithEoi(chunks: Buffer[]): boolean {
  let last = -1;
  let prev = -1;
  for (let i = chunks.length - 1; i >= 0 && prev < 0; i--) {
    const c = chunks[i];
    for (let j = c.length - 1; j >= 0 && prev < 0; j--) {
      if (last < 0) last = c[j];
      else prev = c[j];
    }
  }
  return prev === MARKER_PREFIX && last === EOI;
}

function lostReason(lost: number): string {
  return lost > 0 ? `${lost} packet(s) lost` : 'sequence number jumped back (sender restart?)';
}
