/**
 * Issue 14's first target, on the viewer's side: one viewer's downlink is a 1.2 Mbit/s bottleneck
 * with a ~100 ms tail-drop buffer while the stream is 2.5 Mbit/s; another viewer of the same
 * stream is on a clean link. Three systems, one after another in one run: `share --layers 3`
 * (quality layers; the relay moves each viewer to a layer its path takes, by RFC 8888 feedback),
 * `share --layers 1` (one layer; congestion control on the sharer's uplink only: the baseline for
 * a narrow downlink) and `share --layers 1 --no-adapt` (the old fixed rate).
 *
 * share → relay (--stats-json) ← impair (the narrow viewer's downlink: relay → viewer only) ← watch
 * (narrow, --output N.mkv); a second watch straight at the relay (clean). Both viewers join ~2 s
 * after the sharer starts, the narrow one first: the relay's "viewer ADDRESS joined" lines tell
 * which of its perViewer entries is which. Each viewer's --stats-json (one line a second) gives
 * fps, latency, picture size and bitrate over time, read from that viewer's own spawn; N.mkv is
 * decoded afterwards for decoded frames and decoder error lines; the relay's stats give its layer
 * moves and, per viewer, the layer, its path estimate and why it last moved.
 */
import path from 'node:path';
import { statSync, writeFileSync } from 'node:fs';
import {
  OUT, allStats, exited, lastStats, mean, missing, ratio, relayBehindImpair, round, sleep, stop, table, udpcast, waitFor,
  type BenchContext, type BenchResult,
} from './lib.ts';
import {
  DELAY, FPS, GOP, KBPS, LATENCY_TARGET_MS, QUEUE, RATE, SETTLE_S, SIZE, SMOOTH_FPS, SMOOTH_RUN, bottleneckArgs, impairDrops, sharerEndMs,
  smoothFigures, viewerSeconds, type Second,
} from './bottleneck.ts';
import { decodeMd5 } from './plain-rtp.ts';

const FULL_WIDTH = 1280;
/** The bottleneck (bottleneck.ts) is the narrow viewer's downlink; its seed here. */
const SEED = 1401;
/** The viewers join this long after the sharer is started (the narrow viewer's SETTLE_S counts from its joining). */
const JOIN_AFTER_MS = 2000;
/** Clean viewer: from this many seconds after joining, every second at ≥ CLEAN_FPS, FULL_WIDTH wide, ≥ CLEAN_KBPS. */
const CLEAN_GRACE_S = 2;
const CLEAN_FPS = 28;
const CLEAN_KBPS = 2000;

interface System {
  label: string;
  tag: string;
  flags: string[];
}

const SYSTEMS: System[] = [
  { label: 'udpcast --layers 3', tag: 'layers3', flags: ['--layers', '3'] },
  { label: 'udpcast --layers 1 (baseline)', tag: 'layers1', flags: ['--layers', '1'] },
  { label: 'udpcast --layers 1 --no-adapt', tag: 'fixed', flags: ['--layers', '1', '--no-adapt'] },
];

interface ViewerLayer {
  address: string | null;
  layer: number | null;
  estimateKbps: number | null;
  layerWhy: string | null;
  /** Layer moves the relay logged for this viewer ("to layer N at its next keyframe"). */
  moves: number;
  /** Times the relay's RFC 8083 circuit breaker paused media to this viewer. */
  breakerPauses: number;
}

