/**
 * Forward error correction for one RTP stream: the generic XOR FEC of RFC 5109 ("ULPFEC"),
 * packet format of §7, protection and recovery of §8, with one protection level (level 0) that
 * covers each media packet whole. One parity packet lets the receiver rebuild any one lost packet
 * of the group it protects, header fields and payload alike, without a round trip.
 *
 * An FEC packet is an RTP packet of its own (RFC 5109 §7.1): payload type PT_FEC, its own SSRC
 * (fecSsrcFor(media SSRC) unless the sender chose another) and its own sequence numbers, so it
 * never disturbs the media stream's sequence space or statistics. Its payload is:
 *
 * FEC header, §7.3 (10 bytes):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |E|L|P|X|  CC   |M| PT recovery |            SN base            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                          TS recovery                          |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |        length recovery        |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * followed by the level-0 ULP header, §7.4 (4 bytes, or 8 when L = 1), and the level-0 data:
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |       Protection Length       |             mask              |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |              mask cont. (present only when L = 1)             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |        XOR of the protected packets after their 12-byte       |
 *    |        fixed header (CSRCs, extension, payload, padding),     |
 *    |        each zero-padded to the longest: Protection Length     |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * P, X, CC, M, PT, TS and length recovery are the XOR (§8.1) of each protected packet's P, X, CC,
 * M, PT, timestamp and length after the fixed header; SN base is the lowest protected sequence
 * number; mask bit i (most significant first) set means SN base + i is protected.
 *
 * Layouts (FecEncoder `mode`), with K = groupSize and D = depth:
 *   - 'row':    parity over K consecutive packets. Repairs one loss in every K.
 *   - 'column': SMPTE 2022-1 style. Blocks of K·D packets, one parity per column: packets
 *               i, i+D, …, i+(K-1)D. Repairs a burst of up to D consecutive losses per block.
 *   - '2d':     'column' plus row parity over each D consecutive packets (the matrix's rows), so
 *               a loss that one direction cannot repair may be repaired by the other, cascading.
 * Overhead, in packets: 1/K for 'row' and 'column', 1/K + 1/D for '2d'. In bytes, each FEC packet
 * is as long as the longest packet it protects plus FEC_PACKET_OVERHEAD bytes.
 */
import { randomBytes } from 'node:crypto';
import { MAX_DATAGRAM, MAX_DROPOUT } from '../defaults.ts';
import { PacketError, need, unlessMalformed } from '../util/errors.ts';
import {
  isRtp,
  parseRtp,
  RTP_FIXED_HEADER,
  RTP_VERSION,
  rtpPayloadOffset,
  rtpSequence,
  rtpSsrc,
  rtpTimestamp,
  serializeRtpToBuffer,
  setRtpSequence,
  setRtpTimestamp,
  setRtpSsrc,
} from '../rtp/packet.ts';
import { seqAdd, seqDiff } from '../rtp/seq.ts';

/** Dynamic payload type of the FEC stream (RFC 3551 §6 leaves 96-127 to signalling). */
export const PT_FEC = 127;
/**
 * Default FEC SSRC = media SSRC XOR this ('FEC\0' in ASCII), so a receiver that knows the media
 * SSRC knows which FEC stream belongs to it without extra signalling.
 */
