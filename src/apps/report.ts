/**
 * Periodic statistics for every role: one JSON object per second appended to --stats-json, and
 * either a live dashboard (a terminal is there and --no-dashboard was not given) or, otherwise, a
 * one-line summary on stderr every few seconds with no escape codes at all. The same snapshot
 * object feeds all three, so they always agree.
 */
import { UsageError } from '../util/errors.ts';
import { appendFileSync, writeFileSync } from 'node:fs';
import { STATS_INTERVAL_MS, SUMMARY_INTERVAL_MS } from '../defaults.ts';
import { activeDashboard, Dashboard, pickTerminal } from '../dashboard/screen.ts';
import type { Snapshot } from '../dashboard/snapshots.ts';

export interface Reporter {
  /** Writes the final JSON line; `summary` false leaves stderr to the error that ended the run. */
  stop(summary?: boolean): void;
  /** The dashboard this reporter draws, if it got a terminal. */
  readonly dashboard: Dashboard | null;
}

export interface DashboardRequest {
  /** q or Ctrl-C on the dashboard: stop the role (the terminal is restored first). */
  onQuit: () => void;
  /** `watch --output -`: stdout carries video, so the dashboard may only use stderr's terminal. */
  stdoutIsVideo?: boolean;
}

export interface ReporterOptions<T extends Snapshot> {
  statsJson?: string;
  /** Draw a dashboard when a terminal is available; false or absent (--no-dashboard): never. */
  dashboard?: DashboardRequest | false;
  /** Summary lines on stderr when no dashboard is drawn (default true). */
  summaries?: boolean;
  snapshot: () => T;
  /**
   * The one-line summary; undefined while there is nothing to say yet (before the relay's first
   * answer), so the only line of a run that cannot connect is the error that ends it.
   */
  summary: (snap: T) => string | undefined;
  intervalMs?: number;
  /** For tests: how a dashboard is opened (default: blessed on the picked terminal). */
  openDashboard?: (req: DashboardRequest) => Dashboard | null;
}

/** blessed on the terminal pickTerminal() chooses, or null when there is none or blessed fails. */
export function openDashboard(req: DashboardRequest): Dashboard | null {
  const terminal = pickTerminal(req.stdoutIsVideo ?? false);
  if (!terminal) return null;
  try {
    return new Dashboard({ terminal, onQuit: req.onQuit });
  } catch (err) {
    // A terminal blessed cannot drive (odd terminfo): fall back to the summary line, say why once.
    process.stderr.write(`no dashboard on this terminal (${(err as Error).message.split('\n')[0]}); printing a summary line instead\n`);
    return null;
  }
}

export function startReporter<T extends Snapshot>(o: ReporterOptions<T>): Reporter {
  if (o.statsJson) {
    try {
      writeFileSync(o.statsJson, ''); // each run starts its own file
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new UsageError(`--stats-json ${o.statsJson}: cannot write there (${e.code === 'ENOENT' ? 'its folder does not exist' : (e.code ?? e.message)})`);
    }
  }
  let ticks = 0;
  let stopped = false;
  const every = Math.max(1, Math.round(SUMMARY_INTERVAL_MS / (o.intervalMs ?? STATS_INTERVAL_MS)));
  const dashboard = o.dashboard ? (o.openDashboard ?? openDashboard)(o.dashboard) : null;
  const summaries = o.summaries ?? true;
  const write = (final: boolean, summary = true) => {
    const snap = o.snapshot();
    const line = { t: new Date().toISOString(), ...snap, ...(final ? { final: true } : {}) };
    if (o.statsJson) appendFileSync(o.statsJson, JSON.stringify(line) + '\n');
    if (!final && dashboard) return dashboard.update(snap);
    // Another role's dashboard is on this terminal (the demo's watch): show our numbers in it.
    const other = activeDashboard();
    if (!final && other) return other.companion(snap);
    if (summaries && summary && (final || ++ticks % every === 0)) {
      const text = o.summary(snap);
      if (text !== undefined) process.stderr.write(text + '\n');
    }
  };
  const timer = setInterval(() => write(false), o.intervalMs ?? STATS_INTERVAL_MS);
  // Something to look at right away rather than after the first interval (no JSON line for it).
  if (dashboard) setImmediate(() => !stopped && dashboard.update(o.snapshot()));
  return {
    dashboard,
    // The last line carries the totals at exit, marked "final": true. The terminal is restored
    // before it, so the final summary lands on the normal screen.
    stop: (summary = true) => {
      if (stopped) return;
      stopped = true;
      clearInterval(timer);
      dashboard?.destroy();
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
