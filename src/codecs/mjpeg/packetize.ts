/**
 * JPEG RTP packetizer, RFC 2435: one baseline JFIF image in, RTP payloads out.
 *
 * Every packet starts with the main JPEG header (§3.1):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    | Type-specific |              Fragment Offset                  |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |      Type     |       Q       |     Width     |     Height    |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * For types 64-127 the restart marker header follows (§3.1.7):
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |       Restart Interval        |F|L|       Restart Count       |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * For Q 128-255, the packet at fragment offset 0 then carries the tables (§3.1.8):
 *
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |      MBZ      |   Precision   |             Length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                    Quantization Table Data                    |
 *    |                              ...                              |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * and then comes the entropy-coded scan, split wherever the payload limit falls. We always send
 * Q = 255 with the image's own tables: FFmpeg's -q:v tables are not the Appendix A scaling, and 255
 * tells receivers not to cache them (§3.1.4). Restart intervals are not aligned to packets, so
 * each packet says F = L = 1 and count 0x3FFF: the receiver decodes only whole frames (§3.1.7).
 *
 * Payloads are [header, view of the scan]: no scan byte is copied before the socket.
 */
import { DEFAULT_PAYLOAD_LIMIT } from '../../defaults.ts';
import { JPEG_DIMENSION_UNIT, JPEG_TYPE_RESTART, JpegUnsupportedError, parseJpeg } from './jpeg.ts';
import type { Payload } from '../../rtp/frame.ts';
import { BLOCK_SIZE, Q_DYNAMIC } from './tables.ts';

/** §3.1: main JPEG header. */
export const MAIN_HEADER_BYTES = 8;
/** §3.1.7: restart marker header. */
export const RESTART_HEADER_BYTES = 4;
/** §3.1.8: quantization table header before its table data. */
export const QTABLE_HEADER_BYTES = 4;
/** §3.1.2: the fragment offset is 24 bits, so a scan is at most 2^24 - 1 bytes. */
export const MAX_FRAGMENT_OFFSET = 0xffffff;
/** §3.1.7: F and L set and this count: restart intervals may span packets. */
export const RESTART_COUNT_UNALIGNED = 0x3fff;
const RESTART_FIRST_LAST = 0xc000;
/** Two 8-bit tables (luminance, chrominance), §4.2. */
const QTABLE_BYTES = 2 * BLOCK_SIZE;
/** The most header bytes a packet carries: main + restart + table header + two tables. */
export const MAX_JPEG_HEADERS = MAIN_HEADER_BYTES + RESTART_HEADER_BYTES + QTABLE_HEADER_BYTES + QTABLE_BYTES;
/** Smallest payload limit: the first packet's headers plus one byte of scan. */
export const MIN_JPEG_PAYLOAD_LIMIT = MAX_JPEG_HEADERS + 1;
/** Largest IPv4 UDP payload (65535 - 20 - 8) minus the 12-byte RTP header. */
export const MAX_JPEG_PAYLOAD_LIMIT = 65507 - 12;

export interface JpegPacketizerOptions {
  /**
   * Largest RTP payload in bytes. Default DEFAULT_PAYLOAD_LIMIT (1160, see defaults.ts for the MTU
   * arithmetic); at least MIN_JPEG_PAYLOAD_LIMIT (145), at most MAX_JPEG_PAYLOAD_LIMIT.
   */
  payloadLimit?: number;
}

export class JpegPacketizer {
  readonly payloadLimit: number;

  constructor(opts: JpegPacketizerOptions = {}) {
    const limit = opts.payloadLimit ?? DEFAULT_PAYLOAD_LIMIT;
    if (!Number.isInteger(limit) || limit < MIN_JPEG_PAYLOAD_LIMIT || limit > MAX_JPEG_PAYLOAD_LIMIT) {
      throw new RangeError(
        `JPEG payload limit must be an integer from ${MIN_JPEG_PAYLOAD_LIMIT} to ${MAX_JPEG_PAYLOAD_LIMIT} bytes, got ${limit}`,
      );
    }
    this.payloadLimit = limit;
  }

  /**
   * The RTP payloads of one JFIF image, in order (the caller sets the marker bit on the last, as
   * RtpSender does). Throws JpegFormatError (a PacketError) for a broken file, JpegUnsupportedError
   * or JpegSizeError for one RFC 2435 cannot carry.
   */
  packetize(jpeg: Buffer): Payload[] {
    const img = parseJpeg(jpeg);
    const { scan } = img;
    if (scan.length > MAX_FRAGMENT_OFFSET) {
      throw new JpegUnsupportedError(
        `JPEG: scan of ${scan.length} bytes exceeds RFC 2435's 24-bit fragment offset: lower the quality (-q:v)`,
      );
    }
    const restart = (img.type & JPEG_TYPE_RESTART) !== 0;
    const fixed = MAIN_HEADER_BYTES + (restart ? RESTART_HEADER_BYTES : 0);

    // The main (and restart) header is the same in every packet but the offset: build it once.
    const template = Buffer.alloc(fixed);
    template[0] = 0; // type-specific: 0, a progressively scanned frame (§3.1.1)
    template[4] = img.type;
    template[5] = Q_DYNAMIC;
    template[6] = img.width / JPEG_DIMENSION_UNIT;
    template[7] = img.height / JPEG_DIMENSION_UNIT;
    if (restart) {
      template.writeUInt16BE(img.restartInterval, MAIN_HEADER_BYTES);
      template.writeUInt16BE(RESTART_FIRST_LAST | RESTART_COUNT_UNALIGNED, MAIN_HEADER_BYTES + 2);
    }

    const out: Payload[] = [];
    let offset = 0;
    while (offset < scan.length) {
      const first = offset === 0;
      const headerBytes = fixed + (first ? QTABLE_HEADER_BYTES + QTABLE_BYTES : 0);
      const header = Buffer.allocUnsafe(headerBytes);
      template.copy(header);
      header.writeUIntBE(offset, 1, 3);
      if (first) {
        header[fixed] = 0; // MBZ
        header[fixed + 1] = 0; // precision: bit i clear = table i has 8-bit entries
        header.writeUInt16BE(QTABLE_BYTES, fixed + 2);
        img.quantTables[0].copy(header, fixed + QTABLE_HEADER_BYTES);
        img.quantTables[1].copy(header, fixed + QTABLE_HEADER_BYTES + BLOCK_SIZE);
      }
      const take = Math.min(this.payloadLimit - headerBytes, scan.length - offset);
      out.push([header, scan.subarray(offset, offset + take)]);
      offset += take;
    }
    return out;
  }
}
