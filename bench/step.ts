/**
 * Issue 14 (congestion control), the step link: the sharer's uplink steps 4 → 1 → 4 Mbit/s every
 * STEP_S seconds (`udpcast impair --up-rate 4M,1M --rate-every`), with a 100 ms tail-drop buffer
 * at either rate, while the sharer may send up to 6 Mbit/s. After each step: how much of the link
 * carries media from 5 s on, how many frames the viewer misses after the step's first second, the
 * longest freeze, latency. `udpcast share` as it comes (three layers), with --layers 1, and with --no-adapt (a
 * fixed bitrate, the baseline), one after the other in one run, each more than once but the baseline.
 *
 * share → impair (the stepping uplink) → relay → watch on a clean link. The step times are the
 * impair proxy's own (a line on stderr at each change of rate). The viewer's --stats-json (a line a
 * second) gives what it received, frames completed and latency; its --output N.mkv, whose frames
 * carry the sender's capture times, gives the freezes and, decoded by FFmpeg, the decoder errors.
 */
import { spawnSync } from 'node:child_process';
import { statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import {
  OUT, allStats, lastStats, missing, percentile, mean, round, table,
  type BenchContext, type BenchResult,
} from './lib.ts';
import { FPS, GOP, SIZE, sharerBehind, sharerEndMs } from './bottleneck.ts';
import { decodeMd5 } from './plain-rtp.ts';

const SEED = 1500;
/** The link: these rates in turn, each for STEP_S seconds, behind a buffer of QUEUE at whatever the rate is. */
const RATES_KBPS = [4000, 1000];
const STEP_S = 15;
const QUEUE = '100ms';
const DELAY = '10ms';
/** What the sharer may send (--bitrate): more than the wide link, so that it is the link that limits. */
const BITRATE = 6000;
/** Targets (issue 14): this share of the link... */
const USED_SHARE = 0.8;
/** ...within this long of a step; frame loss from a second after it at most this; no freeze longer than this. */
const USED_WITHIN_S = 5;
const LOSS_FROM_S = 1;
const LOSS_TARGET_PCT = 1;
const FREEZE_TARGET_MS = 1000;
/**
 * The recording's first seconds are the start-up (the sharer starts at 6 Mbit/s into 4, and cuts
 * its encoder): its freezes are shown apart. The first step comes STEP_S after the start, so
 * leaving these out cannot hide one at a step.
 */
const STARTUP_S = 3;

interface Step {
  /** Seconds from starting share to the change of rate. */
  atS: number;
  kbps: number;
  /** Seconds from the step to the end of the first relay second with ≥ USED_SHARE of the link in; null: never. */
  usedAtS: number | null;
  /**
   * The media crossing the link (the relay's rate in from the sharer: every layer, FEC and RTP
   * headers, no probe padding) from USED_WITHIN_S after the step to the next, as % of the link...
   */
  usedPct: number | null;
  /** ...and what the viewer received of it (one layer), likewise. */
  viewerPct: number | null;
  /** Frames not completed from LOSS_FROM_S after the step to the next, % of FPS × that time. */
  frameLossPct: number | null;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
}

interface Row {
  system: string;
  /** Which of the system's runs (1, 2, …): each is judged on its own. */
  run: number;
  seconds: number;
  steps: Step[];
  /**
   * The longest gap between consecutive frames of the recording, by capture time, and where (s from
   * its first frame), after its first STARTUP_S; and the longest within those (the start-up).
   */
  freezeMs: number | null;
  freezeAtS: number | null;
  startupFreezeMs: number | null;
  framesRecorded: number;
  decodeErrors: number | null;
  retargets: number | null;
  probes: number | null;
  pacerDropped: number | null;
}

/** The rate changes `udpcast impair` announced ("impair: up rate now 1 Mbit/s (ISO time)"), in order. */
function rateChanges(stderr: string): Array<{ atMs: number; kbps: number }> {
  const out: Array<{ atMs: number; kbps: number }> = [];
  for (const m of stderr.matchAll(/impair: up rate now ([\d.]+) (k|M|G)bit\/s \(([^)]+)\)/g)) {
    out.push({ atMs: Date.parse(m[3]), kbps: Number(m[1]) * { k: 1, M: 1000, G: 1e6 }[m[2] as 'k' | 'M' | 'G'] });
  }
  return out;
}

