/**
 * What of the viewers' RTCP reaches the sharer (issue 14, "no storms"): NACKs are answered by the
 * relay and go no further; keyframe requests are passed on once per keyframe and per viewer
 * window, so one encoder restart answers everyone who asked meanwhile.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { KEYFRAME_WAIT_MS, VIEWER_KEYFRAME_MIN_MS } from '../src/defaults.ts';
import { RelayCore } from '../src/relay/core.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { ControlType, PT_PROBE, controlApp, parseControl } from '../src/transport/control.ts';
import { parseRtcp, serializeRtcp, type RtcpPacket } from '../src/transport/rtcp.ts';
import type { Endpoint } from '../src/util/net.ts';
import type { Output } from '../src/relay/sink.ts';

const SHARER_SSRC = 0x1234;
const sharer: Endpoint = { address: '10.0.0.1', port: 4000 };
const viewers: Endpoint[] = [1, 2, 3].map((i) => ({ address: `10.0.0.${10 + i}`, port: 5000 }));
const viewerSsrc = (i: number) => 0x700 + i;

/** A media packet: an IDR slice (a keyframe) or a P slice. */
const media = (seq: number, keyframe: boolean) =>
  serializeRtpToBuffer({
    padding: 0, marker: true, payloadType: 96, sequenceNumber: seq, timestamp: seq * 3000, ssrc: SHARER_SSRC, csrc: [],
    payload: Buffer.from([keyframe ? 0x65 : 0x41, 1, 2, 3]),
  });

