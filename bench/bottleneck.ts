/**
 * The model of issue 14's benchmarks (uplink.ts, narrow.ts): a 2.5 Mbit/s stream through a
 * 1.2 Mbit/s `udpcast impair` bottleneck with a ~100 ms tail-drop buffer, one way only (the
 * sharer's uplink, or one viewer's downlink), and how a viewer's per-second --stats-json lines are
 * read against it: when the stream first got smooth, and fps and latency over the steady-state
 * window that follows, up to the sharer's last full second. Also the bottleneck's own summary of
 * what it forwarded and tail-dropped. The seeds and what else is particular to one benchmark stay
 * in that benchmark.
 */
import { allStats, captureStderr, exited, mean, percentile, relayBehindImpair, round, sleep, stop, udpcast } from './lib.ts';

export const GOP = 60;
export const FPS = 30;
export const SIZE = '1280x720';
export const KBPS = 2500;
/** The bottleneck: 1.2 Mbit/s, a FIFO of 12 datagrams (~1250 bytes each: 100 ms at that rate), 10 ms each way. */
export const RATE = '1.2M';
export const QUEUE = 12;
export const DELAY = '10ms';
/** "Smooth": at least this many frames a second (two thirds of the 30 fps asked for)... */
export const SMOOTH_FPS = 20;
/** ...for this many consecutive stats seconds before the stream counts as having got there... */
export const SMOOTH_RUN = 3;
/** ...within this many seconds; the steady-state window never starts before it (a quick climb is judged on what follows). */
export const SETTLE_S = 10;
export const LATENCY_TARGET_MS = 400;

/** Which way the bottleneck limits: `up` is client → target (sharer → relay), `down` target → client (relay → viewer). */
export type Direction = 'up' | 'down';

/** `udpcast impair` flags for the bottleneck in one direction (the delay applies both ways). */
export function bottleneckArgs(direction: Direction, seed: number): string[] {
  return [`--${direction}-rate`, RATE, `--${direction}-queue`, String(QUEUE), '--delay', DELAY, '--seed', String(seed)];
}

/**
 * The bottleneck's own count of what it passed and dropped for want of room in `direction`, from
 * the summary `udpcast impair` prints when stopped: tells a collapse at the link from one elsewhere.
 */
export function impairDrops(stderr: string, direction: Direction): { forwarded: number | null; rateDropped: number | null } {
  const way = direction === 'up' ? 'up\\s+client → target' : 'down\\s+target → client';
  const m = stderr.match(new RegExp(`${way}: received \\d+, forwarded (\\d+)[^\\n]*?rate-dropped (\\d+)`));
  return m ? { forwarded: Number(m[1]), rateDropped: Number(m[2]) } : { forwarded: null, rateDropped: null };
}

/** The end of every window: the sharer's last full stats second (after it, viewers' fps falls as share stops), else `fallbackMs`. */
export function sharerEndMs(sstats: string, fallbackMs: number): number {
  const shareLines = allStats(sstats).filter((l) => !l.final && typeof l.t === 'string');
  return shareLines.length ? Date.parse(shareLines.at(-1)!.t as string) : fallbackMs;
}

/** One of a viewer's per-second stats lines. */
export interface Second {
  /** Seconds from the time origin (`originMs`) to this stats line. */
  at: number;
  fps: number;
  /** Null when the second completed no frame (latencyMs then repeats an older frame's). */
  latencyMs: number | null;
  width: number | null;
  height: number | null;
  kbps: number;
}

/** A viewer's per-second stats lines after `originMs` up to `endMs`, timed from `originMs`. */
export function viewerSeconds(file: string, originMs: number, endMs: number): Second[] {
  const out: Second[] = [];
  let prevComplete = 0;
  for (const l of allStats(file)) {
    if (l.final || typeof l.t !== 'string') continue;
    const t = Date.parse(l.t);
    const complete = Number(l.framesComplete ?? 0);
    // latencyMs is the last completed frame's: a second that completed none repeats an old value.
    const fresh = complete > prevComplete;
    prevComplete = complete;
    if (t <= originMs || t > endMs) continue;
    out.push({
      at: (t - originMs) / 1000,
      fps: Number(l.fps ?? 0),
      latencyMs: fresh && typeof l.latencyMs === 'number' ? l.latencyMs : null,
      width: typeof l.width === 'number' ? l.width : null,
      height: typeof l.height === 'number' ? l.height : null,
      kbps: Number(l.bitrateKbps ?? 0),
    });
  }
  return out;
}

