/**
 * Which RTP packets begin a picture a new viewer can start from, read from the first bytes of the
 * payload without depacketizing: the relay's keyframe cache and the sharer's frame-info extension
 * (for encrypted streams, whose payloads the relay cannot read) both ask this. The answer is the
 * codec's (Codec.startsKeyframe), found by payload type.
 */
import { codecOfPayloadType } from '../codecs/registry.ts';
import { rtpPayloadOffset, rtpPayloadType } from '../rtp/packet.ts';

/** Whether an RTP packet (a frame's first) begins a keyframe; false for a payload type no codec has. */
export function startsKeyframe(buf: Buffer): boolean {
  const c = codecOfPayloadType(rtpPayloadType(buf));
  if (!c) return false;
  const o = rtpPayloadOffset(buf);
  return c.startsKeyframe(o < buf.length ? buf.subarray(o) : Buffer.alloc(0));
}
