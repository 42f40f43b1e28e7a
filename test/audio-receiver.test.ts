/**
 * The viewer's half of the sound (issue 15): Opus RTP packets in sequence order, duplicates and
 * stragglers dropped, each placed on the picture's RTP clock through the two sources' SRs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AudioReceiver, type SenderClock } from '../src/player/audio.ts';
import { msToNtp } from '../src/transport/ntp.ts';
import type { RtpPacket } from '../src/rtp/packet.ts';

const AUDIO_SSRC = 0xa0d10;
const packet = (seq: number, timestamp: number, ssrc = AUDIO_SSRC): RtpPacket => ({
  padding: 0, marker: false, payloadType: 111, sequenceNumber: seq & 0xffff, timestamp: timestamp >>> 0, ssrc, csrc: [], payload: Buffer.from([0xf8, seq & 0xff]),
});
const clock = (unixMs: number, rtpTimestamp: number): SenderClock => {
  const n = msToNtp(unixMs);
  return { ntpSec: n.sec, ntpFrac: n.frac, rtpTimestamp: rtpTimestamp >>> 0 };
};

test("placed on the picture's clock: the same instant in both SRs, 48 kHz ticks to 90 kHz", () => {
  const r = new AudioReceiver();
  const at = 1_750_000_000_000;
  const audioSr = clock(at, 1000);
  const videoSr = clock(at, 50_000);
  // 100 ms after the SR instant on the sound's clock: 4800 ticks; on the picture's, 9000.
  assert.equal(r.push(packet(1, 1000 + 4800), audioSr, videoSr)?.videoTimestamp, 50_000 + 9000);
  // The picture's SR taken 40 ms later: the same instant is 3600 ticks before its timestamp.
  assert.equal(r.push(packet(2, 1000 + 4800 + 960), audioSr, clock(at + 40, 50_000 + 3600))?.videoTimestamp, 50_000 + 9000 + 1800);
  // Across the 32-bit wrap of both clocks.
  const wrapped = r.push(packet(3, 2 ** 32 - 480), clock(at, 2 ** 32 - 960), clock(at, 2 ** 32 - 900));
  assert.equal(wrapped?.videoTimestamp, (2 ** 32 - 900 + 900) % 2 ** 32);
  assert.deepEqual(r.counters, { packets: 3, lost: 0, late: 0, unsynced: 0 });
});

test('in sequence order: a duplicate or a straggler is dropped, a gap counted as lost', () => {
  const r = new AudioReceiver();
  const sr = clock(0, 0);
  const seqs = [65534, 65535, 0, 0, 65535, 3, 2, 4];
  const out = seqs.map((s) => r.push(packet(s, s * 960), sr, sr));
  assert.deepEqual(out.map((o) => o !== undefined), [true, true, true, false, false, true, false, true]);
  assert.deepEqual(r.counters, { packets: 5, lost: 2, late: 3, unsynced: 0 });
});

test('without an SR for the sound or the picture the packet cannot be placed: counted, dropped; a new source starts over', () => {
  const r = new AudioReceiver();
  assert.equal(r.push(packet(10, 0), undefined, clock(0, 0)), undefined);
  assert.equal(r.push(packet(11, 960), clock(0, 0), undefined), undefined);
  assert.equal(r.counters.unsynced, 2);
  // A sharer restart: another SSRC whose numbers start lower is not "late".
  assert.ok(r.push(packet(3, 0, 0xbeef), clock(0, 0), clock(0, 0)));
  assert.deepEqual(r.counters, { packets: 1, lost: 0, late: 0, unsynced: 2 });
});
