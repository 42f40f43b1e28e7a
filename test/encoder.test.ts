/**
 * The Encoder against real FFmpeg: frames leave the moment they are complete (never held until the
 * next one starts), a paced test source runs in real time, a killed FFmpeg is restarted, and a
 * missing FFmpeg is a clear fatal error rather than a hang.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { performance } from 'node:perf_hooks';
import { Encoder, restartDelayMs, type CapturedFrame } from '../src/encode/encoder.ts';
import type { EncodeOptions } from '../src/encode/ffmpeg-args.ts';
import { skipUnless, which } from './helpers/tools.ts';

const SIZE = { width: 320, height: 240 };
const pids = new Set<number>();
const encoders: Encoder[] = [];

after(async () => {
  await Promise.all(encoders.map((e) => e.stop()));
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

function makeEncoder(codec: 'h264' | 'mjpeg', fps: number, ffmpegPath = which('ffmpeg') ?? 'ffmpeg', source = 'test'): Encoder {
  const encode: EncodeOptions = { codec, bitrateKbps: 500, fps, gop: 2 * fps, quality: 5, size: SIZE };
  const e = new Encoder({ ffmpegPath, capture: { source, fps, env: {} }, encode });
  e.on('started', (pid) => pids.add(pid));
  encoders.push(e);
  return e;
}

/** Resolves with the first `n` frames, each with the time its 'frame' event fired. */
function collect(e: Encoder, n: number, timeoutMs: number): Promise<{ frame: CapturedFrame; emittedAt: number; wallAt: number }[]> {
  return new Promise((resolve, reject) => {
    const got: { frame: CapturedFrame; emittedAt: number; wallAt: number }[] = [];
    const timer = setTimeout(() => reject(new Error(`only ${got.length} of ${n} frames in ${timeoutMs} ms`)), timeoutMs);
    const onFrame = (frame: CapturedFrame) => {
      got.push({ frame, emittedAt: performance.now(), wallAt: Date.now() });
      if (got.length === n) {
        clearTimeout(timer);
        e.off('frame', onFrame);
        resolve(got);
      }
    };
    e.on('frame', onFrame);
    e.once('fatal', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

test('restart backoff: 0.5 s, 1 s, 2 s, 4 s, then capped at 5 s', () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 20].map(restartDelayMs), [500, 1000, 2000, 4000, 5000, 5000, 5000]);
});

describe('with real FFmpeg', { skip: skipUnless('ffmpeg') }, () => {
  for (const codec of ['h264', 'mjpeg'] as const) {
    test(`${codec}: no frame of delay: frame N is emitted before any byte of frame N+1 arrives`, async () => {
      const FPS = 4; // 250 ms between frames: a frame held for the next would be late by 250 ms
      const N = 8;
      const e = makeEncoder(codec, FPS);
      e.start();
      try {
        const got = await collect(e, N, 10_000);
        const gaps: number[] = [];
        for (let i = 0; i + 1 < got.length; i++) {
          const emitted = got[i].emittedAt;
          const nextFirstByte = got[i + 1].frame.firstByteMs;
          assert.ok(
            emitted <= nextFirstByte,
            `frame ${i} emitted at ${emitted.toFixed(1)} ms, but frame ${i + 1}'s first byte arrived at ${nextFirstByte.toFixed(1)} ms`,
          );
          gaps.push(nextFirstByte - emitted);
          // And each frame came out as soon as its own bytes were in, not long after.
          assert.ok(got[i].frame.readyMs - got[i].frame.firstByteMs < 100, `frame ${i} took ${got[i].frame.readyMs - got[i].frame.firstByteMs} ms from first byte to emit`);
        }
        // The proof means something only if frames really are apart: the test source is paced in
        // real time (-re), so the idle time between frames is most of 250 ms.
        gaps.sort((a, b) => a - b);
        assert.ok(gaps[gaps.length >> 1] > 150, `median gap ${gaps[gaps.length >> 1]} ms`);
        const span = got[N - 1].emittedAt - got[0].emittedAt;
        assert.ok(span > (N - 1) * 250 * 0.8 && span < (N - 1) * 250 * 1.3, `${N} frames over ${span.toFixed(0)} ms: not real time`);

        // Wall-clock anchor: never later than arrival, and close to it for a fast encoder.
        for (const { frame, wallAt } of got) {
          assert.ok(frame.captureUnixMs <= wallAt, `capture ${frame.captureUnixMs} after arrival ${wallAt}`);
          assert.ok(wallAt - frame.captureUnixMs < 200, `capture estimate ${wallAt - frame.captureUnixMs} ms before arrival`);
        }
        assert.equal(got[0].frame.keyframe, true);
        if (codec === 'h264') assert.deepEqual(got[0].frame.units.slice(0, 2).map((n) => n[0] & 0x1f), [7, 8]);
        else assert.deepEqual([...got[0].frame.units[0].subarray(0, 2)], [0xff, 0xd8]);
        assert.equal(e.framesEncoded >= N, true);
      } finally {
        await e.stop();
      }
    });
  }

  test('FFmpeg killed mid-run: restarted after 0.5 s, frames resume, restarts = 1', async () => {
    const e = makeEncoder('h264', 10);
    const restarts: [number, number][] = [];
    e.on('restart', (attempt, delay) => restarts.push([attempt, delay]));
    const [firstPid] = (await Promise.all([once(e, 'started'), (e.start(), Promise.resolve())]))[0] as [number];
    try {
      await collect(e, 3, 5000);
      process.kill(firstPid, 'SIGKILL');
      const [secondPid] = (await once(e, 'started')) as [number];
      assert.notEqual(secondPid, firstPid);
      const resumed = await collect(e, 3, 5000);
      assert.deepEqual(restarts, [[1, 500]]);
      assert.equal(e.restarts, 1);
      // The new FFmpeg starts its clock at 0 again; the anchor was reset with it.
      assert.ok(resumed[0].frame.ptsMs < 500, `pts ${resumed[0].frame.ptsMs}`);
      assert.ok(Math.abs(resumed[0].wallAt - resumed[0].frame.captureUnixMs) < 300);
      assert.equal(resumed[0].frame.keyframe, true);
    } finally {
      await e.stop();
    }
    assert.equal(e.pid, undefined);
  });

  test('stop() during the restart backoff: no FFmpeg is started again', async () => {
    const e = makeEncoder('mjpeg', 10);
    let starts = 0;
    e.on('started', () => starts++);
    e.start();
    try {
      const [pid] = (await once(e, 'started')) as [number];
      await collect(e, 1, 5000);
      process.kill(pid, 'SIGKILL');
      await once(e, 'restart');
    } finally {
      await e.stop();
    }
    await new Promise((r) => setTimeout(r, 700)); // past the 500 ms backoff
    assert.equal(starts, 1);
    assert.equal(e.restarts, 0);
  });

  test('an input FFmpeg cannot open: fatal with its own error, before any frame, no restart loop', async () => {
    const e = makeEncoder('h264', 10, undefined, '/nonexistent/udpcast-input.mp4');
    let restarted = false;
    e.on('restart', () => (restarted = true));
    e.start();
    const [err] = (await once(e, 'fatal')) as [Error];
    assert.match(err.message, /ffmpeg exited with code \d+ before producing a frame: .*No such file or directory/);
    assert.equal(restarted, false);
    await e.stop();
  });
});

test('a bad FFmpeg path: fatal at once with a clear message, no hang, stop() still resolves', async () => {
  const e = makeEncoder('h264', 10, '/nonexistent/bin/ffmpeg');
  e.start();
  const t0 = Date.now();
  const [err] = (await once(e, 'fatal')) as [Error];
  assert.ok(Date.now() - t0 < 2000);
  assert.equal(err.message, 'ffmpeg failed to start: /nonexistent/bin/ffmpeg not found (pass --ffmpeg PATH to use another FFmpeg)');
  await e.stop();
  assert.equal(e.framesEncoded, 0);
  assert.equal(e.restarts, 0);
});
