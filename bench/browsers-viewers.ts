/**
 * Simulated viewers for bench/browsers.ts, in a process of their own so that the relay's CPU is
 * measured alone. Commands come as JSON lines on stdin; each answer is one JSON line on stdout.
 *
 * - WebRTC viewers: werift peer connections that do what a browser does up to the media (WHEP
 *   offer, ICE, DTLS with Chromium's SRTP profile; an RTCP receiver report each second, which
 *   keeps them at the relay, and transport-wide feedback at Chromium's rate), then count the SRTP packets that arrive without decrypting them: the relay pays for every packet
 *   in full, the viewers' process a little. Each offers from one of 127.0.0.2-9, since the relay
 *   takes at most WEBRTC_MAX_SESSIONS_PER_ADDRESS browsers from one address.
 * - UDP viewers: udpcast's own handshake (SUBSCRIBE each second, the CHALLENGE's cookie echoed),
 *   counting the datagrams that arrive: the baseline.
 */
import dgram from 'node:dgram';
import http from 'node:http';
import { createInterface } from 'node:readline';
import { ProtectionProfileAes128CmHmacSha1_80, RTCPeerConnection, RTCRtpCodecParameters, RtcpReceiverInfo, RtcpRrPacket, useOPUS, type RTCDtlsTransport } from 'werift';
import { ControlType, controlApp, parseControl } from '../src/transport/control.ts';
import { isRtcp, parseRtcp, serializeRtcp } from '../src/transport/rtcp.ts';
import { WEBRTC_MAX_SESSIONS_PER_ADDRESS } from '../src/defaults.ts';

export type ViewersCmd =
  | { cmd: 'webrtc'; count: number; url: string }
  | { cmd: 'udp'; count: number; port: number; stream: string }
  | { cmd: 'count' }
  | { cmd: 'close' };

/** A transport-wide feedback report (draft-holmer-rmcat-transport-wide-cc-extensions-01) of five packets, as test/twcc.test.ts writes it. */
const TWCC_REPORT = Buffer.from([0x8f, 205, 0, 6, 0, 0, 0, 1, 0, 0, 0, 2, 0, 100, 0, 5, 0x00, 0x03, 0xe8, 0, 0xd1, 0x90, 4, 8, 0xff, 0xfc, 12, 0]);
const TWCC_EVERY_MS = 66;

let packets = 0;
let bytes = 0;
const closers: Array<() => Promise<void> | void> = [];
let webrtcViewers = 0;
/** Offers made: the next one's source address follows from it. */
let offered = 0;

