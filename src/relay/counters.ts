/**
 * The relay's counters: one object every part of the relay counts into, and the contract of the
 * dashboard's relay view (src/dashboard/snapshots.ts) and of --stats-json.
 */

export interface RelayCounters {
  datagramsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /** Datagrams that were not RTP/RTCP or failed to parse. */
  malformed: number;
  /** Datagrams larger than MAX_DATAGRAM. */
  oversize: number;
  /** Media or RTCP from an address that is neither a publisher nor a viewer. */
  unknownSource: number;
  /** PUBLISH for a stream latched to another address. */
  hijackAttempts: number;
  /** Streams or viewers refused because a cap was reached. */
  overLimit: number;
  sendErrors: number;
  /** Packets re-sent from history in answer to a viewer's NACK. */
  retransmissions: number;
  /** NACKed packets the history no longer had, or over a viewer's retransmission budget. */
  rtxMisses: number;
  /** Sequence numbers of the sharer's media asked for again (NACK), each try counted: lost on its uplink. */
  uplinkNacked: number;
  /** Of those, packets that came. */
  uplinkRepaired: number;
  /** Copies of media packets already here (an ask answered twice, or the path duplicated one): dropped. */
  uplinkCopies: number;
  /** Viewers that joined with the keyframe cache (instant start). */
  cacheJoins: number;
  /** Datagrams that failed --key authentication (tag, replay) or SUBSCRIBEs without a valid --watch-key proof. */
  authFailures: number;
  /** CHALLENGEs sent to unproven addresses. */
  challenges: number;
  /** Control messages dropped for arriving faster than an address may send them. */
  rateLimited: number;
  /**
   * Viewers' keyframe requests not passed on to the sharer: one for the stream was already on its
   * way (KEYFRAME_WAIT_MS), or the viewer asked again within VIEWER_KEYFRAME_MIN_MS.
   */
  keyframeRequestsHeld: number;
  /** Times a viewer's circuit breaker (RFC 8083, transport/breaker.ts) stopped media to it. */
  circuitBreaks: number;
  /** RFC 8888 congestion control feedback reports sent to sharers. */
  feedbackReports: number;
  /** Probe padding from sharers (transport/control.ts PT_PROBE): noted for the feedback, never forwarded. */
  probePackets: number;
  /** Viewers moved to another quality layer (layers.ts). */
  layerMoves: number;
}

export function newRelayCounters(): RelayCounters {
  return {
    datagramsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    malformed: 0,
    oversize: 0,
    unknownSource: 0,
    hijackAttempts: 0,
    overLimit: 0,
    sendErrors: 0,
    retransmissions: 0,
    rtxMisses: 0,
    uplinkNacked: 0,
    uplinkRepaired: 0,
    uplinkCopies: 0,
    cacheJoins: 0,
    challenges: 0,
    rateLimited: 0,
    authFailures: 0,
    keyframeRequestsHeld: 0,
    circuitBreaks: 0,
    feedbackReports: 0,
    probePackets: 0,
    layerMoves: 0,
  };
}