export const FEC_SSRC_XOR = 0x46454300;
/** RFC 5109 §7.3: the FEC header. */
export const FEC_HEADER_LENGTH = 10;
/** RFC 5109 §7.4: protection length (16 bits) + mask (16 bits when L = 0). */
export const ULP_HEADER_SHORT = 4;
/** RFC 5109 §7.4: protection length (16 bits) + mask (48 bits when L = 1). */
export const ULP_HEADER_LONG = 8;
/** RFC 5109 §7.4: packets a mask can name, from SN base. */
export const MASK_BITS_SHORT = 16;
export const MASK_BITS_LONG = 48;
/** Extra bytes of an FEC packet over the longest media packet it protects, at most (14 with L = 0). */
export const FEC_PACKET_OVERHEAD = FEC_HEADER_LENGTH + ULP_HEADER_LONG;
/** Packets per parity: 1 would be plain repetition; 48 is the longest mask (L = 1). */
export const MIN_GROUP_SIZE = 2;
export const MAX_GROUP_SIZE = MASK_BITS_LONG;
/** Media packets a decoder keeps to rebuild from; the oldest is forgotten past this. */
export const FEC_MAX_MEDIA = 1024;
/** FEC packets a decoder keeps waiting for their group; the oldest is dropped past this. */
export const FEC_MAX_GROUPS = 256;
/** RFC 3550 §5.1: the length recovery field is 16 bits, so is a media packet after its header. */
const MAX_PROTECTED_LENGTH = 0xffff;

/** The FEC SSRC that goes with a media SSRC when the sender does not pick one. */
export function fecSsrcFor(mediaSsrc: number): number {
  return (mediaSsrc ^ FEC_SSRC_XOR) >>> 0;
}

/**
 * Packets per parity for `--fec PCT`: round(100 / PCT), clamped to 2-48. The packet overhead is
 * then 100 / K percent (10 → K 10, 10 %; 20 → 5, 20 %; 33 → 3, 33.3 %; 50 → 2, 50 %; 1 → 48,
 * 2.1 %); in bytes a little more, as each parity packet is as long as the longest of its group.
 */
export function groupSizeForPercent(pct: number): number {
  if (!Number.isFinite(pct) || pct <= 0) throw new RangeError(`FEC percentage must be above 0, got ${pct}`);
  return Math.min(MAX_GROUP_SIZE, Math.max(MIN_GROUP_SIZE, Math.round(100 / pct)));
}

/** A parsed FEC packet (RFC 5109 §7.3, §7.4). `data` is a view into the caller's buffer. */
export interface FecPacket {
  ssrc: number;
  sequenceNumber: number;
  timestamp: number;
  payloadType: number;
  /** L bit: a 48-bit mask. */
  longMask: boolean;
  pRecovery: boolean;
  xRecovery: boolean;
  ccRecovery: number;
  mRecovery: boolean;
  ptRecovery: number;
  snBase: number;
  tsRecovery: number;
  lengthRecovery: number;
  protectionLength: number;
  /** Offsets from SN base of the protected packets, ascending (mask bits set, MSB first). */
  offsets: number[];
  /** Level-0 XOR data, `protectionLength` bytes. */
  data: Buffer;
}

/** Parses an FEC packet; throws PacketError with byte counts when it is not one. */
export function parseFec(buf: Buffer): FecPacket {
  const rtp = parseRtp(buf);
  const p = rtp.payload;
  need('FEC header', p.length, FEC_HEADER_LENGTH + ULP_HEADER_SHORT);
  const b0 = p[0];
  if (b0 & 0x80) throw new PacketError('FEC: E bit set; RFC 5109 §7.3 reserves it (must be 0)');
  const longMask = (b0 & 0x40) !== 0;
  const ulp = longMask ? ULP_HEADER_LONG : ULP_HEADER_SHORT;
  need(`FEC headers with L=${longMask ? 1 : 0}`, p.length, FEC_HEADER_LENGTH + ulp);
  const protectionLength = p.readUInt16BE(FEC_HEADER_LENGTH);
  const dataStart = FEC_HEADER_LENGTH + ulp;
  // Bytes past the level-0 data would be further protection levels; level 0 alone suffices.
  need(`FEC level-0 data of ${protectionLength} bytes`, p.length - dataStart, protectionLength);
  const offsets: number[] = [];
  const maskBytes = ulp - 2;
  for (let i = 0; i < maskBytes * 8; i++) {
    if (p[FEC_HEADER_LENGTH + 2 + (i >> 3)] & (0x80 >> (i & 7))) offsets.push(i);
  }
  if (offsets.length === 0) throw new PacketError(`FEC: empty mask in a ${buf.length}-byte packet`);
  return {
    ssrc: rtp.ssrc,
    sequenceNumber: rtp.sequenceNumber,
    timestamp: rtp.timestamp,
    payloadType: rtp.payloadType,
    longMask,
    pRecovery: (b0 & 0x20) !== 0,
    xRecovery: (b0 & 0x10) !== 0,
    ccRecovery: b0 & 0x0f,
    mRecovery: (p[1] & 0x80) !== 0,
    ptRecovery: p[1] & 0x7f,
    snBase: p.readUInt16BE(2),
    tsRecovery: p.readUInt32BE(4),
    lengthRecovery: p.readUInt16BE(8),
    protectionLength,
    offsets,
    data: p.subarray(dataStart, dataStart + protectionLength),
  };
}

