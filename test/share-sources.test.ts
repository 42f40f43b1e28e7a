/**
 * `udpcast share --source FILE` as a person uses it (issue 12, item 1): ordinary files made by
 * FFmpeg (an MP4 with B-frames, a Matroska, a WebM, a PNG) are shared in real time, a viewer records
 * them, and ffprobe judges what it wrote. `--loop` keeps a file going past its length, and any FFmpeg
 * input with options can be named (--source-format, --source-option).
 */
import { test, describe, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { udpcast, killAll, exited, freePort, waitFor, type Running } from './helpers/cli.ts';
import { probe } from './helpers/media.ts';
import { skipUnless, which } from './helpers/tools.ts';

const dir = mkdtempSync(join(tmpdir(), 'udpcast-sources-'));
after(() => {
  killAll();
  rmSync(dir, { recursive: true, force: true });
});

const FPS = 25;
/** Seconds of each clip. */
const CLIP_S = 4;
/** 1280x720 as in the report: with -fflags nobuffer such a clip with B-frames sent no frame at all. */
const WIDTH = 1280;
const HEIGHT = 720;
const PATTERN = ['-f', 'lavfi', '-i', `testsrc2=size=${WIDTH}x${HEIGHT}:rate=${FPS}`];

function ffmpeg(args: string[]): void {
  const r = spawnSync('ffmpeg', ['-nostdin', '-v', 'error', '-y', ...args], { timeout: 60_000 });
  assert.equal(r.status, 0, `ffmpeg ${args.join(' ')}: ${r.stderr}`);
}

function hasEncoder(name: string): boolean {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-encoders'], { encoding: 'utf8', timeout: 10_000 });
  return new RegExp(`^\\s*V\\S*\\s+${name}\\s`, 'm').test(r.stdout ?? '');
}

/** The output file's name for `name`, in the test's folder. */
const at = (name: string) => join(dir, name);

/**
 * share ARGS through an embedded relay while `watch --player none --output rec.mkv` records; both
 * end by themselves (the share at its source's end or --duration, the watch at `watchS`).
 */
async function shareAndRecord(shareArgs: string[], rec: string, watchS: number): Promise<{ share: Running; watch: Running }> {
  const port = await freePort();
  const share = udpcast(['share', '--host', '127.0.0.1', '--port', String(port), '--fps', String(FPS), '--no-dashboard', ...shareArgs]);
  let watch: Running | undefined;
  try {
    await waitFor(() => /listening/.test(share.stderrText()) || share.child.exitCode !== null, 10_000, 'the sharer');
    watch = udpcast(['watch', `127.0.0.1:${port}`, '--player', 'none', '--no-dashboard', '--duration', String(watchS), '--output', rec]);
    await exited(watch, (watchS + 15) * 1000);
    await exited(share, 15_000).catch(() => share.child.kill('SIGTERM'));
    await exited(share, 5000);
    return { share, watch };
  } finally {
    for (const r of [watch, share]) r?.child.kill('SIGTERM');
    for (const r of [watch, share]) if (r) await exited(r, 5000).catch(() => undefined);
  }
}

/** One line of stderr that looks like a stack trace ("    at fn (file:line)"), if any. */
const stackLine = (text: string) => text.split('\n').find((l) => /^\s+at .+[:(]/.test(l));

describe('share --source FILE', { skip: skipUnless('ffmpeg', 'ffprobe') }, () => {
  before(() => {
    // B-frames (-bf 2) are what "co located POCs unavailable" tripped on with -fflags nobuffer.
    const x264 = ['-t', String(CLIP_S), '-c:v', 'libx264', '-preset', 'veryfast', '-bf', '2', '-g', String(FPS), '-pix_fmt', 'yuv420p'];
    ffmpeg([...PATTERN, ...x264, at('clip.mp4')]);
    ffmpeg([...PATTERN, ...x264, at('clip.mkv')]);
    ffmpeg([...PATTERN, '-frames:v', '1', at('still.png')]);
    ffmpeg([...PATTERN, '-t', '2', ...x264.slice(2), at('short.mp4')]);
  });

  const files: [string, () => string | false][] = [
    ['clip.mp4', () => false],
    ['clip.mkv', () => false],
    [
      'clip.webm',
      () => {
        if (!hasEncoder('libvpx')) return 'this FFmpeg has no libvpx encoder to make a WebM with';
        ffmpeg([...PATTERN, '-t', String(CLIP_S), '-c:v', 'libvpx', '-deadline', 'realtime', '-b:v', '500k', at('clip.webm')]);
        return false;
      },
    ],
  ];
  for (const [name, prepare] of files) {
    test(`${name} (${CLIP_S} s): played in real time, recorded by a viewer, the share ends with the file`, async (t) => {
      const skip = prepare();
      if (skip) return t.skip(skip);
      const rec = at(`${name}.rec.mkv`);
      const started = Date.now();
      const { share, watch } = await shareAndRecord(['--source', at(name)], rec, CLIP_S + 3);
      const shareS = (Date.now() - started) / 1000;
      const text = share.stderrText();
      assert.equal((await share.exit).code, 0, text);
      assert.match(text, /the source ended/);
      assert.equal(stackLine(text), undefined, text);
      assert.doesNotMatch(text, /POCs unavailable|Discarding interframe|Output file is empty/);
      // Real time (-re): a 4 s file takes about 4 s to send, not a fraction of a second.
      assert.ok(shareS >= CLIP_S - 0.5, `the share took ${shareS} s for a ${CLIP_S} s file`);
      assert.equal((await watch.exit).code, 0, watch.stderrText());
      const p = probe(rec);
      assert.equal(p.errors, '', `${rec}: no decode errors`);
      assert.equal(p.codec, 'h264');
      assert.deepEqual([p.width, p.height], [WIDTH, HEIGHT]);
      // Every frame of the file but those sent before the viewer joined (it catches up from the last keyframe).
      assert.ok(p.frames >= 0.85 * CLIP_S * FPS, `${rec}: ${p.frames} frames decoded of ${CLIP_S * FPS}`);
    });
  }

  test('a PNG is shown as a still stream until --duration', async () => {
    const rec = at('still.rec.mkv');
    const { share, watch } = await shareAndRecord(['--source', at('still.png'), '--duration', '4'], rec, 5);
    assert.equal((await share.exit).code, 0, share.stderrText());
    assert.doesNotMatch(share.stderrText(), /the source ended|Output file is empty/);
    assert.equal((await watch.exit).code, 0, watch.stderrText());
    const p = probe(rec);
    assert.equal(p.errors, '');
    assert.deepEqual([p.width, p.height], [WIDTH, HEIGHT]);
    assert.ok(p.frames >= 2 * FPS, `${p.frames} frames of the still`);
  });

  test('--loop: a 2 s file keeps being sent past its length until --duration', async () => {
    const rec = at('loop.rec.mkv');
    const { share, watch } = await shareAndRecord(['--source', at('short.mp4'), '--loop', '--duration', '7'], rec, 8);
    assert.equal((await share.exit).code, 0, share.stderrText());
    assert.doesNotMatch(share.stderrText(), /the source ended/);
    assert.equal((await watch.exit).code, 0, watch.stderrText());
    const p = probe(rec);
    assert.equal(p.errors, '');
    // Joined about a second in, recorded until the share stopped at 7 s: well past the 2 s file.
    assert.ok(p.frames >= 4.5 * FPS, `${p.frames} frames: the file was not repeated`);
  });

  test('--region crops a file (odd sizes padded for H.264); a region outside its picture is one line, exit 2', async () => {
    const rec = at('region.rec.mkv');
    const { share } = await shareAndRecord(['--source', at('short.mp4'), '--region', '641x361+8+8', '--loop', '--duration', '3'], rec, 4);
    assert.equal((await share.exit).code, 0, share.stderrText());
    const p = probe(rec);
    assert.equal(p.errors, '');
    assert.deepEqual([p.width, p.height], [642, 362]);
    const r = udpcast(['share', '--no-dashboard', '--port', '0', '--source', at('short.mp4'), '--region', '2000x361+0+0']);
    assert.equal((await exited(r, 15_000)).code, 2, r.stderrText());
    assert.match(r.stderrText(), /^udpcast share: --region 2000x361\+0\+0 reaches outside the picture of .*short\.mp4 \(1280x720\)\n$/);
  });

  test('--source-format lavfi with --source-option: an input FFmpeg cannot detect by itself', async () => {
    const rec = at('lavfi.rec.mkv');
    const { share } = await shareAndRecord(
      ['--source-format', 'lavfi', '--source-option', 'thread_queue_size=64', '--source', `testsrc2=size=352x288:rate=${FPS}`, '--duration', '3'],
      rec,
      4,
    );
    assert.equal((await share.exit).code, 0, share.stderrText());
    const p = probe(rec);
    assert.equal(p.errors, '');
    assert.deepEqual([p.width, p.height], [352, 288]);
    assert.ok(p.frames >= FPS, `${p.frames} frames`);
  });
});

test('a missing file, --source-option without NAME=VALUE, --loop with the test pattern: one line, exit 2', async () => {
  for (const [args, re] of [
    [['--source', join(dir, 'no-such-clip.mp4')], /--source .*no-such-clip\.mp4: no such file/],
    [['--source', 'x.mp4', '--source-option', 'video_size'], /--source-option must be NAME=VALUE/],
    [['--source', 'test', '--loop'], /--loop repeats a file/],
  ] as const) {
    const r = udpcast(['share', '--no-dashboard', ...args], { FFMPEG_PATH: which('ffmpeg') ?? '/bin/true' });
    assert.equal((await exited(r, 15_000)).code, 2, r.stderrText());
    const lines = r.stderrText().trim().split('\n');
    assert.equal(lines.length, 1, r.stderrText());
    assert.match(lines[0], /^udpcast share: /);
    assert.match(lines[0], re);
  }
});
