// The relay's routing rules, driven by datagrams and a fake clock: no sockets, no sleeping.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RelayCore } from '../src/relay/core.ts';
import type { Endpoint } from '../src/util/net.ts';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { PT_OPUS, PUBLISHER_TIMEOUT_MS, VIEWER_TIMEOUT_MS, MAX_DATAGRAM, MAX_STREAMS, RTX_BURST, RTX_SHARE, JOIN_BURST_BYTES, JOIN_PACE_BYTES_PER_MS } from '../src/defaults.ts';
import { startsKeyframe } from '../src/relay/core.ts';

const sharer: Endpoint = { address: '10.0.0.1', port: 4000 };
const intruder: Endpoint = { address: '10.0.0.66', port: 4000 };
const viewerA: Endpoint = { address: '10.0.0.2', port: 5000 };
const viewerB: Endpoint = { address: '10.0.0.3', port: 5000 };

const publish = (stream = 'main', ssrc = 0x1234) => serializeRtcp([controlApp({ kind: ControlType.Publish, stream }, ssrc)]);
const subscribe = (stream = 'main', ssrc = 0x777) => serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream }, ssrc)]);
const media = (seq: number, ssrc = 0x1234) =>
  serializeRtpToBuffer({ padding: 0, marker: true, payloadType: 96, sequenceNumber: seq, timestamp: seq * 3000, ssrc, csrc: [], payload: Buffer.from([0x65, 1, 2, 3]) });

/** SUBSCRIBE, take the CHALLENGE's cookie, SUBSCRIBE again with it: what every viewer does. */
function join(relay: RelayCore, viewer: Endpoint, now: number, stream = 'main', ssrc = 0x777) {
  const challenge = relay.onDatagram(subscribe(stream, ssrc), viewer, now);
  assert.equal(challenge.length, 1, 'an unproven SUBSCRIBE gets exactly one CHALLENGE');
  const msg = parseControl(parseRtcp(challenge[0].data)[0] as never)!;
  assert.equal(msg.kind, ControlType.Challenge);
  const proven = serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream, cookie: msg.cookie }, ssrc)]);
  return { out: relay.onDatagram(proven, viewer, now), proven };
}

function setup() {
  const relay = new RelayCore(0);
  relay.onDatagram(publish(), sharer, 0);
  join(relay, viewerA, 0);
  join(relay, viewerB, 0, 'main', 0x888);
  return relay;
}

