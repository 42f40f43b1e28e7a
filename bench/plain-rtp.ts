/**
 * The plain FFmpeg RTP baseline that the loss and uplink benchmarks set udpcast against, in one
 * place so that both measure it the same way: a file encoded beforehand is streamed by FFmpeg
 * (`-re -c copy -f rtp`, so the bits are known) through `udpcast impair` to an FFmpeg receiver
 * reading an SDP, which decodes to framemd5. A received frame is clean when its MD5 is one of the
 * lossless decode's: error concealment produces pictures that match none.
 */
import dgram from 'node:dgram';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { OUT, captureStderr, exited, freePortPair, run, sleep, stop, udpcast, waitForLine } from './lib.ts';

/** framemd5 lines → MD5s (the last field of each non-comment line), and FFmpeg's error lines. */
export function decodeMd5(file: string, args: string[] = []): { md5s: string[]; errors: number } {
  const r = spawnSync('ffmpeg', ['-hide_banner', '-v', 'error', ...args, '-i', file, '-fps_mode', 'passthrough', '-f', 'framemd5', '-'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return { md5s: mdFromFramemd5(r.stdout), errors: r.stderr.split('\n').filter((l) => l.trim()).length };
}

export function mdFromFramemd5(text: string): string[] {
  return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(',').at(-1)!.trim());
}

export interface PlainRtpOptions {
  /** Names the files left in bench/out: TAG.sdp and TAG.framemd5. */
  tag: string;
  /** The impairment, as `udpcast impair` options after --listen and --to (e.g. --up-loss 5% --delay 10ms). */
  impair: string[];
  /** The reference: raw H.264 encoded beforehand (SPS/PPS before every IDR, so a receiver can start anywhere). */
  ref: string;
  /** MD5s of the reference's lossless decode: what a clean frame looks like. */
  refMd5: Set<string>;
  /** The reference's frame rate: the sender streams it in real time (-re) at this rate. */
  fps: number;
  /** How long the sender may run before it is stopped, whether or not it has sent the whole file. */
  txLimitMs: number;
}

export interface PlainRtpResult {
  /** The receiver's framemd5: one MD5 per picture it decoded. */
  md5s: string[];
  framesDecoded: number;
  /** Of those, pictures that are one of the reference's. */
  clean: number;
  /** Lines the receiver wrote to stderr (at -v error: its decoder and depacketizer errors). */
  errors: number;
  /** What the impair proxy wrote to stderr, including the summary it prints when stopped. */
  impairStderr: string;
}

/** One plain FFmpeg sender → `udpcast impair` → FFmpeg receiver run; every child is stopped before it returns. */
export async function plainRtpRun(o: PlainRtpOptions): Promise<PlainRtpResult> {
  const rxPort = await freePortPair();
  const inPort = await freePortPair();
  // FFmpeg's muxer sends RTCP to port+1; a socket there keeps ICMP errors away from it.
  const rtcpSink = dgram.createSocket('udp4');
  await new Promise<void>((r) => rtcpSink.bind(inPort + 1, '127.0.0.1', () => r()));
  rtcpSink.on('message', () => {});
  const sdp = path.join(OUT, `${o.tag}.sdp`);
  writeFileSync(sdp, ['v=0', 'o=- 0 0 IN IP4 127.0.0.1', 's=bench', 'c=IN IP4 127.0.0.1', 't=0 0', `m=video ${rxPort} RTP/AVP 96`, 'a=rtpmap:96 H264/90000', 'a=fmtp:96 packetization-mode=1', ''].join('\n'));
  const md5File = path.join(OUT, `${o.tag}.framemd5`);
  // A receiver that never writes must not leave an earlier run's frames to be counted.
  writeFileSync(md5File, '');
  const impair = udpcast(['impair', '--listen', `127.0.0.1:${inPort}`, '--to', `127.0.0.1:${rxPort}`, ...o.impair]);
  const impairSaid = captureStderr(impair);
  let rx, tx;
  let errors = 0;
  try {
    await waitForLine(impair, /impair: up/, 20_000, 'impair');
    rx = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-protocol_whitelist', 'file,udp,rtp', '-i', sdp, '-fps_mode', 'passthrough', '-f', 'framemd5', '-flush_packets', '1', '-y', md5File], { stdio: ['ignore', 'ignore', 'pipe'] });
    rx.stderr!.on('data', (c: Buffer) => (errors += c.toString().split('\n').filter((l) => l.trim()).length));
    // The receiver must be listening before the first keyframe leaves.
    await sleep(1000);
    tx = run('ffmpeg', ['-hide_banner', '-v', 'error', '-nostdin', '-re', '-framerate', String(o.fps), '-f', 'h264', '-i', o.ref, '-c', 'copy', '-f', 'rtp', `rtp://127.0.0.1:${inPort}`]);
    await Promise.race([exited(tx), sleep(o.txLimitMs)]);
    // What is still in the impair proxy's delay line and queue reaches the receiver.
    await sleep(1500);
  } finally {
    await stop(tx);
    // SIGINT: FFmpeg finishes its output and exits (a SIGKILL would lose what it buffered).
    await stop(rx, 5000, 'SIGINT');
    await stop(impair);
    await new Promise<void>((r) => rtcpSink.close(() => r()));
  }
  const md5s = mdFromFramemd5(readFileSync(md5File, 'utf8'));
  return {
    md5s,
    framesDecoded: md5s.length,
    clean: md5s.filter((m) => o.refMd5.has(m)).length,
    errors,
    impairStderr: impairSaid(),
  };
}
