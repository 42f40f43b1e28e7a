/**
 * Real FFmpeg as the judge of our RFC 2435 implementation, both directions:
 *  (a) FFmpeg's RTP muxer sends its mjpeg encoder's frames → our depacketizer rebuilds JFIF
 *      images → FFmpeg decodes the concatenated .mjpeg with zero errors, every frame.
 *  (b) Our packetizer + RtpSender send FFmpeg-made JPEGs → FFmpeg reads our SDP and decodes them
 *      with zero errors, each picture identical to decoding the JPEG file directly.
 *
 * Restart markers: FFmpeg's mjpeg encoder writes DRI and RST markers with slice threading, and
 * (b) sends such images as type 65, which FFmpeg's RTP demuxer reads back. (a) has no restart run:
 * FFmpeg 5.1's RTP muxer sends those images as type 1 without the restart header (RST markers but
 * no restart interval reach the receiver), which is its bug to judge, not ours. Type 64 (4:2:2)
 * has no FFmpeg source at all (FFmpeg writes 4:2:2 as Y 2x2 over chroma 1x2); jpeg.test.ts
 * covers 0 and 64 with hand-made images that FFmpeg decodes after our round trip.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { skipUnless } from './helpers/tools.ts';
import { bindRtpPair, bindUdp, waitForUdpListener } from './helpers/net.ts';
import { killRuns, run, startRun } from './helpers/run.ts';
import { parseJpeg } from '../src/codecs/mjpeg/jpeg.ts';
import { JpegPacketizer } from '../src/codecs/mjpeg/packetize.ts';
import { JpegDepacketizer } from '../src/codecs/mjpeg/depacketize.ts';
import { isRtp, parseRtp } from '../src/rtp/packet.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { buildSdp } from '../src/transport/sdp.ts';
import { PT_JPEG, VIDEO_CLOCK_RATE } from '../src/defaults.ts';
import type { Frame } from '../src/rtp/frame.ts';

const FPS = 25;
const SECONDS = 2;
const FRAMES = FPS * SECONDS; // what `-t 2` at 25 fps makes
const TICKS_PER_FRAME = VIDEO_CLOCK_RATE / FPS;
const TESTSRC = ['-f', 'lavfi', '-i', `testsrc=size=320x240:rate=${FPS}`, '-t', String(SECONDS)];
/** What udpcast asks of FFmpeg for --codec mjpeg: standard Huffman tables, 4:2:0. */
const MJPEG = ['-c:v', 'mjpeg', '-huffman', '0', '-pix_fmt', 'yuvj420p', '-q:v', '5'];

// ---- Child processes: each one tracked and killed by pid whatever happens ------------------------

const tmp = mkdtempSync(join(tmpdir(), 'udpcast-mjpeg-'));
after(() => {
  killRuns();
  rmSync(tmp, { recursive: true, force: true });
});

const ffmpeg = (args: string[], timeoutMs = 15_000) => run('ffmpeg', ['-nostdin', '-v', 'error', ...args], timeoutMs);

/** framemd5 picture hashes (size and md5 of each decoded frame; timestamps left out). */
function pictures(framemd5: string): string[] {
  return framemd5
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => l.split(',').slice(4).join(',').trim());
}

// ---- Sockets ------------------------------------------------------------------------------------


// ---- The tests ----------------------------------------------------------------------------------

