/**
 * Issue 15: the sound through a lossy path. `share --source test --audio test` → relay →
 * `udpcast impair` (random loss on the relay → viewer direction, 10 ms each way) → `watch
 * --output rec.mkv`, with RED's two copies (the default), one copy, and plain Opus
 * (`--audio-red 0`) as the baseline, each at the same seed per loss rate.
 *
 * Judge: ffprobe reads the recording's sound packet by packet (test/helpers/sound.ts): a stretch
 * the viewer never got is a concealment mark (a TOC-only Opus packet, which the decoder fills) or a
 * hole in the packets' times; a run of them in a row is one gap, one glitch a listener hears.
 * FFmpeg decodes the whole recording (framemd5): error lines are counted.
 */
import { spawnSync } from 'node:child_process';
import { AUDIO_FRAME_MS_DEFAULT } from '../src/defaults.ts';
import { soundGaps } from '../test/helpers/sound.ts';
import {
  exited, lastStats, missing, ratio, relayBehindImpair, round, shareWatchFiles, sleep, stop, table, udpcast, type BenchContext, type BenchResult,
} from './lib.ts';

const DELAY = '10ms';

interface Row {
  system: string;
  lossPct: number;
  soundSeconds: number;
  packetsLost: number;
  recoveredByRed: number;
  concealed: number;
  gaps: number;
  gapsPer10s: number;
  decodeErrors: number;
  gapsVsPlain?: number | null;
}

async function soundRun(loss: number, red: number, seconds: number, seed: number): Promise<Row> {
  const tag = `sound-red${red}-${loss}`;
  const files = shareWatchFiles(tag);
  const wstats = files.wstats;
  const out = files.out.replace(/\.h264$/, '.mkv');
  await relayBehindImpair(['--down-loss', `${loss}%`, '--delay', DELAY, '--seed', String(seed)], async ({ relayPort, impairPort }) => {
    let watch, share;
    try {
      watch = udpcast(['watch', `127.0.0.1:${impairPort}`, '--player', 'none', '--output', out, '--stats-json', wstats, '--no-dashboard']);
      await sleep(1000);
      share = udpcast(['share', '--relay', `127.0.0.1:${relayPort}`, '--source', 'test', '--size', '640x360', '--audio', 'test', '--audio-red', String(red), '--duration', String(seconds), '--no-dashboard']);
      await Promise.race([exited(share), sleep((seconds + 20) * 1000)]);
      await sleep(1000);
    } finally {
      await stop(share);
      await stop(watch);
    }
  });
  const w = lastStats(wstats) ?? {};
  const g = soundGaps(out);
  const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', out, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  return {
    system: red ? `RED, ${red} ${red === 1 ? 'copy' : 'copies'}${red === 2 ? ' (default)' : ''}` : 'plain Opus (--audio-red 0)',
    lossPct: loss,
    soundSeconds: round(g.seconds, 1)!,
    packetsLost: Number(w.audioLost ?? 0),
    recoveredByRed: Number(w.audioRecovered ?? 0),
    concealed: Number(w.audioConcealed ?? 0),
    gaps: g.gaps,
    gapsPer10s: round((10 * g.gaps) / Math.max(1, g.seconds), 2)!,
    decodeErrors: decode.stderr.split('\n').filter(Boolean).length,
  };
}

export async function soundBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Sound under loss: gaps per 10 s with RED and without (issue 15)';
  const gone = missing('ffmpeg', 'ffprobe');
  if (gone) return { name: 'sound', title, skipped: gone, rows: [], markdown: '' };
  const seconds = ctx.quick ? 10 : 30;
  const rows: Row[] = [];
  for (const loss of [5, 10]) {
    for (const red of [2, 1, 0]) {
      rows.push(await soundRun(loss, red, seconds, 2000 + loss));
      ctx.log(`sound ${JSON.stringify(rows.at(-1))}`);
    }
  }
  for (const r of rows) {
    const plain = rows.find((b) => b.lossPct === r.lossPct && b.system.startsWith('plain'));
    r.gapsVsPlain = r === plain ? null : ratio(r.gapsPer10s, plain?.gapsPer10s);
  }
  const markdown = [
    table(
      ['loss', 'sound sent as', 'sound s', 'packets lost', 'given back by RED', 'concealed', 'gaps', 'gaps / 10 s', '× plain Opus', 'decoder errors'],
      rows.map((r) => [`${r.lossPct}%`, r.system, r.soundSeconds, r.packetsLost, r.recoveredByRed, r.concealed, r.gaps, r.gapsPer10s, r.gapsVsPlain, r.decodeErrors]),
    ),
    '',
    `Each run: ${seconds} s of \`share --source test --size 640x360 --audio test\` (Opus 64 kbit/s, ${AUDIO_FRAME_MS_DEFAULT} ms packets) → relay → ` +
      `\`udpcast impair --down-loss N% --delay ${DELAY}\` (20 ms RTT) → \`watch --output rec.mkv\`; the same seed for every system at one loss rate. ` +
      'Packets lost, given back and concealed: the viewer\'s --stats-json (`audioLost`, `audioRecovered`, `audioConcealed`). Gaps: read by ffprobe ' +
      'from the recording, packet by packet: a run of concealment marks (TOC-only Opus packets) or of holes in the packets\' times is one gap. ' +
      'Decoder errors: FFmpeg\'s error lines decoding the whole recording (framemd5), both tracks.',
  ].join('\n');
  const at5 = rows.find((r) => r.lossPct === 5 && r.system.includes('(default)'));
  const plain5 = rows.find((r) => r.lossPct === 5 && r.system.startsWith('plain'));
  return {
    name: 'sound',
    title,
    rows: rows as unknown as Record<string, unknown>[],
    markdown,
    targets: [
      {
        target: '5% random loss: audible gaps ≤ 1 per 10 s, against plain Opus in the same run (issue 15)',
        met: at5 ? at5.gapsPer10s <= 1 && at5.decodeErrors === 0 : null,
        detail: at5 ? `${at5.gapsPer10s} gaps per 10 s with RED (plain Opus: ${plain5?.gapsPer10s}), ${at5.decodeErrors} decoder errors` : 'not run',
      },
    ],
  };
}
