/**
 * RFC 5109 XOR FEC (ULPFEC, §7 format, §8 protection and recovery): golden FEC packets written
 * byte by byte from §7.3 and §7.4, recovery of every single loss in row groups of 2-10 packets,
 * bursts in column mode, cascades in 2-D mode, and fast-check properties.
 */
import { Prng } from '../src/impair/core.ts';
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  FEC_MAX_GROUPS,
  FEC_MAX_MEDIA,
  FEC_SSRC_XOR,
  FecDecoder,
  FecEncoder,
  fecSsrcFor,
  groupSizeForPercent,
  parseFec,
  PT_FEC,
  type FecEncoderOptions,
} from '../src/transport/fec.ts';
import { PacketError } from '../src/util/errors.ts';
import { buildExtension, parseRtp, rtpSequence, serializeRtp, serializeRtpToBuffer, setRtpSsrc } from '../src/rtp/packet.ts';
import { seqAdd } from '../src/rtp/seq.ts';

const SSRC = 0xdeadbeef;

/** Deterministic PRNG (the impair proxy's mulberry32) so table tests vary packets without being flaky. */
function rng(seed: number): () => number {
  const p = new Prng(seed);
  return () => p.next();
}

interface MediaShape {
  payload: Buffer;
  padding: number;
  marker: boolean;
  csrc: number[];
  withExtension: boolean;
  timestamp: number;
  payloadType: number;
}

function mediaPacket(seq: number, m: MediaShape, ssrc = SSRC): Buffer {
  return serializeRtpToBuffer({
    padding: m.padding,
    marker: m.marker,
    payloadType: m.payloadType,
    sequenceNumber: seq,
    timestamp: m.timestamp,
    ssrc,
    csrc: m.csrc,
    extension: m.withExtension ? buildExtension([{ id: 1, data: Buffer.from([seq & 0xff, 0x5a]) }]) : undefined,
    payload: m.payload,
  });
}

/** A varied stream: lengths, padding, marker, CSRCs, extensions, timestamps and PT all differ. */
function stream(first: number, n: number, seed = 1): Buffer[] {
  const r = rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < n; i++) {
    const len = Math.floor(r() * 200);
    out.push(
      mediaPacket(seqAdd(first, i), {
        payload: Buffer.from(Array.from({ length: len }, () => Math.floor(r() * 256))),
        padding: r() < 0.3 ? 1 + Math.floor(r() * 8) : 0,
        marker: r() < 0.3,
        csrc: r() < 0.2 ? [Math.floor(r() * 2 ** 32)] : [],
        withExtension: r() < 0.2,
        timestamp: (0xfffff000 + Math.floor(i / 3) * 3000) >>> 0,
        payloadType: r() < 0.5 ? 96 : 26,
      }),
    );
  }
  return out;
}

/** Encodes `media` in order; returns, per media index, the FEC packets the encoder sent after it. */
function encode(opts: Omit<FecEncoderOptions, 'mediaSsrc'>, media: Buffer[]): Buffer[][] {
  const enc = new FecEncoder({ mediaSsrc: SSRC, initialSequence: 100, ...opts });
  const after = media.map((m) => enc.push(m));
  after[after.length - 1].push(...enc.flush());
  return after;
}

/** Plays the wire to a decoder: media except `lost`, each followed by its FEC. Returns what it rebuilt. */
function receive(media: Buffer[], fecAfter: Buffer[][], lost: Set<number>, dec = new FecDecoder()): Buffer[] {
  const rebuilt: Buffer[] = [];
  media.forEach((m, i) => {
    if (!lost.has(i)) rebuilt.push(...dec.pushMedia(m));
    for (const f of fecAfter[i]) rebuilt.push(...dec.pushFec(f));
  });
  return rebuilt;
}

/** Runs `fn` and counts the Buffers allocated or copied meanwhile (alloc*, from, concat). */
function allocations<T>(fn: () => T): { result: T; count: number } {
  const names = ['alloc', 'allocUnsafe', 'allocUnsafeSlow', 'from', 'concat'] as const;
  const B = Buffer as unknown as Record<string, (...args: unknown[]) => unknown>;
  const saved = names.map((n) => B[n]);
  let count = 0;
  names.forEach((n, i) => {
    B[n] = (...args: unknown[]) => {
      count++;
      return saved[i].apply(Buffer, args);
    };
  });
  try {
    const result = fn();
    return { result, count };
  } finally {
    names.forEach((n, i) => (B[n] = saved[i]));
  }
}

function bySeq(bufs: Buffer[]): Map<number, Buffer> {
  return new Map(bufs.map((b) => [rtpSequence(b), b]));
}

