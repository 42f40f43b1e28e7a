/**
 * RTP fixed header, RFC 3550 §5.1, with header extensions per RFC 8285.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |V=2|P|X|  CC   |M|     PT      |       sequence number         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                           timestamp                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |           synchronization source (SSRC) identifier            |
 *    +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
 *    |            contributing source (CSRC) identifiers             |
 *    |                             ....                              |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |  profile-defined (16)         |   length in 32-bit words (16) |  (if X)
 *    |                        extension data                         |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                     payload ...   | padding ... | pad count   |  (if P)
 *
 * Parsing returns views into the caller's buffer: nothing is copied, so a parsed packet is only
 * valid while that buffer is.
 */
import { PacketError, need } from '../util/errors.ts';

export const RTP_VERSION = 2;
export const RTP_FIXED_HEADER = 12;
/** RFC 8285 §4.2: the "defined by profile" value of the one-byte header form. */
export const EXT_PROFILE_ONE_BYTE = 0xbede;
/** RFC 8285 §4.3: 0x100 in the top 12 bits marks the two-byte form; the low 4 bits are app bits. */
export const EXT_PROFILE_TWO_BYTE = 0x1000;

export interface RtpHeaderExtension {
  /** The 16-bit "defined by profile" field. */
  profile: number;
  /** Extension data, a whole number of 32-bit words. */
  data: Buffer;
}

export interface RtpPacket {
  /** Padding bytes at the end, including the count byte itself; 0 when the P bit is clear. */
  padding: number;
  marker: boolean;
  payloadType: number;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
  csrc: number[];
  extension?: RtpHeaderExtension;
  payload: Buffer;
}

/** RFC 5761 §4 and RFC 3550 §5.1: version 2 and a payload type outside RTCP's 64-95 band. */
export function isRtp(buf: Buffer): boolean {
  if (buf.length < RTP_FIXED_HEADER || buf[0] >> 6 !== RTP_VERSION) return false;
  const pt = buf[1] & 0x7f;
  return pt < 64 || pt > 95;
}

/*
 * Field accessors on a raw datagram, for hot paths that route or count without parsing (the
 * relay, FEC, the keyframe test). The caller has checked isRtp (so the fixed header is there);
 * every other read of an RTP header's bytes goes through parseRtp.
 */
export const rtpMarker = (buf: Buffer): boolean => (buf[1] & 0x80) !== 0;
export const rtpPayloadType = (buf: Buffer): number => buf[1] & 0x7f;
export const rtpSequence = (buf: Buffer): number => buf.readUInt16BE(2);
export const rtpTimestamp = (buf: Buffer): number => buf.readUInt32BE(4);
export const rtpSsrc = (buf: Buffer): number => buf.readUInt32BE(8);
export const setRtpSequence = (buf: Buffer, seq: number): void => void buf.writeUInt16BE(seq & 0xffff, 2);
export const setRtpSsrc = (buf: Buffer, ssrc: number): void => void buf.writeUInt32BE(ssrc >>> 0, 8);
export const setRtpTimestamp = (buf: Buffer, ts: number): void => void buf.writeUInt32BE(ts >>> 0, 4);

/**
 * Where the payload of a raw RTP datagram starts: after the fixed header, the CSRCs and any header
 * extension. A header longer than the datagram gives its full length (beyond buf.length): the
 * caller sees no payload rather than a wrong one.
 */
export function rtpPayloadOffset(buf: Buffer): number {
  let o = RTP_FIXED_HEADER + (buf[0] & 0x0f) * 4;
  if (buf[0] & 0x10) o += buf.length >= o + 4 ? 4 + buf.readUInt16BE(o + 2) * 4 : 4;
  return o;
}

/**
 * The header's length (fixed part, CSRCs, extension), checked: a PacketError when it runs past the
 * datagram or the version is not 2. Padding is not looked at (an encrypted payload may hide it).
 */
