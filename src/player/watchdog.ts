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

/** No status line, or writes left unread, this long: the player is not keeping up. */
export const PLAYER_STALL_MS = 300;
/** The player's clock this far behind the wall clock (against its best): it shows frames late. */
export const PLAYER_LAG_MS = 250;

export type PlayerHealth = 'starting' | 'live' | 'stalled' | 'lagging';

/** ffplay's status line: the master clock ('nan' before the first picture), then "M-V:" for video only. */
const STATUS_LINE = /^\s*(nan|-?\d+(?:\.\d+)?)\s+M-V:.*\bfd=\s*(\d+)/;
const STATUS_LINE_NO_CLOCK = /^\s*nan\s+:/;

/** The master clock (seconds, NaN before the first picture) and frames dropped, or undefined. */
export function parseStatusLine(line: string): { clockSec: number; dropped: number } | undefined {
  const m = STATUS_LINE.exec(line);
  if (m) return { clockSec: m[1] === 'nan' ? NaN : Number(m[1]), dropped: Number(m[2]) };
  if (STATUS_LINE_NO_CLOCK.test(line)) return { clockSec: NaN, dropped: 0 };
  return undefined;
}

export class PlayerWatchdog {
  /** How far the player's clock is behind, against the best it did (ms). */
  lagMs = 0;
  /** Frames the player itself dropped as late (its `fd=`). */
  dropped = 0;
  private lastStatus?: number;
  private bestOffset = Infinity;
  private blockedSince?: number;

  /** A status line arrived at `now`. */
  status(clockSec: number, dropped: number, now: number): void {
    this.lastStatus = now;
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

  /** The player read everything we wrote. */
  drained(): void {
    this.blockedSince = undefined;
  }

  check(now: number): PlayerHealth {
    if (this.lastStatus !== undefined && now - this.lastStatus > PLAYER_STALL_MS) return 'stalled';
    if (this.blockedSince !== undefined && now - this.blockedSince > PLAYER_STALL_MS) return 'stalled';
    if (this.lagMs > PLAYER_LAG_MS) return 'lagging';
    return this.lastStatus === undefined ? 'starting' : 'live';
  }

  /** Time since the last sign of life, for messages. */
  silentMs(now: number): number {
    return Math.max(now - (this.lastStatus ?? now), now - (this.blockedSince ?? now));
  }
}
