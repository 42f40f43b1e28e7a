/**
 * The viewer's media pipeline (src/player/pipeline.ts) driven by (datagram, now) alone: no socket,
 * no timer, no sleeping. A test sharer makes real datagrams with the H.264 packetizer and
 * RtpSender (FEC with FecEncoder, encryption with MediaProtector), and plays the relay by hand:
 * it drops, reorders and re-sends. The last part drives ViewerCore the same way, for what it adds
 * on top of the pipeline: PLI with its rate limit, NACK datagrams, the picture size.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MediaPipeline, STALE_PUBLISHER_MS, type CompletedFrame, type PipelineOutput } from '../src/player/pipeline.ts';
import { PLI_MIN_INTERVAL_MS } from '../src/player/feedback.ts';
import { ViewerCore } from '../src/player/viewer.ts';
import { H264Packetizer } from '../src/codecs/h264/packetize.ts';
import { joinAnnexB } from '../src/codecs/h264/annexb.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { FecEncoder } from '../src/transport/fec.ts';
import { MediaProtector, streamKeys } from '../src/transport/secure.ts';
import { parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import { rtpSequence, serializeRtpToBuffer } from '../src/rtp/packet.ts';
import { LATENCY_BUDGET_INITIAL_MS, PT_H264, PT_JPEG } from '../src/defaults.ts';
import { codec } from '../src/codecs/registry.ts';
import { jpeg as seedJpeg } from './helpers/fuzz-seeds.ts';

/** Jitter-buffer timing for the pipeline tests: budget 100 ms, NACK every 20 ms, answers ≥ 10 ms after. */
const TIMING = { latencyMs: 100, retryMs: 20, answerMs: 10 };
/** 90 kHz ticks per frame at 30 fps. */
const FRAME_TICKS = 3000;
/** Small payloads so one frame is several FU-A packets. */
const PAYLOAD_LIMIT = 100;
const MASTER = { master: Buffer.alloc(32, 0x42) };
const SALT = Buffer.alloc(16, 0x07);

/** H.264 §7.3.2.1.1, Baseline profile: an SPS for a width × height picture, written bit by bit. */
function sps(width: number, height: number): Buffer {
  let bits = '';
  const u = (n: number, v: number) => (bits += v.toString(2).padStart(n, '0'));
  const ue = (v: number) => {
    const b = (v + 1).toString(2);
    bits += '0'.repeat(b.length - 1) + b;
  };
  u(8, 66); // profile_idc: Baseline
  u(8, 0xc0); // constraint flags
  u(8, 30); // level_idc
  ue(0); // seq_parameter_set_id
  ue(0); // log2_max_frame_num_minus4
  ue(2); // pic_order_cnt_type
  ue(1); // max_num_ref_frames
  u(1, 0); // gaps_in_frame_num_value_allowed_flag
  ue(width / 16 - 1); // pic_width_in_mbs_minus1
  ue(height / 16 - 1); // pic_height_in_map_units_minus1
  u(1, 1); // frame_mbs_only_flag
  u(1, 1); // direct_8x8_inference_flag
  u(1, 0); // frame_cropping_flag
  u(1, 0); // vui_parameters_present_flag
  bits += '1'; // rbsp_stop_one_bit
  bits = bits.padEnd(Math.ceil(bits.length / 8) * 8, '0');
  const body = Buffer.from(bits.match(/.{8}/g)!.map((b) => parseInt(b, 2)));
  return Buffer.concat([Buffer.from([0x67]), body]);
}

const PPS = Buffer.from([0x68, 0xce, 0x38, 0x80]);

interface SentFrame {
  /** One buffer per RTP packet, as a socket would deliver it. */
  datagrams: Buffer[];
  /** What the viewer must hand out: the access unit in Annex B. */
  data: Buffer;
  keyframe: boolean;
}

/** A sharer: access units through the real H.264 packetizer and RtpSender. */
class Sharer {
  readonly sender: RtpSender;
  private readonly packetizer = new H264Packetizer({ payloadLimit: PAYLOAD_LIMIT });
  private timestamp = 0;
  private n = 0;

  constructor(ssrc = 0x5eed0001, firstSeq = 1000, private readonly size = { width: 320, height: 240 }) {
    this.sender = new RtpSender({ payloadType: PT_H264, ssrc, initialSequence: firstSeq });
  }