interface Row {
  system: string;
  seconds: number;
  // Narrow viewer
  /** Seconds from the narrow viewer's spawn to the end of the first of SMOOTH_RUN seconds at ≥ SMOOTH_FPS. */
  smoothAtS: number | null;
  windowFromS: number;
  windowSeconds: number;
  meanFps: number | null;
  smoothSecondsPct: number | null;
  latencyP50Ms: number | null;
  latencyP95Ms: number | null;
  latencySamples: number;
  /** Picture sizes over the window's seconds that completed frames, most seen first. */
  sizes: string;
  meanKbps: number | null;
  /** Size of N.mkv: 0 when the viewer never had a frame to write (FFmpeg's complaints about an empty file are not decoder errors). */
  recordingBytes: number;
  framesDecoded: number;
  /** FFmpeg's error lines decoding N.mkv; null for an empty file. */
  decodeErrors: number | null;
  downlinkForwarded: number | null;
  downlinkDropped: number | null;
  // Clean viewer
  cleanSeconds: number;
  cleanMinFps: number | null;
  cleanFullWidthPct: number | null;
  cleanMeanKbps: number | null;
  cleanMinKbps: number | null;
  /** Seconds after CLEAN_GRACE_S at ≥ CLEAN_FPS, FULL_WIDTH wide and ≥ CLEAN_KBPS, of cleanSeconds. */
  cleanGoodSeconds: number;
  // Relay and sharer
  layerMoves: number | null;
  narrow: ViewerLayer;
  clean: ViewerLayer;
  layersSent: number | null;
  sharerTargetKbps: number | null;
  // Against the --layers 1 baseline
  fpsVsL1?: number | null;
  smoothPctVsL1?: number | null;
  latencyP95VsL1?: number | null;
  decodedVsL1?: number | null;
}

function narrowFigures(seconds: Second[]) {
  // Here a second's latency sample also needs fps > 0.
  const { window: win, figures } = smoothFigures(seconds, (s) => (s.fps > 0 ? s.latencyMs : null));
  const { smoothAtS, windowFromS, ...rest } = figures;
  const shown = win.filter((s) => s.fps > 0 && s.width !== null);
  const counts = new Map<string, number>();
  for (const s of shown) counts.set(`${s.width}x${s.height}`, (counts.get(`${s.width}x${s.height}`) ?? 0) + 1);
  const sizes = [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([k, n]) => `${k} (${Math.round((100 * n) / shown.length)}%)`)
    .join(', ');
  // Keys in the order the rows have always had.
  return {
    smoothAtS,
    windowFromS,
    windowSeconds: win.length,
    ...rest,
    sizes: sizes || 'none',
    meanKbps: round(mean(win.map((s) => s.kbps)), 0),
  };
}

function cleanFigures(seconds: Second[]) {
  const win = seconds.filter((s) => s.at > CLEAN_GRACE_S);
  const good = (s: Second) => s.fps >= CLEAN_FPS && s.width === FULL_WIDTH && s.kbps >= CLEAN_KBPS;
  return {
    cleanSeconds: win.length,
    cleanMinFps: win.length ? round(Math.min(...win.map((s) => s.fps)), 1) : null,
    cleanFullWidthPct: win.length ? round((100 * win.filter((s) => s.width === FULL_WIDTH).length) / win.length, 1) : null,
    cleanMeanKbps: round(mean(win.map((s) => s.kbps)), 0),
    cleanMinKbps: win.length ? round(Math.min(...win.map((s) => s.kbps)), 0) : null,
    cleanGoodSeconds: win.filter(good).length,
  };
}

/** Addresses in the relay's "viewer ADDRESS joined" lines, in order. */
function joinedAddresses(relayStderr: string): string[] {
  return [...relayStderr.matchAll(/viewer (\S+) joined/g)].map((m) => m[1]);
}

/** Waits (up to `timeoutMs`) for the relay's `n`th viewer to join; its address, or null if none came. */
async function nthJoin(relaySaid: () => string, n: number, timeoutMs: number): Promise<string | null> {
  try {
    await waitFor(`viewer ${n + 1} joining`, () => joinedAddresses(relaySaid()).length > n, timeoutMs, 50);
  } catch {
    return null;
  }
  return joinedAddresses(relaySaid())[n];
}

