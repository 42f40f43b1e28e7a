// A keyframe on request: FFmpeg takes no commands, so the Encoder starts a second FFmpeg whose
// first frame is an IDR and hands over to it. The stream must not pause, and the old run must end.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Encoder, KEYFRAME_RESTART_MIN_MS, type CapturedAudio, type CapturedFrame } from '../src/encode/encoder.ts';
import { killAllChildren, liveChildren } from '../src/util/child.ts';
import { skipUnless } from './helpers/tools.ts';
import { sleep, waitFor } from './helpers/cli.ts';

after(() => killAllChildren());

test('requestKeyframe: an IDR follows promptly, frames keep flowing, one FFmpeg remains', { skip: skipUnless('ffmpeg') }, async () => {
  const enc = new Encoder({
    ffmpegPath: 'ffmpeg',
    capture: { source: 'test', fps: 30, size: { width: 640, height: 360 } },
    encode: { codec: 'h264', bitrateKbps: 1000, fps: 30, gop: 600, quality: 5, size: { width: 640, height: 360 } },
  });
  const frames: (CapturedFrame & { at: number })[] = [];
  enc.on('frame', (f) => frames.push({ ...f, at: performance.now() }));
  enc.start();
  try {
    await waitFor(() => frames.length >= 20, 10_000, '20 frames');
    const firstPid = enc.pid;
    const keyframesBefore = frames.filter((f) => f.keyframe).length;
    assert.equal(keyframesBefore, 1, 'with a 20 s GOP only the first frame is a keyframe');
    const askedAt = performance.now();
    const askedIndex = frames.length;
    assert.equal(enc.requestKeyframe(), true);
    assert.equal(enc.requestKeyframe(), false, 'a second request right away is coalesced');
    await waitFor(() => frames.slice(askedIndex).some((f) => f.keyframe), 5000, 'the requested keyframe');
    const idr = frames.slice(askedIndex).find((f) => f.keyframe)!;
    const took = idr.at - askedAt;
    console.log(`# keyframe ${took.toFixed(0)} ms after the request`);
    assert.ok(took < 1000, `keyframe took ${took} ms`);
    // No pause: between the request and the IDR the old run kept delivering.
    const around = frames.filter((f) => f.at >= askedAt - 100 && f.at <= idr.at + 100);
    for (let i = 1; i < around.length; i++) {
      assert.ok(around[i].at - around[i - 1].at < 150, `a ${around[i].at - around[i - 1].at} ms pause in frames`);
    }
    assert.ok(idr.units.some((n) => (n[0] & 0x1f) === 7), 'the IDR carries its SPS');
    await waitFor(() => liveChildren() === 1 && enc.pid !== firstPid, 5000, 'the old FFmpeg to end');
    assert.equal(enc.restarts, 0, 'a keyframe run is not counted as a crash restart');
    assert.equal(enc.keyframeRestarts, 1);
    const n = frames.length;
    await waitFor(() => frames.length > n + 10, 5000, 'frames from the new run');
    // A request that must not be lost (a layer paused or resumed): within the interval it waits,
    // then starts by itself; asked twice meanwhile, it starts once.
    await sleep(Math.max(0, askedAt + KEYFRAME_RESTART_MIN_MS + 50 - performance.now()));
    assert.equal(enc.requestKeyframe(), true, 'the interval since the first request is over');
    const thirdAsked = frames.length;
    await waitFor(() => frames.slice(thirdAsked).some((f) => f.keyframe), 5000, 'the third keyframe');
    const deferredAsked = frames.length;
    assert.equal(enc.requestKeyframe({ defer: true }), false, 'not now: inside the interval');
    assert.equal(enc.requestKeyframe({ defer: true }), false);
    await waitFor(() => frames.slice(deferredAsked).some((f) => f.keyframe), 5000, 'the deferred keyframe');
    const lastKey = () => frames.reduce((at, f, i) => (f.keyframe ? i : at), -1);
    await waitFor(() => frames.length > lastKey() + 45, 5000, 'a second and a half after it');
    assert.equal(enc.keyframeRestarts, 3, 'the deferred request started one run, not two');
    assert.equal(frames.slice(deferredAsked).filter((f) => f.keyframe).length, 1);
  } finally {
    await enc.stop();
  }
  assert.equal(liveChildren(), 0);
});

/** An encoder of the test pattern at 640x360 and 2000 kbit/s, started, and the frames it gives. */
function started2000k(): { enc: Encoder; frames: CapturedFrame[] } {
  const enc = new Encoder({
    ffmpegPath: 'ffmpeg',
    capture: { source: 'test', fps: 30, size: { width: 640, height: 360 } },
    encode: { codec: 'h264', bitrateKbps: 2000, fps: 30, gop: 600, size: { width: 640, height: 360 } },
  });
  const frames: CapturedFrame[] = [];
  enc.on('frame', (f) => frames.push(f));
  enc.start();
  return { enc, frames };
}

