/**
 * A WHEP player other than the relay's page, for tests: werift's peer connection as the browser,
 * offering what Chromium offers for the picture (H.264 constrained Baseline and Main, mode 1) and
 * Opus, over 127.0.0.1 only. What it receives is kept as RTP for the test to judge with real tools.
 *
 * `loss`: the share of picture packets dropped on their first arrival (before the peer connection
 * sees them, so it asks for them again by NACK, as a browser on a lossy path would); a repair of
 * the same number gets through.
 *
 * Like a browser it offers transport-wide sequence numbers and reports their arrivals
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01), written here: werift's own report leaves
 * lost packets out and measures its first delta from the previous report. `transportCc: false`:
 * none, as a browser that sends REMB instead; `sendRtcp` sends the test's own RTCP (a REMB).
 */
import { performance } from 'node:perf_hooks';
import { ProtectionProfileAeadAes128Gcm, ProtectionProfileAes128CmHmacSha1_80, RTCPeerConnection, RTCRtpCodecParameters, RTP_EXTENSION_URI, RtcpSrPacket, useOPUS, useSdesMid, useTransportWideCC, type RtpPacket } from 'werift';

const NACK_EVERY_MS = 20;
/** How often the player reports arrivals by transport-wide number (Chromium: about every 50-100 ms). */
const TWCC_EVERY_MS = 50;
/** Marks a packet let through the bottleneck's queue. */
const QUEUED = Symbol('queued');

export interface SenderReport {
  ntpMs: number;
  rtp: number;
}

export interface WhepPlayer {
  status: number;
  /** The answer's Location (the session's resource), or the refusal's text. */
  location?: string;
  text: string;
  /** Picture packets as they arrived (after any repair), serialized. */
  video: Buffer[];
  audioPackets: number;
  /** The sender reports received for each track: their NTP time (ms) and RTP time. */
  reports: { video: SenderReport[]; audio: SenderReport[] };
  /** Picture packets dropped on purpose (`loss`). */
  dropped: number;
  connected: Promise<void>;
  /** Sends `data` (RTCP, serialized) to the relay over the session's SRTCP. */
  sendRtcp(data: Buffer): Promise<void>;
  close(): Promise<void>;
}

