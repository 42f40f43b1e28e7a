/**
 * Picture sizes a codec cannot carry as they are (issue 12, items 2, 6 and 7): a 1366x768 screen
 * with MJPEG (RFC 2435 carries multiples of 8), an odd --region with H.264 (libx264 needs even
 * sizes) are padded and said once, never a stack trace; MJPEG keeps to --bitrate; FFmpeg's known
 * harmless warnings are not shown. Real FFmpeg on a real X server (Xvfb) is the judge.
 */
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { start, udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { probe } from './helpers/media.ts';
import { skipUnless } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-sizes-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

function freeDisplay(): number {
  for (let n = 90 + Math.floor(Math.random() * 100); ; n++) {
    if (!existsSync(`/tmp/.X11-unix/X${n}`) && !existsSync(`/tmp/.X${n}-lock`)) return n;
  }
}

const stackLine = (text: string) => text.split('\n').find((l) => /^\s+at .+[:(]/.test(l));
const count = (text: string, re: RegExp) => text.split('\n').filter((l) => re.test(l)).length;

/** share ARGS for `seconds` while a viewer records to `rec` (and writes --stats-json to `stats`). */
async function shareAndRecord(args: string[], rec: string, seconds: number, env: NodeJS.ProcessEnv = {}, stats?: string) {
  const port = await freePort();
  const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--no-dashboard', '--duration', String(seconds), ...args], env);
  let watch: Running | undefined;
  try {
    await waitFor(() => /listening/.test(share.stderrText()) || share.child.exitCode !== null, 10_000, 'the sharer');
    watch = udpcast([
      'watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', String(seconds), '--output', rec,
      ...(stats ? ['--stats-json', stats] : []),
    ]);
    const shareExit = await exited(share, (seconds + 15) * 1000);
    await exited(watch, 15_000);
    return { share, watch, code: shareExit.code };
  } finally {
    for (const r of [watch, share]) r?.child.kill('SIGTERM');
    for (const r of [watch, share]) if (r) await exited(r, 5000).catch(() => undefined);
  }
}

function assertShared(share: Running, code: number | null, notice: RegExp): void {
  const text = share.stderrText();
  assert.equal(code, 0, text);
  assert.equal(stackLine(text), undefined, `no stack trace:\n${text}`);
  assert.doesNotMatch(text, /JpegSizeError|not divisible by 2/);
  assert.equal(count(text, notice), 1, `the padding is said once:\n${text}`);
}

describe('a 1366x768 screen (Xvfb)', { skip: skipUnless('ffmpeg', 'ffprobe', 'Xvfb') }, () => {
  let display = '';
  let xvfb: Running;
  before(async () => {
    const n = freeDisplay();
    display = `:${n}`;
    xvfb = start('Xvfb', [display, '-screen', '0', '1366x768x24', '-noreset', '-nolisten', 'tcp']);
    await waitFor(() => existsSync(`/tmp/.X11-unix/X${n}`), 10_000, 'Xvfb');
  });
  after(() => xvfb?.child.kill('SIGKILL'));

  test('--codec mjpeg: padded to 1368x768 (said once), the viewer decodes every frame', async () => {
    const rec = join(dir, 'screen-mjpeg.mkv');
    const { share, code } = await shareAndRecord(['--source', 'screen', '--display', display, '--codec', 'mjpeg', '--fps', '10'], rec, 4, { DISPLAY: display });
    assertShared(share, code, /RFC 2435.*padding 1366x768 to 1368x768/);
    // Known harmless FFmpeg warnings are not shown (item 7).
    assert.doesNotMatch(share.stderrText(), /not enough frames to estimate rate|deprecated pixel format/);
    const p = probe(rec);
    assert.equal(p.errors, '');
    assert.equal(p.codec, 'mjpeg');
    assert.deepEqual([p.width, p.height], [1368, 768]);
    assert.ok(p.frames >= 15, `${p.frames} frames`);
  });

  test('--region 641x361+0+0: H.264 padded to 642x362, MJPEG to 648x368', async () => {
    for (const [codec, size] of [['h264', [642, 362]], ['mjpeg', [648, 368]]] as const) {
      const rec = join(dir, `region-${codec}.mkv`);
      const { share, code } = await shareAndRecord(
        ['--source', 'screen', '--display', display, '--region', '641x361+0+0', '--codec', codec, '--fps', '10'],
        rec,
        4,
        { DISPLAY: display },
      );
      assertShared(share, code, new RegExp(`padding 641x361 to ${size[0]}x${size[1]}`));
      const p = probe(rec);
      assert.equal(p.errors, '', codec);
      assert.deepEqual([p.width, p.height], size, codec);
      assert.ok(p.frames >= 15, `${codec}: ${p.frames} frames`);
    }
  });
});

test('--source test --size 641x361: one line naming what to pass, exit 2', async () => {
  const r = udpcast(['share', '--source', 'test', '--size', '641x361', '--codec', 'mjpeg', '--no-dashboard']);
  assert.equal((await exited(r, 15_000)).code, 2);
  assert.match(r.stderrText(), /^udpcast share: --size must be WIDTHxHEIGHT, even numbers .*\n$/);
});

describe('--codec mjpeg --bitrate', { skip: skipUnless('ffmpeg') }, () => {
  test('1M: the stream keeps to about 1 Mbit/s (it ran at 14 Mbit/s, the quality fixed)', async () => {
    const rec = join(dir, 'rate.mkv');
    const stats = join(dir, 'rate.json');
    // 320x176 at 30 fps: a size where MJPEG's lowest quality needs less than 1 Mbit/s.
    const { share, code } = await shareAndRecord(['--source', 'test', '--size', '320x176', '--codec', 'mjpeg', '--bitrate', '1M'], rec, 8, {}, stats);
    assert.equal(code, 0, share.stderrText());
    assert.doesNotMatch(share.stderrText(), /is less than MJPEG needs|rc buffer underflow/);
    const lines = readFileSync(stats, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { bitrateKbps: number; final?: boolean });
    // The viewer's per-second rate once it runs (the first seconds hold the join and its catch-up).
    const rates = lines.filter((l) => !l.final).slice(3).map((l) => l.bitrateKbps).sort((a, b) => a - b);
    assert.ok(rates.length >= 3, `stats: ${JSON.stringify(lines)}`);
    const median = rates[Math.floor(rates.length / 2)];
    assert.ok(median >= 600 && median <= 1400, `median ${median} kbit/s for --bitrate 1M (rates ${rates.join(', ')})`);
  });

  test('1M at 1280x720: more than the lowest quality can keep to, said once in one line', async () => {
    const { share, code } = await shareAndRecord(['--source', 'test', '--codec', 'mjpeg', '--bitrate', '1M'], join(dir, 'rate720.mkv'), 5);
    const text = share.stderrText();
    assert.equal(code, 0, text);
    assert.equal(count(text, /--bitrate 1000k is less than MJPEG needs .*lower --size or --fps, or use --codec h264/), 1, text);
    assert.doesNotMatch(text, /rc buffer underflow|Last message repeated/);
  });

  test('with --quality too: one line saying to give one of them, exit 2', async () => {
    const r = udpcast(['share', '--source', 'test', '--codec', 'mjpeg', '--bitrate', '1M', '--quality', '5', '--no-dashboard']);
    assert.equal((await exited(r, 15_000)).code, 2);
    assert.match(r.stderrText(), /^udpcast share: --codec mjpeg takes --quality .* or --bitrate .*, not both\n$/);
  });
});