/** The RTP fields the parity needs, read from a packet given as one buffer or as chunks. */
interface MediaView {
  chunks: Buffer[];
  b0: number;
  b1: number;
  seq: number;
  timestamp: number;
  ssrc: number;
  /** Bytes after the 12-byte fixed header. */
  bodyLength: number;
}

function viewMedia(media: Buffer | Buffer[]): MediaView {
  let chunks = Array.isArray(media) ? media : [media];
  if (chunks.length > 0 && chunks[0].length < RTP_FIXED_HEADER) chunks = [Buffer.concat(chunks)];
  const total = chunks.reduce((n, c) => n + c.length, 0);
  need('media RTP packet', total, RTP_FIXED_HEADER);
  const h = chunks[0];
  if (h[0] >> 6 !== RTP_VERSION) throw new PacketError(`FEC: media packet has RTP version ${h[0] >> 6}, expected 2`);
  if (total - RTP_FIXED_HEADER > MAX_PROTECTED_LENGTH) {
    throw new PacketError(`FEC: media packet of ${total} bytes is longer than a 16-bit length recovery can say`);
  }
  return {
    chunks,
    b0: h[0],
    b1: h[1],
    seq: rtpSequence(h),
    timestamp: rtpTimestamp(h),
    ssrc: rtpSsrc(h),
    bodyLength: total - RTP_FIXED_HEADER,
  };
}

/** One parity packet being accumulated (RFC 5109 §8.1): XORs of header fields and of bodies. */
class Parity {
  base = 0;
  offsets: number[] = [];
  private pxcc = 0;
  private mpt = 0;
  private ts = 0;
  private length = 0;
  private lastTimestamp = 0;
  private body = Buffer.alloc(MAX_DATAGRAM);
  private protectionLength = 0;

  get count(): number {
    return this.offsets.length;
  }

  add(base: number, offset: number, m: MediaView): void {
    if (this.offsets.length === 0) this.base = base;
    this.offsets.push(offset);
    this.pxcc ^= m.b0 & 0x3f; // P, X, CC: the bit string of §8.1 leaves the version out
    this.mpt ^= m.b1;
    this.ts = (this.ts ^ m.timestamp) >>> 0;
    this.length ^= m.bodyLength;
    this.lastTimestamp = m.timestamp;
    if (m.bodyLength > this.body.length) {
      const grown = Buffer.alloc(m.bodyLength);
      this.body.copy(grown, 0, 0, this.protectionLength);
      this.body = grown;
    }
    this.protectionLength = Math.max(this.protectionLength, m.bodyLength);
    let pos = 0; // position in the whole packet
    for (const c of m.chunks) {
      const from = Math.max(0, RTP_FIXED_HEADER - pos);
      for (let i = from; i < c.length; i++) this.body[pos + i - RTP_FIXED_HEADER] ^= c[i];
      pos += c.length;
    }
  }

