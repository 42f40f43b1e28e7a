/**
 * Which RTP packets begin a picture a new viewer can start from, read from the first bytes of the
 * payload without depacketizing: the relay's keyframe cache and the sharer's frame-info extension
 * (for encrypted streams, whose payloads the relay cannot read) both ask this.
 */
import { PT_H264, PT_JPEG } from '../defaults.ts';

/** NAL unit types (RFC 6184 §5.2 / H.264 Table 7-1) that mark a keyframe's first packet. */
const NAL_IDR = 5;
const NAL_SPS = 7;
const NAL_STAP_A = 24;
const NAL_FU_A = 28;
/** Where the RTP payload starts: after the fixed header, the CSRCs and any header extension. */
function rtpPayloadOffset(buf: Buffer): number {
  let o = 12 + (buf[0] & 0x0f) * 4;
  if (buf[0] & 0x10 && buf.length >= o + 4) o += 4 + buf.readUInt16BE(o + 2) * 4;
  return o;
}

/**
 * Whether a frame's first packet begins a picture a new viewer can start from: for H.264 an SPS or
 * IDR in a single-NAL, STAP-A or starting FU-A packet; for JPEG every frame.
 */
export function startsKeyframe(buf: Buffer): boolean {
  const pt = buf[1] & 0x7f;
  if (pt === PT_JPEG) return true;
  if (pt !== PT_H264) return false;
  const o = rtpPayloadOffset(buf);
  if (o >= buf.length) return false;
  const type = buf[o] & 0x1f;
  if (type === NAL_SPS || type === NAL_IDR) return true;
  if (type === NAL_FU_A) return o + 1 < buf.length && (buf[o + 1] & 0x80) !== 0 && (buf[o + 1] & 0x1f) === NAL_IDR;
  if (type === NAL_STAP_A) {
    for (let i = o + 1; i + 2 < buf.length; ) {
      const size = buf.readUInt16BE(i);
      const t = buf[i + 2] & 0x1f;
      if (t === NAL_SPS || t === NAL_IDR) return true;
      i += 2 + size;
    }
  }
  return false;
}
