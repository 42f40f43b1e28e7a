/**
 * Paces datagrams out at a rate instead of one burst per frame: a frame's packets leave as fast as
 * the pace allows, after a burst of PACE_BURST_MS at that pace (as libwebrtc's pacer does). The
 * burst lets an ordinary frame go at once, so pacing costs no latency when the path has room.
 *
 * The pace is a factor of the congestion estimate, set by the caller: PACE_FACTOR_OPEN while no
 * limit of the path is known (a keyframe on a fast LAN is then not held back), PACE_FACTOR_LIMITED
 * once one is. A keyframe may be half a second of bitrate (the encoder's VBV, codecs/rate.ts); at
 * 1.1x a path that takes 1/0.85 of the estimate, it does not queue at the bottleneck, where at
 * libwebrtc's 2.5x half of it would, more than a 100 ms router buffer holds.
 *
 * Order is kept. The queue is bounded by PACE_MAX_QUEUE_MS at the current pace (at least
 * PACE_MIN_QUEUE datagrams): past it a datagram is dropped and counted, so a sender far above its
 * path does not build seconds of delay here instead of in the network.
 */
import { TokenBucket } from '../util/token-bucket.ts';

export const PACE_FACTOR_OPEN = 4;
export const PACE_FACTOR_LIMITED = 1.1;
/**
 * ...and never above this share of the rate the path was measured to deliver (the sharer's
 * congestion controller's known limit), which its encoder stays under (CC_MEDIA_SHARE): a keyframe
 * paced at the path's own rate would queue at its bottleneck, and read as congestion.
 */
export const PACE_LIMIT_SHARE = 0.95;
export const PACE_BURST_MS = 40;
export const PACE_MAX_QUEUE_MS = 1000;
const PACE_MIN_QUEUE = 16;
/** Never a bucket smaller than one full datagram. */
const MIN_BURST_BYTES = 1500;

export class Pacer<T extends { bytes: number }> {
  dropped = 0;
  private readonly queue: T[] = [];
  private queuedBytes = 0;
  private bucket: TokenBucket;
  private timer?: NodeJS.Timeout;

  constructor(
    /** The pace (kbit/s): the estimate times a PACE_FACTOR. */
    kbps: number,
    private readonly send: (item: T) => void,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.bucket = Pacer.bucket(kbps, this.now());
  }

  private static bucket(kbps: number, now: number, tokens?: number): TokenBucket {
    const rate = (kbps * 1000) / 8; // bytes per second
    const burst = Math.max(MIN_BURST_BYTES, (rate * PACE_BURST_MS) / 1000);
    return new TokenBucket(rate, burst, now, tokens === undefined ? burst : Math.min(burst, tokens));
  }

  /** The pace (kbit/s) from now on. */
  setRate(kbps: number): void {
    const now = this.now();
    this.bucket = Pacer.bucket(kbps, now, this.bucket.refill(now));
  }

  get queued(): number {
    return this.queue.length;
  }

  push(item: T, first = false): void {
    const limit = Math.max(PACE_MIN_QUEUE * MIN_BURST_BYTES, (this.bucket.rate * PACE_MAX_QUEUE_MS) / 1000);
    if (this.queuedBytes + item.bytes > limit) {
      this.dropped++;
      return;
    }
    if (first) this.queue.unshift(item);
    else this.queue.push(item);
    this.queuedBytes += item.bytes;
    this.drain();
  }

  /** Drops everything queued, counted in `dropped` (a circuit breaker stopped media). */
  clear(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.dropped += this.queue.length;
    this.queue.length = 0;
    this.queuedBytes = 0;
  }

  /** Sends everything still queued at once (closing). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const item of this.queue.splice(0)) this.send(item);
    this.queuedBytes = 0;
  }

  private drain(): void {
    if (this.timer) return;
    const now = this.now();
    while (this.queue.length && this.bucket.refill(now) > 0) {
      const item = this.queue.shift()!;
      this.queuedBytes -= item.bytes;
      this.bucket.spend(item.bytes);
      this.send(item);
    }
    if (this.queue.length) {
      const waitMs = Math.max(1, Math.ceil((-this.bucket.tokens * 1000) / this.bucket.rate));
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.drain();
      }, waitMs);
    }
  }
}