function setup(): RelayCore {
  const relay = new RelayCore(0);
  relay.onDatagram(serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main' }, SHARER_SSRC)]), sharer, 0);
  viewers.forEach((v, i) => {
    const sub = (cookie?: Buffer) => serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main', cookie }, viewerSsrc(i))]);
    const challenge = parseControl(parseRtcp(relay.onDatagram(sub(), v, 0)[0].data)[0] as never)!;
    assert.ok(challenge.kind === ControlType.Challenge && challenge.cookie);
    relay.onDatagram(sub(challenge.cookie), v, 0);
  });
  relay.onDatagram(media(1, true), sharer, 1);
  for (let seq = 2; seq <= 10; seq++) relay.onDatagram(media(seq, false), sharer, seq);
  return relay;
}

const rr = (i: number): RtcpPacket => ({ type: 'rr', ssrc: viewerSsrc(i), reports: [] });
/** An RR with a report block about the stream: something the sharer can use. */
const report = (i: number): RtcpPacket => ({
  type: 'rr', ssrc: viewerSsrc(i),
  reports: [{ ssrc: SHARER_SSRC, fractionLost: 0, cumulativeLost: 0, highestSeq: 10, jitter: 0, lsr: 0, dlsr: 0 }],
});
const pli = (i: number): RtcpPacket => ({ type: 'pli', senderSsrc: viewerSsrc(i), mediaSsrc: SHARER_SSRC });

/** What viewer `i` sending `packets` at `now` makes the relay send the sharer, as RTCP packet types. */
function toSharer(relay: RelayCore, i: number, packets: RtcpPacket[], now: number): string[] {
  const out = relay.onDatagram(serializeRtcp(packets), viewers[i], now);
  return out.filter((o) => o.to.some((e) => e.address === sharer.address)).flatMap((o) => parseRtcp(o.data).map((p) => p.type));
}

describe('viewer feedback on its way to the sharer', () => {
  test('a NACK is answered from history and not passed on; the report beside it is', () => {
    const relay = setup();
    const out = relay.onDatagram(serializeRtcp([report(0), { type: 'nack', senderSsrc: viewerSsrc(0), mediaSsrc: SHARER_SSRC, lost: [5, 6] }]), viewers[0], 20);
    const resent = out.filter((o) => o.to.some((e) => e.address === viewers[0].address));
    assert.deepEqual(resent.map((o) => o.data.readUInt16BE(2)), [5, 6]);
    const up = out.filter((o) => o.to.some((e) => e.address === sharer.address));
    assert.equal(up.length, 1);
    assert.deepEqual(parseRtcp(up[0].data).map((p) => p.type), ['rr']);
    // A NACK behind an empty RR (what a viewer sends): nothing goes up.
    assert.deepEqual(toSharer(relay, 0, [rr(0), { type: 'nack', senderSsrc: viewerSsrc(0), mediaSsrc: SHARER_SSRC, lost: [7] }], 21), []);
    // Nothing taken out: the datagram goes on as it came.
    const plain = serializeRtcp([rr(1)]);
    const same = relay.onDatagram(plain, viewers[1], 22).find((o) => o.to.some((e) => e.address === sharer.address));
    assert.equal(same?.data, plain);
  });

  test('keyframe requests within one wait are passed on once; a keyframe ends the wait', () => {
    const relay = setup();
    assert.deepEqual(toSharer(relay, 0, [rr(0), pli(0)], 100), ['rr', 'pli']);
    assert.deepEqual(toSharer(relay, 1, [rr(1), pli(1)], 150), [], 'held: a keyframe is on its way');
    assert.deepEqual(toSharer(relay, 1, [report(1), pli(1)], 160), ['rr'], 'held, and its report goes on');
    assert.deepEqual(toSharer(relay, 2, [pli(2)], 200), [], 'a request alone, held: nothing goes up');
    assert.equal(relay.counters.keyframeRequestsHeld, 3);
    relay.onDatagram(media(11, true), sharer, 300); // the sharer's answer passes through
    assert.deepEqual(toSharer(relay, 1, [pli(1)], 310), ['pli'], 'after the keyframe, a new request goes up');
  });

  test(`with no keyframe in ${KEYFRAME_WAIT_MS} ms, the next request goes up again`, () => {
    const relay = setup();
    assert.deepEqual(toSharer(relay, 0, [pli(0)], 100), ['pli']);
    assert.deepEqual(toSharer(relay, 1, [pli(1)], 100 + KEYFRAME_WAIT_MS - 1), []);
    assert.deepEqual(toSharer(relay, 1, [pli(1)], 100 + KEYFRAME_WAIT_MS), ['pli']);
  });

  test(`one viewer's requests go up at most every ${VIEWER_KEYFRAME_MIN_MS} ms, keyframes or not`, () => {
    const relay = setup();
    let up = 0;
    for (let t = 100, seq = 20; t < 100 + 2 * VIEWER_KEYFRAME_MIN_MS; t += 100, seq++) {
      up += toSharer(relay, 0, [pli(0)], t).length;
      relay.onDatagram(media(seq, true), sharer, t + 50); // a keyframe after every request
    }
    assert.equal(up, 2);
  });
  test('packets lost on the way in since the keyframe: the same viewer may ask again at once, past its window', () => {
    // The sharer's uplink narrowed: its new keyframe arrived damaged, and every viewer's picture
    // is broken until the next. The viewer's window would hold the request that fixes it.
    const relay = setup();
    assert.deepEqual(toSharer(relay, 0, [pli(0)], 100), ['pli']);
    relay.onDatagram(media(11, true), sharer, 200); // the answer...
    relay.onDatagram(media(13, false), sharer, 230); // ...and 12, lost before the relay
    assert.deepEqual(toSharer(relay, 0, [pli(0)], 300), ['pli'], 'not held by the viewer window');
    assert.deepEqual(toSharer(relay, 1, [pli(1)], 310), [], 'still one per keyframe on its way');
    // A keyframe that arrived whole: the viewer's own losses are held by its window again.
    relay.onDatagram(media(14, true), sharer, 400);
    relay.onDatagram(media(15, false), sharer, 430);
    assert.deepEqual(toSharer(relay, 0, [pli(0)], 500), []);
    assert.equal(relay.counters.keyframeRequestsHeld, 2);
  });

  test('a duplicate on the way in is no loss', () => {
    const relay = setup();
    assert.deepEqual(toSharer(relay, 0, [pli(0)], 100), ['pli']);
    relay.onDatagram(media(11, true), sharer, 200);
    relay.onDatagram(media(12, false), sharer, 210);
    relay.onDatagram(media(12, false), sharer, 220); // a duplicate
    relay.onDatagram(media(13, false), sharer, 230);
    assert.deepEqual(toSharer(relay, 0, [pli(0)], 300), [], 'held: the picture is whole at the relay');
  });
});

describe("the sharer's probes", () => {
  const probe = (seq: number) =>
    serializeRtpToBuffer({
      padding: 0, marker: seq % 3 === 0, payloadType: PT_PROBE, sequenceNumber: seq, timestamp: 0, ssrc: 0x9999, csrc: [],
      payload: Buffer.alloc(200),
    });

  test('padding is counted and told in the feedback to the sharer, and no viewer is sent it', () => {
    const relay = setup();
    const before = relay.counters.packetsOut;
    const out: Output[] = [];
    for (let seq = 1; seq <= 30; seq++) out.push(...relay.onDatagram(probe(seq), sharer, 100 + seq * 10));
    assert.ok(out.every((o) => o.to.every((e) => e.address === sharer.address)), 'nothing to a viewer');
    assert.equal(relay.counters.probePackets, 30);
    const reports = out.flatMap((o) => parseRtcp(o.data)).filter((p) => p.type === 'ccfb');
    assert.ok(reports.length > 0, 'feedback went to the sharer');
    const told = reports.flatMap((r) => (r.type === 'ccfb' ? r.streams.filter((s) => s.ssrc === 0x9999).map((s) => s.packets.length) : []));
    assert.ok(told.reduce((a, b) => a + b, 0) >= 20, `the probe's packets are in it: ${told}`);
    assert.equal(relay.counters.packetsOut - before, reports.length, 'only the feedback went out');
  });
});
