/**
 * The last minute of each role's headline numbers, one sample per snapshot (one a second), for the
 * dashboard's sparklines. Pure and bounded: a fixed ring per series, no clock of its own.
 */
import type { Snapshot } from './snapshots.ts';

/** Sparklines cover the last 60 s (issue 4); snapshots arrive once a second (STATS_INTERVAL_MS). */
export const HISTORY_SAMPLES = 60;

/** A fixed-size ring of samples; `null` is "no data that second" and draws as a blank. */
export class Ring {
  private readonly buf: (number | null)[] = [];
  private next = 0;
  constructor(readonly capacity: number) {
    if (!(capacity >= 1)) throw new RangeError(`ring capacity must be at least 1, got ${capacity}`);
  }
  push(v: number | null): void {
    if (this.buf.length < this.capacity) this.buf.push(v);
    else this.buf[this.next] = v;
    this.next = (this.next + 1) % this.capacity;
  }
  /** Oldest first. */
  values(): (number | null)[] {
    if (this.buf.length < this.capacity) return this.buf.slice();
    return [...this.buf.slice(this.next), ...this.buf.slice(0, this.next)];
  }
  get length(): number {
    return this.buf.length;
  }
}

/** Series names per role, so the view and the recorder agree. */
export type SeriesName = 'bitrate' | 'loss' | 'jitter' | 'fps' | 'worstLoss' | 'bitrateIn' | 'bitrateOut';

export class History {
  private readonly rings = new Map<SeriesName, Ring>();
  /** Cumulative counters from the previous sample, to turn them into per-second values. */
  private prev?: { expected: number; lost: number };

  constructor(readonly capacity = HISTORY_SAMPLES) {}

  /** Adds one snapshot's worth of samples. */
  record(s: Snapshot): void {
    switch (s.role) {
      case 'watch': {
        const prev = this.prev ?? { expected: 0, lost: 0 };
        // Loss on the wire during this interval, as a percentage of the packets expected in it.
        // Both are session counters; a smaller value is a counter reset: never below 0.
        const expected = Math.max(0, s.packetsExpected - prev.expected);
        const lost = Math.max(0, s.lostOnWire - prev.lost);
        this.prev = { expected: s.packetsExpected, lost: s.lostOnWire };
        this.push('bitrate', s.bitrateKbps);
        this.push('fps', s.fps);
        this.push('loss', expected > 0 ? (100 * lost) / expected : null);
        this.push('jitter', s.state === 'live' || expected > 0 ? s.jitterMs : null);
        return;
      }
      case 'share':
        this.push('bitrate', s.bitrateKbps);
        this.push('fps', s.fps);
        this.push('worstLoss', s.worstLossPercent);
        return;
      case 'relay':
        this.push('bitrateIn', s.bitrateInKbps);
        this.push('bitrateOut', s.bitrateOutKbps);
        return;
    }
  }

  push(name: SeriesName, v: number | null): void {
    let r = this.rings.get(name);
    if (!r) this.rings.set(name, (r = new Ring(this.capacity)));
    r.push(v === null || Number.isFinite(v) ? v : null);
  }

  /** Oldest first; empty when nothing was recorded. */
  series(name: SeriesName): (number | null)[] {
    return this.rings.get(name)?.values() ?? [];
  }
}
