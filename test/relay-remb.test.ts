/**
 * A viewer's own estimate of its path (REMB, draft-alvestrand-rmcat-remb: what a browser that
 * sends no transport-wide feedback says) caps its layer at the relay (issue 17): down at once when
 * its layer does not fit the estimate, up only after room has lasted, and with transport-wide
 * feedback too, the lower of the two wins. LayerChoice on its own, then through a pure RelayCore
 * with synthetic packets and clock.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { RelayCore, endpointKey } from '../src/relay/core.ts';
import { LayerChoice, LAYER_ESTIMATE_MS, LAYER_FIT, LAYER_UP_AFTER_MS, LAYER_UP_BACKOFF_MS, type LaneView, type LayerMove } from '../src/relay/layers.ts';
import { serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { SendLog } from '../src/transport/congestion.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import type { Endpoint } from '../src/util/net.ts';
import { ccfbReport as report } from './helpers/ccfb.ts';

const lanes: LaneView[] = [
  { index: 0, kbps: 2500, live: true },
  { index: 1, kbps: 1000, live: true },
  { index: 2, kbps: 375, live: true },
];

/** REMBs of `kbps` every 500 ms from `from` until one moves the viewer on `current` or `until` passes: the move and its time. */
function rembs(c: LayerChoice, kbps: number, from: number, until: number, current: number): { move?: LayerMove; at: number } {
  for (let t = from; t <= until; t += 500) {
    const move = c.onEstimate(kbps, t, current, lanes);
    if (move) return { move, at: t };
  }
  return { at: until };
}

