/**
 * H.264 RTP packetizer, RFC 6184, packetization-mode 1 (non-interleaved, §6.3): single NAL unit
 * packets (§5.6), STAP-A (§5.7.1) and FU-A (§5.8).
 *
 * Single NAL unit packet (§5.6): the NAL unit as it is, header included.
 *
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |F|NRI|  Type   |                                               |
 *     +-+-+-+-+-+-+-+-+                                               |
 *     |               Bytes 2..n of a single NAL unit                 |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * STAP-A (§5.7.1, Figure 7): one header byte, then each NAL unit after its 16-bit size.
 *
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |STAP-A NAL HDR |         NALU 1 Size           | NALU 1 HDR    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                         NALU 1 Data                           |
 *     +               +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |               | NALU 2 Size                   | NALU 2 HDR    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |                         NALU 2 Data                           |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * FU-A (§5.8, Figures 14 and 15): FU indicator (F and NRI of the NAL unit, type 28), FU header
 * (Start, End, Reserved, the NAL unit's type), then a fragment of the NAL unit without its header.
 *
 *     +---------------+---------------+
 *     |F|NRI|  Type   |S|E|R|  Type   |
 *     +---------------+---------------+
 *       FU indicator     FU header
 *
 * Payloads are lists of chunks: small header buffers we write, and views (subarray) of the caller's
 * NAL units, so no NAL byte is copied before the socket.
 */
import { DEFAULT_PAYLOAD_LIMIT, MIN_PAYLOAD_LIMIT } from '../../defaults.ts';
import { FU_A_HEADER, FU_END, FU_START, NAL_FU_A, NAL_LAST_H264_TYPE, NAL_STAP_A, NAL_TYPE_MASK as TYPE_MASK } from './annexb.ts';
import { PacketError } from '../../util/errors.ts';
import type { Payload } from '../../rtp/frame.ts';

/**
 * Largest payload limit we accept: the biggest IPv4 UDP payload (65535 - 20 IP - 8 UDP = 65507)
 * minus the 12-byte RTP header. It also keeps every STAP-A NAL unit size within its 16 bits.
 */
export const MAX_PAYLOAD_LIMIT = 65507 - 12;

/** RFC 6184 §5.7.1: STAP-A header byte, then 2 size bytes before each NAL unit. */
const STAP_A_HEADER = 1;
const STAP_A_SIZE_FIELD = 2;
const F_BIT = 0x80;
const NRI_MASK = 0x60;
/** NAL unit types an encoder hands us (H.264 Table 7-1); 0 and 24-31 mean nothing to a receiver here. */
const FIRST_NAL_TYPE = 1;
const LAST_NAL_TYPE = NAL_LAST_H264_TYPE;

export interface H264PacketizerOptions {
  /**
   * Largest RTP payload in bytes. Default DEFAULT_PAYLOAD_LIMIT (1160, see defaults.ts for the MTU
   * arithmetic); at least MIN_PAYLOAD_LIMIT (64), at most MAX_PAYLOAD_LIMIT.
   */
  payloadLimit?: number;
}

export class H264Packetizer {
  readonly payloadLimit: number;

  constructor(opts: H264PacketizerOptions = {}) {
    const limit = opts.payloadLimit ?? DEFAULT_PAYLOAD_LIMIT;
    if (!Number.isInteger(limit) || limit < MIN_PAYLOAD_LIMIT || limit > MAX_PAYLOAD_LIMIT) {
      throw new RangeError(
        `H.264 payload limit must be an integer from ${MIN_PAYLOAD_LIMIT} to ${MAX_PAYLOAD_LIMIT} bytes, got ${limit}`,
      );
    }
    this.payloadLimit = limit;
  }

  /**
   * The RTP payloads for one access unit, in order (the caller sets the marker bit on the last,
   * as RtpSender does). Consecutive NAL units that fit together go into one STAP-A; a NAL unit
   * that fits alone goes as it is; a larger one is fragmented into FU-As.
   * Throws PacketError for an empty NAL unit or a type (0, 24-31) that cannot be sent as is.
   */
  packetize(nalus: Buffer[]): Payload[] {
    const out: Payload[] = [];
    let batch: Buffer[] = [];
    let batchSize = STAP_A_HEADER; // STAP-A size of `batch`

    const flush = (): void => {
      if (batch.length === 1) out.push(this.writeSingle(batch[0]));
      else if (batch.length > 1) out.push(this.writeAggregated(batch));
      batch = [];
      batchSize = STAP_A_HEADER;
    };

    for (const nalu of nalus) {
      if (nalu.length === 0) throw new PacketError('H.264: empty NAL unit (need 1 byte of header)');
      const type = nalu[0] & TYPE_MASK;
      if (type < FIRST_NAL_TYPE || type > LAST_NAL_TYPE) {
        throw new PacketError(`H.264: NAL unit type ${type} cannot be packetized (RFC 6184 Table 1 allows 1-23)`);
      }
      if (nalu.length > this.payloadLimit) {
        flush();
        this.writeFragmented(nalu, out);
        continue;
      }
      const grown = batchSize + STAP_A_SIZE_FIELD + nalu.length;
      // A lone NAL unit goes single (no STAP-A overhead), so it only has to fit the limit itself.
      if (batch.length > 0 && grown > this.payloadLimit) flush();
      batch.push(nalu);
      batchSize += STAP_A_SIZE_FIELD + nalu.length;
    }
    flush();
    return out;
  }

  /** §5.6: the NAL unit is the payload. */
  private writeSingle(nalu: Buffer): Payload {
    return [nalu];
  }

  /**
   * §5.7.1: F is the OR of the aggregated F bits; NRI is the largest aggregated NRI.
   * The header byte and all size fields share one small allocation.
   */
  private writeAggregated(nalus: Buffer[]): Payload {
    const headers = Buffer.allocUnsafe(STAP_A_HEADER + STAP_A_SIZE_FIELD * nalus.length);
    let f = 0;
    let nri = 0;
    for (const n of nalus) {
      f |= n[0] & F_BIT;
      nri = Math.max(nri, n[0] & NRI_MASK);
    }
    headers[0] = f | nri | NAL_STAP_A;
    const payload: Payload = [headers.subarray(0, STAP_A_HEADER)];
    let o = STAP_A_HEADER;
    for (const n of nalus) {
      headers.writeUInt16BE(n.length, o);
      payload.push(headers.subarray(o, o + STAP_A_SIZE_FIELD), n);
      o += STAP_A_SIZE_FIELD;
    }
    return payload;
  }

  /**
   * §5.8: the NAL unit header is not sent as such; its F and NRI go into the FU indicator and its
   * type into the FU header. The first fragment has S set, the last E set, never both (§5.8).
   */
  private writeFragmented(nalu: Buffer, out: Payload[]): void {
    const body = nalu.subarray(1);
    const room = this.payloadLimit - FU_A_HEADER;
    const count = Math.ceil(body.length / room);
    const headers = Buffer.allocUnsafe(FU_A_HEADER * count);
    const indicator = (nalu[0] & (F_BIT | NRI_MASK)) | NAL_FU_A;
    const type = nalu[0] & TYPE_MASK;
    for (let i = 0; i < count; i++) {
      const h = i * FU_A_HEADER;
      headers[h] = indicator;
      headers[h + 1] = (i === 0 ? FU_START : 0) | (i === count - 1 ? FU_END : 0) | type;
      out.push([headers.subarray(h, h + FU_A_HEADER), body.subarray(i * room, (i + 1) * room)]);
    }
  }
}