describe('FEC packet format (RFC 5109 §7.3, §7.4)', () => {
  // A: V=2 P=0 X=0 CC=0 M=0 PT=96 seq 0x1000 ts 0x11223344, payload 01 02 03 (3 bytes after the header)
  const a = Buffer.from([0x80, 0x60, 0x10, 0x00, 0x11, 0x22, 0x33, 0x44, 0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03]);
  // B: V=2 P=1 X=0 CC=0 M=1 PT=96 seq 0x1001 ts 0x11223350, payload f0 0f + 2 bytes of padding
  const b = Buffer.from([
    0xa0, 0xe0, 0x10, 0x01, 0x11, 0x22, 0x33, 0x50, 0xde, 0xad, 0xbe, 0xef, 0xf0, 0x0f, 0x00, 0x02,
  ]);
  const golden = Buffer.from([
    // RTP header of the FEC packet (§7.1): V=2, M=0, PT=127, its own sequence number and SSRC,
    // timestamp of the last protected packet.
    0x80, 0x7f, 0x00, 0x07, 0x11, 0x22, 0x33, 0x50,
    0x98, 0xe8, 0xfd, 0xef, // 0xdeadbeef XOR 0x46454300
    // FEC header (§7.3)
    0x20, // E=0 L=0, P recovery 0^1 = 1, X 0, CC 0
    0x80, // M recovery 0^1 = 1, PT recovery 96^96 = 0
    0x10, 0x00, // SN base: the lowest protected sequence number
    0x00, 0x00, 0x00, 0x14, // TS recovery 0x11223344 ^ 0x11223350
    0x00, 0x07, // length recovery 3 ^ 4
    // ULP level-0 header (§7.4), L=0
    0x00, 0x04, // protection length: the longest body
    0xc0, 0x00, // mask: SN base + 0 and + 1
    // level-0 data: 01^f0, 02^0f, 03^00 (A padded with zero), 00^02
    0xf1, 0x0d, 0x03, 0x02,
  ]);

  test('two packets, row of 2: every byte as the RFC lays it out', () => {
    const enc = new FecEncoder({ mediaSsrc: SSRC, groupSize: 2, initialSequence: 7 });
    assert.deepEqual(enc.push(a), []);
    const out = enc.push(b);
    assert.equal(out.length, 1);
    assert.deepEqual(out[0], golden);
    assert.equal(enc.ssrc, fecSsrcFor(SSRC));
    assert.equal(fecSsrcFor(SSRC), (SSRC ^ FEC_SSRC_XOR) >>> 0);
  });

  test('parseFec reads every field of the golden packet', () => {
    const f = parseFec(golden);
    assert.equal(f.payloadType, PT_FEC);
    assert.equal(f.sequenceNumber, 7);
    assert.equal(f.timestamp, 0x11223350);
    assert.equal(f.ssrc, 0x98e8fdef);
    assert.equal(f.longMask, false);
    assert.equal(f.pRecovery, true);
    assert.equal(f.xRecovery, false);
    assert.equal(f.ccRecovery, 0);
    assert.equal(f.mRecovery, true);
    assert.equal(f.ptRecovery, 0);
    assert.equal(f.snBase, 0x1000);
    assert.equal(f.tsRecovery, 0x14);
    assert.equal(f.lengthRecovery, 7);
    assert.equal(f.protectionLength, 4);
    assert.deepEqual(f.offsets, [0, 1]);
    assert.deepEqual([...f.data], [0xf1, 0x0d, 0x03, 0x02]);
  });

  test('pushMedia keeps the datagram as a view: no copy, its bytes counted', () => {
    const d = new FecDecoder();
    const { count } = allocations(() => assert.deepEqual(d.pushMedia(b), []));
    assert.equal(count, 0, 'no Buffer allocated or copied');
    assert.deepEqual(d.stored, { media: 1, mediaBytes: b.length, fec: 0, indexedSeqs: 0 });
    assert.deepEqual(d.pushFec(golden), [a]);
  });

  test('the golden packet rebuilds either packet byte for byte (§8.2)', () => {
    const d1 = new FecDecoder();
    assert.deepEqual(d1.pushMedia(a), []);
    assert.deepEqual(d1.pushFec(golden), [b]);
    const d2 = new FecDecoder();
    assert.deepEqual(d2.pushMedia(b), []);
    assert.deepEqual(d2.pushFec(golden), [a]);
    assert.equal(d2.counters.recovered, 1);
    assert.equal(d2.counters.fecReceived, 1);
  });

  test('L=1: a column of 3 with stride 10 needs the 48-bit mask', () => {
    const media = stream(500, 30, 3);
    const after = encode({ groupSize: 3, mode: 'column', depth: 10 }, media);
    // Column c closes with its third packet, index 20 + c.
    for (let i = 0; i < 20; i++) assert.deepEqual(after[i], []);
    const f = after[20][0];
    const body = f.subarray(12);
    assert.equal(body[0] & 0xc0, 0x40, 'E=0 L=1');
    assert.equal(body.readUInt16BE(2), 500, 'SN base');
    // protection length, then mask bits 0, 10 and 20 (MSB first) in six bytes
    assert.deepEqual([...body.subarray(12, 18)], [0x80, 0x20, 0x08, 0x00, 0x00, 0x00]);
    const p = parseFec(f);
    assert.equal(p.longMask, true);
    assert.deepEqual(p.offsets, [0, 10, 20]);
    const bodies = [0, 10, 20].map((i) => media[i].length - 12);
    assert.equal(p.protectionLength, Math.max(...bodies));
    assert.equal(p.lengthRecovery, bodies[0] ^ bodies[1] ^ bodies[2]);
    assert.equal(f.length, 12 + 10 + 8 + p.protectionLength);
  });

  test('header and payload chunks give the same FEC packet as one buffer', () => {
    const pkt = {
      padding: 3,
      marker: true,
      payloadType: 96,
      sequenceNumber: 9,
      timestamp: 1234,
      ssrc: SSRC,
      csrc: [],
      payload: [Buffer.from([1, 2, 3]), Buffer.from([4, 5])],
    };
    const other = mediaPacket(10, {
      payload: Buffer.from([9, 9, 9, 9, 9, 9, 9, 9]),
      padding: 0,
      marker: false,
      csrc: [],
      withExtension: false,
      timestamp: 1234,
      payloadType: 96,
    });
    const e1 = new FecEncoder({ mediaSsrc: SSRC, groupSize: 2, initialSequence: 1 });
    const e2 = new FecEncoder({ mediaSsrc: SSRC, groupSize: 2, initialSequence: 1 });
    const e3 = new FecEncoder({ mediaSsrc: SSRC, groupSize: 2, initialSequence: 1 });
    const chunks = serializeRtp(pkt);
    const whole = Buffer.concat(chunks);
    e1.push(chunks);
    e2.push(whole);
    e3.push([whole.subarray(0, 5), whole.subarray(5, 13), whole.subarray(13)]); // header split too
    const f1 = e1.push(other);
    assert.deepEqual(f1, e2.push(other));
    assert.deepEqual(f1, e3.push(other));
    assert.deepEqual(new FecDecoder().pushMedia(other).length, 0);
    const d = new FecDecoder();
    d.pushMedia(other);
    assert.deepEqual(d.pushFec(f1[0]), [whole]);
  });

  test('malformed FEC packets are PacketErrors with byte counts, and counted by the decoder', () => {
    const cases: [Buffer, RegExp][] = [
      [golden.subarray(0, 12 + 13), /FEC header: need 14 bytes, have 13/],
      [Buffer.concat([golden.subarray(0, 12), Buffer.from([0x80]), golden.subarray(13)]), /E bit/],
      [Buffer.concat([golden.subarray(0, 12), Buffer.from([0x60]), golden.subarray(13, 28)]), /L=1: need 18 bytes, have 16/],
      [golden.subarray(0, golden.length - 1), /level-0 data of 4 bytes: need 4 bytes, have 3/],
      [Buffer.concat([golden.subarray(0, 24), Buffer.from([0, 0]), golden.subarray(26)]), /empty mask/],
      [Buffer.from([0x40, 0x7f, 0, 0]), /RTP header: need 12 bytes, have 4/],
    ];
    const dec = new FecDecoder();
    for (const [buf, re] of cases) {
      assert.throws(
        () => parseFec(buf),
        (e: unknown) => e instanceof PacketError && re.test(e.message),
      );
      assert.deepEqual(dec.pushFec(buf), []);
    }
    assert.equal(dec.counters.malformed, cases.length);
    assert.equal(dec.counters.fecReceived, 0);
    // The same decoder still works.
    dec.pushMedia(a);
    assert.deepEqual(dec.pushFec(golden), [b]);
  });
});