export async function whepPlay(
  url: string,
  opts: { token?: string; loss?: number; bottleneckKbps?: number; bufferBytes?: number; offer?: (sdp: string) => string; srtp?: 'ctr' | 'gcm'; transportCc?: boolean } = {},
): Promise<WhepPlayer> {
  const h264 = (profile: string, pt: number) =>
    new RTCRtpCodecParameters({
      mimeType: 'video/H264',
      clockRate: 90000,
      payloadType: pt,
      rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }],
      parameters: `level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=${profile}`,
    });
  const pc = new RTCPeerConnection({
    iceServers: [],
    // One transport for both tracks (as a browser does): with werift's default, the second one's sockets outlive close().
    bundlePolicy: 'max-bundle',
    iceUseIpv4: true,
    iceUseIpv6: false,
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
    iceAdditionalHostAddresses: ['127.0.0.1'],
    codecs: { video: [h264('42e01f', 102), h264('4d001f', 104)], audio: [useOPUS()] },
    headerExtensions: { video: [useSdesMid(), useTransportWideCC()], audio: [useSdesMid(), useTransportWideCC()] },
  });
  const video: Buffer[] = [];
  const reports: WhepPlayer['reports'] = { video: [], audio: [] };
  const player = { video, audioPackets: 0, dropped: 0, reports };
  const firstSeen = new Set<number>();
  const v = pc.addTransceiver('video', { direction: 'recvonly' });
  const a = pc.addTransceiver('audio', { direction: 'recvonly' });
  // werift's receiver keeps handleRTP private; it is where its NACK generator first sees a packet.
  const receiver = v.receiver as unknown as { handleRTP: (packet: RtpPacket, ...rest: unknown[]) => void };
  const handle = receiver.handleRTP.bind(receiver);
  const twcc = new TwccReports();
  for (const [kind, t] of [['video', v], ['audio', a]] as const) {
    t.receiver.onRtcp.subscribe((p) => {
      if (!(p instanceof RtcpSrPacket)) return;
      const ntp = p.senderInfo.ntpTimestamp;
      reports[kind].push({ ntpMs: Number(ntp >> 32n) * 1000 + (Number(ntp & 0xffffffffn) / 2 ** 32) * 1000, rtp: p.senderInfo.rtpTimestamp });
    });
  }
  const soundReceiver = a.receiver as unknown as { handleRTP: (packet: RtpPacket, extensions: Record<string, unknown>, ...rest: unknown[]) => void };
  const handleSound = soundReceiver.handleRTP.bind(soundReceiver);
  soundReceiver.handleRTP = (packet, extensions, ...rest) => {
    twcc.arrived(extensions);
    handleSound(packet, extensions, ...rest);
  };
  const sendRtcp = (data: Buffer) =>
    (v.receiver.dtlsTransport as unknown as { sendRtcp: (p: Array<{ serialize(): Buffer }>) => Promise<void> }).sendRtcp([{ serialize: () => data }]).catch(() => undefined);
  const twccTimer = setInterval(() => {
    const report = twcc.report();
    if (report && opts.transportCc !== false) sendRtcp(report);
  }, TWCC_EVERY_MS);
  // `bottleneckKbps`: a link that drains that fast in front of the player, with a `bufferBytes`
  // queue: a packet waits its turn (the queue's delay), or is dropped when it finds the queue full.
  let queued = 0;
  let drainedAt = Date.now();
  receiver.handleRTP = (packet: RtpPacket, ...rest: unknown[]) => {
    if (opts.bottleneckKbps && !(rest as unknown[]).includes(QUEUED)) {
      const now = Date.now();
      queued = Math.max(0, queued - ((now - drainedAt) * opts.bottleneckKbps) / 8);
      drainedAt = now;
      const size = packet.serializeSize + 28;
      if (queued + size > (opts.bufferBytes ?? 30_000)) {
        player.dropped++;
        return;
      }
      queued += size;
      setTimeout(() => receiver.handleRTP(packet, ...rest, QUEUED), (queued * 8) / opts.bottleneckKbps);
      return;
    }
    if ((rest as unknown[]).includes(QUEUED)) rest = rest.filter((r) => r !== QUEUED);
    twcc.arrived(rest[0] as Record<string, unknown>);
    const seq = packet.header.sequenceNumber;
    if (opts.loss && !firstSeen.has(seq)) {
      firstSeen.add(seq);
      if (firstSeen.size > 4096) firstSeen.delete(firstSeen.values().next().value!);
      if (Math.random() < opts.loss) {
        player.dropped++;
        return;
      }
    }
    handle(packet, ...rest);
  };
  // werift asks again for every missing packet each 5 ms and gives up after 10 asks (50 ms): a
  // NACK storm that a relay's retransmission budget rightly refuses, and no repair slower than
  // 50 ms. A browser asks again about once per round trip (Chromium's NackRequester): so here,
  // at most every NACK_EVERY_MS, for 10 asks.
  const nack = (v.receiver as unknown as { nack: { sendNack: () => Promise<void> } }).nack;
  const ask = nack.sendNack;
  let askedAt = 0;
  nack.sendNack = () => {
    const now = Date.now();
    if (now - askedAt < NACK_EVERY_MS) return Promise.resolve();
    askedAt = now;
    return ask();
  };
  pc.onTrack.subscribe((track) => {
    track.onReceiveRtp.subscribe((rtp) => {
      if (track.kind === 'video') video.push(rtp.serialize());
      else player.audioPackets++;
    });
  });
  const connected = new Promise<void>((resolve) => {
    pc.connectionStateChange.subscribe((s) => {
      if (s === 'connected') resolve();
    });
  });
  await pc.setLocalDescription(await pc.createOffer());
  // SRTP: AES-CM with HMAC-SHA1-80 as Chromium ended with against the relay, unless asked for GCM.
  (v.receiver.dtlsTransport as unknown as { srtpProfiles: number[] }).srtpProfiles = [opts.srtp === 'gcm' ? ProtectionProfileAeadAes128Gcm : ProtectionProfileAes128CmHmacSha1_80];
  await new Promise<void>((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const t = setTimeout(resolve, 2000);
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && (clearTimeout(t), resolve()));
  });
  const offer = pc.localDescription!.sdp;
  const r = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...(opts.token ? { Authorization: `Bearer ${opts.token}` } : {}) },
    body: opts.offer ? opts.offer(offer) : offer,
  });
  const text = await r.text();
  const location = r.headers.get('location') ?? undefined;
  if (r.status === 201) await pc.setRemoteDescription({ type: 'answer', sdp: text });
  let closed = false;
  return {
    ...player,
    get audioPackets() {
      return player.audioPackets;
    },
    get dropped() {
      return player.dropped;
    },
    status: r.status,
    location,
    text,
    connected,
    sendRtcp,
    close: async () => {
      if (closed) return;
      closed = true;
      clearInterval(twccTimer);
      await pc.close().catch(() => undefined);
    },
  };
}

