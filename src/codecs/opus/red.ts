/**
 * Redundant audio (RFC 2198): each RTP packet carries the newest Opus packet and copies of the one
 * or two before it, so a viewer that lost a packet takes its sound from the next one that came.
 * Unlike Opus's in-band FEC (a coarser copy the decoder itself must be asked for, and only in its
 * SILK and hybrid modes), RED gives back the very bytes that were lost: a recording or a player fed
 * a container gets them without decoding anything here.
 *
 * Payload (RFC 2198 §3): a 4-byte header per redundant block, oldest first, a 1-byte header for
 * the primary block, then the blocks in the same order:
 *
 *      0                   1                   2                   3
 *      0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |1|   block PT  |  timestamp offset         |   block length    |
 *     +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *     |0|   block PT  |  redundant block(s) …, then the primary block …
 *     +-+-+-+-+-+-+-+-+
 *
 * The timestamp offset (14 bits) is how far the block's timestamp lies before the packet's; the
 * block length (10 bits) counts its bytes. A block that does not fit those fields is not sent as
 * redundancy.
 */
import { PacketError, need } from '../../util/errors.ts';

/** The largest timestamp offset and block length RFC 2198's header fields can state. */
export const RED_MAX_TS_OFFSET = (1 << 14) - 1;
export const RED_MAX_BLOCK_BYTES = (1 << 10) - 1;
const F_BIT = 0x80;
const PT_MASK = 0x7f;

/** One block of a RED payload: a view into the packet. */
export interface RedBlock {
  payloadType: number;
  /** The block's own RTP timestamp. */
  timestamp: number;
  data: Buffer;
  /** True for the packet's newest block, false for a redundant copy. */
  primary: boolean;
}

/** An earlier block to repeat: its timestamp's distance before the primary's, and its bytes. */
export interface RedundantBlock {
  tsOffset: number;
  data: Buffer;
}

/** Whether `block` can be stated in a RED header (RFC 2198 §3's 14- and 10-bit fields). */
export function fitsRed(block: RedundantBlock): boolean {
  return block.tsOffset >= 0 && block.tsOffset <= RED_MAX_TS_OFFSET && block.data.length <= RED_MAX_BLOCK_BYTES;
}

/**
 * The RED payload for `primary` with `redundant` blocks (oldest first; each must fit, see fitsRed),
 * as chunks for the RTP sender: the headers, then the blocks themselves, not copied.
 */
export function redPayload(payloadType: number, primary: Buffer, redundant: readonly RedundantBlock[]): Buffer[] {
  const head = Buffer.alloc(redundant.length * 4 + 1);
  let at = 0;
  for (const r of redundant) {
    if (!fitsRed(r)) throw new RangeError(`RED block of ${r.data.length} bytes at offset ${r.tsOffset} does not fit RFC 2198's fields`);
    head[at] = F_BIT | (payloadType & PT_MASK);
    head.writeUIntBE(((r.tsOffset << 10) | r.data.length) >>> 0, at + 1, 3);
    at += 4;
  }
  head[at] = payloadType & PT_MASK;
  return [head, ...redundant.map((r) => r.data), primary];
}

/**
 * The blocks of a RED payload with RTP timestamp `timestamp`, oldest first, the primary last.
 * Throws PacketError when the headers run past the payload or state more bytes than it holds.
 */
export function parseRed(payload: Buffer, timestamp: number): RedBlock[] {
  const heads: Array<{ payloadType: number; tsOffset: number; length: number }> = [];
  let at = 0;
  for (;;) {
    need('RED block header', payload.length - at, 1);
    if (!(payload[at] & F_BIT)) break;
    need('RED block header', payload.length - at, 4);
    const rest = payload.readUIntBE(at + 1, 3);
    heads.push({ payloadType: payload[at] & PT_MASK, tsOffset: rest >>> 10, length: rest & RED_MAX_BLOCK_BYTES });
    at += 4;
  }
  const primaryType = payload[at] & PT_MASK;
  at += 1;
  const blocks: RedBlock[] = [];
  for (const h of heads) {
    if (at + h.length > payload.length) {
      throw new PacketError(`RED block of ${h.length} bytes at byte ${at} runs past the payload (${payload.length} bytes)`);
    }
    blocks.push({ payloadType: h.payloadType, timestamp: (timestamp - h.tsOffset) >>> 0, data: payload.subarray(at, at + h.length), primary: false });
    at += h.length;
  }
  blocks.push({ payloadType: primaryType, timestamp: timestamp >>> 0, data: payload.subarray(at), primary: true });
  return blocks;
}
