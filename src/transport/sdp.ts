/**
 * Session descriptions (RFC 8866) for standard tools: FFmpeg, ffplay, VLC or GStreamer read one of
 * these and receive what udpcast sends without knowing anything about udpcast.
 */
import { PT_H264, PT_JPEG, VIDEO_CLOCK_RATE } from '../defaults.ts';

export interface SdpOptions {
  codec: 'h264' | 'mjpeg';
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
  const family = o.address.includes(':') ? 'IP6' : 'IP4';
  const lines = [
    'v=0',
    `o=- 0 0 IN ${family} ${o.address}`,
    `s=${o.sessionName ?? 'udpcast'}`,
    `c=IN ${family} ${o.address}`,
    't=0 0',
  ];
  if (o.codec === 'h264') {
    lines.push(`m=video ${o.port} RTP/AVP ${PT_H264}`, `a=rtpmap:${PT_H264} H264/${VIDEO_CLOCK_RATE}`);
    const fmtp = ['packetization-mode=1'];
    if (o.profileLevelId) fmtp.push(`profile-level-id=${o.profileLevelId}`);
    if (o.spropParameterSets) fmtp.push(`sprop-parameter-sets=${o.spropParameterSets}`);
    lines.push(`a=fmtp:${PT_H264} ${fmtp.join(';')}`);
  } else {
    lines.push(`m=video ${o.port} RTP/AVP ${PT_JPEG}`, `a=rtpmap:${PT_JPEG} JPEG/${VIDEO_CLOCK_RATE}`);
  }
  lines.push('a=recvonly');
  return lines.join('\r\n') + '\r\n';
}
