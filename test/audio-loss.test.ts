/**
 * Sound through a lossy path (issue 15): `share --audio test` → relay → 5% random loss → `watch
 * --output rec.mkv`, once with RED's two copies (the default) and once with `--audio-red 0` as the
 * baseline. ffprobe reads the recording packet by packet: every stretch of sound the viewer did not
 * get is a concealment mark or a hole, and a run of them is one gap (one glitch heard). Target:
 * at most one gap per 10 s with RED; FFmpeg decodes both tracks, marks included, without an error.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ImpairProxy } from '../src/impair/proxy.ts';
import { NO_IMPAIRMENT } from '../src/impair/core.ts';
import { udpcast, killAll, exited, freePort, sleep, waitFor } from './helpers/cli.ts';
import { lastStats } from './helpers/decode.ts';
import { beepsOnFlashes } from './helpers/media.ts';
import { soundGaps } from './helpers/sound.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-audio-loss-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

const SECONDS = 10;

/** One share of SECONDS through a relay and a 5% loss proxy to a recording viewer. */
async function run(name: string, shareExtra: string[]) {
  const port = await freePort();
  const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard']);
  const proxy = await ImpairProxy.start({ listenPort: 0, listenHost: '127.0.0.1', target: { host: '127.0.0.1', port }, up: { ...NO_IMPAIRMENT, delayMs: 10 }, down: { ...NO_IMPAIRMENT, loss: 0.05, delayMs: 10 }, seed: 7 });
  try {
    await waitFor(() => relay.stderrText().includes('listening'), 5000, 'the relay');
    const file = join(dir, `${name}.mkv`);
    const stats = join(dir, `${name}.json`);
    const watch = udpcast(['watch', `127.0.0.1:${proxy.port}`, '--player', 'none', '--no-dashboard', '--output', file, '--stats-json', stats]);
    await sleep(500);
    const share = udpcast(['share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '320x240', '--audio', 'test', '--duration', String(SECONDS), '--no-dashboard', ...shareExtra]);
    assert.equal((await exited(share, (SECONDS + 15) * 1000)).code, 0, share.stderrText());
    await sleep(800);
    watch.child.kill('SIGTERM');
    assert.equal((await exited(watch, 5000)).code, 0, watch.stderrText());
    const decode = spawnSync('ffmpeg', ['-v', 'error', '-i', file, '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    return { file, gaps: soundGaps(file), seen: lastStats(readFileSync(stats, 'utf8')), decodeErrors: decode.stderr, lost: proxy.counters.down.lost };
  } finally {
    relay.child.kill('SIGTERM');
    await exited(relay, 5000).catch(() => undefined);
    await proxy.close();
  }
}

test('5% random loss: with RED at most one gap in the sound per 10 s, against the plain-Opus baseline', { skip: skipUnless('ffmpeg', 'ffprobe') }, async () => {
  const plain = await run('plain', ['--audio-red', '0']);
  const red = await run('red', []);
  for (const [name, r] of [['plain', plain], ['red', red]] as const) {
    console.log(`# ${name}: proxy lost ${r.lost} datagrams; viewer: ${r.seen.audioLost} sound packets lost, ${r.seen.audioRecovered} given back by RED, ${r.seen.audioConcealed} concealed; recording: ${r.gaps.packets} packets over ${r.gaps.seconds.toFixed(1)} s, ${r.gaps.marks} marks, ${r.gaps.gaps} gaps`);
    assert.equal(r.decodeErrors, '', `${name}: both tracks decode without an error, concealment marks included`);
    assert.ok(r.gaps.seconds >= SECONDS - 3, `${name}: ${r.gaps.seconds} s of sound`);
  }
  // The baseline shows the path does lose sound, and that the judge sees it.
  assert.ok(plain.seen.audioLost >= 10, `the path lost only ${plain.seen.audioLost} plain sound packets`);
  assert.ok(plain.gaps.gaps >= 5, `baseline: ${plain.gaps.gaps} gaps`);
  assert.equal(plain.gaps.marks, plain.seen.audioConcealed, 'each packet the viewer concealed is one mark in the recording');
  // RED: the same loss, given back.
  assert.ok(red.seen.audioLost >= 10, `the path lost only ${red.seen.audioLost} RED sound packets`);
  assert.ok(red.gaps.gaps <= Math.max(1, Math.floor(red.gaps.seconds / 10)), `RED: ${red.gaps.gaps} gaps in ${red.gaps.seconds.toFixed(1)} s`);
  assert.ok(red.seen.audioRecovered >= red.seen.audioLost * 0.9, `RED gave back ${red.seen.audioRecovered} of ${red.seen.audioLost}`);
  // Concealment keeps the sound in step with the picture.
  const { worstMs } = beepsOnFlashes(plain.file);
  assert.ok(worstMs <= 45, `baseline: a beep ${worstMs} ms from its flash`);
});
