/**
 * H.264 RTP depacketizer, RFC 6184, packetization-mode 1 (non-interleaved, §6.3): rebuilds access
 * units from single NAL unit packets (§5.6), STAP-A (§5.7.1) and FU-A (§5.8).
 *
 * The first payload byte says which structure follows (§5.2, Table 1):
 *
 *     +---------------+
 *     |0|1|2|3|4|5|6|7|
 *     +-+-+-+-+-+-+-+-+
 *     |F|NRI|  Type   |   1-23 single NAL unit, 24 STAP-A, 28 FU-A;
 *     +---------------+   25 STAP-B, 26 MTAP16, 27 MTAP24, 29 FU-B are interleaved mode only
 *
 * FU-A (§5.8):
 *
 *     +---------------+---------------+------------------------------+
 *     |F|NRI|  28     |S|E|R|  Type   |  fragment of the NAL unit    |
 *     +---------------+---------------+------------------------------+
 *       FU indicator     FU header
 *
 * An access unit is the packets sharing one RTP timestamp (§5.1). It is complete at the packet
 * with the marker bit, or, for a sender that forgets the marker, when a packet with a new timestamp
 * follows without a sequence gap. An access unit that lost a packet, got a fragment without its
 * start, carried a malformed or unsupported payload, or exceeded a cap is dropped whole and
 * reported, never handed out damaged; the next access unit starts clean.
 *
 * Lost packets right before a packet that can begin an access unit (an AUD, parameter sets, SEI,
 * a picture's first slice) do not drop it: they were the previous access unit's tail, or at most
 * this one's AUD, SEI or parameter sets. An IDR is a keyframe only with its parameter sets: one
 * without its SPS or PPS gets the last ones seen added, unless it came right after a loss or
 * nothing was seen yet (the packet carrying them was lost just before this depacketizer's first
 * packet: a viewer moved to another layer); then it is not called a keyframe, so a player waiting
 * for one goes on waiting instead of decoding it with another stream's.
 *
 * Collected NAL units stay views of the packets' payloads until the access unit is written out as
 * Annex B, so a packet's buffer must not be reused until its access unit is complete (node:dgram
 * hands out a fresh buffer per datagram, so this holds for sockets).
 */
import { MAX_FRAME_BYTES, MAX_MISORDER, MAX_NALUS_PER_AU } from '../../defaults.ts';
import {
  NAL_AUD,
  NAL_FU_A,
  NAL_FU_B,
  NAL_IDR,
  FU_A_HEADER,
  FU_END,
  FU_START,
  NAL_LAST_H264_TYPE,
  NAL_TYPE_MASK as TYPE_MASK,
  NAL_MTAP16,
  NAL_MTAP24,
  NAL_PPS,
  NAL_SEI,
  NAL_SLICE,
  NAL_SPS,
  NAL_STAP_A,
  NAL_STAP_B,
  START_CODE_4,
} from './annexb.ts';
import { PacketError, need } from '../../util/errors.ts';
import type { Depacketizer, DepacketizerCounters, Frame } from '../../rtp/frame.ts';
import type { RtpPacket } from '../../rtp/packet.ts';
import { seqAdd, seqDiff } from '../../rtp/seq.ts';

/** §5.7.1: STAP-A header byte; each NAL unit follows a 16-bit size. */
const STAP_A_HEADER = 1;
const STAP_A_SIZE_FIELD = 2;
/** H.264 Table 7-1: NAL unit types that may appear inside a payload; the rest are RTP structures. */
const LAST_NAL_TYPE = NAL_LAST_H264_TYPE;
/** H.264 Table 7-1: coded slice data partition A, which like a slice starts with first_mb_in_slice. */
const NAL_PARTITION_A = 2;

