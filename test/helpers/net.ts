/** UDP sockets for tests: bound on 127.0.0.1 only, and a wait for another process's socket. */
import type { ChildProcess } from 'node:child_process';
import dgram from 'node:dgram';
import { existsSync, readFileSync } from 'node:fs';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A UDP socket bound on 127.0.0.1:`port` (0: the kernel picks). */
export function bindUdp(port: number): Promise<dgram.Socket> {
  return new Promise((resolve, reject) => {
    const s = dgram.createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '127.0.0.1', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

/**
 * Sockets on ports P and P+1: FFmpeg's RTP muxer sends RTCP to P+1 (RFC 3550 §11) and its demuxer
 * listens on both. P comes from the kernel; another is tried when P+1 is taken.
 */
export async function bindRtpPair(): Promise<[dgram.Socket, dgram.Socket]> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const rtp = await bindUdp(0);
    const port = rtp.address().port;
    if (port < 65535) {
      const rtcp = await bindUdp(port + 1).catch(() => null);
      if (rtcp) return [rtp, rtcp];
    }
    rtp.close();
  }
  throw new Error('no two adjacent free UDP ports on 127.0.0.1');
}

/** Whether any socket is bound to UDP `port` (Linux /proc/net/udp: field 1 is the local address, port in hex). */
function udpPortBound(port: number): boolean {
  const suffix = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  return readFileSync('/proc/net/udp', 'utf8')
    .split('\n')
    .slice(1) // header line
    .some((line) => line.trim().split(/\s+/)[1]?.endsWith(suffix));
}

/** Waits until `child` (FFmpeg) has bound UDP `port`; fails if it exits first or takes too long. */
export async function waitForUdpListener(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  if (!existsSync('/proc/net/udp')) {
    await sleep(1000); // no way to look: FFmpeg opens its socket well within a second
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (!udpPortBound(port)) {
    if (child.exitCode !== null) throw new Error(`ffmpeg exited (${child.exitCode}) before binding UDP ${port}`);
    if (Date.now() > deadline) throw new Error(`ffmpeg did not bind UDP ${port} within ${timeoutMs} ms`);
    await sleep(20);
  }
}