test('retarget: a new run at the new bitrate takes over at its keyframe, and its frames are smaller', { skip: skipUnless('ffmpeg') }, async () => {
  const { enc, frames } = started2000k();
  const bytes = (fs: CapturedFrame[]) => fs.reduce((n, f) => n + f.units.reduce((m, u) => m + u.length, 0), 0);
  try {
    await waitFor(() => frames.length >= 60, 10_000, '60 frames');
    const before = bytes(frames.slice(30, 60));
    assert.ok(enc.argv.includes('2000k'));
    const at = frames.length;
    assert.equal(enc.retarget(200), true);
    assert.equal(enc.retarget(300), false, 'one new run at a time');
    assert.ok(enc.argv.includes('200k') && !enc.argv.includes('2000k'), enc.argv.join(' '));
    await waitFor(() => frames.slice(at).some((f) => f.keyframe), 5000, 'the new run\'s keyframe');
    const from = frames.findIndex((f, i) => i >= at && f.keyframe);
    await waitFor(() => frames.length >= from + 61, 10_000, '60 frames of the new run');
    const afterBytes = bytes(frames.slice(from + 31, from + 61));
    assert.ok(afterBytes < before / 3, `a second at 200k: ${afterBytes} bytes, at 2000k: ${before}`);
    assert.equal(enc.retargets, 1);
    assert.equal(enc.bitrateKbps, 200);
    await waitFor(() => liveChildren() === 1, 5000, 'the old FFmpeg to end');
  } finally {
    await enc.stop();
  }
});

test('retarget replaces a keyframe run still starting: one new run, at the new bitrate', { skip: skipUnless('ffmpeg') }, async () => {
  const { enc, frames } = started2000k();
  try {
    await waitFor(() => frames.length >= 30, 10_000, '30 frames');
    const at = frames.length;
    assert.equal(enc.requestKeyframe(), true);
    assert.equal(enc.retarget(200), true, 'the keyframe run gives way');
    assert.equal(enc.retarget(300), false, 'one re-target at a time');
    await waitFor(() => frames.slice(at).some((f) => f.keyframe), 5000, 'the new run\'s keyframe');
    await waitFor(() => liveChildren() === 1, 5000, 'one FFmpeg left');
    const n = frames.length;
    await waitFor(() => frames.length >= n + 5, 5000, 'frames after the switch');
    assert.equal(frames.slice(at).filter((f) => f.keyframe).length, 1, 'one keyframe: the re-target\'s, not the replaced run\'s');
    assert.equal(enc.keyframeRestarts, 1);
    assert.equal(enc.retargets, 1);
    assert.equal(enc.restarts, 0, 'the replaced run is not a crash');
    assert.equal(enc.bitrateKbps, 200);
  } finally {
    await enc.stop();
  }
  assert.equal(liveChildren(), 0);
});

test('a keyframe run and a re-target take over the sound without a hole', { skip: skipUnless('ffmpeg') }, async () => {
  const frameMs = 10;
  const enc = new Encoder({
    ffmpegPath: 'ffmpeg',
    capture: { source: 'test', fps: 30, size: { width: 320, height: 180 } },
    encode: { codec: 'h264', bitrateKbps: 500, fps: 30, gop: 600, size: { width: 320, height: 180 }, audio: { source: { kind: 'test' }, bitrateKbps: 64, frameMs } },
  });
  const frames: CapturedFrame[] = [];
  const sound: CapturedAudio[] = [];
  const arrivals: number[] = [];
  enc.on('frame', (f) => frames.push(f));
  enc.on('audio', (a) => {
    sound.push(a);
    arrivals.push(performance.now());
  });
  enc.start();
  try {
    await waitFor(() => frames.length >= 30 && sound.length >= 50, 10_000, 'a second of pictures and sound');
    const pid = enc.pid;
    assert.equal(enc.requestKeyframe(), true);
    await waitFor(() => liveChildren() === 1 && enc.pid !== pid, 5000, 'the keyframe run to take over');
    await sleep(KEYFRAME_RESTART_MIN_MS);
    const pid2 = enc.pid;
    assert.equal(enc.retarget(300), true);
    await waitFor(() => liveChildren() === 1 && enc.pid !== pid2, 5000, 'the re-target run to take over');
    const n = sound.length;
    await waitFor(() => sound.length >= n + 30, 5000, 'sound from the last run');
  } finally {
    await enc.stop();
  }
  // Each packet starts where the one before ended (within the clock's reading of a new run).
  const holes = [];
  for (let i = 1; i < sound.length; i++) {
    const step = sound[i].captureUnixMs - sound[i - 1].captureUnixMs;
    if (Math.abs(step - frameMs) > frameMs / 2) holes.push(`${step.toFixed(1)} ms at packet ${i}`);
  }
  assert.deepEqual(holes, [], `sound over two hand-overs (${sound.length} packets)`);
  // And none left out (stamps alone would not tell: sound is stamped on from where it was): the
  // earliest each packet arrived for its place in the stream is as early at the end as at the
  // start; k packets left out would make it k × 10 ms later. Measured: a few ms either way.
  const ahead = (from: number, to: number) => Math.min(...arrivals.slice(from, to).map((t, i) => t - (from + i) * frameMs));
  const missing = ahead(sound.length - 50, sound.length) - ahead(0, 50);
  console.log(`# ${sound.length} packets: ${missing.toFixed(1)} ms of sound missing between the first 50 and the last 50`);
  assert.ok(missing < 2 * frameMs, `${missing.toFixed(1)} ms of sound missing`);
});
