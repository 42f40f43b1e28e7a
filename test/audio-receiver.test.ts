/**
 * The viewer's half of the sound (issue 15): Opus RTP packets, bare or in RED (RFC 2198), taken in
 * timestamp order, duplicates dropped, holes filled from RED's copies or marked for concealment,
 * each placed on the picture's RTP clock through the two sources' SRs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { AudioReceiver, type SenderClock } from '../src/player/audio.ts';
import { parseRed, redPayload, fitsRed, RED_MAX_TS_OFFSET } from '../src/codecs/opus/red.ts';
import { AUDIO_CONCEAL_MAX_MS, AUDIO_FILL_LAG_MS, AUDIO_SHIFT_MAX_MS, AUDIO_SILENCE_FILL_MS, PT_OPUS, PT_RED } from '../src/defaults.ts';
import { msToNtp } from '../src/transport/ntp.ts';
import type { RtpPacket } from '../src/rtp/packet.ts';
import { PacketError } from '../src/util/errors.ts';

const AUDIO_SSRC = 0xa0d10;
/** TOC 0xf8: config 31 (CELT fullband, 20 ms = 960 samples), mono, code 0 (one frame). */
const TOC = 0xf8;
const FRAME = 960;
const opus = (n: number) => Buffer.from([TOC, n & 0xff, 0x55]);
const rtp = (seq: number, timestamp: number, payload: Buffer, payloadType = PT_OPUS, ssrc = AUDIO_SSRC): RtpPacket => ({
  padding: 0, marker: false, payloadType, sequenceNumber: seq & 0xffff, timestamp: timestamp >>> 0, ssrc, csrc: [], payload,
});
/** Packet n of a run: timestamp n × 20 ms, Opus bytes that say n. */
const packet = (n: number, ssrc = AUDIO_SSRC) => rtp(n, n * FRAME, opus(n), PT_OPUS, ssrc);
/** Packet n as RED with copies of the `copies` before it. */
const red = (n: number, copies: number) =>
  rtp(n, n * FRAME, Buffer.concat(redPayload(PT_OPUS, opus(n), Array.from({ length: copies }, (_, i) => ({ tsOffset: (copies - i) * FRAME, data: opus(n - copies + i) })))), PT_RED);
const clock = (unixMs: number, rtpTimestamp: number): SenderClock => {
  const n = msToNtp(unixMs);
  return { ntpSec: n.sec, ntpFrac: n.frac, rtpTimestamp: rtpTimestamp >>> 0 };
};
const SR = clock(0, 0);
/** What came out: the number each Opus packet says, or "~" for a concealment mark, with its timestamp. */
const said = (out: ReturnType<AudioReceiver['push']>) => out.map((a) => (a.concealed ? `~${a.timestamp / FRAME}` : String(a.data[1])));

test('RFC 2198 §3 layout, built byte by byte: two redundant headers, the primary header, the blocks oldest first', () => {
  const chunks = redPayload(111, Buffer.from([0xaa]), [
    { tsOffset: 1920, data: Buffer.from([1, 2, 3]) },
    { tsOffset: 960, data: Buffer.from([4, 5]) },
  ]);
  const golden = Buffer.from([
    0x80 | 111, (1920 >> 6) & 0xff, ((1920 & 0x3f) << 2) | (3 >> 8), 3 & 0xff, // F=1, PT, offset 14 bits, length 10 bits
    0x80 | 111, (960 >> 6) & 0xff, ((960 & 0x3f) << 2) | (2 >> 8), 2 & 0xff,
    111, // F=0: the primary's PT
    1, 2, 3, 4, 5, 0xaa,
  ]);
  assert.deepEqual(Buffer.concat(chunks), golden);
  const blocks = parseRed(golden, 10_000);
  assert.deepEqual(blocks.map((b) => [b.payloadType, b.timestamp, [...b.data], b.primary]), [
    [111, 10_000 - 1920, [1, 2, 3], false],
    [111, 10_000 - 960, [4, 5], false],
    [111, 10_000, [0xaa], true],
  ]);
  // Across the 32-bit wrap of the timestamp.
  assert.equal(parseRed(golden, 100)[0].timestamp, 2 ** 32 - 1820);
  // The fields' limits: 14 bits of offset, 10 of length.
  assert.ok(fitsRed({ tsOffset: RED_MAX_TS_OFFSET, data: Buffer.alloc(1023) }));
  assert.ok(!fitsRed({ tsOffset: RED_MAX_TS_OFFSET + 1, data: Buffer.alloc(1) }));
  assert.ok(!fitsRed({ tsOffset: 0, data: Buffer.alloc(1024) }));
  assert.throws(() => redPayload(111, Buffer.alloc(1), [{ tsOffset: 0, data: Buffer.alloc(1024) }]), RangeError);
});