function post(url: string, body: string, localAddress: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', localAddress, headers: { 'Content-Type': 'application/sdp', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

async function webrtcViewer(url: string, address: string): Promise<void> {
  const pc = new RTCPeerConnection({
    iceServers: [],
    bundlePolicy: 'max-bundle',
    iceUseIpv4: true,
    iceUseIpv6: false,
    iceInterfaceAddresses: { udp4: address },
    iceAdditionalHostAddresses: [address],
    codecs: {
      video: [new RTCRtpCodecParameters({ mimeType: 'video/H264', clockRate: 90000, rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }], parameters: 'level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f' })],
      audio: [useOPUS()],
    },
  });
  const v = pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  closers.push(() => pc.close().catch(() => undefined));
  const connected = new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('no ICE and DTLS in 15 s')), 15_000);
    pc.connectionStateChange.subscribe((s) => s === 'connected' && (clearTimeout(t), resolve()));
  });
  await pc.setLocalDescription(await pc.createOffer());
  // The SRTP profile Chromium ended with against the relay (its getStats: SRTP_AES128_CM_HMAC_SHA1_80),
  // not werift's own first choice (AEAD_AES_128_GCM): the relay's cost is the browser's.
  (v.receiver.dtlsTransport as unknown as { srtpProfiles: number[] }).srtpProfiles = [ProtectionProfileAes128CmHmacSha1_80];
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, 2000);
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && (clearTimeout(t), resolve()));
  });
  const r = await post(url, pc.localDescription!.sdp, address);
  if (r.status !== 201) throw new Error(`WHEP ${r.status}: ${r.text.trim()}`);
  await pc.setRemoteDescription({ type: 'answer', sdp: r.text });
  await connected;
  const dtls = v.receiver.dtlsTransport as RTCDtlsTransport & { config: { debug?: { inboundPacketLoss?: number } } };
  // werift drops every incoming media packet before decrypting it (its debug loss, drawn against
  // Math.random, at a rate no draw passes); the counter below sees them first.
  dtls.config.debug = { inboundPacketLoss: Number.MIN_VALUE };
  /** The newest sequence number of each SSRC received (the header is in the clear), for the reports. */
  const highest = new Map<number, number>();
  dtls.iceTransport.connection.onData.subscribe((data: Buffer) => {
    const pt = data[1] & 0x7f;
    if (data.length > 12 && (pt < 72 || pt > 79)) {
      packets++;
      bytes += data.length;
      highest.set(data.readUInt32BE(8), data.readUInt16BE(2));
    }
  });
  // A receiver report a second with a block for each track, as Chromium sends: the relay
  // decrypts it, werift hands it to the track's sender, the relay reads it (loss, circuit breaker).
  const report = () => new RtcpRrPacket({ ssrc: 1, reports: [...highest].map(([ssrc, seq]) => new RtcpReceiverInfo({ ssrc, fractionLost: 0, packetsLost: 0, highestSequence: seq, jitter: 0, lsr: 0, dlsr: 0 })) });
  const rr = setInterval(() => dtls.sendRtcp([report()]).catch(() => undefined), 1000);
  // Chromium's transport-wide feedback, about 15 reports a second (363 in 24 s, measured), only
  // when the relay asked for it (a stream with layers): the relay decrypts and reads each. (A fixed
  // report: the relay reads it but finds no packet of its own named in it.)
  const feedback = { serialize: () => TWCC_REPORT };
  const twcc = r.text.includes('transport-wide-cc') ? setInterval(() => dtls.sendRtcp([feedback as never]).catch(() => undefined), TWCC_EVERY_MS) : undefined;
  closers.push(() => (clearInterval(rr), clearInterval(twcc)));
  webrtcViewers++;
}

async function udpViewer(port: number, stream: string, ssrc: number): Promise<void> {
  const sock = dgram.createSocket('udp4');
  await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
  try {
    sock.setRecvBufferSize(1 << 20);
  } catch {
    // capped by the kernel
  }
  let cookie: Buffer | undefined;
  const subscribe = () => sock.send(serializeRtcp([{ type: 'rr', ssrc, reports: [] }, controlApp({ kind: ControlType.Subscribe, stream, cookie }, ssrc)]), port, '127.0.0.1');
  sock.on('message', (msg) => {
    if (!isRtcp(msg)) {
      packets++;
      bytes += msg.length;
      return;
    }
    try {
      for (const p of parseRtcp(msg)) {
        const c = p.type === 'app' ? parseControl(p) : null;
        if (c?.kind === ControlType.Challenge && c.cookie) {
          cookie = c.cookie;
          subscribe();
        }
      }
    } catch {
      // malformed: dropped
    }
  });
  subscribe();
  const t = setInterval(subscribe, 1000);
  closers.push(() => {
    clearInterval(t);
    sock.close();
  });
}

const say = (o: unknown) => process.stdout.write(JSON.stringify(o) + '\n');

for await (const line of createInterface({ input: process.stdin })) {
  const m = JSON.parse(line) as ViewersCmd;
  try {
    if (m.cmd === 'webrtc') {
      const failures: string[] = [];
      // A few at a time: each offer costs the relay a peer connection and its candidates.
      for (let i = 0; i < m.count; i += 5) {
        const batch = Array.from({ length: Math.min(5, m.count - i) }, (_, j) => {
          const address = `127.0.0.${2 + Math.floor(offered++ / WEBRTC_MAX_SESSIONS_PER_ADDRESS)}`;
          return webrtcViewer(m.url, address).catch((err: Error) => void failures.push(err.message));
        });
        await Promise.all(batch);
      }
      say({ viewers: webrtcViewers, failures });
    } else if (m.cmd === 'udp') {
      for (let i = 0; i < m.count; i++) await udpViewer(m.port, m.stream, 0x5000 + i);
      say({ viewers: m.count });
    } else if (m.cmd === 'count') {
      say({ packets, bytes });
    } else if (m.cmd === 'close') {
      for (const c of closers) await c();
      say({ closed: true });
      break;
    }
  } catch (err) {
    say({ error: (err as Error).message });
  }
}
process.exit(0);
