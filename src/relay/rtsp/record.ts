/**
 * A stream published into the relay by another tool over RTSP (ANNOUNCE, SETUP with
 * mode=record, RECORD: `ffmpeg -f rtsp`, OBS): its packets made into what a udpcast share sends,
 * so the relay's cache, history and layers, and watch, take them like any other.
 *
 * - Payload types: the publisher's dynamic numbers (from its SDP) become udpcast's own (the
 *   codec's, and Opus's PT_OPUS), which is how the relay and watch tell a picture from sound.
 * - SSRCs: one chosen here per track at SETUP, so the relay knows the picture's before any packet.
 * - Decoder configuration given only in the SDP (H.264 copied from MP4: sprop-parameter-sets) is
 *   sent in-band before each keyframe (Codec.inBandConfig); the packets after it are numbered on.
 * - Sender reports are kept (under the SSRC chosen here); other RTCP is not passed on.
 * - A track udpcast does not carry (AAC or PCM sound, a second picture) is set up, so the
 *   publisher goes on, and its packets are counted and dropped.
 *
 * Numbering after an inserted packet assumes packets come in order (they do over TCP; over UDP a
 * packet reordered across a keyframe gets a number one off, which a viewer takes as a loss).
 */
import { randomBytes } from 'node:crypto';
import { MAX_DATAGRAM, PT_OPUS } from '../../defaults.ts';
import { codecOfRtpmap } from '../../codecs/registry.ts';
import { RTP_FIXED_HEADER, isRtp, rtpPayloadOffset, rtpSequence, rtpSsrc, rtpTimestamp, serializeRtpToBuffer } from '../../rtp/packet.ts';
import { parseRtcp, serializeRtcp, type RtcpPacket } from '../../transport/rtcp.ts';
import type { AnnouncedTrack } from './sdp.ts';

export interface RecordTrack {
  announced: AnnouncedTrack;
  kind: 'video' | 'audio';
  /** The payload type its packets get here; undefined: udpcast does not carry it. */
  payloadTypeOut?: number;
  ssrcOut: number;
  /** The publisher's own SSRC, once a packet came. */
  ssrcIn?: number;
  /** Packets inserted so far (numbers after them move on by this many). */
  inserted: number;
  prefix?: (payload: Buffer, timestamp: number) => Buffer[];
  /** Packets of it that were not passed on (not carried, or not RTP of its payload type). */
  dropped: number;
  /** SETUP done for it. */
  setUp: boolean;
  /** Its newest sender report, under ssrcOut. */
  lastSr?: RtcpPacket;
}

/** What an ANNOUNCE declared; undefined when it has no picture udpcast carries (and why). */
export function recordTracks(announced: AnnouncedTrack[]): { tracks: RecordTrack[]; notCarried: string[] } | { error: string } {
  const tracks: RecordTrack[] = [];
  const notCarried: string[] = [];
  let video = false;
  let audio = false;
  for (const a of announced) {
    const t: RecordTrack = { announced: a, kind: a.media === 'audio' ? 'audio' : 'video', ssrcOut: randomBytes(4).readUInt32BE(0), inserted: 0, dropped: 0, setUp: false };
    const name = a.encoding || `payload type ${a.payloadType}`;
    if (a.media === 'video' && !video) {
      const c = codecOfRtpmap(a.encoding, a.payloadType);
      if (c) {
        video = true;
        t.payloadTypeOut = c.payloadType;
        t.prefix = c.inBandConfig?.(a.fmtp, MAX_DATAGRAM - RTP_FIXED_HEADER);
      } else notCarried.push(`picture in ${name}`);
    } else if (a.media === 'audio' && !audio && a.encoding === 'OPUS' && a.clockRate === 48000) {
      audio = true;
      t.payloadTypeOut = PT_OPUS;
    } else notCarried.push(`${a.media} in ${name}`);
    tracks.push(t);
  }
  if (!video) return { error: announced.some((a) => a.media === 'video') ? `its picture is not in a codec udpcast carries (${notCarried.join(', ')})` : 'it has no picture' };
  return { tracks, notCarried };
}

/** The packets to feed the relay for one RTP packet of `t` (none when it is not carried). */
export function recordRtp(t: RecordTrack, buf: Buffer): Buffer[] {
  const offset = rtpPayloadOffset(buf);
  if (t.payloadTypeOut === undefined || !isRtp(buf) || offset > buf.length || (buf[1] & 0x7f) !== t.announced.payloadType) {
    t.dropped++;
    return [];
  }
  t.ssrcIn = rtpSsrc(buf);
  const seq = rtpSequence(buf);
  const out: Buffer[] = [];
  for (const payload of t.prefix?.(buf.subarray(offset), rtpTimestamp(buf)) ?? []) {
    out.push(
      serializeRtpToBuffer({
        padding: 0, marker: false, payloadType: t.payloadTypeOut, sequenceNumber: (seq + t.inserted) & 0xffff, timestamp: rtpTimestamp(buf), ssrc: t.ssrcOut, csrc: [], payload,
      }),
    );
    t.inserted++;
  }
  const copy = Buffer.from(buf); // the caller's buffer may be a slice of a TCP chunk
  copy[1] = (copy[1] & 0x80) | t.payloadTypeOut;
  copy.writeUInt16BE((seq + t.inserted) & 0xffff, 2);
  copy.writeUInt32BE(t.ssrcOut, 8);
  out.push(copy);
  return out;
}

/**
 * A publisher's RTCP on track `on`: when it brings a sender report about a track udpcast carries, the
 * newest report of every such track in one compound, under their SSRCs here (a udpcast share sends
 * them so, and the relay keeps one compound for its joiners: each track's clock mapping must be in
 * it, while a publisher such as FFmpeg reports each track apart). Undefined otherwise. Without a
 * packet: that compound as it stands, to send again.
 */
export function recordRtcp(tracks: readonly RecordTrack[], on: RecordTrack | undefined, buf: Buffer | undefined): Buffer | undefined {
  let fresh = buf === undefined;
  if (buf && on) {
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(buf);
    } catch {
      return undefined;
    }
    for (const p of packets) {
      if (p.type !== 'sr') continue;
      // FFmpeg reports before its first packet: a report on a track's own channel is that track's.
      if (on.ssrcIn === undefined) on.ssrcIn = p.ssrc;
      const t = tracks.find((x) => x.ssrcIn === p.ssrc && x.payloadTypeOut !== undefined);
      if (!t) continue;
      t.lastSr = { ...p, ssrc: t.ssrcOut, reports: [] };
      fresh = true;
    }
  }
  const ordered = [...tracks].sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'video' ? -1 : 1)).flatMap((t) => (t.lastSr ? [t.lastSr] : []));
  return fresh && ordered.length ? serializeRtcp(ordered) : undefined;
}

/** The track a SETUP's URI names: its a=control, relative to the URI the stream was announced at, or absolute. */
export function trackOfUri(tracks: readonly RecordTrack[], announcedUri: string, uri: string): RecordTrack | undefined {
  const path = (u: string) => u.split('?')[0].replace(/^rtsps?:\/\/[^/]*/i, '').replace(/\/$/, '');
  const base = path(announcedUri);
  const wanted = path(uri);
  return tracks.find((t) => {
    const c = t.announced.control;
    if (!c || c === '*') return tracks.length === 1 && wanted === base;
    return (/^rtsps?:\/\//i.test(c) ? path(c) : `${base}/${c}`) === wanted;
  });
}
