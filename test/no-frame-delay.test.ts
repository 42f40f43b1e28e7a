// "No frame of delay", end to end on the sharer: the last RTP packet of frame N reaches the relay's
// socket before FFmpeg has produced frame N+1 (before its first byte reaches our pipe). Annex B on a
// pipe would hold every frame until the next one starts; FLV tags end when the frame does.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { Encoder, type CapturedFrame } from '../src/encode/encoder.ts';
import { Publisher } from '../src/transport/publisher.ts';
import { isRtp } from '../src/rtp/packet.ts';
import { killAllChildren } from '../src/util/child.ts';
import { bindUdp } from './helpers/net.ts';
import { skipUnless } from './helpers/tools.ts';
import { waitFor } from './helpers/cli.ts';

after(() => killAllChildren());

for (const codec of ['h264', 'mjpeg'] as const) {
  test(`${codec}: frame N's last packet is on the wire before frame N+1 exists`, { skip: skipUnless('ffmpeg') }, async () => {
    const relay = await bindUdp(0); // stands in for the relay: we only watch what arrives
    const markers: number[] = [];
    relay.on('message', (m) => {
      if (isRtp(m) && (m[1] & 0x80) !== 0) markers.push(performance.now()); // marker bit: a frame's last packet
    });
    const publisher = await Publisher.start({ relay: { address: '127.0.0.1', port: relay.address().port }, stream: 'main', codec });
    // 4 fps: frames 250 ms apart, so a frame held for the next one would be late by 250 ms.
    const size = { width: 320, height: 240 };
    const encoder = new Encoder({
      ffmpegPath: 'ffmpeg',
      capture: { source: 'test', fps: 4, size },
      encode: { codec, bitrateKbps: 500, fps: 4, gop: 8, quality: 5, size },
    });
    const frames: CapturedFrame[] = [];
    encoder.on('frame', (f) => {
      frames.push(f);
      publisher.send(f);
    });
    encoder.start();
    try {
      await waitFor(() => frames.length >= 9, 15_000, '9 frames');
      await new Promise((r) => setTimeout(r, 100)); // loopback delivery of the last markers
      for (let n = 0; n + 1 < frames.length && n < markers.length; n++) {
        const sentBy = markers[n];
        const nextStarted = frames[n + 1].firstByteMs;
        assert.ok(sentBy < nextStarted, `frame ${n}'s last packet arrived at ${sentBy.toFixed(1)} ms, frame ${n + 1} began at ${nextStarted.toFixed(1)} ms`);
      }
      assert.ok(markers.length >= 8);
    } finally {
      await encoder.stop();
      await publisher.close();
      relay.close();
    }
  });
}
