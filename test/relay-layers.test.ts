/**
 * Quality layers at the relay (issue 14, items 1 and 3): a PUBLISH names the layers' SSRCs; each
 * viewer gets one layer only; a viewer whose own RFC 8888 feedback shows a queue moves down, at
 * the lower layer's next keyframe, which the relay asks the sharer for; room that lasts moves it up.
 * Pure RelayCore with synthetic packets and clock; LayerChoice and UplinkLayers on their own.
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LANE_PAUSED_MS, LANE_SILENT_MS } from '../src/defaults.ts';
import { RelayCore } from '../src/relay/core.ts';
import { LayerChoice, LAYER_UP_AFTER_MS, LAYER_PROBE_MS, LAYER_UP_BACKOFF_MS, type LaneView } from '../src/relay/layers.ts';
import { serializeRtpToBuffer, rtpSsrc, isRtp } from '../src/rtp/packet.ts';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { CC_MEDIA_SHARE, LAYER_PAUSE_SHARE, SendLog, UplinkLayers, RETARGET_UP_AFTER_MS } from '../src/transport/congestion.ts';
import { parseRtcp, serializeRtcp, type Ccfb } from '../src/transport/rtcp.ts';
import type { Endpoint } from '../src/util/net.ts';
import { ccfbReport as report } from './helpers/ccfb.ts';

const TOP = 0x1000;
const LOW = 0x2000;
const sharer: Endpoint = { address: '10.0.0.1', port: 4000 };
const viewer: Endpoint = { address: '10.0.0.11', port: 5000 };
const VIEWER_SSRC = 0x777;

/** One packet a frame: an IDR (keyframe) or a P slice, of layer `ssrc`, at frame `n`. */
const frame = (ssrc: number, n: number, keyframe: boolean) =>
  serializeRtpToBuffer({
    padding: 0, marker: true, payloadType: 96, sequenceNumber: n & 0xffff, timestamp: n * 3000, ssrc, csrc: [],
    payload: Buffer.concat([Buffer.from([keyframe ? 0x65 : 0x41]), Buffer.alloc(keyframe ? 1000 : 300)]),
  });