  /** The FEC packet (RTP header + §7.3 + §7.4 + data); then starts over. */
  build(sequenceNumber: number, ssrc: number, payloadType: number): Buffer {
    const maxOffset = this.offsets[this.offsets.length - 1];
    const longMask = maxOffset >= MASK_BITS_SHORT;
    const ulp = longMask ? ULP_HEADER_LONG : ULP_HEADER_SHORT;
    const payload = Buffer.alloc(FEC_HEADER_LENGTH + ulp + this.protectionLength);
    payload[0] = (longMask ? 0x40 : 0) | this.pxcc; // E = 0
    payload[1] = this.mpt;
    payload.writeUInt16BE(this.base, 2);
    payload.writeUInt32BE(this.ts, 4);
    payload.writeUInt16BE(this.length, 8);
    payload.writeUInt16BE(this.protectionLength, FEC_HEADER_LENGTH);
    for (const o of this.offsets) payload[FEC_HEADER_LENGTH + 2 + (o >> 3)] |= 0x80 >> (o & 7);
    this.body.copy(payload, FEC_HEADER_LENGTH + ulp, 0, this.protectionLength);
    const packet = serializeRtpToBuffer({
      padding: 0,
      marker: false,
      payloadType,
      sequenceNumber,
      // §7.1 asks for the media clock at sending time; the FEC packet follows its group's last packet.
      timestamp: this.lastTimestamp,
      ssrc,
      csrc: [],
      payload,
    });
    this.reset();
    return packet;
  }

  reset(): void {
    this.body.fill(0, 0, this.protectionLength);
    this.offsets = [];
    this.pxcc = this.mpt = this.ts = this.length = this.protectionLength = 0;
  }
}

export type FecMode = 'row' | 'column' | '2d';

export interface FecEncoderOptions {
  /** SSRC of the media packets pushed; a packet of another SSRC is a PacketError. */
  mediaSsrc: number;
  /** SSRC of the FEC stream; fecSsrcFor(mediaSsrc) when not given. */
  fecSsrc?: number;
  /** K: media packets per parity packet, 2-48. */
  groupSize: number;
  /** 'row' when not given. */
  mode?: FecMode;
  /** D, for 'column' and '2d': the column stride (burst length repaired) and row width, 2-48. */
  depth?: number;
  /** PT_FEC when not given. */
  payloadType?: number;
  /** Random when not given (RFC 3550 §5.1). */
  initialSequence?: number;
}

function checkRange(what: string, v: number, lo: number, hi: number): void {
  if (!Number.isInteger(v) || v < lo || v > hi) throw new RangeError(`${what} must be ${lo}-${hi}, got ${v}`);
}

/**
 * Turns the media packets of one sender, in sending order, into FEC packets to send right after
 * them. A gap or reordering in the pushed sequence numbers closes the open groups early (their
 * parity covers the packets pushed so far), so every FEC packet protects exactly what was pushed.
 */
export class FecEncoder {
  readonly mediaSsrc: number;
  readonly ssrc: number;
  readonly payloadType: number;
  readonly mode: FecMode;
  readonly groupSize: number;
  readonly depth: number;
  /** FEC packets made, for statistics. */
  packetCount = 0;
  private seq: number;
  private readonly columns: Parity[];
  private readonly row: Parity | undefined;
  /** Sequence number of the block's first packet and the index of the next packet in it. */
  private blockBase = 0;
  private index = -1;

  constructor(opts: FecEncoderOptions) {
    checkRange('FEC group size', opts.groupSize, MIN_GROUP_SIZE, MAX_GROUP_SIZE);
    this.mode = opts.mode ?? 'row';
    this.groupSize = opts.groupSize;
    if (this.mode === 'row') {
      this.depth = 1; // a row is a column with stride 1
    } else {
      this.depth = opts.depth ?? 0;
      checkRange('FEC depth', this.depth, 2, MASK_BITS_LONG);
      const span = (this.groupSize - 1) * this.depth;
      if (span >= MASK_BITS_LONG) {
        throw new RangeError(
          `FEC column of ${this.groupSize} packets every ${this.depth} spans ${span + 1} sequence numbers; a mask covers ${MASK_BITS_LONG}`,
        );
      }
    }
    this.mediaSsrc = opts.mediaSsrc >>> 0;
    this.ssrc = (opts.fecSsrc ?? fecSsrcFor(this.mediaSsrc)) >>> 0;
    this.payloadType = opts.payloadType ?? PT_FEC;
    this.seq = opts.initialSequence ?? randomBytes(2).readUInt16BE(0);
    this.columns = Array.from({ length: this.depth }, () => new Parity());
    this.row = this.mode === '2d' ? new Parity() : undefined;
  }

