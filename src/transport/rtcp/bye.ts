/**
 * Goodbye, RFC 3550 §6.6 (PT=203, count = SC):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
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
import { PacketError, need } from '../../util/errors.ts';
import { RTCP_BYE, align4, checkCount, sized, u32, type Plan } from './header.ts';

export interface Bye {
  type: 'bye';
  ssrcs: number[];
  reason?: string;
}

export function parseBye(sc: number, body: Buffer, at: string): Bye {
  need(`${at}: BYE body with ${sc} SSRCs`, body.length, sc * 4);
  const ssrcs: number[] = [];
  for (let i = 0; i < sc; i++) ssrcs.push(body.readUInt32BE(i * 4));
  const o = sc * 4;
  if (o === body.length) return { type: 'bye', ssrcs };
  const len = body[o];
  need(`${at}: BYE reason of ${len} bytes`, body.length - o - 1, len);
  return { type: 'bye', ssrcs, reason: body.toString('utf8', o + 1, o + 1 + len) };
}

export function planBye(p: Bye): Plan {
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
