// OutgoingStream: the stream as a player outside udpcast (RTSP, a browser, a pushed-to server)
// takes it. Here: picture times never step back when the relay moves a viewer onto another
// layer's cached keyframe (libwebrtc skips a picture older than the last it decoded).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { OutgoingStream, liveTime } from '../src/relay/outgoing.ts';
import type { StreamState } from '../src/relay/routing.ts';
import { rtpSequence, rtpSsrc, rtpTimestamp, serializeRtpToBuffer } from '../src/rtp/packet.ts';

const A = 0xaaaa;
const B = 0xbbbb;
const FRAME = 3000; // 30 fps at 90 kHz
const STEP = 90; // 1 ms
const pic = (ssrc: number, seq: number, ts: number) =>
  serializeRtpToBuffer({ padding: 0, marker: true, payloadType: 96, sequenceNumber: seq, timestamp: ts >>> 0, ssrc, csrc: [], payload: Buffer.from([0x41, 1]) });
const sent = (out: OutgoingStream, p: Buffer) => {
  const o = out.nextPicture(p)!;
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

describe("OutgoingStream: a browser's catch-up, stamped as it is sent", () => {
  const MS = STEP;
  /** A sharer at 30 fps whose picture i (time i frames) reaches the relay at i / 30 s; a browser joins at picture 30. */
  function joinAt30() {
    const lane = { liveTs: 30 * FRAME, liveTsAt: 1000 };
    let clock = 1000;
    let next = 31;
    const stream = { ssrc: A, sound: {}, lastTs: lane.liveTs, keyframes: { frame: [] } } as unknown as StreamState;
    const out = OutgoingStream.joining(stream, undefined, () => liveTime(lane, clock));
    /** The relay's clock to `ms`, with the pictures that came by then. */
    const at = (ms: number) => {
      clock = ms;
      for (; (next * 1000) / 30 <= clock; next++) Object.assign(lane, { liveTs: next * FRAME, liveTsAt: (next * 1000) / 30 });
      return next;
    };
    return { out, at, lane };
  }

  test('each picture gets the live time as it goes, so its time and arrival agree as a live one\'s do; then times as they come', () => {
    const { out, at } = joinAt30();
    const sends: Array<{ ms: number; own: number; ts: number }> = [];
    const send = (ms: number, i: number) => sends.push({ ms, own: i * FRAME, ts: sent(out, pic(A, 100 + i, i * FRAME)).ts });
    // The cache, pictures 0-30, paced out one each 10 ms; the keyframe in two packets.
    at(1000);
    const part = serializeRtpToBuffer({ padding: 0, marker: false, payloadType: 96, sequenceNumber: 99, timestamp: 0, ssrc: A, csrc: [], payload: Buffer.from([0x65, 1]) });
    const keyPart = out.nextPicture(part)!;
    for (let i = 0; i <= 30; i++) {
      at(1000 + 10 * i);
      send(1000 + 10 * i, i);
    }
    assert.equal(rtpTimestamp(keyPart), sends[0].ts, "a picture's packets share its stamp");
    // The live pictures queued behind it (31-39 came meanwhile), all at once, then live ones as they come.
    const queued = at(1310);
    for (let i = 31; i < queued; i++) send(1310, i);
    for (let i = queued; i < queued + 10; i++) {
      at((i * 1000) / 30 + 0.5);
      send((i * 1000) / 30 + 0.5, i);
    }
    for (let k = 1; k < sends.length; k++) assert.ok(sends[k].ts - sends[k - 1].ts >= MS, `picture ${k}: ${sends[k].ts} not 1 ms after ${sends[k - 1].ts}`);
    // A live picture's time is its arrival (time / 90 = ms here): each sent one within 10 ms of that.
    for (const s of sends) {
      const ahead = s.ts / MS - s.ms;
      assert.ok(ahead >= -1 && ahead <= 10, `sent at ${s.ms} ms stamped ${s.ts / MS} ms (its own ${s.own / MS})`);
    }
    assert.deepEqual(sends.slice(-10).map((s) => s.ts), sends.slice(-10).map((s) => s.own), 'live: their own times');
    assert.equal(sent(out, pic(A, 105, 5 * FRAME)).ts, sends[5].ts, 'a repair: the stamp it was sent with');
  });

  test("a move onto another layer's cached keyframe: its pictures get the live time as they go, then their own", () => {
    const { out, at, lane } = joinAt30();
    at(1034);
    for (let i = 31; i <= 40; i++) {
      at((i * 1000) / 30);
      sent(out, pic(A, 100 + i, i * FRAME));
    }
    // At picture 40 (1333 ms) the browser moves to layer B, whose keyframe is picture 35: its cache
    // is paced out one picture each 10 ms while B's live pictures (the same times) come.
    const sends: Array<{ ms: number; own: number; ts: number }> = [];
    for (let k = 0; k <= 8; k++) {
      const ms = 1340 + 10 * k;
      at(ms);
      const i = 35 + k;
      sends.push({ ms, own: i * FRAME, ts: sent(out, pic(B, 700 + k, i * FRAME)).ts });
    }
    assert.ok(lane.liveTs! >= 42 * FRAME, 'the live picture moved on meanwhile');
    for (let k = 1; k < sends.length; k++) assert.ok(sends[k].ts - sends[k - 1].ts >= MS, 'never back, 1 ms apart at least');
    assert.ok(sends[0].ts >= 40 * FRAME + MS, 'after the newest sent');
    for (const s of sends.slice(0, 6)) {
      const ahead = s.ts / MS - s.ms;
      assert.ok(ahead >= -1 && ahead <= 10, `sent at ${s.ms} ms stamped ${s.ts / MS} ms (its own ${s.own / MS})`);
    }
    const next = 44 * FRAME;
    at((44 * 1000) / 30);
    assert.equal(sent(out, pic(B, 709, next)).ts, next, "past the stamps given: B's own time");
    assert.equal(sent(out, pic(B, 702, 37 * FRAME)).ts, sends[2].ts, 'a repair: the stamp it was sent with');
  });

  test('a late packet of a picture never sent keeps its own time and moves nothing', () => {
    const { out, at } = joinAt30();
    const stamps = [0, 1, 2].map((i) => {
      at(1000 + 10 * i);
      return sent(out, pic(A, [100, 102, 103][i], i * FRAME)).ts;
    });
    at(1030);
    assert.equal(sent(out, pic(A, 101, 7 * FRAME)).ts, 7 * FRAME, 'older than the newest sent: not stamped');
    const next = sent(out, pic(A, 104, 3 * FRAME)).ts;
    assert.ok(next - stamps[2] >= MS, `the next picture ${next} after ${stamps[2]}`);
  });

  test('a late packet of the source from before it was this player\'s is not sent; over RTSP/TCP (freshOnly) no late packet is', () => {
    const out = new OutgoingStream(A);
    assert.ok(out.nextPicture(pic(A, 100, 0)));
    assert.ok(out.nextPicture(pic(A, 102, FRAME)));
    assert.equal(out.nextPicture(pic(A, 99, 0)), undefined, 'before its first: another picture\'s past');
    assert.ok(out.nextPicture(pic(A, 101, 0)), 'a repair after its first goes');
    // Moved to layer B at its packet 500: B's packet 499, repaired since, would be numbered among A's.
    assert.ok(out.nextPicture(pic(B, 500, 2 * FRAME)));
    assert.equal(out.nextPicture(pic(B, 499, FRAME)), undefined);
    assert.ok(out.nextPicture(pic(B, 501, 3 * FRAME), true));
    assert.equal(out.nextPicture(pic(B, 500, 2 * FRAME), true), undefined, 'freshOnly: a late packet is left out');
  });

  test('a catch-up that never reaches the live time (past RESTAMPED_MAX pictures, a sharer clock 1% slow): times never go back', () => {
    const lane = { liveTs: 0, liveTsAt: 0 };
    let clock = 0;
    const stream = { ssrc: A, sound: {}, lastTs: 0, keyframes: { frame: [] } } as unknown as StreamState;
    const out = OutgoingStream.joining(stream, undefined, () => liveTime(lane, clock));
    let last = -MS;
    for (let i = 0; i < 2500; i++) {
      clock = Math.round(i * 33.67); // 1% faster than the pictures' clock (33.33 ms each)
      Object.assign(lane, { liveTs: 90_000 + clock * MS, liveTsAt: clock }); // a second ahead, and pulling away
      const ts = sent(out, pic(A, i, i * FRAME)).ts;
      assert.ok(ts - last >= MS, `picture ${i}: ${ts} after ${last}`);
      last = ts;
    }
  });

  test('with no cache to replay, the first picture is live and keeps its time', () => {
    const { out, at } = joinAt30();
    at(1034);
    assert.equal(sent(out, pic(A, 131, 31 * FRAME)).ts, 31 * FRAME);
    assert.equal(sent(out, pic(A, 132, 32 * FRAME)).ts, 32 * FRAME);
  });

  test("the live time runs on from the newest picture's, at most 1 s", () => {
    assert.equal(liveTime({ liveTs: 9000, liveTsAt: 500 }, 600), 9000 + 100 * MS);
    assert.equal(liveTime({ liveTs: 9000, liveTsAt: 500 }, 400), 9000, 'a clock read before the picture came');
    assert.equal(liveTime({ liveTs: 9000, liveTsAt: 500 }, 60_000), 9000 + 1000 * MS);
    assert.equal(liveTime({ liveTs: 0xffffffff - 10, liveTsAt: 0 }, 1), (0xffffffff - 10 + MS) >>> 0, 'wraps');
    assert.equal(liveTime({ liveTsAt: -Infinity }, 0), undefined);
  });
});

describe('OutgoingStream.pictureEnd (the next picture delimited at once, for libavformat players)', () => {
  const AUD = Buffer.from([0x09, 0xf0]);
  const part = (seq: number, ts: number) =>
    serializeRtpToBuffer({ padding: 0, marker: false, payloadType: 96, sequenceNumber: seq, timestamp: ts >>> 0, ssrc: A, csrc: [], payload: Buffer.from([0x41, 1]) });
  /** `n` pictures of two packets each from `seq`, times `times(i)`; each sent packet and delimiter in order. */
  function play(out: OutgoingStream, n: number, times: (i: number) => number, seq = 1000) {
    const wire: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      for (const p of [part(seq++, times(i)), pic(A, seq++, times(i))]) {
        const o = out.nextPicture(p)!;
        wire.push(o);
        const d = out.pictureEnd(o, AUD);
        if (d) wire.push(d);
      }
    }
    return wire;
  }

  test('after 30 live pictures rising: a delimiter after each, stamped with the next time, numbers unbroken', () => {
    const out = new OutgoingStream(A);
    const wire = play(out, 40, (i) => 90_000 + i * FRAME);
    const delims = wire.filter((p) => p.subarray(12).equals(AUD));
    assert.equal(delims.length, 40 - 30, 'from the 31st picture on');
    const seqs = wire.map(rtpSequence);
    assert.deepEqual(seqs, seqs.map((_, i) => 1000 + i), 'numbers go on through the delimiters');
    for (const d of delims) {
      const at = wire.indexOf(d);
      assert.equal(rtpTimestamp(d), rtpTimestamp(wire[at - 1]) + FRAME, 'the next picture\'s time');
      assert.equal(d[1] & 0x80, 0, 'no marker');
      assert.equal(rtpSsrc(d), A);
    }
    // NACKs map back through the delimiters; a delimiter's own number is no packet of the relay's.
    const last = wire.at(-1)!;
    assert.equal(out.sourceSequence(rtpSequence(wire[0])), 1000);
    assert.equal(out.sourceSequence(rtpSequence(last)), undefined);
    for (const [k, p] of wire.entries()) {
      if (!p.subarray(12).equals(AUD)) assert.equal(out.sourceSequence(rtpSequence(p)), 1000 + k - delims.filter((d) => wire.indexOf(d) < k).length);
    }
    const next = out.nextPicture(part(1080, 90_000 + 40 * FRAME))!;
    assert.equal(rtpSequence(next), rtpSequence(last) + 1);
    assert.equal(out.sourceSequence(rtpSequence(next)), 1080, 'a packet since the last delimiter maps back');
  });

  test('a packet of a picture that comes after its delimiter (reordered on the way in) keeps its own number', () => {
    const out = new OutgoingStream(A);
    const wire = play(out, 35, (i) => 90_000 + i * FRAME);
    // The last picture's packets were 1068 (first) and 1069 (marker): the first comes again, late.
    const lateFirst = out.nextPicture(part(1068, 90_000 + 34 * FRAME))!;
    const sentFirst = wire.find((p) => rtpTimestamp(p) === 90_000 + 34 * FRAME && (p[1] & 0x80) === 0 && !p.subarray(12).equals(AUD))!;
    assert.equal(rtpSequence(lateFirst), rtpSequence(sentFirst), 'the number it had');
    assert.equal(new Set(wire.map(rtpSequence)).size, wire.length, 'no number twice');
  });

  test('a move onto a cached keyframe after a delimiter: the replay is stamped after the delimiter', () => {
    const out = new OutgoingStream(A);
    const wire = play(out, 32, (i) => 90_000 + i * FRAME);
    const aud = wire.at(-1)!;
    assert.ok(aud.subarray(12).equals(AUD));
    const replay = [0, 1, 2].map((i) => rtpTimestamp(out.nextPicture(pic(B, 600 + i, 90_000 + (26 + i) * FRAME))!));
    assert.deepEqual(replay, [1, 2, 3].map((k) => rtpTimestamp(aud) + k * STEP), 'after the time the player gave the next picture');
  });

  test('a picture the encoder skipped does not put the next one late; delimiters are at least 1 ms apart', () => {
    const out = new OutgoingStream(A);
    const times = [...Array.from({ length: 33 }, (_, i) => i), 35, 36, 37].map((f) => 90_000 + f * FRAME);
    const wire = play(out, times.length, (i) => times[i]);
    const stamps = wire.filter((p) => p.subarray(12).equals(AUD)).map(rtpTimestamp);
    // After picture 32 the next was expected at 33; it came at 35 (two skipped), then 36, 37.
    assert.deepEqual(stamps.slice(-4), [33, 36, 37, 38].map((f) => 90_000 + f * FRAME));
    const jitter = new OutgoingStream(A);
    const close = play(jitter, 40, (i) => 90_000 + i * FRAME + (i === 35 ? FRAME - 10 : 0)); // picture 35 10 ticks before 36
    const s = close.filter((p) => p.subarray(12).equals(AUD)).map(rtpTimestamp);
    for (let i = 1; i < s.length; i++) assert.ok(s[i] - s[i - 1] >= STEP, `${s[i - 1]} → ${s[i]}`);
  });

  test('times that go back (B-frames) never let the count reach 30; a gap over 1 s starts it again', () => {
    const out = new OutgoingStream(A);
    const order = [0, 3, 1, 2, 6, 4, 5]; // I P B B P B B, in decoding order
    const bframes = play(out, 70, (i) => 90_000 + (Math.floor(i / 7) * 7 + order[i % 7]) * FRAME);
    assert.equal(bframes.filter((p) => p.subarray(12).equals(AUD)).length, 0);
    // A restarted sharer (another SSRC, its own clock) without B-frames is looked at afresh.
    const restarted: Buffer[] = [];
    for (let i = 0; i < 40; i++) {
      const o = out.nextPicture(pic(B, 3000 + i, 5_000_000 + i * FRAME))!;
      restarted.push(o);
      const d = out.pictureEnd(o, AUD);
      if (d) restarted.push(d);
    }
    assert.equal(restarted.filter((p) => p.subarray(12).equals(AUD)).length, 40 - 30);
    const late = new OutgoingStream(A);
    const gap = play(late, 40, (i) => 90_000 + i * FRAME + (i >= 35 ? 2 * 90_000 : 0));
    const delims = gap.filter((p) => p.subarray(12).equals(AUD)).length;
    assert.equal(delims, 35 - 30, 'none from the picture that came 2 s after the one before: the count starts again');
  });

  test("a joiner's catch-up and a replay (stamped 1 ms apart) count for nothing: their intervals are not the live ones", () => {
    const out = new OutgoingStream(A);
    // As OutgoingStream.joining makes it: 30 cached pictures, the live edge at the 31st.
    (out as unknown as { videoEdge: number }).videoEdge = 30 * FRAME;
    (out as unknown as { catchUp: Map<number, number> }).catchUp = new Map(Array.from({ length: 30 }, (_, i) => [i * FRAME, 30 * FRAME - (30 - i) * STEP]));
    const wire = play(out, 70, (i) => i * FRAME);
    const at = wire.flatMap((p, k) => (p.subarray(12).equals(AUD) ? [k] : []));
    // Pictures 30.. are live; the 30th interval between live pictures ends at picture 60.
    assert.equal(at.length, 70 - 60);
    assert.equal(rtpTimestamp(wire[at[0] - 1]), 60 * FRAME);
    assert.equal(rtpTimestamp(wire[at[0]]), 61 * FRAME, 'the live interval, not the catch-up\'s');
    // A move onto another layer's cache (behind the newest sent): none while it is stamped 1 ms apart.
    const moved: Buffer[] = [];
    for (let i = 0; i < 5; i++) {
      const o = out.nextPicture(pic(B, 50 + i, (65 + i) * FRAME))!;
      moved.push(o);
      const d = out.pictureEnd(o, AUD);
      if (d) moved.push(d);
    }
    assert.equal(moved.filter((p) => p.subarray(12).equals(AUD)).length, 0);
    assert.equal(new OutgoingStream(A).pictureEnd(pic(A, 1, 1), AUD), undefined, 'nothing sent yet: nothing to end');
  });

  test('a repair (not the newest packet) and a packet without the marker get none', () => {
    const out = new OutgoingStream(A);
    play(out, 31, (i) => 90_000 + i * FRAME);
    const old = out.nextPicture(pic(A, 1001, 90_000))!;
    assert.equal(out.pictureEnd(old, AUD), undefined);
    const mid = out.nextPicture(part(1100, 90_000 + 31 * FRAME))!;
    assert.equal(out.pictureEnd(mid, AUD), undefined);
  });
});
