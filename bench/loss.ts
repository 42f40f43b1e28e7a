/**
 * Issues 5 / 7.3: clean frames and added latency at 0 / 1 / 5 / 10% random loss with 20 ms RTT
 * (`udpcast impair`, 10 ms each way, loss on the media direction), udpcast vs plain FFmpeg RTP
 * through the same impairment, same x264 settings, same test source.
 *
 * Clean frames, plain FFmpeg (plainRtpRun in plain-rtp.ts, shared with uplink.ts): the sender
 * streams a file encoded beforehand (stream copy, so the * bits are known); the receiver decodes to framemd5, and a received frame is clean when its MD5 is
 * one of the lossless decode's. Error concealment produces pictures that match none.
 * Clean frames, udpcast: share's encoder output is not saved, so the MD5 comparison is not
 * possible; the viewer's --output is decoded and every frame FFmpeg decodes with no error message
 * counts as clean (error lines, if any, are subtracted one per line and reported).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import {
  OUT, allStats, exited, lastStats, missing, percentile, ratio, relayBehindImpair, round, shareWatchFiles, sleep, stop, table,
  udpcast, x264Args, type BenchContext, type BenchResult,
} from './lib.ts';
import { decodeMd5, plainRtpRun } from './plain-rtp.ts';

const GOP = 60;
const UPLINK_SYSTEM = 'udpcast NACK, loss sharer → relay';
const FPS = 30;
const DELAY = '10ms';

interface Row {
  system: string;
  lossPct: number;
  framesSent: number;
  framesDecoded: number;
  decodeErrors: number;
  clean: number;
  cleanPct: number;
  latencyP50Ms?: number | null;
  addedLatencyMs?: number | null;
  nacksSent?: number;
  recoveredByRtx?: number;
  recoveredByFec?: number;
  framesDropped?: number;
}

/**
 * `uplink`: the loss is between the sharer and the relay (the sharer reaches the relay through
 * the proxy, `--up-loss`), where it is every viewer's and the relay asks the sharer again; else
 * between the relay and the viewer (`--down-loss`), where the relay's history repairs it.
 */
async function udpcastRun(loss: number, fec: boolean, seconds: number, seed: number, uplink = false): Promise<Row> {
  const tag = `loss-udpcast-${fec ? 'fec' : 'nack'}-${uplink ? 'up-' : ''}${loss}`;
  const { out, wstats, sstats } = shareWatchFiles(tag);
  await relayBehindImpair([uplink ? '--up-loss' : '--down-loss', `${loss}%`, '--delay', DELAY, '--seed', String(seed)], async ({ relayPort, impairPort }) => {
    let watch, share;
    try {
      watch = udpcast(['watch', `127.0.0.1:${uplink ? relayPort : impairPort}`, '--player', 'none', '--output', out, '--stats-json', wstats, '--no-dashboard']);
      await sleep(1500);
      share = udpcast(['share', '--relay', `127.0.0.1:${uplink ? impairPort : relayPort}`, '--source', 'test', '--gop', String(GOP), '--fps', String(FPS), '--duration', String(seconds), '--stats-json', sstats, '--no-dashboard', ...(fec ? ['--fec', '10'] : [])]);
      await Promise.race([exited(share), sleep((seconds + 20) * 1000)]);
      await sleep(1500);
    } finally {
      await stop(share);
      await stop(watch);
    }
  });
  const s = lastStats(sstats) ?? {};
  const w = lastStats(wstats) ?? {};
  const lat = allStats(wstats).map((x) => x.latencyMs).filter((x): x is number => typeof x === 'number');
  const d = decodeMd5(out, ['-f', 'h264']);
  const framesSent = Number(s.framesSent ?? 0);
  const clean = Math.max(0, d.md5s.length - d.errors);
  return {
    system: uplink ? UPLINK_SYSTEM : fec ? 'udpcast NACK + FEC 10%' : 'udpcast NACK (default)',
    lossPct: loss,
    framesSent,
    framesDecoded: d.md5s.length,
    decodeErrors: d.errors,
    clean,
    // The last stats line may predate the last frames: never count more clean frames than sent.
    cleanPct: round((100 * clean) / Math.max(framesSent, d.md5s.length), 2)!,
    latencyP50Ms: round(percentile(lat, 50), 1),
    nacksSent: Number(w.nacksSent ?? 0),
    recoveredByRtx: Number(w.recoveredByRtx ?? 0),
    recoveredByFec: Number(w.recoveredByFec ?? 0),
    framesDropped: Number(w.framesDropped ?? 0),
  };
}

async function ffmpegRun(loss: number, ref: string, refMd5: Set<string>, refFrames: number, seed: number): Promise<Row> {
  const p = await plainRtpRun({
    tag: `loss-ffmpeg-${loss}`,
    impair: ['--up-loss', `${loss}%`, '--delay', DELAY, '--seed', String(seed)],
    ref,
    refMd5,
    fps: FPS,
    // Ample for a 10 s reference at -re: the limit only guards against a sender that hangs.
    txLimitMs: 60_000,
  });
  return {
    system: 'plain FFmpeg RTP',
    lossPct: loss,
    framesSent: refFrames,
    framesDecoded: p.framesDecoded,
    decodeErrors: p.errors,
    clean: p.clean,
    cleanPct: round((100 * p.clean) / refFrames, 2)!,
  };
}