/** Capture times (ms) of the frames in an .mkv, in order, from its packets' timestamps. */
function frameTimes(file: string): number[] {
  const r = spawnSync('ffprobe', ['-v', 'error', '-select_streams', 'v', '-show_entries', 'packet=pts_time', '-of', 'csv=p=0', file], { encoding: 'utf8' });
  return r.stdout.split('\n').filter((l) => l.trim() !== '').map((l) => Number(l) * 1000).sort((a, b) => a - b);
}

interface ViewerLine {
  t: number;
  complete: number;
  kbps: number;
  latencyMs: number | null;
}

function viewerLines(file: string): ViewerLine[] {
  const out: ViewerLine[] = [];
  let prev = 0;
  for (const l of allStats(file)) {
    if (l.final || typeof l.t !== 'string') continue;
    const complete = Number(l.framesComplete ?? 0);
    out.push({ t: Date.parse(l.t), complete, kbps: Number(l.bitrateKbps ?? 0), latencyMs: complete > prev && typeof l.latencyMs === 'number' ? l.latencyMs : null });
    prev = complete;
  }
  return out;
}

/** The relay's per-second lines: when, and the stream's media rate in from the sharer (kbit/s; probes are not media). */
function relayLines(file: string): Array<{ t: number; kbps: number }> {
  return allStats(file)
    .filter((l) => !l.final && typeof l.t === 'string')
    .map((l) => ({ t: Date.parse(l.t as string), kbps: Number((l.perStream as Array<{ bitrateInKbps?: number }> | undefined)?.[0]?.bitrateInKbps ?? 0) }));
}

function stepFigures(lines: ViewerLine[], relayIn: Array<{ t: number; kbps: number }>, startMs: number, at: number, kbps: number, endMs: number): Step {
  const after = lines.filter((l) => l.t > at && l.t <= endMs);
  const inAfter = relayIn.filter((l) => l.t > at && l.t <= endMs);
  const used = inAfter.find((l) => l.kbps >= USED_SHARE * kbps);
  const late = inAfter.filter((l) => l.t >= at + USED_WITHIN_S * 1000);
  const viewerLate = after.filter((l) => l.t >= at + USED_WITHIN_S * 1000);
  // Frames completed between the first and last stats line of the window against FPS over the same span.
  const win = after.filter((l) => l.t >= at + LOSS_FROM_S * 1000);
  const span = win.length >= 2 ? win.at(-1)!.t - win[0].t : 0;
  const expected = (FPS * span) / 1000;
  const lat = win.flatMap((l) => (l.latencyMs === null ? [] : [l.latencyMs]));
  return {
    atS: round((at - startMs) / 1000, 1)!,
    kbps,
    usedAtS: used ? round((used.t - at) / 1000, 1) : null,
    usedPct: late.length ? round((100 * mean(late.map((l) => l.kbps))!) / kbps, 1) : null,
    viewerPct: viewerLate.length ? round((100 * mean(viewerLate.map((l) => l.kbps))!) / kbps, 1) : null,
    frameLossPct: span > 0 ? round(Math.max(0, 100 * (1 - (win.at(-1)!.complete - win[0].complete) / expected)), 2) : null,
    latencyP50Ms: round(percentile(lat, 50), 1),
    latencyP95Ms: round(percentile(lat, 95), 1),
  };
}

/**
 * The systems, one after another: the default (--adapt, --layers auto: three at this size), one
 * layer, and no congestion control; each `runs` times (--quick: once), since what happens at a
 * step turns on timing (where in a frame the step falls, when the next report leaves): one good
 * run proves little, and every run is judged.
 */
