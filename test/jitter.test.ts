// The viewer's reorder buffer and NACK scheduler, on a fake clock.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { JitterBuffer } from '../src/player/jitter.ts';
import type { RtpPacket } from '../src/rtp/packet.ts';
import { seqAdd } from '../src/rtp/seq.ts';

const pkt = (seq: number): RtpPacket => ({ padding: 0, marker: false, payloadType: 96, sequenceNumber: seq, timestamp: 0, ssrc: 1, csrc: [], payload: Buffer.from([seq & 0xff]) });
const seqs = (o: { released: RtpPacket[] }) => o.released.map((p) => p.sequenceNumber);

describe('jitter buffer', () => {
  test('in-order packets go straight through', () => {
    const jb = new JitterBuffer({ latencyMs: 100, retryMs: 20 });
    for (let s = 10; s < 15; s++) assert.deepEqual(seqs(jb.push(pkt(s), 0)), [s]);
  });

  test('a gap holds what follows, NACKs the hole, and releases in order when it fills', () => {
    const jb = new JitterBuffer({ latencyMs: 100, retryMs: 20 });
    jb.push(pkt(1), 0);
    const a = jb.push(pkt(4), 1);
    assert.deepEqual(seqs(a), []);
    assert.deepEqual(a.nack, [2, 3]);
    assert.deepEqual(jb.poll(10).nack, [], 'not again before retryMs');
    assert.deepEqual(jb.poll(21).nack, [2, 3], 'again after retryMs');
    assert.deepEqual(seqs(jb.push(pkt(3), 30)), []);
    assert.deepEqual(seqs(jb.push(pkt(2), 31)), [2, 3, 4]);
    assert.equal(jb.counters.recoveredAfterNack, 2);
    assert.deepEqual([jb.counters.repairWaits, jb.repairWaitMs], [2, 30], 'each repair\'s wait from the gap\'s discovery (29 and 30: the median)');
  });

  test('a repair that comes after its gap was given up still says how long repairs take; a late original never asked for does not', () => {
    const jb = new JitterBuffer({ latencyMs: 50, retryMs: 20 });
    jb.push(pkt(1), 0);
    jb.push(pkt(3), 10); // 2 missing from 10, asked for at once
    jb.poll(60); // given up
    jb.push(pkt(2), 95);
    assert.deepEqual([jb.counters.late, jb.counters.repairWaits, jb.repairWaitMs], [1, 1, 85]);
    jb.push(pkt(2), 96);
    assert.equal(jb.counters.repairWaits, 1, 'a second copy is no second sample');
  });

  test('repair waits: the median of the latest, so a stray (a number given up a wrap ago, a joiner\'s late hole) moves nothing', () => {
    const jb = new JitterBuffer({ latencyMs: 50, retryMs: 20 });
    let seq = 0;
    let t = 0;
    jb.push(pkt(seq), t);
    // Eleven gaps, each repaired 25 ms after it was found, and one after 400 ms (given up first).
    for (let i = 0; i < 12; i++) {
      const gap = seq + 1;
      seq += 2;
      t += 10;
      jb.push(pkt(seq), t);
      if (i === 5) {
        jb.poll(t + 60); // given up
        t += 400;
      } else t += 25;
      jb.push(pkt(gap), t);
    }
    assert.equal(jb.counters.repairWaits, 12);
    assert.equal(jb.repairWaitMs, 25);
    // A copy of a number given up more than REPAIR_WAIT_MAX_MS ago is not timed at all.
    seq += 2;
    jb.push(pkt(seq), t);
    jb.poll(t + 60);
    jb.push(pkt(seq - 1), t + 5000);
    assert.equal(jb.counters.repairWaits, 12);
  });

  test('a gap that outlives the budget is given up and the stream moves on', () => {
    const jb = new JitterBuffer({ latencyMs: 50, retryMs: 20 });
    jb.push(pkt(1), 0);
    jb.push(pkt(3), 0);
    assert.deepEqual(seqs(jb.poll(49)), []);
    assert.deepEqual(seqs(jb.poll(50)), [3]);
    assert.equal(jb.counters.givenUp, 1);
    assert.equal(jb.counters.giveUps, 1);
    jb.push(pkt(2), 60);
    assert.equal(jb.counters.late, 1, 'the packet after its gap was given up is late, not released');
    assert.deepEqual(jb.poll(80).nack, [], 'no NACK for a given-up packet');
  });

  test('duplicates are counted once and not released twice', () => {
    const jb = new JitterBuffer({ latencyMs: 50, retryMs: 20 });
    jb.push(pkt(1), 0);
    jb.push(pkt(3), 0);
    jb.push(pkt(3), 1);
    assert.equal(jb.counters.duplicates, 1);
    assert.deepEqual(seqs(jb.push(pkt(2), 2)), [2, 3]);
    jb.push(pkt(2), 3);
    assert.equal(jb.counters.late, 1);
  });

  test('every packet lost on the wire ends in one count: RTX, FEC, reordered, given up, or pending', () => {
    const jb = new JitterBuffer({ latencyMs: 100, retryMs: 20 });
    jb.answerMs = 10;
    jb.push(pkt(1), 0);
    jb.push(pkt(6), 1); // 2-5 missing, NACKed now
    jb.push(pkt(2), 3); // 2 ms after the NACK: the original, late (reordered)
    jb.push(pkt(3), 25); // a re-sent copy
    jb.push(pkt(4), 26, true); // rebuilt by FEC
    jb.push(pkt(8), 27); // 7 missing
    jb.push(pkt(9), 28, true); // rebuilt before anything after it came: lost too, and repaired
    jb.poll(101); // 5 given up
    const c = jb.counters;
    assert.deepEqual(
      [c.missed, c.reordered, c.recoveredAfterNack, c.recoveredByFec, c.givenUp, jb.pending],
      [6, 1, 1, 2, 1, 1],
    );
    assert.equal(c.missed, c.reordered + c.recoveredAfterNack + c.recoveredByFec + c.givenUp + jb.pending);
    assert.equal(c.firstTime + c.missed, 9, 'expected: sequence numbers 1-9');
    jb.reset();
    assert.equal(c.givenUp, 2, 'a reset gives up what was still pending');
    assert.equal(jb.pending, 0);
  });

  test('wraparound 65535 → 0 inside a gap', () => {
    const jb = new JitterBuffer({ latencyMs: 100, retryMs: 20 });
    jb.push(pkt(65534), 0);
    const a = jb.push(pkt(1), 0);
    assert.deepEqual(a.nack, [65535, 0]);
    jb.push(pkt(0), 1);
    assert.deepEqual(seqs(jb.push(pkt(65535), 2)), [65535, 0, 1]);
  });

  test('a jump past 1000 is a new position: held packets flush, no NACK storm', () => {
    const jb = new JitterBuffer({ latencyMs: 100, retryMs: 20 });
    jb.push(pkt(1), 0);
    jb.push(pkt(3), 0);
    const o = jb.push(pkt(5000), 1);
    assert.deepEqual(seqs(o), [3, 5000]);
    assert.deepEqual(o.nack, []);
    assert.deepEqual([jb.counters.missed, jb.counters.givenUp], [1, 1], 'past MAX_DROPOUT: a new position, not a loss');
  });

  test('a jump of 1000 to MAX_DROPOUT (an outage) is lost on the wire and given up at once', () => {
    const jb = new JitterBuffer({ latencyMs: 100, retryMs: 20 });
    jb.push(pkt(1), 0);
    jb.push(pkt(3), 0); // 2 missing
    const o = jb.push(pkt(2003), 1); // 4-2002 never came
    assert.deepEqual(seqs(o), [3, 2003]);
    assert.deepEqual(o.nack, []);
    assert.deepEqual([jb.counters.missed, jb.counters.givenUp, jb.pending], [2000, 2000, 0]);
  });

  test('any arrival order with no loss releases every packet exactly once, in order', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 65535 }), fc.integer({ min: 1, max: 200 }), fc.integer(), (start, n, seed) => {
        const jb = new JitterBuffer({ latencyMs: 1e9, retryMs: 10 });
        const order = Array.from({ length: n }, (_, i) => i);
        // a bounded shuffle: each packet moves at most 8 places (network reordering)
        let x = seed;
        for (let i = 0; i < n; i++) {
          x = (x * 1103515245 + 12345) & 0x7fffffff;
          const j = Math.min(n - 1, i + (x % 8));
          [order[i], order[j]] = [order[j], order[i]];
        }
        jb.push(pkt(start), 0); // the first packet defines the start
        const out = [start];
        for (const i of order) if (i !== 0) out.push(...seqs(jb.push(pkt(seqAdd(start, i)), 1)));
        assert.deepEqual(out, Array.from({ length: n }, (_, i) => seqAdd(start, i)));
      }),
      { numRuns: 300 },
    );
  });
});
