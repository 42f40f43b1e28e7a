/**
 * Feedback messages, RFC 4585 §6: transport-layer (RTPFB, PT=205) and payload-specific (PSFB,
 * PT=206), told apart by FMT in the count field. udpcast interprets Generic NACK, PLI and RFC 8888
 * congestion control feedback (CCFB); other
 * FMTs go in the two switches below.
 *
 * The common feedback header (RFC 4585 §6.1), followed by FMT-specific FCI entries:
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|   FMT   |       PT      |          length               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                  SSRC of packet sender                        |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                  SSRC of media source                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    :            Feedback Control Information (FCI)                 :
 *
 * Generic NACK, RFC 4585 §6.2.1 (RTPFB, FMT=1), FCI repeated:
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |            PID                |             BLP               |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * PID is a lost sequence number; bit i of BLP (least significant first) says PID+i+1 is lost too.
 *
 * Picture Loss Indication, RFC 4585 §6.3.1 (PSFB, FMT=1): no FCI, length 2.
 *
 * Congestion control feedback, RFC 8888 §3.1 (RTPFB, FMT=11). It has no "SSRC of media source":
 * after the sender's SSRC come report blocks, one per RTP stream, then the report timestamp:
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                   SSRC of the RTP stream                      |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |          begin_seq            |          num_reports          |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |R|ECN|  Arrival time offset    | ... one 16-bit metric block per packet, begin_seq onwards,
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+   then 16 zero bits when num_reports is odd
 *    ...                   (more report blocks)
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                 Report Timestamp (compact NTP)                |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * R: the packet arrived. ECN: its two ECN bits. Arrival time offset (ATO): how long before the
 * report timestamp (the middle 32 bits of an NTP time) it arrived, in 1/1024 s; 0x1FFE means that
 * long or longer, 0x1FFF that the time is not known. A packet not received has all 16 bits 0.
 */
import { PacketError, need } from '../../util/errors.ts';
import { seqAdd, seqDiff } from '../../rtp/seq.ts';
import { RTCP_HEADER, RTCP_PSFB, RTCP_RTPFB, align4, sized, u32, type Plan } from './header.ts';

/** RFC 4585 §6.2.1: FMT of Generic NACK inside RTPFB. */
export const FMT_NACK = 1;
/** RFC 4585 §6.3.1: FMT of Picture Loss Indication inside PSFB. */
export const FMT_PLI = 1;
/** RFC 8888 §3.1: FMT of congestion control feedback inside RTPFB. */
export const FMT_CCFB = 11;
/** RFC 8888 §3.1: arrival time offsets count 1/1024 s. */
export const ATO_UNITS_PER_S = 1024;
/** RFC 8888 §3.1: this offset or longer. */
export const ATO_OVER_RANGE = 0x1ffe;
/** RFC 8888 §3.1: the arrival time is not known. */
export const ATO_UNKNOWN = 0x1fff;
/** RFC 4585 §6.2.1: one PID covers itself and the 16 packets after it. */
export const NACK_BLP_BITS = 16;

/** RFC 4585 §6.1: SSRC of packet sender, SSRC of media source. */
const FB_FIXED = 8;
const NACK_FCI_BYTES = 4;

/** Generic NACK, RFC 4585 §6.2.1: RTPFB (PT=205) with FMT=1. */
export interface Nack {
  type: 'nack';
  senderSsrc: number;
  mediaSsrc: number;
  /**
   * Lost sequence numbers. Serializing sorts them in sequence order (relative to the first
   * entry, so a list across 65535 → 0 stays in order), drops repeats and packs them into PID/BLP
   * pairs; parsing unpacks them in FCI order.
   */
  lost: number[];
}

/** Picture Loss Indication, RFC 4585 §6.3.1: PSFB (PT=206), FMT=1, no FCI, length 2. */
export interface Pli {
  type: 'pli';
  senderSsrc: number;
  mediaSsrc: number;
}

