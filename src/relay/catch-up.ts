/**
 * Instant start for a late viewer. Without it a viewer that joins between keyframes sees nothing
 * until the next one (seconds, with a long GOP); with it, it gets the stream's last SR (the clock
 * mapping) and every media packet since the latest keyframe (JPEG: the latest frame) at once.
 * "At once" is paced, JOIN_PACE_BYTES_PER_MS after a first JOIN_BURST_BYTES, so a megabyte of
 * cache does not overflow the viewer's path, and live packets queue behind it so the viewer sees
 * one unbroken sequence.
 */
import { CATCHUP_MAX_PACKETS, JOIN_BURST_BYTES, JOIN_PACE_BYTES_PER_MS, KEYFRAME_CACHE_BYTES, MAX_DROPOUT } from '../defaults.ts';
import { rtpSequence, rtpSsrc, rtpTimestamp } from '../rtp/packet.ts';
import { seqDiff } from '../rtp/seq.ts';
import { readFrameInfo } from '../transport/secure.ts';
import { startsKeyframe } from '../transport/keyframe.ts';
import { unlessMalformed } from '../util/errors.ts';
import { TokenBucket } from '../util/token-bucket.ts';

/** Whether `buf` starts a keyframe: its frame info says so (--encrypt), else its payload (a malformed element is no frame info). */
function keyframeStart(buf: Buffer): boolean {
  return unlessMalformed(() => readFrameInfo(buf), undefined)?.keyframeStart ?? startsKeyframe(buf);
}

/** One stream's packets since its latest keyframe, and its latest SR. */
export class KeyframeCache {
  /** Undefined before the first keyframe, and after the frame outgrew KEYFRAME_CACHE_BYTES. */
  private packets?: Buffer[];
  private bytes = 0;
  /** RTP timestamp of the previous media packet: a change marks the first packet of a frame. */
  private lastTimestamp?: number;
  /** Keyframes seen: a keyframe request is answered once this moves. */
  count = 0;
  /**
   * Packets went missing on the way in since the latest keyframe began (its sequence numbers
   * jumped) and have not come since (asked for again): the picture is broken for every viewer until
   * the next keyframe, so a viewer that asks for one asks for them all (the sharer's uplink just
   * narrowed), not for its own path's losses.
   */
  get lostSinceKeyframe(): boolean {
    return this.holes > 0;
  }
  /** Sequence numbers found missing since the latest keyframe began and not come since (asked for again, uplink.ts). */
  private holes = 0;
  /** The latest keyframe's first sequence number. */
  private keyframeSeq?: number;
  /** Sequence number of the newest media packet. */
  private lastSeq?: number;
  /** The publisher's latest RTCP compound with an SR: a joining viewer gets it first. */
  private lastSr?: Buffer;

  /**
   * Per media packet of the publisher's SSRC. Only a frame's first packet is tested for a
   * keyframe; between keyframes this is a push onto an array (amortized, no allocation).
   */
  add(buf: Buffer): void {
    const seq = rtpSequence(buf);
    // Further back than MAX_DROPOUT is the sender starting over (RFC 3550 A.1): new, not late.
    if (this.lastSeq !== undefined && seqDiff(this.lastSeq, seq) <= 0 && seqDiff(this.lastSeq, seq) >= -MAX_DROPOUT) {
      this.late(buf, seq);
      return;
    }
    if (this.lastSeq !== undefined && seqDiff(this.lastSeq, seq) > 1) this.holes += Math.min(seqDiff(this.lastSeq, seq), MAX_DROPOUT) - 1;
    this.lastSeq = seq;
    const timestamp = rtpTimestamp(buf);
    const frameStart = timestamp !== this.lastTimestamp;
    this.lastTimestamp = timestamp;
    // A malformed frame-info element is no frame info: the payload still says whether it is a keyframe.
    if (frameStart && keyframeStart(buf)) {
      this.packets = [buf];
      this.bytes = buf.length;
      this.count++;
      this.keyframeSeq = seq;
      this.holes = 0; // a loss just before it was the frame before's
    } else {
      this.keep(buf);
    }
  }

