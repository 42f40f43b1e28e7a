/**
 * A WHEP player other than the relay's page, for tests: werift's peer connection as the browser,
 * offering what Chromium offers for the picture (H.264 constrained Baseline and Main, mode 1) and
 * Opus, over 127.0.0.1 only. What it receives is kept as RTP for the test to judge with real tools.
 *
 * `loss`: the share of picture packets dropped on their first arrival (before the peer connection
 * sees them, so it asks for them again by NACK, as a browser on a lossy path would); a repair of
 * the same number gets through.
 */
import { RTCPeerConnection, RTCRtpCodecParameters, useOPUS, type RtpPacket } from 'werift';

const NACK_EVERY_MS = 20;
/** Marks a packet let through the bottleneck's queue. */
const QUEUED = Symbol('queued');

export interface WhepPlayer {
  status: number;
  /** The answer's Location (the session's resource), or the refusal's text. */
  location?: string;
  text: string;
  /** Picture packets as they arrived (after any repair), serialized. */
  video: Buffer[];
  audioPackets: number;
  /** Picture packets dropped on purpose (`loss`). */
  dropped: number;
  connected: Promise<void>;
  close(): Promise<void>;
}

export async function whepPlay(
  url: string,
  opts: { token?: string; loss?: number; bottleneckKbps?: number; bufferBytes?: number; offer?: (sdp: string) => string } = {},
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
  });
  const video: Buffer[] = [];
  const player = { video, audioPackets: 0, dropped: 0 };
  const firstSeen = new Set<number>();
  const v = pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  // werift's receiver keeps handleRTP private; it is where its NACK generator first sees a packet.
  const receiver = v.receiver as unknown as { handleRTP: (packet: RtpPacket, ...rest: unknown[]) => void };
  const handle = receiver.handleRTP.bind(receiver);
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
    close: async () => {
      if (closed) return;
      closed = true;
      await pc.close().catch(() => undefined);
    },
  };
}
