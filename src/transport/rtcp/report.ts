/**
 * Sender and receiver reports with their reception report blocks, RFC 3550 §6.4.
 *
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
 * Receiver report, RFC 3550 §6.4.2 (PT=201): the SR without its sender information.
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|    RC   |   PT=RR=201   |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                     SSRC of packet sender                     |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |                 report blocks (RC × 24 bytes)                 |
 *
 * Profile-specific extensions are skipped when parsing and never written.
 */
import { PacketError, need } from '../../util/errors.ts';
import { RTCP_RR, RTCP_SR, checkCount, sized, u32, type Plan } from './header.ts';

/** RFC 3550 §6.4.1: a report block is six 32-bit words. */
export const REPORT_BLOCK_BYTES = 24;

/** SR sender info after the SSRC: NTP (8), RTP timestamp, packet count, octet count. */
const SR_FIXED = 4 + 20;
const RR_FIXED = 4;

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

/** Sender report, RFC 3550 §6.4.1 (PT=200, count = RC). */
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

/** Receiver report, RFC 3550 §6.4.2 (PT=201). */
export interface ReceiverReport {
  type: 'rr';
  ssrc: number;
  reports: ReportBlock[];
}

// ---- Parsing ---------------------------------------------------------------------------------

export function parseSr(rc: number, body: Buffer, at: string): SenderReport {
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

export function parseRr(rc: number, body: Buffer, at: string): ReceiverReport {
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

// ---- Serialization ---------------------------------------------------------------------------

export function planSr(p: SenderReport): Plan {
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
}

export function planRr(p: ReceiverReport): Plan {
  checkCount('RR report blocks', p.reports.length);
  return sized(RTCP_RR, p.reports.length, RR_FIXED + p.reports.length * REPORT_BLOCK_BYTES, (out, o) => {
    out.writeUInt32BE(u32(p.ssrc, 'RR ssrc'), o);
    writeReportBlocks(out, o + RR_FIXED, p.reports);
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
