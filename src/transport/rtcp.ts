/**
 * RTCP, RFC 3550 §6, with the RFC 4585 feedback messages udpcast uses (Generic NACK, PLI) and the
 * RFC 5761 rule for telling RTCP from RTP on one port.
 *
 * Every RTCP packet starts with the same 4 bytes (RFC 3550 §6.4.1):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|  count  |      PT       |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * `length` is the packet's size in 32-bit words minus one, header and padding included, so a
 * compound packet is a run of such packets laid end to end. `count` is RC, SC, subtype or FMT
 * depending on PT. With P set, the last byte of that packet counts the padding bytes (§6.4.1).
 *
 * Byte counts in errors about one packet's contents are of its body (after the 4-byte header).
 *
 * Parsing returns views into the caller's buffer for the binary fields (APP data, unknown bodies);
 * the caller's buffer is never written. Every count and length is checked against the bytes
 * present before anything is read, and a lie throws a PacketError that names both numbers.
 */
import { PacketError, need } from '../util/errors.ts';
import { seqAdd, seqDiff } from '../rtp/seq.ts';

export const RTCP_VERSION = 2;
export const RTCP_HEADER = 4;
export const RTCP_SR = 200;
export const RTCP_RR = 201;
export const RTCP_SDES = 202;
export const RTCP_BYE = 203;
export const RTCP_APP = 204;
/** RFC 4585 §6.1: transport-layer feedback. */
export const RTCP_RTPFB = 205;
/** RFC 4585 §6.1: payload-specific feedback. */
export const RTCP_PSFB = 206;
/** RFC 4585 §6.2.1: FMT of Generic NACK inside RTPFB. */
export const FMT_NACK = 1;
/** RFC 4585 §6.3.1: FMT of Picture Loss Indication inside PSFB. */
export const FMT_PLI = 1;
/** RFC 3550 §6.5: SDES item types. 0 ends a chunk's item list. */
export const SDES_END = 0;
export const SDES_CNAME = 1;
export const SDES_NAME = 2;
export const SDES_TOOL = 6;
/** RFC 3550 §6.4.1: a report block is six 32-bit words. */
export const REPORT_BLOCK_BYTES = 24;
/** The 5-bit count field holds at most 31 report blocks, chunks or SSRCs. */
export const MAX_COUNT = 31;
/** The 16-bit length field, in words minus one: the largest packet is 65536 words. */
export const MAX_PACKET_BYTES = 0x10000 * 4;
/** RFC 4585 §6.2.1: one PID covers itself and the 16 packets after it. */
export const NACK_BLP_BITS = 16;
/** RFC 5761 §4: RTCP packet types 192-223 sit where RTP payload types 64-95 would with M set. */
export const RTCP_PT_MIN = 192;
export const RTCP_PT_MAX = 223;

// ---- Packet shapes ---------------------------------------------------------------------------

/**
 * A reception report block (RFC 3550 §6.4.1), 24 bytes:
 *
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |                 SSRC_1 (SSRC of first source)                 |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    | fraction lost |       cumulative number of packets lost       |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |           extended highest sequence number received           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                      interarrival jitter                      |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                         last SR (LSR)                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                   delay since last SR (DLSR)                  |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 */
export interface ReportBlock {
  ssrc: number;
  /** Fixed point, lost/expected × 256 over the last interval: 0-255. */
  fractionLost: number;
  /** Signed 24-bit: duplicates can make it negative. */
  cumulativeLost: number;
  /** Cycles × 65536 + highest sequence number, uint32. */
  highestSeq: number;
  /** uint32, in RTP timestamp units. */
  jitter: number;
  /** Middle 32 bits of the last SR's NTP timestamp, 0 when none has arrived. */
  lsr: number;
  /** Delay since that SR in 1/65536 s, 0 when none has arrived. */
  dlsr: number;
}

/**
 * Sender report, RFC 3550 §6.4.1 (PT=200, count = RC):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|    RC   |   PT=SR=200   |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                         SSRC of sender                        |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |              NTP timestamp, most significant word             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |             NTP timestamp, least significant word             |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                         RTP timestamp                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                     sender's packet count                     |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                      sender's octet count                     |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |                 report blocks (RC × 24 bytes)                 |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |                  profile-specific extensions                  |
 *
 * Profile-specific extensions are skipped when parsing and never written.
 */
export interface SenderReport {
  type: 'sr';
  ssrc: number;
  ntpSec: number;
  ntpFrac: number;
  rtpTimestamp: number;
  packetCount: number;
  octetCount: number;
  reports: ReportBlock[];
}

