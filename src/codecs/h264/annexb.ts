/**
 * H.264 NAL units in the two framings encoders and containers use:
 *
 * - Annex B byte stream (ITU-T H.264 Annex B, §B.1): each NAL unit follows a start code
 *   `00 00 01`, optionally preceded by a `zero_byte` (making `00 00 00 01`), and may be followed by
 *   `trailing_zero_8bits`. This is what x264 and FFmpeg's raw `h264` muxer write.
 *
 *       ... 00 00 00 01 | NAL unit | 00 00 01 | NAL unit | 00 ... 00 | 00 00 01 | ...
 *           zero_byte + start code              trailing_zero_8bits
 *
 * - Length-prefixed ("AVCC", ISO/IEC 14496-15 §5.3.4.2): each NAL unit is preceded by its length
 *   in `lengthSizeMinusOne + 1` big-endian bytes (1, 2 or 4). This is what MP4 and some hardware
 *   encoders produce.
 *
 * The NAL unit header (H.264 §7.3.1), one byte:
 *
 *     +---------------+
 *     |0|1|2|3|4|5|6|7|
 *     +-+-+-+-+-+-+-+-+
 *     |F|NRI|  Type   |
 *     +---------------+
 *
 * Splitting returns views (subarray) of the caller's buffer: no NAL byte is copied.
 */
import { PacketError, need } from '../../util/errors.ts';

// NAL unit types, H.264 Table 7-1 (1-23) and RFC 6184 Table 1 / Table 4 (24-29, RTP only).
export const NAL_SLICE = 1;
export const NAL_IDR = 5;
export const NAL_SEI = 6;
export const NAL_SPS = 7;
export const NAL_PPS = 8;
export const NAL_AUD = 9;
/** The type field of a NAL unit header (and of an FU header): its low five bits (RFC 6184 §5.3, §5.8). */
export const NAL_TYPE_MASK = 0x1f;
/** RFC 6184 §5.8: FU indicator + FU header, and the FU header's start and end bits. */
export const FU_A_HEADER = 2;
export const FU_START = 0x80;
export const FU_END = 0x40;
/** The last type H.264 itself defines (Table 7-1); 24-31 are RTP structures or unspecified. */
export const NAL_LAST_H264_TYPE = 23;
/** RFC 6184 §5.7.1: single-time aggregation packet. */
export const NAL_STAP_A = 24;
/** RFC 6184 §5.7.1: STAP with decoding order number (interleaved mode only). */
export const NAL_STAP_B = 25;
/** RFC 6184 §5.7.2: multi-time aggregation packets (interleaved mode only). */
export const NAL_MTAP16 = 26;
export const NAL_MTAP24 = 27;
/** RFC 6184 §5.8: fragmentation unit without / with decoding order number. */
export const NAL_FU_A = 28;
export const NAL_FU_B = 29;

/** Short names matching the brief's vocabulary (`NalType.IDR`, …). */
export const NalType = {
  SLICE: NAL_SLICE,
  IDR: NAL_IDR,
  SEI: NAL_SEI,
  SPS: NAL_SPS,
  PPS: NAL_PPS,
  AUD: NAL_AUD,
  STAP_A: NAL_STAP_A,
  STAP_B: NAL_STAP_B,
  MTAP16: NAL_MTAP16,
  MTAP24: NAL_MTAP24,
  FU_A: NAL_FU_A,
  FU_B: NAL_FU_B,
} as const;

/** The 4-byte start code (zero_byte + start_code_prefix_one_3bytes) that joinAnnexB writes. */
export const START_CODE_4 = Buffer.from([0, 0, 0, 1]);
const START_CODE_3 = Buffer.from([0, 0, 1]);

/** nal_unit_type: the low 5 bits of the NAL unit header (H.264 §7.3.1). */
export function nalType(nalu: Buffer): number {
  need('NAL unit header', nalu.length, 1);
  return nalu[0] & NAL_TYPE_MASK;
}

/** nal_ref_idc: bits 1-2 of the NAL unit header. */
export function nalRefIdc(nalu: Buffer): number {
  need('NAL unit header', nalu.length, 1);
  return (nalu[0] >> 5) & 0x03;
}

/** True when the access unit contains an IDR slice, so a decoder can start from it. */
export function isKeyframe(nalus: Buffer[]): boolean {
  return nalus.some((n) => n.length > 0 && (n[0] & NAL_TYPE_MASK) === NAL_IDR);
}

/**
 * Splits an Annex B byte stream into NAL units (views). Handles 3- and 4-byte start codes and
 * drops trailing zero bytes: H.264 §7.4.1 says the last byte of a NAL unit is never 0x00, so zeros
 * before a start code are trailing_zero_8bits or the next start code's zero_byte. Empty NAL units
 * (two start codes in a row) are skipped. Bytes before the first start code must be zero
 * (leading_zero_8bits, §B.2); anything else is not a byte stream and raises PacketError.
 */
export function splitAnnexB(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let pos = buf.indexOf(START_CODE_3);
  if (pos < 0) {
    if (buf.some((b) => b !== 0)) {
      throw new PacketError(`Annex B: no start code in ${buf.length} bytes`);
    }
    return out;
  }
  for (let i = 0; i < pos; i++) {
    if (buf[i] !== 0) throw new PacketError(`Annex B: ${pos} bytes before the first start code are not all zero`);
  }
  let start = pos + START_CODE_3.length;
  for (;;) {
    const next = buf.indexOf(START_CODE_3, start);
    let end = next < 0 ? buf.length : next;
    while (end > start && buf[end - 1] === 0) end--;
    if (end > start) out.push(buf.subarray(start, end));
    if (next < 0) return out;
    start = next + START_CODE_3.length;
  }
}

/** Writes NAL units as one Annex B buffer with 4-byte start codes (a copy: the output is new). */
export function joinAnnexB(nalus: Buffer[]): Buffer {
  let size = 0;
  for (const n of nalus) size += START_CODE_4.length + n.length;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const n of nalus) {
    o += START_CODE_4.copy(out, o);
    o += n.copy(out, o);
  }
  return out;
}

/**
 * Splits length-prefixed NAL units (ISO/IEC 14496-15 §5.3.4.2) into views. `lengthSize` is
 * lengthSizeMinusOne + 1: 1, 2 or 4 (3 is not allowed by the standard). A length that runs past
 * the end of the buffer, a zero length, or a truncated length field raises PacketError.
 */
export function avccToNalus(buf: Buffer, lengthSize = 4): Buffer[] {
  if (lengthSize !== 1 && lengthSize !== 2 && lengthSize !== 4) {
    throw new PacketError(`AVCC: length size ${lengthSize}, must be 1, 2 or 4`);
  }
  const out: Buffer[] = [];
  let o = 0;
  while (o < buf.length) {
    need(`AVCC length field at byte ${o}`, buf.length - o, lengthSize);
    const len = buf.readUIntBE(o, lengthSize);
    o += lengthSize;
    if (len === 0) throw new PacketError(`AVCC: zero-length NAL unit at byte ${o - lengthSize}`);
    need(`AVCC NAL unit of ${len} bytes at byte ${o}`, buf.length - o, len);
    out.push(buf.subarray(o, o + len));
    o += len;
  }
  return out;
}