  /** One serialized media packet (one buffer, or header and payload chunks); returns FEC packets to send after it. */
  push(media: Buffer | Buffer[]): Buffer[] {
    const m = viewMedia(media);
    if (m.ssrc !== this.mediaSsrc) {
      throw new PacketError(`FEC: media SSRC ${m.ssrc.toString(16)}, encoder protects ${this.mediaSsrc.toString(16)}`);
    }
    const out: Buffer[] = [];
    if (this.index >= 0 && m.seq !== seqAdd(this.blockBase, this.index)) out.push(...this.flush());
    if (this.index < 0) {
      this.blockBase = m.seq;
      this.index = 0;
    }
    const j = this.index;
    const col = j % this.depth;
    const rowStart = j - col;
    this.columns[col].add(seqAdd(this.blockBase, col), rowStart, m);
    if (this.row) {
      this.row.add(seqAdd(this.blockBase, rowStart), col, m);
      if (col === this.depth - 1) out.push(this.emit(this.row));
    }
    if (rowStart === (this.groupSize - 1) * this.depth) out.push(this.emit(this.columns[col]));
    this.index++;
    if (this.index === this.groupSize * this.depth) this.index = -1;
    return out;
  }

  /** Parity for the packets of groups still open (end of stream, or before a pause). */
  flush(): Buffer[] {
    const out: Buffer[] = [];
    if (this.row && this.row.count > 0) out.push(this.emit(this.row));
    for (const c of this.columns) if (c.count > 0) out.push(this.emit(c));
    this.index = -1;
    return out;
  }

  private emit(p: Parity): Buffer {
    const packet = p.build(this.seq, this.ssrc, this.payloadType);
    this.seq = seqAdd(this.seq, 1);
    this.packetCount++;
    return packet;
  }
}

export interface FecDecoderOptions {
  /** FEC packets kept waiting for their group; FEC_MAX_GROUPS when not given. */
  maxGroups?: number;
  /** Media packets kept to rebuild from; FEC_MAX_MEDIA when not given. */
  maxMedia?: number;
  /** The FEC stream's SSRC when the sender picked one; fecSsrcFor(media SSRC) when not given. */
  fecSsrc?: number;
  /**
   * Keep media only once an FEC packet of the stream has arrived: for a receiver that does not
   * know whether the sender protects its stream. A stream without FEC then costs a few header
   * reads per packet and retains nothing; the price is that losses before the first FEC packet
   * cannot be rebuilt (NACK still repairs them). False when not given: all media is kept.
   */
  waitForFec?: boolean;
}

export interface FecDecoderCounters {
  /** Well-formed FEC packets received, duplicates included. */
  fecReceived: number;
  /** Media packets rebuilt and returned. */
  recovered: number;
  /** FEC packets given up on while a packet they protect was still missing. */
  unrecoverable: number;
  /** Datagrams given to pushFec that are not FEC packets (PacketError). */
  malformed: number;
  /**
   * FEC packets for another media SSRC, for sequence numbers far from the stream's, or (waitForFec)
   * for packets that came before the first FEC packet and so were not kept.
   */
  ignored: number;
}

interface FecEntry {
  key: number;
  fec: FecPacket;
  /** Protected sequence numbers. */
  seqs: number[];
  last: number;
}

