/**
 * Issue 15: lip sync at the glass and the ear. `share --source test --audio test` (a beep on each
 * white flash of the pattern, both captured at the same instant) → its relay → `watch`, whose
 * ffplay window is on an Xvfb screen, filmed at 100 fps, and whose sound plays into a PulseAudio
 * null sink whose monitor is recorded as it plays (bench/ear.ts). A beep's onset minus its flash's
 * appearance is the sound's capture → ear latency minus the picture's capture → glass latency.
 * Target: at most 20 ms (the sound no later than the picture by more than that), and within
 * ITU-R BT.1359's detectability window (45 ms early, 125 ms late) for every flash.
 *
 * Issue 17 ("a stream's Opus audio plays in the page, in sync"): the same rig with Chromium as
 * the viewer, the relay's page (WebRTC) in a kiosk window filling the screen, its sound into the
 * same PulseAudio, unmuted as a person does (the page starts muted, as autoplay asks). Target:
 * every flash within the same window.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { AUDIO_FRAME_CHOICES, AUDIO_FRAME_MS_DEFAULT } from '../src/defaults.ts';
import { AUDIO_TEST_BEEP_S, AUDIO_TEST_HZ, AUDIO_TEST_PERIOD_S, testFlashFilter } from '../src/capture/audio.ts';
import { PAREC_ARGS, Heard, flashesSeen, pulseCommand, soundMinusPicture } from './ear.ts';
import {
  Frames, TINY_OUT, freePort, freeTcpPort, lastStats, missing, percentile, round, run, sleep, stop, table, udpcast, waitFor, waitForLine, x11grabIn, xvfb,
  type BenchContext, type BenchResult,
} from './lib.ts';
import { CHROMIUM_FLAGS, poll } from './webrtc.ts';
import { chromiumPath, launchChromium, type Browser } from '../test/helpers/browser.ts';

const SCREEN = { width: 1280, height: 720 };
const SIZE = { width: 640, height: 360 };
/** The first seconds: the player's sound device settles (FfplaySink drains a start-up lag). */
const SETTLE_MS = 2500;
const EARLY_MAX_MS = 45;
const LATE_MAX_MS = 125;
const TARGET_MS = 20;
const LOCAL = 'plain ffplay, the same flash and beep from a local lavfi graph (baseline)';
const CHROMIUM = 'Chromium, the relay\'s page (WebRTC), 10 ms packets (issue 17)';
/** How long a browser may take from its start to the page's first picture. */
const BROWSER_START_MS = 20_000;

/** Who plays it: `udpcast watch` (share given these options), plain ffplay, or Chromium's page. */
type Viewer = string[] | 'local' | 'chromium';

interface Row {
  system: string;
  run: number;
  flashes: number;
  p50Ms: number | null;
  p95Ms: number | null;
  minMs: number | null;
  maxMs: number | null;
  drains: number;
}

/**
 * The baseline: plain ffplay showing the same flash and beep from a local lavfi graph (no capture
 * pipe, no encoding, no network), as a person would play a file; what it measures is this rig and
 * ffplay's own output paths, which udpcast's figure includes too.
 */
function localFfplayArgs(): string[] {
  const on = `lt(mod(t,${AUDIO_TEST_PERIOD_S}),${AUDIO_TEST_BEEP_S})`;
  const graph =
    `testsrc2=size=${SIZE.width}x${SIZE.height}:rate=30,${testFlashFilter()}[out0];` +
    `aevalsrc=exprs='if(${on},0.5*sin(2*PI*${AUDIO_TEST_HZ}*t),0)':s=48000:c=stereo[out1]`;
  return ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', graph];
}