function setup(): RelayCore {
  const relay = new RelayCore(0);
  relay.onDatagram(serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main', layers: [LOW] }, TOP)]), sharer, 0);
  const sub = (cookie?: Buffer) => serializeRtcp([controlApp({ kind: ControlType.Subscribe, stream: 'main', cookie }, VIEWER_SSRC)]);
  const challenge = parseControl(parseRtcp(relay.onDatagram(sub(), viewer, 0)[0].data)[0] as never)!;
  assert.ok(challenge.kind === ControlType.Challenge);
  relay.onDatagram(sub(challenge.cookie), viewer, 0);
  return relay;
}

/** The SSRCs of the media the viewer was sent in `out`. */
const mediaToViewer = (out: ReturnType<RelayCore['onDatagram']>) =>
  out.filter((o) => o.to.some((e) => e.address === viewer.address) && isRtp(o.data)).map((o) => rtpSsrc(o.data));
const toSharer = (out: ReturnType<RelayCore['onDatagram']>) =>
  out.filter((o) => o.to.some((e) => e.address === sharer.address)).flatMap((o) => parseRtcp(o.data));

/** Feedback from the viewer on frames `from`..`to` of layer `ssrc`, each arriving `delay(n)` ms after it left at n × 33 ms. */
function feedback(ssrc: number, from: number, to: number, delay: (n: number) => number): Ccfb {
  const at = to * 33 + delay(to);
  return {
    type: 'ccfb',
    senderSsrc: VIEWER_SSRC,
    streams: [{ ssrc, beginSeq: from, packets: Array.from({ length: to - from + 1 }, (_, k) => ({ received: true, ecn: 0, ato: Math.round(((at - ((from + k) * 33 + delay(from + k))) * 1024) / 1000) })) }],
    reportTimestamp: 0x10000 * 100 + Math.round(((at % 1000) / 1000) * 0x10000),
  };
}

describe('layers at the relay', () => {
  test('a viewer gets the top layer only; its queue moves it down at the low layer\'s next keyframe', () => {
    const relay = setup();
    const sent: number[] = [];
    let pliSeen = false;
    for (let n = 0; n < 60; n++) {
      const t = n * 33;
      for (const ssrc of [TOP, LOW]) sent.push(...mediaToViewer(relay.onDatagram(frame(ssrc, n, n === 0), sharer, t)));
      // From frame 30 on, the viewer's path queues: each frame 5 ms later than the one before.
      if (n % 3 === 2) {
        const out = relay.onDatagram(serializeRtcp([feedback(TOP, n - 2, n, (k) => 10 + Math.max(0, k - 30) * 5)]), viewer, t + 1);
        pliSeen ||= toSharer(out).some((p) => p.type === 'pli' && p.mediaSsrc === LOW);
      }
    }
    assert.ok(sent.length > 0 && sent.every((s) => s === TOP), 'the top layer only, until a keyframe of the low one');
    assert.ok(pliSeen, 'the relay asked the sharer for a keyframe');
    assert.equal(relay.counters.layerMoves, 1);
    // The low layer's keyframe: from it on, the viewer gets the low layer, and only it.
    const after: number[] = [];
    for (let n = 60; n < 66; n++) for (const ssrc of [TOP, LOW]) after.push(...mediaToViewer(relay.onDatagram(frame(ssrc, n, n === 60 && ssrc === LOW), sharer, n * 33)));
    // Frame 60 of the top layer still goes (it comes before the low layer's keyframe of the same picture).
    assert.deepEqual(after, [TOP, ...Array(6).fill(LOW)]);
  });
});

describe('a move down from the cache', () => {
  test('when the path takes the lower layer\'s cache in CACHE_SWITCH_MS: its keyframe and what followed go at once, no keyframe asked for', () => {
    const relay = setup();
    // A small low layer whose every picture is a keyframe: its cache is one 200-byte frame.
    const low = (n: number) => serializeRtpToBuffer({
      padding: 0, marker: true, payloadType: 96, sequenceNumber: n & 0xffff, timestamp: n * 3000, ssrc: LOW, csrc: [],
      payload: Buffer.concat([Buffer.from([0x65]), Buffer.alloc(200)]),
    });
    let moved: number | undefined;
    let pli = false;
    const sent: number[] = [];
    for (let n = 0; n < 60 && moved === undefined; n++) {
      const t = n * 33;
      sent.push(...mediaToViewer(relay.onDatagram(frame(TOP, n, n === 0), sharer, t)));
      relay.onDatagram(low(n), sharer, t);
      if (n % 3 === 2) {
        const out = relay.onDatagram(serializeRtcp([feedback(TOP, n - 2, n, (k) => 10 + Math.max(0, k - 30) * 5)]), viewer, t + 1);
        pli ||= toSharer(out).some((p) => p.type === 'pli');
        if (relay.counters.layerMoves > 0) moved = n;
      }
    }
    assert.ok(moved !== undefined, 'moved down');
    assert.equal(pli, false, 'no keyframe asked for: the cache had one');
    assert.ok(relay.pumping, 'its catch-up is under way');
    const caught = mediaToViewer(relay.pump(moved * 33 + 2));
    assert.deepEqual(caught, [LOW], "the low layer's cached keyframe, at once");
    // From then on the low layer only.
    const next = [TOP, LOW].flatMap((ssrc) => mediaToViewer(relay.onDatagram(ssrc === LOW ? low(moved! + 1) : frame(TOP, moved! + 1, false), sharer, (moved! + 1) * 33)));
    assert.deepEqual(next, [LOW]);
  });
});

describe('LayerChoice', () => {
  const lanes: LaneView[] = [
    { index: 0, kbps: 2500, live: true },
    { index: 1, kbps: 1000, live: true },
    { index: 2, kbps: 375, live: true },
  ];
  test('no move while there is room; a queue moves down at once to the best layer that fits', () => {
    const log = new SendLog();
    const c = new LayerChoice(log);
    assert.equal(c.onFeedback(report(log, 0, 40, 1000, () => 0), 1000, 0, 0, lanes), undefined);
    const m = c.onFeedback(report(log, 40, 40, 1500, (k) => 50 + k * 3), 1500, 0, 0, lanes);
    assert.ok(m && m.to >= 1, JSON.stringify(m));
    assert.match(m.why, /^down: a queue of \d+ ms/);
  });

  test('heavy random loss with no queue on a wide path: the viewer keeps its layer (a smaller one would lose as much)', () => {
    const log = new SendLog();
    const c = new LayerChoice(log);
    assert.equal(c.onFeedback(report(log, 0, 40, 1000, () => 0), 1000, 0, 0, lanes), undefined);
    // 15% of the packets lost, none queued: the controller cuts by loss, from an estimate far above the top layer.
    for (let r = 0, seq = 40, t = 1100; r < 10; r++, seq += 40, t += 100) {
      const fb = report(log, seq, 40, t, () => 0);
      fb.streams[0].packets.forEach((p, k) => { if (k % 7 === 3) p.received = false; });
      assert.equal(c.onFeedback(fb, t, 0, 0, lanes), undefined, `report ${r}`);
    }
    assert.ok(c.cc.decreases > 0, 'the loss was answered by the controller');
  });

  test('up: not within the back-off, then only when the estimate fits, else a probe every LAYER_PROBE_MS', () => {
    const log = new SendLog();
    const c = new LayerChoice(log);
    c.onFeedback(report(log, 0, 40, 1000, () => 0), 1000, 0, 0, lanes);
    const down = c.onFeedback(report(log, 40, 40, 1500, (k) => 50 + k * 3), 1500, 0, 0, lanes)!;
    // Room from now on, on the lower layer: the estimate (below the top layer) does not fit it.
    let t = 2000;
    let seq = 80;
    let up;
    while (!up && t < 1500 + LAYER_PROBE_MS + 5000) {
      up = c.onFeedback(report(log, seq, 10, t, () => 0, 300), t, down.to, 1600, lanes);
      seq += 10;
      t += 100;
    }
    assert.ok(up, 'a probe comes');
    assert.ok(t - 1500 >= Math.max(LAYER_UP_BACKOFF_MS, LAYER_UP_AFTER_MS), `not before the back-off (${t - 1500} ms)`);
    assert.ok(t - 1500 >= LAYER_PROBE_MS, `a probe waits LAYER_PROBE_MS (${t - 1500} ms)`);
    assert.match(up.why, /^up to try/);
  });

  test('a lane the sharer stopped: its viewers go to the best one still running', () => {
    const c = new LayerChoice(new SendLog());
    const stopped = lanes.map((l) => (l.index === 0 ? { ...l, live: false } : l));
    assert.deepEqual(c.laneStopped(0, stopped), { to: 1, why: 'its layer stopped at the sharer' });
    const onlyLowest = lanes.map((l) => ({ ...l, live: l.index === 2 }));
    assert.equal(c.laneStopped(1, onlyLowest)?.to, 2);
    assert.equal(c.laneStopped(2, lanes.map((l) => ({ ...l, live: false }))), undefined, 'nothing runs: nowhere to go');
  });
});

describe('UplinkLayers: the sharer fits its layers to its uplink', () => {
  test('pauses upper layers at once, re-targets so all fit, and resumes after lasting room', () => {
    const u = new UplinkLayers(2500, [1, 0.4, 0.15]);
    assert.deepEqual(u.decide(3875 / CC_MEDIA_SHARE, 0), {}, 'all fit at the maximum: nothing to do');
    const narrow = u.decide(1100, 1000);
    assert.equal(narrow.firstActive, 2, 'only the quarter-size layer fits 1100 kbit/s × CC_MEDIA_SHARE at once');
    assert.ok(narrow.retarget! < 2500 && narrow.retarget! * 1.55 <= 1100 * CC_MEDIA_SHARE, `re-target ${narrow.retarget} so all fit`);
    assert.equal(u.retargeted(narrow.retarget!, 1100, 1000), 0, 'after the re-target every layer fits again');
    // The path widens: the encoder goes up only after RETARGET_UP_AFTER_MS.
    assert.equal(u.decide(5000, 2000).retarget, undefined);
    assert.equal(u.decide(5000, 2000 + RETARGET_UP_AFTER_MS).retarget, 2500, 'never above --bitrate');
  });

  test(`a re-target's layers are not paused by the next, slightly lower estimate: only above ${LAYER_PAUSE_SHARE} of it`, () => {
    // A step down: the estimate falls to what the path delivered, the encoder is cut so all three
    // fit, and the next report, the queue still draining, reads the path a little lower.
    const u = new UplinkLayers(6000, [1, 0.4, 0.15]);
    const cut = u.decide(860, 0);
    assert.equal(u.retargeted(cut.retarget!, 860, 0), 0, 'all three fit after the re-target');
    const sending = cut.retarget! * 1.55;
    assert.ok(sending > 770 * CC_MEDIA_SHARE && sending <= 770 * LAYER_PAUSE_SHARE, `${sending} kbit/s: between the two shares of 770`);
    assert.equal(u.decide(770, 300).firstActive, undefined, 'the top layer stays: its viewers are not moved for a few %');
    assert.equal(u.decide(sending / LAYER_PAUSE_SHARE - 20, 600).firstActive, 1, 'past what the path carries: paused at once');
  });

  test("the sound's share comes off the estimate first: the picture is fitted to what is left", () => {
    const layers = [1, 0.4, 0.15];
    const pathMax = (2500 * 1.55) / CC_MEDIA_SHARE;
    assert.deepEqual(new UplinkLayers(2500, layers).decide(pathMax, 0), {}, 'without sound every layer fits the maximum');
    const withSound = new UplinkLayers(2500, layers, 1000);
    assert.deepEqual(withSound.decide(pathMax + 1000, 0), {}, "share's ceiling counts the sound: still nothing to do");
    const step = withSound.decide(pathMax, 0);
    assert.ok(step.retarget! < 2500 && step.retarget! * 1.55 <= (pathMax - 1000) * CC_MEDIA_SHARE, `re-target ${step.retarget} leaves the sound its 1000 kbit/s`);
  });

  test('after a dip, an estimate back at the path\'s maximum brings the encoder back to --bitrate exactly', () => {
    const u = new UplinkLayers(2500, [1]);
    const pathMax = 2500 / CC_MEDIA_SHARE; // what share gives the controller as its ceiling (one layer, no FEC)
    const dip = u.decide(2500, 0).retarget!;
    u.retargeted(dip, 2500, 0);
    assert.ok(dip < 2500);
    assert.equal(u.decide(pathMax, 1000).retarget, undefined, 'up only after lasting room');
    assert.equal(u.decide(pathMax, 1000 + RETARGET_UP_AFTER_MS).retarget, 2500);
  });
});

describe('PUBLISH names the layers', () => {
  test('round trip, with and without a salt; an older PUBLISH has none', () => {
    for (const salt of [undefined, Buffer.alloc(16, 7)]) {
      const app = controlApp({ kind: ControlType.Publish, stream: 'main', salt, layers: [0xdeadbeef, 5] }, 1);
      const back = parseControl(parseRtcp(serializeRtcp([app]))[0] as never);
      assert.deepEqual(back, { kind: ControlType.Publish, stream: 'main', salt, layers: [0xdeadbeef, 5] });
    }
    const old = parseControl(parseRtcp(serializeRtcp([controlApp({ kind: ControlType.Publish, stream: 'main' }, 1)]))[0] as never);
    assert.deepEqual(old, { kind: ControlType.Publish, stream: 'main', salt: undefined });
  });
});

describe('a layer the sharer paused', () => {
  test('its viewer moves to the next keyframe of the layer below at once, not after LANE_SILENT_MS', () => {
    const relay = setup();
    const got: number[] = [];
    let n = 0;
    // Both layers for a second, then the top one stops (the sharer's uplink narrowed) and the low one goes on.
    for (; n < 30; n++) for (const ssrc of [TOP, LOW]) got.push(...mediaToViewer(relay.onDatagram(frame(ssrc, n, n === 0), sharer, n * 33)));
    assert.ok(got.every((s) => s === TOP));
    const pausedAt = n * 33;
    for (; n < 40; n++) relay.onDatagram(frame(LOW, n, false), sharer, n * 33);
    // The sharer's new encoder run: a keyframe of the low layer, LANE_PAUSED_MS after the top one stopped.
    assert.ok(n * 33 - pausedAt >= LANE_PAUSED_MS && n * 33 - pausedAt < LANE_SILENT_MS);
    const after = mediaToViewer(relay.onDatagram(frame(LOW, n, true), sharer, n * 33));
    assert.deepEqual(after, [LOW], 'the keyframe itself goes to the viewer');
    assert.equal(relay.counters.layerMoves, 1);
  });

  test('at the start, a lower layer\'s keyframe before the top one\'s moves nobody', () => {
    const relay = setup();
    relay.onDatagram(frame(LOW, 0, true), sharer, 500);
    assert.deepEqual(mediaToViewer(relay.onDatagram(frame(TOP, 0, true), sharer, 501)), [TOP]);
    assert.equal(relay.counters.layerMoves, 0);
  });
});