export interface H264DepacketizerCounters extends DepacketizerCounters {
  /** Packets whose structure this mode does not carry: STAP-B, MTAP16/24, FU-B and reserved 0/30/31. */
  unsupportedPackets: number;
  /** Packets that broke RFC 6184's layout: truncated STAP-A, FU-A with S and E, and so on. */
  malformedPackets: number;
  /**
   * IDR access units that came without their SPS or PPS (a stream that sends them once) and got
   * the ones seen last added...
   */
  parameterSetsAdded: number;
  /**
   * ...or, with none seen yet or right after a loss (the packet carrying them was lost: a layer
   * move, a narrowed path), were handed out as not a keyframe: a decoder given that IDR with
   * another stream's parameter sets (another layer's picture size) reads garbage.
   */
  keyframesWithoutParameterSets: number;
}

export interface H264DepacketizerOptions {
  /** Annex B bytes per access unit (start codes included); default MAX_FRAME_BYTES. */
  maxFrameBytes?: number;
  /** NAL units per access unit; default MAX_NALUS_PER_AU. */
  maxNalusPerAu?: number;
  onDrop?: (reason: string) => void;
}

/** One access unit being collected. */
interface PendingAu {
  timestamp: number;
  /** Each NAL unit as chunks: a view, or for FU-A the rebuilt header byte and the fragments. */
  nalus: Buffer[][];
  /** The FU-A NAL unit in progress, if any (already in `nalus` as its last entry). */
  fu: { type: number; chunks: Buffer[] } | null;
  /** Annex B bytes so far: a 4-byte start code per NAL unit plus the NAL bytes. */
  bytes: number;
  packets: number;
  keyframe: boolean;
  /** Its first SPS and first PPS, as chunks like `nalus` (an FU-A's grow as fragments come). */
  sps: Buffer[] | null;
  pps: Buffer[] | null;
  /** Packets were lost right before its first one: its own parameter sets may have been among them. */
  afterLoss: boolean;
  /** Why this access unit will be dropped; once set, its packets are only counted. */
  broken: string | null;
}

export class H264Depacketizer implements Depacketizer {
  readonly counters: H264DepacketizerCounters = {
    framesComplete: 0,
    framesDropped: 0,
    packetsDiscarded: 0,
    unsupportedPackets: 0,
    malformedPackets: 0,
    parameterSetsAdded: 0,
    keyframesWithoutParameterSets: 0,
  };
  onDrop?: (reason: string) => void;
  private readonly maxFrameBytes: number;
  private readonly maxNalus: number;
  /** The sequence number we expect next; null after reset, when any packet may come. */
  private expected: number | null = null;
  private au: PendingAu | null = null;
  /** Frames completed but not yet returned by push(); holds at most one, see push(). */
  private queue: Frame[] = [];
  /** The SPS and PPS of the last access unit that carried both: what an IDR without them is decoded with. */
  private params: { sps: Buffer; pps: Buffer } | null = null;

  constructor(opts: H264DepacketizerOptions = {}) {
    this.maxFrameBytes = opts.maxFrameBytes ?? MAX_FRAME_BYTES;
    this.maxNalus = opts.maxNalusPerAu ?? MAX_NALUS_PER_AU;
    this.onDrop = opts.onDrop;
  }

  /**
   * The Depacketizer interface returns one frame per packet. One packet can complete two (a
   * marker-less access unit closed by a new timestamp, and the new one-packet access unit with its
   * marker); the second is then returned by the next push. Use pushAll() to get both at once.
   */
  push(packet: RtpPacket): Frame | null {
    this.queue.push(...this.pushAll(packet));
    return this.queue.shift() ?? null;
  }

