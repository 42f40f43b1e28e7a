/**
 * The pure pieces that put the sound on the live timeline (issue 15): LiveClock places a packet
 * where the picture captured with it arrives, at the sound's own pace; the watchdog reads ffplay's
 * status line with a sound track ("A-V") and says where its clock stands against ours.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiveClock } from '../src/player/clock.ts';
import { PlayerWatchdog, parseStatusLine } from '../src/player/watchdog.ts';

const BUDGET = 100;
/** A live frame `latency` ms after its capture at `captureMs` (90 kHz RTP from 0xfffff000, so it wraps). */
const RTP0 = 0xfffff000;
const rtp = (ms: number) => (RTP0 + ms * 90) % 2 ** 32;

test('sound is due when the picture captured with it arrives, read from the fastest recent frame', () => {
  const c = new LiveClock();
  assert.equal(c.soundDue(rtp(0), 1000), undefined, 'no live frame yet');
  // Frames captured every 33 ms, arriving 10 ms later; one held 60 ms by a repair.
  for (let i = 0; i < 10; i++) c.stamp({ timestamp: rtp(i * 33), latencyMs: 10 }, 1010 + i * 33 + (i === 5 ? 50 : 0), BUDGET);
  // Sound captured at 100 ms (the RTP clock wrapped meanwhile): its picture arrives at 1110.
  assert.equal(c.soundDue(rtp(100), 1200), 1110);
  // A timestamp of another sharer session is not placed.
  assert.equal(c.soundDue((RTP0 + 90 * 60_000) % 2 ** 32, 1200), undefined);
  // Stale frames (catch-up) say nothing about the live pace.
  const d = new LiveClock();
  d.stamp({ timestamp: rtp(0), latencyMs: 2000 }, 1000, BUDGET);
  assert.equal(d.soundDue(rtp(0), 1000), undefined);
});

test('sound keeps its own pace within the slack, and moves where it belongs beyond it', () => {
  const c = new LiveClock();
  const at = (i: number, target: number) => c.placeSound({ timestamp: i * 960, videoTimestamp: 0 }, target);
  assert.equal(at(0, 500), 500);
  // Arrival jitter of ±15 ms: 20 ms apart all the same.
  assert.equal(at(1, 535), 520);
  assert.equal(at(2, 525), 540);
  // 100 ms off (a gap in the sound, a new pace of the picture): moved.
  assert.equal(at(3, 660), 660);
  // Moved back, never before the last packet.
  assert.equal(at(4, 600), 661);
  assert.equal(at(5, 560), 662);
  c.reset();
  assert.equal(at(10, 900), 900, 'a new player starts its sound afresh');
});

test('ticksAt: a time on the frames\' clock in 90 kHz ticks from the first frame', () => {
  const c = new LiveClock();
  assert.equal(c.ticksAt(5), undefined);
  c.stamp({}, 1000, BUDGET);
  assert.equal(c.ticksAt(1020), 1800);
});

test('ffplay\'s status line with a sound track (A-V) is read like the one without', () => {
  assert.deepEqual(parseStatusLine('   4.18 A-V:    nan fd=   2 aq=    0KB vq=    0KB sq=    0B f=0/0   '), { clockSec: 4.18, dropped: 2, avSec: NaN });
  assert.deepEqual(parseStatusLine('  12.50 A-V: -0.344 fd=  17 aq=    3KB vq=   10KB sq=    0B f=0/0'), { clockSec: 12.5, dropped: 17, avSec: -0.344 });
  assert.deepEqual(parseStatusLine('    nan A-V:    nan fd=   0 aq=    0KB vq=  222KB sq=    0B f=0/0'), { clockSec: NaN, dropped: 0, avSec: NaN });
});

test('the watchdog says where the player\'s clock stands against ours, at its best', () => {
  const w = new PlayerWatchdog(0);
  w.status(NaN, 0, 100);
  assert.equal(w.clockOffsetMs, undefined, 'before the first picture');
  w.status(0.02, 0, 530);
  w.status(0.05, 0, 565); // read 5 ms late
  w.status(0.08, 0, 590);
  assert.equal(w.clockOffsetMs, 510);
});