/**
 * Rebuilds lost media packets from received media and FEC packets (RFC 5109 §8.2). A pure object:
 * feed it every media packet and every FEC packet of one stream; it returns the packets it rebuilds,
 * each a complete serialized RTP packet, each at most once and never one it was given.
 *
 * Memory is bounded: at most `maxMedia` media packets (forgotten oldest first) and `maxGroups` FEC
 * packets. An FEC packet is dropped as soon as its group is complete, when it is older than half the
 * media window (its packets may be forgotten), or when the cap pushes it out; it counts as
 * unrecoverable if a packet it protects was still missing then.
 */
export class FecDecoder {
  readonly counters: FecDecoderCounters = { fecReceived: 0, recovered: 0, unrecoverable: 0, malformed: 0, ignored: 0 };
  private readonly maxGroups: number;
  private readonly maxMedia: number;
  private readonly ageLimit: number;
  private readonly fixedFecSsrc: number | undefined;
  private readonly waitForFec: boolean;
  /** An FEC packet of this stream was accepted since the last reset: media is worth keeping. */
  private fecSeen = false;
  /** With waitForFec: the first sequence number kept; FEC over earlier ones is ignored. */
  private keptFrom: number | undefined;
  private readonly media = new Map<number, Buffer>();
  private mediaBytes = 0;
  private readonly fecs = new Map<number, FecEntry>();
  private readonly bySeq = new Map<number, Set<FecEntry>>();
  private mediaSsrc: number | undefined;
  private newest: number | undefined;

  constructor(opts: FecDecoderOptions = {}) {
    this.maxGroups = opts.maxGroups ?? FEC_MAX_GROUPS;
    this.maxMedia = opts.maxMedia ?? FEC_MAX_MEDIA;
    checkRange('FEC maxGroups', this.maxGroups, 1, 1 << 20);
    checkRange('FEC maxMedia', this.maxMedia, MASK_BITS_LONG * 2, 1 << 15);
    this.ageLimit = this.maxMedia >> 1;
    this.fixedFecSsrc = opts.fecSsrc === undefined ? undefined : opts.fecSsrc >>> 0;
    this.waitForFec = opts.waitForFec ?? false;
  }

  /** Sizes of the internal stores (mediaBytes: bytes of media held), for statistics and tests of the caps. */
  get stored(): { media: number; mediaBytes: number; fec: number; indexedSeqs: number } {
    return { media: this.media.size, mediaBytes: this.mediaBytes, fec: this.fecs.size, indexedSeqs: this.bySeq.size };
  }

  /**
   * True when a media packet with this sequence number was received or rebuilt and is still in the
   * window. Call it before pushMedia to drop an original that arrives after its rebuilt copy
   * (recovery is eager, so a merely reordered packet may have been rebuilt already).
   */
  seen(seq: number): boolean {
    return this.media.has(seq & 0xffff);
  }

  /** Forgets every stored packet, and with waitForFec that FEC was seen (counters stay). */
  reset(): void {
    this.clearMedia();
    this.fecSeen = false;
    this.fecs.clear();
    this.bySeq.clear();
    this.mediaSsrc = undefined;
  }

  /**
   * A received media packet: the datagram's bytes, kept as a view while FEC may need them (at most
   * maxMedia packets; nothing with waitForFec before an FEC packet), so do not reuse the buffer.
   * Returns the packets its arrival lets us rebuild. Malformed input returns [].
   */
  pushMedia(buf: Buffer): Buffer[] {
    // The header must be there (it is XORed and read); a bad payload only spoils a rebuild, which is checked.
    if (!isRtp(buf) || rtpPayloadOffset(buf) > buf.length) return [];
    const ssrc = rtpSsrc(buf);
    const seq = rtpSequence(buf);
    if (this.mediaSsrc !== undefined && ssrc !== this.mediaSsrc) this.restart(ssrc);
    else if (this.newest !== undefined && Math.abs(seqDiff(this.newest, seq)) > MAX_DROPOUT) this.restart(ssrc);
    this.mediaSsrc = ssrc;
    if (this.waitForFec && !this.fecSeen) {
      this.advance(seq); // where the stream is, so the first FEC packet's window check holds
      return [];
    }
    if (this.media.has(seq)) return []; // duplicate, or already rebuilt
    this.store(seq, buf);
    return this.cascade([seq]);
  }