describe('FecEncoder options', () => {
  test('groupSizeForPercent: K = round(100 / pct), clamped to 2-48', () => {
    assert.equal(groupSizeForPercent(10), 10);
    assert.equal(groupSizeForPercent(20), 5);
    assert.equal(groupSizeForPercent(25), 4);
    assert.equal(groupSizeForPercent(33), 3);
    assert.equal(groupSizeForPercent(50), 2);
    assert.equal(groupSizeForPercent(100), 2);
    assert.equal(groupSizeForPercent(1), 48);
    assert.equal(groupSizeForPercent(0.5), 48);
    for (const bad of [0, -5, NaN, Infinity]) assert.throws(() => groupSizeForPercent(bad), RangeError);
  });

  test('ranges are checked with readable messages', () => {
    assert.throws(() => new FecEncoder({ mediaSsrc: 1, groupSize: 1 }), /FEC group size must be 2-48, got 1/);
    assert.throws(() => new FecEncoder({ mediaSsrc: 1, groupSize: 49 }), /got 49/);
    assert.throws(() => new FecEncoder({ mediaSsrc: 1, groupSize: 4, mode: 'column' }), /FEC depth must be 2-48/);
    assert.throws(
      () => new FecEncoder({ mediaSsrc: 1, groupSize: 5, mode: 'column', depth: 12 }),
      /spans 49 sequence numbers; a mask covers 48/,
    );
    new FecEncoder({ mediaSsrc: 1, groupSize: 5, mode: 'column', depth: 11 }); // spans 45: fine
  });

  test('a media packet of another SSRC is refused', () => {
    const enc = new FecEncoder({ mediaSsrc: 1, groupSize: 2 });
    assert.throws(() => enc.push(stream(0, 1)[0]), PacketError);
  });

  test('its own SSRC, payload type and consecutive sequence numbers; one FEC per K packets', () => {
    const enc = new FecEncoder({ mediaSsrc: SSRC, groupSize: 4, initialSequence: 65535, fecSsrc: 42 });
    const fecs = stream(10, 12).flatMap((m) => enc.push(m));
    assert.equal(fecs.length, 3);
    assert.deepEqual(
      fecs.map((f) => parseRtp(f).sequenceNumber),
      [65535, 0, 1],
    );
    for (const f of fecs) {
      const p = parseFec(f);
      assert.equal(p.ssrc, 42);
      assert.equal(p.payloadType, PT_FEC);
    }
    assert.deepEqual(
      fecs.map((f) => parseFec(f).snBase),
      [10, 14, 18],
    );
    assert.equal(enc.packetCount, 3);
  });

  test('a gap in the pushed sequence closes the open group early; its FEC still repairs', () => {
    const media = [...stream(0, 3, 4), ...stream(50, 4, 5)];
    const enc = new FecEncoder({ mediaSsrc: SSRC, groupSize: 4, initialSequence: 0 });
    const after = media.map((m) => enc.push(m));
    assert.deepEqual(after.map((a) => a.length), [0, 0, 0, 1, 0, 0, 1]);
    assert.deepEqual(parseFec(after[3][0]).offsets, [0, 1, 2]);
    assert.equal(parseFec(after[3][0]).snBase, 0);
    const rebuilt = receive(media, after, new Set([1, 5]));
    assert.deepEqual(rebuilt, [media[1], media[5]]);
  });
});

