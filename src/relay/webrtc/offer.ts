/**
 * A browser's WHEP offer (draft-ietf-wish-whep §4.2: the viewer offers, the relay answers), cut
 * down to what the relay forwards as it is, before the peer connection reads it:
 *
 * - picture: the one payload format the stream's codec picks (Codec.webrtcFormat: for H.264, the
 *   profile that decodes the stream, packetization-mode=1). Chromium offers H.264 five ways besides
 *   VP8, VP9 and AV1, and the peer connection would take the first of the list, whatever its mode.
 * - sound: Opus at 48 kHz (RFC 7587), the only sound udpcast sends; kept for a stream without sound
 *   too (a browser takes a silent track as it is, and sound may start later).
 * - every other payload type (RTX, RED, ULPFEC, the other codecs) is left out of the m-line with its
 *   rtpmap, fmtp and rtcp-fb lines: the relay repairs loss from its own history (NACK), not RTX.
 * - a media section of another kind (a data channel), or a second picture, is rejected: port 0
 *   (RFC 3264 §6).
 * - ICE candidates: at most MAX_CANDIDATES, none with an mDNS name (`….local`, which browsers give
 *   instead of their addresses): resolving one would take a multicast socket per candidate, and the
 *   browser's own checks reach the relay anyway (a peer-reflexive candidate, RFC 8445 §7.3.1.3).
 *
 * Pure text in, text out; what it cannot use is an error a person can read.
 */
import type { OfferedFormat } from '../../codecs/codec.ts';

/** ICE candidates of an offer kept at most: a browser gives a few per interface; more only makes the relay probe addresses for someone. */
export const MAX_CANDIDATES = 16;

export type Narrowed = { sdp: string; video: number; audio?: number } | { error: string };

/** `pickVideo`: the stream's codec's choice among the offered formats of the picture. */
export function narrowOffer(offer: string, pickVideo: (offered: readonly OfferedFormat[]) => number | undefined): Narrowed {
  const lines = offer.split(/\r?\n/).filter((l) => l.length > 0);
  const firstMedia = lines.findIndex((l) => l.startsWith('m='));
  if (!lines[0]?.startsWith('v=') || firstMedia < 0) return { error: 'the offer is no SDP with a media section' };
  const sections: string[][] = [];
  for (const l of lines.slice(firstMedia)) {
    if (l.startsWith('m=')) sections.push([l]);
    else sections[sections.length - 1].push(l);
  }
  let video: number | undefined;
  let audio: number | undefined;
  let candidates = 0;
  const out = lines.slice(0, firstMedia);
  for (const s of sections) {
    const kind = /^m=(\w+) /.exec(s[0])?.[1];
    const formats = offeredFormats(s);
    let keep: number | undefined;
    if (kind === 'video' && video === undefined) keep = video = pickVideo(formats);
    else if (kind === 'audio' && audio === undefined) keep = audio = formats.find((f) => f.name === 'opus' && f.clockRate === 48000)?.payloadType;
    const kept = (keep === undefined ? rejected(s) : onlyFormat(s, keep)).filter((l) => {
      if (!l.startsWith('a=candidate:')) return true;
      const address = l.split(' ')[4] ?? '';
      return !address.toLowerCase().endsWith('.local') && ++candidates <= MAX_CANDIDATES;
    });
    out.push(...kept);
  }
  if (video === undefined) {
    return { error: 'the browser offers no picture format that takes this stream as it is (udpcast forwards it without transcoding)' };
  }
  return { sdp: out.join('\r\n') + '\r\n', video, audio };
}

/** The payload formats of one media section: its a=rtpmap lines, each with its a=fmtp. */
export function offeredFormats(section: readonly string[]): OfferedFormat[] {
  const formats = new Map<number, OfferedFormat & { fmtp: Map<string, string> }>();
  for (const l of section) {
    const rtpmap = /^a=rtpmap:(\d{1,3}) ([^/\s]+)\/(\d+)/.exec(l);
    if (rtpmap) formats.set(Number(rtpmap[1]), { payloadType: Number(rtpmap[1]), name: rtpmap[2].toLowerCase(), clockRate: Number(rtpmap[3]), fmtp: new Map() });
  }
  for (const l of section) {
    const fmtp = /^a=fmtp:(\d{1,3}) (.*)$/.exec(l);
    const f = fmtp && formats.get(Number(fmtp[1]));
    if (!f) continue;
    for (const kv of fmtp[2].split(';')) {
      const [k, v = ''] = kv.split('=');
      f.fmtp.set(k.trim().toLowerCase(), v.trim());
    }
  }
  return [...formats.values()];
}

/** A media section with only payload type `pt` on its m-line and in its per-format attributes. */
function onlyFormat(section: readonly string[], pt: number): string[] {
  const [m, ...rest] = section;
  return [
    [...m.split(' ').slice(0, 3), String(pt)].join(' '),
    ...rest.filter((l) => {
      const per = /^a=(?:rtpmap|fmtp|rtcp-fb):(\d+|\*) /.exec(l);
      return !per || per[1] === '*' || Number(per[1]) === pt;
    }),
  ];
}

/** A media section the relay has nothing for: port 0 (RFC 3264 §6), the rest as it was. */
function rejected(section: readonly string[]): string[] {
  const [m, ...rest] = section;
  return [m.replace(/^(m=\w+ )\d+/, '$10'), ...rest];
}
