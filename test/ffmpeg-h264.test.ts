/**
 * Real FFmpeg as the judge of our RFC 6184 implementation, both directions:
 *  (a) FFmpeg's RTP muxer sends libx264 → our depacketizer rebuilds Annex B → FFmpeg decodes the
 *      file with zero errors and ffprobe counts every frame sent.
 *  (b) Our packetizer + RtpSender send an x264 stream → FFmpeg reads our SDP and decodes it with
 *      zero errors, frame for frame identical (framemd5) to decoding the source file directly.
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { skipUnless } from './helpers/tools.ts';
import { bindRtpPair, bindUdp, waitForUdpListener } from './helpers/net.ts';
import { killRuns, run, startRun } from './helpers/run.ts';
import { NalType, splitAnnexB } from '../src/codecs/h264/annexb.ts';
import { H264Packetizer } from '../src/codecs/h264/packetize.ts';
import { H264Depacketizer } from '../src/codecs/h264/depacketize.ts';
import { isRtp, parseRtp } from '../src/rtp/packet.ts';
import { RtpSender } from '../src/transport/sender.ts';
import { buildSdp } from '../src/transport/sdp.ts';
import { PT_H264, VIDEO_CLOCK_RATE } from '../src/defaults.ts';
import type { Frame } from '../src/rtp/frame.ts';

const FPS = 30;
const SECONDS = 3;
const FRAMES = FPS * SECONDS; // what `-t 3` at 30 fps sends
const TICKS_PER_FRAME = VIDEO_CLOCK_RATE / FPS;
const X264 = ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', '-bf', '0', '-g', '30'];
const TESTSRC = ['-f', 'lavfi', '-i', `testsrc=size=320x240:rate=${FPS}`, '-t', String(SECONDS)];

// ---- Owning child processes and temp files -----------------------------------------------------

const tmp = mkdtempSync(join(tmpdir(), 'udpcast-h264-'));
after(() => {
  killRuns();
  rmSync(tmp, { recursive: true, force: true });
});

/** ffprobe's decoded frame count for the first video stream of a file. */
async function countFrames(file: string): Promise<number> {
  const r = await run('ffprobe', ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', file]);
  assert.equal(r.stderr, '', `ffprobe complained: ${r.stderr}`);
  return Number(r.stdout.trim());
}

/** FFmpeg's framemd5 lines (one per decoded frame) for an input, with `-v error` stderr. */
async function frameMd5(inputArgs: string[], timeoutMs = 15_000): Promise<{ md5s: string[]; stderr: string }> {
  const r = await run('ffmpeg', ['-nostdin', '-v', 'error', ...inputArgs, '-f', 'framemd5', '-'], timeoutMs);
  return { md5s: r.stdout.split('\n').filter((l) => l && !l.startsWith('#')), stderr: r.stderr };
}

// ---- Sockets -----------------------------------------------------------------------------------


/** Groups NAL units into access units: with `h264_metadata=aud=insert` each one starts at an AUD. */
function accessUnits(nalus: Buffer[]): Buffer[][] {
  const aus: Buffer[][] = [];
  for (const n of nalus) {
    if ((n[0] & 0x1f) === NalType.AUD || aus.length === 0) aus.push([]);
    aus[aus.length - 1].push(n);
  }
  return aus;
}

// ---- The tests ---------------------------------------------------------------------------------

describe('FFmpeg judges RFC 6184', { skip: skipUnless('ffmpeg', 'ffprobe'), timeout: 30_000 }, () => {
  test('(a) FFmpeg RTP muxer → our depacketizer → Annex B that FFmpeg decodes, every frame', async () => {
    const [rtpSock, rtcpSock] = await bindRtpPair();
    const port = rtpSock.address().port;
    const depacketizer = new H264Depacketizer();
    const drops: string[] = [];
    depacketizer.onDrop = (r) => drops.push(r);
    const frames: Frame[] = [];
    let rtcpOnRtpPort = 0;
    let rtcpPackets = 0;
    const ffmpegStructures = new Set<number>();
    rtpSock.on('message', (msg) => {
      // RFC 5761 §4: PT 72-76 after masking the marker bit (SR, RR, SDES, BYE, APP) is RTCP.
      if (!isRtp(msg)) {
        rtcpOnRtpPort++;
        return;
      }
      const packet = parseRtp(msg); // throws only if FFmpeg sent a broken header: let the test fail
      ffmpegStructures.add(packet.payload[0] & 0x1f);
      const f = depacketizer.push(packet);
      if (f) frames.push(f);
    });
    rtcpSock.on('message', () => rtcpPackets++);
    try {
      const ffmpeg = await run('ffmpeg', ['-nostdin', '-v', 'error', '-re', ...TESTSRC, ...X264, '-f', 'rtp', `rtp://127.0.0.1:${port}`], 20_000);
      assert.equal(ffmpeg.code, 0, `ffmpeg sender failed: ${ffmpeg.stderr}`);
      await sleep(200); // the last datagrams are queued on our socket already; let them be read
    } finally {
      rtpSock.close();
      rtcpSock.close();
    }

    console.log(`FFmpeg sent payload structures ${[...ffmpegStructures].sort((x, y) => x - y).join(', ')}`);
    assert.ok(ffmpegStructures.has(NalType.FU_A), 'FFmpeg fragmented at least one NAL unit (FU-A path exercised)');
    assert.deepEqual(drops, [], 'no access unit dropped on loopback');
    assert.equal(depacketizer.counters.framesDropped, 0);
    assert.equal(frames.length, FRAMES);
    assert.ok(rtcpPackets + rtcpOnRtpPort > 0, 'FFmpeg sent RTCP (so the RTCP path was exercised)');
    assert.ok(frames[0].keyframe, 'the stream starts with an IDR');
    assert.ok(frames.filter((f) => f.keyframe).length >= FRAMES / 30, 'an IDR at least every 30 frames (-g 30)');
    for (let i = 1; i < frames.length; i++) {
      assert.equal((frames[i].timestamp - frames[i - 1].timestamp) >>> 0, TICKS_PER_FRAME, `frame ${i} timestamp step`);
    }

    const file = join(tmp, 'from-ffmpeg.h264');
    writeFileSync(file, Buffer.concat(frames.map((f) => f.data)));
    const decode = await run('ffmpeg', ['-nostdin', '-v', 'error', '-i', file, '-f', 'null', '-']);
    assert.equal(decode.code, 0);
    assert.equal(decode.stderr, '', 'FFmpeg decodes our rebuilt Annex B without a single error');
    assert.equal(await countFrames(file), FRAMES);
  });

  test('(b) our packetizer → UDP → FFmpeg reading our SDP: zero errors, frames identical', async () => {
    // The source: x264 as Annex B, an AUD in front of every access unit to split on.
    const src = join(tmp, 'source.h264');
    const enc = await run('ffmpeg', ['-nostdin', '-v', 'error', ...TESTSRC, ...X264, '-bsf:v', 'h264_metadata=aud=insert', '-f', 'h264', src]);
    assert.equal(enc.code, 0, enc.stderr);
    const aus = accessUnits(splitAnnexB(readFileSync(src)));
    assert.equal(aus.length, FRAMES);
    const reference = await frameMd5(['-i', src]);
    assert.equal(reference.stderr, '');
    assert.equal(reference.md5s.length, FRAMES);

    // A free port pair for FFmpeg (RTP on P, RTCP on P+1): found by binding, then released.
    const [probeRtp, probeRtcp] = await bindRtpPair();
    const port = probeRtp.address().port;
    probeRtp.close();
    probeRtcp.close();
    const sdp = join(tmp, 'stream.sdp');
    writeFileSync(sdp, buildSdp({ codec: 'h264', address: '127.0.0.1', port }));

    // FFmpeg's parser hands out a frame when the next one begins, so the last one waits for the
    // end of input: -listen_timeout 1 makes 1 s without packets the end. The timeout below only
    // bounds a failure.
    const receiver = startRun(
      'ffmpeg',
      ['-nostdin', '-v', 'error', '-protocol_whitelist', 'file,udp,rtp', '-listen_timeout', '1', '-i', sdp, '-f', 'framemd5', '-'],
      20_000,
    );
    const sock = await bindUdp(0);
    const packetizer = new H264Packetizer();
    const sender = new RtpSender({ payloadType: PT_H264 });
    let packets = 0;
    const structures = new Set<number>(); // first-byte types of our payloads: 24 STAP-A, 28 FU-A, else single
    try {
      await waitForUdpListener(port, receiver.child, 5000);
      for (let i = 0; i < aus.length; i++) {
        const payloads = packetizer.packetize(aus[i]);
        for (const p of payloads) structures.add(p[0][0] & 0x1f);
        const datagrams = sender.frame(payloads, (i * TICKS_PER_FRAME) >>> 0);
        for (const d of datagrams) {
          await new Promise<void>((resolve, reject) => sock.send(d, port, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
          packets++;
        }
        await sleep(3); // pace like a live source, so FFmpeg's socket buffer never overflows
      }
    } finally {
      sock.close();
    }
    const r = await receiver.done;
    const md5s = r.stdout.split('\n').filter((l) => l && !l.startsWith('#'));
    // The one line we expect is how input ends: the -listen_timeout we asked for, reported as
    // "<sdp>: Connection timed out" (and FFmpeg's "Last message repeated N times" for it). Any
    // other line, a decoder error or warning about our packets above all, fails the test.
    const timedOut = `${sdp}: Connection timed out`;
    const lines = r.stderr.split('\n').filter((l) => l.trim() !== '');
    const unexpected = lines.filter((l, i) => l !== timedOut && !(/^\s+Last message repeated \d+ times$/.test(l) && lines[i - 1] === timedOut));
    assert.deepEqual(unexpected, [], 'FFmpeg decodes our RTP stream without a single error or warning');
    assert.ok(lines.includes(timedOut), 'input ended by the timeout, not by anything going wrong');
    assert.equal(r.code, 0);
    assert.ok(packets > FRAMES, 'the stream used more than one packet per frame');
    assert.ok(structures.has(NalType.STAP_A) && structures.has(NalType.FU_A), 'STAP-A and FU-A were both exercised');
    assert.ok([...structures].some((t) => t >= 1 && t <= 23), 'single NAL unit packets were exercised');
    assert.equal(md5s.length, FRAMES, 'every frame decoded');
    // framemd5 lines: stream, dts, pts, duration, size, md5. Compare the pictures themselves.
    const pictures = (lines: string[]) => lines.map((l) => l.split(',').slice(4).join(',').trim());
    assert.deepEqual(pictures(md5s), pictures(reference.md5s), 'each decoded picture equals the source file decoded directly');
  });
});