/**
 * Receiver report, RFC 3550 §6.4.2 (PT=201): the SR without its sender information.
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|    RC   |   PT=RR=201   |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                     SSRC of packet sender                     |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |                 report blocks (RC × 24 bytes)                 |
 */
export interface ReceiverReport {
  type: 'rr';
  ssrc: number;
  reports: ReportBlock[];
}

/** One SDES item (RFC 3550 §6.5): type, 8-bit length, UTF-8 text of that many bytes. */
export interface SdesItem {
  type: number;
  text: string;
}

export interface SdesChunk {
  ssrc: number;
  items: SdesItem[];
}

/**
 * Source description, RFC 3550 §6.5 (PT=202, count = SC):
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|    SC   |  PT=SDES=202  |             length            |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |                          SSRC/CSRC_1                          |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                           SDES items                          |
 *    |                              ...                              |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *
 * Each chunk's item list ends with at least one null octet (item type 0, no length), then more
 * nulls up to the next 32-bit boundary.
 */
export interface Sdes {
  type: 'sdes';
  chunks: SdesChunk[];
}

/**
 * Goodbye, RFC 3550 §6.6 (PT=203, count = SC):
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|    SC   |   PT=BYE=203  |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                           SSRC/CSRC                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    :                              ...                              :
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |     length    |               reason for leaving            ... (opt)
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
export interface Bye {
  type: 'bye';
  ssrcs: number[];
  reason?: string;
}

/**
 * Application-defined, RFC 3550 §6.7 (PT=204, count = subtype):
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P| subtype |   PT=APP=204  |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                           SSRC/CSRC                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                          name (ASCII)                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                   application-dependent data                ...
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 */
export interface App {
  type: 'app';
  subtype: number;
  ssrc: number;
  /** Four ASCII characters. */
  name: string;
  /** A view when parsed; a multiple of 4 bytes. */
  data: Buffer;
}

/**
 * Generic NACK, RFC 4585 §6.2.1: RTPFB (PT=205) with FMT=1. The common feedback header
 * (RFC 4585 §6.1) is followed by one or more FCI entries:
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
 *    |            PID                |             BLP               |   (FCI, repeated)
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * PID is a lost sequence number; bit i of BLP (least significant first) says PID+i+1 is lost too.
 */
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

/** Any other packet type, or a feedback FMT we do not interpret; `body` follows the 4-byte header. */
export interface UnknownRtcp {
  type: 'unknown';
  packetType: number;
  count: number;
  /** A view when parsed, padding excluded; a multiple of 4 bytes to serialize. */
  body: Buffer;
}

export type RtcpPacket = SenderReport | ReceiverReport | Sdes | Bye | App | Nack | Pli | UnknownRtcp;

// ---- Demultiplexing --------------------------------------------------------------------------

/**
 * RFC 5761 §4: on a shared port, a datagram is RTCP when its version is 2 and its second byte
 * is 192-223 (RTCP packet types SR..., which would be RTP payload types 64-95 with M set).
 */
export function isRtcp(buf: Buffer): boolean {
  if (buf.length < RTCP_HEADER || buf[0] >> 6 !== RTCP_VERSION) return false;
  return buf[1] >= RTCP_PT_MIN && buf[1] <= RTCP_PT_MAX;
}

// ---- Parsing ---------------------------------------------------------------------------------

/** Parses a compound packet (or a lone packet, RFC 5506) into its individual packets. */
export function parseRtcp(buf: Buffer): RtcpPacket[] {
  need('RTCP packet', buf.length, RTCP_HEADER);
  const out: RtcpPacket[] = [];
  let offset = 0;
  while (offset < buf.length) {
    const at = `RTCP packet at byte ${offset}`;
    need(`${at}: header`, buf.length - offset, RTCP_HEADER);
    const b0 = buf[offset];
    const version = b0 >> 6;
    if (version !== RTCP_VERSION) throw new PacketError(`${at}: version ${version}, expected 2`);
    const size = (buf.readUInt16BE(offset + 2) + 1) * 4;
    need(`${at}: length field`, buf.length - offset, size);
    let end = offset + size;
    if (b0 & 0x20) {
      const pad = buf[end - 1];
      if (pad === 0) throw new PacketError(`${at}: padding bit set but pad count is 0`);
      if (pad > size - RTCP_HEADER) {
        throw new PacketError(`${at}: pad count ${pad} exceeds the ${size - RTCP_HEADER} bytes after the header`);
      }
      end -= pad;
    }
    out.push(parseOne(b0 & 0x1f, buf[offset + 1], buf.subarray(offset + RTCP_HEADER, end), at));
    offset += size;
  }
  return out;
}