describe('relay core', () => {
  test("a layer's live picture time: the newest picture's and when it came, not a late packet's of an older one", () => {
    const relay = setup();
    relay.onDatagram(media(10), sharer, 1000);
    relay.onDatagram(media(11), sharer, 1033);
    relay.onDatagram(media(9), sharer, 1040); // late, reordered on the way in
    const s = relay.streams.get('main')!;
    assert.deepEqual([s.liveTs, s.liveTsAt], [11 * 3000, 1033]);
    relay.onDatagram(media(12), sharer, 1066);
    assert.deepEqual([s.liveTs, s.liveTsAt], [12 * 3000, 1066]);
    // A time over a second back is a new sharer's clock: taken.
    const restart = serializeRtpToBuffer({ padding: 0, marker: true, payloadType: 96, sequenceNumber: 13, timestamp: 3_000_000_000, ssrc: 0x1234, csrc: [], payload: Buffer.from([0x65, 1]) });
    relay.onDatagram(restart, sharer, 1100);
    assert.deepEqual([s.liveTs, s.liveTsAt], [3_000_000_000, 1100]);
  });

  test('names only viewers asked for are no streams: they take no publisher\'s place (issue 12)', () => {
    const relay = new RelayCore(0);
    for (let i = 0; i < MAX_STREAMS; i++) join(relay, { address: `10.1.0.${i}`, port: 5000 }, 0, `awaited-${i}`);
    assert.equal(relay.streams.size, MAX_STREAMS);
    const ack = relay.onDatagram(publish('talk'), sharer, 1);
    assert.equal(ack.length, 1);
    const msg = parseControl(parseRtcp(ack[0].data)[0] as never)!;
    assert.equal(msg.kind, ControlType.Ack, 'the sharer is taken although viewers wait on as many names as the cap');
    assert.equal(relay.counters.overLimit, 0);
    // And the other way: a viewer of one more unpublished name is over the cap of awaited names.
    const more = { address: '10.2.0.1', port: 5000 };
    const r = join(relay, more, 2, 'one-too-many');
    assert.deepEqual(r.out, []);
    assert.equal(relay.counters.overLimit, 1);
  });

  test('one address publishing thousands of names: refused as taken, and no name is stored', () => {
    const relay = new RelayCore(0);
    relay.onDatagram(publish('mine'), sharer, 0);
    for (let i = 0; i < 5000; i++) relay.onDatagram(publish(`s${i}`), sharer, 1);
    assert.equal(relay.streams.size, 1, 'only the stream it publishes');
    assert.equal(relay.counters.hijackAttempts, 5000);
  });

  test('RTP from the publisher whose CSRCs or extension overrun the datagram: counted and dropped, never thrown (fuzz finds)', () => {
    const relay = setup();
    const ssrc = 0x1234;
    relay.onDatagram(media(1, ssrc), sharer, 1);
    // Found by bench/fuzz.ts (RelayCore.onDatagram, mutation): CC=2 in 16 bytes; X with a 52-byte
    // extension in 17. Both carry the publisher's SSRC and a new timestamp, so they reach the
    // keyframe check, which read the header extension and threw.
    const cc = Buffer.from('829d000581ce000200001234' + '00000abc', 'hex');
    const ext = Buffer.from('9000000581ce000300001234' + 'bede000c' + '00', 'hex');
    for (const bad of [cc, ext]) {
      const before = relay.counters.malformed;
      assert.deepEqual(relay.onDatagram(bad, sharer, 2), []);
      assert.equal(relay.counters.malformed, before + 1);
    }
    assert.equal(relay.streams.get('main')!.dropped, 2);
    // A frame-info element of the wrong size is not a reason to drop: the packet is forwarded.
    const oddInfo = Buffer.concat([Buffer.from('9060000700000004' + '00001234' + 'bede0001' + '12abcd00', 'hex'), Buffer.from([0x65, 1])]);
    assert.equal(relay.onDatagram(oddInfo, sharer, 3)[0].data, oddInfo);
    assert.equal(relay.onDatagram(media(2, ssrc), sharer, 4)[0].to.length, 2, 'and the stream goes on');
  });

  test('media from the publisher goes to every viewer as the same buffer', () => {
    const relay = setup();
    const pkt = media(1);
    const out = relay.onDatagram(pkt, sharer, 10);
    assert.equal(out.length, 1);
    assert.equal(out[0].data, pkt, 'the received buffer itself is forwarded: serialized once');
    assert.deepEqual(out[0].to, [viewerA, viewerB]);
    assert.equal(relay.streams.get('main')!.packetsOut, 2);
  });

  test('an unproven SUBSCRIBE gets only a CHALLENGE no larger than itself, and no state', () => {
    const relay = new RelayCore(0);
    relay.onDatagram(publish(), sharer, 0);
    const req = subscribe();
    const out = relay.onDatagram(req, viewerA, 0);
    assert.equal(out.length, 1);
    assert.ok(out[0].data.length <= req.length, `challenge ${out[0].data.length} bytes > request ${req.length}`);
    assert.equal(relay.viewers, 0, 'nothing stored for an unproven address');
    assert.deepEqual(relay.onDatagram(media(1), sharer, 1), [], 'no media to it');
  });

  test('a cookie is bound to its address: another address cannot use it', () => {
    const relay = new RelayCore(0);
    const challenge = parseControl(parseRtcp(relay.onDatagram(subscribe(), viewerA, 0)[0].data)[0] as never)!;
    assert.ok(challenge.kind === ControlType.Challenge);
    const cookie = challenge.cookie;
    const stolen = serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main', cookie }, 0x777)]);
    const out = relay.onDatagram(stolen, viewerB, 1);
    assert.equal(parseControl(parseRtcp(out[0].data)[0] as never)!.kind, ControlType.Challenge);
    assert.equal(relay.viewers, 0);
  });

  test('a proven SUBSCRIBE is answered with an ACK saying whether the stream is live', () => {
    const relay = new RelayCore(0);
    const { out, proven } = join(relay, viewerA, 0);
    assert.ok(out[0].data.length <= proven.length);
    const msg = parseControl(parseRtcp(out[0].data)[0] as never)!;
    assert.ok(msg.kind === ControlType.Ack);
    assert.equal(msg.live, false, 'no publisher yet');
    relay.onDatagram(publish(), sharer, 1);
    const again = parseControl(parseRtcp(relay.onDatagram(proven, viewerA, 2)[0].data)[0] as never)!;
    assert.ok(again.kind === ControlType.Ack);
    assert.equal(again.live, true);
  });

  test('cookies expire after two rotations of the secret', () => {
    const relay = new RelayCore(0);
    const challenge = parseControl(parseRtcp(relay.onDatagram(subscribe(), viewerA, 0)[0].data)[0] as never)!;
    assert.ok(challenge.kind === ControlType.Challenge);
    const cookie = challenge.cookie;
    relay.tick(30_000);
    relay.tick(60_000);
    const late = serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main', cookie }, 0x777)]);
    assert.equal(parseControl(parseRtcp(relay.onDatagram(late, viewerA, 60_001)[0].data)[0] as never)!.kind, ControlType.Challenge);
  });

  test('challenges to one address are rate-limited; keepalives of a known viewer too', () => {
    const relay = new RelayCore(0);
    let replies = 0;
    for (let i = 0; i < 100; i++) replies += relay.onDatagram(subscribe(), viewerA, 5).length;
    assert.ok(replies <= 10, `${replies} challenges in one instant`);
    assert.ok(relay.counters.rateLimited >= 90);
    const r2 = new RelayCore(0);
    const { proven } = join(r2, viewerB, 0);
    let acks = 0;
    for (let i = 0; i < 100; i++) acks += r2.onDatagram(proven, viewerB, 1).length;
    assert.ok(acks <= 11, `${acks} ACKs in one instant`);
  });

  test('a stream is latched to its publisher: another address cannot publish or inject media', () => {
    const relay = setup();
    const req = publish('main', 0x9999);
    const refused = relay.onDatagram(req, intruder, 5);
    assert.equal(refused.length, 1);
    assert.deepEqual(refused[0].to, [intruder]);
    assert.ok(refused[0].data.length <= req.length);
    const msg = parseControl(parseRtcp(refused[0].data)[0] as never)!;
    assert.equal(msg.kind, ControlType.Refused);
    assert.equal(msg.reason, 1, 'taken');
    assert.equal(relay.counters.hijackAttempts, 1);
    assert.equal(relay.streams.get('main')!.dropped, 1, 'counted against the stream it tried to take');
    assert.deepEqual(relay.onDatagram(media(1, 0x9999), intruder, 6), []);
    assert.equal(relay.counters.unknownSource, 1);
    assert.equal(relay.onDatagram(media(2), sharer, 7).length, 1, 'the real publisher still gets through');
  });

  test('a silent publisher ends its stream, viewers are told, and a new publisher may take it', () => {
    const relay = setup();
    assert.deepEqual(relay.tick(PUBLISHER_TIMEOUT_MS), []);
    const out = relay.tick(PUBLISHER_TIMEOUT_MS + 1);
    assert.equal(out.length, 1);
    assert.deepEqual(out[0].to, [viewerA, viewerB]);
    assert.equal(parseControl(parseRtcp(out[0].data)[0] as never)!.kind, ControlType.Ended);
    relay.onDatagram(publish('main', 0x4444), intruder, PUBLISHER_TIMEOUT_MS + 2);
    assert.equal(relay.counters.hijackAttempts, 0);
    assert.equal(relay.streams.get('main')!.publisher!.ssrc, 0x4444);
  });

  test('BYE from the publisher is forwarded and frees the stream at once', () => {
    const relay = setup();
    const bye = serializeRtcp([{ type: 'rr', ssrc: 0x1234, reports: [] }, { type: 'bye', ssrcs: [0x1234] }]);
    const out = relay.onDatagram(bye, sharer, 10);
    assert.equal(out[0].data, bye);
    assert.equal(relay.streams.get('main')!.publisher, undefined);
  });

  test("a viewer's receiver report goes to the publisher and is kept for the dashboard", () => {
    const relay = setup();
    const rr = serializeRtcp([
      { type: 'rr', ssrc: 0x777, reports: [{ ssrc: 0x1234, fractionLost: 64, cumulativeLost: 3, highestSeq: 100, jitter: 90, lsr: 0, dlsr: 0 }] },
      controlApp({ kind: ControlType.Subscribe, stream: 'main' }, 0x777),
    ]);
    const out = relay.onDatagram(rr, viewerA, 20);
    const toPublisher = out.find((o) => o.to[0] === sharer);
    assert.ok(toPublisher, 'forwarded to the publisher');
    assert.equal(toPublisher!.data, rr);
    assert.equal(relay.streams.get('main')!.viewers.get('10.0.0.2|5000')!.lastReport!.fractionLost, 64);
  });

  test('silent viewers are dropped; keepalives keep them', () => {
    const relay = setup();
    relay.onDatagram(subscribe(), viewerA, VIEWER_TIMEOUT_MS); // a known viewer's keepalive needs no cookie
    relay.onDatagram(publish(), sharer, VIEWER_TIMEOUT_MS);
    relay.tick(VIEWER_TIMEOUT_MS + 1);
    assert.deepEqual(relay.onDatagram(media(3), sharer, VIEWER_TIMEOUT_MS + 2)[0].to, [viewerA]);
    assert.equal(relay.viewers, 1);
  });

  test('LEAVE removes a viewer at once', () => {
    const relay = setup();
    relay.onDatagram(serializeRtcp([controlApp({ kind: ControlType.Leave, stream: 'main' }, 0x888)]), viewerB, 3);
    assert.deepEqual(relay.onDatagram(media(4), sharer, 4)[0].to, [viewerA]);
  });

  test('oversize, garbage and unknown-source datagrams are counted and dropped', () => {
    const relay = setup();
    assert.deepEqual(relay.onDatagram(Buffer.alloc(MAX_DATAGRAM + 1, 0x80), sharer, 1), []);
    assert.deepEqual(relay.onDatagram(Buffer.from('hello relay'), viewerA, 1), []);
    assert.deepEqual(relay.onDatagram(Buffer.from([0x80, 0xc8, 0xff, 0xff]), viewerA, 1), []);
    assert.deepEqual(relay.onDatagram(media(5), viewerA, 1), []);
    assert.equal(relay.counters.oversize, 1);
    assert.equal(relay.counters.malformed, 2);
    assert.equal(relay.counters.unknownSource, 1);
  });

  test('RTP from an address that never published: one line for it (a plain ffmpeg -f rtp), then only counted', () => {
    const relay = setup();
    const lines: string[] = [];
    relay.onLog = (l) => lines.push(l);
    const ffmpeg = { address: '10.0.0.77', port: 5004 };
    for (let i = 0; i < 50; i++) relay.onDatagram(media(i, 0x9999), ffmpeg, 1);
    relay.onDatagram(media(1, 0x9999), viewerA, 1);
    assert.equal(relay.counters.unknownSource, 51);
    assert.deepEqual(lines.map((l) => l.split(':')[0] + ':' + l.split(':')[1]), ['dropped RTP from 10.0.0.77:5004', 'dropped RTP from 10.0.0.2:5000']);
    assert.match(lines[0], /has not published a stream \(udpcast share does; plain RTP senders such as ffmpeg -f rtp cannot publish here/);
  });

  test('random datagrams from anywhere never throw and never reach viewers as media from strangers', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ minLength: 0, maxLength: 1600 }), { maxLength: 50 }), (dgrams) => {
        const relay = setup();
        for (const d of dgrams) {
          const out = relay.onDatagram(Buffer.from(d), intruder, 1);
          // An intruder may at most get a reply no larger than what it sent, and only to itself.
          for (const o of out) {
            assert.deepEqual(o.to, [intruder]);
            assert.ok(o.data.length <= d.length);
          }
        }
      }),
      { numRuns: 300 },
    );
  });

  // H.264 packets: an IDR frame (STAP-A with SPS/PPS, then an FU-A start of an IDR), then P frames.
  const h264 = (seq: number, ts: number, payload: number[]) =>
    serializeRtpToBuffer({ padding: 0, marker: false, payloadType: 96, sequenceNumber: seq, timestamp: ts, ssrc: 0x1234, csrc: [], payload: Buffer.from(payload) });
  const stapSps = [24, 0, 2, 0x67, 0x42, 0, 1, 0x68];
  const fuIdrStart = [28, 0x85, 1, 2, 3];
  const pSlice = [0x41, 9, 9, 9];

  test('startsKeyframe reads SPS/IDR in single NAL, STAP-A and FU-A packets, and every JPEG', () => {
    assert.equal(startsKeyframe(h264(1, 0, stapSps)), true);
    assert.equal(startsKeyframe(h264(1, 0, fuIdrStart)), true);
    assert.equal(startsKeyframe(h264(1, 0, [0x65, 1])), true);
    assert.equal(startsKeyframe(h264(1, 0, pSlice)), false);
    assert.equal(startsKeyframe(h264(1, 0, [28, 0x05, 1])), false, 'FU-A continuation');
    assert.equal(startsKeyframe(h264(1, 0, [24, 0, 1])), false, 'truncated STAP-A');
    assert.equal(startsKeyframe(h264(1, 0, [])), false);
  });

  test('a late viewer gets the SR and everything since the last keyframe, paced, then live in order', () => {
    const relay = new RelayCore();
    relay.onDatagram(publish(), sharer, 0);
    const sr = serializeRtcp([{ type: 'sr', ssrc: 0x1234, ntpSec: 1, ntpFrac: 0, rtpTimestamp: 0, packetCount: 0, octetCount: 0, reports: [] }]);
    relay.onDatagram(sr, sharer, 0);
    const stream: Buffer[] = [];
    let seq = 100;
    const send = (ts: number, payload: number[]) => {
      const b = h264(seq++, ts, payload);
      stream.push(b);
      relay.onDatagram(b, sharer, 1);
    };
    send(0, pSlice); // before the keyframe: not cached
    send(3000, stapSps);
    send(3000, fuIdrStart);
    for (let i = 0; i < 40; i++) send(6000 + i * 3000, [...pSlice, ...new Array(1000).fill(i)]);
    join(relay, viewerA, 10);
    assert.equal(relay.pumping, true);
    assert.equal(relay.counters.cacheJoins, 1);
    // Live traffic while catching up queues behind the cache.
    send(200_000, pSlice);
    const got: Buffer[] = [];
    let now = 10;
    let maxPerStep = 0;
    while (relay.pumping && now < 1000) {
      now += 4;
      const outs = relay.pump(now);
      let bytes = 0;
      for (const o of outs) {
        assert.deepEqual(o.to, [viewerA]);
        got.push(o.data);
        bytes += o.data.length;
      }
      maxPerStep = Math.max(maxPerStep, bytes);
    }
    assert.equal(relay.pumping, false);
    assert.equal(got[0], sr, 'the SR comes first');
    assert.deepEqual(got.slice(1), stream.slice(1), 'from the keyframe on, every packet once, in order');
    assert.ok(maxPerStep <= JOIN_BURST_BYTES + 1500, `a pump step sent ${maxPerStep} bytes`);
    assert.ok(now - 10 >= ((40 * 1000 - JOIN_BURST_BYTES) / JOIN_PACE_BYTES_PER_MS) * 0.9, 'paced, not one burst');
    // Now live: the next packet goes to the viewer directly.
    const next = h264(seq++, 300_000, pSlice);
    assert.deepEqual(relay.onDatagram(next, sharer, now)[0].to, [viewerA]);
  });

  test('the sound has its own history: a NACK naming its SSRC is answered from it, and a new session clears it', () => {
    const relay = setup();
    const sound = (seq: number, ssrc = 0x1235) =>
      serializeRtpToBuffer({ padding: 0, marker: false, payloadType: PT_OPUS, sequenceNumber: seq, timestamp: seq * 480, ssrc, csrc: [], payload: Buffer.from([0xf8, seq]) });
    relay.onDatagram(h264(1, 3000, pSlice), sharer, 1);
    const sent = [10, 11, 12].map((s) => {
      const b = sound(s);
      const out = relay.onDatagram(b, sharer, 1);
      assert.ok(out.some((o) => o.data === b && o.to.some((e) => e === viewerA)), 'the sound goes to the viewer');
      return b;
    });
    const nack = (ssrc: number, lost: number[]) => serializeRtcp([{ type: 'nack', senderSsrc: 0x777, mediaSsrc: ssrc, lost }]);
    const rtx = (ssrc: number, lost: number[], now: number) => relay.onDatagram(nack(ssrc, lost), viewerA, now).filter((o) => o.to[0] === viewerA).map((o) => o.data);
    assert.deepEqual(rtx(0x1235, [11, 12, 40], 2), [sent[1], sent[2]]);
    assert.equal(relay.counters.rtxMisses, 1, 'seq 40 was never sent');
    assert.deepEqual(rtx(0x1234, [11], 2), [], 'the picture\'s history holds no sound');
    assert.deepEqual(rtx(0x9999, [11], 2), [], 'an SSRC of no one');
    // Sound from another source of the same sharer: the old source's packets are not its.
    const other = sound(11, 0x1236);
    relay.onDatagram(other, sharer, 2);
    assert.deepEqual(rtx(0x1235, [10], 2), [], 'the old source is gone');
    assert.deepEqual(rtx(0x1236, [10, 11], 2), [other]);
    // The sharer starts again (a new SSRC): nothing of the old session's sound is replayed.
    relay.onDatagram(publish('main', 0x4321), sharer, 3);
    assert.deepEqual(rtx(0x1235, [10], 4), []);
  });

  test('NACKed packets come back from history to that viewer only, within its budget', () => {
    const relay = setup();
    const sent = [1, 2, 3, 4].map((s) => {
      const b = h264(s, s * 3000, pSlice);
      relay.onDatagram(b, sharer, 1);
      return b;
    });
    const nack = serializeRtcp([{ type: 'rr', ssrc: 0x777, reports: [] }, { type: 'nack', senderSsrc: 0x777, mediaSsrc: 0x1234, lost: [2, 3, 99] }]);
    const out = relay.onDatagram(nack, viewerA, 2);
    const rtx = out.filter((o) => o.to[0] === viewerA);
    assert.deepEqual(rtx.map((o) => o.data), [sent[1], sent[2]]);
    assert.equal(relay.counters.retransmissions, 2);
    assert.equal(relay.counters.rtxMisses, 1, 'seq 99 was never sent');
    // Budget: RTX_BURST in hand (2 spent above), then only RTX_SHARE of what the stream sends.
    const many = serializeRtcp([{ type: 'nack', senderSsrc: 0x777, mediaSsrc: 0x1234, lost: [1] }]);
    let resent = 0;
    for (let i = 0; i < RTX_BURST + 50; i++) resent += relay.onDatagram(many, viewerA, 3).filter((o) => o.to[0] === viewerA).length;
    assert.equal(resent, RTX_BURST - 2, 'no more than the burst in hand, however often it asks');
    for (let s = 5; s < 5 + 40; s++) relay.onDatagram(h264(s, s * 3000, pSlice), sharer, 4);
    let later = 0;
    for (let i = 0; i < 50; i++) later += relay.onDatagram(many, viewerA, 5).filter((o) => o.to[0] === viewerA).length;
    assert.equal(later, 40 * RTX_SHARE, 'a share of the 40 datagrams sent since');
  });
});