/** RFC 8888 §3.1: one RTP stream's packets from beginSeq on, in sequence order. */
export interface CcfbStream {
  ssrc: number;
  beginSeq: number;
  /**
   * One per packet from beginSeq: whether it arrived, its ECN bits, and how long before the report
   * timestamp it arrived (ato, 1/1024 s; ATO_OVER_RANGE, ATO_UNKNOWN). ecn and ato are 0 when not received.
   */
  packets: Array<{ received: boolean; ecn: number; ato: number }>;
}

/** Congestion control feedback, RFC 8888 §3.1: RTPFB (PT=205) with FMT=11. */
export interface Ccfb {
  type: 'ccfb';
  senderSsrc: number;
  streams: CcfbStream[];
  /** When the report was made: the middle 32 bits of an NTP timestamp (ntpMiddle32). */
  reportTimestamp: number;
}

// ---- Parsing ---------------------------------------------------------------------------------

/** An RTPFB packet by its FMT; undefined for an FMT we do not interpret (the caller keeps it unknown). */
export function parseRtpfb(fmt: number, body: Buffer, at: string): Nack | Ccfb | undefined {
  switch (fmt) {
    case FMT_NACK:
      return parseNack(body, at);
    case FMT_CCFB:
      return parseCcfb(body, at);
  }
  return undefined;
}

/** A PSFB packet by its FMT; undefined for an FMT we do not interpret (the caller keeps it unknown). */
export function parsePsfb(fmt: number, body: Buffer, at: string): Pli | undefined {
  switch (fmt) {
    case FMT_PLI:
      return parsePli(body, at);
  }
  return undefined;
}

function parseNack(body: Buffer, at: string): Nack {
  need(`${at}: Generic NACK body with one FCI`, body.length, FB_FIXED + NACK_FCI_BYTES);
  const fciBytes = body.length - FB_FIXED;
  if (fciBytes % NACK_FCI_BYTES !== 0) {
    throw new PacketError(`${at}: Generic NACK FCI is ${fciBytes} bytes, not a multiple of ${NACK_FCI_BYTES}`);
  }
  const lost: number[] = [];
  for (let o = FB_FIXED; o < body.length; o += NACK_FCI_BYTES) {
    const pid = body.readUInt16BE(o);
    const blp = body.readUInt16BE(o + 2);
    lost.push(pid);
    for (let bit = 0; bit < NACK_BLP_BITS; bit++) {
      if (blp & (1 << bit)) lost.push(seqAdd(pid, bit + 1));
    }
  }
  return { type: 'nack', senderSsrc: body.readUInt32BE(0), mediaSsrc: body.readUInt32BE(4), lost };
}

/** SSRC of packet sender and report timestamp; each report block is 8 bytes and 2 a packet. */
const CCFB_FIXED = 8;
const CCFB_BLOCK_HEAD = 8;
const CCFB_R = 0x8000;
const CCFB_ECN_SHIFT = 13;
const CCFB_ATO_MASK = 0x1fff;

function parseCcfb(body: Buffer, at: string): Ccfb {
  need(`${at}: congestion control feedback body`, body.length, CCFB_FIXED);
  const end = body.length - 4;
  const streams: CcfbStream[] = [];
  let o = 4;
  while (o < end) {
    need(`${at}: CCFB report block at byte ${o}`, end - o, CCFB_BLOCK_HEAD);
    const ssrc = body.readUInt32BE(o);
    const beginSeq = body.readUInt16BE(o + 4);
    const count = body.readUInt16BE(o + 6);
    o += CCFB_BLOCK_HEAD;
    const words = align4(count * 2);
    need(`${at}: CCFB report block of ${count} packets`, end - o, words);
    const packets: CcfbStream['packets'] = new Array(count);
    for (let i = 0; i < count; i++) {
      const m = body.readUInt16BE(o + i * 2);
      const received = (m & CCFB_R) !== 0;
      packets[i] = received ? { received, ecn: (m >> CCFB_ECN_SHIFT) & 3, ato: m & CCFB_ATO_MASK } : { received, ecn: 0, ato: 0 };
    }
    streams.push({ ssrc, beginSeq, packets });
    o += words;
  }
  return { type: 'ccfb', senderSsrc: body.readUInt32BE(0), streams, reportTimestamp: body.readUInt32BE(end) };
}