/** One packet: `body` is everything after the 4-byte header, padding removed. */
function parseOne(count: number, pt: number, body: Buffer, at: string): RtcpPacket {
  switch (pt) {
    case RTCP_SR:
      return parseSr(count, body, at);
    case RTCP_RR:
      return parseRr(count, body, at);
    case RTCP_SDES:
      return parseSdes(count, body, at);
    case RTCP_BYE:
      return parseBye(count, body, at);
    case RTCP_APP:
      return parseApp(count, body, at);
    case RTCP_RTPFB:
      if (count === FMT_NACK) return parseNack(body, at);
      break;
    case RTCP_PSFB:
      if (count === FMT_PLI) return parsePli(body, at);
      break;
  }
  return { type: 'unknown', packetType: pt, count, body };
}

/** SR sender info after the SSRC: NTP (8), RTP timestamp, packet count, octet count. */
const SR_FIXED = 4 + 20;
const RR_FIXED = 4;

function parseSr(rc: number, body: Buffer, at: string): SenderReport {
  need(`${at}: SR body with ${rc} report blocks`, body.length, SR_FIXED + rc * REPORT_BLOCK_BYTES);
  return {
    type: 'sr',
    ssrc: body.readUInt32BE(0),
    ntpSec: body.readUInt32BE(4),
    ntpFrac: body.readUInt32BE(8),
    rtpTimestamp: body.readUInt32BE(12),
    packetCount: body.readUInt32BE(16),
    octetCount: body.readUInt32BE(20),
    reports: parseReportBlocks(body, SR_FIXED, rc),
  };
}

function parseRr(rc: number, body: Buffer, at: string): ReceiverReport {
  need(`${at}: RR body with ${rc} report blocks`, body.length, RR_FIXED + rc * REPORT_BLOCK_BYTES);
  return { type: 'rr', ssrc: body.readUInt32BE(0), reports: parseReportBlocks(body, RR_FIXED, rc) };
}

function parseReportBlocks(body: Buffer, start: number, rc: number): ReportBlock[] {
  const reports: ReportBlock[] = [];
  for (let i = 0, o = start; i < rc; i++, o += REPORT_BLOCK_BYTES) {
    reports.push({
      ssrc: body.readUInt32BE(o),
      fractionLost: body[o + 4],
      cumulativeLost: body.readIntBE(o + 5, 3),
      highestSeq: body.readUInt32BE(o + 8),
      jitter: body.readUInt32BE(o + 12),
      lsr: body.readUInt32BE(o + 16),
      dlsr: body.readUInt32BE(o + 20),
    });
  }
  return reports;
}

function parseSdes(sc: number, body: Buffer, at: string): Sdes {
  const chunks: SdesChunk[] = [];
  let o = 0;
  for (let c = 0; c < sc; c++) {
    need(`${at}: SDES chunk ${c + 1} of ${sc} at body byte ${o}`, body.length - o, 4);
    const ssrc = body.readUInt32BE(o);
    o += 4;
    const items: SdesItem[] = [];
    for (;;) {
      need(`${at}: SDES chunk ${c + 1} item list (no null terminator)`, body.length - o, 1);
      const type = body[o];
      if (type === SDES_END) break;
      need(`${at}: SDES item type ${type} header`, body.length - o, 2);
      const len = body[o + 1];
      need(`${at}: SDES item type ${type} of ${len} bytes`, body.length - o - 2, len);
      items.push({ type, text: body.toString('utf8', o + 2, o + 2 + len) });
      o += 2 + len;
    }
    // The null terminator, then nulls to the next 32-bit boundary (the chunk began on one).
    o = align4(o + 1);
    if (o > body.length) {
      throw new PacketError(`${at}: SDES chunk ${c + 1} padding runs to body byte ${o}, body has ${body.length}`);
    }
    chunks.push({ ssrc, items });
  }
  return { type: 'sdes', chunks };
}

