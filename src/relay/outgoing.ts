/**
 * The stream as a receiver outside udpcast takes it: an RTSP player of the relay (rtsp/server.ts),
 * a server the relay pushes to (rtsp/push.ts), a browser (webrtc/). All get the same shaping, kept
 * per receiver here:
 * - the picture as one RTP source: the relay moves a viewer to another quality layer when the
 *   sharer pauses one, and each layer has its own SSRC and numbers, which a player would take for
 *   a new source or for old packets; so the first SSRC stays and the numbers go on;
 * - the sound once (a move to another layer's cache brings the sound alongside it again), as plain
 *   Opus (RFC 7587): a sharer's RED packet (RFC 2198) is cut to its primary block;
 * - each sender report on the RTCP of the track it is about, the picture's under the SSRC the
 *   receiver knows (the layers share one clock).
 */
import { PT_OPUS, PT_RED, VIDEO_CLOCK_RATE, isAudioPayloadType } from '../defaults.ts';
import { parseRed } from '../codecs/opus/red.ts';
import { isRtp, parseRtp, rtpPayloadType, rtpSequence, rtpSsrc, rtpTimestamp, serializeRtpToBuffer, setRtpSequence, setRtpSsrc, setRtpTimestamp } from '../rtp/packet.ts';
import { seqDiff, tsAdd, tsDiff } from '../rtp/seq.ts';
import { parseRtcp, serializeRtcp, type RtcpPacket, type SenderReport } from '../transport/rtcp.ts';
import type { StreamState, ViewerState } from './routing.ts';

/**
 * How far apart the catch-up pictures are stamped (see catchUpStamps), in RTP time: 1 ms, the
 * least a recorder with a millisecond time base (Matroska) keeps in order.
 */
const CATCH_UP_STEP = VIDEO_CLOCK_RATE / 1000;
/** A catch-up picture that is not in the cache seen at the join (a retransmission): this much nearer the edge. */
const CATCH_UP_COMPRESS = 10;

export class OutgoingStream {
  /** The picture's source as the relay sends it now (a layer's SSRC). */
  videoSsrc?: number;
  /** The picture as the receiver sees it: its first SSRC, and the offset that keeps numbers going. */
  private videoOut?: { ssrc: number; offset: number; last: number; sourceFrom: number };
  /** The sound's source, and the newest of its packets sent. */
  audioSsrc?: number;
  private audioSeq?: number;

  /**
   * While a joiner is caught up: the picture's RTP time at the join (the live edge), and the
   * sound's. Older pictures (the cached keyframe and what followed it) are stamped closer to the
   * edge (catchUpStamps), older sound is left out; see nextPicture() and nextSound().
   */
  private videoEdge?: number;
  private audioEdge?: number;
  private catchUp?: Map<number, number>;

  /** The SSRCs the relay sends now (at the join), so the first sender report reaches its track. */
  constructor(videoSsrc?: number, audioSsrc?: number) {
    this.videoSsrc = videoSsrc;
    this.audioSsrc = audioSsrc;
  }

  /**
   * For a player that joined `stream` just now as `viewer` (RelayCore.attach): the SSRCs the relay
   * sends it, and the live edge its catch-up is brought up to.
   */
  static joining(stream: StreamState | undefined, viewer: ViewerState | undefined): OutgoingStream {
    const o = new OutgoingStream(viewer?.lane.ssrc ?? stream?.ssrc, stream?.sound.ssrc);
    const lane = viewer?.lane ?? stream;
    o.videoEdge = lane?.lastTs;
    const cached = lane?.keyframes.frame ?? [];
    o.catchUp = catchUpStamps(cached, o.videoEdge);
    const sound = cached.filter((p) => isRtp(p) && isAudioPayloadType(rtpPayloadType(p)));
    o.audioEdge = sound.length ? rtpTimestamp(sound.at(-1)!) : undefined;
    return o;
  }

  /** Pictures older than the live edge at the join are still to come (the catch-up is not over). */
  get catchingUp(): boolean {
    return this.videoEdge !== undefined;
  }

  /**
   * A picture packet as the player gets it: picture(), a catch-up picture stamped nearer the edge.
   * A repair of a catch-up picture, even after the catch-up, gets the time it was first sent with
   * (a picture of two times would be two broken pictures to the player).
   */
  nextPicture(data: Buffer): Buffer {
    const stamp = this.catchUp?.get(rtpTimestamp(data));
    if (stamp !== undefined) return this.picture(data, withTimestamp(data, stamp));
    return this.picture(data, this.videoEdge === undefined ? data : this.caughtUp(data));
  }