  /**
   * A packet older than the newest (reordered, or asked for again from the sharer; the relay has
   * dropped copies of what it had): a hole since the keyframe filled, and put back in its place
   * among the cached packets of its source, so a joiner's replay has the frame whole. One from
   * before the cached keyframe is not kept, unless it starts a newer keyframe (its first packet
   * came late): then the cache starts there.
   */
  private late(buf: Buffer, seq: number): void {
    const sinceKeyframe = this.keyframeSeq === undefined || seqDiff(this.keyframeSeq, seq) > 0;
    if (sinceKeyframe && this.holes > 0) this.holes--;
    const packets = this.packets;
    if (!packets) return;
    const ssrc = rtpSsrc(buf);
    for (let i = packets.length - 1; i >= 0; i--) {
      const p = packets[i];
      if (rtpSsrc(p) !== ssrc) continue;
      const d = seqDiff(rtpSequence(p), seq);
      if (d === 0) return;
      if (d > 0) {
        if (sinceKeyframe && keyframeStart(buf)) {
          this.packets = [buf, ...packets.slice(i + 1)];
          this.bytes = this.packets.reduce((n, b) => n + b.length, 0);
          this.count++;
          this.keyframeSeq = seq;
          return;
        }
        if (this.bytes + buf.length > KEYFRAME_CACHE_BYTES) return;
        this.bytes += buf.length;
        packets.splice(i + 1, 0, buf);
        return;
      }
    }
  }

  /**
   * A packet of another source of the stream (its sound) since the keyframe: replayed with the
   * picture, in the order they came, so a joining viewer hears what it sees from the start.
   */
  addAlongside(buf: Buffer): void {
    this.keep(buf);
  }

  /** `buf` after the keyframe's packets, if there is a keyframe and room (KEYFRAME_CACHE_BYTES). */
  private keep(buf: Buffer): void {
    if (!this.packets) return;
    this.bytes += buf.length;
    if (this.bytes > KEYFRAME_CACHE_BYTES) {
      this.packets = undefined; // too big to replay; none until the next keyframe
      this.bytes = 0;
    } else {
      this.packets.push(buf);
    }
  }

  /** The publisher's RTCP compound `buf` carried an SR. */
  sr(buf: Buffer): void {
    this.lastSr = buf;
  }

  /** A new publisher session: nothing of the old one may be replayed. */
  clear(): void {
    this.packets = undefined;
    this.bytes = 0;
    this.lastSr = undefined;
    this.lastTimestamp = undefined;
    this.lastSeq = undefined;
    this.keyframeSeq = undefined;
    this.holes = 0;
  }

  /** Bytes a catch-up would send now (the SR aside); 0 when there is no keyframe to start from. */
  get cachedBytes(): number {
    return this.packets ? this.bytes : 0;
  }

  /** The cached packets from the latest keyframe on (the sound alongside), read-only; undefined without one. */
  get frame(): readonly Buffer[] | undefined {
    return this.packets;
  }

  /** What a viewer joining now is sent before going live; undefined when there is no keyframe to start from. */
  catchUp(now: number): CatchUp | undefined {
    if (!this.packets?.length) return undefined;
    return new CatchUp(this.lastSr ? [this.lastSr, ...this.packets] : [...this.packets], now);
  }
}

/** One joining viewer's queue: the cache, then live packets, sent at the join pace. */
export class CatchUp {
  private head = 0;
  /** In bytes: JOIN_PACE_BYTES_PER_MS, bursts of JOIN_BURST_BYTES. */
  private readonly pace: TokenBucket;

  constructor(
    private readonly queue: Buffer[],
    now: number,
  ) {
    this.pace = new TokenBucket(JOIN_PACE_BYTES_PER_MS * 1000, JOIN_BURST_BYTES, now);
  }

  /** Queues a live packet behind the cache. False when the queue is over CATCHUP_MAX_PACKETS: this pace cannot catch up, go live now. */
  queueLive(buf: Buffer): boolean {
    this.queue.push(buf);
    return this.queue.length - this.head <= CATCHUP_MAX_PACKETS;
  }

  /** The packets due by `now`: while the pace has credit, whole datagrams (the last may overdraw it). */
  due(now: number): Buffer[] {
    const out: Buffer[] = [];
    this.pace.refill(now);
    while (this.head < this.queue.length && this.pace.tokens > 0) {
      const data = this.queue[this.head++];
      this.pace.spend(data.length);
      out.push(data);
    }
    return out;
  }

  /** Something is sent: the SR the queue opens with, when there is one, is out. */
  get started(): boolean {
    return this.head > 0;
  }

  /** Everything is sent: the viewer can go live. */
  get done(): boolean {
    return this.head >= this.queue.length;
  }

  /** Whatever is still queued, for a viewer that goes live before it is done. */
  rest(): Buffer[] {
    const rest = this.queue.slice(this.head);
    this.head = this.queue.length;
    return rest;
  }
}