export async function lossBench(ctx: BenchContext): Promise<BenchResult> {
  const title = 'Loss: clean frames at 0 / 1 / 5 / 10% loss, 20 ms RTT (issues 5, 7.3)';
  const gone = missing('ffmpeg');
  if (gone) return { name: 'loss', title, skipped: gone, rows: [], markdown: '' };
  const seconds = ctx.quick ? 5 : 10;
  const losses = [0, 1, 5, 10];
  // The reference for plain FFmpeg: encoded once, streamed as is, decoded losslessly for MD5s.
  const ref = path.join(OUT, `loss-ref-${seconds}s.h264`);
  const enc = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', '-y', '-f', 'lavfi', '-i', `testsrc2=size=1280x720:rate=${FPS}`, '-t', String(seconds), ...x264Args(GOP), '-x264-params', 'repeat-headers=1', '-f', 'h264', ref], { encoding: 'utf8' });
  if (enc.status !== 0) throw new Error(`reference encode failed: ${enc.stderr}`);
  const refDecode = decodeMd5(ref, ['-framerate', String(FPS), '-f', 'h264']);
  const refMd5 = new Set(refDecode.md5s);
  ctx.log(`loss: reference ${refDecode.md5s.length} frames, ${refMd5.size} distinct pictures`);

  const rows: Row[] = [];
  for (const loss of losses) {
    const seed = 1000 + loss;
    for (const fec of [false, true]) {
      rows.push(await udpcastRun(loss, fec, seconds, seed));
      ctx.log(`loss ${JSON.stringify(rows.at(-1))}`);
    }
    if (loss >= 5) {
      rows.push(await udpcastRun(loss, false, seconds, seed, true));
      ctx.log(`loss ${JSON.stringify(rows.at(-1))}`);
    }
    rows.push(await ffmpegRun(loss, ref, refMd5, refDecode.md5s.length, seed));
    ctx.log(`loss ${JSON.stringify(rows.at(-1))}`);
  }
  for (const r of rows) {
    const base = rows.find((b) => b.system === (r.system === UPLINK_SYSTEM ? 'udpcast NACK (default)' : r.system) && b.lossPct === 0);
    if (r.latencyP50Ms != null && base?.latencyP50Ms != null) r.addedLatencyMs = round(r.latencyP50Ms - base.latencyP50Ms, 1);
  }
  const ff = (loss: number) => rows.find((r) => r.system === 'plain FFmpeg RTP' && r.lossPct === loss);
  const markdown = [
    table(
      ['loss', 'system', 'frames sent', 'decoded', 'decoder errors', 'clean', 'clean %', 'clean × FFmpeg', 'latency p50 ms', 'added ms', 'NACKs', 'rebuilt: RTX / FEC', 'frames dropped'],
      rows.map((r) => [
        `${r.lossPct}%`, r.system, r.framesSent, r.framesDecoded, r.decodeErrors, r.clean, r.cleanPct,
        ratio(r.cleanPct, ff(r.lossPct)?.cleanPct), r.latencyP50Ms, r.addedLatencyMs, r.nacksSent,
        r.recoveredByRtx !== undefined ? `${r.recoveredByRtx} / ${r.recoveredByFec}` : null, r.framesDropped,
      ]),
    ),
    '',
    `Each run: ${seconds} s of \`testsrc2\` 1280x720 at ${FPS} fps, x264 ultrafast/zerolatency, GOP ${GOP}, 2500 kbit/s, ` +
      `through \`udpcast impair --delay ${DELAY}\` (both ways: 20 ms RTT) with random loss on the media direction ` +
      '(`--down-loss` between relay and viewer for udpcast, `--up-loss` between FFmpeg sender and receiver), same ' +
      'seed per loss rate. udpcast: relay → impair → watch `--output`; clean = frames FFmpeg decodes from that file with ' +
      'no error message (the viewer hands out whole frames only); frames sent = the sharer\'s `framesSent`. Plain FFmpeg: ' +
      'a file encoded beforehand with the same settings (plus SPS/PPS before every IDR, as udpcast sends them) is streamed ' +
      'with `-re -c copy -f rtp`, received by FFmpeg reading an SDP (default options: its reorder buffer can only help it here), decoded to ' +
      'framemd5; clean = received pictures whose MD5 equals one of the lossless decode\'s. Latency: the viewer\'s ' +
      'capture → frame-complete latency (`latencyMs` in --stats-json, p50 over the run); "added" is against the same ' +
      'system at 0% loss (for the uplink rows, against the default\'s). FFmpeg\'s receiver has no such clock mapping here, so its latency is not measured. NACK ' +
      'cannot be turned off from the CLI, so there is no "FEC only" row. "loss sharer → relay": the same loss on the ' +
      'sharer\'s way to the relay instead (`--up-loss`, share → impair → relay → watch on a clean link), where every ' +
      'viewer loses the packet and the relay asks the sharer for it again; NACKs and RTX there are the viewer\'s own.',
  ].join('\n');
  const at5 = rows.find((r) => r.system.startsWith('udpcast NACK (') && r.lossPct === 5);
  return {
    name: 'loss',
    title,
    rows: rows as unknown as Record<string, unknown>[],
    markdown,
    targets: [
      {
        target: '5% loss, 20 ms RTT: zero decoder errors and ≥ 99.5% of frames (issue 5)',
        met: at5 ? at5.decodeErrors === 0 && at5.cleanPct >= 99.5 : null,
        detail: at5 ? `${at5.cleanPct}% clean, ${at5.decodeErrors} decoder errors (FFmpeg RTP: ${ff(5)?.cleanPct}%)` : 'not run',
      },
    ],
  };
}
