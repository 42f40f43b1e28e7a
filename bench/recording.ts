/**
 * Issue 11: recordings that play back right. A 60 s share of the test pattern (720p30) recorded by
 * two viewers started before it, one to .mkv and one to .mp4, for each codec. ffprobe is the
 * judge: the recording lasts as long as the sharer sent (its first to last frame, by the clock
 * here, plus one frame), every frame decodes, and the frame rate is the sharer's. Baseline: the
 * sharer's own 60 s (--duration), measured in the same run; the ratio is duration ÷ that span.
 */
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { OUT, exited, freePort, missing, ratio, round, sleep, stop, table, udpcast, waitForLine, type BenchContext, type BenchResult } from './lib.ts';
import { probe } from '../test/helpers/media.ts';

const FPS = 30;

export async function recordingBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Recordings: a 60 s share recorded to .mkv and .mp4 (issue 11)';
  const gone = missing('ffmpeg', 'ffprobe');
  if (gone) return { name: 'recording', title, skipped: gone, rows: [], markdown: '' };
  const seconds = ctx.quick ? 15 : 60;
  const rows: Record<string, unknown>[] = [];
  for (const codec of ['h264', 'mjpeg'] as const) {
    const port = await freePort();
    const relay = udpcast(['relay', '--port', String(port), '--host', '127.0.0.1', '--no-dashboard']);
    const files = ['mkv', 'mp4'].map((ext) => path.join(OUT, `recording-${codec}.${ext}`));
    const watches = files.map((f) =>
      udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--output', f], { stdio: ['ignore', 'ignore', 'pipe'] }),
    );
    try {
      await sleep(1500);
      const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--codec', codec, '--fps', String(FPS), '--duration', String(seconds), '--no-dashboard'], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      await waitForLine(share, /ffmpeg started/, 20_000, 'the sharer\'s FFmpeg');
      const started = performance.now();
      await exited(share);
      const span = (performance.now() - started) / 1000;
      await sleep(1000);
      for (const w of watches) await stop(w, 5000, 'SIGINT');
      for (const f of files) {
        const p = probe(f, 120_000);
        const row = {
          codec,
          container: path.extname(f).slice(1),
          shareSeconds: round(span, 2),
          durationSeconds: round(p.duration, 3),
          frames: p.frames,
          framesBySeconds: round(p.frames / FPS, 2),
          avgFps: round(p.fps, 2),
          decodeErrors: p.errors ? p.errors.split('\n').length : 0,
          durationVsShare: ratio(p.duration, span, 3),
        };
        rows.push(row);
        ctx.log(`recording ${codec} ${row.container}: ${JSON.stringify(row)}`);
      }
    } finally {
      for (const w of watches) await stop(w);
      await stop(relay);
    }
  }
  const within = (r: Record<string, unknown>) => {
    const d = r.durationSeconds as number | null;
    return d !== null && Math.abs(d - seconds) <= 0.02 * seconds && r.decodeErrors === 0;
  };
  const markdown = [
    table(
      ['codec', 'container', 'share ran, s', 'ffprobe duration, s', 'frames', 'frames ÷ 30, s', 'avg fps', 'decode errors', 'duration ÷ share'],
      rows.map((r) => [r.codec, r.container, r.shareSeconds, r.durationSeconds, r.frames, r.framesBySeconds, r.avgFps, r.decodeErrors, r.durationVsShare]),
    ),
    '',
    `Each codec: a relay, two \`udpcast watch --player none --output FILE\` subscribed before the sharer starts, then ` +
      `\`udpcast share --source test --duration ${seconds}\` (720p30); the viewers are stopped with SIGINT a second after it ends. ` +
      '"share ran" is from the sharer\'s "ffmpeg started" line to its exit, by the clock here, so it includes FFmpeg\'s ' +
      'start-up before the first frame: the recording is a little shorter. ffprobe reads every frame (`-count_frames`).',
  ].join('\n');
  return {
    name: 'recording',
    title,
    rows,
    markdown,
    targets: [
      {
        target: `a ${seconds} s recording (.mkv and .mp4, H.264 and MJPEG): ffprobe duration within 2% of ${seconds} s, 0 decode errors (issue 11)`,
        met: rows.length === 4 && rows.every(within),
        detail: rows.map((r) => `${r.codec} ${r.container} ${r.durationSeconds} s, ${r.decodeErrors} errors`).join('; '),
      },
    ],
  };
}
