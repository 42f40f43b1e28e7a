/**
 * Compound RTCP, RFC 3550 §6.1: a run of RTCP packets laid end to end in one datagram, each
 * starting with the common header (RFC 3550 §6.4.1, see rtcp/header.ts) whose `length` says
 * where the next begins. With the RFC 5761 rule for telling RTCP from RTP on one port.
 *
 * This file frames packets and dispatches on PT; each packet family (its RFC diagram, shape, parse
 * and serialize plan) lives in rtcp/: report.ts (SR, RR, report blocks, §6.4), sdes.ts (§6.5),
 * bye.ts (§6.6), app.ts (§6.7) and feedback.ts (RFC 4585 Generic NACK, PLI; RFC 8888 CCFB). Adding a family is a
 * file there, a member of RtcpPacket and a case in each switch below.
 *
 * Byte counts in errors about one packet's contents are of its body (after the 4-byte header).
 *
 * Parsing returns views into the caller's buffer for the binary fields (APP data, unknown bodies);
 * the caller's buffer is never written. Every count and length is checked against the bytes
 * present before anything is read, and a lie throws a PacketError that names both numbers.
 */
import { PacketError, need } from '../util/errors.ts';
import {
  RTCP_APP,
  RTCP_BYE,
  RTCP_HEADER,
  RTCP_PSFB,
  RTCP_PT_MAX,
  RTCP_PT_MIN,
  RTCP_RR,
  RTCP_RTPFB,
  RTCP_SDES,
  RTCP_SR,
  RTCP_VERSION,
  planUnknown,
  type Plan,
  type UnknownRtcp,
} from './rtcp/header.ts';
import { parseRr, parseSr, planRr, planSr, type ReceiverReport, type SenderReport } from './rtcp/report.ts';
import { parseSdes, planSdes, type Sdes } from './rtcp/sdes.ts';
import { parseBye, planBye, type Bye } from './rtcp/bye.ts';
import { parseApp, planApp, type App } from './rtcp/app.ts';
import { parsePsfb, parseRtpfb, planCcfb, planNack, planPli, type Ccfb, type Nack, type Pli } from './rtcp/feedback.ts';

// The names importers have always taken from this file.
export {
  RTCP_VERSION,
  RTCP_HEADER,
  RTCP_SR,
  RTCP_RR,
  RTCP_SDES,
  RTCP_BYE,
  RTCP_APP,
  RTCP_RTPFB,
  RTCP_PSFB,
  MAX_COUNT,
  MAX_PACKET_BYTES,
  RTCP_PT_MIN,
  RTCP_PT_MAX,
  type UnknownRtcp,
} from './rtcp/header.ts';
export { REPORT_BLOCK_BYTES, type ReportBlock, type SenderReport, type ReceiverReport } from './rtcp/report.ts';
export { SDES_END, SDES_CNAME, SDES_NAME, SDES_TOOL, type SdesItem, type SdesChunk, type Sdes } from './rtcp/sdes.ts';
export type { Bye } from './rtcp/bye.ts';
export type { App } from './rtcp/app.ts';
export { FMT_NACK, FMT_PLI, FMT_CCFB, NACK_BLP_BITS, ATO_UNITS_PER_S, ATO_OVER_RANGE, ATO_UNKNOWN, type Nack, type Pli, type Ccfb, type CcfbStream } from './rtcp/feedback.ts';

export type RtcpPacket = SenderReport | ReceiverReport | Sdes | Bye | App | Nack | Pli | Ccfb | UnknownRtcp;

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
      return parseRtpfb(count, body, at) ?? unknown(pt, count, body);
    case RTCP_PSFB:
      return parsePsfb(count, body, at) ?? unknown(pt, count, body);
  }
  return unknown(pt, count, body);
}

function unknown(packetType: number, count: number, body: Buffer): UnknownRtcp {
  return { type: 'unknown', packetType, count, body };
}

// ---- Serialization ---------------------------------------------------------------------------

/** Serializes packets into one compound packet, in the given order, without padding. */
export function serializeRtcp(packets: RtcpPacket[]): Buffer {
  // Every packet is planned (and checked) before the one buffer is allocated and written.
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

function plan(p: RtcpPacket): Plan {
  switch (p.type) {
    case 'sr':
      return planSr(p);
    case 'rr':
      return planRr(p);
    case 'sdes':
      return planSdes(p);
    case 'bye':
      return planBye(p);
    case 'app':
      return planApp(p);
    case 'nack':
      return planNack(p);
    case 'pli':
      return planPli(p);
    case 'ccfb':
      return planCcfb(p);
    case 'unknown':
      return planUnknown(p);
  }
}