export const SYSTEMS = [
  { label: 'udpcast (default: --adapt, --layers auto: 3 here)', tag: 'adapt', flags: [], runs: 3 },
  { label: 'udpcast --layers 1', tag: 'layers1', flags: ['--layers', '1'], runs: 2 },
  { label: 'udpcast --no-adapt --layers 1', tag: 'fixed', flags: ['--no-adapt', '--layers', '1'], runs: 1 },
];

export async function udpcastRun(sys: (typeof SYSTEMS)[number], seconds: number, run = 1): Promise<Row> {
  const tag = `step-${sys.tag}`;
  const out = path.join(OUT, `${tag}.mkv`);
  const wstats = path.join(OUT, `${tag}-watch.ndjson`);
  const sstats = path.join(OUT, `${tag}-share.ndjson`);
  const rstats = path.join(OUT, `${tag}-relay.ndjson`);
  for (const f of [out, wstats, sstats, rstats]) writeFileSync(f, ''); // nothing of an earlier run is read
  const link = [
    '--up-rate', RATES_KBPS.map((k) => `${k / 1000}M`).join(','), '--rate-every', `${STEP_S}s`, '--up-queue', QUEUE, '--delay', DELAY, '--seed', String(SEED),
  ];
  const { startMs, exitMs, impairStderr, relayStderr, shareStderr, watchStderr } = await sharerBehind(link, { out, wstats, sstats }, seconds, ['--bitrate', String(BITRATE), ...sys.flags], [
    '--stats-json', rstats,
  ]);
  // What relay, sharer and viewer said (layer moves, estimates, re-targets, frames dropped), each
  // line after the time it came, for a look afterwards.
  writeFileSync(path.join(OUT, `${tag}-relay.log`), relayStderr);
  writeFileSync(path.join(OUT, `${tag}-share.log`), shareStderr);
  writeFileSync(path.join(OUT, `${tag}-watch.log`), watchStderr);
  const endMs = sharerEndMs(sstats, exitMs);
  const lines = viewerLines(wstats);
  const relayIn = relayLines(rstats);
  const changes = rateChanges(impairStderr).filter((c) => c.atMs > startMs && c.atMs < endMs);
  // A step too near the end to have its USED_WITHIN_S and more after it is not judged.
  const steps = changes
    .map((c, i) => ({ ...c, untilMs: changes[i + 1]?.atMs ?? endMs }))
    .filter((c) => c.untilMs - c.atMs >= (USED_WITHIN_S + 2) * 1000)
    .map((c) => stepFigures(lines, relayIn, startMs, c.atMs, c.kbps, c.untilMs));
  const times = frameTimes(out);
  let freezeMs: number | null = null;
  let freezeAtS: number | null = null;
  let startupFreezeMs: number | null = null;
  for (let i = 1; i < times.length; i++) {
    const gap = times[i] - times[i - 1];
    if (times[i - 1] - times[0] < STARTUP_S * 1000) startupFreezeMs = Math.max(startupFreezeMs ?? 0, gap);
    else if (freezeMs === null || gap > freezeMs) [freezeMs, freezeAtS] = [gap, (times[i - 1] - times[0]) / 1000];
  }
  const bytes = statSync(out, { throwIfNoEntry: false })?.size ?? 0;
  const d = bytes > 0 ? decodeMd5(out) : null;
  const s = lastStats(sstats) ?? {};
  const num = (x: unknown) => (typeof x === 'number' ? x : null);
  return {
    system: sys.label,
    run,
    seconds,
    steps,
    freezeMs: round(freezeMs, 0),
    freezeAtS: round(freezeAtS, 1),
    startupFreezeMs: round(startupFreezeMs, 0),
    framesRecorded: times.length,
    decodeErrors: d ? d.errors : null,
    retargets: num(s.retargets),
    probes: num(s.probes),
    pacerDropped: num(s.pacerDropped),
  };
}

