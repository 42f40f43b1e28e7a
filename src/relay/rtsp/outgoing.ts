/**
 * The stream as a receiver outside udpcast takes it: an RTSP player of the relay (server.ts), or a
 * server the relay pushes to (push.ts). Both get the same shaping, kept per receiver here:
 * - the picture as one RTP source: the relay moves a viewer to another quality layer when the
 *   sharer pauses one, and each layer has its own SSRC and numbers, which a player would take for
 *   a new source or for old packets; so the first SSRC stays and the numbers go on;
 * - the sound once (a move to another layer's cache brings the sound alongside it again), as plain
 *   Opus (RFC 7587): a sharer's RED packet (RFC 2198) is cut to its primary block;
 * - each sender report on the RTCP of the track it is about, the picture's under the SSRC the
 *   receiver knows (the layers share one clock).
 */
import { PT_OPUS, PT_RED } from '../../defaults.ts';
import { parseRed } from '../../codecs/opus/red.ts';
import { parseRtp, rtpPayloadType, rtpSequence, rtpSsrc, serializeRtpToBuffer, setRtpSequence, setRtpSsrc } from '../../rtp/packet.ts';
import { seqDiff } from '../../rtp/seq.ts';
import { parseRtcp, serializeRtcp, type RtcpPacket } from '../../transport/rtcp.ts';

export class OutgoingStream {
  /** The picture's source as the relay sends it now (a layer's SSRC). */
  videoSsrc?: number;
  /** The picture as the receiver sees it: its first SSRC, and the offset that keeps numbers going. */
  private videoOut?: { ssrc: number; offset: number; last: number };
  /** The sound's source, and the newest of its packets sent. */
  audioSsrc?: number;
  private audioSeq?: number;

  /** The SSRCs the relay sends now (at the join), so the first sender report reaches its track. */
  constructor(videoSsrc?: number, audioSsrc?: number) {
    this.videoSsrc = videoSsrc;
    this.audioSsrc = audioSsrc;
  }

  /**
   * A picture packet as the receiver gets it: `out` (`orig`, or a copy of it already changed)
   * under the first SSRC, numbered on from the packets before. Never writes `orig`: it is every
   * viewer's, and the history's.
   */
  picture(orig: Buffer, out = orig): Buffer {
    const ssrc = rtpSsrc(orig);
    const seq = rtpSequence(orig);
    if (!this.videoOut) this.videoOut = { ssrc, offset: 0, last: seq };
    else if (ssrc !== this.videoSsrc) this.videoOut.offset = (this.videoOut.last + 1 - seq) & 0xffff;
    this.videoSsrc = ssrc;
    const o = this.videoOut;
    const outSeq = (seq + o.offset) & 0xffff;
    if (seqDiff(o.last, outSeq) > 0) o.last = outSeq;
    if (ssrc === o.ssrc && o.offset === 0) return out;
    const copy = out === orig ? Buffer.from(orig) : out;
    setRtpSequence(copy, outSeq);
    setRtpSsrc(copy, o.ssrc);
    return copy;
  }

  /** Whether a sound packet is newer than what was sent of its source. */
  soundIsNew(data: Buffer): boolean {
    return this.audioSsrc !== rtpSsrc(data) || this.audioSeq === undefined || seqDiff(this.audioSeq, rtpSequence(data)) > 0;
  }

  /** A new sound packet (soundIsNew), taken as sent: what to send, plain Opus; undefined when it holds none. */
  sound(data: Buffer): Buffer | undefined {
    this.audioSsrc = rtpSsrc(data);
    this.audioSeq = rtpSequence(data);
    return rtpPayloadType(data) === PT_RED ? primaryOpus(data) : data;
  }

  /** The sender reports of a sharer's RTCP datagram, each for its track. */
  reports(data: Buffer): Array<{ kind: 'video' | 'audio'; data: Buffer }> {
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(data);
    } catch {
      return [];
    }
    const out: Array<{ kind: 'video' | 'audio'; data: Buffer }> = [];
    for (const p of packets) {
      if (p.type !== 'sr') continue;
      if (p.ssrc === this.videoSsrc) out.push({ kind: 'video', data: serializeRtcp([this.videoOut ? { ...p, ssrc: this.videoOut.ssrc } : p]) });
      else if (p.ssrc === this.audioSsrc) out.push({ kind: 'audio', data: serializeRtcp([p]) });
    }
    return out;
  }
}

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