describe('recovery, row mode', () => {
  test('K = 2..10: every single loss of a group is rebuilt byte for byte', () => {
    for (let k = 2; k <= 10; k++) {
      const media = stream(1000, 3 * k, k);
      const after = encode({ groupSize: k }, media);
      for (let lost = 0; lost < k; lost++) {
        // the same position lost in each of the three groups
        const lostSet = new Set([lost, lost + k, lost + 2 * k]);
        const dec = new FecDecoder();
        const rebuilt = receive(media, after, lostSet, dec);
        assert.deepEqual(rebuilt, [...lostSet].map((i) => media[i]), `K=${k} lost ${lost}`);
        assert.equal(dec.counters.recovered, 3);
        assert.equal(dec.counters.unrecoverable, 0);
      }
    }
  });

  test('rebuilt header fields: marker, timestamp, PT, padding, CSRCs, extension', () => {
    const media = stream(0, 200, 99);
    const after = encode({ groupSize: 5 }, media);
    const lost = new Set(Array.from({ length: 40 }, (_, g) => g * 5 + (g % 5)));
    const rebuilt = bySeq(receive(media, after, lost));
    assert.equal(rebuilt.size, 40);
    let seen = { marker: 0, padding: 0, csrc: 0, ext: 0 };
    for (const i of lost) {
      const want = parseRtp(media[i]);
      const got = parseRtp(rebuilt.get(i)!);
      assert.deepEqual(got, want);
      seen = {
        marker: seen.marker + +want.marker,
        padding: seen.padding + +(want.padding > 0),
        csrc: seen.csrc + +(want.csrc.length > 0),
        ext: seen.ext + +(want.extension !== undefined),
      };
    }
    // the stream really exercised each recovered field
    for (const [k, v] of Object.entries(seen)) assert.ok(v > 0, `no rebuilt packet with ${k}`);
  });

  test('two losses in one group: nothing returned; unrecoverable once the group ages out', () => {
    const dec = new FecDecoder({ maxMedia: 128 }); // ages FEC after 64 packets
    const media = stream(65000, 300, 7);
    const after = encode({ groupSize: 4 }, media);
    const rebuilt = receive(media.slice(0, 8), after.slice(0, 8), new Set([1, 2]), dec);
    assert.deepEqual(rebuilt, []);
    assert.equal(dec.counters.unrecoverable, 0, 'still waiting: a late packet could complete it');
    assert.equal(dec.stored.fec, 1);
    // Later packets arrive; the group falls out of the window.
    for (let i = 8; i < 300; i++) dec.pushMedia(media[i]);
    assert.equal(dec.counters.unrecoverable, 1);
    assert.equal(dec.stored.fec, 0);
    assert.equal(dec.counters.recovered, 0);
  });

  test('a late packet turns a two-loss group into a one-loss group', () => {
    const media = stream(0, 4, 8);
    const after = encode({ groupSize: 4 }, media);
    const dec = new FecDecoder();
    assert.deepEqual(receive(media, after, new Set([1, 2]), dec), []);
    assert.deepEqual(dec.pushMedia(media[2]), [media[1]]);
  });

  test('sequence wraparound 65535 → 0 inside a group', () => {
    for (let k = 2; k <= 6; k++) {
      const first = seqAdd(0, -Math.floor(k / 2) - 1);
      const media = stream(first, k, 40 + k);
      const after = encode({ groupSize: k }, media);
      assert.equal(parseFec(after[k - 1][0]).snBase, first);
      for (let lost = 0; lost < k; lost++) {
        assert.deepEqual(receive(media, after, new Set([lost])), [media[lost]], `K=${k} lost ${lost}`);
      }
    }
  });

  test('FEC before the media, and FEC after all of it', () => {
    const media = stream(300, 6, 11);
    const after = encode({ groupSize: 6 }, media);
    const fec = after[5][0];
    const early = new FecDecoder();
    assert.deepEqual(early.pushFec(fec), []);
    const got: Buffer[] = [];
    for (let i = 0; i < 6; i++) if (i !== 3) got.push(...early.pushMedia(media[i]));
    assert.deepEqual(got, [media[3]]);

    const late = new FecDecoder();
    for (let i = 0; i < 6; i++) if (i !== 0) late.pushMedia(media[i]);
    assert.deepEqual(late.pushFec(fec), [media[0]]);
  });

  test('duplicates: no packet is returned twice, nor one that was received', () => {
    const media = stream(7, 5, 12);
    const after = encode({ groupSize: 5 }, media);
    const fec = after[4][0];
    const dec = new FecDecoder();
    for (const i of [0, 1, 1, 3, 4, 0]) assert.deepEqual(dec.pushMedia(media[i]), []);
    assert.deepEqual(dec.pushFec(fec), [media[2]]);
    assert.deepEqual(dec.pushFec(fec), []);
    assert.equal(dec.seen(rtpSequence(media[2])), true, 'rebuilt, so a late original can be dropped');
    assert.equal(dec.seen(seqAdd(rtpSequence(media[4]), 1)), false);
    assert.deepEqual(dec.pushMedia(media[2]), [], 'the original arriving late');
    assert.equal(dec.counters.recovered, 1);
    assert.equal(dec.counters.fecReceived, 2);

    // Nothing lost: the FEC packet repairs nothing and is not kept.
    const whole = new FecDecoder();
    for (const m of media) whole.pushMedia(m);
    assert.deepEqual(whole.pushFec(fec), []);
    assert.equal(whole.stored.fec, 0);
  });

  test('FEC of another source is ignored; a new source starts clean', () => {
    const media = stream(0, 4, 13);
    const after = encode({ groupSize: 4 }, media);
    const other = new FecEncoder({ mediaSsrc: 5, groupSize: 4, initialSequence: 0 });
    const foreign = stream(0, 4, 13).map((m) => {
      const c = Buffer.from(m);
      setRtpSsrc(c, 5);
      return other.push(c);
    })[3][0];
    const dec = new FecDecoder();
    for (const i of [0, 2, 3]) dec.pushMedia(media[i]);
    assert.deepEqual(dec.pushFec(foreign), []);
    assert.equal(dec.counters.ignored, 1);
    assert.deepEqual(dec.pushFec(after[3][0]), [media[1]]);

    // The source restarts with a new SSRC and the same sequence numbers: old packets are forgotten.
    const dec2 = new FecDecoder();
    for (const i of [0, 2, 3]) dec2.pushMedia(media[i]);
    const restarted = stream(0, 4, 14).map((m) => {
      const c = Buffer.from(m);
      setRtpSsrc(c, 5);
      return c;
    });
    dec2.pushMedia(restarted[0]);
    assert.equal(dec2.stored.media, 1);
    assert.deepEqual(dec2.pushFec(after[3][0]), [], "the old source's FEC");
  });

  test('a decoder told the FEC SSRC accepts exactly that one', () => {
    const media = stream(0, 3, 15);
    const after = encode({ groupSize: 3, fecSsrc: 0x1234 }, media);
    const wrong = new FecDecoder();
    assert.deepEqual(receive(media, after, new Set([0]), wrong), []);
    assert.equal(wrong.counters.ignored, 1);
    assert.deepEqual(receive(media, after, new Set([0]), new FecDecoder({ fecSsrc: 0x1234 })), [media[0]]);
  });
});

