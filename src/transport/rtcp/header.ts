/**
 * The RTCP common header (RFC 3550 §6.4.1), the packet-type constants, and the checks every
 * packet family shares. Family files import from here, never from ../rtcp.ts, so the compound
 * parser can import them without a cycle.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|  count  |      PT       |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * `length` is the packet's size in 32-bit words minus one, header and padding included. `count`
 * is RC, SC, subtype or FMT depending on PT. With P set, the last byte of that packet counts the
 * padding bytes (§6.4.1).
 *
 * Each family parses a `body` (everything after these 4 bytes, padding removed), so byte counts in
 * its errors are of the body; `at` names the packet ("RTCP packet at byte N") for those errors.
 */
import { PacketError } from '../../util/errors.ts';

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
/** The 5-bit count field holds at most 31 report blocks, chunks or SSRCs. */
export const MAX_COUNT = 31;
/** The 16-bit length field, in words minus one: the largest packet is 65536 words. */
export const MAX_PACKET_BYTES = 0x10000 * 4;
/** RFC 5761 §4: RTCP packet types 192-223 sit where RTP payload types 64-95 would with M set. */
export const RTCP_PT_MIN = 192;
export const RTCP_PT_MAX = 223;

/** Any other packet type, or a feedback FMT we do not interpret; `body` follows the 4-byte header. */
export interface UnknownRtcp {
  type: 'unknown';
  packetType: number;
  count: number;
  /** A view when parsed, padding excluded; a multiple of 4 bytes to serialize. */
  body: Buffer;
}

/**
 * What one packet needs to be serialized: its header fields, total size, and a writer for its
 * body. Planning checks what can be checked up front, so the compound buffer is sized once.
 */
export interface Plan {
  pt: number;
  count: number;
  size: number;
  write(out: Buffer, o: number): void;
}

export function sized(pt: number, count: number, bodyLen: number, write: Plan['write']): Plan {
  const size = RTCP_HEADER + bodyLen;
  if (size > MAX_PACKET_BYTES) throw new PacketError(`RTCP packet of ${size} bytes, at most ${MAX_PACKET_BYTES}`);
  return { pt, count, size, write };
}

export function planUnknown(p: UnknownRtcp): Plan {
  if (p.packetType < 0 || p.packetType > 255 || !Number.isInteger(p.packetType)) {
    throw new PacketError(`RTCP packet type ${p.packetType}, must be 0-255`);
  }
  checkCount('RTCP count field', p.count);
  if (p.body.length % 4 !== 0) throw new PacketError(`RTCP body is ${p.body.length} bytes, not a multiple of 4`);
  return sized(p.packetType, p.count, p.body.length, (out, o) => {
    p.body.copy(out, o);
  });
}

/** The 5-bit count field (RC, SC, subtype). */
export function checkCount(what: string, n: number): void {
  if (!Number.isInteger(n) || n < 0 || n > MAX_COUNT) throw new PacketError(`${what}: ${n}, at most ${MAX_COUNT}`);
}

export function u32(v: number, field: string): number {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new PacketError(`${field} ${v}, must be a uint32`);
  return v;
}

/** Rounds up to the next 32-bit boundary: every RTCP packet is whole words. */
export function align4(n: number): number {
  return (n + 3) & ~3;
}