  get ssrc(): number {
    return this.sender.ssrc;
  }

  /** One access unit: SPS + PPS + IDR, or a P slice; `bytes` of slice data make it 3+ packets. */
  frame(keyframe: boolean, bytes = 250): SentFrame {
    this.n++;
    // first_mb_in_slice = 0 (ue '1'), then bytes that tell the frames apart.
    const slice = Buffer.alloc(bytes, this.n & 0xff);
    slice[0] = keyframe ? 0x65 : 0x41; // NRI 3 / 2; type 5 (IDR) or 1 (non-IDR slice)
    slice[1] = 0x88;
    const nalus = keyframe ? [sps(this.size.width, this.size.height), PPS, slice] : [slice];
    const datagrams = this.sender.frame(this.packetizer.packetize(nalus), this.timestamp).map((d) => Buffer.concat(d));
    this.timestamp += FRAME_TICKS;
    return { datagrams, data: joinAnnexB(nalus), keyframe };
  }
}

function pipeline(opts: { encrypt?: typeof MASTER } = {}): MediaPipeline {
  return new MediaPipeline({ timing: TIMING, ...opts });
}

/** Everything a run of outputs carried, merged. */
interface Run {
  frames: CompletedFrame[];
  nack: number[];
  keyframeNeeded: number;
}

function collect(outs: PipelineOutput[], into: Run = { frames: [], nack: [], keyframeNeeded: 0 }): Run {
  for (const o of outs) {
    into.frames.push(...o.frames);
    into.nack.push(...o.nack);
    if (o.keyframeNeeded) into.keyframeNeeded++;
  }
  return into;
}

/** Feeds datagrams 1 ms apart from `t`; returns the merged output and the next free time. */
function feed(p: MediaPipeline, datagrams: Buffer[], t: number, run?: Run): { run: Run; t: number } {
  const outs = datagrams.map((d) => p.push(d, t++));
  return { run: collect(outs, run), t };
}

const datas = (frames: { data: Buffer }[]) => frames.map((f) => f.data);

/** A sharer's two layers (640x480, 320x240), both named in one SR compound (the same arrival time), and a pipeline that has their SRs. */
function twoLayers() {
  const top = new Sharer(0xaaaa0001, 100, { width: 640, height: 480 });
  const low = new Sharer(0xaaaa0002, 7000, { width: 320, height: 240 });
  const p = pipeline();
  const sr = (ssrc: number) => ({ ssrc, ntpSec: 0xe0000000, ntpFrac: 0, rtpTimestamp: 0 });
  p.onSenderReport(sr(top.ssrc), 0);
  p.onSenderReport(sr(low.ssrc), 0);
  return { top, low, p };
}

