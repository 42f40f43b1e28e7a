/**
 * The sharer's half of the sound on the wire (issue 15): one RTP packet per Opus packet on its own
 * SSRC, as RED (RFC 2198) with copies of the packets before it, and silence the encoder marked as
 * such (DTX: packets of at most 2 bytes) left out, digital silence left out after its first 200 ms
 * but for a packet each 400 ms, the marker bit on the packet after what was left out.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Publisher } from '../src/transport/publisher.ts';
import { isRtp, parseRtp, type RtpPacket } from '../src/rtp/packet.ts';
import { parseRed } from '../src/codecs/opus/red.ts';
import { PT_OPUS, PT_RED } from '../src/defaults.ts';
import { DTX_HANGOVER_MS, DTX_KEEPALIVE_MS, DtxGate, isOpusSilence } from '../src/codecs/opus/dtx.ts';
import { bindUdp } from './helpers/net.ts';
import { waitFor } from './helpers/cli.ts';

async function sent(redundancy: number, packets: Buffer[], want = packets.filter((p) => p.length > 2).length): Promise<{ rtp: RtpPacket[]; publisher: Publisher }> {
  const relay = await bindUdp(0); // stands in for the relay: we only read what arrives
  const rtp: RtpPacket[] = [];
  relay.on('message', (m) => {
    if (!isRtp(m)) return;
    const p = parseRtp(Buffer.from(m));
    if (p.payloadType === PT_OPUS || p.payloadType === PT_RED) rtp.push(p);
  });
  const publisher = await Publisher.start({ relay: { address: '127.0.0.1', port: relay.address().port }, stream: 'main', codec: 'h264', audio: true, audioRedundancy: redundancy });
  try {
    const t0 = 1_750_000_000_000;
    packets.forEach((data, i) => publisher.sendAudio({ data, captureUnixMs: t0 + i * 20 }));
    await waitFor(() => rtp.length >= want, 3000, `${want} sound packets`);
    return { rtp, publisher };
  } finally {
    await publisher.close();
    relay.close();
  }
}

const opus = (n: number) => Buffer.from([0xf8, n, 0x11, 0x22]);

test('RED with two copies: each packet repeats the two before it, at their own times', async () => {
  const { rtp, publisher } = await sent(2, [1, 2, 3, 4].map(opus));
  assert.ok(rtp.every((p) => p.payloadType === PT_RED && p.ssrc === rtp[0].ssrc && !p.marker));
  const blocks = rtp.map((p) => parseRed(p.payload, p.timestamp).map((b) => [b.data[1], (p.timestamp - b.timestamp) >>> 0, b.payloadType]));
  assert.deepEqual(blocks, [
    [[1, 0, PT_OPUS]],
    [[1, 960, PT_OPUS], [2, 0, PT_OPUS]],
    [[1, 1920, PT_OPUS], [2, 960, PT_OPUS], [3, 0, PT_OPUS]],
    [[2, 1920, PT_OPUS], [3, 960, PT_OPUS], [4, 0, PT_OPUS]],
  ]);
  assert.equal(publisher.counters.audioPacketsSent, 4);
});

test('--audio-red 0: plain Opus (RFC 7587), one packet per RTP packet', async () => {
  const { rtp } = await sent(0, [1, 2].map(opus));
  assert.deepEqual(rtp.map((p) => [p.payloadType, [...p.payload]]), [[PT_OPUS, [...opus(1)]], [PT_OPUS, [...opus(2)]]]);
});

test('DTX: silence marked by the encoder is not sent; numbers stay continuous, the marker starts the next talkspurt', async () => {
  const silence = Buffer.from([0xf8]);
  const { rtp, publisher } = await sent(0, [opus(1), silence, silence, Buffer.from([0xf8, 0]), opus(5)]);
  assert.deepEqual(rtp.map((p) => p.payload[1]), [1, 5]);
  assert.equal((rtp[1].sequenceNumber - rtp[0].sequenceNumber + 65536) % 65536, 1);
  assert.equal((rtp[1].timestamp - rtp[0].timestamp) >>> 0, 4 * 960, 'the time says how long the silence was');
  assert.deepEqual(rtp.map((p) => p.marker), [false, true]);
  assert.equal(publisher.counters.audioSilenceNotSent, 3);
});

/** Digital silence as FFmpeg 5.1's libopus codes it: TOC (here CELT fullband 20 ms), then ff fe. */
const hush = Buffer.from([0xf8, 0xff, 0xfe]);

test(`DTX of digital silence: its first ${DTX_HANGOVER_MS} ms sent, then a packet every ${DTX_KEEPALIVE_MS} ms; sound after it is sent at once`, () => {
  assert.ok(isOpusSilence(hush) && isOpusSilence(Buffer.from([0x7c, 0xff, 0xfe])));
  assert.ok(!isOpusSilence(Buffer.from([0xfb, 0xff, 0xfe])), 'code 3 (several frames) is not the silent frame');
  assert.ok(!isOpusSilence(Buffer.from([0xf8, 0xff, 0xfe, 0])) && !isOpusSilence(opus(1)));
  const gate = new DtxGate();
  const seq = [opus(1), ...Array.from({ length: 60 }, () => hush), opus(2), hush, opus(3)];
  const sentAt = seq.map((p, i) => (gate.decide(p) === 'send' ? i : -1)).filter((i) => i >= 0);
  // 20 ms packets: 10 of silence sent (1-10), then 11-29 left out, 30 sent, 31-49 out, 50 sent, ...
  assert.deepEqual(sentAt, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 30, 50, 61, 62, 63]);
  const off = new DtxGate(false);
  assert.ok(seq.every((p) => off.decide(p) === 'send'), '--no-audio-dtx: every packet');
  assert.equal(off.decide(Buffer.from([0xf8])), 'skip', "libopus's own DTX mark is never sent");
});

test('DTX on the wire: numbers continuous, the marker on the keepalive and on the sound after the silence left out', async () => {
  const { rtp, publisher } = await sent(0, [opus(1), ...Array.from({ length: 40 }, () => hush), opus(2)], 13);
  assert.equal(rtp.length, 13);
  assert.deepEqual(rtp.map((p) => p.marker), [...Array(11).fill(false), true, true]);
  assert.ok(rtp.every((p, i) => i === 0 || ((p.sequenceNumber - rtp[i - 1].sequenceNumber + 65536) % 65536) === 1));
  assert.deepEqual(rtp.map((p) => (p.timestamp - rtp[0].timestamp) >>> 0).slice(10), [10 * 960, 30 * 960, 41 * 960]);
  assert.equal(publisher.counters.audioSilenceNotSent, 40 - 11);
});