  /** Feeds one packet; returns the frames it completed (0, 1, or 2), oldest first. */
  pushAll(packet: RtpPacket): Frame[] {
    const out: Frame[] = [];
    const seq = packet.sequenceNumber;
    let lost = 0; // packets missing right before this one; -1 when unknown (a restart)
    const joining = this.expected === null;
    if (this.expected !== null) {
      const d = seqDiff(this.expected, seq);
      if (d < 0 && d >= -MAX_MISORDER) {
        // A duplicate or a late packet: its gap was already counted against its access unit.
        this.counters.packetsDiscarded++;
        return out;
      }
      lost = d > 0 ? d : d < 0 ? -1 : 0;
    }
    this.expected = seqAdd(seq, 1);

    if (this.au && this.au.timestamp !== packet.timestamp) {
      // The previous access unit ended without its marker. It is whole only if nothing is missing
      // between its last packet and this one: lost packets could have been its tail.
      if (lost !== 0) this.breakAu(this.au, lostReason(lost, 'at the end of the access unit'));
      const f = this.finish(this.au);
      if (f) out.push(f);
      this.au = null;
    } else if (this.au && lost !== 0) {
      this.breakAu(this.au, lostReason(lost, 'inside the access unit'));
    }

    if (!this.au) {
      this.au = { timestamp: packet.timestamp, nalus: [], fu: null, bytes: 0, packets: 0, keyframe: false, sps: null, pps: null, afterLoss: false, broken: null };
      // Lost packets right before a new timestamp may have been this access unit's head, unless
      // this packet can begin one: then they were the previous one's tail, or at most this one's
      // AUD, SEI or parameter sets (withParameterSets). A keyframe right after a loss (a sharer's
      // answer to it, on a path that just narrowed) is what the viewer is waiting for.
      if (lost !== 0 && !canStartAccessUnit(packet.payload)) this.breakAu(this.au, lostReason(lost, 'before the access unit'));
      else if (lost !== 0) this.au.afterLoss = true;
      else if (joining && !canStartAccessUnit(packet.payload)) this.breakAu(this.au, 'joined the stream mid access unit');
    }
    const au = this.au;
    au.packets++;

    if (!au.broken) {
      try {
        this.addPayload(au, packet.payload);
      } catch (err) {
        if (!(err instanceof PacketError)) throw err;
        this.counters.malformedPackets++;
        this.breakAu(au, err.message);
      }
    }

    if (packet.marker) {
      const f = this.finish(au);
      if (f) out.push(f);
      this.au = null;
    }
    return out;
  }

  reset(): void {
    this.expected = null;
    this.au = null;
    this.queue = [];
    this.params = null; // whatever comes next may be another encoder's
  }

  /** Parses one payload into the access unit. Throws PacketError for a malformed payload. */
  private addPayload(au: PendingAu, payload: Buffer): void {
    need('H.264 RTP payload', payload.length, 1);
    const type = payload[0] & TYPE_MASK;
    if (type >= 1 && type <= LAST_NAL_TYPE) {
      this.endFuBefore(au, 'a single NAL unit packet');
      this.addNalu(au, [payload], type, payload.length);
    } else if (type === NAL_STAP_A) {
      this.endFuBefore(au, 'a STAP-A');
      this.addStapA(au, payload);
    } else if (type === NAL_FU_A) {
      this.addFuA(au, payload);
    } else {
      // STAP-B, MTAP16/24 and FU-B need interleaved mode (packetization-mode 2), which we do not
      // offer; 0, 30 and 31 are undefined. Either way the packet may have carried part of this
      // access unit, so the access unit cannot be trusted.
      this.counters.unsupportedPackets++;
      this.breakAu(au, `unsupported payload structure type ${type} (${structureName(type)})`);
    }
  }

  /** §5.7.1: a header byte, then (16-bit size, NAL unit) pairs filling the payload exactly. */
  private addStapA(au: PendingAu, payload: Buffer): void {
    let o = STAP_A_HEADER;
    let count = 0;
    while (o < payload.length) {
      need(`STAP-A NAL unit size at byte ${o}`, payload.length - o, STAP_A_SIZE_FIELD);
      const size = payload.readUInt16BE(o);
      o += STAP_A_SIZE_FIELD;
      if (size === 0) throw new PacketError(`STAP-A: zero-size NAL unit at byte ${o - STAP_A_SIZE_FIELD}`);
      need(`STAP-A NAL unit of ${size} bytes at byte ${o}`, payload.length - o, size);
      const nalu = payload.subarray(o, o + size);
      const type = nalu[0] & TYPE_MASK;
      if (type < 1 || type > LAST_NAL_TYPE) {
        throw new PacketError(`STAP-A: aggregated NAL unit ${count + 1} has type ${type}, must be 1-23`);
      }
      this.addNalu(au, [nalu], type, size);
      if (au.broken) return;
      o += size;
      count++;
    }
    if (count === 0) throw new PacketError(`STAP-A: no NAL unit in ${payload.length} bytes`);
  }