function viewerLayer(address: string | null, relayLine: Record<string, unknown> | null, relayStderr: string): ViewerLayer {
  const per = Array.isArray(relayLine?.perViewer) ? (relayLine!.perViewer as Record<string, unknown>[]) : [];
  const v = address ? per.find((p) => p.address === address) : undefined;
  const num = (x: unknown) => (typeof x === 'number' ? x : null);
  const esc = (address ?? '\u0000').replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return {
    address,
    layer: num(v?.layer),
    estimateKbps: num(v?.estimateKbps),
    layerWhy: typeof v?.layerWhy === 'string' ? v.layerWhy : null,
    moves: (relayStderr.match(new RegExp(`viewer ${esc} to layer \\d+`, 'g')) ?? []).length,
    breakerPauses: (relayStderr.match(new RegExp(`viewer ${esc} paused: .*RFC 8083`, 'g')) ?? []).length,
  };
}

async function systemRun(sys: System, seconds: number, ctx: BenchContext): Promise<Row> {
  const f = {
    sstats: path.join(OUT, `narrow-${sys.tag}-share.ndjson`),
    rstats: path.join(OUT, `narrow-${sys.tag}-relay.ndjson`),
    nstats: path.join(OUT, `narrow-${sys.tag}-narrow.ndjson`),
    cstats: path.join(OUT, `narrow-${sys.tag}-clean.ndjson`),
    nout: path.join(OUT, `narrow-${sys.tag}-narrow.mkv`),
  };
  // A run that writes nothing must not be read as an earlier one's.
  for (const file of Object.values(f)) writeFileSync(file, '');
  const downlink = bottleneckArgs('down', SEED);
  const { result: r, relayStderr, impairStderr } = await relayBehindImpair(
    downlink,
    async ({ relayPort, impairPort, relaySaid }) => {
      let share, narrow, clean;
      try {
        share = udpcast([
          'share', '--relay', `127.0.0.1:${relayPort}`, '--source', 'test', '--size', SIZE, '--fps', String(FPS), '--gop', String(GOP),
          '--bitrate', `${KBPS}k`, '--duration', String(seconds), '--no-dashboard', '--stats-json', f.sstats, ...sys.flags,
        ]);
        await sleep(JOIN_AFTER_MS);
        // The narrow one first, then the clean one once the relay has named the first: its log tells them apart.
        const narrowSpawnMs = Date.now();
        narrow = udpcast(['watch', `127.0.0.1:${impairPort}`, '--player', 'none', '--no-dashboard', '--stats-json', f.nstats, '--output', f.nout]);
        const narrowAddress = await nthJoin(relaySaid, 0, 8000);
        const cleanSpawnMs = Date.now();
        clean = udpcast(['watch', `127.0.0.1:${relayPort}`, '--player', 'none', '--no-dashboard', '--stats-json', f.cstats]);
        const cleanAddress = narrowAddress === null ? null : await nthJoin(relaySaid, 1, 8000);
        await Promise.race([exited(share), sleep((seconds + 20) * 1000)]);
        const exitMs = Date.now();
        // What is still in the downlink's queue and the viewers' repair windows reaches them.
        await sleep(1500);
        return { narrowSpawnMs, cleanSpawnMs, narrowAddress, cleanAddress, exitMs };
      } finally {
        await stop(share);
        await stop(narrow);
        await stop(clean);
      }
    },
    ['--stats-json', f.rstats],
  );
  // The sharer's last full second ends every window; each viewer's seconds are timed from its own spawn.
  const endMs = sharerEndMs(f.sstats, r.exitMs);
  const n = narrowFigures(viewerSeconds(f.nstats, r.narrowSpawnMs, endMs));
  const c = cleanFigures(viewerSeconds(f.cstats, r.cleanSpawnMs, endMs));
  const recordingBytes = statSync(f.nout).size;
  const d = recordingBytes > 0 ? decodeMd5(f.nout, ['-f', 'matroska']) : { md5s: [], errors: null };
  const b = impairDrops(impairStderr, 'down');
  // The relay's per-viewer figures as the stream ended: its last line up to the sharer's last second.
  const relayLines = allStats(f.rstats).filter((l) => !l.final && typeof l.t === 'string' && Date.parse(l.t as string) <= endMs);
  const relayLine = relayLines.at(-1) ?? null;
  const relayLast = lastStats(f.rstats);
  const s = lastStats(f.sstats) ?? {};
  const num = (x: unknown) => (typeof x === 'number' ? x : null);
  if (r.narrowAddress === null || r.cleanAddress === null) ctx.log(`narrow ${sys.tag}: the relay did not log both viewers joining; per-viewer relay figures are missing`);
  return {
    system: sys.label,
    seconds,
    ...n,
    recordingBytes,
    framesDecoded: d.md5s.length,
    decodeErrors: d.errors,
    downlinkForwarded: b.forwarded,
    downlinkDropped: b.rateDropped,
    ...c,
    layerMoves: num(relayLast?.layerMoves),
    narrow: viewerLayer(r.narrowAddress, relayLine, relayStderr),
    clean: viewerLayer(r.cleanAddress, relayLine, relayStderr),
    layersSent: num(s.layersSent),
    sharerTargetKbps: num(s.targetKbps),
  };
}