  /** A received FEC packet. Never throws: a malformed one is counted. Returns rebuilt packets. */
  pushFec(buf: Buffer): Buffer[] {
    const fec = unlessMalformed(() => parseFec(buf), undefined);
    if (!fec) {
      this.counters.malformed++;
      return [];
    }
    this.counters.fecReceived++;
    const key = fec.ssrc * 0x10000 + fec.sequenceNumber;
    if (this.fecs.has(key)) return [];
    if (this.mediaSsrc !== undefined && fec.ssrc !== this.expectedFecSsrc(this.mediaSsrc)) {
      this.counters.ignored++;
      return [];
    }
    const seqs = fec.offsets.map((o) => seqAdd(fec.snBase, o));
    const last = seqs[seqs.length - 1];
    if (this.newest !== undefined) {
      // Too old: its packets may be forgotten, a group of them would look falsely incomplete.
      // Too far ahead: not this stream's sequence space.
      if (seqDiff(last, this.newest) > this.ageLimit || seqDiff(this.newest, fec.snBase) > MAX_DROPOUT) {
        this.counters.ignored++;
        return [];
      }
    }
    if (this.waitForFec && !this.fecSeen) {
      this.fecSeen = true;
      if (this.newest !== undefined) this.keptFrom = seqAdd(this.newest, 1);
    }
    if (this.keptFrom !== undefined && seqDiff(this.keptFrom, fec.snBase) < 0) {
      // Protects packets from before media was kept: it could only "rebuild" one we were given.
      this.counters.ignored++;
      return [];
    }
    const entry: FecEntry = { key, fec, seqs, last };
    this.fecs.set(key, entry);
    for (const s of seqs) {
      let set = this.bySeq.get(s);
      if (!set) this.bySeq.set(s, (set = new Set()));
      set.add(entry);
    }
    if (this.fecs.size > this.maxGroups) this.dropFec(this.fecs.values().next().value!);
    const out: Buffer[] = [];
    if (this.fecs.has(key)) {
      const rebuilt = this.attempt(entry);
      if (rebuilt) out.push(rebuilt, ...this.cascade([rtpSequence(rebuilt)]));
    }
    return out;
  }

  private expectedFecSsrc(mediaSsrc: number): number {
    return this.fixedFecSsrc ?? fecSsrcFor(mediaSsrc);
  }

  /**
   * A new source, or a sequence jump of the same one: the stored media means nothing now, nor does
   * FEC for the old sequence space. FEC of a new source that came before its first media packet stays.
   */
  private restart(ssrc: number): void {
    const sameSource = ssrc === this.mediaSsrc;
    this.clearMedia();
    const keep = this.expectedFecSsrc(ssrc);
    for (const e of [...this.fecs.values()]) {
      if (sameSource || e.fec.ssrc !== keep) this.removeFec(e);
    }
  }

  private clearMedia(): void {
    this.media.clear();
    this.mediaBytes = 0;
    this.newest = undefined;
    this.keptFrom = undefined;
  }

  private advance(seq: number): void {
    if (this.newest === undefined || seqDiff(this.newest, seq) > 0) this.newest = seq;
  }

  private store(seq: number, buf: Buffer): void {
    this.media.set(seq, buf);
    this.mediaBytes += buf.length;
    this.advance(seq);
    // Past this, FEC over packets before keptFrom is too old anyway (and seqDiff would wrap).
    if (this.keptFrom !== undefined && seqDiff(this.keptFrom, this.newest!) > this.ageLimit + MASK_BITS_LONG) this.keptFrom = undefined;
    if (this.media.size > this.maxMedia) {
      const [oldest, old] = this.media.entries().next().value!;
      this.media.delete(oldest);
      this.mediaBytes -= old.length;
    }
    // FEC packets arrive roughly in order, so the oldest sit first; age them out from the front.
    for (const e of this.fecs.values()) {
      if (seqDiff(e.last, this.newest!) <= this.ageLimit) break;
      this.dropFec(e);
    }
  }

