/**
 * A browser's transport-wide congestion feedback read into RFC 8888 terms (relay/webrtc/twcc.ts),
 * from bytes written here by hand after draft-holmer-rmcat-transport-wide-cc-extensions-01 §3.1
 * and parsed by werift, as the relay receives them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RtcpPacketConverter, RtcpTransportLayerFeedback, TransportWideCC } from 'werift';
import { TwccReader, twccArrivals, TWCC_REMEMBERED } from '../src/relay/webrtc/twcc.ts';

/**
 * Base number 100, five packets, reference time 1000 (64 s): arrived (+1 ms), lost, arrived
 * (+2 ms), arrived 1 ms earlier than the one before (a large delta, negative), arrived (+3 ms).
 * One 2-bit status vector chunk: 11 01 00 01 10 01 00 00 = 0xd190.
 */
const REPORT = Buffer.from([
  0x8f, 205, 0, 6, // V=2, FMT=15, RTPFB, 7 words
  0, 0, 0, 1, // sender SSRC
  0, 0, 0, 2, // media SSRC
  0, 100, 0, 5, // base sequence number, packet status count
  0x00, 0x03, 0xe8, 0, // reference time 1000, feedback packet count 0
  0xd1, 0x90, // the status vector
  4, 8, 0xff, 0xfc, 12, // deltas in 250 µs: 4, 8, -4 (two bytes), 12
  0, // padding to 32 bits
]);

function parsed(buf: Buffer): TransportWideCC {
  const [p] = RtcpPacketConverter.deSerialize(buf);
  assert.ok(p instanceof RtcpTransportLayerFeedback && p.feedback instanceof TransportWideCC, 'werift reads a TWCC report');
  return p.feedback;
}

test('a TWCC report: which numbers arrived and when, a loss and a negative delta included', () => {
  const fb = parsed(REPORT);
  assert.deepEqual(twccArrivals(fb, fb.referenceTime), [
    { tw: 100, atUs: 64_001_000 },
    { tw: 101 },
    { tw: 102, atUs: 64_003_000 },
    { tw: 103, atUs: 64_002_000 },
    { tw: 104, atUs: 64_005_000 },
  ]);
});

test('the arrivals are named as the relay numbered the packets (picture and sound apart), the loss reported, the times as RFC 8888 offsets', () => {
  const r = new TwccReader();
  r.sent(100, 0xaaaa, 5000);
  r.sent(101, 0xaaaa, 5001);
  r.sent(102, 0xaaaa, 5002);
  r.sent(103, 0xbbbb, 7);
  r.sent(104, 0xaaaa, 5003);
  const ccfb = r.read(parsed(REPORT), 1_000_000, 1);
  assert.ok(ccfb);
  const picture = ccfb.streams.find((s) => s.ssrc === 0xaaaa)!;
  const sound = ccfb.streams.find((s) => s.ssrc === 0xbbbb)!;
  assert.equal(picture.beginSeq, 5000);
  assert.deepEqual(picture.packets.map((p) => p.received), [true, false, true, true]);
  // The report is dated at the latest arrival (64.005 s), 4, 2 and 0 ms after the picture's (1/1024 s).
  assert.deepEqual(picture.packets.map((p) => p.ato), [4, 0, 2, 0]);
  assert.deepEqual(sound.packets, [{ received: true, ecn: 0, ato: 3 }]);
  assert.equal(r.counters.reports, 1);
  assert.equal(r.counters.unknown, 0);
});

test('numbers the relay does not remember are counted and ignored; a report of nothing it sent gives nothing', () => {
  const r = new TwccReader();
  r.sent(100, 0xaaaa, 5000);
  r.sent(100 + TWCC_REMEMBERED, 0xaaaa, 9000); // took 100's place
  r.sent(104, 0xaaaa, 5001);
  const ccfb = r.read(parsed(REPORT), 0, 1);
  assert.ok(ccfb);
  assert.deepEqual(ccfb.streams.map((s) => [s.ssrc, s.beginSeq, s.packets.length]), [[0xaaaa, 5001, 1]]);
  assert.equal(r.counters.unknown, 3);
  assert.equal(new TwccReader().read(parsed(REPORT), 0, 1), undefined);
});

test('a report with fewer deltas than arrivals is read as far as it goes', () => {
  const fb = parsed(REPORT);
  fb.recvDeltas = fb.recvDeltas.slice(0, 2);
  assert.deepEqual(twccArrivals(fb, fb.referenceTime).map((a) => a.tw), [100, 101, 102]);
});
