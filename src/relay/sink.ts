/**
 * Where a viewer's packets go. Routing, history and catch-up hand packets to a viewer's sink and
 * never ask what is behind it, so a new transport (RTSP interleaved over TCP, WebRTC) is one sink
 * kind plus the path that admits its viewers (RelayCore.attach), and nothing else changes.
 *
 * UDP viewers are the fast path and have no method of their own: the relay collects their
 * endpoints into one list per stream and returns it with the buffer (Output), so fanout-send.ts
 * sends the same bytes to all of them in sendmmsg batches. Every other kind gets deliver().
 */
import type { Endpoint } from '../util/net.ts';

/** One buffer for many destinations: the relay serializes once and sends the same bytes to all. */
export interface Output {
  data: Buffer;
  /**
   * Never changed after it is returned: stream.targets is replaced on every join and leave, not
   * edited, so a sender may cache per list (fanout-send.ts does).
   */
  to: readonly Endpoint[];
}

/** Adding a transport adds its name here. */
export type SinkKind = 'udp' | 'rtsp' | 'push' | 'webrtc';

export interface UdpSink {
  readonly kind: 'udp';
  /** endpointKey(endpoint): a UDP viewer is the address its datagrams come from. */
  readonly id: string;
  /** Where its datagrams go; the same object while it watches (fanout-send.ts caches by it). */
  readonly endpoint: Endpoint;
}

export interface DeliverySink {
  readonly kind: Exclude<SinkKind, 'udp'>;
  /** Unique among all viewers and never a UDP id: `<kind>:<session>`. */
  readonly id: string;
  /** The peer's address, for logs and the dashboard. */
  readonly endpoint: Endpoint;
  /**
   * One datagram, as a UDP viewer would get it: RTP, the sharer's RTCP, the relay's ENDED. The
   * buffer is shared with every viewer and kept in history: read or copy it, never write it.
   * Called on the relay's hot path, so it queues and returns. False: not delivered (counted as a
   * send error, like a failed UDP send).
   */
  deliver(data: Buffer): boolean;
  /**
   * The transport leaves out the sound cached before the join (OutgoingStream.joining), so live
   * sound reaches it at once during its catch-up instead of queued behind the cached pictures: a
   * player plays sound as it comes and keeps a burst of it as delay (Chromium's sound buffer held
   * 200-237 ms after a join, draining over some seconds, while its lip sync waited on it).
   */
  readonly soundAtOnce?: boolean;
  /**
   * The relay dropped this viewer: it left, or went silent for VIEWER_TIMEOUT_MS (a stream that
   * ends keeps its viewers for the next sharer). The transport ends its session (an RTSP TEARDOWN, a closed peer connection); a later
   * attach() is a new viewer, caught up again. Not called for detach(), which the transport asked for.
   */
  closed?(why: 'left' | 'timeout'): void;
}

export type ViewerSink = UdpSink | DeliverySink;

export function endpointKey(e: Endpoint): string {
  return `${e.address}|${e.port}`;
}

export function udpSink(endpoint: Endpoint, id = endpointKey(endpoint)): UdpSink {
  return { kind: 'udp', id, endpoint };
}