describe('waitForFec: a stream without FEC costs nothing', () => {
  test('1,000 media packets and no FEC: nothing copied, nothing kept', () => {
    const media = stream(100, 1000, 50);
    const dec = new FecDecoder({ waitForFec: true });
    const { count } = allocations(() => {
      for (const m of media) assert.deepEqual(dec.pushMedia(m), []);
    });
    assert.equal(count, 0, 'no Buffer allocated or copied');
    assert.deepEqual(dec.stored, { media: 0, mediaBytes: 0, fec: 0, indexedSeqs: 0 });
    assert.equal(dec.seen(100), false);
    // The same stream to a decoder that keeps media from the start: views only, bounded by maxMedia.
    const eager = new FecDecoder();
    assert.equal(allocations(() => media.forEach((m) => eager.pushMedia(m))).count, 0);
    assert.equal(eager.stored.media, 1000);
    assert.equal(eager.stored.mediaBytes, media.reduce((n, m) => n + m.length, 0));
  });

  test('from the first FEC packet on, media is kept and losses are rebuilt; FEC over earlier packets is ignored', () => {
    const media = stream(65500, 60, 51); // wraps 65535 → 0 on the way
    const after = encode({ groupSize: 5 }, media);
    const dec = new FecDecoder({ waitForFec: true });
    // Group 0 (0-4) arrives whole before its FEC: nothing kept, and its FEC cannot rebuild (or "rebuild" 0-4).
    const lost = new Set([7, 13, 14, 22]);
    const rebuilt = receive(media, after, lost, dec);
    // 7 and 22 are alone in their groups; 13 and 14 share one.
    assert.deepEqual(rebuilt, [media[7], media[22]]);
    assert.equal(dec.counters.ignored, 1, "group 0's FEC");
    assert.equal(dec.counters.recovered, 2);
    assert.ok(dec.stored.media > 0 && dec.stored.mediaBytes > 0);
    // A new publisher: back to keeping nothing until its FEC shows.
    dec.reset();
    dec.pushMedia(stream(9000, 1, 52)[0]);
    assert.deepEqual(dec.stored, { media: 0, mediaBytes: 0, fec: 0, indexedSeqs: 0 });
  });

  test('still repairs past half the sequence space on (where "before the first FEC" would wrap)', () => {
    const k = 10;
    const n = 50_000;
    const payload = Buffer.alloc(20, 1);
    const enc = new FecEncoder({ mediaSsrc: SSRC, groupSize: k, initialSequence: 0 });
    const dec = new FecDecoder({ waitForFec: true });
    const first = 1234;
    const lostAt = n - 15;
    let rebuilt: Buffer[] = [];
    for (let i = 0; i < n; i++) {
      const m = mediaPacket(seqAdd(first, i), { payload, padding: 0, marker: false, csrc: [], withExtension: false, timestamp: i, payloadType: 96 });
      const fecs = enc.push(m);
      if (i !== lostAt) dec.pushMedia(m);
      for (const f of fecs) rebuilt.push(...dec.pushFec(f));
      if (i < lostAt - 100) rebuilt = [];
    }
    assert.deepEqual(rebuilt.map(rtpSequence), [seqAdd(first, lostAt)]);
  });
});

