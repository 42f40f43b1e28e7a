/**
 * What `udpcast share` says (issue 12, items 7 and 8, the sharer's side): options that cannot
 * apply are refused in one line, decimal frame rates work, a host name that does not resolve is a
 * person's mistake (exit 2), the "viewers run" hint names this machine's real addresses, the last
 * summary line gives the session's totals, and FFmpeg's known harmless warnings are not shown.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import type { NetworkInterfaceInfo } from 'node:os';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { frameLuma, probe } from './helpers/media.ts';
import { skipUnless } from './helpers/tools.ts';
import { watchHint } from '../src/apps/share.ts';
import { videoSizeFromListing } from '../src/capture/probe.ts';
import { isHarmlessFfmpegLine, RateCheck } from '../src/encode/encoder.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-share-msg-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs `udpcast share ARGS`, expects exit 2 and exactly one line "udpcast share: …" matching `re`. */
async function refused(args: string[], re: RegExp): Promise<void> {
  // Any free port and a time limit, so a share that wrongly runs ends by itself.
  const r = udpcast(['share', '--no-dashboard', '--port', '0', '--duration', '3', ...args]);
  const { code } = await exited(r, 20_000);
  const lines = r.stderrText().trim().split('\n');
  assert.equal(code, 2, r.stderrText());
  assert.equal(lines.length, 1, r.stderrText());
  assert.match(lines[0], /^udpcast share: /);
  assert.match(lines[0], re);
}

describe('refused in one line, exit 2', () => {
  test('--region with --source test (it was silently ignored)', () => refused(['--source', 'test', '--host', '127.0.0.1', '--region', '640x360+0+0'], /--region .*--size/));
  test('--host nosuchhost.invalid (it was a raw getaddrinfo error, exit 1)', () =>
    refused(['--source', 'test', '--host', 'nosuchhost.invalid'], /--host: cannot resolve "nosuchhost.invalid"/));
  test('--relay nosuchhost.invalid:5004', () => refused(['--source', 'test', '--relay', 'nosuchhost.invalid:5004'], /--relay: cannot resolve "nosuchhost.invalid"/));
  test('--fps 0 and --fps abc still name the range', async () => {
    await refused(['--source', 'test', '--fps', '0'], /--fps must be a number 1-120 \(e\.g\. 30 or 29\.97\), got 0/);
    await refused(['--source', 'test', '--fps', '121'], /--fps must be a number 1-120/);
  });
});

test('a sound device FFmpeg cannot open: its words, and where the names come from (exit 1)', { skip: skipUnless('ffmpeg') }, async () => {
  // No PulseAudio server here (or no such source in one): FFmpeg fails before a frame.
  const r = udpcast(['share', '--source', 'test', '--audio', 'no-such-device-x1', '--no-dashboard', '--port', '0', '--duration', '5'], { PULSE_SERVER: 'unix:/nonexistent' });
  const { code } = await exited(r, 20_000);
  assert.equal(code, 1, r.stderrText());
  assert.match(r.stderrText(), /before producing a frame: .*no-such-device-x1.* \(--audio no-such-device-x1: udpcast share --audio list prints the sound sources here\)/);
});

describe('a share that runs', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  test('--fps 29.97: accepted, the viewer records 29.97 fps; the hint names 127.0.0.1; the last line gives totals', async () => {
    const port = await freePort();
    const rec = join(dir, 'ntsc.mkv');
    const share = udpcast(['share', '--source', 'test', '--size', '320x240', '--fps', '29.97', '--host', '127.0.0.1', '--port', String(port), '--duration', '9', '--no-dashboard']);
    let watch: Running | undefined;
    try {
      await waitFor(() => /listening/.test(share.stderrText()) || share.child.exitCode !== null, 10_000, 'the sharer');
      watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', '5', '--output', rec]);
      assert.equal((await exited(share, 20_000)).code, 0, share.stderrText());
      assert.equal((await exited(watch, 10_000)).code, 0, watch.stderrText());
    } finally {
      for (const r of [watch, share]) r?.child.kill('SIGTERM');
      for (const r of [watch, share]) if (r) await exited(r, 5000).catch(() => undefined);
    }
    const text = share.stderrText();
    // Bound to 127.0.0.1: only this machine can watch, and the hint says exactly that address.
    assert.match(text, new RegExp(`viewers run: udpcast watch 127\\.0\\.0\\.1:${port}\\n`));
    assert.doesNotMatch(text, /THIS_HOST/);
    const last = text.trim().split('\n').pop()!;
    assert.equal(text.match(/ended after/g)?.length, 1, 'the last line once (a summary while stopping said it twice)');
    assert.match(last, /^share main ended after \d+(\.\d)? s: \d+ frames sent, on average [\d.]+ fps \d+(\.\d)? kbit\/s/);
    const avgFps = Number(/on average ([\d.]+) fps/.exec(last)![1]);
    assert.ok(avgFps > 25 && avgFps < 32, last);
    assert.doesNotMatch(last, / 0 fps 0 kbit\/s/);
    const p = probe(rec);
    assert.equal(p.errors, '');
    // Matroska keeps milliseconds, so the rate from all the frames' own times, not ffprobe's guess
    // from the first few, nor frames over the file's duration (which counts one frame's length more
    // or less: 0.2 fps over 5 s, more over the shorter recording of a watch that started late).
    const times = frameLuma(rec).map((f) => f.t);
    assert.ok(times.length >= 60, `recorded ${times.length} frames`);
    // The slope of a least-squares line through (index, time): one frame stamped late moves it little.
    // Seen: 29.975 on an idle machine, up to 29.989 with two busy loops (the times are the sharer's
    // capture clock, which a loaded machine moves), so this does not tell 29.97 from 30.
    const n = times.length;
    const mi = (n - 1) / 2;
    const mt = times.reduce((a, t) => a + t, 0) / n;
    const slope = times.reduce((a, t, i) => a + (i - mi) * (t - mt), 0) / times.reduce((a, _, i) => a + (i - mi) ** 2, 0);
    const fps = 1 / slope;
    assert.ok(Math.abs(fps - 29.97) < 0.1, `recorded ${times.length} frames from ${times[0]} s to ${times.at(-1)} s: ${fps} fps`);
  });
});