  /** §5.8: rebuilds the NAL unit header from the FU indicator's F/NRI and the FU header's type. */
  private addFuA(au: PendingAu, payload: Buffer): void {
    need('FU-A indicator and header', payload.length, FU_A_HEADER);
    const fuHeader = payload[1];
    const start = (fuHeader & FU_START) !== 0;
    const end = (fuHeader & FU_END) !== 0;
    const type = fuHeader & TYPE_MASK;
    if (start && end) throw new PacketError('FU-A: Start and End bits both set (RFC 6184 §5.8 forbids it)');
    if (type < 1 || type > LAST_NAL_TYPE) throw new PacketError(`FU-A: fragmented NAL unit type ${type}, must be 1-23`);
    const fragment = payload.subarray(FU_A_HEADER);
    if (start) {
      this.endFuBefore(au, 'a new FU-A start');
      const header = Buffer.from([(payload[0] & ~TYPE_MASK) | type]);
      const chunks = [header, fragment];
      this.addNalu(au, chunks, type, header.length + fragment.length);
      au.fu = { type, chunks };
      return;
    }
    if (!au.fu) throw new PacketError('FU-A: fragment without its start');
    if (au.fu.type !== type) throw new PacketError(`FU-A: fragment of type ${type} continues a type ${au.fu.type} NAL unit`);
    au.fu.chunks.push(fragment);
    this.grow(au, fragment.length);
    if (end) au.fu = null;
  }

  /** A NAL unit cannot start while an FU-A is unfinished: its end fragment was lost or never sent. */
  private endFuBefore(au: PendingAu, what: string): void {
    if (au.fu) throw new PacketError(`FU-A: NAL unit of type ${au.fu.type} has no end fragment before ${what}`);
  }

  private addNalu(au: PendingAu, chunks: Buffer[], type: number, length: number): void {
    if (au.nalus.length >= this.maxNalus) {
      this.breakAu(au, `more than ${this.maxNalus} NAL units in the access unit`);
      return;
    }
    au.nalus.push(chunks);
    if (type === NAL_IDR) au.keyframe = true;
    else if (type === NAL_SPS) au.sps ??= chunks;
    else if (type === NAL_PPS) au.pps ??= chunks;
    this.grow(au, START_CODE_4.length + length);
  }

  private grow(au: PendingAu, n: number): void {
    au.bytes += n;
    if (au.bytes > this.maxFrameBytes) {
      this.breakAu(au, `access unit exceeds ${this.maxFrameBytes} bytes (${au.bytes} so far)`);
    }
  }

  /** Marks the access unit for dropping and lets go of its views; the first reason wins. */
  private breakAu(au: PendingAu, reason: string): void {
    if (au.broken) return;
    au.broken = reason;
    au.nalus = [];
    au.fu = null;
  }

  /** Writes out a whole access unit as Annex B, or drops and reports a broken one. */
  private finish(au: PendingAu): Frame | null {
    if (!au.broken && au.fu) this.breakAu(au, `FU-A: NAL unit of type ${au.fu.type} has no end fragment`);
    if (!au.broken && au.nalus.length === 0) this.breakAu(au, 'access unit without NAL units');
    if (au.broken) {
      this.counters.framesDropped++;
      this.counters.packetsDiscarded += au.packets;
      this.onDrop?.(`H.264 access unit at timestamp ${au.timestamp} dropped: ${au.broken}`);
      return null;
    }
    const keyframe = this.withParameterSets(au);
    const data = Buffer.allocUnsafe(au.bytes);
    let o = 0;
    for (const chunks of au.nalus) {
      o += START_CODE_4.copy(data, o);
      for (const c of chunks) o += c.copy(data, o);
    }
    this.counters.framesComplete++;
    return { timestamp: au.timestamp, data, keyframe };
  }