describe('recovery, column and 2-D modes', () => {
  test('column: a burst of D consecutive losses is repaired, at any position in the block', () => {
    const k = 4;
    for (const d of [2, 5, 8]) {
      const media = stream(65530, 2 * k * d, d);
      const after = encode({ groupSize: k, mode: 'column', depth: d }, media);
      assert.equal(after.flat().length, 2 * d, 'one FEC per column');
      for (let start = 0; start + d <= k * d; start++) {
        const lost = new Set(Array.from({ length: d }, (_, i) => start + i));
        const rebuilt = receive(media, after, lost);
        assert.deepEqual(bySeq(rebuilt), bySeq([...lost].map((i) => media[i])), `D=${d} burst at ${start}`);
      }
    }
  });

  test('column: a burst longer than D is not repaired in full', () => {
    const media = stream(0, 12, 21);
    const after = encode({ groupSize: 3, mode: 'column', depth: 4 }, media);
    const rebuilt = receive(media, after, new Set([0, 1, 2, 3, 4]));
    // column 0 lost 0 and 4; columns 1-3 lost one each
    assert.deepEqual(bySeq(rebuilt), bySeq([media[1], media[2], media[3]]));
  });

  test('2-D: losses no single row or column can repair are rebuilt by cascading', () => {
    // K=3 rows of D=4:  0  1  2  3 / 4  5  6  7 / 8  9 10 11. Lost: 0 1 (row 0 has two), 5 6 (row 1 has two).
    // Column 0 rebuilds 0, then row 0 rebuilds 1; column 2 rebuilds 6, then row 1 rebuilds 5.
    const media = stream(65534, 12, 22);
    const after = encode({ groupSize: 3, mode: '2d', depth: 4 }, media);
    assert.equal(after.flat().length, 3 + 4, 'a parity per row and per column');
    const dec = new FecDecoder();
    const rebuilt = receive(media, after, new Set([0, 1, 5, 6]), dec);
    assert.deepEqual(bySeq(rebuilt), bySeq([0, 1, 5, 6].map((i) => media[i])));
    assert.equal(dec.counters.recovered, 4);
    // A 2×2 square defeats XOR parity in both directions.
    const square = receive(media, after, new Set([0, 1, 4, 5]));
    assert.deepEqual(square, []);
  });

  test('2-D: the cascade needs the row parity that arrived before the column parity', () => {
    // Only the row FEC of row 0 and the column FEC of column 0 reach the decoder.
    const media = stream(0, 12, 23);
    const after = encode({ groupSize: 3, mode: '2d', depth: 4 }, media);
    const rowFec = after[3][0];
    const colFec = after[8].find((f) => parseFec(f).snBase === 0 && parseFec(f).offsets.length === 3)!;
    const dec = new FecDecoder();
    for (let i = 0; i < 12; i++) if (i !== 0 && i !== 1) dec.pushMedia(media[i]);
    assert.deepEqual(dec.pushFec(rowFec), []);
    assert.deepEqual(dec.pushFec(colFec), [media[0], media[1]]);
  });
});

