// The routing table on its own: latching, caps, and fan-out lists, with no sockets.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Routing, type PublisherState, type StreamState } from '../src/relay/routing.ts';
import { RtxBudget } from '../src/relay/history.ts';
import { newRelayCounters } from '../src/relay/counters.ts';
import { udpSink, type DeliverySink, type Output } from '../src/relay/sink.ts';
import { TokenBucket } from '../src/util/token-bucket.ts';
import { ArrivalLog } from '../src/transport/arrivals.ts';
import { UplinkGaps } from '../src/relay/uplink.ts';
import { MAX_STREAMS } from '../src/defaults.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';

const pub = (key: string, ssrc = 1, now = 0): PublisherState => ({ endpoint: { address: key, port: 4000 }, key, ssrc, since: now, lastSeen: now, arrivals: new ArrivalLog(now), gaps: new UplinkGaps() });
const budget = () => new TokenBucket(1, 1, 0);
const rtp = (seq: number) =>
  serializeRtpToBuffer({ padding: 0, marker: false, payloadType: 96, sequenceNumber: seq, timestamp: 0, ssrc: 1, csrc: [], payload: Buffer.from([0x65]) });

function fakeSink(id: string, ok = true): DeliverySink & { got: Buffer[] } {
  const got: Buffer[] = [];
  return { kind: 'rtsp', id, endpoint: { address: '10.9.9.9', port: 554 }, got, deliver: (d) => (got.push(d), ok) };
}

describe('relay routing', () => {
  test('a stream is latched to its first publisher; another address is refused and counted', () => {
    const counters = newRelayCounters();
    const r = new Routing(counters);
    const first = r.publish('main', { ...pub('a'), salt: Buffer.alloc(16, 1) });
    assert.ok(typeof first === 'object' && first.previous === undefined);
    assert.equal(r.publish('main', pub('b')), 'taken');
    assert.equal(r.publish('other', pub('a')), 'taken', 'one address publishes one name');
    assert.equal(counters.hijackAttempts, 2);
    assert.equal(r.streams.get('main')!.dropped, 1);
    assert.equal(r.streams.has('other'), false, 'a refused name leaves no entry');
    const again = r.publish('main', { ...pub('a', 1, 5000), salt: Buffer.alloc(16, 2) });
    assert.ok(typeof again === 'object');
    assert.equal(again.stream.publisher!.since, 0, 'a refresh keeps the start');
    assert.deepEqual(again.stream.publisher!.salt, Buffer.alloc(16, 1), 'and the salt announced first');
    r.unlatch(again.stream);
    assert.ok(typeof r.publish('main', pub('b')) === 'object', 'free once unlatched');
  });

  test('a new SSRC is a new session: history and cache start empty', () => {
    const r = new Routing(newRelayCounters());
    const { stream } = r.publish('main', pub('a', 1)) as { stream: StreamState };
    stream.history.store(rtp(9));
    r.publish('main', pub('a', 1));
    assert.ok(stream.history.get(9), 'same SSRC: kept');
    r.publish('main', pub('a', 2));
    assert.equal(stream.history.get(9), undefined);
  });

  test(`at most ${MAX_STREAMS} published streams`, () => {
    const r = new Routing(newRelayCounters());
    for (let i = 0; i < MAX_STREAMS; i++) r.publish(`s${i}`, pub(`p${i}`));
    assert.equal(r.publish('one-more', pub('x')), 'full');
    assert.equal(r.roomForStream, false);
    assert.equal(r.roomForAwaited, true, 'names viewers wait on are counted apart');
  });

  test('UDP viewers share one cached endpoint list; it is replaced on change, never edited', () => {
    const counters = newRelayCounters();
    const r = new Routing(counters);
    const s = r.open('main');
    const a = r.addViewer(s, udpSink({ address: '10.0.0.2', port: 5000 }), 0, budget(), new RtxBudget(0, 0));
    assert.deepEqual(s.targets, [], 'not live until goLive');
    r.goLive(a);
    const out: Output[] = [];
    r.fanOut(s, rtp(1), out);
    r.fanOut(s, rtp(2), out);
    assert.equal(out.length, 2);
    assert.equal(out[0].to, out[1].to, 'the same list object for every packet');
    const before = out[0].to;
    const b = r.addViewer(s, udpSink({ address: '10.0.0.3', port: 5000 }), 0, budget(), new RtxBudget(0, 0));
    r.goLive(b);
    r.removeViewer(s, a.key);
    assert.deepEqual(before, [a.endpoint], 'a list handed out is never edited');
    assert.deepEqual(s.targets, [b.endpoint]);
    assert.equal(r.viewers, 1);
    assert.equal(s.fanOuts, 2);
    assert.equal(counters.packetsOut, 2);
  });

  test('other sinks get deliver(), are not in Output.to, and their failures are counted', () => {
    const counters = newRelayCounters();
    const r = new Routing(counters);
    const s = r.open('main');
    const good = fakeSink('rtsp:1');
    const bad = fakeSink('rtsp:2', false);
    for (const sink of [good, bad]) r.goLive(r.addViewer(s, sink, 0, budget(), new RtxBudget(0, 0)));
    const out: Output[] = [];
    const p = rtp(1);
    r.fanOut(s, p, out);
    assert.deepEqual(out, [], 'no UDP viewer, no Output');
    assert.deepEqual(good.got, [p]);
    assert.equal(counters.packetsOut, 2);
    assert.equal(counters.sendErrors, 1);
    assert.equal(s.viewers.get('rtsp:2')!.sendErrors, 1);
    assert.equal(s.dropped, 1);
    r.sendTo(s.viewers.get('rtsp:1')!, p, out);
    assert.deepEqual(good.got, [p, p]);
    r.removeViewer(s, 'rtsp:1');
    r.fanOut(s, p, out);
    assert.equal(good.got.length, 2);
  });

  test('a failed UDP send is counted against every stream that address watches', () => {
    const counters = newRelayCounters();
    const r = new Routing(counters);
    const e = { address: '10.0.0.2', port: 5000 };
    for (const name of ['a', 'b']) r.addViewer(r.open(name), udpSink(e), 0, budget(), new RtxBudget(0, 0));
    r.sendFailed({ ...e });
    assert.equal(counters.sendErrors, 1);
    assert.equal(r.streams.get('a')!.dropped + r.streams.get('b')!.dropped, 2);
  });
});
