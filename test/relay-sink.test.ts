// A viewer that is not UDP (a fake RTSP session) plugged into RelayCore through ViewerSink: it gets
// the live stream, the catch-up and its retransmissions through deliver(), and its RTCP reaches the
// sharer, with nothing in routing, history or catch-up knowing its kind.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { RelayCore } from '../src/relay/core.ts';
import type { DeliverySink } from '../src/relay/sink.ts';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { PT_OPUS, PUBLISHER_TIMEOUT_MS, VIEWER_TIMEOUT_MS } from '../src/defaults.ts';

const sharer = { address: '10.0.0.1', port: 4000 };
const viewer = { address: '10.0.0.2', port: 5000 };
const publish = () => serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main' }, 0x1234)]);
const stapSps = [24, 0, 2, 0x67, 0x42, 0, 1, 0x68];
const pSlice = [0x41, 9, 9, 9];
const h264 = (seq: number, ts: number, payload: number[]) =>
  serializeRtpToBuffer({ padding: 0, marker: false, payloadType: 96, sequenceNumber: seq, timestamp: ts, ssrc: 0x1234, csrc: [], payload: Buffer.from(payload) });

function rtspSink(id = 'rtsp:session-1'): DeliverySink & { got: Buffer[]; closedWhy: string[] } {
  const got: Buffer[] = [];
  const closedWhy: string[] = [];
  return { kind: 'rtsp', id, endpoint: { address: '10.0.0.9', port: 55400 }, got, closedWhy, deliver: (d) => (got.push(d), true), closed: (why) => closedWhy.push(why) };
}

function joinUdp(relay: RelayCore, now: number) {
  const sub = (cookie?: Buffer) => serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main', cookie }, 0x777)]);
  const challenge = parseControl(parseRtcp(relay.onDatagram(sub(), viewer, now)[0].data)[0] as never)!;
  assert.ok(challenge.kind === ControlType.Challenge);
  relay.onDatagram(sub(challenge.cookie), viewer, now);
}