export function checkedRtpHeaderLength(buf: Buffer): number {
  need('RTP header', buf.length, RTP_FIXED_HEADER);
  if (buf[0] >> 6 !== RTP_VERSION) throw new PacketError(`RTP: version ${buf[0] >> 6}, expected 2`);
  let o = RTP_FIXED_HEADER + (buf[0] & 0x0f) * 4;
  if (buf[0] & 0x10) {
    need('RTP extension header', buf.length, o + 4);
    o += 4 + buf.readUInt16BE(o + 2) * 4;
  }
  need('RTP header with extension', buf.length, o);
  return o;
}

/** Where the CSRC list ends: the extension (if any) starts here. */
export const rtpCsrcEnd = (buf: Buffer): number => RTP_FIXED_HEADER + (buf[0] & 0x0f) * 4;

export function parseRtp(buf: Buffer): RtpPacket {
  need('RTP header', buf.length, RTP_FIXED_HEADER);
  const b0 = buf[0];
  const version = b0 >> 6;
  if (version !== RTP_VERSION) throw new PacketError(`RTP: version ${version}, expected 2`);
  const hasPadding = (b0 & 0x20) !== 0;
  const hasExtension = (b0 & 0x10) !== 0;
  const cc = b0 & 0x0f;
  let offset = RTP_FIXED_HEADER + cc * 4;
  need(`RTP header with ${cc} CSRCs`, buf.length, offset);
  const csrc: number[] = [];
  for (let i = 0; i < cc; i++) csrc.push(buf.readUInt32BE(RTP_FIXED_HEADER + i * 4));
  let extension: RtpHeaderExtension | undefined;
  if (hasExtension) {
    need('RTP extension header', buf.length, offset + 4);
    const profile = buf.readUInt16BE(offset);
    const words = buf.readUInt16BE(offset + 2);
    const end = offset + 4 + words * 4;
    need(`RTP extension of ${words} words`, buf.length, end);
    extension = { profile, data: buf.subarray(offset + 4, end) };
    offset = end;
  }
  let end = buf.length;
  let padding = 0;
  if (hasPadding) {
    padding = buf[buf.length - 1];
    if (padding === 0) throw new PacketError(`RTP: padding bit set but pad count is 0 in a ${buf.length}-byte packet`);
    if (padding > buf.length - offset) {
      throw new PacketError(`RTP: pad count ${padding} exceeds the ${buf.length - offset} bytes after the header`);
    }
    end -= padding;
  }
  return {
    padding,
    marker: (buf[1] & 0x80) !== 0,
    payloadType: buf[1] & 0x7f,
    sequenceNumber: buf.readUInt16BE(2),
    timestamp: buf.readUInt32BE(4),
    ssrc: buf.readUInt32BE(8),
    csrc,
    extension,
    payload: buf.subarray(offset, end),
  };
}

/** Header length in bytes (fixed part, CSRCs, extension) for a packet. */
export function rtpHeaderLength(p: Pick<RtpPacket, 'csrc' | 'extension'>): number {
  return RTP_FIXED_HEADER + p.csrc.length * 4 + (p.extension ? 4 + p.extension.data.length : 0);
}

/**
 * Writes the header (and padding trailer, if any) of `p`. Returns `[header, ...payload, pad]`
 * so a caller can hand the list straight to `dgram.send` without copying the payload.
 * `payload` may be given as several chunks (FU-A header + a view of the NAL unit, say).
 */