test('parseRed: random bytes only raise PacketError, and a round trip gives back every block', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 2 ** 32 - 1 }), (bytes, ts) => {
      const b = Buffer.from(bytes);
      const copy = Buffer.from(b);
      try {
        parseRed(b, ts);
      } catch (e) {
        if (!(e instanceof PacketError)) throw e;
      }
      assert.deepEqual(b, copy, 'input never mutated');
    }),
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: RED_MAX_TS_OFFSET }), fc.uint8Array({ maxLength: 40 })), { maxLength: 3 }), fc.uint8Array({ minLength: 1, maxLength: 40 }), (reds, primary) => {
      const blocks = parseRed(Buffer.concat(redPayload(PT_OPUS, Buffer.from(primary), reds.map(([o, d]) => ({ tsOffset: o, data: Buffer.from(d) })))), 50_000);
      assert.deepEqual(blocks.map((b) => [b.timestamp, [...b.data]]), [...reds.map(([o, d]) => [(50_000 - o) >>> 0, [...d]]), [50_000, [...primary]]]);
    }),
  );
});

test("placed on the picture's clock: the same instant in both SRs, 48 kHz ticks to 90 kHz", () => {
  const r = new AudioReceiver();
  const at = 1_750_000_000_000;
  const audioSr = clock(at, 1000);
  const videoSr = clock(at, 50_000);
  // 100 ms after the SR instant on the sound's clock: 4800 ticks; on the picture's, 9000.
  assert.equal(r.push(rtp(1, 1000 + 4800, opus(1)), audioSr, videoSr)[0]?.videoTimestamp, 50_000 + 9000);
  // The picture's SR taken 40 ms later: the same instant is 3600 ticks before its timestamp.
  assert.equal(r.push(rtp(2, 1000 + 4800 + 960, opus(2)), audioSr, clock(at + 40, 50_000 + 3600))[0]?.videoTimestamp, 50_000 + 9000 + 1800);
  // Across the 32-bit wrap of both clocks.
  const w = new AudioReceiver();
  assert.equal(w.push(rtp(3, 2 ** 32 - 480, opus(3)), clock(at, 2 ** 32 - 960), clock(at, 2 ** 32 - 900))[0]?.videoTimestamp, 0);
  assert.deepEqual([r.counters.packets, r.counters.concealed, r.counters.late], [2, 0, 0]);
});

test('plain Opus: a duplicate or a straggler brings nothing; a lost packet is marked for concealment at its own time', () => {
  const r = new AudioReceiver();
  const got = [1, 2, 2, 4, 3, 5].map((n) => said(r.push(packet(n), SR, SR)));
  assert.deepEqual(got, [['1'], ['2'], [], ['~3', '4'], [], ['5']]);
  // The mark: the TOC byte alone (one frame, code 0, no bytes): the decoder conceals 20 ms.
  const mark = new AudioReceiver();
  mark.push(packet(1), SR, SR);
  const [m] = mark.push(packet(3), SR, SR);
  assert.deepEqual([...m.data], [TOC & ~0x03]);
  assert.deepEqual(r.counters, { packets: 4, lost: 1, late: 2, recovered: 0, concealed: 1, gaps: 0, silence: 0, unsynced: 0, malformed: 0 });
});

test('RED with two copies: two packets lost in a row come back with the next one, in order, nothing concealed', () => {
  const r = new AudioReceiver();
  const arrived = [1, 2, 5, 6, 9].map((n) => said(r.push(red(n, 2), SR, SR)));
  // The first packet's copies are of sound from before the viewer came. 3 and 4 lost: 5 carries
  // both; 7 and 8 lost: 9 carries both. The copies of what came are not handed on again.
  assert.deepEqual(arrived, [['1'], ['2'], ['3', '4', '5'], ['6'], ['7', '8', '9']]);
  assert.equal(r.counters.recovered, 4);
  assert.equal(r.counters.lost, 4);
  assert.equal(r.counters.concealed, 0);
  // Three in a row is more than two copies cover: the oldest is concealed.
  const x = new AudioReceiver();
  x.push(red(1, 2), SR, SR);
  assert.deepEqual(said(x.push(red(5, 2), SR, SR)), ['~2', '3', '4', '5']);
  assert.equal(x.counters.concealed, 1);
});

