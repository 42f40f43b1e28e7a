/**
 * The relay's circuit breaker per viewer path (RFC 8083 §4.2, §4.3; issue 14 item 5): reports
 * in, a decision out, no sockets and no sleeping; then the same through RelayCore.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CB_INTERVALS, CB_RATE_FACTOR, CB_RESUME_MS } from '../src/defaults.ts';
import { CircuitBreaker, tcpFriendlyRate } from '../src/transport/breaker.ts';
import { RelayCore } from '../src/relay/core.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import type { Endpoint } from '../src/util/net.ts';

describe('circuit breaker (RFC 8083)', () => {
  test('the TCP-friendly rate of RFC 5348 3.1: 1200-byte packets, 20 ms, 5% loss is about 1.8 Mbit/s', () => {
    // By hand: 1200 / (0.02 sqrt(0.1/3) + 0.08 * 3 sqrt(0.15/8) * 0.05 * 1.08) = 1200 / 0.005426.
    const x = tcpFriendlyRate(1200, 0.02, 0.05);
    assert.ok(x > 215_000 && x < 227_000, String(x));
    assert.ok(tcpFriendlyRate(1200, 0.02, 0.2) < x, 'more loss, less rate');
    assert.ok(tcpFriendlyRate(1200, 0.2, 0.05) < x, 'longer round trip, less rate');
  });

  /** Reports once a second; the stream sends `bytesPerS` in 1200-byte datagrams meanwhile. */
  function run(b: CircuitBreaker, reports: number, bytesPerS: number, loss: number, rttMs: number | undefined, moving = true, from = 0) {
    const trips: (string | undefined)[] = [];
    for (let i = 0; i <= reports; i++) {
      const t = from + i;
      const sent = { packets: Math.round((t * bytesPerS) / 1200), bytes: t * bytesPerS };
      trips.push(b.report({ fractionLost: loss, highestSeq: moving ? sent.packets : 7, rttMs }, sent, t * 1000));
    }
    return trips;
  }

  test('a clean-enough path never trips: 5% loss at 20 ms with a 2.5 Mbit/s stream', () => {
    const b = new CircuitBreaker();
    assert.deepEqual(run(b, 20, 2_500_000 / 8, 0.05, 20).filter(Boolean), []);
  });

  test(`a path carrying a tenth of the stream trips after ${CB_INTERVALS} reports in a row, saying why`, () => {
    const b = new CircuitBreaker();
    // 45% loss at 120 ms: a TCP flow would get a few kbit/s; the stream is 2.8 Mbit/s.
    const trips = run(b, CB_INTERVALS, 2_800_000 / 8, 0.45, 120);
    assert.deepEqual(trips.slice(0, CB_INTERVALS).filter(Boolean), [], 'not before');
    assert.match(trips[CB_INTERVALS]!, new RegExp(`45% lost at 2800 kbit/s, over ${CB_RATE_FACTOR}x what its path carries`));
    assert.equal(b.trips, 1);
    assert.ok(b.open);
    assert.equal(b.mayResume(CB_INTERVALS * 1000 + CB_RESUME_MS - 1), false);
    assert.equal(b.mayResume(CB_INTERVALS * 1000 + CB_RESUME_MS), true);
  });

  test('one fine report in between starts the count again; no round trip known, no congestion verdict', () => {
    const b = new CircuitBreaker();
    const bad = (i: number) => b.report({ fractionLost: 0.45, highestSeq: i * 100, rttMs: 120 }, { packets: i * 300, bytes: i * 350_000 }, i * 1000);
    const fine = (i: number) => b.report({ fractionLost: 0, highestSeq: i * 100, rttMs: 120 }, { packets: i * 300, bytes: i * 350_000 }, i * 1000);
    assert.deepEqual([bad(0), bad(1), bad(2), fine(3), bad(4), bad(5)].filter(Boolean), []);
    assert.ok(bad(6), 'three in a row again');
    const unknown = new CircuitBreaker();
    assert.deepEqual(run(unknown, 10, 2_800_000 / 8, 0.45, undefined).filter(Boolean), []);
  });

  test(`media timeout (4.2): media sent, the viewer's highest sequence number still for ${CB_INTERVALS} reports`, () => {
    const b = new CircuitBreaker();
    const trips = run(b, CB_INTERVALS, 300_000, 0, 20, false);
    assert.match(trips.at(-1)!, /none of the media sent over 3 reports arrived/);
    // Resumed: the count starts afresh from the next report.
    b.resume();
    assert.deepEqual(run(b, CB_INTERVALS - 1, 300_000, 0, 20, false, 100).filter(Boolean), []);
  });
});