async function lipsyncRun(display: string, dir: string, name: string, viewer: Viewer, watchEnv: NodeJS.ProcessEnv, seconds: number, n: number): Promise<Row & { offsets: number[] }> {
  const p = pulseCommand(dir);
  const pulse = run('pulseaudio', p.args, { env: { ...process.env, ...p.serverEnv } });
  let share, watch, rec, film;
  let browser: Browser | undefined;
  try {
    await waitFor('PulseAudio', () => existsSync(p.socket), 10_000);
    const port = await freePort();
    const http = viewer === 'chromium' ? await freeTcpPort() : 0;
    if (viewer !== 'local') {
      const extra = viewer === 'chromium' ? ['--http', String(http)] : viewer;
      share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', `${SIZE.width}x${SIZE.height}`, '--audio', 'test', '--no-dashboard', ...extra]);
      await waitForLine(share, /sound: /, 20_000, 'the sharer to send sound');
    }
    rec = run('parec', PAREC_ARGS, { env: { ...process.env, ...p.env }, stdio: ['ignore', 'pipe', 'ignore'] });
    const ear = new Heard();
    ear.attach(rec.stdout!, () => performance.now());
    const x = (SCREEN.width - 8) / 2;
    const y = (SCREEN.height - 8) / 2;
    film = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...x11grabIn(`${display}+${x},${y}`, 100, { drawMouse: false, size: '8x8' }), ...TINY_OUT], { stdio: ['ignore', 'pipe', 'ignore'] });
    const frames = new Frames();
    frames.attach(film.stdout!);
    await sleep(500);
    let start = performance.now();
    const stats = path.join(dir, `${name}-${n}-watch.ndjson`);
    const env = { ...process.env, DISPLAY: display, ...p.env, ...watchEnv };
    if (viewer === 'chromium') {
      // Kiosk at 0,0 of the screen's size: the page's full-window video, its middle at the screen's.
      browser = await launchChromium({ headless: false, env, windowSize: `${SCREEN.width},${SCREEN.height}`, extraArgs: CHROMIUM_FLAGS });
      const tab = await browser.open(`http://127.0.0.1:${http}/watch/main`);
      await poll('the page\'s first picture', () => tab.evaluate<number | null>('firstPictureMs ?? null'), BROWSER_START_MS);
      // The page starts muted (autoplay); a person presses m. Counted from here.
      await tab.evaluate('video.muted = false');
      start = performance.now();
    } else {
      watch = viewer === 'local' ? run('ffplay', localFfplayArgs(), { env }) : udpcast(['watch', `127.0.0.1:${port}`, '--no-dashboard', '--stats-json', stats], { env });
    }
    await sleep(seconds * 1000);
    await stop(watch);
    await browser?.close();
    await sleep(300);
    const seen = flashesSeen(frames, start + SETTLE_MS).slice(0, -1);
    const offsets = soundMinusPicture(seen, ear.onsets().filter((t) => t > start));
    const w = Array.isArray(viewer) ? (lastStats(stats) ?? {}) : {};
    return {
      system: name, run: n, flashes: offsets.length, offsets,
      p50Ms: round(percentile(offsets, 50), 0), p95Ms: round(percentile(offsets, 95), 0),
      minMs: offsets.length ? Math.min(...offsets) : null, maxMs: offsets.length ? Math.max(...offsets) : null,
      drains: Number(w.playerSoundDrains ?? 0),
    };
  } finally {
    await stop(watch);
    await browser?.close();
    await stop(film);
    await stop(rec);
    await stop(share);
    await stop(pulse);
  }
}