describe('FFmpeg judges RFC 2435', { skip: skipUnless('ffmpeg'), timeout: 30_000 }, () => {
  test('(a) FFmpeg RTP muxer → our depacketizer → .mjpeg that FFmpeg decodes: 0 errors, 50 frames', async () => {
    const [rtpSock, rtcpSock] = await bindRtpPair();
    const port = rtpSock.address().port;
    const depacketizer = new JpegDepacketizer();
    const drops: string[] = [];
    depacketizer.onDrop = (r) => drops.push(r);
    const frames: Frame[] = [];
    let rtcp = 0;
    let packets = 0;
    const onDatagram = (msg: Buffer) => {
      // FFmpeg sends RTCP to P+1, but an RTCP-shaped datagram here must not reach the depacketizer.
      if (!isRtp(msg)) {
        rtcp++;
        return;
      }
      packets++;
      const f = depacketizer.push(parseRtp(msg));
      if (f) frames.push(f);
    };
    rtpSock.on('message', onDatagram);
    rtcpSock.on('message', () => rtcp++);
    try {
      const sender = await ffmpeg(['-re', ...TESTSRC, ...MJPEG, '-f', 'rtp', `rtp://127.0.0.1:${port}`], 20_000);
      assert.equal(sender.code, 0, `FFmpeg sender failed: ${sender.stderr}`);
      await sleep(200); // datagrams already queued on our socket get read
    } finally {
      rtpSock.close();
      rtcpSock.close();
    }

    assert.deepEqual(drops, [], 'no frame dropped on loopback');
    assert.equal(frames.length, FRAMES);
    assert.ok(packets > FRAMES, 'frames spanned several packets (fragment offsets exercised)');
    assert.ok(rtcp > 0, 'FFmpeg sent RTCP, and it stayed out of the depacketizer');
    for (let i = 1; i < frames.length; i++) {
      assert.equal((frames[i].timestamp - frames[i - 1].timestamp) >>> 0, TICKS_PER_FRAME, `frame ${i} timestamp step`);
    }
    const first = parseJpeg(frames[0].data);
    assert.deepEqual([first.width, first.height, first.type], [320, 240, 1]);

    const file = join(tmp, 'from-ffmpeg.mjpeg');
    writeFileSync(file, Buffer.concat(frames.map((f) => f.data)));
    const decoded = await ffmpeg(['-f', 'mjpeg', '-i', file, '-f', 'framemd5', '-']);
    assert.equal(decoded.code, 0);
    assert.equal(decoded.stderr, '', 'FFmpeg decodes every rebuilt JPEG without an error');
    assert.equal(pictures(decoded.stdout).length, FRAMES, 'FFmpeg counts every frame');
  });

  /**
   * (b): FFmpeg-made JPEG files (encoded with `encoder`) through our packetizer and RtpSender to
   * FFmpeg reading our SDP, compared with FFmpeg decoding the files directly.
   */
  async function ourPacketsToFfmpeg(name: string, encoder: string[], wantType: number): Promise<void> {
    const dir = join(tmp, name);
    mkdirSync(dir);
    const pattern = join(dir, '%03d.jpg');
    const made = await ffmpeg([...TESTSRC, ...encoder, '-f', 'image2', pattern]);
    assert.equal(made.code, 0, made.stderr);
    const files = readdirSync(dir).sort();
    assert.equal(files.length, FRAMES);
    const jpegs = files.map((f) => readFileSync(join(dir, f)));
    assert.equal(parseJpeg(jpegs[0]).type, wantType, `the ${name} source is RFC 2435 type ${wantType}`);
    const reference = await ffmpeg(['-f', 'image2', '-i', pattern, '-f', 'framemd5', '-']);
    assert.equal(reference.stderr, '');
    assert.equal(pictures(reference.stdout).length, FRAMES);

    // A port pair for FFmpeg (it listens on P and P+1), found by binding and then let go.
    const [probeA, probeB] = await bindRtpPair();
    const port = probeA.address().port;
    probeA.close();
    probeB.close();
    const sdp = join(tmp, `${name}.sdp`);
    writeFileSync(sdp, buildSdp({ codec: 'mjpeg', address: '127.0.0.1', port }));

    // -listen_timeout 1: one second without packets ends the input, so FFmpeg exits by itself.
    const receiver = startRun(
      'ffmpeg',
      ['-nostdin', '-v', 'error', '-protocol_whitelist', 'file,udp,rtp', '-listen_timeout', '1', '-i', sdp, '-f', 'framemd5', '-'],
      20_000,
    );
    const sock = await bindUdp(0);
    const packetizer = new JpegPacketizer();
    const sender = new RtpSender({ payloadType: PT_JPEG });
    let packets = 0;
    const types = new Set<number>();
    try {
      await waitForUdpListener(port, receiver.child, 5000);
      for (let i = 0; i < jpegs.length; i++) {
        const payloads = packetizer.packetize(jpegs[i]);
        for (const p of payloads) types.add(p[0][4]); // main header byte 4: type
        for (const d of sender.frame(payloads, (i * TICKS_PER_FRAME) >>> 0)) {
          await new Promise<void>((resolve, reject) => sock.send(d, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
          packets++;
        }
        await sleep(3); // paced like a live source so FFmpeg's socket buffer never overflows
      }
    } finally {
      sock.close();
    }
    const r = await receiver.done;
    // The only line we expect is how the input ends: the timeout we asked for.
    const timedOut = `${sdp}: Connection timed out`;
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    const unexpected = lines.filter((l, i) => l !== timedOut && !(/^\s+Last message repeated \d+ times$/.test(l) && lines[i - 1] === timedOut));
    assert.deepEqual(unexpected, [], 'FFmpeg decodes our RTP stream without an error or warning');
    assert.equal(r.code, 0);
    assert.deepEqual([...types], [wantType], `every packet says type ${wantType}`);
    assert.ok(packets > FRAMES, 'frames spanned several packets');
    assert.deepEqual(pictures(r.stdout), pictures(reference.stdout), 'every picture arrives, identical to the file decoded directly');
  }

  test('(b) our packetizer → UDP → FFmpeg reading our SDP: 0 errors, 50 frames, pictures identical', async () => {
    await ourPacketsToFfmpeg('plain', MJPEG, 1);
  });

  test('(b) with restart markers: type 65 and its restart header, which FFmpeg reads back into DRI', async () => {
    // Slice threading makes FFmpeg's mjpeg encoder write DRI and RST markers (one MCU row each).
    await ourPacketsToFfmpeg('restart', [...MJPEG, '-threads', '4', '-thread_type', 'slice', '-slices', '4'], 65);
  });
});