export async function stepBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Step link: the uplink steps 4 → 1 → 4 Mbit/s every 15 s, 100 ms buffer (issue 14)';
  const gone = missing('ffmpeg', 'ffprobe');
  if (gone) return { name: 'step', title, skipped: gone, rows: [], markdown: '' };
  // 4 → 1 → 4: two steps, each with a whole period after it (and the start-up in the first).
  const seconds = 3 * STEP_S;
  const rows: Row[] = [];
  for (const sys of SYSTEMS) {
    for (let run = 1; run <= (ctx.quick ? 1 : sys.runs); run++) {
      rows.push(await udpcastRun(sys, seconds, run));
      ctx.log(`step ${JSON.stringify(rows.at(-1))}`);
    }
  }
  const [adaptive, oneLayer, fixed] = SYSTEMS.map((sys) => rows.filter((r) => r.system === sys.label));
  const runsSaid = ctx.quick ? 'each once (--quick)' : `${SYSTEMS.map((x) => `${x.runs === 1 ? 'once' : `${x.runs} times`}`).join(', ')} in that order, each run judged on its own`;
  const name = (r: Row) => `${r.system}${SYSTEMS.find((x) => x.label === r.system)!.runs > 1 ? `, run ${r.run}` : ''}`;
  const markdown = [
    table(
      [
        'system', 'step at s', 'to kbit/s', `≥ ${USED_SHARE * 100}% of link after s`, `link used from +${USED_WITHIN_S} s, %`, `viewer received from +${USED_WITHIN_S} s, % of link`,
        `frame loss from +${LOSS_FROM_S} s %`, 'latency p50 ms', 'p95 ms',
      ],
      rows.flatMap((r) => r.steps.map((st) => [name(r), st.atS, st.kbps, st.usedAtS ?? 'never', st.usedPct, st.viewerPct, st.frameLossPct, st.latencyP50Ms, st.latencyP95Ms])),
    ),
    '',
    table(
      ['system', `longest freeze ms (after ${STARTUP_S} s)`, 'at s of recording', `longest in the first ${STARTUP_S} s`, 'frames recorded', 'decoder errors', 're-targets', 'probes', 'paced out'],
      rows.map((r) => [name(r), r.freezeMs, r.freezeAtS, r.startupFreezeMs, r.framesRecorded, r.decodeErrors, r.retargets, r.probes, r.pacerDropped]),
    ),
    '',
    `The model: \`udpcast impair --up-rate 4M,1M --rate-every ${STEP_S}s --up-queue ${QUEUE} --delay ${DELAY}\` between the sharer ` +
      `and the relay: a token bucket at 4 Mbit/s for ${STEP_S} s, then 1 Mbit/s for ${STEP_S} s, and so on, behind a tail-drop ` +
      `buffer that holds ${QUEUE} of sending at the rate of the moment (a datagram that would wait longer is dropped); 10 ms ` +
      'one way, both ways. share → impair → relay → watch on a clean link; `share --source test --size ' + `${SIZE} --fps ${FPS} --gop ${GOP} ` +
      `--bitrate ${BITRATE}\` for ${seconds} s: as it comes (congestion control on; --layers auto, three layers at this ` +
      `size), with --layers 1, and with --no-adapt --layers 1 (a fixed bitrate: the baseline), ${runsSaid}. With three layers the link carries all ` +
      'three (1.55 × the top one) while the one viewer takes one, so it receives about half of what the link carries. ' +
      'Step times are the impair proxy\'s own, from the line it prints at each change of rate.',
    '',
    `Figures, per step, for the steps with at least ${USED_WITHIN_S + 2} s before the next or the end, from the relay's and ` +
      `the viewer's --stats-json (a line a second each). "Link used from +${USED_WITHIN_S} s": the mean of the relay's rate in ` +
      `from the sharer (what crossed the link: media of every layer, FEC and RTP headers; not the sharer's probe padding, ` +
      `which the relay drops) over its seconds from ${USED_WITHIN_S} s after the step to the next, as % of the new rate ` +
      `(target ≥ ${USED_SHARE * 100}%: the link used ${USED_WITHIN_S} s after the step and from then on). "Viewer received": ` +
      `the same for what the viewer got (one layer of them). "≥ ${USED_SHARE * 100}% of link after s": from the step to the end ` +
      `of the first relay second at ${USED_SHARE * 100}% of the new rate (after a step down that is at once: the link is full). ` +
      `Frame loss: from ` +
      `${LOSS_FROM_S} s after the step to the next, 1 − frames completed between the first and last stats line of that window ÷ ` +
      `(${FPS} fps × the time between them): frames the source made and the viewer never completed, wherever lost (target ≤ ` +
      `${LOSS_TARGET_PCT}%). Latency: the viewer's capture → frame complete, a component figure (no decode or display), ` +
      `p50 / p95 of its per-second samples in that window. Longest freeze: the largest gap between consecutive frames of the ` +
      `viewer's recording (N.mkv) by their capture times, after its first ${STARTUP_S} s (target ≤ ${FREEZE_TARGET_MS} ms; ` +
      `the first step is ${STEP_S} s in), and apart, the largest within them: the start-up, where the sharer starts at ` +
      `${BITRATE} kbit/s into a 4 Mbit/s link and cuts its encoder; decoder ` +
      'errors: FFmpeg\'s error lines decoding it. Sharer figures are its last stats line: re-targets of the encoder, probes of ' +
      'the uplink, datagrams its pacer dropped.',
  ].join('\n');
  // Judged: every run of the default; the others are shown beside it.
  const runsOf = (list: Row[], f: (r: Row) => string) => list.map((r) => (list.length > 1 ? `run ${r.run}: ${f(r)}` : f(r))).join('; ');
  const perStep = (r: Row, f: (st: Step) => unknown) => r.steps.map((st) => `${st.atS} s → ${st.kbps}: ${f(st)}`).join(', ') || 'no step seen';
  const others = (f: (st: Step) => unknown) => `--layers 1: ${runsOf(oneLayer, (r) => r.steps.map(f).join(', '))}; --no-adapt: ${runsOf(fixed, (r) => r.steps.map(f).join(', '))}`;
  const everyStep = (ok: (st: Step) => boolean) => adaptive.length > 0 && adaptive.every((r) => r.steps.length >= 2 && r.steps.every(ok));
  const targets: BenchResult['targets'] = [
    {
      target: `step link: ≥ ${USED_SHARE * 100}% of the link received from ${USED_WITHIN_S} s after each step to the next, every run (issue 14)`,
      met: everyStep((st) => st.usedPct !== null && st.usedPct >= USED_SHARE * 100),
      detail: `${runsOf(adaptive, (r) => perStep(r, (st) => `${st.usedPct}% (first second at ${USED_SHARE * 100}%: +${st.usedAtS ?? 'never'} s)`))} (${others((st) => `${st.usedPct}%`)})`,
    },
    {
      target: `step link: frame loss ≤ ${LOSS_TARGET_PCT}% from ${LOSS_FROM_S} s after each step, every run (issue 14)`,
      met: everyStep((st) => st.frameLossPct !== null && st.frameLossPct <= LOSS_TARGET_PCT),
      detail: `${runsOf(adaptive, (r) => perStep(r, (st) => `${st.frameLossPct}%`))} (${others((st) => `${st.frameLossPct}%`)})`,
    },
    {
      target: `step link: no freeze longer than ${FREEZE_TARGET_MS} ms after the start-up, every run (issue 14)`,
      met: adaptive.length === 0 || adaptive.some((r) => r.freezeMs === null) ? null : adaptive.every((r) => r.freezeMs! <= FREEZE_TARGET_MS),
      detail:
        `${runsOf(adaptive, (r) => `longest ${r.freezeMs} ms at ${r.freezeAtS} s of the recording (start-up: ${r.startupFreezeMs} ms), ${r.decodeErrors} decoder errors`)} ` +
        `(--layers 1: ${runsOf(oneLayer, (r) => `${r.freezeMs} ms`)}; --no-adapt: ${runsOf(fixed, (r) => `${r.framesRecorded} frames recorded`)})`,
    },
  ];
  return { name: 'step', title, rows: rows as unknown as Record<string, unknown>[], markdown, targets };
}
