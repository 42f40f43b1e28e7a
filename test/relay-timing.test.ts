// Relay → viewer RTT from forwarded SRs (RFC 3550 §6.4.1), with a fake clock.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SR_HISTORY, SrTimes } from '../src/relay/timing.ts';
import { ntpMiddle32 } from '../src/transport/ntp.ts';
import type { ReportBlock, SenderReport } from '../src/transport/rtcp.ts';

const sr = (ntpSec: number): SenderReport => ({ type: 'sr', ssrc: 0x1234, ntpSec, ntpFrac: 0x8000_0000, rtpTimestamp: 0, packetCount: 0, octetCount: 0, reports: [] });
const block = (lsr: number, dlsr: number): ReportBlock => ({ ssrc: 0x1234, fractionLost: 0, cumulativeLost: 0, highestSeq: 0, jitter: 0, lsr, dlsr });

describe('relay RTT', () => {
  test('RTT = arrival − when the SR went out − DLSR', () => {
    const t = new SrTimes();
    t.forward(sr(100), 1000);
    const lsr = ntpMiddle32(100, 0x8000_0000);
    // The viewer held the SR 250 ms (DLSR in 1/65536 s) and its report arrived 290 ms after we forwarded.
    assert.equal(t.rttMs(block(lsr, 0.25 * 65536), 1290), 40);
  });

  test('no RTT for LSR 0 (no SR yet) or for an SR we did not forward', () => {
    const t = new SrTimes();
    t.forward(sr(100), 1000);
    assert.equal(t.rttMs(block(0, 0), 1100), undefined);
    assert.equal(t.rttMs(block(ntpMiddle32(101, 0), 0), 1100), undefined);
  });

  test('never negative (DLSR rounding on a short path)', () => {
    const t = new SrTimes();
    t.forward(sr(100), 1000);
    assert.equal(t.rttMs(block(ntpMiddle32(100, 0x8000_0000), 65536), 1000), 0);
  });

  test(`remembers the latest ${SR_HISTORY} SRs`, () => {
    const t = new SrTimes();
    for (let i = 0; i <= SR_HISTORY; i++) t.forward(sr(100 + i), 1000 * i);
    assert.equal(t.rttMs(block(ntpMiddle32(100, 0x8000_0000), 0), 50_000), undefined, 'the oldest is gone');
    assert.equal(t.rttMs(block(ntpMiddle32(101, 0x8000_0000), 0), 1500), 500);
  });
});