function parsePli(body: Buffer, at: string): Pli {
  if (body.length !== FB_FIXED) {
    throw new PacketError(`${at}: PLI must be ${RTCP_HEADER + FB_FIXED} bytes (length 2), has ${RTCP_HEADER + body.length}`);
  }
  return { type: 'pli', senderSsrc: body.readUInt32BE(0), mediaSsrc: body.readUInt32BE(4) };
}

// ---- Serialization ---------------------------------------------------------------------------

export function planNack(p: Nack): Plan {
  const fci = packNack(p.lost);
  return sized(RTCP_RTPFB, FMT_NACK, FB_FIXED + fci.length * NACK_FCI_BYTES, (out, o) => {
    out.writeUInt32BE(u32(p.senderSsrc, 'NACK senderSsrc'), o);
    out.writeUInt32BE(u32(p.mediaSsrc, 'NACK mediaSsrc'), o + 4);
    o += FB_FIXED;
    for (const [pid, blp] of fci) {
      out.writeUInt16BE(pid, o);
      out.writeUInt16BE(blp, o + 2);
      o += NACK_FCI_BYTES;
    }
  });
}

export function planPli(p: Pli): Plan {
  return sized(RTCP_PSFB, FMT_PLI, FB_FIXED, (out, o) => {
    out.writeUInt32BE(u32(p.senderSsrc, 'PLI senderSsrc'), o);
    out.writeUInt32BE(u32(p.mediaSsrc, 'PLI mediaSsrc'), o + 4);
  });
}

export function planCcfb(p: Ccfb): Plan {
  let len = CCFB_FIXED;
  for (const r of p.streams) {
    if (r.packets.length > 0xffff) throw new PacketError(`CCFB report block of ${r.packets.length} packets, at most 65535`);
    if (!Number.isInteger(r.beginSeq) || r.beginSeq < 0 || r.beginSeq > 0xffff) throw new PacketError(`CCFB begin_seq ${r.beginSeq}, must be 0-65535`);
    u32(r.ssrc, 'CCFB ssrc');
    len += CCFB_BLOCK_HEAD + align4(r.packets.length * 2);
  }
  return sized(RTCP_RTPFB, FMT_CCFB, len, (out, o) => {
    out.writeUInt32BE(u32(p.senderSsrc, 'CCFB senderSsrc'), o);
    o += 4;
    for (const r of p.streams) {
      out.writeUInt32BE(r.ssrc, o);
      out.writeUInt16BE(r.beginSeq, o + 4);
      out.writeUInt16BE(r.packets.length, o + 6);
      o += CCFB_BLOCK_HEAD;
      for (const m of r.packets) {
        out.writeUInt16BE(m.received ? CCFB_R | ((m.ecn & 3) << CCFB_ECN_SHIFT) | Math.min(ATO_UNKNOWN, Math.max(0, m.ato)) : 0, o);
        o += 2;
      }
      if (r.packets.length % 2) {
        out.writeUInt16BE(0, o);
        o += 2;
      }
    }
    out.writeUInt32BE(u32(p.reportTimestamp, 'CCFB report timestamp'), o);
  });
}

/**
 * Packs lost sequence numbers into RFC 4585 §6.2.1 PID/BLP pairs: each PID is the earliest
 * number not yet covered, and the 16 numbers after it go into its BLP.
 */
function packNack(lost: number[]): Array<[number, number]> {
  if (lost.length === 0) throw new PacketError('Generic NACK needs at least one lost sequence number (RFC 4585 §6.2.1)');
  for (const s of lost) {
    if (!Number.isInteger(s) || s < 0 || s > 0xffff) throw new PacketError(`NACK sequence number ${s}, must be 0-65535`);
  }
  const ref = lost[0];
  const sorted = [...new Set(lost)].sort((a, b) => seqDiff(ref, a) - seqDiff(ref, b));
  const fci: Array<[number, number]> = [];
  for (const s of sorted) {
    const last = fci[fci.length - 1];
    const d = last ? seqDiff(last[0], s) : 0;
    if (last && d >= 1 && d <= NACK_BLP_BITS) last[1] |= 1 << (d - 1);
    else fci.push([s, 0]);
  }
  return fci;
}
