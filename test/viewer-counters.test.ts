/**
 * Issue 12, item 3: the viewer's loss counters tell apart what the wire lost, what was repaired
 * (re-sent after a NACK, rebuilt by FEC), what came late by itself (reordered) and what was given
 * up; a sharer restart does not send any of them back to zero. ViewerCore is driven by a script of
 * datagrams on a fake clock, playing the relay's part (answering NACKs) by hand.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ViewerCore } from '../src/player/viewer.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import { ControlType, controlApp } from '../src/transport/control.ts';
import { PT_H264 } from '../src/defaults.ts';

const STREAM = 'main';
/** H.264 NAL unit types (RFC 6184 §5.3): an IDR slice starts a keyframe, type 1 is a P slice. */
const NAL_IDR = 5;
const NAL_SLICE = 1;
/** The relay answers a NACK one round trip later. */
const RTT_MS = 20;
/** Packets a frame in this script: one, so every packet is a whole frame. */
const FRAME_MS = 2;

/** One single-NAL-unit packet that is a whole frame (marker set); the first of a session is an IDR. */
function packet(ssrc: number, seq: number, keyframe: boolean): Buffer {
  return serializeRtpToBuffer({
    padding: 0,
    marker: true,
    payloadType: PT_H264,
    sequenceNumber: seq & 0xffff,
    timestamp: (seq * 3000) >>> 0,
    ssrc,
    csrc: [],
    payload: Buffer.from([keyframe ? NAL_IDR | 0x60 : NAL_SLICE | 0x40, 0x88, seq & 0xff]),
  });
}

function ack(): Buffer {
  return serializeRtcp([controlApp({ kind: ControlType.Ack, stream: STREAM, live: true }, 0)]);
}

/** The sequence numbers a datagram from the viewer asks for again (RTCP generic NACK). */
function nacked(sent: Buffer[]): number[] {
  return sent.flatMap((b) => parseRtcp(b).flatMap((p) => (p.type === 'nack' ? p.lost : [])));
}

/** A viewer with a measured 20 ms round trip (so it can tell a late original from a re-sent copy). */
function viewer(): ViewerCore {
  const v = new ViewerCore(STREAM);
  v.keepalive(0);
  v.onDatagram(ack(), RTT_MS);
  assert.equal(v.rttMs, RTT_MS);
  return v;
}

describe('viewer loss counters (issue 12 item 3)', () => {
  test('lost on the wire = repaired by RTX + reordered + unrepaired; re-sent packets are not "reordered"', () => {
    const v = viewer();
    const ssrc = 0x1234;
    const first = 100;
    const n = 400;
    /** Every 20th packet is lost; one of those the relay never re-sends, one only arrives late. */
    const lost = new Set<number>();
    for (let s = first + 10; s < first + n; s += 20) lost.add(s);
    const neverResent = first + 210;
    const reorderedSeq = first + 310;
    const resend: Array<{ at: number; seq: number }> = [];
    let t = 100;
    let nacks = 0;
    for (let seq = first; seq < first + n; seq++, t += FRAME_MS) {
      // The relay's answers that are due by now, in order.
      while (resend.length && resend[0].at <= t) {
        const r = resend.shift()!;
        v.onDatagram(packet(ssrc, r.seq, false), r.at);
      }
      v.poll(t);
      if (lost.has(seq)) continue;
      const out = v.onDatagram(packet(ssrc, seq, seq === first), t);
      for (const s of nacked(out.send)) {
        nacks++;
        if (s === reorderedSeq) {
          // The original was only late: it arrives 1 ms after the NACK, far sooner than an answer.
          v.onDatagram(packet(ssrc, s, false), t + 1);
        } else if (s !== neverResent) {
          resend.push({ at: t + RTT_MS, seq: s });
        }
      }
    }
    for (const r of resend) v.onDatagram(packet(ssrc, r.seq, false), r.at);
    v.poll(t + 1000); // the never re-sent packet's budget runs out
    assert.ok(nacks >= lost.size, `NACKs went out for the lost packets (${nacks})`);

    const c = v.counters;
    assert.equal(c.lostOnWire, lost.size, 'every sequence number that did not arrive in order');
    assert.equal(c.reordered, 1, 'only the original that was late by itself');
    assert.equal(c.recoveredByRtx, lost.size - 2, 'the re-sent ones');
    assert.equal(c.recoveredByFec, 0);
    assert.equal(c.unrepaired, 1, 'the one the relay never re-sent');
    assert.equal(v.repairPending, 0);
    assert.equal(c.lostOnWire, c.recoveredByRtx + c.recoveredByFec + c.reordered + c.unrepaired + v.repairPending);
    assert.equal(v.packetsExpected, n);
    // RFC 3550: loss after repair, what a receiver report says.
    const totals = v.receiveTotals;
    assert.equal(totals.rfc3550Lost, 1);
    assert.equal(totals.packetsReceived, n - 1 - 1, 'all but the never re-sent one and the probation packet');
    assert.equal(totals.duplicates, 0);
  });

  test('a sharer restart (new SSRC) keeps the session totals: no counter jumps back', () => {
    const v = viewer();
    let t = 100;
    // Session 1: 200 packets, 50 of them lost and never repaired (the relay is not answering).
    for (let seq = 1; seq <= 200; seq++, t += FRAME_MS) {
      if (seq > 100 && seq <= 150) continue;
      v.onDatagram(packet(0xaaaa, seq, seq === 1), t);
    }
    v.poll(t + 1000);
    t += 1000;
    const before = { ...v.counters, ...v.receiveTotals };
    assert.equal(before.lostOnWire, 50);
    assert.equal(before.unrepaired, 50);
    assert.equal(before.rfc3550Lost, 50);
    // Session 2: another SSRC and sequence space, a few packets.
    for (let seq = 40000; seq < 40020; seq++, t += FRAME_MS) v.onDatagram(packet(0xbbbb, seq, seq === 40000), t);
    const after = { ...v.counters, ...v.receiveTotals };
    assert.equal(v.counters.publisherRestarts, 1);
    for (const k of ['lostOnWire', 'unrepaired', 'rfc3550Lost', 'packetsReceived', 'recoveredByRtx', 'framesComplete'] as const) {
      assert.ok(after[k] >= before[k], `${k} went from ${before[k]} to ${after[k]}`);
    }
    assert.equal(after.packetsReceived, before.packetsReceived + 19, 'the new session adds (one packet on probation)');
    assert.equal(after.rfc3550Lost, 50);
  });

  test('gaps still open when the sharer restarts count as unrepaired', () => {
    const v = viewer();
    v.onDatagram(packet(0xaaaa, 1, true), 100);
    v.onDatagram(packet(0xaaaa, 2, false), 101);
    v.onDatagram(packet(0xaaaa, 5, false), 102); // 3 and 4 missing, within their budget
    assert.equal(v.repairPending, 2);
    v.onDatagram(packet(0xbbbb, 9000, true), 103);
    assert.equal(v.repairPending, 0);
    assert.equal(v.counters.lostOnWire, 2);
    assert.equal(v.counters.unrepaired, 2);
  });
});