describe('properties', () => {
  const arbShape = fc.record({
    payload: fc.uint8Array({ minLength: 0, maxLength: 300 }).map((u) => Buffer.from(u)),
    padding: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 255 })),
    marker: fc.boolean(),
    csrc: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { maxLength: 3 }),
    withExtension: fc.boolean(),
    timestamp: fc.integer({ min: 0, max: 0xffffffff }),
    payloadType: fc.integer({ min: 0, max: 127 }).filter((pt) => pt < 64 || pt > 95),
  });

  test('row mode: one random loss per group is always rebuilt byte for byte', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 16 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(arbShape, { minLength: 2, maxLength: 80 }),
        fc.array(fc.nat(), { minLength: 80, maxLength: 80 }),
        (k, first, shapes, picks) => {
          const media = shapes.map((s, i) => mediaPacket(seqAdd(first, i), s));
          const copies = media.map((m) => Buffer.from(m));
          const after = encode({ groupSize: k }, media);
          const lost = new Set<number>();
          for (let g = 0; g * k < media.length; g++) {
            const size = Math.min(k, media.length - g * k);
            if (size >= 1) lost.add(g * k + (picks[g] % size));
          }
          const dec = new FecDecoder();
          const rebuilt = receive(media, after, lost, dec);
          assert.deepEqual(bySeq(rebuilt), bySeq([...lost].map((i) => media[i])));
          assert.equal(dec.counters.recovered, lost.size);
          assert.deepEqual(media, copies, 'inputs not mutated');
        },
      ),
      { numRuns: 200 },
    );
  });

  test('column mode: one random burst of up to D per block is always rebuilt', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 2, max: 6 }),
        fc.integer({ min: 2, max: 8 }),
        fc.integer({ min: 0, max: 0xffff }),
        fc.array(arbShape, { minLength: 4, maxLength: 100 }),
        fc.nat(),
        fc.nat(),
        (k, d, first, shapes, startPick, lenPick) => {
          const media = shapes.map((s, i) => mediaPacket(seqAdd(first, i), s));
          const after = encode({ groupSize: k, mode: 'column', depth: d }, media);
          const lost = new Set<number>();
          for (let b = 0; b * k * d < media.length; b++) {
            const size = Math.min(k * d, media.length - b * k * d);
            const len = 1 + (lenPick % Math.min(d, size));
            const start = startPick % (size - len + 1);
            for (let i = 0; i < len; i++) lost.add(b * k * d + start + i);
          }
          // The decoder learns the media SSRC from a media packet, so one must get through.
          if (lost.size === media.length) lost.delete(media.length - 1);
          const rebuilt = receive(media, after, lost);
          assert.deepEqual(bySeq(rebuilt), bySeq([...lost].map((i) => media[i])));
        },
      ),
      { numRuns: 150 },
    );
  });

  test('corrupted FEC packets never throw and never return a packet that was received', () => {
    const media = stream(65534, 4, 31);
    const after = encode({ groupSize: 4 }, media);
    const fec = after[3][0];
    const received = new Set([0, 2, 3].map((i) => rtpSequence(media[i])));
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 12, max: fec.length - 1 }), fc.integer({ min: 1, max: 255 })), {
          minLength: 1,
          maxLength: 4,
        }),
        fc.integer({ min: 0, max: 8 }),
        (flips, cut) => {
          const bad = Buffer.from(fec.subarray(0, fec.length - cut));
          for (const [pos, x] of flips) if (pos < bad.length) bad[pos] ^= x;
          const copy = Buffer.from(bad);
          const dec = new FecDecoder();
          for (const i of [0, 2, 3]) dec.pushMedia(media[i]);
          const out = dec.pushFec(bad);
          assert.deepEqual(bad, copy, 'input not mutated');
          for (const r of out) {
            assert.ok(!received.has(rtpSequence(r)), 'a received packet returned');
            parseRtp(r);
          }
          const c = dec.counters;
          assert.equal(c.malformed + c.fecReceived, 1);
          assert.equal(c.recovered, out.length);
        },
      ),
      { numRuns: 500 },
    );
  });

  test('random bytes to pushFec never throw; each is counted malformed or received; anything rebuilt is valid', () => {
    const rtpLike = fc
      .tuple(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.uint8Array({ maxLength: 80 }))
      .map(([h, rest]) => {
        const b = Buffer.concat([Buffer.from(h), Buffer.from(rest)]);
        b[0] = (b[0] & 0x3f) | 0x80; // version 2, so the FEC parser is reached
        return b;
      });
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.uint8Array({ maxLength: 80 }).map((u) => Buffer.from(u)), rtpLike)), (bufs) => {
        const dec = new FecDecoder();
        const media = stream(0, 3, 30);
        dec.pushMedia(media[0]);
        dec.pushMedia(media[2]);
        for (const b of bufs) {
          const copy = Buffer.from(b);
          const out = dec.pushFec(b);
          assert.deepEqual(b, copy, 'input not mutated');
          // Anything rebuilt must at least be a valid RTP packet for the missing sequence number.
          for (const r of out) {
            assert.equal(rtpSequence(r), 1);
            parseRtp(r);
          }
        }
        const c = dec.counters;
        assert.equal(c.malformed + c.fecReceived, bufs.length);
        assert.ok(c.recovered <= 1);
      }),
      { numRuns: 300 },
    );
  });

  test('random bytes to pushMedia never throw', () => {
    fc.assert(
      fc.property(fc.array(fc.uint8Array({ maxLength: 60 }).map((u) => Buffer.from(u))), (bufs) => {
        const dec = new FecDecoder();
        for (const b of bufs) dec.pushMedia(b);
      }),
    );
  });

  test('memory stays bounded over 100k packets with losses, duplicates and reordering', () => {
    const cases: { maxMedia?: number; maxGroups?: number }[] = [{}, { maxMedia: 256, maxGroups: 16 }];
    for (const opts of cases) {
      const maxMedia = opts.maxMedia ?? FEC_MAX_MEDIA;
      const maxGroups = opts.maxGroups ?? FEC_MAX_GROUPS;
      const r = rng(77);
      const enc = new FecEncoder({ mediaSsrc: SSRC, groupSize: 2, initialSequence: 0 });
      const dec = new FecDecoder(opts);
      const payload = Buffer.alloc(40, 7);
      let peak = { media: 0, fec: 0, indexedSeqs: 0 };
      let lostCount = 0;
      let held: Buffer | undefined;
      for (let i = 0; i < 100_000; i++) {
        const m = serializeRtpToBuffer({
          padding: 0,
          marker: false,
          payloadType: 96,
          sequenceNumber: i & 0xffff,
          timestamp: i * 3000,
          ssrc: SSRC,
          csrc: [],
          payload,
        });
        const fecs = enc.push(m);
        const x = r();
        if (x < 0.2) lostCount++;
        else if (x < 0.25) {
          dec.pushMedia(m);
          dec.pushMedia(m); // duplicate
        } else if (x < 0.3) {
          held = m; // delivered one packet late
        } else {
          dec.pushMedia(m);
          if (held) dec.pushMedia(held);
          held = undefined;
        }
        for (const f of fecs) if (r() > 0.1) dec.pushFec(f);
        const s = dec.stored;
        peak = {
          media: Math.max(peak.media, s.media),
          fec: Math.max(peak.fec, s.fec),
          indexedSeqs: Math.max(peak.indexedSeqs, s.indexedSeqs),
        };
      }
      assert.ok(peak.media <= maxMedia, `media ${peak.media} > ${maxMedia}`);
      assert.ok(peak.fec <= maxGroups, `fec ${peak.fec} > ${maxGroups}`);
      assert.ok(peak.indexedSeqs <= maxGroups * 48);
      assert.equal(peak.media, maxMedia, 'the media store did fill up');
      const c = dec.counters;
      assert.ok(c.recovered > 0 && c.recovered < lostCount, `recovered ${c.recovered} of ${lostCount}`);
      assert.ok(c.unrecoverable > 0);
    }
  });
});