const layerCell = (v: ViewerLayer) =>
  v.address === null ? '–' : `${v.layer ?? '–'} / ${v.estimateKbps ?? '–'} / ${v.layerWhy ?? '–'}`;

export async function narrowBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Narrow viewer: a 1.2 Mbit/s downlink on a 2.5 Mbit/s stream, next to a clean viewer (issue 14)';
  const gone = missing('ffmpeg');
  if (gone) return { name: 'narrow', title, skipped: gone, rows: [], markdown: '' };
  const seconds = ctx.quick ? 14 : 25;

  const rows: Row[] = [];
  for (const sys of SYSTEMS) {
    rows.push(await systemRun(sys, seconds, ctx));
    ctx.log(`narrow ${JSON.stringify(rows.at(-1))}`);
  }
  const [layered, base, fixed] = rows;
  for (const r of rows) {
    if (r === base) continue;
    r.fpsVsL1 = ratio(r.meanFps, base.meanFps);
    r.smoothPctVsL1 = ratio(r.smoothSecondsPct, base.smoothSecondsPct);
    r.latencyP95VsL1 = ratio(r.latencyP95Ms, base.latencyP95Ms);
    r.decodedVsL1 = ratio(r.framesDecoded, base.framesDecoded);
  }

  const markdown = [
    '**Narrow viewer** (behind the 1.2 Mbit/s downlink):',
    '',
    table(
      [
        'system', '≥ 20 fps at s', 'window from s', 'mean fps', 's ≥ 20 fps %', 'latency p50 ms', 'p95 ms', 'sizes seen', 'kbit/s',
        'decoded', 'decoder errors', 'downlink: forwarded / dropped', 'paused by relay', 'mean fps × layers 1', 's ≥ 20 fps × layers 1',
        'p95 × layers 1', 'decoded × layers 1',
      ],
      rows.map((r) => [
        r.system, r.smoothAtS ?? 'never', r.windowFromS, r.meanFps, r.smoothSecondsPct, r.latencyP50Ms, r.latencyP95Ms, r.sizes, r.meanKbps,
        r.framesDecoded, r.recordingBytes === 0 ? '– (empty file)' : r.decodeErrors, r.downlinkForwarded === null ? null : `${r.downlinkForwarded} / ${r.downlinkDropped}`,
        r.narrow.breakerPauses, r.fpsVsL1, r.smoothPctVsL1, r.latencyP95VsL1, r.decodedVsL1,
      ]),
    ),
    '',
    '**Clean viewer** (same stream, straight at the relay) **and the relay:**',
    '',
    table(
      [
        'system', 'clean: min fps', 's at 1280 wide %', 'mean kbit/s', 'min kbit/s', 's meeting all', 'relay layer moves',
        'narrow: layer / estimate kbit/s / why', 'moves', 'clean: layer / estimate / why', 'moves', 'layers sent', 'sharer kbit/s',
      ],
      rows.map((r) => [
        r.system, r.cleanMinFps, r.cleanFullWidthPct, r.cleanMeanKbps, r.cleanMinKbps, `${r.cleanGoodSeconds} / ${r.cleanSeconds}`, r.layerMoves,
        layerCell(r.narrow), r.narrow.moves, layerCell(r.clean), r.clean.moves, r.layersSent, r.sharerTargetKbps,
      ]),
    ),
    '',
    `The model: \`udpcast relay\`, with \`udpcast impair --down-rate ${RATE} --down-queue ${QUEUE} --delay ${DELAY}\` in front of it ` +
      `for one viewer only: its downlink (relay → viewer) is a 1.2 Mbit/s link (token bucket) behind a tail-drop FIFO of ${QUEUE} ` +
      `datagrams (${QUEUE} × ~1250 bytes at 1.2 Mbit/s is ~100 ms of buffer), 10 ms one-way delay both ways; its uplink ` +
      '(feedback, NACKs) is only delayed. The sharer publishes to the relay directly, so its uplink is clean. ' +
      `\`share --source test --size ${SIZE} --fps ${FPS} --gop ${GOP} --bitrate ${KBPS}k\` for ${seconds} s, with \`--layers 3\` ` +
      '(1280x720 at 2500 kbit/s, 640x360 at 1000, 320x180 at 375; the relay moves each viewer to a layer its path takes, by ' +
      'that viewer\'s RFC 8888 feedback, at a keyframe), `--layers 1` (one layer, congestion control on the sharer\'s uplink ' +
      'only: the baseline for a narrow downlink) and `--layers 1 --no-adapt` (a fixed 2500 kbit/s). ' +
      `About ${JOIN_AFTER_MS / 1000} s after the sharer starts, the narrow viewer (\`watch --player none --output N.mkv\` ` +
      'through the proxy) joins, then, once the relay has logged it, the clean one (straight at the relay; about a second ' +
      'later). Plain FFmpeg RTP through a 1.2 Mbit/s path is in the uplink benchmark.',
    '',
    `Figures, all read from each viewer's own spawn to the sharer's last full stats second. Narrow: "≥ 20 fps at s" is the ` +
      `end of the first of ${SMOOTH_RUN} consecutive stats seconds at ≥ ${SMOOTH_FPS} fps ("never" if none; target ≤ ${SETTLE_S} s); ` +
      `the window runs from that point, or from second ${SETTLE_S} if later, to the end; over it, mean fps (frames completed ` +
      `a second), the share of seconds at ≥ ${SMOOTH_FPS} fps, latency p50 / p95 (target ≤ ${LATENCY_TARGET_MS} ms), the picture ` +
      'sizes of the seconds that completed frames, and the mean bitrate received. Latency is the viewer\'s `latencyMs`: capture → ' +
      'frame complete at the viewer, a component figure (no decode or display), one sample a second; seconds that completed ' +
      'no frame are left out (the figure then repeats an old frame\'s). Decoded / decoder errors: N.mkv decoded by FFmpeg ' +
      '(`-f matroska`) afterwards, frames and error lines (target 0 errors; "empty file": the viewer never completed a frame to record). Downlink forwarded / dropped: datagrams the proxy ' +
      'passed and tail-dropped towards the narrow viewer (its summary). Paused by relay: the relay\'s RFC 8083 circuit ' +
      `breaker stopping media to the narrow viewer. Clean: over its seconds after the first ${CLEAN_GRACE_S}, the lowest fps, the ` +
      `share at ${FULL_WIDTH} wide, mean and lowest bitrate received, and how many seconds met all of ≥ ${CLEAN_FPS} fps, ` +
      `${FULL_WIDTH} wide and ≥ ${CLEAN_KBPS} kbit/s (target: every one). Relay: layer moves (all viewers, its last stats line); ` +
      'per viewer, from its last stats line within the stream, the layer (0 = full; – with one layer), its estimate of the ' +
      'viewer\'s path (– until the path has shown a limit) and why the viewer last moved; moves = the relay\'s log lines ' +
      'moving that viewer. Layers sent and sharer kbit/s: the sharer\'s last stats line (layers it still sends, its encoder ' +
      'target). The × layers 1 ratios divide by the `--layers 1` row (for p95, lower is better); "–" where there is nothing ' +
      'to divide by.',
  ].join('\n');

  const baseNote = (x: unknown) => `--layers 1: ${x}`;
  const cleanOk = layered.cleanSeconds > 0 && layered.cleanGoodSeconds === layered.cleanSeconds;
  const targets: BenchResult['targets'] = [
    {
      target: `1.2 Mbit/s downlink: --layers 3 viewer reaches ≥ ${SMOOTH_FPS} fps within ${SETTLE_S} s of joining (issue 14)`,
      met: layered.smoothAtS !== null && layered.smoothAtS <= SETTLE_S,
      detail: `${layered.smoothAtS === null ? 'never' : `at ${layered.smoothAtS} s`} (${baseNote(base.smoothAtS === null ? 'never' : `${base.smoothAtS} s`)}; --no-adapt: ${fixed.smoothAtS === null ? 'never' : `${fixed.smoothAtS} s`})`,
    },
    {
      target: `1.2 Mbit/s downlink: --layers 3 viewer mean ≥ ${SMOOTH_FPS} fps after that (issue 14)`,
      met: layered.meanFps === null ? null : layered.meanFps >= SMOOTH_FPS,
      detail: `${layered.meanFps} fps from second ${layered.windowFromS} (${layered.windowSeconds} s), ${layered.smoothSecondsPct}% of seconds ≥ ${SMOOTH_FPS}, at ${layered.sizes} (${baseNote(`${base.meanFps} fps`)})`,
    },
    {
      target: `1.2 Mbit/s downlink: --layers 3 viewer latency p95 ≤ ${LATENCY_TARGET_MS} ms (issue 14)`,
      met: layered.latencyP95Ms === null ? null : layered.latencyP95Ms <= LATENCY_TARGET_MS,
      detail: `p95 ${layered.latencyP95Ms} ms, p50 ${layered.latencyP50Ms} ms over ${layered.latencySamples} seconds (${baseNote(`p95 ${base.latencyP95Ms ?? '–'} ms`)})`,
    },
    {
      target: '1.2 Mbit/s downlink: --layers 3, 0 decoder errors in the narrow viewer\'s recording (issue 14)',
      met: layered.framesDecoded > 0 && layered.decodeErrors === 0,
      detail: `${layered.decodeErrors} error lines, ${layered.framesDecoded} frames decoded (${baseNote(base.recordingBytes === 0 ? 'an empty recording' : `${base.decodeErrors} errors, ${base.framesDecoded} frames`)})`,
    },
    {
      target: `1.2 Mbit/s downlink: --layers 3, the clean viewer keeps ≥ ${CLEAN_FPS} fps at ${FULL_WIDTH} wide, ≥ ${CLEAN_KBPS} kbit/s every second (issue 14)`,
      met: layered.cleanSeconds === 0 ? null : cleanOk,
      detail: `${layered.cleanGoodSeconds} of ${layered.cleanSeconds} seconds; min ${layered.cleanMinFps} fps, ${layered.cleanFullWidthPct}% at ${FULL_WIDTH}, min ${layered.cleanMinKbps} kbit/s (${baseNote(`${base.cleanGoodSeconds} of ${base.cleanSeconds}`)})`,
    },
  ];
  return { name: 'narrow', title, rows: rows as unknown as Record<string, unknown>[], markdown, targets };
}
