/**
 * Feedback messages, RFC 4585 §6: transport-layer (RTPFB, PT=205) and payload-specific (PSFB,
 * PT=206), told apart by FMT in the count field. udpcast interprets Generic NACK and PLI; other
 * FMTs (and later congestion-control feedback) go in the two switches below.
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
 */
import { PacketError, need } from '../../util/errors.ts';
import { seqAdd, seqDiff } from '../../rtp/seq.ts';
import { RTCP_HEADER, RTCP_PSFB, RTCP_RTPFB, sized, u32, type Plan } from './header.ts';

/** RFC 4585 §6.2.1: FMT of Generic NACK inside RTPFB. */
export const FMT_NACK = 1;
/** RFC 4585 §6.3.1: FMT of Picture Loss Indication inside PSFB. */
export const FMT_PLI = 1;
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

// ---- Parsing ---------------------------------------------------------------------------------

/** An RTPFB packet by its FMT; undefined for an FMT we do not interpret (the caller keeps it unknown). */
export function parseRtpfb(fmt: number, body: Buffer, at: string): Nack | undefined {
  switch (fmt) {
    case FMT_NACK:
      return parseNack(body, at);
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
