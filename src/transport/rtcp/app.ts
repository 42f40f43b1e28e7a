/**
 * Application-defined, RFC 3550 §6.7 (PT=204, count = subtype):
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P| subtype |   PT=APP=204  |             length            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                           SSRC/CSRC                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                          name (ASCII)                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                   application-dependent data                ...
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * udpcast's own control messages ride in APP packets (../control.ts); this file knows only the frame.
 */
import { PacketError, need } from '../../util/errors.ts';
import { MAX_COUNT, RTCP_APP, sized, u32, type Plan } from './header.ts';

export interface App {
  type: 'app';
  subtype: number;
  ssrc: number;
  /** Four ASCII characters. */
  name: string;
  /** A view when parsed; a multiple of 4 bytes. */
  data: Buffer;
}

export function parseApp(subtype: number, body: Buffer, at: string): App {
  need(`${at}: APP body (SSRC and name)`, body.length, 8);
  return {
    type: 'app',
    subtype,
    ssrc: body.readUInt32BE(0),
    name: body.toString('latin1', 4, 8),
    data: body.subarray(8),
  };
}

export function planApp(p: App): Plan {
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
