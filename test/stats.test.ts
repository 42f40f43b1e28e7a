/**
 * Receiver statistics (RFC 3550 A.1, A.3, A.8) and NTP timestamps (RFC 3550 §4, §6.4.1).
 * Expected values are worked out by hand in the comments, step by step, as the appendix does it.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReceiverStats, type PacketVerdict } from '../src/transport/stats.ts';
import { msToNtp, ntpMiddle32, ntpToMs, rttMs } from '../src/transport/ntp.ts';
import { seqAdd } from '../src/rtp/seq.ts';
import type { ReportBlock } from '../src/transport/rtcp.ts';

function close(actual: number, expected: number, tolerance: number, what: string): void {
  assert.ok(Math.abs(actual - expected) <= tolerance, `${what}: ${actual}, expected ${expected} ± ${tolerance}`);
}

const block = (lsr: number, dlsr: number): ReportBlock => ({
  ssrc: 1,
  fractionLost: 0,
  cumulativeLost: 0,
  highestSeq: 0,
  jitter: 0,
  lsr,
  dlsr,
});

describe('A synthetic arrival schedule with loss, reordering and a duplicate', () => {
  // 90 kHz clock: 1 ms of arrival time is 90 timestamp units. The sender sends every 20 ms
  // (1800 units).
  //
  //   #  seq  RTP ts  arrival ms   what happens
  //   1  10       0   1000         probation (A.1: the first packet is not yet counted)
  //   2  11    1800   1020         accepted: source valid, base_seq = 11
  //   3  12    3600   1040
  //   4  14    7200   1070         13 is missing for now
  //   5  13    5400   1075         13 arrives late: reordered
  //   6  14    7200   1076         14 again: duplicate
  //   7  15    9000   1100
  //   8  17   12600   1140         16 is lost
  //   9  18   14400   1160
  //   -- SR arrives at 1150, report at 1200 --
  //  10  20   18000   1200         19 is lost
  //  11  21   19800   1220
  //   -- report at 1250 --
  const schedule: Array<[number, number, number, PacketVerdict]> = [
    [10, 0, 1000, 'probation'],
    [11, 1800, 1020, 'accepted'],
    [12, 3600, 1040, 'accepted'],
    [14, 7200, 1070, 'accepted'],
    [13, 5400, 1075, 'accepted'],
    [14, 7200, 1076, 'duplicate'],
    [15, 9000, 1100, 'accepted'],
    [17, 12600, 1140, 'accepted'],
    [18, 14400, 1160, 'accepted'],
  ];

  test('verdicts, loss, fraction lost, jitter, LSR and DLSR', () => {
    const s = new ReceiverStats({ clockRate: 90000 });
    const verdicts = schedule.map(([seq, ts, at]) => s.onRtp(seq, ts, at));
    assert.deepEqual(verdicts, schedule.map((p) => p[3]));

    // A.8 jitter, D(i-1,i) = (Rj - Ri)·90 - (Sj - Si), J += (|D| - J)/16, over the counted
    // packets in arrival order (the first counted packet only sets the reference):
    //   #3: D = (1040-1020)·90 - (3600-1800) = 1800 - 1800 = 0       J = 0
    //   #4: D = (1070-1040)·90 - (7200-3600) = 2700 - 3600 = -900    J = 0 + (900-0)/16 = 56.25
    //   #5: D = (1075-1070)·90 - (5400-7200) = 450 + 1800 = 2250     J = 56.25 + (2250-56.25)/16
    //                                                                  = 56.25 + 137.109375 = 193.359375
    //   #6: duplicate, not counted
    //   #7: D = (1100-1075)·90 - (9000-5400) = 2250 - 3600 = -1350   J = 193.359375 + (1350-193.359375)/16
    //                                                                  = 193.359375 + 72.2900390625 = 265.6494140625
    //   #8: D = (1140-1100)·90 - (12600-9000) = 3600 - 3600 = 0      J = 265.6494140625·15/16 = 249.04632568359375
    //   #9: D = (1160-1140)·90 - (14400-12600) = 1800 - 1800 = 0     J = 249.04632568359375·15/16 = 233.480930328369140625
    const J9 = 233.480930328369140625;

    // The sender's SR: NTP 0xE7A1B2C3.40000000 (fraction 0.25 s), received at 1150.
    s.onSenderReport({ ntpSec: 0xe7a1b2c3, ntpFrac: 0x40000000, rtpTimestamp: 14400 }, 1150);

    // A.3 at 1200:
    //   extended_max = 0 cycles + 18; expected = 18 - 11 + 1 = 8 (seqs 11..18)
    //   received = 11, 12, 14, 13, 15, 17, 18 = 7 (the duplicate 14 not counted twice)
    //   lost = 8 - 7 = 1 (seq 16)
    //   expected_interval = 8 - 0 = 8, received_interval = 7 - 0 = 7, lost_interval = 1
    //   fraction = (1 << 8) / 8 = 32
    //   LSR = middle 32 bits of 0xE7A1B2C3.40000000 = 0xB2C3.4000
    //   DLSR = (1200 - 1150) ms = 0.05 s · 65536 = 3276.8 → 3277
    const r1 = s.reportBlock(0xabc, 1200);
    assert.deepEqual(r1, {
      ssrc: 0xabc,
      fractionLost: 32,
      cumulativeLost: 1,
      highestSeq: 18,
      jitter: 233, // floor(J9)
      lsr: 0xb2c34000,
      dlsr: 3277,
    });
    const snap1 = s.snapshot();
    assert.equal(snap1.packetsReceived, 7);
    assert.equal(snap1.packetsExpected, 8);
    assert.equal(snap1.packetsLost, 1);
    assert.equal(snap1.fractionLost, 1 / 8);
    assert.equal(snap1.duplicates, 1);
    assert.equal(snap1.reordered, 1);
    assert.equal(snap1.extendedHighestSeq, 18);
    close(snap1.jitter, J9, 1e-9, 'jitter');
    close(snap1.jitterMs, J9 / 90, 1e-9, 'jitter ms'); // 90 units per ms: 2.594 ms

    // Second interval: 19 lost.
    assert.equal(s.onRtp(20, 18000, 1200), 'accepted');
    assert.equal(s.onRtp(21, 19800, 1220), 'accepted');
    //   #10: D = (1200-1160)·90 - (18000-14400) = 3600 - 3600 = 0   J = J9·15/16 = 218.8883...
    //   #11: D = (1220-1200)·90 - (19800-18000) = 1800 - 1800 = 0   J = J9·(15/16)² = 205.2078...
    const J11 = J9 * (15 / 16) * (15 / 16);
    // A.3 at 1250:
    //   expected = 21 - 11 + 1 = 11, received = 9, lost = 2
    //   expected_interval = 11 - 8 = 3, received_interval = 9 - 7 = 2, lost_interval = 1
    //   fraction = (1 << 8) / 3 = 85.33 → 85
    //   DLSR = 0.1 s · 65536 = 6553.6 → 6554
    const r2 = s.reportBlock(0xabc, 1250);
    assert.deepEqual(r2, {
      ssrc: 0xabc,
      fractionLost: 85,
      cumulativeLost: 2,
      highestSeq: 21,
      jitter: Math.floor(J11), // 205
      lsr: 0xb2c34000,
      dlsr: 6554,
    });
    assert.equal(r2.jitter, 205);
    assert.equal(s.snapshot().fractionLost, 1 / 3);

    // A third report with nothing new: an empty interval reports fraction 0, loss unchanged.
    const r3 = s.reportBlock(0xabc, 1300);
    assert.equal(r3.fractionLost, 0);
    assert.equal(r3.cumulativeLost, 2);
  });

  test('jitter grows when arrivals drift from the sender clock (A.8 by hand)', () => {
    // 8 kHz audio-like clock, 160 units per 20 ms packet; each packet arrives 5 ms later than
    // the steady 20 ms (one unit per 1/8 ms, so 5 ms = 40 units).
    //   #2: D = (1025-1000)·8 - 160 = 200 - 160 = 40   J = 40/16 = 2.5
    //   #3: D = (1050-1025)·8 - 160 = 40               J = 2.5 + (40-2.5)/16 = 4.84375
    //   #4: D = (1075-1050)·8 - 160 = 40               J = 4.84375 + (40-4.84375)/16 = 7.041015625
    const s = new ReceiverStats({ clockRate: 8000 });
    s.onRtp(0, 0, 975); // probation
    s.onRtp(1, 0, 1000);
    s.onRtp(2, 160, 1025);
    s.onRtp(3, 320, 1050);
    s.onRtp(4, 480, 1075);
    assert.equal(s.snapshot().jitter, 7.041015625);
    assert.equal(s.snapshot().jitterMs, 7.041015625 / 8);
  });

  test('packets of one frame share a timestamp and all count (RFC 3550 §6.4.1: every packet)', () => {
    // Three packets of one frame (ts 3000) arrive 1 ms apart:
    //   #2: D = (1001-1000)·90 - 0 = 90   J = 90/16 = 5.625
    //   #3: D = (1002-1001)·90 - 0 = 90   J = 5.625 + (90-5.625)/16 = 10.8984375
    const s = new ReceiverStats();
    s.onRtp(99, 0, 990); // probation
    s.onRtp(100, 3000, 1000);
    s.onRtp(101, 3000, 1001);
    s.onRtp(102, 3000, 1002);
    assert.equal(s.snapshot().jitter, 10.8984375);
  });
});

describe('A.1 sequence validation', () => {
  test('probation: first packet on probation, the next in sequence accepted', () => {
    const s = new ReceiverStats();
    assert.equal(s.onRtp(500, 0, 0), 'probation');
    assert.deepEqual(
      s.snapshot(),
      { packetsReceived: 0, packetsExpected: 0, packetsLost: 0, fractionLost: 0, jitterMs: 0, jitter: 0, duplicates: 0, reordered: 0, extendedHighestSeq: 0,
        sessionReceived: 0, sessionLost: 0 },
    );
    assert.equal(s.onRtp(501, 3000, 33), 'accepted');
    assert.equal(s.snapshot().packetsReceived, 1);
    assert.equal(s.snapshot().packetsExpected, 1);
    assert.equal(s.snapshot().extendedHighestSeq, 501);
  });

  test('probation restarts when the second packet is out of sequence', () => {
    const s = new ReceiverStats();
    assert.equal(s.onRtp(100, 0, 0), 'probation');
    assert.equal(s.onRtp(102, 0, 1), 'probation'); // not 101: probation = MIN_SEQUENTIAL - 1, max = 102
    assert.equal(s.onRtp(103, 0, 2), 'accepted'); // 103 = 102 + 1: valid, base 103
    assert.equal(s.snapshot().packetsExpected, 1);
    assert.equal(s.snapshot().packetsLost, 0);
  });

  test('wraparound at 65535 → 0: the extended highest sequence number counts cycles', () => {
    const s = new ReceiverStats();
    assert.equal(s.onRtp(65533, 0, 0), 'probation');
    assert.equal(s.onRtp(65534, 100, 1), 'accepted'); // base 65534
    assert.equal(s.onRtp(0, 300, 3), 'accepted'); // 65535 missing; 0 < max: cycles = 65536
    assert.equal(s.onRtp(65535, 200, 4), 'accepted'); // late, across the wrap
    assert.equal(s.onRtp(1, 400, 5), 'accepted');
    assert.equal(s.onRtp(65535, 200, 6), 'duplicate'); // seen, even across the wrap
    const snap = s.snapshot();
    // extended max = 65536 + 1 = 65537; expected = 65537 - 65534 + 1 = 4; received 4.
    assert.equal(snap.extendedHighestSeq, 65537);
    assert.equal(snap.packetsExpected, 4);
    assert.equal(snap.packetsReceived, 4);
    assert.equal(snap.packetsLost, 0);
    assert.equal(snap.reordered, 1);
    assert.equal(snap.duplicates, 1);
    assert.equal(s.reportBlock(1, 10).highestSeq, 0x00010001); // cycles in the high 16 bits
  });

  test('a big jump is ignored once, then the source is resynced on the next packet in sequence', () => {
    const s = new ReceiverStats();
    s.onRtp(999, 0, 0);
    for (let seq = 1000; seq <= 1004; seq++) assert.equal(s.onRtp(seq, 0, 0), 'accepted');
    // 9000 - 1004 = 7996 ≥ MAX_DROPOUT (3000): ignored, bad_seq = 9001.
    assert.equal(s.onRtp(9000, 0, 0), 'invalid');
    // The stream carries on where it was: not a restart.
    assert.equal(s.onRtp(1005, 0, 0), 'accepted');
    assert.equal(s.snapshot().packetsExpected, 6);
    assert.equal(s.snapshot().packetsReceived, 6);
    // 9005 is not bad_seq (9001), so ignored again with bad_seq = 9006; 9006 follows it: restart.
    assert.equal(s.onRtp(9005, 0, 0), 'invalid');
    assert.equal(s.onRtp(9006, 0, 0), 'restarted');
    assert.equal(s.onRtp(9007, 0, 0), 'accepted');
    const snap = s.snapshot();
    // init_seq(9006): base 9006, received counts from the restart.
    assert.equal(snap.packetsReceived, 2);
    assert.equal(snap.packetsExpected, 2);
    assert.equal(snap.extendedHighestSeq, 9007);
    // The session totals carry on across the restart: nothing a person reads jumps back.
    assert.equal(snap.sessionReceived, 6 + 2);
    assert.equal(snap.sessionLost, 0);
  });

  test('session totals keep the loss counted before a restart', () => {
    const s = new ReceiverStats();
    s.onRtp(99, 0, 0);
    s.onRtp(100, 0, 0); // base 100
    s.onRtp(110, 0, 0); // 101-109 lost: expected 11, received 2
    assert.equal(s.snapshot().packetsLost, 9);
    assert.equal(s.onRtp(20000, 0, 0), 'invalid');
    assert.equal(s.onRtp(20001, 0, 0), 'restarted');
    const snap = s.snapshot();
    assert.equal(snap.packetsLost, 0, 'A.1 counts again from the restart');
    assert.equal(snap.sessionLost, 9);
    assert.equal(snap.sessionReceived, 3);
    s.reset();
    assert.equal(s.snapshot().sessionLost, 0, 'reset() is a new source');
  });

  test('a packet more than MAX_MISORDER behind is ignored, one within it counts', () => {
    const s = new ReceiverStats();
    s.onRtp(1999, 0, 0);
    s.onRtp(2000, 0, 0);
    s.onRtp(2300, 0, 0); // a gap of 299 lost
    // 101 behind: udelta = 65536 - 101 = 65435 ≤ 65536 - MAX_MISORDER (65436) → a jump, ignored
    assert.equal(s.onRtp(2199, 0, 0), 'invalid');
    // 99 behind: udelta = 65437 > 65436 → late, counted
    assert.equal(s.onRtp(2201, 0, 0), 'accepted');
    assert.equal(s.onRtp(2201, 0, 0), 'duplicate');
    const snap = s.snapshot();
    // expected = 2300 - 2000 + 1 = 301, received = 2000, 2300, 2201 = 3, lost = 298
    assert.equal(snap.packetsLost, 298);
    assert.equal(snap.reordered, 1);
  });

  test('cumulative lost is clamped to the signed 24-bit field; the snapshot is not', () => {
    const s = new ReceiverStats();
    s.onRtp(0, 0, 0);
    s.onRtp(1, 0, 0); // base 1
    // 2900 jumps of 2999 (just under MAX_DROPOUT): extended max = 1 + 2900·2999 = 8697101
    // expected = 8697101 - 1 + 1 = 8697101, received = 2901, lost = 8694200 > 8388607.
    let seq = 1;
    for (let k = 0; k < 2900; k++) {
      seq = seqAdd(seq, 2999);
      assert.equal(s.onRtp(seq, 0, 0), 'accepted');
    }
    const r = s.reportBlock(1, 0);
    assert.equal(s.snapshot().packetsLost, 8694200);
    assert.equal(r.cumulativeLost, 0x7fffff);
    // fraction = (8694200 << 8) / 8697101 = 255.91 → 255
    assert.equal(r.fractionLost, 255);
    assert.equal(r.highestSeq, 8697101);
  });

  test('reset forgets the source and the SR', () => {
    const s = new ReceiverStats();
    s.onRtp(1, 0, 0);
    s.onRtp(2, 0, 0);
    s.onSenderReport({ ntpSec: 0xe7a1b2c3, ntpFrac: 0, rtpTimestamp: 0 }, 0);
    s.reset();
    assert.equal(s.captureTimeMs(0), undefined);
    assert.equal(s.snapshot().packetsReceived, 0);
    assert.equal(s.onRtp(2, 0, 0), 'probation');
    assert.equal(s.reportBlock(1, 0).lsr, 0);
  });
});

describe('A.1 properties', () => {
  const start = fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xff00, max: 0xffff }));

  test('in-order stream with random drops: packetsLost = number dropped', () => {
    fc.assert(
      fc.property(start, fc.array(fc.boolean(), { minLength: 1, maxLength: 600 }), (first, drops) => {
        // Packet 0 is probation, packet 1 validates; the last is always delivered (loss after
        // the highest received packet is invisible to A.3).
        const n = drops.length + 3;
        const dropped = (i: number) => i >= 2 && i < n - 1 && drops[i - 2];
        const s = new ReceiverStats();
        let count = 0;
        for (let i = 0; i < n; i++) {
          if (dropped(i)) {
            count++;
            continue;
          }
          const v = s.onRtp(seqAdd(first, i), i * 3000, i * 33);
          assert.equal(v, i === 0 ? 'probation' : 'accepted');
        }
        const snap = s.snapshot();
        assert.equal(snap.packetsLost, count);
        assert.equal(snap.packetsExpected, n - 1);
        assert.equal(snap.packetsReceived, n - 1 - count);
        assert.equal(snap.extendedHighestSeq % 65536, seqAdd(first, n - 1));
        assert.equal(s.reportBlock(1, 0).cumulativeLost, count);
      }),
      { numRuns: 300 },
    );
  });

  test('with adjacent swaps and duplicates too: lost, duplicates and received stay exact', () => {
    const op = fc.constantFrom('keep', 'drop', 'dup', 'swap');
    fc.assert(
      fc.property(start, fc.array(op, { minLength: 1, maxLength: 400 }), (first, ops) => {
        // Build the arrival order: indices 0 and 1 in order (probation), the last always kept.
        const n = ops.length + 3;
        const arrivals: number[] = [0, 1];
        let lost = 0;
        let dups = 0;
        let swapped = 0;
        for (let i = 2; i < n; i++) {
          const o = i === n - 1 ? 'keep' : ops[i - 2];
          if (o === 'drop') lost++;
          else if (o === 'dup') {
            arrivals.push(i, i);
            dups++;
          } else if (o === 'swap' && i + 1 < n - 1) {
            arrivals.push(i + 1, i); // i arrives after i + 1
            swapped++;
            i++;
          } else arrivals.push(i);
        }
        const s = new ReceiverStats();
        for (const i of arrivals) s.onRtp(seqAdd(first, i), i * 3000, i * 33);
        const snap = s.snapshot();
        assert.equal(snap.packetsLost, lost);
        assert.equal(snap.duplicates, dups);
        assert.equal(snap.reordered, swapped);
        assert.equal(snap.packetsReceived, n - 1 - lost);
      }),
      { numRuns: 300 },
    );
  });
});

describe('NTP timestamps (RFC 3550 §4)', () => {
  test('Unix epoch and a known instant', () => {
    // 1970-01-01 is 2 208 988 800 s after 1900-01-01 (70 years, 17 of them leap).
    assert.deepEqual(msToNtp(0), { sec: 2208988800, frac: 0 });
    // 1 700 000 000 s + 2 208 988 800 s = 3 908 988 800 = 0xE8FE6F80; 0.5 s = 0x80000000.
    assert.deepEqual(msToNtp(1_700_000_000_500), { sec: 0xe8fe6f80, frac: 0x80000000 });
    assert.equal(ntpToMs(0xe8fe6f80, 0x80000000), 1_700_000_000_500);
    assert.equal(ntpToMs(0xe8fe6f80, 0x40000000), 1_700_000_000_250);
  });

  test('2036-02-07 06:28:16 UTC: the seconds field wraps to era 1 and still reads back', () => {
    const wrap = 2_085_978_496_000; // (2^32 - 2 208 988 800) s after 1970
    assert.deepEqual(msToNtp(wrap), { sec: 0, frac: 0 });
    assert.deepEqual(msToNtp(wrap - 1000), { sec: 0xffffffff, frac: 0 });
    assert.equal(ntpToMs(0, 0), wrap);
    assert.equal(ntpToMs(0xffffffff, 0), wrap - 1000);
  });

  test('a fraction that rounds up to a whole second carries into the seconds', () => {
    // 999.9999999999 ms past a second rounds to 2^32 fraction units: that is the next second.
    const t = msToNtp(1_000_999.9999999999);
    assert.equal(t.frac, 0);
    assert.equal(t.sec, 2208988800 + 1001);
  });

  test('ntpToMs(msToNtp(t)) ≈ t to within 2^-32 s', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 4_000_000_000_000, noNaN: true }), (t) => {
        const { sec, frac } = msToNtp(t);
        assert.ok(Number.isInteger(sec) && sec >= 0 && sec <= 0xffffffff);
        assert.ok(Number.isInteger(frac) && frac >= 0 && frac <= 0xffffffff);
        close(ntpToMs(sec, frac), t, 1e-3, `t=${t}`);
      }),
      { numRuns: 1000 },
    );
  });

  test('ntpMiddle32 takes the low 16 bits of seconds and the high 16 bits of fraction', () => {
    assert.equal(ntpMiddle32(0xe7a1b2c3, 0x80000000), 0xb2c38000);
    assert.equal(ntpMiddle32(0xffffffff, 0xffffffff), 0xffffffff);
    assert.equal(ntpMiddle32(0x00010000, 0x0000ffff), 0);
  });
});

describe('Round-trip time from LSR/DLSR (RFC 3550 §6.4.1)', () => {
  test('the RFC example: A = 0xB710:8000, LSR = 0xB705:2000, DLSR = 0x0005:4000 → 6.125 s', () => {
    // A is 46864.500 s, LSR 46853.125 s, DLSR 5.250 s: 46864.5 - 46853.125 - 5.25 = 6.125 s.
    // An arrival whose NTP time has 0xB710 in its low second bits and half a second of fraction:
    const arrival = ntpToMs(0xe7a1b710, 0x80000000);
    assert.equal(rttMs(block(0xb7052000, 0x00054000), arrival), 6125);
  });

  test('an SR sent at T, held 250 ms by the receiver, answered at T + 400 ms: 150 ms', () => {
    const t = 1_700_000_000_123;
    const sent = msToNtp(t);
    const lsr = ntpMiddle32(sent.sec, sent.frac);
    const dlsr = 0.25 * 65536; // 16384
    // LSR truncates to 1/65536 s, so allow two units (≈ 0.03 ms).
    close(rttMs(block(lsr, dlsr), t + 400)!, 150, 2000 / 65536, 'rtt');
  });

  test('across the wrap of the middle 32 bits', () => {
    // LSR = 0xFFFF:8000, DLSR = 0.5 s; A = 0x0001:0000 is 1.5 s after LSR → RTT 1 s.
    const arrival = ntpToMs(0xe7a20001, 0);
    assert.equal(rttMs(block(0xffff8000, 0x00008000), arrival), 1000);
  });

  test('no SR yet (LSR 0): undefined; a slightly negative result reads as 0', () => {
    assert.equal(rttMs(block(0, 0), Date.now()), undefined);
    const arrival = ntpToMs(0xe7a1b710, 0x80000000);
    assert.equal(rttMs(block(0xb7108000, 1), arrival), 0);
  });

  test('ReceiverStats fills LSR and DLSR so that the sender gets its RTT back', () => {
    // Sender: SR at t0. Network: 30 ms each way. Receiver: sends its RR 200 ms after the SR.
    const t0 = 1_700_000_000_000;
    const ntp = msToNtp(t0);
    const s = new ReceiverStats();
    s.onSenderReport({ ntpSec: ntp.sec, ntpFrac: ntp.frac, rtpTimestamp: 0 }, t0 + 30);
    const rr = s.reportBlock(1, t0 + 230);
    assert.equal(rr.lsr, ntpMiddle32(ntp.sec, ntp.frac));
    assert.equal(rr.dlsr, Math.round(0.2 * 65536)); // 13107
    close(rttMs(rr, t0 + 260)!, 60, 2000 / 65536, 'rtt');
  });
});

describe('captureTimeMs: the SR maps RTP time to the sender wall clock', () => {
  test('undefined before any SR', () => {
    assert.equal(new ReceiverStats().captureTimeMs(1234), undefined);
  });

  test('across a 32-bit RTP timestamp wrap', () => {
    const s = new ReceiverStats({ clockRate: 90000 });
    const t = 1_700_000_000_000;
    const ntp = msToNtp(t);
    // The SR pairs wall clock t with RTP time 2^32 - 45000 (0.5 s before the wrap).
    s.onSenderReport({ ntpSec: ntp.sec, ntpFrac: ntp.frac, rtpTimestamp: 0x100000000 - 45000 }, t + 20);
    // RTP 45000 is 45000 + 45000 = 90000 units = 1 s after the SR, past the wrap.
    close(s.captureTimeMs(45000)!, t + 1000, 1e-3, 'after the wrap');
    // 2^32 - 90000 is 45000 units = 0.5 s before the SR.
    close(s.captureTimeMs(0x100000000 - 90000)!, t - 500, 1e-3, 'before the SR');
    close(s.captureTimeMs(0x100000000 - 45000)!, t, 1e-3, 'the SR itself');
    // A later SR replaces the mapping.
    const ntp2 = msToNtp(t + 5000);
    s.onSenderReport({ ntpSec: ntp2.sec, ntpFrac: ntp2.frac, rtpTimestamp: 405000 }, t + 5020);
    close(s.captureTimeMs(405000 + 9000)!, t + 5100, 1e-3, 'second SR');
  });
});