  /** Tries every FEC packet that protects a newly present packet, and whatever that rebuilds. */
  private cascade(seqs: number[]): Buffer[] {
    const out: Buffer[] = [];
    const work = [...seqs];
    while (work.length > 0) {
      const s = work.pop()!;
      const set = this.bySeq.get(s);
      if (!set) continue;
      for (const e of [...set]) {
        if (!this.fecs.has(e.key)) continue;
        const rebuilt = this.attempt(e);
        if (rebuilt) {
          out.push(rebuilt);
          work.push(rtpSequence(rebuilt));
        }
      }
    }
    return out;
  }

  /** Rebuilds the one missing packet of a group, stores it and returns it; drops finished groups. */
  private attempt(e: FecEntry): Buffer | undefined {
    if (this.mediaSsrc === undefined) return undefined; // no SSRC to give a rebuilt packet yet
    if (e.fec.ssrc !== this.expectedFecSsrc(this.mediaSsrc)) {
      // Came before the first media packet, and belongs to another source.
      this.counters.ignored++;
      this.removeFec(e);
      return undefined;
    }
    let missing = -1;
    for (const s of e.seqs) {
      if (this.media.has(s)) continue;
      if (missing >= 0) return undefined; // two or more missing: wait for more
      missing = s;
    }
    this.removeFec(e);
    if (missing < 0) return undefined; // nothing lost
    const rebuilt = this.rebuild(e.fec, e.seqs, missing, this.mediaSsrc);
    if (!rebuilt) {
      this.counters.unrecoverable++;
      return undefined;
    }
    this.counters.recovered++;
    this.store(missing, rebuilt);
    return rebuilt;
  }

  /** RFC 5109 §8.2: XOR the FEC packet with every other protected packet. */
  private rebuild(fec: FecPacket, seqs: number[], missing: number, ssrc: number): Buffer | undefined {
    let pxcc = (fec.pRecovery ? 0x20 : 0) | (fec.xRecovery ? 0x10 : 0) | fec.ccRecovery;
    let mpt = (fec.mRecovery ? 0x80 : 0) | fec.ptRecovery;
    let ts = fec.tsRecovery;
    let length = fec.lengthRecovery;
    const others: Buffer[] = [];
    for (const s of seqs) {
      if (s === missing) continue;
      const p = this.media.get(s)!;
      others.push(p);
      pxcc ^= p[0] & 0x3f;
      mpt ^= p[1];
      ts = (ts ^ rtpTimestamp(p)) >>> 0;
      length ^= p.length - RTP_FIXED_HEADER;
    }
    if (length > fec.protectionLength) return undefined; // not the packets this FEC protects
    const out = Buffer.alloc(RTP_FIXED_HEADER + length);
    out[0] = (RTP_VERSION << 6) | pxcc;
    out[1] = mpt;
    setRtpSequence(out, missing);
    setRtpTimestamp(out, ts);
    setRtpSsrc(out, ssrc);
    fec.data.copy(out, RTP_FIXED_HEADER, 0, length);
    for (const p of others) {
      const n = Math.min(p.length, RTP_FIXED_HEADER + length);
      for (let i = RTP_FIXED_HEADER; i < n; i++) out[i] ^= p[i];
    }
    // A wrong FEC/media pairing shows up as an impossible header.
    return unlessMalformed(() => {
      parseRtp(out);
      return out;
    }, undefined);
  }

  private dropFec(e: FecEntry): void {
    if (e.seqs.some((s) => !this.media.has(s))) this.counters.unrecoverable++;
    this.removeFec(e);
  }

  private removeFec(e: FecEntry): void {
    this.fecs.delete(e.key);
    for (const s of e.seqs) {
      const set = this.bySeq.get(s);
      if (!set) continue;
      set.delete(e);
      if (set.size === 0) this.bySeq.delete(s);
    }
  }
}
