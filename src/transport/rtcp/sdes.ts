/**
 * Source description, RFC 3550 §6.5 (PT=202, count = SC):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
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
import { PacketError, need } from '../../util/errors.ts';
import { RTCP_SDES, align4, checkCount, sized, u32, type Plan } from './header.ts';

/** RFC 3550 §6.5: SDES item types. 0 ends a chunk's item list. */
export const SDES_END = 0;
export const SDES_CNAME = 1;
export const SDES_NAME = 2;
export const SDES_TOOL = 6;

/** One SDES item (RFC 3550 §6.5): type, 8-bit length, UTF-8 text of that many bytes. */
export interface SdesItem {
  type: number;
  text: string;
}

export interface SdesChunk {
  ssrc: number;
  items: SdesItem[];
}

/** Source description, RFC 3550 §6.5 (PT=202, count = SC). */
export interface Sdes {
  type: 'sdes';
  chunks: SdesChunk[];
}

export function parseSdes(sc: number, body: Buffer, at: string): Sdes {
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

export function planSdes(p: Sdes): Plan {
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
