/**
 * Session descriptions (RFC 8866) for standard tools: FFmpeg, ffplay, VLC or GStreamer read one of
 * these and receive what udpcast sends without knowing anything about udpcast. The media line,
 * rtpmap and fmtp are the codec's.
 */
import { codec, type CodecName } from '../codecs/registry.ts';

export interface SdpOptions {
  codec: CodecName;
  /** Where the receiver listens. */
  address: string;
  port: number;
  /** RFC 6184 §8.1: profile-level-id as 6 hex digits (from the SPS); optional. */
  profileLevelId?: string;
  /** RFC 6184 §8.1: base64 SPS,PPS; optional, the stream repeats them in-band. */
  spropParameterSets?: string;
  sessionName?: string;
}

export function buildSdp(o: SdpOptions): string {
  const c = codec(o.codec);
  const family = o.address.includes(':') ? 'IP6' : 'IP4';
  const lines = [
    'v=0',
    `o=- 0 0 IN ${family} ${o.address}`,
    `s=${o.sessionName ?? 'udpcast'}`,
    `c=IN ${family} ${o.address}`,
    't=0 0',
    `m=video ${o.port} RTP/AVP ${c.payloadType}`,
    `a=rtpmap:${c.payloadType} ${c.rtpmapName}/${c.clockRate}`,
  ];
  const fmtp = c.fmtp?.({ profileLevelId: o.profileLevelId, spropParameterSets: o.spropParameterSets });
  if (fmtp) lines.push(`a=fmtp:${c.payloadType} ${fmtp}`);
  lines.push('a=recvonly');
  return lines.join('\r\n') + '\r\n';
}