test(`a hole longer than ${AUDIO_CONCEAL_MAX_MS} ms is left as it is: the sound resumes at its own time`, () => {
  const r = new AudioReceiver();
  r.push(packet(1), SR, SR);
  const after = Math.ceil(AUDIO_CONCEAL_MAX_MS / 20) + 3;
  assert.deepEqual(said(r.push(packet(after), SR, SR)), [String(after)]);
  assert.deepEqual([r.counters.gaps, r.counters.concealed], [1, 0]);
});

test('silence not sent (DTX): no number missing, the marker on the next packet: marked as silence, up to AUDIO_SILENCE_FILL_MS', () => {
  const r = new AudioReceiver();
  r.push(packet(1), SR, SR);
  // The sharer left out frames 2-20 (380 ms): the next packet has number 2 and the marker bit.
  const talk = { ...rtp(2, 21 * FRAME, opus(21)), marker: true };
  const out = r.push(talk, SR, SR);
  assert.equal(out.length, 20);
  assert.ok(out.slice(0, 19).every((a, i) => a.concealed && a.timestamp === (2 + i) * FRAME));
  assert.deepEqual([r.counters.silence, r.counters.concealed, r.counters.lost, r.counters.gaps], [19, 0, 0, 0]);
  // The same hole without the marker is not known to be silence: longer than AUDIO_CONCEAL_MAX_MS, left as it is.
  const q = new AudioReceiver();
  q.push(packet(1), SR, SR);
  assert.deepEqual(said(q.push(rtp(2, 21 * FRAME, opus(21)), SR, SR)), ['21']);
  assert.deepEqual([q.counters.silence, q.counters.gaps], [0, 1]);
});

/** Digital silence as libopus codes it (codecs/opus/dtx.ts), 20 ms. */
const hush = Buffer.from([TOC, 0xff, 0xfe]);
const quiet = (seq: number, n: number, marker = false): RtpPacket => ({ ...rtp(seq, n * FRAME, hush), marker });
/** Timestamps (in packets) of what came out, "s" for silence, "~" for a mark, else the number said. */
const times = (out: ReturnType<AudioReceiver['push']>) => out.map((a) => `${a.data.equals(hush) ? 's' : a.concealed ? '~' : a.data[1]}@${a.timestamp / FRAME}`);

/** What `r.poll` gives called every 5 ms from `from` to `to` (ms), as watch calls it. */
const polled = (r: AudioReceiver, from: number, to: number) => {
  const out: ReturnType<AudioReceiver['poll']> = [];
  for (let t = from; t <= to; t += 5) out.push(...r.poll(SR, SR, t));
  return out;
};

