/**
 * Periodic statistics for every role: one JSON object per second appended to --stats-json, and,
 * when no dashboard is drawn, a one-line summary on stderr every few seconds.
 */
import { appendFileSync, writeFileSync } from 'node:fs';
import { STATS_INTERVAL_MS, SUMMARY_INTERVAL_MS } from '../defaults.ts';

export interface Reporter {
  /** Writes the final JSON line; `summary` false leaves stderr to the error that ended the run. */
  stop(summary?: boolean): void;
}

export interface ReporterOptions<T extends object> {
  statsJson?: string;
  /** Print `summary()` to stderr every SUMMARY_INTERVAL_MS (no dashboard). */
  summaries: boolean;
  snapshot: () => T;
  summary: (snap: T) => string;
  intervalMs?: number;
}

export function startReporter<T extends object>(o: ReporterOptions<T>): Reporter {
  if (o.statsJson) writeFileSync(o.statsJson, ''); // each run starts its own file
  let ticks = 0;
  let stopped = false;
  const every = Math.max(1, Math.round(SUMMARY_INTERVAL_MS / (o.intervalMs ?? STATS_INTERVAL_MS)));
  const write = (final: boolean, summary = true) => {
    const snap = o.snapshot();
    const line = { t: new Date().toISOString(), ...snap, ...(final ? { final: true } : {}) };
    if (o.statsJson) appendFileSync(o.statsJson, JSON.stringify(line) + '\n');
    if (o.summaries && summary && (final || ++ticks % every === 0)) process.stderr.write(o.summary(snap) + '\n');
  };
  const timer = setInterval(() => write(false), o.intervalMs ?? STATS_INTERVAL_MS);
  return {
    // The last line carries the totals at exit, marked "final": true.
    stop: (summary = true) => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      write(true, summary);
    },
  };
}

/** Bits per second from byte counters sampled once a second. */
export class RateMeter {
  private last?: { at: number; value: number };
  rate = 0;
  sample(value: number, at: number): number {
    if (this.last && at > this.last.at) this.rate = ((value - this.last.value) * 1000) / (at - this.last.at);
    this.last = { at, value };
    return this.rate;
  }
}

export function round(n: number | undefined, digits = 1): number | null {
  if (n === undefined || !Number.isFinite(n)) return null;
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}