describe('relay ViewerSink', () => {
  test('live media goes to deliver(); UDP viewers keep their shared Output', () => {
    const relay = new RelayCore(0);
    relay.onDatagram(publish(), sharer, 0);
    const sink = rtspSink();
    assert.equal(relay.attach('main', sink, 0), true);
    joinUdp(relay, 0);
    const p = h264(1, 0, pSlice);
    const out = relay.onDatagram(p, sharer, 1);
    assert.deepEqual(out, [{ data: p, to: [viewer] }], 'the UDP list holds the UDP viewer only');
    assert.deepEqual(sink.got, [p], 'the same buffer, delivered');
    assert.equal(relay.viewers, 2);
    assert.equal(relay.streams.get('main')!.packetsOut, 2);
  });

  test('a late sink is caught up from the keyframe, paced, then live', () => {
    const relay = new RelayCore(0);
    relay.onDatagram(publish(), sharer, 0);
    const sent = [h264(1, 3000, stapSps), ...Array.from({ length: 20 }, (_, i) => h264(2 + i, 6000 + i * 3000, [...pSlice, ...new Array(1000).fill(i)]))];
    for (const p of sent) relay.onDatagram(p, sharer, 1);
    const sink = rtspSink();
    relay.attach('main', sink, 10);
    assert.equal(relay.pumping, true);
    const live = h264(30, 200_000, pSlice);
    relay.onDatagram(live, sharer, 10);
    let now = 10;
    while (relay.pumping && now < 1000) assert.deepEqual(relay.pump((now += 4)), [], 'nothing for UDP');
    assert.deepEqual(sink.got, [...sent, live], 'from the keyframe on, every packet once, in order');
    const next = h264(31, 203_000, pSlice);
    relay.onDatagram(next, sharer, now);
    assert.equal(sink.got.at(-1), next, 'live now');
  });

  test('a sink that plays sound as it comes gets live sound at once during its catch-up; another gets it in order', () => {
    const opus = (seq: number, ts: number) =>
      serializeRtpToBuffer({ padding: 0, marker: false, payloadType: PT_OPUS, sequenceNumber: seq, timestamp: ts, ssrc: 0x5678, csrc: [], payload: Buffer.from([0xfc, 1, 2, 3]) });
    for (const soundAtOnce of [true, false]) {
      const relay = new RelayCore(0);
      relay.onDatagram(publish(), sharer, 0);
      const cached = [h264(1, 3000, stapSps), ...Array.from({ length: 200 }, (_, i) => h264(2 + i, 6000 + i * 3000, [...pSlice, ...new Array(1000).fill(i)]))];
      for (const p of cached) relay.onDatagram(p, sharer, 1);
      const sr = serializeRtcp([{ type: 'sr', ssrc: 0x1234, ntpSec: 1, ntpFrac: 0, rtpTimestamp: 600_000, packetCount: 201, octetCount: 200_000, reports: [] }]);
      relay.onDatagram(sr, sharer, 1);
      const sink = { ...rtspSink(), soundAtOnce };
      sink.deliver = (d) => (sink.got.push(d), true);
      relay.attach('main', sink, 10);
      // Before the first pump: it waits behind the sender report the catch-up opens with.
      const early = opus(1, 480_000);
      relay.onDatagram(early, sharer, 10);
      assert.equal(sink.got.length, 0, 'nothing before the catch-up begins');
      relay.pump(12);
      assert.deepEqual(sink.got[0], sr, 'the catch-up opens with the sender report');
      const picture = h264(300, 900_000, pSlice);
      const sound = opus(2, 480_480);
      relay.onDatagram(picture, sharer, 12);
      relay.onDatagram(sound, sharer, 12);
      assert.equal(relay.pumping, true, 'still catching up (200 kB at the join pace)');
      assert.equal(sink.got.includes(sound), soundAtOnce, soundAtOnce ? 'the sound at once' : 'the sound queued');
      assert.equal(sink.got.includes(picture), false, 'the live picture waits behind the cache');
      let now = 12;
      while (relay.pumping && now < 1000) relay.pump((now += 4));
      assert.deepEqual(sink.got.filter((d) => d === sound).length, 1, 'the sound once');
      assert.ok(sink.got.indexOf(early) > sink.got.indexOf(sr), 'the early sound after the report');
      assert.equal(sink.got.at(-1), soundAtOnce ? picture : sound, 'the rest in the order it came');
      assert.equal(sink.got.filter((d) => d !== sound && d !== early && d !== sr).length, cached.length + 1, 'every picture packet once');
    }
  });

  test('its NACKs are answered by deliver(); its reports reach the sharer', () => {
    const relay = new RelayCore(0);
    relay.onDatagram(publish(), sharer, 0);
    const sink = rtspSink();
    relay.attach('main', sink, 0);
    const sent = [1, 2, 3].map((s) => h264(s, s * 3000, pSlice));
    for (const p of sent) relay.onDatagram(p, sharer, 1);
    sink.got.length = 0;
    const rr = { type: 'rr' as const, ssrc: 0x999, reports: [{ ssrc: 0x1234, fractionLost: 0, cumulativeLost: 0, highestSeq: 3, jitter: 0, lsr: 0, dlsr: 0 }] };
    const nack = serializeRtcp([rr, { type: 'nack', senderSsrc: 0x999, mediaSsrc: 0x1234, lost: [2] }]);
    const out = relay.onViewerRtcp(sink.id, nack, 2);
    assert.deepEqual(sink.got, [sent[1]]);
    // The report goes on to the sharer; the NACK, answered here, does not.
    assert.deepEqual(out, [{ data: serializeRtcp([rr]), to: [sharer] }]);
    assert.equal(relay.counters.retransmissions, 1);
    assert.equal(relay.streams.get('main')!.viewers.get(sink.id)!.retransmissions, 1);
    assert.deepEqual(relay.onViewerRtcp('rtsp:nobody', nack, 2), []);
    assert.equal(relay.counters.unknownSource, 1);
  });

  test('attach is its keepalive; silence, detach and the sharer leaving work as for UDP', () => {
    const relay = new RelayCore(0);
    relay.onDatagram(publish(), sharer, 0);
    const sink = rtspSink();
    relay.attach('main', sink, 0);
    relay.attach('main', sink, VIEWER_TIMEOUT_MS);
    relay.onDatagram(publish(), sharer, VIEWER_TIMEOUT_MS);
    relay.tick(VIEWER_TIMEOUT_MS + 1);
    assert.equal(relay.viewers, 1, 'kept alive');
    relay.tick(VIEWER_TIMEOUT_MS + PUBLISHER_TIMEOUT_MS + 1);
    const ended = parseControl(parseRtcp(sink.got.at(-1)!)[0] as never)!;
    assert.equal(ended.kind, ControlType.Ended);
    relay.detach('main', sink.id);
    assert.equal(relay.viewers, 0);
    assert.deepEqual(sink.closedWhy, [], 'detach is the transport\'s own doing: not told back');
  });

  test('a sink the relay drops for silence is told, so its transport ends the session', () => {
    const relay = new RelayCore(0);
    relay.onDatagram(publish(), sharer, 0);
    const sink = rtspSink();
    relay.attach('main', sink, 0);
    relay.tick(VIEWER_TIMEOUT_MS + 1);
    assert.equal(relay.viewers, 0);
    assert.deepEqual(sink.closedWhy, ['timeout']);
  });
});