describe('the relay with a path that does not carry the stream', () => {
  const sharer: Endpoint = { address: '10.0.0.1', port: 4000 };
  const viewer: Endpoint = { address: '10.0.0.2', port: 5000 };
  const media = (seq: number) =>
    serializeRtpToBuffer({ padding: 0, marker: true, payloadType: 96, sequenceNumber: seq, timestamp: seq * 3000, ssrc: 0x1234, csrc: [], payload: Buffer.from([seq === 1 ? 0x65 : 0x41, 1, 2]) });
  const rr = (highestSeq: number) =>
    serializeRtcp([{ type: 'rr', ssrc: 0x777, reports: [{ ssrc: 0x1234, fractionLost: 0, cumulativeLost: 0, highestSeq, jitter: 0, lsr: 0, dlsr: 0 }] }]);

  test('media stops to it (it stays a viewer), is counted and said, and is tried again from the last keyframe', () => {
    const log: string[] = [];
    const relay = new RelayCore(0);
    relay.onLog = (l) => log.push(l);
    relay.onDatagram(serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main' }, 0x1234)]), sharer, 0);
    const sub = (cookie?: Buffer) => serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main', cookie }, 0x777)]);
    const challenge = parseControl(parseRtcp(relay.onDatagram(sub(), viewer, 0)[0].data)[0] as never)!;
    assert.ok(challenge.kind === ControlType.Challenge);
    relay.onDatagram(sub(challenge.cookie), viewer, 0);
    let seq = 1;
    const toViewer = (now: number) => relay.onDatagram(media(seq++), sharer, now).some((o) => o.to.includes(viewer));
    assert.equal(toViewer(1), true);
    // Reports a second apart while media flows: the viewer says it has seen nothing past seq 1.
    for (let t = 1000; t <= (CB_INTERVALS + 1) * 1000; t += 1000) {
      for (let i = 0; i < 30; i++) toViewer(t - 500 + i);
      relay.onDatagram(rr(1), viewer, t);
    }
    assert.equal(relay.counters.circuitBreaks, 1);
    assert.match(log.join('\n'), /viewer 10\.0\.0\.2:5000 paused: none of the media sent over 3 reports arrived \(RFC 8083 circuit breaker\)/);
    assert.equal(toViewer(5000), false, 'no media to it');
    assert.equal(relay.viewers, 1, 'still a viewer');
    const publish = serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main' }, 0x1234)]);
    for (const t of [8000, 12_000]) {
      relay.onDatagram(sub(challenge.cookie), viewer, t); // their keepalives
      relay.onDatagram(publish, sharer, t);
    }
    relay.tick(4000 + CB_RESUME_MS);
    assert.match(log.at(-1)!, /media again after its circuit breaker/);
    // Caught up from the cache (the last keyframe was seq 1), then live.
    const caughtUp = relay.pump(4000 + CB_RESUME_MS + 1000).filter((o) => o.to.includes(viewer));
    assert.ok(caughtUp.length > 0, 'the keyframe and what followed it');
    assert.equal(toViewer(4000 + CB_RESUME_MS + 1001), true, 'live again');
  });
});
