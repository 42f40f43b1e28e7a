// The keyframe cache and a joining viewer's paced catch-up, driven by packets and a fake clock.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { CatchUp, KeyframeCache } from '../src/relay/catch-up.ts';
import { serializeRtpToBuffer, type RtpHeaderExtension } from '../src/rtp/packet.ts';
import { buildFrameInfoExtension } from '../src/transport/secure.ts';
import { CATCHUP_MAX_PACKETS, JOIN_BURST_BYTES, JOIN_PACE_BYTES_PER_MS, KEYFRAME_CACHE_BYTES } from '../src/defaults.ts';

// H.264 (payload type 96): a STAP-A with SPS/PPS starts a keyframe, a non-IDR slice does not.
const stapSps = [24, 0, 2, 0x67, 0x42, 0, 1, 0x68];
const pSlice = [0x41, 9, 9, 9];
let seq = 0;
const h264 = (ts: number, payload: number[], extension?: RtpHeaderExtension) =>
  serializeRtpToBuffer({ padding: 0, marker: false, payloadType: 96, sequenceNumber: seq++, timestamp: ts, ssrc: 0x1234, csrc: [], extension, payload: Buffer.from(payload) });
const sr = Buffer.from('an SR compound');
const bytes = (n: number) => h264(0, [...pSlice, ...new Array(n - 16).fill(0)]);

describe('relay keyframe cache', () => {
  test('nothing to catch up on before the first keyframe', () => {
    const c = new KeyframeCache();
    c.add(h264(0, pSlice));
    c.sr(sr);
    assert.equal(c.catchUp(0), undefined);
  });

  test('the SR first, then every packet from the latest keyframe on', () => {
    const c = new KeyframeCache();
    c.add(h264(0, pSlice));
    const old = h264(3000, stapSps);
    c.add(old);
    const key = h264(6000, stapSps);
    const rest = [h264(6000, pSlice), h264(9000, pSlice)];
    for (const p of [key, ...rest]) c.add(p);
    assert.deepEqual(c.catchUp(0)!.due(0), [key, ...rest], 'no SR yet: the packets alone');
    c.sr(sr);
    assert.deepEqual(c.catchUp(0)!.due(0), [sr, key, ...rest]);
  });

  test('only a frame\'s first packet can start a keyframe', () => {
    const c = new KeyframeCache();
    const key = h264(3000, stapSps);
    c.add(key);
    const sameFrame = h264(3000, stapSps);
    c.add(sameFrame);
    assert.deepEqual(c.catchUp(0)!.due(0), [key, sameFrame]);
  });

  test('frame info (encrypted streams) decides over the payload', () => {
    const c = new KeyframeCache();
    const key = h264(3000, pSlice, buildFrameInfoExtension({ keyframeStart: true, frameStart: true }));
    c.add(key);
    c.add(h264(6000, stapSps, buildFrameInfoExtension({ keyframeStart: false, frameStart: true })));
    assert.equal(c.catchUp(0)!.due(0)[0], key, 'the marked packet started it, the unmarked SPS did not restart it');
  });

  test(`a keyframe run over ${KEYFRAME_CACHE_BYTES} bytes is dropped until the next keyframe`, () => {
    const c = new KeyframeCache();
    c.add(h264(0, stapSps));
    for (let n = 0; n <= KEYFRAME_CACHE_BYTES / 1400; n++) c.add(bytes(1400));
    assert.equal(c.catchUp(0), undefined);
    c.add(h264(1, pSlice));
    assert.equal(c.catchUp(0), undefined);
    c.add(h264(2, stapSps));
    assert.ok(c.catchUp(0));
  });

  test('clear forgets packets and SR (a new publisher session)', () => {
    const c = new KeyframeCache();
    c.sr(sr);
    c.add(h264(0, stapSps));
    c.clear();
    c.add(h264(0, stapSps)); // same timestamp as before the clear: still a new frame
    assert.equal(c.catchUp(0)!.due(0).length, 1);
  });
});

describe('relay catch-up pacing', () => {
  const queue = (n: number, size: number) => Array.from({ length: n }, () => bytes(size));

  test(`a first burst of ${JOIN_BURST_BYTES} bytes, then ${JOIN_PACE_BYTES_PER_MS} bytes a ms, whole datagrams`, () => {
    const q = queue(100, 1000);
    const c = new CatchUp([...q], 0);
    const first = c.due(0);
    assert.equal(first.length, Math.ceil(JOIN_BURST_BYTES / 1000), 'the last one overdraws the burst');
    assert.deepEqual(c.due(0), [], 'nothing more at the same instant');
    const next = c.due(4);
    const credit = JOIN_BURST_BYTES - first.length * 1000 + 4 * JOIN_PACE_BYTES_PER_MS;
    assert.equal(next.length, Math.ceil(credit / 1000));
    let now = 4;
    const got = [...first, ...next];
    while (!c.done) got.push(...c.due((now += 4)));
    assert.deepEqual(got, q, 'every packet once, in order');
    assert.ok(now >= ((100 * 1000 - JOIN_BURST_BYTES) / JOIN_PACE_BYTES_PER_MS) * 0.9, 'paced');
  });

  test('a clock stepping back sends nothing extra', () => {
    const c = new CatchUp(queue(100, 1000), 100);
    c.due(100);
    assert.deepEqual(c.due(50), []);
    assert.deepEqual(c.due(100), []);
  });

  test(`live packets queue behind; over ${CATCHUP_MAX_PACKETS} queued it must go live with the rest`, () => {
    const c = new CatchUp(queue(2, 100), 0);
    const live = bytes(100);
    assert.equal(c.queueLive(live), true);
    let ok = true;
    for (let i = 0; i < CATCHUP_MAX_PACKETS && ok; i++) ok = c.queueLive(live);
    assert.equal(ok, false);
    const rest = c.rest();
    assert.equal(rest.length, CATCHUP_MAX_PACKETS + 1);
    assert.equal(c.done, true);
  });
});
