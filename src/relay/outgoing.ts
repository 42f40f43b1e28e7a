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
 *   receiver knows (the layers share one clock);
 * - picture times that never step back: a joiner's catch-up stamped just before the live edge
 *   (catchUpStamps; a browser's as it is sent, sendingStamp), and a move onto another layer's
 *   cached keyframe (RelayCore.moveViewer: its pictures are up to a GOP older than the last one
 *   sent) stamped CATCH_UP_STEP apart after the newest sent (a browser's as it is sent, if later),
 *   until its own times pass that (a source further behind is a new sharer's clock, left as it
 *   comes). libwebrtc's frame buffer skips a picture older than the last it decoded
 *   (frame_buffer2.cc, FindNextFrame): a browser would not decode that cached keyframe, nor
 *   anything after it until the next one; a recorder would see time go back;
 * - for a player whose parser holds a picture until the next begins (libavformat), the next
 *   picture's delimiter as soon as a picture ends (pictureEnd; the RTSP server asks for it).
 */
import { PT_OPUS, PT_RED, VIDEO_CLOCK_RATE, isAudioPayloadType } from '../defaults.ts';
import { parseRed } from '../codecs/opus/red.ts';
import { isRtp, parseRtp, rtpMarker, rtpPayloadType, rtpSequence, rtpSsrc, rtpTimestamp, serializeRtpToBuffer, setRtpSequence, setRtpSsrc, setRtpTimestamp } from '../rtp/packet.ts';
import { seqDiff, tsAdd, tsDiff } from '../rtp/seq.ts';
import { parseRtcp, serializeRtcp, type RtcpPacket, type SenderReport } from '../transport/rtcp.ts';
import type { Lane, StreamState, ViewerState } from './routing.ts';

/**
 * How far apart the catch-up pictures are stamped (see catchUpStamps), in RTP time: 1 ms, the
 * least a recorder with a millisecond time base (Matroska) keeps in order.
 */
const CATCH_UP_STEP = VIDEO_CLOCK_RATE / 1000;
/** A catch-up picture that is not in the cache seen at the join (a retransmission): this much nearer the edge. */
const CATCH_UP_COMPRESS = 10;
/**
 * A move's replay: how far behind the newest picture sent a new source's pictures may be to be
 * taken for another layer's cache (30 s, past any cache a move replays). Further behind, or
 * ahead, it is a new clock (a new sharer: its time base is its own) and its times pass as they come.
 */
const REPLAY_MAX_TICKS = 30 * VIDEO_CLOCK_RATE;
/** Pictures of a replay stamped (their repairs get the same): 30 s at 60 fps; past it, times pass as they come. */
const RESTAMPED_MAX = 1800;
/**
 * pictureEnd: live pictures whose times went up in a row before a delimiter is sent (1 s at 30 fps):
 * a publisher's B-frames take its times back within a few pictures, so it never gets one. The
 * intervals between them, the last this many, give the next picture's expected time.
 */
const DELIMIT_AFTER = 30;
/** pictureEnd: no delimiter after a gap between pictures longer than this (1 s): the next picture's time is anybody's guess. */
const DELIMIT_MAX_INTERVAL = VIDEO_CLOCK_RATE;
/**
 * A browser's catch-up (sendingStamp): a picture whose own time is no more than this behind the
 * live picture's as it is sent is live (3 ms: the clock read a tick after the picture came).
 */
const LIVE_SLACK = 3 * CATCH_UP_STEP;
/** liveTime: how long the live picture's time runs on from the newest picture's without a newer one (1 s). */
const LIVE_RUN_ON_MS = 1000;
/** Delimiters remembered, so a late packet of a picture before one keeps the number it had (2 s at 30 fps). */
const DELIMITED_KEPT = 64;

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
   * edge (catchUpStamps), older sound is left out; see nextPicture() and nextSound(). For a
   * browser (liveNow) videoEdge only says the catch-up goes on: its pictures are stamped as sent.
   */
  private videoEdge?: number;
  private audioEdge?: number;
  private catchUp?: Map<number, number>;
  /** A browser's: the live picture's RTP time now (liveTime); its catch-up is stamped as it is sent (sendingStamp). */
  private liveNow?: () => number | undefined;
  /** The newest picture time sent (as the receiver got it), and the newest sequence number of the current source. */
  private newestStamp?: number;
  private newestSourceSeq?: number;
  /** The first number of the current source sent: a packet of it from before (sent ahead of a layer move, repaired since) is not this player's. */
  private sourceFirstSeq?: number;
  /**
   * After a change of source (another layer), while its pictures are not newer than the last
   * stamp given: that stamp. Only then are times changed: within one source they may go back
   * (B-frames from a publisher's own encoder) and are left as they come.
   */
  private replayAfter?: number;
  /** The current source's pictures so stamped, by their own time: their other packets and repairs get the same. */
  private restamped = new Map<number, number>();
  /**
   * pictureEnd's: the source it is about, its last picture's time, the intervals between its live
   * pictures since their times last failed to go up, and the last delimiter's time.
   */
  private delimiting: { source?: number; last?: number; intervals: number[]; stamp?: number } = { intervals: [] };
  /**
   * The delimiters sent since the source changed, oldest first (DELIMITED_KEPT): the source number
   * of the picture packet each followed, the numbering's offset before it, and its own number. A
   * packet of an earlier picture that comes late is numbered with the offset of its time.
   */
  private delimited: Array<{ after: number; offset: number; seq: number }> = [];

  /** The SSRCs the relay sends now (at the join), so the first sender report reaches its track. */
  constructor(videoSsrc?: number, audioSsrc?: number) {
    this.videoSsrc = videoSsrc;
    this.audioSsrc = audioSsrc;
  }

  /**
   * For a player that joined `stream` just now as `viewer` (RelayCore.attach): the SSRCs the relay
   * sends it, and the live edge its catch-up is brought up to. `liveNow`, for a browser: its
   * catch-up is stamped as it is sent (sendingStamp), not before the edge (catchUpStamps).
   */
  static joining(stream: StreamState | undefined, viewer: ViewerState | undefined, liveNow?: () => number | undefined): OutgoingStream {
    const o = new OutgoingStream(viewer?.lane.ssrc ?? stream?.ssrc, stream?.sound.ssrc);
    const lane = viewer?.lane ?? stream;
    o.videoEdge = lane?.lastTs;
    const cached = lane?.keyframes.frame ?? [];
    o.liveNow = liveNow;
    o.catchUp = liveNow ? new Map() : catchUpStamps(cached, o.videoEdge);
    const sound = cached.filter((p) => isRtp(p) && isAudioPayloadType(rtpPayloadType(p)));
    o.audioEdge = sound.length ? rtpTimestamp(sound.at(-1)!) : undefined;
    return o;
  }

  /**
   * A picture packet as the player gets it: picture(), a catch-up picture stamped nearer the edge.
   * A repair of a catch-up picture, even after the catch-up, gets the time it was first sent with
   * (a picture of two times would be two broken pictures to the player). Undefined for a packet
   * not to send: one of the current source from before it became this player's (its number would
   * land among the source before's), and with `freshOnly` any older than the newest sent (a
   * player that reads packets in the order they come, as FFmpeg does over RTSP/TCP, would splice
   * a late one into the picture it is on).
   */
  nextPicture(data: Buffer, freshOnly = false): Buffer | undefined {
    const ts = rtpTimestamp(data);
    const ssrc = rtpSsrc(data);
    const seq = rtpSequence(data);
    // Newer than what was sent of its source (the first of a new source is): not a repair.
    const fresh = ssrc !== this.videoSsrc || this.newestSourceSeq === undefined || seqDiff(this.newestSourceSeq, seq) > 0;
    if (!fresh && (freshOnly || (this.sourceFirstSeq !== undefined && seqDiff(this.sourceFirstSeq, seq) < 0))) return undefined;
    if (fresh && (ssrc !== this.videoSsrc || this.sourceFirstSeq === undefined)) this.sourceFirstSeq = seq;
    if (ssrc !== this.videoSsrc) {
      // Repairs are of the current source only (sourceSequence): the stamps of the source before,
      // a joiner's catch-up's among them, are not this one's (the same times may be in both).
      this.restamped.clear();
      if (this.videoSsrc !== undefined) this.catchUp = this.videoEdge = undefined;
      this.replayAfter = this.newestStamp;
    }
    if (fresh) this.newestSourceSeq = seq;
    // A time stamped before is looked up for a repair, or while its catch-up or replay goes on
    // (its other packets): a new picture of the same time 13 h later (the clock wraps) is not it.
    let stamp = !fresh || this.videoEdge !== undefined ? this.catchUp?.get(ts) : undefined;
    if (stamp === undefined && this.videoEdge !== undefined) {
      // A browser's: only a new picture is stamped (a late packet of one never sent keeps its time).
      if (!this.liveNow) stamp = this.caughtUpStamp(ts);
      else if (fresh) stamp = this.sendingStamp(ts);
    }
    if (stamp === undefined && (!fresh || this.replayAfter !== undefined)) stamp = this.restamped.get(ts);
    if (stamp === undefined && fresh && this.replayAfter !== undefined) {
      const behind = tsDiff(ts, this.replayAfter);
      if (behind >= 0 && behind < REPLAY_MAX_TICKS && this.restamped.size < RESTAMPED_MAX) {
        // Not newer than a picture already sent: the new source's cache, or a picture of the
        // same instant as the old source's last. A browser's: the live time as it is sent, if
        // that is later (the reason is sendingStamp's).
        let next = tsAdd(this.replayAfter, CATCH_UP_STEP);
        const live = this.liveNow?.();
        if (live !== undefined && tsDiff(next, live) > 0 && tsDiff(next, live) < REPLAY_MAX_TICKS) next = live;
        stamp = this.replayAfter = next;
        this.restamped.set(ts, stamp);
      } else {
        this.replayAfter = undefined; // its own times are past the stamps given (or another clock): as they come
      }
    }
    const out = stamp ?? ts;
    if (fresh && (this.newestStamp === undefined || tsDiff(this.newestStamp, out) > 0)) this.newestStamp = out;
    return this.picture(data, out === ts ? data : withTimestamp(data, out));
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
  private caughtUpStamp(ts: number): number | undefined {
    const behind = tsDiff(ts, this.videoEdge!);
    if (behind <= 0) {
      this.videoEdge = undefined; // the stamps stay, for repairs: at most a GOP of them
      return undefined;
    }
    return tsAdd(this.videoEdge!, -Math.ceil(behind / CATCH_UP_COMPRESS));
  }

  /**
   * A picture sent to a browser while it is caught up (the cached keyframe, the pictures after it
   * and the live ones queued behind them): stamped with the live picture's time as it is sent
   * (liveNow), at least CATCH_UP_STEP after the last stamp, so its time and its arrival agree as
   * a live picture's do. libwebrtc times a picture's playout from its RTP time and the arrivals of
   * the pictures before it; stamped 1 ms apart before the edge (catchUpStamps) but paced out over
   * 350 ms, a catch-up's pictures arrived up to 306 ms late for their times and the live ones after
   * it 233 ms early, and Chromium then sent every picture to its decoder at once (0 ms in its
   * jitter buffer against a target of 13-88 ms): its lip sync, which delays the picture to meet the
   * sound, had no effect and the sound stayed 80-140 ms after its picture. A picture that reaches
   * the live time (within LIVE_SLACK) after the last stamp ends the catch-up: from it on, times
   * pass as they come. Undefined: that picture's own time.
   */
  private sendingStamp(ts: number): number | undefined {
    const after = this.newestStamp;
    const stamp = stepAfter(after, this.liveNow!() ?? ts);
    const live = tsDiff(stamp, ts) >= -LIVE_SLACK && (after === undefined || tsDiff(after, ts) >= CATCH_UP_STEP);
    if (live) {
      this.videoEdge = undefined;
      return undefined;
    }
    if (this.catchUp!.size >= RESTAMPED_MAX) {
      // Bounded: pictures that never reach the live time (a sharer's clock slower than the
      // relay's) go on as a replay does, 1 ms apart after the newest, never back.
      this.videoEdge = undefined;
      this.replayAfter = after;
      return undefined;
    }
    this.catchUp!.set(ts, stamp);
    return stamp;
  }

  /**
   * After the last packet of a picture (`sent`, as sent: its marker bit set), for a player whose
   * parser holds each picture until the next one's first bytes come (libavformat's H.264 parser:
   * a picture a frame interval late, 33 ms at 30 fps): the next picture's `delimiter`
   * (Codec.nextPictureDelimiter) as a packet of its own, numbered on, so the parser hands this
   * picture on at once. libavformat gives a picture the time of the packet it begins in, the
   * delimiter's, so that is stamped with the time the next picture is expected: this one's plus
   * the shortest of the last DELIMIT_AFTER intervals (a picture the encoder skipped does not put
   * the next one late), at least 1 ms after the last delimiter's. Only after DELIMIT_AFTER live
   * pictures whose times went up: a source whose times go back (B-frames) gets none, as its next
   * time cannot be told. Undefined: nothing to send.
   */
  pictureEnd(sent: Buffer, delimiter: Buffer): Buffer | undefined {
    const o = this.videoOut;
    if (!o || !rtpMarker(sent) || rtpSequence(sent) !== o.last) return undefined;
    if (this.delimiting.source !== this.videoSsrc) this.delimiting = { source: this.videoSsrc, intervals: [] };
    const d = this.delimiting;
    // A catch-up or a replay is stamped 1 ms apart: its intervals (and the one to the first live
    // picture after it) say nothing of the live ones.
    const live = this.videoEdge === undefined && this.replayAfter === undefined;
    const ts = rtpTimestamp(sent);
    const before = d.last;
    d.last = live ? ts : undefined;
    const interval = live && before !== undefined ? tsDiff(before, ts) : 0;
    // Times that do not go up (B-frames, a clock stepping back) or a long gap: count again.
    if (interval <= 0 || interval > DELIMIT_MAX_INTERVAL) {
      d.intervals = [];
      return undefined;
    }
    d.intervals.push(interval);
    if (d.intervals.length > DELIMIT_AFTER) d.intervals.shift();
    if (d.intervals.length < DELIMIT_AFTER) return undefined;
    const stamp = (d.stamp = stepAfter(d.stamp, tsAdd(ts, Math.min(...d.intervals))));
    // The next picture begins at this time for the player: a replay after a move starts after it.
    if (this.newestStamp === undefined || tsDiff(this.newestStamp, stamp) > 0) this.newestStamp = stamp;
    const seq = (o.last + 1) & 0xffff;
    this.delimited.push({ after: (o.last - o.offset) & 0xffff, offset: o.offset, seq });
    if (this.delimited.length > DELIMITED_KEPT) this.delimited.shift();
    o.last = seq;
    o.offset = (o.offset + 1) & 0xffff;
    return serializeRtpToBuffer({ padding: 0, marker: false, payloadType: rtpPayloadType(sent), sequenceNumber: seq, timestamp: stamp, ssrc: o.ssrc, csrc: [], payload: delimiter });
  }

  /** The numbering's offset for source packet `seq` of the current source: the one before each delimiter that followed it. */
  private offsetOf(seq: number): number {
    let offset = this.videoOut!.offset;
    for (let i = this.delimited.length - 1; i >= 0 && seqDiff(this.delimited[i].after, seq) <= 0; i--) offset = this.delimited[i].offset;
    return offset;
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
      this.delimited = [];
    }
    this.videoSsrc = ssrc;
    const o = this.videoOut;
    const offset = this.delimited.length ? this.offsetOf(seq) : o.offset;
    const outSeq = (seq + offset) & 0xffff;
    if (seqDiff(o.last, outSeq) > 0) o.last = outSeq;
    if (ssrc === o.ssrc && offset === 0) return out;
    const copy = out === orig ? Buffer.from(orig) : out;
    setRtpSequence(copy, outSeq);
    setRtpSsrc(copy, o.ssrc);
    return copy;
  }

  /**
   * A picture sequence number as the receiver got it → the relay's, under videoSsrc (to answer its
   * NACK); undefined for one sent before the current source (another layer's: not in its history),
   * and for a delimiter pictureEnd sent (no packet of the relay's).
   */
  sourceSequence(seq: number): number | undefined {
    const o = this.videoOut;
    if (!o || seqDiff(o.sourceFrom, seq) < 0) return undefined;
    let offset = o.offset;
    for (let i = this.delimited.length - 1; i >= 0; i--) {
      const d = this.delimited[i];
      if (seqDiff(d.seq, seq) > 0) break;
      if (d.seq === seq) return undefined;
      offset = d.offset;
    }
    return (seq - offset) & 0xffff;
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

/** `stamp`, or CATCH_UP_STEP after `prev` when it is not that far after it: times a player keeps in order. */
function stepAfter(prev: number | undefined, stamp: number): number {
  return prev !== undefined && tsDiff(prev, stamp) < CATCH_UP_STEP ? tsAdd(prev, CATCH_UP_STEP) : stamp;
}

/**
 * The RTP time of `lane`'s live picture at `now` (the relay's clock): its newest picture's, plus
 * the time since that picture's first packet came, for at most LIVE_RUN_ON_MS.
 */
export function liveTime(lane: Pick<Lane, 'liveTs' | 'liveTsAt'>, now: number): number | undefined {
  if (lane.liveTs === undefined) return undefined;
  const sinceMs = Math.min(Math.max(now - lane.liveTsAt, 0), LIVE_RUN_ON_MS);
  return tsAdd(lane.liveTs, Math.round(sinceMs * (VIDEO_CLOCK_RATE / 1000)));
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