/**
 * Transport-wide feedback as a browser sends it: which numbers arrived since the last report and
 * when (a reference time in 64 ms, then each arrival's delta from the one before in 250 µs).
 * Written in 2-bit status vectors (7 packets a chunk: 0 lost, 1 small delta, 2 large delta).
 */
class TwccReports {
  private readonly arrivals: Array<{ tw: number; us: number }> = [];
  private next?: number;
  private count = 0;

  arrived(extensions: Record<string, unknown> | undefined): void {
    const tw = extensions?.[RTP_EXTENSION_URI.transportWideCC];
    if (typeof tw === 'number') this.arrivals.push({ tw, us: Math.round(performance.now() * 1000) });
  }

  report(): Buffer | undefined {
    if (this.arrivals.length === 0) return undefined;
    // From the first number not reported yet (numbers before it, arriving late, are not reported again).
    const base = this.next ?? this.arrivals[0].tw;
    const rel = (tw: number) => (tw - base + 0x10000) & 0xffff;
    const kept = this.arrivals.filter((x) => rel(x.tw) < 0x8000).sort((x, y) => rel(x.tw) - rel(y.tw));
    this.arrivals.length = 0;
    if (kept.length === 0) return undefined;
    const n = rel(kept.at(-1)!.tw) + 1;
    const at = new Map(kept.map((x) => [x.tw, x.us]));
    const reference = Math.floor(kept[0].us / 64_000);
    const symbols: number[] = [];
    const deltas: Buffer[] = [];
    let prev = reference * 64_000;
    for (let i = 0; i < n; i++) {
      const us = at.get((base + i) & 0xffff);
      if (us === undefined) {
        symbols.push(0);
        continue;
      }
      const d = Math.round((us - prev) / 250);
      prev += d * 250;
      if (d >= 0 && d <= 255) {
        symbols.push(1);
        deltas.push(Buffer.from([d]));
      } else {
        symbols.push(2);
        const b = Buffer.alloc(2);
        b.writeInt16BE(Math.max(-32768, Math.min(32767, d)));
        deltas.push(b);
      }
    }
    const chunks: Buffer[] = [];
    for (let i = 0; i < symbols.length; i += 7) {
      let word = 0xc000;
      for (let j = 0; j < 7; j++) word |= (symbols[i + j] ?? 0) << (12 - 2 * j);
      const b = Buffer.alloc(2);
      b.writeUInt16BE(word);
      chunks.push(b);
    }
    const body = Buffer.concat([Buffer.alloc(16), ...chunks, ...deltas]);
    const padded = Buffer.concat([body, Buffer.alloc((4 - ((4 + body.length) % 4)) % 4)]);
    padded.writeUInt32BE(1, 0); // sender SSRC
    padded.writeUInt32BE(0, 4); // media SSRC: none named (the relay reads the report whatever it names)
    padded.writeUInt16BE(base, 8);
    padded.writeUInt16BE(n, 10);
    padded.writeUIntBE(reference & 0xffffff, 12, 3);
    padded.writeUInt8(this.count++ & 0xff, 15);
    const header = Buffer.from([0x80 | 15, 205, 0, 0]);
    header.writeUInt16BE((4 + padded.length) / 4 - 1, 2);
    this.next = (base + n) & 0xffff;
    return Buffer.concat([header, padded]);
  }
}
