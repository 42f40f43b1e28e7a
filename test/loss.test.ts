// Loss resilience end to end: share → relay → (udpcast impair) → watch, with real FFmpeg judging the
// viewer's output. NACK repair must keep every decoded frame clean; at heavy loss the picture
// must keep moving; a late viewer must start at once, whatever the GOP.
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ImpairProxy } from '../src/impair/proxy.ts';
import { NO_IMPAIRMENT, type ImpairSettings } from '../src/impair/core.ts';
import { udpcast, killAll, exited, freePort, sleep, waitFor, type Running } from './helpers/cli.ts';
import { decode, lastStats } from './helpers/decode.ts';
import { skipUnless } from './helpers/tools.ts';
import { spawnSync } from 'node:child_process';
import { playerInputArgs } from '../src/player/ffplay.ts';

after(killAll);
const dir = mkdtempSync(join(tmpdir(), 'udpcast-loss-'));
const skip = skipUnless('ffmpeg');

/** Relay, then an impairing proxy in front of it for the viewer, then the viewer, then the sharer. */
async function run(name: string, down: ImpairSettings, seconds: number, extraShare: string[] = []) {
  const port = await freePort();
  const relay = udpcast(['relay', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard']);
  let proxy: ImpairProxy | undefined;
  let watch: Running | undefined;
  let share: Running | undefined;
  try {
    await waitFor(() => relay.stderrText().includes('listening'), 5000, 'the relay');
    // 10 ms each way: 20 ms RTT between relay and viewer.
    const up = { ...NO_IMPAIRMENT, delayMs: 10 };
    proxy = await ImpairProxy.start({ listenPort: 0, listenHost: '127.0.0.1', target: { host: '127.0.0.1', port }, up, down: { ...down, delayMs: 10 }, seed: 42 });
    const out = join(dir, `${name}.h264`);
    const stats = join(dir, `${name}.json`);
    watch = udpcast(['watch', `127.0.0.1:${proxy.port}`, '--player', 'none', '--no-dashboard', '--output', out, '--stats-json', stats]);
    await sleep(800);
    const shareStats = join(dir, `${name}-share.json`);
    share = udpcast([
      'share', '--relay', `127.0.0.1:${port}`, '--source', 'test', '--size', '640x360', '--fps', '30',
      '--duration', String(seconds), '--no-dashboard', '--stats-json', shareStats, ...extraShare,
    ]);
    assert.equal((await exited(share, (seconds + 15) * 1000)).code, 0, share.stderrText());
    await sleep(1000); // the last frames through the proxy's delay and any repair
    watch.child.kill('SIGTERM');
    assert.equal((await exited(watch, 5000)).code, 0, watch.stderrText());
    relay.child.kill('SIGTERM');
    return {
      sent: lastStats(readFileSync(shareStats, 'utf8')),
      seen: lastStats(readFileSync(stats, 'utf8')),
      decoded: decode(out, 'h264'),
      watch,
      counters: proxy.counters.down,
    };
  } finally {
    await proxy?.close();
    for (const r of [share, watch, relay]) r?.child.kill('SIGTERM');
    for (const r of [share, watch, relay]) if (r) await exited(r, 5000).catch(() => undefined);
  }
}

describe('loss resilience through udpcast impair, 20 ms RTT', { skip }, () => {
  test('5% random loss: zero decode errors, ≥ 97% of frames', async () => {
    const r = await run('loss5', { ...NO_IMPAIRMENT, loss: 0.05 }, 10);
    assert.ok(r.counters.lost > 100, `the proxy lost only ${r.counters.lost} packets`);
    assert.equal(r.decoded.errors, '');
    const ratio = r.decoded.frames / r.sent.framesSent;
    console.log(`# 5% loss: ${r.decoded.frames}/${r.sent.framesSent} frames (${(100 * ratio).toFixed(1)}%), ` +
      `NACKed ${r.seen.nacksSent}, recovered ${r.seen.recoveredByRtx}, given up ${r.seen.framesGivenUp}`);
    assert.ok(ratio >= 0.97, `${r.decoded.frames} of ${r.sent.framesSent} frames`);
    assert.ok(r.seen.recoveredByRtx > 0, 'repair by retransmission happened');
  });

  test('5% random loss with --fec 10: parity repairs losses without a round trip, output clean', async () => {
    const r = await run('fec10', { ...NO_IMPAIRMENT, loss: 0.05 }, 6, ['--fec', '10']);
    assert.equal(r.decoded.errors, '');
    console.log(`# 5% loss, --fec 10: ${r.decoded.frames}/${r.sent.framesSent} frames, FEC rebuilt ${r.seen.recoveredByFec}, RTX ${r.seen.recoveredByRtx}`);
    assert.ok(r.seen.recoveredByFec > 10, `FEC rebuilt only ${r.seen.recoveredByFec} packets`);
    assert.ok(r.sent.fecPacketsSent >= r.sent.packetsSent / 12, 'about one parity packet per 10 media packets');
    assert.ok(r.decoded.frames >= 0.97 * r.sent.framesSent);
  });

  test('1% random loss: every frame arrives', async () => {
    const r = await run('loss1', { ...NO_IMPAIRMENT, loss: 0.01 }, 6);
    assert.ok(r.counters.lost > 5, `the proxy lost only ${r.counters.lost} packets`);
    assert.equal(r.decoded.errors, '');
    assert.equal(r.decoded.frames, r.sent.framesSent);
  });

  test('20% random loss: no decode errors, and the video keeps moving', async () => {
    const r = await run('loss20', { ...NO_IMPAIRMENT, loss: 0.2 }, 8);
    assert.equal(r.decoded.errors, '');
    console.log(`# 20% loss: ${r.decoded.frames}/${r.sent.framesSent} frames, given up ${r.seen.framesGivenUp}, keyframe requests ${r.seen.keyframeRequests}`);
    assert.ok(r.decoded.frames >= 0.5 * r.sent.framesSent, `${r.decoded.frames} of ${r.sent.framesSent} frames`);
    // Moving: distinct pictures through the run, not one frozen frame.
    assert.ok(new Set(r.decoded.md5s).size >= 0.5 * r.sent.framesSent);
  });
});

describe('instant start', { skip }, () => {
  test('--gop 300 and a viewer joining 3 s in: decodes from its first frame, within 300 ms', async () => {
    const port = await freePort();
    const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--source', 'test', '--size', '640x360', '--gop', '300', '--duration', '8', '--no-dashboard']);
    let watch: Running | undefined;
    try {
      await waitFor(() => share.stderrText().includes('listening'), 5000, 'the sharer');
      await sleep(3000);
      const out = join(dir, 'late-gop300.mkv');
      const stats = join(dir, 'late-gop300.json');
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '3', '--output', out, '--stats-json', stats]);
      assert.equal((await exited(watch, 15_000)).code, 0, watch.stderrText());
      const d = decode(out, 'matroska');
      assert.equal(d.errors, '', 'decodes from its first frame');
      assert.ok(d.frames >= 60, `${d.frames} frames`);
      // The player's own input options must not throw the cached keyframe away.
      const asPlayer = spawnSync('ffmpeg', ['-v', 'error', ...playerInputArgs(), '-i', out, '-f', 'framemd5', '-'], { encoding: 'utf8' });
      assert.equal(asPlayer.stdout.split('\n').filter((l) => l && !l.startsWith('#')).length, d.frames, 'the player decodes every frame, the first included');
      const first = lastStats(readFileSync(stats, 'utf8')).firstFrameMs;
      console.log(`# late join with a 10 s GOP: first frame ${first} ms after subscribing`);
      assert.ok(first !== null && first <= 300, `first frame after ${first} ms`);
      await exited(share, 15_000);
    } finally {
      for (const r of [watch, share]) r?.child.kill('SIGTERM');
      for (const r of [watch, share]) if (r) await exited(r, 5000).catch(() => undefined);
    }
  });
});
