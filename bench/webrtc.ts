/**
 * Issue 17: a browser as the viewer, at the glass. The rig is bench/glass.ts's (a 720p30 shared
 * Xvfb screen flipped black ↔ white, the viewer's window on a second screen, filmed at 250 fps);
 * one `udpcast share` publishing to a standalone `udpcast relay --http` per round, watched in
 * turn by, paired rounds:
 *   (w) `udpcast watch`, its own ffplay window: the baseline;
 *   (c) Chromium showing the relay's page /watch/main (WebRTC, WHEP) in a real window: kiosk,
 *       1280x720 at the screen's top-left corner, so the page's full-window <video> shows the
 *       1280x720 picture one to one and the probe square sits inside it.
 * And each browser's join: the page's own `firstPictureMs` (navigation → the first picture shown).
 * Target: (c)'s p50 ≤ 150 ms on loopback, with its ratio to (w)'s in the same run.
 */
import type { ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import {
  FPS, GOP, START_TIMEOUT_MS, SIZE, VIEWER_SCREEN, attach, liveFlips, onScreen, openScreens, probeRate, startProbe, teardown, xdotool,
  type Pipeline, type Probe, type Screens,
} from './glass.ts';
import {
  captureStderr, childPids, flipSummary, freePort, freeTcpPort, missing, percentile, ratio, rng, round, sleep, stopTree, table, udpcast,
  versionOf, waitFor, waitForLine, xsetroot, type BenchContext, type BenchResult, type Flip,
} from './lib.ts';
import { chromiumPath, launchChromium, type Browser, type Tab } from '../test/helpers/browser.ts';

/** Issue 17: glass to glass in Chromium, p50, on loopback. */
const TARGET_P50_MS = 150;
const STREAM = 'main';
const [WIDTH, HEIGHT] = SIZE.split('x').map(Number);
/**
 * Chromium in a real window on the viewer's screen. No window manager runs on Xvfb, so --kiosk
 * gets no full screen from one: the window keeps --window-size at --window-position, 1280x720 at
 * 0,0, and kiosk leaves out the tab strip and the address bar (measured: the page's innerWidth x
 * innerHeight is 1280x720, the <video> at 0,0 1280x720). Xvfb has no GL: with or without
 * --disable-gpu chrome://gpu says "Compositing: Software only"; it is given so that no GPU process
 * is tried. Compositing on SwiftShader instead (--use-gl=angle --use-angle=swiftshader
 * --enable-unsafe-swiftshader) took 2 cores to a load of 8 and the p50 to 385 ms, two frames in
 * three not shown (measured once by hand). The rest keeps a page nobody looks at from being
 * throttled as hidden.
 */
export const CHROMIUM_FLAGS = [
  '--kiosk',
  '--window-position=0,0',
  '--disable-gpu',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
  '--disable-background-timer-throttling',
];

type System = 'watch' | 'chromium';

/** What the page's peer connection says about the picture at the end of a round (getStats, inbound-rtp video). */
interface PageStats {
  framesDecoded: number;
  framesDropped: number;
  /** Mean time a frame waited in the jitter buffer, ms. */
  jitterBufferMs: number | null;
  /** Mean decode time a frame, ms. */
  decodeMs: number | null;
  /** Mean receive → decoded time a frame (totalProcessingDelay), ms. */
  processingMs: number | null;
  /** Frames the video element had (getVideoPlaybackQuality's totalVideoFrames) … */
  videoFrames: number;
  /** … and of them, did not show (droppedVideoFrames): decoded, then passed over by the compositor. */
  notShown: number;
}

const PAGE_STATS = `(async () => {
  let v;
  if (pc) (await pc.getStats()).forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') v = s; });
  if (!v) return null;
  const per = (total, n) => (n ? (1000 * total) / n : null);
  return {
    framesDecoded: v.framesDecoded ?? 0,
    framesDropped: v.framesDropped ?? 0,
    jitterBufferMs: per(v.jitterBufferDelay, v.jitterBufferEmittedCount),
    decodeMs: per(v.totalDecodeTime, v.framesDecoded),
    processingMs: per(v.totalProcessingDelay, v.framesDecoded),
    videoFrames: video.getVideoPlaybackQuality().totalVideoFrames,
    notShown: video.getVideoPlaybackQuality().droppedVideoFrames,
  };
})()`;

/** A standalone relay with its HTTP server (the pages, WHEP), and `udpcast share` publishing the shared screen to it. */
async function session(screens: Screens): Promise<{ procs: ChildProcess[]; port: number; http: number }> {
  const port = await freePort();
  const http = await freeTcpPort();
  const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--http', String(http), '--rtsp-port', '0', '--no-dashboard']);
  const relaySaid = captureStderr(relay);
  const procs = [relay];
  try {
    await waitForLine(relay, new RegExp(`http://127\\.0\\.0\\.1:${http}/`), START_TIMEOUT_MS, 'udpcast relay: its HTTP address');
    // The same capture and encoder settings as glass.ts's (c), only to the relay above instead of an embedded one.
    const share = udpcast([
      'share', '--relay', `127.0.0.1:${port}`, '--source', 'screen', '--display', screens.shared,
      '--fps', String(FPS), '--gop', String(GOP), '--codec', 'h264', '--no-dashboard',
    ]);
    procs.unshift(share);
    await waitFor('the relay to hear the share', () => /publisher/.test(relaySaid()), START_TIMEOUT_MS);
  } catch (err) {
    for (const c of procs) await stopTree(c);
    throw new Error(`${(err as Error).message}; the relay said: ${relaySaid().slice(-400)}`);
  }
  return { procs, port, http };
}

/** (w): `udpcast watch` of the relay, its ffplay window on the viewer's screen. */
function watch(screens: Screens, port: number): Pipeline {
  const w = udpcast(['watch', `127.0.0.1:${port}`, '--no-dashboard'], onScreen(screens.viewer));
  return { procs: [w], player: () => (w.pid ? childPids(w.pid, 'ffplay')[0] : undefined) };
}

/** Polls `read` until it gives something other than null. */
export async function poll<T>(what: string, read: () => Promise<T | null>, timeoutMs: number, everyMs = 50): Promise<T> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const v = await read().catch(() => null);
    if (v !== null) return v;
    if (performance.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * Chromium's window on `display`: the visible one of the browser process `pid` with the size asked
 * for (the browser has another, unmapped, window).
 */
async function chromiumWindow(display: string, pid: number): Promise<{ id: string; x: number; y: number; width: number; height: number }> {
  return poll('a visible Chromium window', async () => {
    const ids = (await xdotool(display, ['search', '--onlyvisible', '--pid', String(pid)])).trim().split('\n').filter(Boolean);
    for (const id of ids) {
      const g = Object.fromEntries((await xdotool(display, ['getwindowgeometry', '--shell', id])).trim().split('\n').map((l) => l.split('=')));
      const w = { id, x: Number(g.X), y: Number(g.Y), width: Number(g.WIDTH), height: Number(g.HEIGHT) };
      if (w.width >= WIDTH && w.height >= HEIGHT) return w;
    }
    return null;
  }, START_TIMEOUT_MS, 200);
}

interface Join {
  /** The page's firstPictureMs: its navigation → the first picture shown (requestVideoFrameCallback). */
  firstPictureMs: number;
  /** The page's steps before it, ms after navigation: offer sent, answer in, connected. */
  steps: { offered?: number; answered?: number; connected?: number };
}

/** (c): Chromium on the viewer's screen, the page of `STREAM` opened; resolves when it shows its first picture. */
async function browse(screens: Screens, http: number): Promise<{ browser: Browser; tab: Tab; join: Join }> {
  const browser = await launchChromium({ headless: false, env: onScreen(screens.viewer).env, windowSize: `${WIDTH},${HEIGHT}`, extraArgs: CHROMIUM_FLAGS });
  try {
    const tab = await browser.open(`http://127.0.0.1:${http}/watch/${STREAM}`);
    const firstPictureMs = await poll('the page\'s first picture', () => tab.evaluate<number | null>('firstPictureMs ?? null'), START_TIMEOUT_MS);
    const steps = await tab.evaluate<Join['steps']>('steps');
    return { browser, tab, join: { firstPictureMs, steps } };
  } catch (err) {
    const said = browser.stderr().split('\n').filter((l) => !/dbus|DBus/.test(l)).slice(-10).join('\n');
    await browser.close();
    throw new Error(`${(err as Error).message}; chromium said:\n${said}`);
  }
}

export async function webrtcBench(ctx: BenchContext): Promise<BenchResult> {
  const name = 'webrtc';
  const title = 'A browser as the viewer: Chromium playing the relay\'s page over WebRTC, at the glass (issue 17)';
  const gone = missing('Xvfb', 'xsetroot', 'xdotool', 'ffmpeg', 'ffplay') ?? (chromiumPath() ? null : 'needs chromium on PATH');
  if (gone) return { name, title, skipped: gone, rows: [], markdown: '' };
  // As in bench/rtsp.ts: where a player settles is set anew at each start, so many short paired rounds.
  const rounds = ctx.quick ? 6 : 12;
  const flips = ctx.quick ? 6 : 8;
  const r = rng(17);
  const rows: Record<string, unknown>[] = [];
  const live: Record<System, number[]> = { watch: [], chromium: [] };
  const missed: Record<System, number> = { watch: 0, chromium: 0 };
  const joins: Array<Join & { round: number }> = [];
  const pageStats: Array<PageStats & { round: number }> = [];
  const { screens, close } = await openScreens();
  try {
    for (let round_ = 1; round_ <= rounds; round_++) {
      let s: Awaited<ReturnType<typeof session>> | undefined;
      try {
        await xsetroot(screens.shared, 'black');
        s = await session(screens);
        // Which viewer goes first alternates, so neither always meets the younger encoder.
        const order: System[] = round_ % 2 ? ['watch', 'chromium'] : ['chromium', 'watch'];
        for (const system of order) {
          await xsetroot(screens.shared, 'black');
          let p: Pipeline | undefined;
          let probe: Probe | undefined;
          let browser: Browser | undefined;
          try {
            let done: Flip[];
            if (system === 'watch') {
              p = watch(screens, s.port);
              probe = await attach(screens, p);
              done = await liveFlips(screens, probe, flips, r);
            } else {
              const b = await browse(screens, s.http);
              browser = b.browser;
              joins.push({ round: round_, ...b.join });
              probe = await startProbe(screens.viewer, await chromiumWindow(screens.viewer, b.browser.pid));
              done = await liveFlips(screens, probe, flips, r);
              const stats = await b.tab.evaluate<PageStats | null>(PAGE_STATS).catch(() => null);
              if (stats) pageStats.push({ round: round_, ...stats });
            }
            const sum = flipSummary(done);
            live[system].push(...sum.latenciesMs.filter((x): x is number => x !== null));
            missed[system] += sum.missed;
            const w = probe.win;
            rows.push({ system, round: round_, ...sum, window: `${w.width}x${w.height}+${w.x}+${w.y}`, probeFps: probeRate(probe) });
            const page = system === 'chromium' ? ` join ${JSON.stringify(joins.at(-1))} page ${JSON.stringify(pageStats.at(-1))}` : '';
            ctx.log(`webrtc ${system} round ${round_}: ${JSON.stringify(rows.at(-1))}${page}`);
          } catch (err) {
            ctx.log(`webrtc ${system} round ${round_}: FAILED: ${(err as Error).message}`);
            rows.push({ system, round: round_, failed: (err as Error).message });
          } finally {
            await teardown(p, probe);
            await browser?.close();
          }
        }
      } catch (err) {
        ctx.log(`webrtc round ${round_}: FAILED: ${(err as Error).message}`);
        rows.push({ system: 'session', round: round_, failed: (err as Error).message });
      } finally {
        for (const c of s?.procs ?? []) await stopTree(c);
      }
    }
  } finally {
    await close();
  }

  const p50 = (x: System) => round(percentile(live[x], 50), 1);
  const p95 = (x: System) => round(percentile(live[x], 95), 1);
  const ratioP50 = ratio(p50('chromium'), p50('watch'));
  const ratioP95 = ratio(p95('chromium'), p95('watch'));
  const firstPictures = joins.map((j) => j.firstPictureMs);
  const median = (k: 'jitterBufferMs' | 'decodeMs' | 'processingMs') => round(percentile(pageStats.flatMap((x) => (x[k] === null ? [] : [x[k]!])), 50), 1);
  const chromium = versionOf(chromiumPath()!, '--version')?.match(/^\S+ [\d.]+/)?.[0] ?? 'Chromium';
  const chromiumFlips = live.chromium.length + missed.chromium;
  const videoFrames = pageStats.reduce((a, x) => a + x.videoFrames, 0);
  const notShown = pageStats.reduce((a, x) => a + x.notShown, 0);
  const label: Record<System, string> = {
    watch: '(w) `udpcast watch`, its ffplay window',
    chromium: '(c) Chromium, the relay\'s page /watch/main (WebRTC)',
  };
  const markdown = [
    table(
      ['viewer (share → relay → …; 720p30, x264 ultrafast/zerolatency, GOP 60)', 'flips seen', 'missed', 'p50 ms', 'p95 ms', '× watch p50', '× watch p95'],
      (['watch', 'chromium'] as const).map((x) => [label[x], live[x].length, missed[x], p50(x), p95(x), x === 'watch' ? 1 : ratioP50, x === 'watch' ? 1 : ratioP95]),
    ),
    '',
    table(['system', 'round', 'flips', 'missed', 'p50 ms', 'p95 ms', 'window', 'probe fps'], rows.map((x) => [x.system, x.round, x.flips ?? `failed: ${x.failed}`, x.missed, x.p50Ms, x.p95Ms, x.window, x.probeFps])),
    '',
    table(
      ['round', 'page navigation → first picture ms', 'offer sent / answer in / connected, ms', 'jitter buffer ms a frame', 'decode ms a frame', 'frames decoded / dropped', 'video element: frames / not shown'],
      joins.map((j) => {
        const st = pageStats.find((x) => x.round === j.round);
        return [j.round, j.firstPictureMs, `${j.steps.offered ?? '–'} / ${j.steps.answered ?? '–'} / ${j.steps.connected ?? '–'}`, round(st?.jitterBufferMs, 1), round(st?.decodeMs, 1), st ? `${st.framesDecoded} / ${st.framesDropped}` : '–', st ? `${st.videoFrames} / ${st.notShown}` : '–'];
      }),
    ),
    '',
    `${rounds} rounds, each a fresh \`udpcast relay --http H --rtsp-port 0\` and \`udpcast share --relay\` of the shared screen ` +
      `(${SIZE}, ${FPS} fps, GOP ${GOP}, H.264, the settings of glass.ts's (c)), watched in turn by both viewers (the first alternating), ` +
      `${flips} flips each, at random moments (seeded) on glass.ts's rig: flip = \`xsetroot -solid\` exiting on the shared screen, seen = the first ` +
      `250 fps x11grab sample of the new colour in an 8x8 square 100 px into the viewer's window, on a second Xvfb screen (${VIEWER_SCREEN}). ` +
      `(w) is \`udpcast watch 127.0.0.1:P\` with whatever ffplay it starts (its window, 1280x720, centred). (c) is ${chromium} in a real ` +
      `window on that screen, \`${CHROMIUM_FLAGS.join(' ')} --window-size=${WIDTH},${HEIGHT}\` (no window manager: the window stays 1280x720 at 0,0, the ` +
      'page\'s full-window video one to one), opening `http://127.0.0.1:H/watch/main` over the DevTools pipe; its flips start once the page has shown ' +
      `its first picture. Compositing and H.264 decoding in software: Xvfb has no GL, and chrome://gpu says "Software only" with or without ` +
      '--disable-gpu (SwiftShader would composite only when asked for with --use-angle=swiftshader --enable-unsafe-swiftshader). ' +
      `Over all rounds the page's getStats gave a median of ${median('jitterBufferMs')} ms in the jitter buffer and ${median('decodeMs')} ms decoding a frame ` +
      `(receive → decoded ${median('processingMs')} ms); of the ${videoFrames} frames its video element had, it did not show ${notShown} ` +
      `(${round((100 * notShown) / videoFrames, 0) ?? '–'}%, getVideoPlaybackQuality: passed over for a newer one before the compositor drew). Join: the page's \`firstPictureMs\` (navigation → its first requestVideoFrameCallback), ` +
      `p50 ${round(percentile(firstPictures, 50), 0)} ms, max ${firstPictures.length ? Math.max(...firstPictures) : '–'} ms.`,
  ].join('\n');
  return {
    name,
    title,
    rows: [...rows, ...joins.map((j) => ({ kind: 'join', ...j })), ...pageStats.map((x) => ({ kind: 'page', ...x }))],
    markdown,
    targets: [
      {
        target: `glass to glass in Chromium (the relay's page, WebRTC), p50 ≤ ${TARGET_P50_MS} ms on loopback (issue 17)`,
        // Met only if the flips it stands on were mostly seen (≤ 5% missed), as in glass.ts.
        met: p50('chromium') === null ? null : p50('chromium')! <= TARGET_P50_MS && missed.chromium <= 0.05 * chromiumFlips,
        detail: `${p50('chromium')} ms (p95 ${p95('chromium')} ms, ${missed.chromium} of ${chromiumFlips} missed); udpcast watch's ffplay in the same run ${p50('watch')} ms: ${ratioP50}×`,
      },
    ],
  };
}
