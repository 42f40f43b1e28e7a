/**
 * The statistics each role reports once a second: the same object feeds --stats-json, the plain
 * summary line and the dashboard, so all three always show the same numbers.
 * `null` means "not known yet" (no frame, no report); counters start at 0.
 */
import type { ConnectionState } from '../player/viewer.ts';
import type { RelayCounters } from '../relay/core.ts';

export interface WatchSnapshot {
  role: 'watch';
  stream: string;
  relay: string;
  state: ConnectionState;
  codec: 'h264' | 'mjpeg' | null;
  width: number | null;
  height: number | null;
  packetsReceived: number;
  packetsLost: number;
  lossPercent: number;
  jitterMs: number;
  bitrateKbps: number;
  fps: number;
  framesComplete: number;
  framesDropped: number;
  /** Frames held back while waiting for a keyframe after a loss. */
  framesSkipped: number;
  /**
   * Capture → the frame handed to the player (or file), from the sharer's SR clock mapping. The
   * display adds its own refresh on top (up to one refresh interval, ~17 ms at 60 Hz).
   */
  latencyMs: number | null;
  duplicates: number;
  reordered: number;
  malformed: number;
  keyframeRequests: number;
  nacksSent: number;
  recoveredByRtx: number;
  recoveredByFec: number;
  framesGivenUp: number;
  rttMs: number | null;
  /** How long a gap may hold frames back while NACKs repair it. */
  latencyBudgetMs: number;
  /** From the first SUBSCRIBE to the first whole frame. */
  firstFrameMs: number | null;
  /** Times the stream's sender changed (a new SSRC): a sharer restart, never an intruder. */
  publisherRestarts: number;
  /** Encrypted packets that would not decrypt (--encrypt). */
  undecryptable: number;
  /** The player window: keeping up ('live'), or stopped reading ('behind'); null without one. */
  player: 'live' | 'behind' | null;
  /** Times a player that had fallen behind was restarted live. */
  playerRestarts: number;
  /** Frames not given to a player that had stopped keeping up. */
  framesHeldBack: number;
  /** Frames handed to the player as stale (catch-up, or released late): decoded, not to be shown. */
  framesStale: number;
  /** Frames the current player dropped itself as late (ffplay's own count). */
  playerDropped: number;
  /** Frames no sink could take (counted and dropped). */
  sinkErrors: number;
}

export interface ShareViewerRow {
  ssrc: string;
  lossPercent: number;
  jitterMs: number;
  rttMs: number | null;
}

export interface ShareSnapshot {
  role: 'share';
  stream: string;
  codec: 'h264' | 'mjpeg';
  source: string;
  relay: string;
  fps: number;
  bitrateKbps: number;
  framesEncoded: number;
  framesSent: number;
  keyframesSent: number;
  packetsSent: number;
  bytesSent: number;
  viewers: number;
  worstLossPercent: number | null;
  worstRttMs: number | null;
  viewerReports: ShareViewerRow[];
  /** FEC parity packets among packetsSent (--fec). */
  fecPacketsSent: number;
  keyframeRequests: number;
  /** Encoder runs started to answer keyframe requests. */
  keyframeRestarts: number;
  encoderRestarts: number;
  sendErrors: number;
}

export interface RelayStreamRow {
  name: string;
  publisher: string | null;
  bitrateInKbps: number;
  packetsIn: number;
  packetsOut: number;
  viewers: number;
  /** Refused PUBLISHes, failed --key datagrams, failed sends to its viewers (RelayCore StreamState.dropped). */
  dropped: number;
}

export interface RelayViewerRow {
  stream: string;
  address: string;
  uptimeS: number;
  lossPercent: number | null;
  jitterMs: number | null;
  rttMs: number | null;
  packetsOut: number;
  sendErrors: number;
}

/** The relay's own counters (src/relay/core.ts RelayCounters, each documented there) and rows. */
export interface RelaySnapshot extends RelayCounters {
  role: 'relay';
  address: string;
  streams: number;
  viewers: number;
  bitrateInKbps: number;
  bitrateOutKbps: number;
  /** Malformed + unknown source + oversize + hijack attempts + over limit + rate limited. */
  dropped: number;
  /** 'native': batches through the recvmmsg/sendmmsg helper; 'dgram': node:dgram (--no-native, or not built). */
  io: 'native' | 'dgram';
  /** Datagrams the native path left to dgram's queue: the kernel's send buffer was full, or earlier ones still waited (fanout-send.ts). */
  handedToDgram: number;
  perStream: RelayStreamRow[];
  perViewer: RelayViewerRow[];
}

export type Snapshot = WatchSnapshot | ShareSnapshot | RelaySnapshot;