/**
 * When the stream first got smooth (the start of the first SMOOTH_RUN seconds at ≥ SMOOTH_FPS, from
 * the seconds' origin), and, over the window from then (or SETTLE_S, if later), mean fps, the share
 * of smooth seconds and latency p50 / p95 (`latencyOf` picks a second's sample). `window`: its seconds.
 */
export function smoothFigures(seconds: Second[], latencyOf: (s: Second) => number | null = (s) => s.latencyMs) {
  let smoothAtS: number | null = null;
  for (let i = 0; i + SMOOTH_RUN <= seconds.length; i++) {
    if (seconds.slice(i, i + SMOOTH_RUN).every((s) => s.fps >= SMOOTH_FPS)) {
      smoothAtS = seconds[i].at;
      break;
    }
  }
  const windowFromS = Math.max(smoothAtS ?? SETTLE_S, SETTLE_S);
  const win = seconds.filter((s) => s.at >= windowFromS);
  const lat = win.flatMap((s) => {
    const ms = latencyOf(s);
    return ms === null ? [] : [ms];
  });
  return {
    window: win,
    figures: {
      smoothAtS: round(smoothAtS, 1),
      windowFromS: round(windowFromS, 1)!,
      meanFps: round(mean(win.map((s) => s.fps)), 1),
      smoothSecondsPct: win.length ? round((100 * win.filter((s) => s.fps >= SMOOTH_FPS).length) / win.length, 1) : null,
      latencyP50Ms: round(percentile(lat, 50), 1),
      latencyP95Ms: round(percentile(lat, 95), 1),
      latencySamples: lat.length,
    },
  };
}

/**
 * One run with the bottleneck on the sharer's uplink: relay, `udpcast impair` (`impairArgs`) in
 * front of it, a viewer at the relay on a clean link (`--player none --output out`), then the
 * sharer through the impair proxy (`share --source test` at SIZE, FPS, GOP and `shareFlags`) for
 * `seconds`. startMs is when share was spawned; exitMs when it ended (or was given up on); the
 * stderr of relay, proxy and sharer, for the benchmark to keep.
 */
export async function sharerBehind(
  impairArgs: string[],
  files: { out: string; wstats: string; sstats: string },
  seconds: number,
  shareFlags: string[],
  relayArgs: string[] = [],
): Promise<{ startMs: number; exitMs: number; relayStderr: string; impairStderr: string; shareStderr: string; watchStderr: string }> {
  const { result, relayStderr, impairStderr } = await relayBehindImpair(impairArgs, async ({ relayPort, impairPort }) => {
    let watch, share;
    let shareSaid = () => '';
    let watchSaid = () => '';
    try {
      watch = udpcast(['watch', `127.0.0.1:${relayPort}`, '--player', 'none', '--output', files.out, '--stats-json', files.wstats, '--no-dashboard']);
      watchSaid = captureStderr(watch, true);
      await sleep(500);
      const startMs = Date.now();
      share = udpcast([
        'share', '--relay', `127.0.0.1:${impairPort}`, '--source', 'test', '--size', SIZE, '--fps', String(FPS), '--gop', String(GOP),
        '--duration', String(seconds), '--stats-json', files.sstats, '--no-dashboard', ...shareFlags,
      ]);
      shareSaid = captureStderr(share, true);
      await Promise.race([exited(share), sleep((seconds + 20) * 1000)]);
      const exitMs = Date.now();
      // Frames still in the bottleneck's queue and the viewer's repair window reach the file.
      await sleep(1500);
      return { startMs, exitMs, shareStderr: shareSaid(), watchStderr: watchSaid() };
    } finally {
      await stop(share);
      await stop(watch);
    }
  }, relayArgs);
  return { ...result, relayStderr, impairStderr };
}
