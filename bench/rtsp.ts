/**
 * Issue 16: a standard player on the relay's RTSP server, at the glass. The rig is bench/glass.ts's
 * (a 720p30 shared Xvfb screen flipped black ↔ white, the player's window on a second screen,
 * filmed at 250 fps), side by side, paired rounds:
 *   (b) FFmpeg RTP, the baseline: ffmpeg x11grab → libx264 → -f rtp, ffplay reading its SDP;
 *   (r) udpcast share (embedded relay) → `ffplay rtsp://…/main`;
 * both players with the same low-delay flags (PLAYER_FLAGS).
 * And joins in the middle of a GOP (2 s): a fresh sender each time, the player started 0.5-1.8 s
 * into its first GOP; spawn → the player's window showing a picture (SDL shows it at the first
 * decoded frame). Plain RTP waits for the next keyframe; the relay starts the player from its
 * cached one.
 * Targets: (r)'s p50 at most 1.0× (b)'s in the same run; a mid-GOP join's first picture within 1 s.
 */
import { performance } from 'node:perf_hooks';
import path from 'node:path';
import { readFileSync, writeFileSync } from 'node:fs';
import {
  FPS, GOP, QUIET_PLAY, SIZE, attach, xdotool, liveFlips, onScreen, openScreens, probeRate, share, teardown,
  type Pipeline, type Probe, type Screens,
} from './glass.ts';
import {
  OUT, flipSummary, freePortPair, freeTcpPort, missing, percentile, ratio, rng, round, run, sleep, table, waitFor, x11grabIn, x264Args, xsetroot,
  type BenchContext, type BenchResult,
} from './lib.ts';

/**
 * The player's flags, the same for both systems: no probing (the SDP says what the stream is),
 * low-delay decoding, late frames dropped. Not `-fflags nobuffer`: it throws away what was read
 * while probing, the keyframe a joiner starts from (measured by hand: ffplay rtsp:// showed its
 * first picture after 1.0-1.5 s with it, 0.28-0.32 s without).
 */
const PLAYER_FLAGS = ['-probesize', '32', '-analyzeduration', '0', '-flags', 'low_delay', '-framedrop'];
const RTSP_FLAGS = [...PLAYER_FLAGS, '-rtsp_transport', 'udp'];
const GOP_MS = (GOP / FPS) * 1000;
const JOIN_TARGET_MS = 1000;

/**
 * When the window of process `pid` first shows (ms, performance.now()), polled every 20 ms: ffplay
 * creates its window hidden and shows it when it displays its first picture (fftools/ffplay.c
 * video_open, called from video_display). Undefined if it has not within `timeoutMs`.
 */
async function shownAt(display: string, pid: number, timeoutMs: number): Promise<number | undefined> {
  const end = performance.now() + timeoutMs;
  while (performance.now() < end) {
    if ((await xdotool(display, ['search', '--onlyvisible', '--pid', String(pid)])).trim()) return performance.now();
    await sleep(20);
  }
  return undefined;
}


/** (r): share with its embedded relay's RTSP server on a free port, and ffplay on it. */
async function udpcastRtsp(screens: Screens): Promise<Pipeline & { sendingAt: number; play: () => void }> {
  const rtsp = await freeTcpPort();
  const s = await share(screens, 'h264', ['--rtsp-port', String(rtsp)]);
  const p: Pipeline & { sendingAt: number; play: () => void } = {
    procs: [s.proc],
    player: () => undefined,
    sendingAt: s.sendingAt,
    play: () => {
      const play = run('ffplay', [...QUIET_PLAY, ...RTSP_FLAGS, '-window_title', 'glass: udpcast rtsp', `rtsp://127.0.0.1:${rtsp}/main`], onScreen(screens.viewer));
      p.procs.unshift(play);
      p.player = () => play.pid;
    },
  };
  return p;
}

/** The baseline of a start: ffplay of a local test source, which has a picture at once: ffplay's own start and the polling. */
function localSource(screens: Screens): Pipeline & { sendingAt: number; play: () => void } {
  const p: Pipeline & { sendingAt: number; play: () => void } = {
    procs: [],
    player: () => undefined,
    sendingAt: performance.now(),
    play: () => {
      const play = run('ffplay', [...QUIET_PLAY, '-window_title', 'glass: local', '-f', 'lavfi', '-i', `testsrc2=size=${SIZE}:rate=${FPS}`], onScreen(screens.viewer));
      p.procs.unshift(play);
      p.player = () => play.pid;
    },
  };
  return p;
}

