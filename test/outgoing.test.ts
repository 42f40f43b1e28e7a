// OutgoingStream: the stream as a player outside udpcast (RTSP, a browser, a pushed-to server)
// takes it. Here: picture times never step back when the relay moves a viewer onto another
// layer's cached keyframe (libwebrtc skips a picture older than the last it decoded).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { OutgoingStream } from '../src/relay/outgoing.ts';
import { rtpSequence, rtpSsrc, rtpTimestamp, serializeRtpToBuffer } from '../src/rtp/packet.ts';

const A = 0xaaaa;
const B = 0xbbbb;
const FRAME = 3000; // 30 fps at 90 kHz
const STEP = 90; // 1 ms
const pic = (ssrc: number, seq: number, ts: number) =>
  serializeRtpToBuffer({ padding: 0, marker: true, payloadType: 96, sequenceNumber: seq, timestamp: ts >>> 0, ssrc, csrc: [], payload: Buffer.from([0x41, 1]) });
const sent = (out: OutgoingStream, p: Buffer) => {
  const o = out.nextPicture(p);
  return { ssrc: rtpSsrc(o), seq: rtpSequence(o), ts: rtpTimestamp(o) };
};

describe('OutgoingStream picture times', () => {
  test('a move onto a cached keyframe: its pictures stamped 1 ms apart after the newest sent, then its own times', () => {
    const out = new OutgoingStream(A);
    for (let i = 0; i < 10; i++) assert.equal(sent(out, pic(A, 100 + i, 90_000 + i * FRAME)).ts, 90_000 + i * FRAME, 'live: as it comes');
    const newest = 90_000 + 9 * FRAME;
    // Layer B's cache: its keyframe 6 pictures back, then the pictures since, then live ones.
    const cache = Array.from({ length: 7 }, (_, i) => pic(B, 500 + i, newest - 6 * FRAME + i * FRAME));
    const got = cache.map((p) => sent(out, p));
    assert.deepEqual(got.map((g) => g.ts), cache.map((_, i) => newest + (i + 1) * STEP), 'after the newest sent, 1 ms apart');
    assert.deepEqual(got.map((g) => g.ssrc), cache.map(() => A), 'one source to the player');
    assert.deepEqual(got.map((g) => g.seq), cache.map((_, i) => 110 + i), 'numbers go on');
    assert.equal(sent(out, pic(B, 507, newest + FRAME)).ts, newest + FRAME, 'past the stamps given: its own time');
    // A repair of a restamped picture: the time it was sent with.
    assert.equal(sent(out, cache[3]).ts, newest + 4 * STEP);
  });

  test("a new sharer's clock (a source far behind, or ahead) is left as it comes", () => {
    for (const base of [5_000_000, 2_000_000_000]) {
      const out = new OutgoingStream(A);
      for (let i = 0; i < 5; i++) sent(out, pic(A, i, 1_000_000_000 + i * FRAME));
      const got = [0, 1, 2].map((i) => sent(out, pic(B, 7000 + i, base + i * FRAME)));
      assert.deepEqual(got.map((g) => g.ts), [base, base + FRAME, base + 2 * FRAME], `a new time base at ${base}: one jump, then its own pace`);
    }
  });

  test('after a replay, a new picture of a time stamped before (the clock came round, 13 h on) keeps its own', () => {
    const out = new OutgoingStream(A);
    sent(out, pic(A, 1, 9000));
    assert.equal(sent(out, pic(B, 40, 6000)).ts, 9000 + STEP, 'replayed');
    assert.equal(sent(out, pic(B, 41, 12_000)).ts, 12_000, 'live');
    assert.equal(sent(out, pic(B, 42, 6000)).ts, 6000, 'a new picture, not a repair of the replayed one');
    assert.equal(sent(out, pic(B, 40, 6000)).ts, 9000 + STEP, 'while a repair gets its stamp');
  });

  test("a layer's picture of the same instant as the last one sent is a picture of its own", () => {
    const out = new OutgoingStream(A);
    sent(out, pic(A, 1, 9000));
    assert.equal(sent(out, pic(B, 40, 9000)).ts, 9000 + STEP);
    assert.equal(sent(out, pic(B, 41, 9000 + FRAME)).ts, 9000 + FRAME);
  });

  test('within one source times are left as they come (B-frames of a publisher\'s own encoder)', () => {
    const out = new OutgoingStream(A);
    assert.deepEqual([1, 2, 3].map((i) => sent(out, pic(A, i, [9000, 18_000, 12_000][i - 1])).ts), [9000, 18_000, 12_000]);
  });

  test("a joiner's catch-up stamps are not applied to another layer's pictures of the same times", () => {
    const out = new OutgoingStream(A);
    // As OutgoingStream.joining makes it: a cache of pictures at 0..4 frames, the live edge at 5.
    (out as unknown as { videoEdge: number }).videoEdge = 5 * FRAME;
    (out as unknown as { catchUp: Map<number, number> }).catchUp = new Map([0, 1, 2, 3, 4].map((i) => [i * FRAME, 5 * FRAME - (5 - i) * STEP]));
    const join = [0, 1, 2, 3, 4, 5, 6].map((i) => sent(out, pic(A, 10 + i, i * FRAME)).ts);
    assert.deepEqual(join, [5 * FRAME - 5 * STEP, 5 * FRAME - 4 * STEP, 5 * FRAME - 3 * STEP, 5 * FRAME - 2 * STEP, 5 * FRAME - STEP, 5 * FRAME, 6 * FRAME]);
    // A move onto B's cache, which holds pictures of the join's times.
    const moved = [3, 4, 5, 6, 7].map((i, k) => sent(out, pic(B, 70 + k, i * FRAME)).ts);
    assert.deepEqual(moved, [6 * FRAME + STEP, 6 * FRAME + 2 * STEP, 6 * FRAME + 3 * STEP, 6 * FRAME + 4 * STEP, 7 * FRAME]);
    for (let i = 1; i < moved.length; i++) assert.ok(moved[i] > moved[i - 1], 'never back');
  });
});