describe('viewer pipeline: (datagram, now) → clean frames', () => {
  test('in order: every frame whole, in order, once; the first datagram names the publisher', () => {
    const s = new Sharer();
    const p = pipeline();
    const sent = [s.frame(true), s.frame(false), s.frame(false)];
    assert.ok(sent.every((f) => f.datagrams.length >= 3), 'each frame is several packets');
    const first = p.push(sent[0].datagrams[0], 0);
    assert.deepEqual(first.publisher, { ssrc: s.ssrc, codec: 'h264', restart: false, layer: false });
    assert.equal(first.live, true);
    const { run } = feed(p, [...sent[0].datagrams.slice(1), ...sent[1].datagrams, ...sent[2].datagrams], 1, collect([first]));
    assert.deepEqual(datas(run.frames), datas(sent));
    assert.deepEqual(run.frames.map((f) => [f.keyframe, f.codec]), [[true, 'h264'], [false, 'h264'], [false, 'h264']]);
    assert.deepEqual(run.nack, []);
    assert.equal(run.keyframeNeeded, 0);
    const c = p.counters;
    assert.equal(c.framesComplete, 3);
    assert.equal(c.lostOnWire + c.malformed + c.framesDropped + c.framesSkipped, 0);
    assert.equal(p.packetsExpected, sent.flatMap((f) => f.datagrams).length);
    assert.equal(p.publisherSsrc, s.ssrc);
  });

  test('reordered within the jitter window: held, NACKed at once, released in order when the late one lands', () => {
    const s = new Sharer();
    const p = pipeline();
    const key = s.frame(true);
    const [a, b, c, ...rest] = s.frame(false, 300).datagrams;
    let { run, t } = feed(p, key.datagrams, 0);
    assert.equal(run.frames.length, 1);
    const held = feed(p, [a, c, ...rest], t);
    assert.deepEqual(held.run.frames, [], 'the frame waits for its middle packet');
    assert.deepEqual(held.run.nack, [rtpSequence(b)], 'asked for at once');
    // The original arrives 2 ms later, sooner than any answer could (answerMs 10): reordered, not repaired.
    const late = p.push(b, held.t + 1);
    assert.equal(late.frames.length, 1);
    assert.equal(late.frames[0].keyframe, false);
    assert.equal(late.keyframeNeeded, false);
    const k = p.counters;
    assert.deepEqual([k.lostOnWire, k.reordered, k.recoveredByRtx, k.unrepaired, k.framesSkipped], [1, 1, 0, 0, 0]);
    assert.equal(p.repairPending, 0);
  });

  test('a loss repaired by retransmission: NACKed, asked again every retryMs, the re-sent copy completes the frame', () => {
    const s = new Sharer();
    const p = pipeline();
    feed(p, s.frame(true).datagrams, 0);
    const pf = s.frame(false);
    const [a, b, ...rest] = pf.datagrams;
    const lostSeq = rtpSequence(b);
    p.push(a, 10);
    const nackAt = 11; // the gap shows when the packet after it arrives
    const first = feed(p, rest, nackAt);
    assert.deepEqual(first.run.nack, [lostSeq]);
    assert.deepEqual(p.poll(nackAt + TIMING.retryMs - 1).nack, [], 'not again before retryMs');
    assert.deepEqual(p.poll(nackAt + TIMING.retryMs).nack, [lostSeq], 'again after retryMs');
    const resent = p.push(b, nackAt + TIMING.retryMs + 15);
    assert.deepEqual(datas(resent.frames), [pf.data]);
    assert.equal(resent.keyframeNeeded, false);
    assert.equal(p.counters.recoveredByRtx, 1);
    assert.equal(p.counters.reordered, 0);
    assert.deepEqual(p.poll(500).nack, [], 'nothing left to ask for');
  });

  test('a loss given up after the budget: later frames held back until the next keyframe, which is asked for', () => {
    const s = new Sharer();
    const p = pipeline();
    feed(p, s.frame(true).datagrams, 0);
    const broken = s.frame(false);
    const lostSeq = rtpSequence(broken.datagrams[1]);
    const lostAt = 11; // found missing when the packet after it arrives
    const run = feed(p, [broken.datagrams[0], ...broken.datagrams.slice(2)], lostAt - 1).run;
    let t = 20;
    for (let i = 0; i < 2; i++, t += 20) feed(p, s.frame(false).datagrams, t, run); // behind the gap
    for (let now = t; now < lostAt + TIMING.latencyMs; now += 5) collect([p.poll(now)], run);
    assert.deepEqual(run.frames, [], 'nothing passes the open gap');
    assert.equal(run.keyframeNeeded, 0, 'not yet given up');
    assert.ok(run.nack.filter((s) => s === lostSeq).length >= 4, 'asked for again and again within the budget');
    // The budget runs out: the broken frame is dropped and the two behind it are skipped (they refer to it).
    const gaveUp = p.poll(lostAt + TIMING.latencyMs);
    assert.equal(gaveUp.keyframeNeeded, true);
    assert.deepEqual(gaveUp.frames, []);
    assert.deepEqual(p.poll(lostAt + TIMING.latencyMs + 100).nack, [], 'no NACK for a packet given up');
    let c = p.counters;
    assert.deepEqual([c.unrepaired, c.framesGivenUp, c.framesDropped, c.framesSkipped], [1, 1, 1, 2]);
    // More P frames: still skipped, and each says again that a keyframe is needed (the viewer rate-limits the asking).
    t = lostAt + TIMING.latencyMs + 10;
    const more = feed(p, s.frame(false).datagrams, t);
    assert.deepEqual(more.run.frames, []);
    const key = s.frame(true);
    const after = feed(p, [...key.datagrams, ...s.frame(false).datagrams], more.t);
    assert.deepEqual(after.run.frames.map((f) => f.keyframe), [true, false], 'the keyframe, and what follows it');
    assert.deepEqual(after.run.frames[0].data, key.data);
    c = p.counters;
    assert.equal(c.framesSkipped, 3);
    assert.equal(c.lostOnWire, c.recoveredByRtx + c.recoveredByFec + c.reordered + c.unrepaired + p.repairPending);
  });

  test('MJPEG: a picture given up is dropped alone; the next picture shows, no keyframe is asked for', () => {
    // Every JPEG stands alone (Codec.everyFrameKey): a loss costs one picture, not a GOP.
    const sender = new RtpSender({ payloadType: PT_JPEG, ssrc: 0x5eed0002, initialSequence: 500 });
    const packetizer = codec('mjpeg').packetizer({ payloadLimit: 200 }); // the first packet carries 128 bytes of tables
    const picture = (i: number) => sender.frame(packetizer.packetize([seedJpeg({ width: 64, height: 48, type: 1, intervalBytes: 600 })]), i * FRAME_TICKS).map((d) => Buffer.concat(d));
    const p = pipeline();
    assert.equal(feed(p, picture(0), 0).run.frames.length, 1);
    const broken = picture(1);
    assert.ok(broken.length >= 3, 'a picture of several packets');
    const run = feed(p, [broken[0], ...broken.slice(2)], 10).run;
    feed(p, picture(2), 20, run);
    assert.equal(run.frames.length, 0, 'held behind the gap while it may be repaired');
    const gaveUp = p.poll(11 + TIMING.latencyMs);
    collect([gaveUp], run);
    assert.equal(run.keyframeNeeded, 0, 'no keyframe is needed');
    assert.equal(run.frames.length, 1, 'the picture after the lost one is handed out at once');
    assert.ok(run.frames.every((f) => f.codec === 'mjpeg' && f.keyframe));
    const c = p.counters;
    assert.deepEqual([c.unrepaired, c.framesDropped, c.framesSkipped], [1, 1, 0]);
    assert.equal(feed(p, picture(3), 200).run.frames.length, 1, 'and the ones after it');
  });

  test('FEC: a lost packet is rebuilt from parity before any NACK is answered', () => {
    const s = new Sharer();
    const enc = new FecEncoder({ mediaSsrc: s.ssrc, groupSize: 4, initialSequence: 0 });
    const frames = [s.frame(true), s.frame(false), s.frame(false), s.frame(false)];
    const wire = frames.flatMap((f) => f.datagrams).flatMap((d) => [d, ...enc.push(d)]);
    wire.push(...enc.flush());
    const media = frames.flatMap((f) => f.datagrams);
    assert.ok(wire.length > media.length, 'parity packets go out');
    // Lose a packet of the third group (the viewer keeps media from the first parity packet on).
    const lost = media[9];
    const p = pipeline();
    const { run } = feed(p, wire.filter((d) => d !== lost), 0);
    assert.deepEqual(datas(run.frames), datas(frames));
    assert.equal(run.keyframeNeeded, 0);
    const c = p.counters;
    assert.deepEqual([c.lostOnWire, c.recoveredByFec, c.recoveredByRtx, c.unrepaired], [1, 1, 0, 0]);
    // The original showing up late is a duplicate, not a second frame.
    assert.deepEqual(p.push(lost, 100).frames, []);
    assert.equal(p.receiveTotals.duplicates, 1);
  });

  test('encrypted: decrypted once the salt is known; a forged packet is counted and dropped', () => {
    const s = new Sharer();
    const protector = new MediaProtector(streamKeys(MASTER, SALT).media);
    const protect = (d: Buffer) => Buffer.concat(protector.protect(d));
    const sent = [s.frame(true), s.frame(false)];
    const wire = sent.flatMap((f) => f.datagrams).map(protect);
    const p = pipeline({ encrypt: MASTER });
    // Before the relay's ACK brings the salt, nothing can be decrypted.
    assert.deepEqual(p.push(wire[0], 0).frames, []);
    assert.equal(p.counters.undecryptable, 1);
    assert.equal(p.publisherSsrc, undefined, 'an undecryptable packet names no publisher');
    p.setSalt(SALT);
    const forged = Buffer.from(wire[2]);
    forged[forged.length - 20] ^= 0x01; // the ciphertext, under the tag
    let run = feed(p, [wire[0], wire[1], forged], 1).run;
    assert.equal(p.counters.undecryptable, 2);
    run = feed(p, wire.slice(2), 10, run).run;
    assert.deepEqual(datas(run.frames), datas(sent));
    assert.equal(p.fatal, undefined);
    // A plain packet where encryption was asked for: the settings disagree, watching cannot go on.
    p.push(s.frame(false).datagrams[0], 20);
    assert.match(p.fatal ?? '', /the stream is not encrypted/);
    // And an encrypted stream to a viewer without --encrypt.
    const clear = pipeline();
    assert.deepEqual(clear.push(wire[0], 0).frames, []);
    assert.match(clear.fatal ?? '', /the stream is encrypted: watch with --encrypt/);
  });

  test('publisher restart: a new SSRC starts over from its keyframe; stragglers of the old one are foreign', () => {
    const a = new Sharer(0xaaaa0001, 100);
    const b = new Sharer(0xbbbb0002, 40000);
    const p = pipeline();
    let { run, t } = feed(p, [...a.frame(true).datagrams, ...a.frame(false).datagrams], 0);
    assert.equal(run.frames.length, 2);
    const straggler = a.frame(false).datagrams[0];
    const bKey = b.frame(true);
    const switched = p.push(bKey.datagrams[0], t);
    assert.deepEqual(switched.publisher, { ssrc: b.ssrc, codec: 'h264', restart: true, layer: false });
    ({ run, t } = feed(p, [...bKey.datagrams.slice(1)], t + 1));
    // A packet of the old sharer, reordered behind the new one's: no switch back.
    const old = p.push(straggler, t);
    assert.equal(old.publisher, undefined);
    assert.equal(old.live, false);
    assert.equal(p.counters.foreign, 1);
    assert.equal(p.publisherSsrc, b.ssrc);
    const bp = b.frame(false);
    ({ run } = feed(p, bp.datagrams, t + 1, run));
    assert.deepEqual(datas(run.frames), [bKey.data, bp.data], 'B goes on undisturbed');
    assert.equal(p.counters.framesComplete, 4, 'counts go on across the restart');
    // The old sharer, back for real long after: followed again.
    const back = p.push(a.frame(true).datagrams[0], t + STALE_PUBLISHER_MS + 10);
    assert.deepEqual(back.publisher, { ssrc: a.ssrc, codec: 'h264', restart: true, layer: false });
  });

  test('a layer move: an SSRC whose SR came in the sharer\'s compound with ours is another layer, not a restart', () => {
    const { top, low, p } = twoLayers();
    let { run, t } = feed(p, [...top.frame(true).datagrams, ...top.frame(false).datagrams], 1);
    assert.equal(run.frames.length, 2);
    low.frame(true);
    low.frame(false); // the low layer's pictures the viewer was not sent
    const lowKey = low.frame(true);
    const moved = p.push(lowKey.datagrams[0], t);
    assert.deepEqual(moved.publisher, { ssrc: low.ssrc, codec: 'h264', restart: false, layer: true });
    ({ run, t } = feed(p, lowKey.datagrams.slice(1), t + 1));
    assert.deepEqual(datas(run.frames), [lowKey.data], 'from the keyframe on');
    // A straggler of the layer left (a P-frame sent before the move) is not followed back...
    const straggler = top.frame(false).datagrams[0];
    assert.equal(p.push(straggler, t + 1).publisher, undefined);
    assert.equal(p.counters.foreign, 1);
    // ...but a move back, which starts with that layer's keyframe, is, at once.
    const topKey = top.frame(true);
    const back = p.push(topKey.datagrams[0], t + 2);
    assert.deepEqual(back.publisher, { ssrc: top.ssrc, codec: 'h264', restart: false, layer: true });
  });

  test("a layer move whose keyframe lost its SPS/PPS: that IDR is not decoded with the old layer's, and a keyframe is asked for", () => {
    // What a decoder makes of a 320x240 IDR read with a 640x480 SPS is garbage ("top block
    // unavailable"): it waits for a keyframe that carries its own, asking while it waits.
    const { top, low, p } = twoLayers();
    let { run, t } = feed(p, top.frame(true).datagrams, 1);
    assert.equal(run.frames.length, 1);
    const lowKey = low.frame(true);
    assert.equal(lowKey.datagrams[0][12] & 0x1f, 24, 'SPS and PPS travel together in a STAP-A first');
    ({ run, t } = feed(p, [...lowKey.datagrams.slice(1), ...low.frame(false).datagrams], t)); // the STAP-A lost
    assert.deepEqual(run.frames, [], 'neither the IDR alone nor what refers to it');
    assert.ok(run.keyframeNeeded >= 2, 'asked for, and asked again while waiting');
    assert.equal(p.counters.framesSkipped, 2);
    const next = low.frame(true);
    ({ run } = feed(p, next.datagrams, t));
    assert.deepEqual(datas(run.frames), [next.data]);
  });

  test('malformed datagrams are counted and dropped without throwing; the same pipeline goes on', () => {
    const s = new Sharer();
    const p = pipeline();
    const good = s.frame(true);
    const header = good.datagrams[0].subarray(0, 12);
    const bad: [string, Buffer][] = [
      ['empty', Buffer.alloc(0)],
      ['3 bytes', Buffer.from([0x80, 0x60, 0x00])],
      ['RTP version 1', Buffer.concat([Buffer.from([0x40]), header.subarray(1), Buffer.from([1, 2, 3])])],
      ['15 CSRCs in a 20-byte packet', Buffer.concat([Buffer.from([0x8f]), header.subarray(1), Buffer.alloc(8)])],
      ['extension longer than the packet', Buffer.concat([Buffer.from([0x90]), header.subarray(1), Buffer.from([0xbe, 0xde, 0x00, 0x09])])],
      ['padding bit with pad count 0', Buffer.concat([Buffer.from([0xa0]), header.subarray(1), Buffer.from([0x41, 0x88, 0x00])])],
      ['payload type no codec has', serializeRtpToBuffer({ padding: 0, marker: true, payloadType: 50, sequenceNumber: 1, timestamp: 0, ssrc: s.ssrc, csrc: [], payload: Buffer.from([1]) })],
      ['RTCP', serializeRtcp([{ type: 'rr', ssrc: 1, reports: [] }])],
    ];
    for (const [what, d] of bad) {
      const copy = Buffer.from(d);
      const out = p.push(d, 0);
      assert.deepEqual(out.frames, [], what);
      assert.deepEqual(d, copy, `${what}: input not mutated`);
    }
    assert.equal(p.counters.malformed, bad.length);
    assert.equal(p.publisherSsrc, undefined, 'none of it names a publisher');
    const { run } = feed(p, good.datagrams, 1);
    assert.deepEqual(datas(run.frames), [good.data]);
  });

  test('random bytes and damaged datagrams never throw; a fresh sharer is still decoded after them', () => {
    const base = new Sharer(0x0bad0001, 7).frame(true).datagrams;
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(
            fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u)),
            fc.tuple(fc.nat(base.length - 1), fc.nat(), fc.integer({ min: 1, max: 255 })).map(([i, pos, x]) => {
              const d = Buffer.from(base[i]);
              d[pos % d.length] ^= x;
              return d;
            }),
          ),
          { maxLength: 30 },
        ),
        (bufs) => {
          const p = pipeline();
          bufs.forEach((b, i) => p.push(b, i));
          p.poll(1000);
          const s = new Sharer(0x600d0001, 500);
          const sent = s.frame(true);
          const { run } = feed(p, sent.datagrams, 1000 + STALE_PUBLISHER_MS);
          assert.deepEqual(datas(run.frames), [sent.data]);
        },
      ),
      { numRuns: 200 },
    );
  });
});

