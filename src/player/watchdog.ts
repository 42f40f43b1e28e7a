/**
 * Is the player keeping up? A pure object driven by what ffplay says about itself and by our
 * writes to it, with the clock passed in.
 *
 * ffplay with `-stats` prints a status line every 30 ms while it refreshes its window, starting
 * with its master clock in seconds (`   12.34 M-V:  0.003 fd=   2 …`). That gives two signs:
 * - **stalled**: no status line for PLAYER_STALL_MS (paused with `p`, stopped, starved of CPU), or
 *   what we wrote left unread that long (its queues are full);
 * - **lagging**: its clock runs behind ours by more than PLAYER_LAG_MS compared with the best it
 *   did since it started. Its clock is the external one (`-sync ext`), which stops while paused
 *   and does not catch up afterwards: a player resumed after a pause shows frames late for good.
 */

import { PLAYER_LAG_MS, PLAYER_STALL_MS, PLAYER_STARTUP_GRACE_MS, PLAYER_STARTUP_STALL_MS } from '../defaults.ts';

export type PlayerHealth = 'starting' | 'live' | 'stalled' | 'lagging';

/**
 * ffplay's status line: the master clock ('nan' before the first picture), then "M-V:" for video
 * only or "A-V:" with a sound track (then the sound's clock minus the picture's, 'nan' before sound).
 */
const STATUS_LINE = /^\s*(nan|-?\d+(?:\.\d+)?)\s+([AM])-V:\s*(nan|-?\d+(?:\.\d+)?).*\bfd=\s*(\d+)/;
const STATUS_LINE_NO_CLOCK = /^\s*nan\s+:/;
/**
 * The context an FFmpeg log line starts with (`[matroska,webm @ 0x7f78a8000c80] `). av_log writes
 * it and the message in separate writes, and ffplay prints its status line with a bare fprintf
 * from another thread, so a status line can land between the two (seen in CI: a demuxer's warning
 * split around one). What follows such a context is read as a line of its own.
 */
const LOG_CONTEXT = /^(?:\[[^\]]* @ 0x[0-9a-f]+\] ?)+/;

/**
 * The master clock (seconds, NaN before the first picture), frames dropped, and the sound's clock
 * minus the picture's (A-V, seconds; NaN without sound or before it plays), or undefined for any
 * other line.
 */
export function parseStatusLine(raw: string): { clockSec: number; dropped: number; avSec: number } | undefined {
  const line = raw.replace(LOG_CONTEXT, '');
  const m = STATUS_LINE.exec(line);
  if (m) return { clockSec: m[1] === 'nan' ? NaN : Number(m[1]), dropped: Number(m[4]), avSec: m[2] === 'A' && m[3] !== 'nan' ? Number(m[3]) : NaN };
  if (STATUS_LINE_NO_CLOCK.test(line)) return { clockSec: NaN, dropped: 0, avSec: NaN };
  return undefined;
}

export class PlayerWatchdog {
  /** How far the player's clock is behind, against the best it did (ms), from its latest line. */
  lagMs = 0;
  /** Frames the player itself dropped as late (its `fd=`). */
  dropped = 0;
  /**
   * Our clock minus the player's (ms) at its best: where on its clock something due at our `now`
   * plays. The clock is printed to 10 ms, so this reads up to 5 ms early. Undefined before its
   * first picture.
   */
  get clockOffsetMs(): number | undefined {
    return Number.isFinite(this.bestOffset) ? this.bestOffset : undefined;
  }
  private lastStatus?: number;
  /** When the last status line really arrived (`excuse` moves lastStatus, never this). */
  private lastLine?: number;
  /** When the player last read all we wrote. */
  private drainedAt?: number;
  private bestOffset = Infinity;
  private blockedSince?: number;

  /** `startedAt`: when the player was started, on the same clock as every `now` given later. */
  constructor(private readonly startedAt: number) {}

  /** A status line arrived at `now`. Lines come in order, so the latest one says where the player is. */
  status(clockSec: number, dropped: number, now: number): void {
    this.lastStatus = now;
    this.lastLine = now;
    this.dropped = dropped;
    if (Number.isNaN(clockSec)) return;
    const offset = now - clockSec * 1000;
    this.bestOffset = Math.min(this.bestOffset, offset);
    this.lagMs = offset - this.bestOffset;
  }

  /** A write was left in our buffer (the pipe is full). */
  blocked(now: number): void {
    this.blockedSince ??= now;
  }

  /** The player read everything we wrote (at `now`). */
  drained(now: number): void {
    this.blockedSince = undefined;
    this.drainedAt = now;
  }

  /**
   * Watch itself was held up (its event loop ran late): the player's lines and reads may be
   * waiting unhandled, so silence up to `now` is not held against it.
   */
  excuse(now: number): void {
    if (this.lastStatus !== undefined) this.lastStatus = now;
    if (this.blockedSince !== undefined) this.blockedSince = now;
  }

  check(now: number): PlayerHealth {
    const stallMs = now - this.startedAt < PLAYER_STARTUP_GRACE_MS ? PLAYER_STARTUP_STALL_MS : PLAYER_STALL_MS;
    if (this.lastStatus !== undefined && now - this.lastStatus > stallMs) return 'stalled';
    // Before its first line a player may still be opening its window: unread writes count only
    // after a grace.
    const spoke = this.lastStatus !== undefined || now - this.startedAt > PLAYER_STARTUP_GRACE_MS;
    if (spoke && this.blockedSince !== undefined && now - this.blockedSince > stallMs) return 'stalled';
    if (this.lagMs > PLAYER_LAG_MS) return 'lagging';
    return this.lastStatus === undefined ? 'starting' : 'live';
  }

  /**
   * Has the player given a sign of life after `t`: a status line, or, from one that never printed
   * one (still opening its window), reading what it was sent? Only that shows a stalled player is
   * back: an excuse (watch itself ran late) clears the silence without the player doing anything,
   * and a paused ffplay still reads its input until its queues are full.
   */
  spokeSince(t: number): boolean {
    if (this.lastLine !== undefined) return this.lastLine > t;
    return this.drainedAt !== undefined && this.drainedAt > t;
  }

  /** Time since the last sign of life, for messages. */
  silentMs(now: number): number {
    return Math.round(Math.max(now - (this.lastStatus ?? now), now - (this.blockedSince ?? now)));
  }
}