test(`DTX after digital silence: filled with that silence as time passes, ${AUDIO_FILL_LAG_MS} ms late, up to AUDIO_SILENCE_FILL_MS; the keepalive after it fits on`, () => {
  const r = new AudioReceiver();
  r.push(packet(1), SR, SR, 20);
  r.push(quiet(2, 2), SR, SR, 40);
  assert.deepEqual(polled(r, 40, 40 + 20 + AUDIO_FILL_LAG_MS - 5), [], 'not yet late enough');
  assert.deepEqual(times(r.poll(SR, SR, 40 + 20 + AUDIO_FILL_LAG_MS)), ['s@3']);
  assert.deepEqual(times(polled(r, 105, 40 + 60 + AUDIO_FILL_LAG_MS)), ['s@4', 's@5']);
  const filled = polled(r, 145, 40 + 10_000);
  assert.equal(filled.length, AUDIO_SILENCE_FILL_MS / 20 - 3, 'no more than AUDIO_SILENCE_FILL_MS in all');
  assert.ok(filled.every((a) => !a.concealed && a.data.equals(hush)), 'real silence, for a live player too');
  assert.equal(r.counters.silence, AUDIO_SILENCE_FILL_MS / 20);
  // The sharer's keepalive 400 ms on (number 3, the marker bit): it follows where the fill stopped.
  const s = new AudioReceiver();
  s.push(quiet(1, 1), SR, SR, 20);
  polled(s, 20, 20 + 380);
  assert.deepEqual(times(s.push(quiet(2, 21, true), SR, SR, 420)), ['s@19', 's@20', 's@21'], 'what the fill had not reached yet, then the keepalive');
  assert.deepEqual([s.counters.silence, s.counters.lost, s.counters.gaps], [19, 0, 0]);
  // The sharer said BYE for the sound: its end is not filled.
  const b = new AudioReceiver();
  b.push(quiet(1, 1), SR, SR, 20);
  b.bye([0x1234]);
  assert.equal(polled(b, 20, 200).length, 7, 'a BYE for another source changes nothing');
  b.bye([0x1234, AUDIO_SSRC]);
  assert.deepEqual(polled(b, 205, 1000), []);
  // A poll held up (watch's event loop ran late) fills nothing; the next one, 5 ms on, does.
  const h = new AudioReceiver();
  h.push(quiet(1, 1), SR, SR, 20);
  assert.deepEqual(h.poll(SR, SR, 21), []);
  assert.deepEqual(h.poll(SR, SR, 200), []);
  assert.equal(h.poll(SR, SR, 205).length, 7);
  // After sound that is not silence, a late packet is not filled: it may be a loss RED repairs.
  const t = new AudioReceiver();
  t.push(packet(1), SR, SR, 20);
  assert.deepEqual(polled(t, 20, 1000), []);
});

test(`sound that comes into a fill is handed on right after it, the sound after it as late (by at most ${AUDIO_SHIFT_MAX_MS} ms), and the next silence takes that back`, () => {
  const r = new AudioReceiver();
  r.push(quiet(1, 1), SR, SR, 20);
  // The fill went to packet 6's time; the sharer's sound resumed at 5 (its packet 40 ms later than the fill's lag).
  assert.deepEqual(times(polled(r, 20, 20 + 100 + AUDIO_FILL_LAG_MS)), ['s@2', 's@3', 's@4', 's@5', 's@6']);
  assert.deepEqual(times(r.push({ ...packet(5), sequenceNumber: 2, marker: true }, SR, SR, 162)), ['5@7']);
  assert.deepEqual(times(polled(r, 165, 175)), [], 'sound came: the fill is over');
  assert.deepEqual(times(r.push({ ...packet(6), sequenceNumber: 3 }, SR, SR, 180)), ['6@8']);
  // Silence again (at 7, handed on at 9), then DTX: two fill steps are not handed on.
  assert.deepEqual(times(r.push(quiet(4, 7), SR, SR, 200)), ['s@9']);
  assert.deepEqual(times(polled(r, 205, 200 + 100 + AUDIO_FILL_LAG_MS)), ['s@10', 's@11', 's@12']);
  assert.deepEqual(times(r.push(quiet(5, 13, true), SR, SR, 345)), ['s@13'], 'back on its own time');
  assert.equal(r.counters.lost + r.counters.gaps + r.counters.late, 0);
  // Sound far later than the fill's lag (a stall): what a shift of AUDIO_SHIFT_MAX_MS cannot
  // carry is dropped, as late; the rest follows the fill, and the fill ends.
  const q = new AudioReceiver();
  q.push(quiet(1, 1), SR, SR, 20);
  assert.equal(polled(q, 20, 260).length, 10); // 2-11 filled
  const out = [2, 3, 4, 5, 6, 7, 8].flatMap((seq) => times(q.push({ ...packet(seq + 3), sequenceNumber: seq }, SR, SR, 262 + seq)));
  assert.deepEqual(out, ['10@12', '11@13'], 'sound 5-9 came 140-60 ms into the fill');
  assert.equal(q.counters.late, 5);
  assert.deepEqual(polled(q, 270, 2000), [], 'no fill after sound');
});

