/**
 * Presentation times for the frames watch hands on, as pure objects driven by (frame, now).
 *
 * Two clocks for two jobs:
 * - `LiveClock`, for a player: a frame is due the moment it is whole, so its time is its arrival
 *   (ms since the first frame, in 90 kHz ticks). A frame that is already stale when it arrives (the
 *   catch-up the relay sends a joining viewer, frames released late after a long repair) keeps the
 *   previous frame's time: the decoder needs it, but a player syncing to a running clock (ffplay
 *   `-sync ext`) finds it late and drops it instead of showing the past at frame pace.
 * - `RecordingClock`, for files: the sender's RTP timestamps, unwrapped, so a 60 s recording lasts
 *   60 s and a freeze keeps its length; where RTP time and arrival disagree by seconds (a new
 *   sharer session starts its RTP clock at random), the arrival clock bridges the jump.
 */
import { CLOCK_SKEW_WINDOW_MS, RTP_TRUST_MS, STALE_SLACK_MS, VIDEO_CLOCK_RATE } from '../defaults.ts';
import { tsDiff } from '../rtp/seq.ts';
import { TICKS_PER_MS } from './container.ts';


export interface StampedFrame {
  /** Capture → now, in ms, when the sender's clock mapping (RTCP SR) is known. */
  latencyMs?: number;
}

export class LiveClock {
  private start?: number;
  private last = 0;
  /** Frames stamped stale since the clock was made. */
  stale = 0;
  /** Recent (arrival, latency) pairs, for the clock-skew fallback; at most one window long. */
  private recent: { at: number; latencyMs: number }[] = [];
  private firstAt?: number;

  /**
   * The frame's time in 90 kHz ticks, and whether it is stale. `now` is a monotonic clock in ms;
   * `budgetMs` is how long a repair may hold frames back (the viewer's latency budget).
   *
   * Latency is read against the sharer's clock, so a viewer whose clock is ahead sees every frame
   * as late. When every frame of a whole CLOCK_SKEW_WINDOW_MS looked stale, the best latency of
   * that window stands in for zero.
   */
  stamp(frame: StampedFrame, now: number, budgetMs: number): { pts: number; stale: boolean } {
    this.start ??= now;
    this.firstAt ??= now;
    let stale = false;
    if (frame.latencyMs !== undefined) {
      this.recent.push({ at: now, latencyMs: frame.latencyMs });
      while (this.recent.length && this.recent[0].at < now - CLOCK_SKEW_WINDOW_MS) this.recent.shift();
      const limit = budgetMs + STALE_SLACK_MS;
      let best = Infinity;
      for (const r of this.recent) best = Math.min(best, r.latencyMs);
      const skewed = now - this.firstAt >= CLOCK_SKEW_WINDOW_MS && best > limit;
      stale = frame.latencyMs - (skewed ? best : 0) > limit;
    }
    if (stale) this.stale++;
    else this.last = Math.max(this.last, Math.round((now - this.start) * TICKS_PER_MS));
    return { pts: this.last, stale };
  }

  /** A new player: its time starts again at zero (the skew history stays: the clocks are the same). */
  reset(): void {
    this.start = undefined;
    this.last = 0;
  }
}

export class RecordingClock {
  private last?: { rtp: number; pts: number; at: number };

  /**
   * Where `rtpTimestamp` falls on the frames' timeline, read from the last frame stamped, without
   * moving it: the sound's packets, which come between frames. Undefined before the first frame.
   */
  at(rtpTimestamp: number): number | undefined {
    return this.last && this.last.pts + tsDiff(this.last.rtp, rtpTimestamp);
  }

  /** The frame's time in 90 kHz ticks from the first frame, always increasing. */
  stamp(rtpTimestamp: number, now: number): number {
    const prev = this.last;
    let pts = 0;
    if (prev) {
      const byRtp = tsDiff(prev.rtp, rtpTimestamp);
      const byArrival = (now - prev.at) * TICKS_PER_MS;
      const trusted = Math.abs(byRtp - byArrival) <= (RTP_TRUST_MS * VIDEO_CLOCK_RATE) / 1000;
      pts = prev.pts + Math.max(0, Math.round(trusted ? byRtp : byArrival));
      // The same picture again: a move to another quality layer starts with its keyframe of the
      // picture the old layer just gave. A millisecond later, so times in the file strictly increase.
      if (pts <= prev.pts) pts = prev.pts + TICKS_PER_MS;
    }
    this.last = { rtp: rtpTimestamp, pts, at: now };
    return pts;
  }
}