describe('pure parts', () => {
  const nic = (address: string, family: 'IPv4' | 'IPv6', internal = false): NetworkInterfaceInfo =>
    ({ address, family, internal, netmask: '', mac: '', cidr: null, ...(family === 'IPv6' ? { scopeid: 0 } : {}) }) as NetworkInterfaceInfo;
  const nics = {
    lo: [nic('127.0.0.1', 'IPv4', true), nic('::1', 'IPv6', true)],
    eth0: [nic('192.168.1.20', 'IPv4'), nic('fe80::1', 'IPv6'), nic('2001:db8::20', 'IPv6')],
    wg0: [nic('10.8.0.2', 'IPv4')],
  };

  test('watchHint: every interface → this machine\'s addresses; a bound address → only it', () => {
    assert.equal(watchHint('0.0.0.0', 5004, nics), 'udpcast watch 192.168.1.20:5004 (or 10.8.0.2:5004)');
    assert.equal(watchHint('::', 5004, nics), 'udpcast watch 192.168.1.20:5004 (or [2001:db8::20]:5004, 10.8.0.2:5004)');
    assert.equal(watchHint('127.0.0.1', 6102, nics), 'udpcast watch 127.0.0.1:6102');
    assert.equal(watchHint('10.8.0.2', 6102, nics), 'udpcast watch 10.8.0.2:6102');
    assert.equal(watchHint('0.0.0.0', 5004, { lo: nics.lo }), 'udpcast watch 127.0.0.1:5004');
    const many = Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`br${i}`, [nic(`172.17.${i}.1`, 'IPv4')]]));
    assert.equal(watchHint('0.0.0.0', 5004, many), 'udpcast watch 172.17.0.1:5004 (or 172.17.1.1:5004, 172.17.2.1:5004, 172.17.3.1:5004, …)');
  });

  test('videoSizeFromListing: the video stream\'s size, not a fourcc', () => {
    assert.deepEqual(
      videoSizeFromListing('  Stream #0:0: Video: rawvideo (BGR[0] / 0x524742), bgr0, 1366x768, 1004 kb/s, 30 fps, 1000k tbr, 1000k tbn'),
      { width: 1366, height: 768 },
    );
    assert.deepEqual(
      videoSizeFromListing('  Stream #0:0[0x1](und): Video: h264 (High) (avc1 / 0x31637661), yuv420p(progressive), 320x240 [SAR 1:1 DAR 4:3], 25 fps'),
      { width: 320, height: 240 },
    );
    assert.equal(videoSizeFromListing('  Stream #0:1[0x2](und): Audio: aac (LC) (mp4a / 0x6134706D), 48000 Hz, stereo'), undefined);
    assert.equal(videoSizeFromListing('Input #0, x11grab, from \':0\':'), undefined);
  });

  test('RateCheck: a 3 s window of pictures over 1.25x the rate is said once, with its rate', () => {
    const kept = new RateCheck(1000, 10); // 1 Mbit/s at 10 fps: 12,500 bytes a picture
    for (let i = 0; i < 300; i++) assert.equal(kept.push(i % 10 === 0 ? 60_000 : 8_000), undefined); // a big one now and then
    const over = new RateCheck(1000, 10);
    const said = Array.from({ length: 90 }, () => over.push(25_000)).filter((r) => r !== undefined);
    assert.deepEqual(said, [2000]);
  });

  test('known harmless FFmpeg lines are recognised, and nothing else', () => {
    assert.ok(isHarmlessFfmpegLine('[x11grab @ 0x55d0c0a3c2c0] Stream #0: not enough frames to estimate rate; consider increasing probesize'));
    assert.ok(isHarmlessFfmpegLine('[swscaler @ 0x5581a8e0e440] deprecated pixel format used, make sure you did set range correctly'));
    assert.ok(isHarmlessFfmpegLine('[mjpeg @ 0x5636717a3480] rc buffer underflow'));
    assert.ok(!isHarmlessFfmpegLine('[x11grab @ 0x55d0c0a3c2c0] Cannot open display :99, error 1.'));
    assert.ok(!isHarmlessFfmpegLine('[libx264 @ 0x1] width not divisible by 2 (641x361)'));
  });
});