export function serializeRtp(p: Omit<RtpPacket, 'payload'> & { payload: Buffer | Buffer[] }): Buffer[] {
  if (p.csrc.length > 15) throw new PacketError(`RTP: ${p.csrc.length} CSRCs, at most 15`);
  if (p.extension && p.extension.data.length % 4 !== 0) {
    throw new PacketError(`RTP: extension data is ${p.extension.data.length} bytes, not a multiple of 4`);
  }
  if (p.padding < 0 || p.padding > 255) throw new PacketError(`RTP: padding ${p.padding}, must be 0-255`);
  const header = Buffer.allocUnsafe(rtpHeaderLength(p));
  header[0] = (RTP_VERSION << 6) | (p.padding > 0 ? 0x20 : 0) | (p.extension ? 0x10 : 0) | p.csrc.length;
  header[1] = (p.marker ? 0x80 : 0) | (p.payloadType & 0x7f);
  header.writeUInt16BE(p.sequenceNumber & 0xffff, 2);
  header.writeUInt32BE(p.timestamp >>> 0, 4);
  header.writeUInt32BE(p.ssrc >>> 0, 8);
  let o = RTP_FIXED_HEADER;
  for (const c of p.csrc) {
    header.writeUInt32BE(c >>> 0, o);
    o += 4;
  }
  if (p.extension) {
    header.writeUInt16BE(p.extension.profile, o);
    header.writeUInt16BE(p.extension.data.length / 4, o + 2);
    p.extension.data.copy(header, o + 4);
  }
  const out = [header, ...(Array.isArray(p.payload) ? p.payload : [p.payload])];
  if (p.padding > 0) {
    const pad = Buffer.alloc(p.padding);
    pad[p.padding - 1] = p.padding;
    out.push(pad);
  }
  return out;
}

/** Serializes into one contiguous buffer (tests, and places where a copy is cheaper than a list). */
export function serializeRtpToBuffer(p: Parameters<typeof serializeRtp>[0]): Buffer {
  return Buffer.concat(serializeRtp(p));
}

/** One RFC 8285 element: a local identifier and its data. */
export interface ExtensionElement {
  id: number;
  data: Buffer;
}

/**
 * Splits an extension block into RFC 8285 elements (one-byte form, §4.2, or two-byte form, §4.3).
 * Returns views. Padding bytes (0) between elements are skipped; the one-byte form stops at id 15.
 */
export function parseExtensionElements(ext: RtpHeaderExtension): ExtensionElement[] {
  const { data } = ext;
  const out: ExtensionElement[] = [];
  if (ext.profile === EXT_PROFILE_ONE_BYTE) {
    let o = 0;
    while (o < data.length) {
      const b = data[o];
      if (b === 0) {
        o++;
        continue;
      }
      const id = b >> 4;
      if (id === 15) break; // §4.2: reserved, stop processing
      const len = (b & 0x0f) + 1;
      need(`RTP extension element ${id}`, data.length - o - 1, len);
      out.push({ id, data: data.subarray(o + 1, o + 1 + len) });
      o += 1 + len;
    }
    return out;
  }
  if ((ext.profile & 0xfff0) === EXT_PROFILE_TWO_BYTE) {
    let o = 0;
    while (o < data.length) {
      const id = data[o];
      if (id === 0) {
        o++;
        continue;
      }
      need(`RTP two-byte extension element ${id}`, data.length - o, 2);
      const len = data[o + 1];
      need(`RTP extension element ${id}`, data.length - o - 2, len);
      out.push({ id, data: data.subarray(o + 2, o + 2 + len) });
      o += 2 + len;
    }
    return out;
  }
  throw new PacketError(`RTP: extension profile 0x${ext.profile.toString(16)} is not RFC 8285`);
}

/**
 * Builds an RFC 8285 extension block. Uses the one-byte form when every element fits it
 * (id 1-14, 1-16 bytes), the two-byte form otherwise (id 1-255, 0-255 bytes). Pads to 32 bits.
 */
export function buildExtension(elements: ExtensionElement[]): RtpHeaderExtension {
  const oneByte = elements.every((e) => e.id >= 1 && e.id <= 14 && e.data.length >= 1 && e.data.length <= 16);
  const parts: Buffer[] = [];
  for (const e of elements) {
    if (oneByte) {
      parts.push(Buffer.from([(e.id << 4) | (e.data.length - 1)]), e.data);
    } else {
      if (e.id < 1 || e.id > 255 || e.data.length > 255) {
        throw new PacketError(`RTP extension element: id ${e.id} with ${e.data.length} bytes does not fit RFC 8285`);
      }
      parts.push(Buffer.from([e.id, e.data.length]), e.data);
    }
  }
  const body = Buffer.concat(parts);
  const padded = Buffer.alloc(Math.ceil(body.length / 4) * 4);
  body.copy(padded);
  return { profile: oneByte ? EXT_PROFILE_ONE_BYTE : EXT_PROFILE_TWO_BYTE, data: padded };
}