/** (b) for a join: the RTP sender alone, its ffplay started later. */
async function rtpSender(screens: Screens): Promise<Pipeline & { sendingAt: number; play: () => void }> {
  const port = await freePortPair();
  const sdp = path.join(OUT, 'rtsp-bench-rtp.sdp');
  writeFileSync(sdp, '');
  const enc = run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-nostdin', ...x11grabIn(screens.shared, FPS), ...x264Args(GOP), '-f', 'rtp', '-sdp_file', sdp, `rtp://127.0.0.1:${port}`]);
  const p: Pipeline & { sendingAt: number; play: () => void } = {
    procs: [enc],
    player: () => undefined,
    sendingAt: 0,
    play: () => {
      const play = run('ffplay', [...QUIET_PLAY, '-protocol_whitelist', 'file,udp,rtp', ...PLAYER_FLAGS, '-window_title', 'glass: ffmpeg rtp', sdp], onScreen(screens.viewer));
      p.procs.unshift(play);
      p.player = () => play.pid;
    },
  };
  try {
    await waitFor('the SDP file', () => readFileSync(sdp, 'utf8').includes('m=video'), 10_000);
  } catch (err) {
    await teardown(p);
    throw err;
  }
  p.sendingAt = performance.now();
  return p;
}

export async function rtspBench(ctx: BenchContext): Promise<BenchResult> {
  const name = 'rtsp';
  const title = 'Standard players on the relay\'s RTSP server: ffplay rtsp:// at the glass, and joining mid-GOP (issue 16)';
  const gone = missing('Xvfb', 'xsetroot', 'xdotool', 'ffmpeg', 'ffplay');
  if (gone) return { name, title, skipped: gone, rows: [], markdown: '' };
  // Each player start settles where ffplay's own clock keeps its queue, differently each time
  // (rounds of one run have differed by 0.7-1.4x), and stays there: the samples that count are
  // player starts, so many short paired rounds rather than a few long ones.
  const flips = ctx.quick ? 8 : 6;
  const rounds = ctx.quick ? 1 : 8;
  const joins = ctx.quick ? 2 : 5;
  const r = rng(16);
  const rows: Record<string, unknown>[] = [];
  const joinRows: Array<{ system: string; join: number; joinAfterMs: number; windowMs: number | null }> = [];
  const { screens, close } = await openScreens();
  const live: Record<string, number[]> = { 'ffmpeg-rtp': [], 'udpcast-rtsp': [] };
  try {
    for (let round_ = 1; round_ <= rounds; round_++) {
      for (const system of ['ffmpeg-rtp', 'udpcast-rtsp'] as const) {
        await xsetroot(screens.shared, 'black');
        let p: Pipeline | undefined;
        let probe: Probe | undefined;
        try {
          const u = system === 'ffmpeg-rtp' ? await rtpSender(screens) : await udpcastRtsp(screens);
          p = u;
          await sleep(300);
          u.play();
          probe = await attach(screens, p);
          const done = await liveFlips(screens, probe, flips, r);
          const sum = flipSummary(done);
          live[system].push(...sum.latenciesMs.filter((x): x is number => x !== null));
          rows.push({ system, round: round_, ...sum, probeFps: probeRate(probe) });
          ctx.log(`rtsp ${system} round ${round_}: ${JSON.stringify(rows.at(-1))}`);
        } catch (err) {
          ctx.log(`rtsp ${system} round ${round_}: FAILED: ${(err as Error).message}`);
          rows.push({ system, round: round_, failed: (err as Error).message });
        } finally {
          await teardown(p, probe);
        }
      }
    }
    // Joins mid-GOP, paired: each system once per join, the player started at the same point of the GOP.
    for (let i = 1; i <= joins; i++) {
      const at = 500 + r() * 1300;
      for (const system of ['ffmpeg-rtp', 'udpcast-rtsp', 'local'] as const) {
        await xsetroot(screens.shared, 'black');
        let p: (Pipeline & { sendingAt: number; play: () => void }) | undefined;
        try {
          p = system === 'ffmpeg-rtp' ? await rtpSender(screens) : system === 'udpcast-rtsp' ? await udpcastRtsp(screens) : localSource(screens);
          await sleep(Math.max(0, p.sendingAt + at - performance.now()));
          const t0 = performance.now();
          p.play();
          let windowMs: number | null = null;
          const pid = p.player();
          const shown = pid === undefined ? undefined : await shownAt(screens.viewer, pid, 10_000);
          if (shown === undefined) ctx.log(`rtsp join ${system} ${i}: no picture within 10 s`);
          else windowMs = shown - t0;
          joinRows.push({ system, join: i, joinAfterMs: round(t0 - p.sendingAt, 0)!, windowMs: round(windowMs, 0) });
          ctx.log(`rtsp join ${JSON.stringify(joinRows.at(-1))}`);
        } finally {
          await teardown(p);
        }
      }
    }
  } finally {
    await close();
  }
  const p50 = (s: string) => round(percentile(live[s], 50), 1);
  const p95 = (s: string) => round(percentile(live[s], 95), 1);
  const joinsOf = (s: string) => joinRows.filter((j) => j.system === s);
  const windows = (s: string) => joinsOf(s).flatMap((j) => (j.windowMs === null ? [] : [j.windowMs]));
  const rtspJoins = windows('udpcast-rtsp');
  const ratioP50 = ratio(p50('udpcast-rtsp'), p50('ffmpeg-rtp'));
  const markdown = [
    table(['system', 'flips seen', 'p50 ms', 'p95 ms', '× FFmpeg RTP p50'], (['ffmpeg-rtp', 'udpcast-rtsp'] as const).map((s) => [s, live[s].length, p50(s), p95(s), s === 'ffmpeg-rtp' ? 1 : ratioP50])),
    '',
    table(['system', 'round', 'flips', 'missed', 'p50 ms', 'p95 ms', 'probe fps'], rows.map((x) => [x.system, x.round, x.flips ?? x.failed, x.missed, x.p50Ms, x.p95Ms, x.probeFps])),
    '',
    table(['system', 'joins', 'player started after the sender, ms', 'spawn → first picture, ms (each)', 'p50 ms'], (['ffmpeg-rtp', 'udpcast-rtsp', 'local'] as const).map((s) => [
      s, joinsOf(s).length, joinsOf(s).map((j) => j.joinAfterMs).join(', '), joinsOf(s).map((j) => j.windowMs ?? 'none').join(', '), round(percentile(windows(s), 50), 0),
    ])),
    '',
    `Live: ${flips} flips per system per round, ${rounds} rounds, paired (each system once per round). (b) \`ffmpeg … -f rtp\` → \`ffplay ${PLAYER_FLAGS.join(' ')}\` of its SDP; ` +
      `(r) \`udpcast share --rtsp-port R\` → \`ffplay ${RTSP_FLAGS.join(' ')} rtsp://127.0.0.1:R/main\`; both 720p30, x264 ultrafast/zerolatency, GOP ${GOP} (${GOP_MS} ms). ` +
      'Both players have no sound, so ffplay runs them on its external clock, which for a network input it slows (to 0.9×) or speeds (to 1.01×) ' +
      'to keep 2 to 10 packets queued (ffplay.c check_external_clock_speed, EXTERNAL_CLOCK_MIN_FRAMES/MAX_FRAMES): the live figures are mostly that ' +
      'queue, set anew at each player start (a round differs from the next by up to 40%), hence many short paired rounds. ' +
      'Both players parse H.264 with libavformat, which holds a picture until the next one begins; the relay sends (r) each next picture\'s ' +
      'access unit delimiter as soon as a picture ends (README, "Any player"), (b) has none. ' +
      'Joins: a fresh sender each time, the player started at the same point of its first GOP for both systems; first picture = the player\'s window ' +
      'visible (ffplay shows it at its first picture), polled every 20 ms with xdotool, from its spawn; `local` is ffplay of a local testsrc2, ' +
      'a picture at once: ffplay\'s own start and the polling, in every figure. Plain RTP has nothing to start from before the next keyframe.',
  ].join('\n');
  return {
    name,
    title,
    rows: [...rows, ...joinRows.map((j) => ({ ...j, kind: 'join' }))],
    markdown,
    targets: [
      {
        target: 'glass to glass through ffplay rtsp:// (udpcast relay) ≤ 1.0× FFmpeg RTP → ffplay, p50 (issue 16)',
        met: ratioP50 === null ? null : ratioP50 <= 1.0,
        detail: `${p50('udpcast-rtsp')} ms vs ${p50('ffmpeg-rtp')} ms (${ratioP50}×)`,
      },
      {
        target: `first picture after ffplay rtsp:// starts mid-GOP ≤ ${JOIN_TARGET_MS} ms, every join (issue 16)`,
        met: rtspJoins.length === 0 ? null : rtspJoins.length === joinsOf('udpcast-rtsp').length && Math.max(...rtspJoins) <= JOIN_TARGET_MS,
        detail: `${rtspJoins.join(', ')} ms (FFmpeg RTP: ${windows('ffmpeg-rtp').join(', ')} ms; ffplay of a local source: ${windows('local').join(', ')} ms)`,
      },
    ],
  };
}