export async function lipsyncBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Lip sync at the glass and the ear: beep heard minus flash seen (issue 15)';
  const gone = missing('ffmpeg', 'ffplay', 'Xvfb', 'pulseaudio', 'parec');
  if (gone) return { name: 'lipsync', title, skipped: gone, rows: [], markdown: '' };
  const seconds = ctx.quick ? 8 : 20;
  const runs = ctx.quick ? 1 : 2;
  // The default, the same with every packet sent (no DTX), the other packet length, Chromium's
  // page (where there is a Chromium), and plain ffplay playing the same flash and beep locally.
  const systems: Array<[string, Viewer, NodeJS.ProcessEnv]> = [
    [`${AUDIO_FRAME_MS_DEFAULT} ms packets (default)`, [], {}],
    [`${AUDIO_FRAME_MS_DEFAULT} ms packets, --no-audio-dtx`, ['--no-audio-dtx'], {}],
    ...AUDIO_FRAME_CHOICES.filter((ms) => ms !== AUDIO_FRAME_MS_DEFAULT).map((ms): [string, string[], NodeJS.ProcessEnv] => [`${ms} ms packets`, ['--audio-frame', String(ms)], {}]),
    ...(chromiumPath() ? [[CHROMIUM, 'chromium', {}] as [string, Viewer, NodeJS.ProcessEnv]] : []),
    [LOCAL, 'local', {}],
  ];
  const dir = mkdtempSync(path.join(tmpdir(), 'udpcast-lipsync-'));
  const { display, server } = await xvfb(`${SCREEN.width}x${SCREEN.height}`);
  const rows: Array<Row & { offsets: number[] }> = [];
  try {
    // Paired: each system once per round, so drift in the machine's load falls on all alike.
    for (let n = 1; n <= runs; n++) {
      for (const [name, extra, env] of systems) {
        rows.push(await lipsyncRun(display, dir, name, extra, env, seconds, n));
        ctx.log(`lipsync ${JSON.stringify(rows.at(-1))}`);
      }
    }
  } finally {
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
  }
  const all = (system: string) => rows.filter((r) => r.system === system).flatMap((r) => r.offsets);
  const summary = systems.map(([name]) => {
    const o = all(name);
    return { system: name, flashes: o.length, p50Ms: round(percentile(o, 50), 0), p95Ms: round(percentile(o, 95), 0), minMs: o.length ? Math.min(...o) : null, maxMs: o.length ? Math.max(...o) : null };
  });
  const base = summary.find((s) => s.system === LOCAL);
  const minus = (a: number | null | undefined, b: number | null | undefined) => (a == null || b == null ? null : a - b);
  const markdown = [
    table(['sound sent as', 'flashes', 'sound − picture p50 ms', 'p95 ms', 'min ms', 'max ms', 'p50 − plain ffplay\'s ms'], summary.map((s) => [s.system, s.flashes, s.p50Ms, s.p95Ms, s.minMs, s.maxMs, s.system === LOCAL ? null : minus(s.p50Ms, base?.p50Ms)])),
    '',
    table(['system', 'run', 'flashes', 'p50 ms', 'p95 ms', 'min ms', 'max ms', 'sound drains'], rows.map((r) => [r.system, r.run, r.flashes, r.p50Ms, r.p95Ms, r.minMs, r.maxMs, r.drains])),
    '',
    `Each run: \`share --source test --size ${SIZE.width}x${SIZE.height} --audio test\` → its own relay → \`watch\` (the ffplay window on ` +
      `an Xvfb ${SCREEN.width}x${SCREEN.height} screen, filmed at 100 fps by x11grab; its sound through SDL into a private PulseAudio's ` +
      `null sink, whose monitor parec records in 5 ms fragments), ${seconds} s; flashes from ${SETTLE_MS / 1000} s after watch started. ` +
      'Sound − picture: each flash\'s first white frame in the film paired with the nearest beep onset heard, both on this machine\'s ' +
      'clock; positive means the sound comes after its picture. A beep and its flash are captured at the same instant by the sharer\'s ' +
      'FFmpeg, so this is capture → ear minus capture → glass. Sound drains: times watch found ffplay\'s sound behind its picture and dropped the lag. ' +
      'The baseline: ffplay (default options, audio as master clock) playing the same flash and beep from a local lavfi graph in a window of the same ' +
      'size, through the same PulseAudio and the same film: no capture pipe, encoder or network, so its figure is this rig\'s and ffplay\'s own ' +
      'output paths; the last column is what udpcast adds to them. ' +
      `Chromium: \`share --http\`'s embedded relay, its page /watch/main in a kiosk window of ${SCREEN.width}x${SCREEN.height} at 0,0 ` +
      '(the picture scaled to fill it, its middle filmed), sound into the same PulseAudio; unmuted through the DevTools protocol once ' +
      `it shows its first picture, flashes from ${SETTLE_MS / 1000} s after that.`,
  ].join('\n');
  const d = summary.find((s) => s.system.includes('(default)'));
  const c = summary.find((s) => s.system === CHROMIUM);
  return {
    name: 'lipsync',
    title,
    rows: rows.map(({ offsets: _o, ...r }) => r) as unknown as Record<string, unknown>[],
    markdown,
    targets: [
      {
        target: `capture → ear no more than ${TARGET_MS} ms above capture → glass (median), every flash within −${EARLY_MAX_MS} / +${LATE_MAX_MS} ms (issue 15)`,
        met: d && d.p50Ms !== null ? d.p50Ms <= TARGET_MS && d.minMs! >= -EARLY_MAX_MS && d.maxMs! <= LATE_MAX_MS : null,
        detail: d ? `sound − picture p50 ${d.p50Ms} ms (plain ffplay playing it locally: ${base?.p50Ms} ms), p95 ${d.p95Ms} ms, range ${d.minMs}…${d.maxMs} ms over ${d.flashes} flashes` : 'not run',
      },
      {
        target: `the page's sound in sync with its picture in Chromium: every flash within −${EARLY_MAX_MS} / +${LATE_MAX_MS} ms (issue 17)`,
        met: c && c.p50Ms !== null ? c.minMs! >= -EARLY_MAX_MS && c.maxMs! <= LATE_MAX_MS : null,
        detail: c ? `sound − picture p50 ${c.p50Ms} ms, p95 ${c.p95Ms} ms, range ${c.minMs}…${c.maxMs} ms over ${c.flashes} flashes` : 'not run (no chromium)',
      },
    ],
  };
}