describe('LayerChoice reads a receiver estimate (REMB)', () => {
  test('an estimate the layer fits moves nothing; one it does not moves down at once, to the best layer that fits', () => {
    const c = new LayerChoice(new SendLog());
    assert.equal(c.onEstimate(5000, 1000, 0, lanes), undefined, `2500 kbit/s fits ${LAYER_FIT} × 5000`);
    const down = c.onEstimate(1300, 1500, 0, lanes);
    assert.deepEqual(down, { to: 1, why: 'down: the viewer estimates its path at 1300 kbit/s' });
    assert.equal(c.why, down!.why);
    // Below every layer: the lowest.
    assert.equal(new LayerChoice(new SendLog()).onEstimate(100, 0, 0, lanes)?.to, 2);
    // Already on the lowest: nowhere to go (the circuit breaker is what pauses a viewer there).
    assert.equal(new LayerChoice(new SendLog()).onEstimate(100, 0, 2, lanes), undefined);
    // A layer whose rate is not measured yet says nothing.
    assert.equal(new LayerChoice(new SendLog()).onEstimate(100, 0, 0, lanes.map((l) => ({ ...l, kbps: 0 }))), undefined);
  });

  test("what the path is known to take (the dashboard's figure): nothing until a REMB, then it, until it is old", () => {
    const c = new LayerChoice(new SendLog());
    assert.equal(c.knownKbps(0), undefined, 'no feedback with a limit, no estimate');
    c.onEstimate(1300, 1000, 1, lanes);
    assert.equal(c.knownKbps(1000), 1300);
    assert.equal(c.knownKbps(1000 + LAYER_ESTIMATE_MS), undefined, 'an estimate not repeated holds no longer');
  });

  test('up only after the back-off, and once room under the estimate has lasted LAYER_UP_AFTER_MS', () => {
    const c = new LayerChoice(new SendLog());
    assert.equal(c.onEstimate(1300, 1000, 0, lanes)?.to, 1);
    const up = rembs(c, 10_000, 1500, 30_000, 1);
    assert.equal(up.move?.to, 0, 'one layer up');
    assert.match(up.move!.why, /^up: the viewer's estimate of its path has had room for it for 3 s, now 10000 kbit\/s$/);
    assert.ok(up.at - 1000 >= LAYER_UP_BACKOFF_MS, `not within the back-off (${up.at - 1000} ms)`);
    assert.ok(up.at - 1000 < LAYER_UP_BACKOFF_MS + 1000, `but right after it (${up.at - 1000} ms)`);

    // No back-off (no move down yet): room must still last, and an estimate without room for the
    // layer above (LAYER_UP_FIT) starts it again.
    const d = new LayerChoice(new SendLog());
    assert.equal(d.onEstimate(4000, 0, 1, lanes), undefined);
    assert.equal(d.onEstimate(4000, 2000, 1, lanes), undefined);
    assert.equal(d.onEstimate(3000, 2500, 1, lanes), undefined, '2500 kbit/s does not fit 0.7 × 3000: no room');
    const late = rembs(d, 4000, 3000, 10_000, 1);
    assert.equal(late.move?.to, 0);
    assert.equal(late.at, 3000 + LAYER_UP_AFTER_MS, 'room counted from 3000 ms, not from 0');
  });

  test('with transport-wide feedback too: the REMB moves down, never up; the lower estimate caps a move up', () => {
    const log = new SendLog();
    const c = new LayerChoice(log);
    // A clean path by the viewer's own feedback (no limit known), but a REMB of 1300 kbit/s.
    assert.equal(c.onFeedback(report(log, 0, 40, 1000), 1000, 0, 0, lanes), undefined);
    assert.equal(c.onEstimate(1300, 1100, 0, lanes)?.to, 1, 'the REMB moves it down');
    assert.equal(c.estimateKbps(1100), 1300, 'the lower of the two');
    // Room by the feedback for 25 s, past the back-off and LAYER_PROBE_MS: the top layer is above
    // 0.7 × 1300 kbit/s, and no probe goes past the REMB (it would be undone at once).
    let seq = 40;
    for (let t = 1200; t < 26_200; t += 100, seq += 10) {
      assert.equal(c.onFeedback(report(log, seq, 10, t), t, 1, 0, lanes), undefined, `feedback at ${t} ms`);
      if (t % 1000 === 0) assert.equal(c.onEstimate(1300, t, 1, lanes), undefined, `REMB at ${t} ms`);
    }
    // A REMB with room: while the feedback comes, the REMB itself moves nobody up...
    assert.equal(c.onEstimate(20_000, 26_200, 1, lanes), undefined);
    // ...the feedback's next report does, under the new cap.
    const up = c.onFeedback(report(log, seq, 10, 26_300), 26_300, 1, 0, lanes);
    assert.equal(up?.to, 0);
    assert.equal(up!.why, 'up: no queue or loss for 3 s, the path takes about 20000 kbit/s');
  });

  test("a REMB does not lift a viewer its own feedback holds down; the move down goes by the lower estimate", () => {
    const log = new SendLog();
    const c = new LayerChoice(log);
    c.onFeedback(report(log, 0, 40, 1000), 1000, 0, 0, lanes);
    const down = c.onFeedback(report(log, 40, 40, 1500, (k) => 50 + k * 3), 1500, 0, 0, lanes);
    assert.ok(down && down.to >= 1, JSON.stringify(down));
    // The queue stays: the feedback holds the viewer; REMBs of plenty for 20 s move nothing.
    let seq = 80;
    for (let t = 1600; t < 21_600; t += 100, seq += 10) {
      c.onFeedback(report(log, seq, 10, t, () => 60), t, down.to, 1600, lanes);
      assert.notEqual(c.cc.state, 'room');
      if (t % 500 === 0) assert.equal(c.onEstimate(50_000, t, down.to, lanes), undefined, `REMB at ${t} ms`);
    }

    // On the top layer while the layers below were paused at the sharer, the feedback's estimate
    // fell below the middle layer; they are back, and a REMB below the top layer moves the viewer
    // to where the lower of the two fits.
    const log2 = new SendLog();
    const e = new LayerChoice(log2);
    const topOnly = lanes.map((l) => ({ ...l, live: l.index === 0 }));
    e.onFeedback(report(log2, 0, 40, 1000), 1000, 0, 0, topOnly);
    assert.equal(e.onFeedback(report(log2, 40, 40, 1500, (k) => 50 + k * 3), 1500, 0, 0, topOnly), undefined, 'nowhere to go');
    assert.ok(e.cc.estimateKbps < 1000 / LAYER_FIT, `the feedback's estimate (${e.cc.estimateKbps}) fits the middle layer no more`);
    assert.equal(e.onEstimate(2000, 2000, 0, lanes)?.to, 2, 'not the middle layer the REMB alone would allow');
  });

  test(`a receiver estimate older than LAYER_ESTIMATE_MS no longer caps the choice`, () => {
    const log = new SendLog();
    const c = new LayerChoice(log);
    c.onFeedback(report(log, 0, 40, 1000), 1000, 0, 0, lanes);
    assert.equal(c.onEstimate(1300, 1100, 0, lanes)?.to, 1);
    let up: LayerMove | undefined;
    let t = 1100;
    for (let seq = 40; !up && t < 30_000; seq += 10) {
      t += 100;
      up = c.onFeedback(report(log, seq, 10, t), t, 1, 0, lanes);
    }
    assert.equal(up?.to, 0);
    assert.equal(t - 1100, Math.max(LAYER_ESTIMATE_MS, LAYER_UP_BACKOFF_MS), 'up once the REMB is forgotten (and the back-off over)');
    assert.equal(c.estimateKbps(t), c.cc.estimateKbps);
  });
});

describe('RelayCore.viewerEstimate', () => {
  const TOP = 0x1000;
  const LOW = 0x2000;
  const sharer: Endpoint = { address: '10.0.0.1', port: 4000 };
  const viewer: Endpoint = { address: '10.0.0.11', port: 5000 };
  /** Packet `k` of `count` of frame `n` of layer `ssrc` (1100 bytes of payload): frame 0 is a keyframe. */
  const packet = (ssrc: number, n: number, k: number, count: number) =>
    serializeRtpToBuffer({
      padding: 0, marker: k === count - 1, payloadType: 96, sequenceNumber: (n * count + k) & 0xffff, timestamp: n * 3000, ssrc, csrc: [],
      payload: Buffer.concat([Buffer.from([n === 0 ? 0x65 : 0x41]), Buffer.alloc(1100)]),
    });

  /** A relay with two layers (about 2.1 Mbit/s and 530 kbit/s), one UDP viewer on the top one, their rates measured. */
  function setup(): RelayCore {
    const relay = new RelayCore(0);
    relay.onDatagram(serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main', layers: [LOW] }, TOP)]), sharer, 0);
    const sub = (cookie?: Buffer) => serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main', cookie }, 0x777)]);
    const challenge = parseControl(parseRtcp(relay.onDatagram(sub(), viewer, 0)[0].data)[0] as never)!;
    assert.ok(challenge.kind === ControlType.Challenge);
    relay.onDatagram(sub(challenge.cookie), viewer, 0);
    for (let n = 0; n < 60; n++) {
      for (let k = 0; k < 8; k++) relay.onDatagram(packet(TOP, n, k, 8), sharer, n * 33);
      for (let k = 0; k < 2; k++) relay.onDatagram(packet(LOW, n, k, 2), sharer, n * 33);
      relay.tick(n * 33);
    }
    return relay;
  }

  test('a low estimate moves the viewer down at the low layer\'s next keyframe, asked of the sharer', () => {
    const relay = setup();
    const lines: string[] = [];
    relay.onLog = (l) => lines.push(l);
    const out = relay.viewerEstimate('main', endpointKey(viewer), 300, 2000);
    const pli = out.filter((o) => o.to.some((e) => e.address === sharer.address)).flatMap((o) => parseRtcp(o.data));
    assert.deepEqual(pli.map((p) => p.type === 'pli' && p.mediaSsrc), [LOW]);
    assert.equal(relay.counters.layerMoves, 1);
    assert.ok(lines.some((l) => /to layer 1 at its next keyframe \(down: the viewer estimates its path at 300 kbit\/s\)/.test(l)), lines.join('\n'));
  });

  test('an estimate of no use, or of no viewer, moves nothing and throws nothing', () => {
    const relay = setup();
    for (const kbps of [0, -5, NaN, Infinity]) assert.deepEqual(relay.viewerEstimate('main', endpointKey(viewer), kbps, 2000), [], String(kbps));
    assert.deepEqual(relay.viewerEstimate('main', 'webrtc:nobody', 300, 2000), []);
    assert.deepEqual(relay.viewerEstimate('nothing', endpointKey(viewer), 300, 2000), []);
    assert.equal(relay.counters.layerMoves, 0);
    // And the viewer still moves on a sound one.
    relay.viewerEstimate('main', endpointKey(viewer), 300, 2000);
    assert.equal(relay.counters.layerMoves, 1);
  });
});