function parseBye(sc: number, body: Buffer, at: string): Bye {
  need(`${at}: BYE body with ${sc} SSRCs`, body.length, sc * 4);
  const ssrcs: number[] = [];
  for (let i = 0; i < sc; i++) ssrcs.push(body.readUInt32BE(i * 4));
  const o = sc * 4;
  if (o === body.length) return { type: 'bye', ssrcs };
  const len = body[o];
  need(`${at}: BYE reason of ${len} bytes`, body.length - o - 1, len);
  return { type: 'bye', ssrcs, reason: body.toString('utf8', o + 1, o + 1 + len) };
}

function parseApp(subtype: number, body: Buffer, at: string): App {
  need(`${at}: APP body (SSRC and name)`, body.length, 8);
  return {
    type: 'app',
    subtype,
    ssrc: body.readUInt32BE(0),
    name: body.toString('latin1', 4, 8),
    data: body.subarray(8),
  };
}

/** RFC 4585 §6.1: SSRC of packet sender, SSRC of media source. */
const FB_FIXED = 8;
const NACK_FCI_BYTES = 4;

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

/** Serializes packets into one compound packet, in the given order, without padding. */
export function serializeRtcp(packets: RtcpPacket[]): Buffer {
  const plans = packets.map(plan);
  const out = Buffer.alloc(plans.reduce((n, p) => n + p.size, 0));
  let offset = 0;
  for (const p of plans) {
    out[offset] = (RTCP_VERSION << 6) | p.count;
    out[offset + 1] = p.pt;
    out.writeUInt16BE(p.size / 4 - 1, offset + 2);
    p.write(out, offset + RTCP_HEADER);
    offset += p.size;
  }
  return out;
}

/** What one packet needs: its header fields, total size, and a writer for its body. */
interface Plan {
  pt: number;
  count: number;
  size: number;
  write(out: Buffer, o: number): void;
}

