/**
 * Congestion control (issue 14, item 2): the relay's arrival log (RFC 8888 feedback), the sharer's
 * controller reading it through the real RTCP serializer and parser, the policy that re-targets the
 * encoder, and the pacer. The controller is driven through a simulated bottleneck (a rate, a
 * tail-drop queue, a delay), with the receiver's clock offset from the sender's.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { ArrivalLog, ARRIVALS_MAX_STREAMS, CCFB_MAX_PACKETS } from '../src/transport/arrivals.ts';
import { CongestionController, RetargetPolicy, CC_MEDIA_SHARE, CC_MIN_KBPS, PROBE_MS, RETARGET_DOWN_MIN_MS, RETARGET_UP_AFTER_MS } from '../src/transport/congestion.ts';
import { Pacer, PACE_BURST_MS } from '../src/transport/pacer.ts';
import { parseRtcp, serializeRtcp, type Ccfb } from '../src/transport/rtcp.ts';
import { MAX_DATAGRAM } from '../src/defaults.ts';

/** A small seeded generator (xorshift32): the same loss pattern every run. */
function seeded(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const received = (ato: number) => ({ received: true, ecn: 0, ato });
const lost = { received: false, ecn: 0, ato: 0 };

describe('ArrivalLog: what the relay reports to its sharer', () => {
  test('a gap is reported lost once; arrival offsets count 1/1024 s before the report', () => {
    const log = new ArrivalLog();
    log.note(7, 10, 1000);
    log.note(7, 11, 1000);
    log.note(7, 13, 1250);
    const r = log.report(1500, 0)!;
    assert.deepEqual(r.streams, [{ ssrc: 7, beginSeq: 10, packets: [received(512), received(512), lost, received(256)] }]);
    // 12 arrives after its loss was reported: counted late, not reported again.
    log.note(7, 12, 1510);
    log.note(7, 14, 1520);
    const r2 = log.report(1520, 0)!;
    assert.deepEqual(r2.streams, [{ ssrc: 7, beginSeq: 14, packets: [received(0)] }]);
    assert.equal(log.counters.late, 1);
    assert.equal(log.report(1600, 0), undefined, 'nothing new, nothing to say');
  });

  test('numbers across 65535 → 0 stay in order, and a long gap reports only the newest CCFB_MAX_PACKETS', () => {
    const log = new ArrivalLog();
    log.note(1, 65534, 0);
    log.note(1, 1, 0);
    const r = log.report(0, 0)!;
    assert.equal(r.streams[0].beginSeq, 65534);
    assert.deepEqual(r.streams[0].packets.map((p) => p.received), [true, false, false, true]);
    log.note(1, 1 + 5000, 10);
    const r2 = log.report(10, 0)!;
    assert.equal(r2.streams[0].packets.length, CCFB_MAX_PACKETS);
    assert.equal(r2.streams[0].beginSeq, 5001 - CCFB_MAX_PACKETS + 1);
  });

  test('at most ARRIVALS_MAX_STREAMS SSRCs: a new one takes the place of the one heard from longest ago', () => {
    const log = new ArrivalLog();
    for (let s = 0; s < ARRIVALS_MAX_STREAMS + 3; s++) log.note(s, 0, s);
    assert.deepEqual(log.report(100, 0)!.streams.map((x) => x.ssrc), [...Array(ARRIVALS_MAX_STREAMS).keys()].map((i) => i + 3));
  });

  test('one report stays one datagram: CCFB_MAX_PACKETS over all streams; a stream past them waits', () => {
    const log = new ArrivalLog();
    for (let q = 0; q < 500; q++) log.note(1, q, 0);
    for (let q = 0; q < 500; q++) log.note(2, q, 0);
    for (let q = 0; q < 10; q++) log.note(3, q, 0);
    const r = log.report(10, 0)!;
    assert.equal(r.streams.reduce((n, x) => n + x.packets.length, 0), CCFB_MAX_PACKETS);
    assert.ok(serializeRtcp([r]).length <= MAX_DATAGRAM);
    // The stream that did not fit whole gives its newest; the one with no room left waits.
    assert.equal(r.streams[1].beginSeq, 500 - (CCFB_MAX_PACKETS - 500));
    assert.deepEqual(r.streams.map((x) => x.ssrc), [1, 2]);
    assert.deepEqual(log.report(20, 0)!.streams.map((x) => [x.ssrc, x.packets.length]), [[3, 10]]);
  });
});

/**
 * A sender through a bottleneck of `linkKbps` with a tail-drop queue (`queuePackets` datagrams, or
 * `queueMs` of waiting at the link's rate then) and 10 ms of delay, random loss `loss`; the
 * receiver's clock is `offsetMs` ahead. Feedback goes through serializeRtcp/parseRtcp every 50 ms.
 * The encoder follows the estimate at once, or with `policy`, as RetargetPolicy lets it (the
 * sharer's way). With `probe`, the sender probes when the controller says so, padding on its own
 * SSRC as the publisher does. Returns per-second samples after the run.
 */
function simulate(opts: {
  linkKbps: number | ((t: number) => number); maxKbps: number; seconds: number; loss?: number; queuePackets?: number; queueMs?: number; offsetMs?: number;
  policy?: boolean; probe?: boolean;
}) {
  const cc = new CongestionController(opts.maxKbps, opts.maxKbps, undefined, opts.probe);
  const policy = opts.policy ? new RetargetPolicy(opts.maxKbps) : undefined;
  const log = new ArrivalLog();
  const random = seeded(7);
  const link = typeof opts.linkKbps === 'number' ? () => opts.linkKbps as number : opts.linkKbps;
  const size = 1200;
  const queueLimit = opts.queuePackets ?? 12;
  const offset = opts.offsetMs ?? 123_456;
  let linkFreeAt = 0;
  const inQueue: number[] = []; // departure times of packets still in the queue
  const feedback: Array<{ at: number; data: Buffer }> = [];
  const inFlight: Array<{ at: number; ssrc: number; seq: number }> = []; // arrivals at the receiver, in order
  const seqs = new Map<number, number>();
  let nextSend = 0;
  let nextReport = 50;
  let padding: number[] = []; // send times of a probe's padding still to go...
  let paddingBytes = 0; // ...and their size
  const perSecond: Array<{ estimate: number; queueMs: number; sent: number; lost: number; mediaKbps: number; decreases: number; lowest: number }> = [];
  let lowest = Infinity;
  let sent = 0;
  let dropped = 0;
  let bits = 0;
  /** One datagram into the bottleneck; false when it was dropped. */
  const transmit = (ssrc: number, t: number, bytes = size): boolean => {
    const s = seqs.get(ssrc) ?? 0;
    seqs.set(ssrc, (s + 1) & 0xffff);
    cc.onSent(ssrc, s, bytes, t);
    while (inQueue.length && inQueue[0] <= t) inQueue.shift();
    const full = opts.queueMs !== undefined ? linkFreeAt - t > opts.queueMs : inQueue.length >= queueLimit;
    if (full || random() < (opts.loss ?? 0)) return false;
    linkFreeAt = Math.max(linkFreeAt, t) + (bytes * 8) / link(t);
    inQueue.push(linkFreeAt);
    inFlight.push({ at: linkFreeAt + 10, ssrc, seq: s });
    return true;
  };
  for (let t = 0; t < opts.seconds * 1000; t += 1) {
    while (inFlight.length && inFlight[0].at <= t) {
      const a = inFlight.shift()!;
      log.note(a.ssrc, a.seq, t + offset);
    }
    while (feedback.length && feedback[0].at <= t) {
      const [p] = parseRtcp(feedback.shift()!.data) as [Ccfb];
      cc.onFeedback(p, t);
      lowest = Math.min(lowest, cc.estimateKbps);
      if (policy) {
        const r = policy.decide(cc.estimateKbps, t, cc.takeProbed());
        if (r !== undefined) policy.commit(r, t);
      }
      const probe = opts.probe && padding.length === 0 ? cc.probeDue(t) : undefined;
      if (probe !== undefined) {
        cc.startProbe(t, PROBE_MS);
        // As the publisher does: six slices, at least a datagram each, 100-1100 bytes.
        const bytes = ((probe - cc.ackedKbps) * PROBE_MS) / 8;
        paddingBytes = Math.round(Math.min(1100, Math.max(100, bytes / 6)));
        const n = Math.max(6, Math.ceil(bytes / paddingBytes));
        padding = Array.from({ length: n }, (_, i) => t + Math.floor((i * PROBE_MS) / n));
      }
    }
    while (padding.length && padding[0] <= t) {
      padding.shift();
      transmit(98, t, paddingBytes);
    }
    while (nextSend <= t) {
      const kbps = policy ? policy.targetKbps : Math.min(opts.maxKbps, cc.estimateKbps * 0.9);
      nextSend += (size * 8) / kbps; // ms between packets at that rate
      sent++;
      bits += size * 8;
      if (!transmit(99, t)) dropped++;
    }
    if (t >= nextReport) {
      nextReport += 50;
      const r = log.report(t + offset, 0);
      if (r) feedback.push({ at: t + 10, data: serializeRtcp([r]) });
    }
    if (t % 1000 === 999) {
      perSecond.push({ estimate: cc.estimateKbps, queueMs: Math.max(0, linkFreeAt - t), sent, lost: dropped, mediaKbps: bits / 1000, decreases: cc.decreases, lowest });
      lowest = Infinity;
      sent = 0;
      dropped = 0;
      bits = 0;
    }
  }
  return { cc, perSecond };
}

describe('CongestionController through a simulated bottleneck', () => {
  test('a 1.2 Mbit/s link under a 2.8 Mbit/s maximum: the estimate settles below the link within seconds, and the queue drains', () => {
    const { perSecond } = simulate({ linkKbps: 1200, maxKbps: 2800, seconds: 30 });
    const settled = perSecond.slice(5);
    for (const s of settled) {
      // The sender sends 0.9 × the estimate: it probes up to a tenth above the link, then backs off.
      assert.ok(0.9 * s.estimate <= 1.1 * 1200 && s.estimate >= 600, `estimate ${s.estimate} kbit/s should keep the sender near the link`);
    }
    const lossAfter = settled.reduce((n, s) => n + s.lost, 0) / settled.reduce((n, s) => n + s.sent, 0);
    assert.ok(lossAfter < 0.02, `loss after 5 s: ${(lossAfter * 100).toFixed(1)}%`);
    assert.ok(Math.max(...settled.map((s) => s.queueMs)) < 100, 'the queue never fills again');
  });

  test('a link wider than the maximum: the estimate stays at the maximum', () => {
    const { perSecond, cc } = simulate({ linkKbps: 10_000, maxKbps: 2800, seconds: 10 });
    assert.ok(perSecond.every((s) => s.estimate === 2800));
    assert.equal(cc.decreases, 0);
  });

  test('5% random loss on a link with room is not congestion: the rate is not lowered', () => {
    const { cc } = simulate({ linkKbps: 10_000, maxKbps: 2800, seconds: 10, loss: 0.05 });
    assert.equal(cc.estimateKbps, 2800);
    assert.equal(cc.decreases, 0);
    assert.ok(cc.loss > 0.01, `the loss is seen (${cc.loss})`);
  });

  test('the link narrows, then widens (a 12-packet buffer, 29 ms at 4 Mbit/s): down within a second, back up to most of it', () => {
    const link = (t: number) => (t < 10_000 ? 4000 : t < 20_000 ? 1000 : 4000);
    const { perSecond } = simulate({ linkKbps: link, maxKbps: 5000, seconds: 40 });
    const before = perSecond.slice(2, 10);
    const lossBefore = before.reduce((n, s) => n + s.lost, 0);
    const sentBefore = before.reduce((n, s) => n + s.sent, 0);
    assert.ok(lossBefore <= 0.01 * sentBefore, `a buffer too small to show 40 ms overflows, and that is answered: ${lossBefore} of ${sentBefore} lost in 8 s`);
    assert.ok(0.9 * perSecond[11].estimate <= 1000, `1 s after the drop: ${perSecond[11].estimate}`);
    assert.ok(perSecond[39].estimate >= 0.8 * 4000, `after widening: ${perSecond[39].estimate}`);
    assert.ok(perSecond.every((s) => s.estimate >= CC_MIN_KBPS));
  });

  test('a step down is answered once: the draining queue is not read as more over-use', () => {
    // 4 → 1 Mbit/s behind a 100 ms buffer: the first decrease leaves ~70 ms of queue that drains
    // at 15% of the link; each report of it used to cut again, to far below the link.
    const link = (t: number) => (t < 10_000 ? 4000 : 1000);
    const { perSecond } = simulate({ linkKbps: link, maxKbps: 6000, seconds: 14, queueMs: 100, policy: true, probe: true });
    const cuts = perSecond[10].decreases - perSecond[9].decreases;
    const lowest = Math.min(...perSecond.slice(10).map((s) => s.lowest));
    console.log(`# step down: ${cuts} decrease(s) in its first second, estimate at least ${Math.round(lowest)} kbit/s after it`);
    assert.ok(cuts <= 2, `${cuts} decreases`);
    assert.ok(lowest >= 0.8 * 1000, `the estimate fell to ${Math.round(lowest)} kbit/s`);
  });

  test('a link stepping 4 → 1 → 4 → 1 Mbit/s every 15 s (100 ms buffer), the encoder as the sharer moves it: probes find each widening', () => {
    const link = (t: number) => (t % 30_000 < 15_000 ? 4000 : 1000);
    const run = (probe: boolean) => simulate({ linkKbps: link, maxKbps: 6000, seconds: 60, queueMs: 100, policy: true, probe });
    const { perSecond, cc } = run(true);
    for (const step of [15, 30, 45]) {
      const kbps = link(step * 1000);
      const after = perSecond.slice(step + 5, step + 15);
      // The encoder's rate alone (no headers, no padding) from 5 s after the step on: by design
      // CC_MEDIA_SHARE of the link; RTP/UDP headers come on top.
      assert.ok(after.every((s) => s.mediaKbps >= 0.8 * kbps), `after the step at ${step} s to ${kbps}: ${after.map((s) => Math.round(s.mediaKbps))}`);
      const settled = perSecond.slice(step + 1, step + 15);
      const loss = settled.reduce((n, s) => n + s.lost, 0) / settled.reduce((n, s) => n + s.sent, 0);
      assert.ok(loss <= 0.01, `loss after the first second of the step at ${step} s: ${(loss * 100).toFixed(2)}%`);
    }
    assert.ok(cc.probes >= 5, `probes sent: ${cc.probes}`);
    // Without them the 4 Mbit/s after 30 s is found only by slow growth capped by what is sent.
    const without = run(false).perSecond;
    assert.ok(without[35].mediaKbps < 0.8 * 4000, `without probes, 5 s after widening: ${Math.round(without[35].mediaKbps)} kbit/s`);
  });
});

describe('RetargetPolicy: when the encoder follows the estimate', () => {
  test('down at once, not again within RETARGET_DOWN_MIN_MS; up only after RETARGET_UP_AFTER_MS of room', () => {
    const p = new RetargetPolicy(2500);
    assert.equal(p.decide(1000, 0), Math.round(1000 * CC_MEDIA_SHARE), 'the encoder aims at its share of the estimate');
    p.commit(900, 0);
    assert.equal(p.decideKbps(500, RETARGET_DOWN_MIN_MS - 1), undefined);
    assert.equal(p.decideKbps(500, RETARGET_DOWN_MIN_MS), 500);
    p.commit(500, RETARGET_DOWN_MIN_MS);
    const t0 = 10_000;
    assert.equal(p.decideKbps(900, t0), undefined, 'room must last first');
    assert.equal(p.decideKbps(900, t0 + RETARGET_UP_AFTER_MS - 1), undefined);
    assert.equal(p.decideKbps(900, t0 + RETARGET_UP_AFTER_MS), 900);
    p.commit(900, t0 + RETARGET_UP_AFTER_MS);
    const t1 = t0 + RETARGET_UP_AFTER_MS;
    assert.equal(p.decideKbps(4500, t1 + 1), undefined);
    assert.equal(p.decideKbps(4500, t1 + 1 + RETARGET_UP_AFTER_MS), 2500, 'never above --bitrate');
  });

  test('after probes measured the path: up without waiting for the room to last, from 5% above, never within RETARGET_UP_AFTER_MS of the last re-target', () => {
    const p = new RetargetPolicy(6000);
    p.commit(900, 0);
    assert.equal(p.decideKbps(990, 1000, true), undefined, 'too soon after the last re-target');
    assert.equal(p.decideKbps(990, RETARGET_UP_AFTER_MS - 1), undefined);
    assert.equal(p.decideKbps(990, RETARGET_UP_AFTER_MS), 990, 'the probe of 2 s ago still counts: no wait for the room to last');
    p.commit(990, RETARGET_UP_AFTER_MS);
    assert.equal(p.decideKbps(1035, 10_000, true), undefined, 'less than RETARGET_UP_PROBED above: no keyframe for it');
    assert.equal(p.decideKbps(1170, 20_000, true), 1170);
    p.commit(1170, 20_000);
    // The probe is over RETARGET_UP_AFTER_MS old: 8% more is again no reason until it is 20% for 3 s.
    assert.equal(p.decideKbps(1260, 24_000), undefined);
    assert.equal(p.decideKbps(1260, 30_000), undefined);
  });

  test('a small change is no reason for a keyframe', () => {
    const p = new RetargetPolicy(2500);
    p.commit(1000, 0);
    for (let t = 0; t < 20_000; t += 100) assert.equal(p.decide(1150, t), undefined);
  });
});

describe('Pacer', () => {
  test('a burst of PACE_BURST_MS goes at once, the rest at the pace, in order', async () => {
    const kbps = 1500;
    const bytesPerMs = (kbps * 1000) / 8 / 1000;
    const burstBytes = bytesPerMs * PACE_BURST_MS;
    let clock = 0;
    const out: number[] = [];
    const pacer = new Pacer<{ bytes: number; n: number }>(kbps, (x) => out.push(x.n), () => clock);
    for (let n = 0; n < 12; n++) pacer.push({ bytes: 1200, n });
    // While tokens remain a datagram goes (the last one overdraws): 7500 bytes of burst send 7.
    const atOnce = Math.ceil(burstBytes / 1200);
    assert.equal(out.length, atOnce);
    // 10 ms later the debt (7 × 1200 − 7500 = 900 bytes) is paid and 975 bytes more earned: one more goes.
    clock = 10;
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(out.length, atOnce + 1);
    clock = 1000;
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(out, [...Array(12).keys()], 'all of them, in order');
    pacer.flush();
  });

  test('a copy sent again goes ahead of the queued media (first), not behind it', () => {
    const out: number[] = [];
    const pacer = new Pacer<{ bytes: number; n: number }>(100, (x) => out.push(x.n), () => 0);
    for (let n = 0; n < 5; n++) pacer.push({ bytes: 1200, n });
    const sent = out.length;
    pacer.push({ bytes: 1200, n: 99 }, true);
    pacer.flush();
    assert.deepEqual(out.slice(sent), [99, ...[0, 1, 2, 3, 4].slice(sent)]);
  });

  test('flush sends what is queued at once; a full queue drops and counts', () => {
    const out: number[] = [];
    const pacer = new Pacer<{ bytes: number; n: number }>(100, (x) => out.push(x.n));
    for (let n = 0; n < 200; n++) pacer.push({ bytes: 1500, n });
    assert.ok(pacer.dropped > 0, 'some dropped');
    assert.equal(out.length + pacer.queued + pacer.dropped, 200);
    pacer.flush();
    assert.equal(pacer.queued, 0);
    assert.deepEqual(out, [...out].sort((a, b) => a - b));
  });
});