test('in DTX: a keepalive late into the fill keeps it going and shifts nothing; a keepalive lost is silence, not sound lost', () => {
  const r = new AudioReceiver();
  r.push(quiet(1, 1), SR, SR, 20);
  assert.equal(polled(r, 20, 20 + 380 + AUDIO_FILL_LAG_MS).length, 19); // 2-20 filled
  assert.deepEqual(r.push(quiet(2, 20, true), SR, SR, 440), [], 'its time is filled already');
  assert.deepEqual([r.counters.late, r.counters.silence], [0, 19]);
  // Filled on from 21 for another AUDIO_SILENCE_FILL_MS, counted from the keepalive.
  assert.equal(polled(r, 445, 440 + AUDIO_SILENCE_FILL_MS + AUDIO_FILL_LAG_MS).length, AUDIO_SILENCE_FILL_MS / 20);
  assert.deepEqual(times(r.push(packet(71), SR, SR, 1500)).at(-1), '71@71', 'no shift: the fill stopped at 70');
  // The keepalive (number 2) lost: number 3, silence again, 400 ms on, without the marker.
  const q = new AudioReceiver();
  q.push(quiet(1, 1), SR, SR, 20);
  // (not polled: the fill did not run, so the hole is seen whole)
  const out = q.push(quiet(3, 41), SR, SR, 820);
  assert.ok(out.slice(0, -1).every((a) => a.concealed && a.data.equals(hush)), 'silence, not concealment marks');
  assert.deepEqual([q.counters.silence, q.counters.concealed, q.counters.gaps, q.counters.lost], [39, 0, 0, 1]);
  // Lost before sound, with its copy (silence) in the sound's RED: silence too, nothing concealed.
  const k = new AudioReceiver();
  k.push(quiet(1, 1), SR, SR, 20);
  polled(k, 20, 400); // 2-18 filled
  const speech = rtp(3, 21 * FRAME, Buffer.concat(redPayload(PT_OPUS, opus(21), [{ tsOffset: 2 * FRAME, data: hush }])), PT_RED);
  assert.deepEqual(times(k.push({ ...speech, marker: true }, SR, SR, 420)), ['s@19', 's@20', '21@21']);
  assert.equal(k.counters.concealed, 0);
});

test("the first packet after DTX lost: RED's copy in the next one is not dropped, in the fill or after it; only sound lost for good is marked", () => {
  const r = new AudioReceiver();
  r.push(quiet(1, 1), SR, SR, 20);
  assert.equal(r.poll(SR, SR, 20 + 80 + AUDIO_FILL_LAG_MS).length, 4); // 2-5 filled
  // Sound from 4 on: number 2 (time 4) lost, number 3 (time 5) brings it as RED.
  const next = rtp(3, 5 * FRAME, Buffer.concat(redPayload(PT_OPUS, opus(5), [{ tsOffset: FRAME, data: opus(4) }])), PT_RED);
  assert.deepEqual(times(r.push(next, SR, SR, 140)), ['4@6', '5@7']);
  assert.equal(r.counters.recovered, 1);
  // Not filled yet (the fill lags): the hole is silence up to the sound, RED's copy gives that back.
  const redAt = (seq: number, n: number) => rtp(seq, n * FRAME, Buffer.concat(redPayload(PT_OPUS, opus(n), [{ tsOffset: FRAME, data: opus(n - 1) }])), PT_RED);
  const q = new AudioReceiver();
  q.push(quiet(1, 1), SR, SR, 20);
  assert.deepEqual(times(q.push(redAt(3, 10), SR, SR, 200)), ['s@2', 's@3', 's@4', 's@5', 's@6', 's@7', 's@8', '9@9', '10@10']);
  assert.deepEqual([q.counters.silence, q.counters.concealed], [7, 0]);
  // Three lost, one copy: the two before it were sound lost for good, marks; the rest silence.
  const m = new AudioReceiver();
  m.push(quiet(1, 1), SR, SR, 20);
  assert.deepEqual(times(m.push(redAt(5, 10), SR, SR, 200)), ['s@2', 's@3', 's@4', 's@5', 's@6', '~@7', '~@8', '9@9', '10@10']);
  assert.deepEqual([m.counters.silence, m.counters.concealed, m.counters.lost], [5, 2, 3]);
});

