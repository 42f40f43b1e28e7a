/**
 * Presentation times for the frames watch hands on, as pure objects driven by (frame, now).
 *
 * Two clocks for two jobs:
 * - `LiveClock`, for a player: a frame is due the moment it is whole, so its time is its arrival
 *   (ms since the first frame, in 90 kHz ticks). A frame that is already stale when it arrives (the
 *   catch-up the relay sends a joining viewer, frames released late after a long repair) keeps the
 *   previous frame's time: the decoder needs it, but a player syncing to a running clock (ffplay
 *   `-sync ext`) finds it late and drops it instead of showing the past at frame pace.
 *   The sound goes on the same timeline: a packet is due when the picture captured with it
 *   arrives (`soundDue`), read from how long live frames take from capture to here.
 * - `RecordingClock`, for files: the sender's RTP timestamps, unwrapped, so a 60 s recording lasts
 *   60 s and a freeze keeps its length; where RTP time and arrival disagree by seconds (a new
 *   sharer session starts its RTP clock at random), the arrival clock bridges the jump.
 */
import { OPUS_RATE } from '../codecs/opus/opus.ts';
import { CLOCK_SKEW_WINDOW_MS, RTP_TRUST_MS, STALE_SLACK_MS, VIDEO_CLOCK_RATE } from '../defaults.ts';
import { tsDiff } from '../rtp/seq.ts';
import { TICKS_PER_MS } from './container.ts';

/**
 * Sound is placed by the fastest live frame of this long a window (capture → arrival): a frame
 * held back by a repair or a big keyframe is late, not a new pace of the picture.
 */
const TRANSIT_WINDOW_MS = 1000;
/**
 * Sound keeps its own pace (its RTP clock) while it stays this near where the picture says it
 * belongs; further, it moves there (a gap or an overlap). Below ffplay's own correction threshold
 * (one 2048-sample SDL buffer, 33.3 ms at the player's 61439 Hz), so the player never stretches it to follow.
 */
const SOUND_SLACK_MS = 30;

/** An Opus packet as the clock needs it (ReceivedAudio). */
export interface PlacedSound {
  /** Its RTP timestamp (48 kHz). */
  timestamp: number;
  /** The picture's RTP timestamp (90 kHz) of the instant its first sample was captured. */
  videoTimestamp: number;
}

export interface StampedFrame {
  /** Capture → now, in ms, when the sender's clock mapping (RTCP SR) is known. */
  latencyMs?: number;
  /** RTP timestamp (90 kHz): a live frame's says when sound captured with it is due. */
  timestamp?: number;
}

export class LiveClock {
  private start?: number;
  private last = 0;
  /** Frames stamped stale since the clock was made. */
  stale = 0;
  /** Recent (arrival, latency) pairs, for the clock-skew fallback; at most one window long. */
  private recent: { at: number; latencyMs: number }[] = [];
  private firstAt?: number;
  /** The RTP timestamp live frames' transits are read against, and when that frame came. */
  private ref?: { rtp: number; at: number };
  /** Recent live frames: arrival minus RTP time since `ref` (ms), the frame's transit plus a constant. */
  private transit: { at: number; ms: number }[] = [];
  /** Where the last sound was placed, to keep the next at its pace. */
  private sound?: { timestamp: number; at: number };

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
    else {
      this.last = Math.max(this.last, Math.round((now - this.start) * TICKS_PER_MS));
      if (frame.timestamp !== undefined) this.live(frame.timestamp, now);
    }
    return { pts: this.last, stale };
  }

  /**
   * When (on the `now` clock, ms) the picture captured with `videoTimestamp` arrives, or arrived:
   * where sound captured then belongs. Undefined before a live frame, or for a timestamp of
   * another sharer session (RTP_TRUST_MS away).
   */
  soundDue(videoTimestamp: number, now: number): number | undefined {
    if (!this.ref || this.transit.length === 0) return undefined;
    let fastest = Infinity;
    for (const t of this.transit) fastest = Math.min(fastest, t.ms);
    const due = fastest + tsDiff(this.ref.rtp, videoTimestamp) / TICKS_PER_MS;
    return Math.abs(due - now) > RTP_TRUST_MS ? undefined : due;
  }

  /**
   * Where one sound packet plays (ms, the `now` clock), given where it should: after the last one
   * at its own pace (its RTP clock) while that stays within SOUND_SLACK_MS of `target`, else at
   * `target` (but after the last). A sharer's sound is continuous; arrival jitter must not become
   * jumps in its times.
   */
  placeSound(packet: PlacedSound, target: number): number {
    const prev = this.sound;
    const paced = prev && prev.at + (tsDiff(prev.timestamp, packet.timestamp) * 1000) / OPUS_RATE;
    // Moved back, it still comes after the last packet's start: times in a track only increase.
    const at = paced !== undefined && paced > prev!.at && Math.abs(paced - target) <= SOUND_SLACK_MS ? paced : Math.max(target, prev ? prev.at + 1 : target);
    this.sound = { timestamp: packet.timestamp, at };
    return at;
  }

  /** A time on the `now` clock as this clock's 90 kHz ticks (undefined before the first frame). */
  ticksAt(ms: number): number | undefined {
    return this.start === undefined ? undefined : Math.round((ms - this.start) * TICKS_PER_MS);
  }

  private live(rtp: number, now: number): void {
    // A new sharer session starts its RTP clock anywhere: its frames' transits start again.
    if (!this.ref || Math.abs(tsDiff(this.ref.rtp, rtp) / TICKS_PER_MS - (now - this.ref.at)) > RTP_TRUST_MS) {
      this.ref = { rtp, at: now };
      this.transit = [];
    }
    this.transit.push({ at: now, ms: now - tsDiff(this.ref.rtp, rtp) / TICKS_PER_MS });
    while (this.transit.length > 1 && this.transit[0].at < now - TRANSIT_WINDOW_MS) this.transit.shift();
  }

  /**
   * A new player: its time starts again at zero (the skew history and frames' transits stay: the
   * clocks are the same), and its sound starts afresh.
   */
  reset(): void {
    this.start = undefined;
    this.last = 0;
    this.sound = undefined;
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
