/**
 * The sound as a client outside udpcast takes it: a sharer's RED packet (RFC 2198) carries its
 * primary Opus block after copies of earlier ones, while RTSP players and servers read plain Opus
 * (RFC 7587). Shared by what the relay sends out over RTSP (server.ts, push.ts).
 */
import { PT_OPUS } from '../../defaults.ts';
import { parseRed } from '../../codecs/opus/red.ts';
import { parseRtp, serializeRtpToBuffer } from '../../rtp/packet.ts';

/** A RED packet as plain Opus: its primary block under the same header; undefined when it holds none. */
export function primaryOpus(data: Buffer): Buffer | undefined {
  try {
    const p = parseRtp(data);
    const primary = parseRed(p.payload, p.timestamp).at(-1);
    if (!primary || primary.payloadType !== PT_OPUS) return undefined;
    return serializeRtpToBuffer({ ...p, padding: 0, payloadType: PT_OPUS, payload: primary.data });
  } catch {
    return undefined;
  }
}