  /**
   * Keeps the parameter sets of an access unit that carries both, and gives an IDR that lacks
   * either the ones kept (after an AUD, which must come first). Returns whether the access unit
   * is a keyframe a decoder can start from: an IDR with known parameter sets.
   */
  private withParameterSets(au: PendingAu): boolean {
    if (au.sps && au.pps) {
      this.params = { sps: Buffer.concat(au.sps), pps: Buffer.concat(au.pps) };
      return au.keyframe;
    }
    if (!au.keyframe) return false;
    // After a loss the kept ones may be older than the ones lost (another picture size).
    if (!this.params || au.afterLoss) {
      this.counters.keyframesWithoutParameterSets++;
      return false;
    }
    const missing = [...(au.sps ? [] : [[this.params.sps]]), ...(au.pps ? [] : [[this.params.pps]])];
    const at = (au.nalus[0][0][0] & TYPE_MASK) === NAL_AUD ? 1 : 0;
    au.nalus.splice(at, 0, ...missing);
    for (const [n] of missing) au.bytes += START_CODE_4.length + n.length;
    this.counters.parameterSetsAdded++;
    return true;
  }
}

/** Feeds packets to a fresh depacketizer and returns every frame (tests, files). */
export function depacketizeAll(packets: RtpPacket[], opts?: H264DepacketizerOptions): Frame[] {
  const d = new H264Depacketizer(opts);
  const out: Frame[] = [];
  for (const p of packets) out.push(...d.pushAll(p));
  return out;
}

/**
 * Whether a payload can be the first of an access unit (H.264 §7.4.1.2.3: an access unit begins
 * with an AUD, SPS, PPS, SEI, types 14-18, or the first slice of the picture). A slice is first
 * when first_mb_in_slice is 0; as ue(v), 0 is the single bit 1, the first bit after the header.
 * Used when joining a stream, where there is no earlier packet to show continuity, and after a
 * loss, to tell whether the lost packets could have been this access unit's head.
 */
export function canStartAccessUnit(payload: Buffer): boolean {
  if (payload.length < 1) return false;
  const type = payload[0] & TYPE_MASK;
  if (type === NAL_STAP_A) return payload.length > STAP_A_HEADER + STAP_A_SIZE_FIELD && nalCanStart(payload.subarray(3));
  if (type === NAL_FU_A) {
    if (payload.length < FU_A_HEADER + 1 || (payload[1] & FU_START) === 0) return false;
    const rebuilt = Buffer.from([payload[1] & TYPE_MASK, payload[FU_A_HEADER]]);
    return nalCanStart(rebuilt);
  }
  return nalCanStart(payload);
}

function nalCanStart(nalu: Buffer): boolean {
  const type = nalu[0] & TYPE_MASK;
  if (type === NAL_AUD || type === NAL_SPS || type === NAL_PPS || type === NAL_SEI) return true;
  if (type >= 14 && type <= 18) return true;
  if (type === NAL_SLICE || type === NAL_IDR || type === NAL_PARTITION_A) {
    return nalu.length > 1 && (nalu[1] & 0x80) !== 0;
  }
  return false;
}

function lostReason(lost: number, where: string): string {
  return lost > 0 ? `${lost} packet(s) lost ${where}` : `sequence number jumped back ${where} (sender restart?)`;
}

function structureName(type: number): string {
  switch (type) {
    case NAL_STAP_B:
      return 'STAP-B';
    case NAL_MTAP16:
      return 'MTAP16';
    case NAL_MTAP24:
      return 'MTAP24';
    case NAL_FU_B:
      return 'FU-B';
    default:
      return 'reserved';
  }
}
