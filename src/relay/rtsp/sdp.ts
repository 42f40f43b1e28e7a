/**
 * The session descriptions RTSP exchanges (RFC 8866): the one the relay serves for a stream it
 * carries (DESCRIBE, and what it ANNOUNCEs when it pushes a stream to another server), and the one
 * a publisher ANNOUNCEs to the relay.
 */
import { PT_OPUS, isAudioPayloadType } from '../../defaults.ts';
import { isRtp, rtpPayloadType } from '../../rtp/packet.ts';
import { readRoc } from '../../transport/secure.ts';
import type { StreamState } from '../routing.ts';
import { cachedPicture } from '../picture.ts';

/** Track numbers in the SDP the relay writes (a=control:trackID=N). */
export const VIDEO_TRACK = 0;
export const AUDIO_TRACK = 1;

/**
 * Whether a stream's pictures are end-to-end encrypted (share --encrypt): its packets carry the
 * sender's rollover counter in the clear (transport/secure/media.ts). A player outside udpcast has
 * no key: the relay says so rather than serve it ciphertext.
 */
export function streamEncrypted(stream: StreamState | undefined): boolean {
  const frame = stream?.publisher ? stream.keyframes.frame : undefined;
  const video = frame?.find((p) => isRtp(p) && !isAudioPayloadType(rtpPayloadType(p)));
  if (!video) return false;
  try {
    return readRoc(video) !== undefined;
  } catch {
    return true; // a malformed element of that kind: not something a player reads either
  }
}

/** The SDP of a stream the relay carries now, from its own packets; undefined when it has no keyframe yet. */
export function describeStream(stream: StreamState | undefined, direction: 'recvonly' | 'sendonly' = 'recvonly'): string | undefined {
  const picture = cachedPicture(stream);
  if (!stream || !picture) return undefined;
  const { codec: c, payloads } = picture;
  const fmtp = c.fmtp?.(c.sdpParams?.(payloads) ?? {});
  const lines = ['v=0', `o=- ${Date.now()} 1 IN IP4 0.0.0.0`, `s=udpcast ${stream.name}`, 'c=IN IP4 0.0.0.0', 't=0 0', 'a=control:*', 'a=range:npt=now-'];
  lines.push(`m=video 0 RTP/AVP ${c.payloadType}`, `a=rtpmap:${c.payloadType} ${c.rtpmapName}/${c.clockRate}`);
  if (fmtp) lines.push(`a=fmtp:${c.payloadType} ${fmtp}`);
  lines.push(`a=control:trackID=${VIDEO_TRACK}`, `a=${direction}`);
  if (stream.sound.ssrc !== undefined) {
    // RFC 7587 §7: always opus/48000/2, whatever is coded.
    lines.push(`m=audio 0 RTP/AVP ${PT_OPUS}`, `a=rtpmap:${PT_OPUS} opus/48000/2`, `a=fmtp:${PT_OPUS} sprop-stereo=1`, `a=control:trackID=${AUDIO_TRACK}`, `a=${direction}`);
  }
  return lines.join('\r\n') + '\r\n';
}

/** One media section of an announced SDP. */
export interface AnnouncedTrack {
  media: string;
  payloadType: number;
  /** From a=rtpmap (upper case), or '' for a static payload type without one. */
  encoding: string;
  clockRate: number;
  channels: number;
  /** a=fmtp's parameters for that payload type, as written. */
  fmtp: string;
  /** a=control, as written ('' when absent). */
  control: string;
}

/** Most media sections an ANNOUNCE may describe; a publisher has a picture and perhaps sound. */
export const MAX_ANNOUNCED_TRACKS = 8;

/**
 * The media sections of an SDP a publisher ANNOUNCEs (the first payload type of each). Lines that
 * are not understood are skipped, as RFC 8866 §5 asks; undefined when the text is no SDP at all.
 */
export function parseAnnounce(text: string): AnnouncedTrack[] | undefined {
  const lines = text.split(/\r?\n/);
  if (!lines[0]?.startsWith('v=0')) return undefined;
  const tracks: AnnouncedTrack[] = [];
  let t: AnnouncedTrack | undefined;
  for (const line of lines) {
    const m = /^m=(\w+) \d+(?:\/\d+)? [\w/]+ (\d{1,3})/.exec(line);
    if (m) {
      if (tracks.length >= MAX_ANNOUNCED_TRACKS) return tracks;
      t = { media: m[1].toLowerCase(), payloadType: Number(m[2]), encoding: '', clockRate: 0, channels: 1, fmtp: '', control: '' };
      tracks.push(t);
      continue;
    }
    if (!t) continue;
    const rtpmap = /^a=rtpmap:(\d+) ([\w.-]+)\/(\d+)(?:\/(\d+))?/.exec(line);
    if (rtpmap && Number(rtpmap[1]) === t.payloadType) {
      t.encoding = rtpmap[2].toUpperCase();
      t.clockRate = Number(rtpmap[3]);
      t.channels = rtpmap[4] ? Number(rtpmap[4]) : 1;
    }
    const fmtp = /^a=fmtp:(\d+) (.*)$/.exec(line);
    if (fmtp && Number(fmtp[1]) === t.payloadType) t.fmtp = fmtp[2].trim();
    const control = /^a=control:(.*)$/.exec(line);
    if (control) t.control = control[1].trim();
  }
  return tracks;
}