/** The PLIs and the NACKed sequence numbers in datagrams the viewer sends. */
function feedbackIn(sent: Buffer[]): { plis: number[]; nacks: number[] } {
  const packets = sent.flatMap((b) => parseRtcp(b));
  return {
    plis: packets.flatMap((p) => (p.type === 'pli' ? [p.mediaSsrc] : [])),
    nacks: packets.flatMap((p) => (p.type === 'nack' ? p.lost : [])),
  };
}

describe('ViewerCore on top of the pipeline', () => {
  /** Feeds datagrams to a viewer 1 ms apart; returns what it sent and handed out. */
  function drive(v: ViewerCore, datagrams: Buffer[], t: number): { send: Buffer[]; frames: CompletedFrame[] } {
    const send: Buffer[] = [];
    const frames: CompletedFrame[] = [];
    for (const d of datagrams) {
      const out = v.onDatagram(d, t++);
      send.push(...out.send);
      frames.push(...out.frames);
    }
    return { send, frames };
  }

  /** A P frame with its second packet lost, and the time its gap is given up (default budget). */
  function lossAt(v: ViewerCore, s: Sharer, t: number): { send: Buffer[]; lostSeq: number; givenUpAt: number } {
    const f = s.frame(false).datagrams;
    const { send } = drive(v, [f[0], ...f.slice(2)], t);
    return { send, lostSeq: rtpSequence(f[1]), givenUpAt: t + 1 + LATENCY_BUDGET_INITIAL_MS };
  }

  test('a loss given up sends one PLI; more losses within PLI_MIN_INTERVAL_MS send none; the player shares the limit', () => {
    const s = new Sharer();
    const v = new ViewerCore('main');
    assert.equal(v.requestKeyframe(0), undefined, 'no sharer to ask yet');
    drive(v, s.frame(true).datagrams, 0);
    const first = lossAt(v, s, 10);
    assert.deepEqual(feedbackIn(first.send).nacks, [first.lostSeq], 'NACK for the missing packet');
    const nackPkt = parseRtcp(first.send[0]).find((p) => p.type === 'nack');
    assert.equal(nackPkt?.type === 'nack' && nackPkt.mediaSsrc, s.ssrc);
    const gaveUp = v.poll(first.givenUpAt);
    assert.deepEqual(feedbackIn(gaveUp.send).plis, [s.ssrc], 'PLI once the gap is given up');
    assert.equal(v.counters.keyframeRequests, 1);
    // Another loss, given up 150 ms later: within the interval, so no second PLI.
    const second = lossAt(v, s, first.givenUpAt + 10);
    const again = v.poll(second.givenUpAt);
    assert.ok(second.givenUpAt - first.givenUpAt < PLI_MIN_INTERVAL_MS);
    assert.deepEqual(feedbackIn(again.send).plis, []);
    assert.equal(v.requestKeyframe(second.givenUpAt), undefined, 'the player restarting asks through the same limit');
    // Past the interval: asked again.
    const pli = v.requestKeyframe(first.givenUpAt + PLI_MIN_INTERVAL_MS);
    assert.ok(pli);
    assert.deepEqual(feedbackIn([pli]).plis, [s.ssrc]);
    assert.equal(v.counters.keyframeRequests, 2);
  });

  test('the picture size is read again for each sharer session', () => {
    const v = new ViewerCore('main');
    const a = new Sharer(0xaaaa0001, 100, { width: 320, height: 240 });
    drive(v, a.frame(true).datagrams, 0);
    assert.deepEqual([v.width, v.height], [320, 240]);
    const b = new Sharer(0xbbbb0002, 9000, { width: 640, height: 480 });
    const { frames } = drive(v, b.frame(true).datagrams, 10);
    assert.equal(frames.length, 1);
    assert.equal(v.counters.publisherRestarts, 1);
    assert.deepEqual([v.width, v.height], [640, 480]);
  });

  test('counters: a straggler of the old sharer is foreign; malformed RTCP and RTP both count', () => {
    const v = new ViewerCore('main');
    const a = new Sharer(0xaaaa0001, 100);
    const b = new Sharer(0xbbbb0002, 9000);
    const aKey = a.frame(true).datagrams;
    const straggler = a.frame(false).datagrams[0];
    const bKey = b.frame(true).datagrams;
    drive(v, aKey, 0);
    drive(v, bKey, 10);
    drive(v, [straggler], 20);
    assert.equal(v.counters.foreign, 1);
    assert.equal(v.counters.publisherRestarts, 1, 'no switch back and forth');
    assert.equal(v.publisherSsrc, b.ssrc);
    drive(v, [Buffer.from([0x81, 0xc9, 0x00, 0x07, 0, 0, 0, 1]), Buffer.from([0x80, 0x60])], 30); // RR claiming 32 bytes; 2-byte RTP
    assert.equal(v.counters.malformed, 2);
    assert.equal(v.counters.datagrams, aKey.length + bKey.length + 3);
  });
});