  /**
   * A sound packet as the player gets it: plain Opus, once; undefined for one to leave out. The
   * cached sound from before the join is left out: a player plays sound as it comes, so it would
   * start that far behind and stay there. It hears from the join on.
   */
  nextSound(data: Buffer): Buffer | undefined {
    if (!this.soundIsNew(data)) return undefined;
    if (this.audioEdge !== undefined) {
      if (rtpSsrc(data) === this.audioSsrc && tsDiff(this.audioEdge, rtpTimestamp(data)) <= 0) return undefined;
      this.audioEdge = undefined; // past the edge, or another source of sound (its times are its own)
    }
    return this.sound(data);
  }

  /**
   * A picture of the catch-up (older than the live edge at the join), stamped just before the edge
   * (catchUpStamps): a player paces pictures by their times and would otherwise show the second or
   * so since the cached keyframe at its own pace, and stay that far behind (ffplay speeds its clock
   * up by at most 1%, or, with its picture as the clock, never). Pictures at the edge or newer end
   * the catch-up.
   */
  private caughtUp(data: Buffer): Buffer {
    const ts = rtpTimestamp(data);
    const behind = tsDiff(ts, this.videoEdge!);
    if (behind <= 0) {
      this.videoEdge = undefined; // the stamps stay, for repairs: at most a GOP of them
      return data;
    }
    return withTimestamp(data, tsAdd(this.videoEdge!, -Math.ceil(behind / CATCH_UP_COMPRESS)));
  }

  /**
   * A picture packet as the receiver gets it: `out` (`orig`, or a copy of it already changed)
   * under the first SSRC, numbered on from the packets before. Never writes `orig`: it is every
   * viewer's, and the history's.
   */
  picture(orig: Buffer, out = orig): Buffer {
    const ssrc = rtpSsrc(orig);
    const seq = rtpSequence(orig);
    if (!this.videoOut) this.videoOut = { ssrc, offset: 0, last: seq, sourceFrom: seq };
    else if (ssrc !== this.videoSsrc) {
      this.videoOut.offset = (this.videoOut.last + 1 - seq) & 0xffff;
      this.videoOut.sourceFrom = (this.videoOut.last + 1) & 0xffff;
    }
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

  /**
   * A picture sequence number as the receiver got it → the relay's, under videoSsrc (to answer its
   * NACK); undefined for one sent before the current source (another layer's: not in its history).
   */
  sourceSequence(seq: number): number | undefined {
    const o = this.videoOut;
    if (!o || seqDiff(o.sourceFrom, seq) < 0) return undefined;
    return (seq - o.offset) & 0xffff;
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

  /** The sender reports of a sharer's RTCP datagram about the tracks this receiver gets, each with its track. */
  senderReports(data: Buffer): Array<{ kind: 'video' | 'audio'; report: SenderReport }> {
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(data);
    } catch {
      return [];
    }
    const out: Array<{ kind: 'video' | 'audio'; report: SenderReport }> = [];
    for (const p of packets) {
      if (p.type !== 'sr') continue;
      if (p.ssrc === this.videoSsrc) out.push({ kind: 'video', report: p });
      else if (p.ssrc === this.audioSsrc) out.push({ kind: 'audio', report: p });
    }
    return out;
  }

  /** The sender reports of a sharer's RTCP datagram, each for its track, the picture's under the SSRC the receiver knows. */
  reports(data: Buffer): Array<{ kind: 'video' | 'audio'; data: Buffer }> {
    return this.senderReports(data).map(({ kind, report }) => ({
      kind,
      data: serializeRtcp([kind === 'video' && this.videoOut ? { ...report, ssrc: this.videoOut.ssrc } : report]),
    }));
  }
}

/** A copy of an RTP packet with another timestamp: the original is every viewer's and the history's. */
function withTimestamp(data: Buffer, timestamp: number): Buffer {
  const copy = Buffer.from(data);
  setRtpTimestamp(copy, timestamp);
  return copy;
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

/**
 * The times the pictures of a catch-up (`cached`, from its keyframe on) are stamped with: the last
 * before `edge` CATCH_UP_STEP before it, the one before that two steps, and so on, so the whole
 * catch-up takes as many milliseconds as it has pictures (60 for a 2 s GOP at 30 fps) and the
 * player is at the live edge at once.
 */
export function catchUpStamps(cached: readonly Buffer[], edge: number | undefined): Map<number, number> {
  const stamps = new Map<number, number>();
  if (edge === undefined) return stamps;
  const older: number[] = [];
  for (const p of cached) {
    if (!isRtp(p) || isAudioPayloadType(rtpPayloadType(p))) continue;
    const ts = rtpTimestamp(p);
    if (tsDiff(ts, edge) > 0 && older.at(-1) !== ts && !stamps.has(ts)) {
      older.push(ts);
      stamps.set(ts, 0);
    }
  }
  older.forEach((ts, i) => stamps.set(ts, tsAdd(edge, -(older.length - i) * CATCH_UP_STEP)));
  return stamps;
}