function plan(p: RtcpPacket): Plan {
  switch (p.type) {
    case 'sr':
      checkCount('SR report blocks', p.reports.length);
      return sized(RTCP_SR, p.reports.length, SR_FIXED + p.reports.length * REPORT_BLOCK_BYTES, (out, o) => {
        out.writeUInt32BE(u32(p.ssrc, 'SR ssrc'), o);
        out.writeUInt32BE(u32(p.ntpSec, 'SR ntpSec'), o + 4);
        out.writeUInt32BE(u32(p.ntpFrac, 'SR ntpFrac'), o + 8);
        out.writeUInt32BE(u32(p.rtpTimestamp, 'SR rtpTimestamp'), o + 12);
        out.writeUInt32BE(u32(p.packetCount, 'SR packetCount'), o + 16);
        out.writeUInt32BE(u32(p.octetCount, 'SR octetCount'), o + 20);
        writeReportBlocks(out, o + SR_FIXED, p.reports);
      });
    case 'rr':
      checkCount('RR report blocks', p.reports.length);
      return sized(RTCP_RR, p.reports.length, RR_FIXED + p.reports.length * REPORT_BLOCK_BYTES, (out, o) => {
        out.writeUInt32BE(u32(p.ssrc, 'RR ssrc'), o);
        writeReportBlocks(out, o + RR_FIXED, p.reports);
      });
    case 'sdes':
      return planSdes(p);
    case 'bye': {
      checkCount('BYE SSRCs', p.ssrcs.length);
      const reason = p.reason === undefined ? undefined : Buffer.from(p.reason, 'utf8');
      if (reason && reason.length > 255) throw new PacketError(`BYE reason is ${reason.length} bytes, at most 255`);
      const bodyLen = p.ssrcs.length * 4 + (reason ? align4(1 + reason.length) : 0);
      return sized(RTCP_BYE, p.ssrcs.length, bodyLen, (out, o) => {
        for (const s of p.ssrcs) {
          out.writeUInt32BE(u32(s, 'BYE ssrc'), o);
          o += 4;
        }
        if (reason) {
          out[o] = reason.length;
          reason.copy(out, o + 1);
        }
      });
    }
    case 'app': {
      if (p.subtype < 0 || p.subtype > MAX_COUNT || !Number.isInteger(p.subtype)) {
        throw new PacketError(`APP subtype ${p.subtype}, must be 0-${MAX_COUNT}`);
      }
      const name = Buffer.from(p.name, 'latin1');
      if (p.name.length !== 4 || name.some((c) => c < 0x20 || c > 0x7e)) {
        throw new PacketError(`APP name ${JSON.stringify(p.name)} is not 4 printable ASCII characters`);
      }
      if (p.data.length % 4 !== 0) throw new PacketError(`APP data is ${p.data.length} bytes, not a multiple of 4`);
      return sized(RTCP_APP, p.subtype, 8 + p.data.length, (out, o) => {
        out.writeUInt32BE(u32(p.ssrc, 'APP ssrc'), o);
        name.copy(out, o + 4);
        p.data.copy(out, o + 8);
      });
    }
    case 'nack': {
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
    case 'pli':
      return sized(RTCP_PSFB, FMT_PLI, FB_FIXED, (out, o) => {
        out.writeUInt32BE(u32(p.senderSsrc, 'PLI senderSsrc'), o);
        out.writeUInt32BE(u32(p.mediaSsrc, 'PLI mediaSsrc'), o + 4);
      });
    case 'unknown': {
      if (p.packetType < 0 || p.packetType > 255 || !Number.isInteger(p.packetType)) {
        throw new PacketError(`RTCP packet type ${p.packetType}, must be 0-255`);
      }
      checkCount('RTCP count field', p.count);
      if (p.body.length % 4 !== 0) throw new PacketError(`RTCP body is ${p.body.length} bytes, not a multiple of 4`);
      return sized(p.packetType, p.count, p.body.length, (out, o) => {
        p.body.copy(out, o);
      });
    }
  }
}

function sized(pt: number, count: number, bodyLen: number, write: Plan['write']): Plan {
  const size = RTCP_HEADER + bodyLen;
  if (size > MAX_PACKET_BYTES) throw new PacketError(`RTCP packet of ${size} bytes, at most ${MAX_PACKET_BYTES}`);
  return { pt, count, size, write };
}

function planSdes(p: Sdes): Plan {
  checkCount('SDES chunks', p.chunks.length);
  const chunks = p.chunks.map((c) => {
    const items = c.items.map((it) => {
      if (it.type < 1 || it.type > 255 || !Number.isInteger(it.type)) {
        throw new PacketError(`SDES item type ${it.type}, must be 1-255 (0 ends the list)`);
      }
      const text = Buffer.from(it.text, 'utf8');
      if (text.length > 255) throw new PacketError(`SDES item type ${it.type} is ${text.length} bytes, at most 255`);
      return { type: it.type, text };
    });
    // SSRC, items, then at least one null octet, padded to 32 bits.
    const size = align4(4 + items.reduce((n, it) => n + 2 + it.text.length, 0) + 1);
    return { ssrc: c.ssrc, items, size };
  });
  const bodyLen = chunks.reduce((n, c) => n + c.size, 0);
  return sized(RTCP_SDES, chunks.length, bodyLen, (out, o) => {
    // `out` was zero-filled, so terminators and padding are already in place.
    for (const c of chunks) {
      out.writeUInt32BE(u32(c.ssrc, 'SDES ssrc'), o);
      let i = o + 4;
      for (const it of c.items) {
        out[i] = it.type;
        out[i + 1] = it.text.length;
        it.text.copy(out, i + 2);
        i += 2 + it.text.length;
      }
      o += c.size;
    }
  });
}

function writeReportBlocks(out: Buffer, o: number, reports: ReportBlock[]): void {
  for (const r of reports) {
    if (!Number.isInteger(r.fractionLost) || r.fractionLost < 0 || r.fractionLost > 255) {
      throw new PacketError(`report block fractionLost ${r.fractionLost}, must be 0-255`);
    }
    if (!Number.isInteger(r.cumulativeLost) || r.cumulativeLost < -0x800000 || r.cumulativeLost > 0x7fffff) {
      throw new PacketError(`report block cumulativeLost ${r.cumulativeLost}, must fit signed 24 bits`);
    }
    out.writeUInt32BE(u32(r.ssrc, 'report block ssrc'), o);
    out[o + 4] = r.fractionLost;
    out.writeIntBE(r.cumulativeLost, o + 5, 3);
    out.writeUInt32BE(u32(r.highestSeq, 'report block highestSeq'), o + 8);
    out.writeUInt32BE(u32(r.jitter, 'report block jitter'), o + 12);
    out.writeUInt32BE(u32(r.lsr, 'report block lsr'), o + 16);
    out.writeUInt32BE(u32(r.dlsr, 'report block dlsr'), o + 20);
    o += REPORT_BLOCK_BYTES;
  }
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

function checkCount(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_COUNT) throw new PacketError(`${what}: ${n}, at most ${MAX_COUNT}`);
}

function u32(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new PacketError(`${field} ${v}, must be a uint32`);
  return v;
}

function align4(n: number): number {
  return (n + 3) & ~3;
}