test('across the wrap of the 16-bit sequence number and the 32-bit timestamp: plain, RED and a hole alike', () => {
  // Packet n has sequence number n mod 2^16 and timestamp n × 960 mod 2^32; n runs across both wraps.
  const first = 4_473_924 - 3; // 4_473_924 × 960 ≥ 2^32; 4_473_924 mod 65536 = 17476
  const at = (n: number, payload: Buffer, payloadType = PT_OPUS) => rtp(n, (n * FRAME) % 2 ** 32, payload, payloadType);
  const seqWrapFirst = 65_536 * 69 - 2; // 4_521_982: its sequence number is 65534
  for (const start of [first, seqWrapFirst]) {
    const r = new AudioReceiver();
    const copies = (n: number) => Buffer.concat(redPayload(PT_OPUS, opus(n), [1, 2].map((k) => ({ tsOffset: (3 - k) * FRAME, data: opus(n - 3 + k) }))));
    const out = [
      r.push(at(start, opus(start)), SR, SR),
      r.push(at(start + 1, opus(start + 1)), SR, SR),
      // start + 2 and + 3 lost; + 4 in RED carries + 2 and + 3.
      r.push(at(start + 4, copies(start + 4), PT_RED), SR, SR),
      // + 5 lost and no copy: a mark at its time; + 6 plain.
      r.push(at(start + 6, opus(start + 6)), SR, SR),
    ].flat();
    assert.deepEqual(out.map((a) => a.concealed), [false, false, false, false, false, true, false], `start ${start}: one mark, for + 5`);
    assert.deepEqual(out.map((a) => a.timestamp), [0, 1, 2, 3, 4, 5, 6].map((k) => ((start + k) * FRAME) % 2 ** 32), `start ${start}: in order, each at its own time`);
    assert.deepEqual([r.counters.lost, r.counters.recovered, r.counters.concealed, r.counters.late], [3, 2, 1, 0], `start ${start}`);
  }
});

test("the sharer's clock stepped back: a newer packet far behind the sound's time starts it afresh, not dropped as a straggler", () => {
  const r = new AudioReceiver();
  r.push(packet(100), SR, SR);
  r.push(packet(101), SR, SR);
  // Number 102 comes with the time of packet 50: a second back.
  assert.deepEqual(said(r.push(rtp(102, 50 * FRAME, opus(50)), SR, SR)), ['50']);
  assert.deepEqual(said(r.push(rtp(103, 51 * FRAME, opus(51)), SR, SR)), ['51']);
  // A straggler (an older number, its own older time) is still dropped.
  assert.deepEqual(r.push(rtp(99, 99 * FRAME, opus(99)), SR, SR), []);
});

test('without an SR for the sound or the picture nothing can be placed: counted; a new source starts over; a bad packet is counted and the next still read', () => {
  const r = new AudioReceiver();
  assert.deepEqual(r.push(packet(10), undefined, SR), []);
  assert.deepEqual(r.push(packet(11), SR, undefined), []);
  assert.equal(r.counters.unsynced, 2);
  // A sharer restart: another SSRC whose numbers start lower is neither late nor a hole.
  assert.deepEqual(said(r.push(packet(3, 0xbeef), SR, SR)), ['3']);
  assert.deepEqual(r.push(rtp(4, 4 * FRAME, Buffer.from([0x80 | PT_OPUS, 0, 0]), PT_RED, 0xbeef), SR, SR), []);
  assert.deepEqual(r.push(rtp(5, 5 * FRAME, Buffer.alloc(0), PT_OPUS, 0xbeef), SR, SR), []);
  assert.equal(r.counters.malformed, 2);
  assert.deepEqual(said(r.push(packet(6, 0xbeef), SR, SR)), ['~4', '~5', '6']);
});

test('jitter (RFC 3550 A.8) and capture-to-arrival latency of the sound, from its SR', () => {
  const r = new AudioReceiver();
  const sr = clock(1_000_000, 0);
  // Evenly spaced arrivals 50 ms after capture: no jitter.
  for (let n = 1; n <= 20; n++) r.push(packet(n), sr, sr, 1_000_000 + n * 20 + 50);
  assert.ok(r.report.jitterMs < 0.01, `${r.report.jitterMs} ms`);
  assert.equal(Math.round(r.report.latencyMs!), 50);
  // Alternately 10 ms early and late: the estimate climbs toward the 20 ms swing.
  for (let n = 21; n <= 200; n++) r.push(packet(n), sr, sr, 1_000_000 + n * 20 + 50 + (n % 2 ? 10 : -10));
  assert.ok(r.report.jitterMs > 15 && r.report.jitterMs <= 20, `${r.report.jitterMs} ms`);
});
