/**
 * The statistics each role reports once a second: the same object feeds --stats-json, the plain
 * summary line and the dashboard, so all three always show the same numbers.
 * `null` means "not known yet" (no frame, no report); counters start at 0.
 */
import type { RtspCounters } from '../relay/rtsp/server.ts';
import type { PushStatus } from '../relay/rtsp/push.ts';
import type { BrowserCounters } from '../relay/webrtc/viewers.ts';
import type { CodecName } from '../codecs/registry.ts';
import type { ConnectionState } from '../player/viewer.ts';
import type { RelayCounters } from '../relay/core.ts';
import type { RelayState } from '../transport/publisher.ts';

export interface WatchSnapshot {
  role: 'watch';
  stream: string;
  relay: string;
  state: ConnectionState;
  codec: CodecName | null;
  width: number | null;
  height: number | null;
  /** Unique media packets received (arrived or rebuilt by FEC), over the whole session. */
  packetsReceived: number;
  /**
   * Packets the sharer sent that should have arrived in sequence so far: those that did, plus
   * lostOnWire. The base of lostOnWirePercent.
   */
  packetsExpected: number;
  /**
   * Lost on the wire: sequence numbers that did not arrive in sequence (missing when a later one
   * came). Each ends as recoveredByRtx, recoveredByFec, reordered or unrepaired, or is still
   * repairPending: lostOnWire = recoveredByRtx + recoveredByFec + reordered + unrepaired + repairPending.
   */
  lostOnWire: number;
  lostOnWirePercent: number;
  /** Lost packets given up: the frames that needed them were dropped. */
  unrepaired: number;
  /** Lost packets still within their repair budget (a gauge, not a counter). */
  repairPending: number;
  /** Unrepaired packets that arrived after all, too late to use. */
  tooLate: number;
  /**
   * RFC 3550 A.3 cumulative lost (expected - received, what a receiver report carries), added up
   * over sharer restarts: loss after repair, as other RTP tools count it.
   */
  rfc3550Lost: number;
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
  /** Lost packets that arrived late by themselves, sooner than a re-sent copy could have. */
  reordered: number;
  malformed: number;
  keyframeRequests: number;
  nacksSent: number;
  /** Lost packets repaired by the relay re-sending them (NACK) and by FEC parity. */
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
  /** Times the relay moved this viewer to another quality layer (its picture size changes with it). */
  layerMoves: number;
  /** The sharer's sound (Opus packets): received and handed on, never seen, too late or twice. */
  audioPackets: number;
  audioLost: number;
  audioLate: number;
  /** Of the sound lost, packets RED's copies gave back, and packets concealed (never came). */
  audioRecovered: number;
  audioConcealed: number;
  /** Packets of silence the sharer did not send (DTX), filled with silence by the viewer. */
  audioSilence: number;
  /** RFC 3550 jitter of the sound packets. */
  audioJitterMs: number | null;
  /** How much later the sound arrives than the picture captured at the same instant (negative: earlier). */
  audioSyncMs: number | null;
  /** Encrypted packets that would not decrypt (--encrypt). */
  undecryptable: number;
  /** The player window: keeping up ('live'), or stopped reading ('behind'); null without one. */
  player: 'live' | 'behind' | null;
  /** Times a player that had fallen behind was restarted live. */
  playerRestarts: number;
  /** Frames not given to a player that had stopped keeping up. */
  framesHeldBack: number;
  /**
   * The sound given to the player window, not given (before its first picture, stale, while it
   * was behind or draining), and times it was drained (it fell behind the picture in ffplay).
   */
  playerSoundPlayed: number;
  playerSoundNotPlayed: number;
  playerSoundDrains: number;
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
  codec: CodecName;
  source: string;
  relay: string;
  /**
   * Whether the relay answers our PUBLISH: 'not answering' after RELAY_SILENT_MS without an ACK
   * (the sharer keeps sending and announcing, so the rates then say nothing about viewers).
   */
  relayState: RelayState;
  /** Seconds since the relay last answered, while it is 'not answering'; else null. */
  relaySilentS: number | null;
  /** Times the relay stopped answering. */
  relayOutages: number;
  fps: number;
  bitrateKbps: number;
  framesEncoded: number;
  framesSent: number;
  keyframesSent: number;
  /** Opus packets sent (--audio); 0 without sound. */
  audioPacketsSent: number;
  /** Opus packets of silence not sent (DTX, where FFmpeg's libopus has it). */
  audioSilenceNotSent: number;
  packetsSent: number;
  bytesSent: number;
  viewers: number;
  worstLossPercent: number | null;
  worstRttMs: number | null;
  viewerReports: ShareViewerRow[];
  /** FEC parity packets among packetsSent (--fec). */
  fecPacketsSent: number;
  /** Media packets sent again: the relay said they never arrived (its NACK; --relay only). */
  resent: number;
  keyframeRequests: number;
  /** Encoder runs started to answer keyframe requests. */
  keyframeRestarts: number;
  encoderRestarts: number;
  sendErrors: number;
  /**
   * Congestion control (--adapt, transport/congestion.ts): what the path takes by the relay's
   * RFC 8888 feedback, the encoder's bitrate now, the queue delay and loss the feedback shows, and
   * the controller's last decision ('room', 'hold', 'queue', 'loss'). null with --no-adapt, with
   * the embedded relay (no uplink between them), or before the first report.
   */
  estimateKbps: number | null;
  targetKbps: number;
  queueDelayMs: number | null;
  pathLossPercent: number | null;
  ccState: string | null;
  /** Encoder runs started to change the bitrate. */
  retargets: number;
  /** Probes of the uplink sent (short padding clusters that find a wider path). */
  probes: number;
  /** Datagrams the pacer dropped: its queue held PACE_MAX_QUEUE_MS already. */
  pacerDropped: number;
  /** Quality layers encoded (--layers), and how many are sent now (upper ones paused when the path is narrow). */
  layers: number;
  layersSent: number;
  /** Each --push URL: its state and counters (relay/rtsp/push.ts); absent without --push. */
  push?: PushStatus[];
  /** Frames not sent while the uplink's RFC 8083 circuit breaker held media, and why it holds it now (null: it does not). */
  framesHeld: number;
  uplinkPaused: string | null;
}

export interface RelayStreamRow {
  name: string;
  publisher: string;
  /** Its picture's codec (--codec name) and size, read off the cached keyframe; null before one. */
  codec: string | null;
  size: string | null;
  /** Whether it carries sound. */
  sound: boolean;
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
  /** Packets re-sent to it from history (its retransmission budget used: RTX_SHARE of what it is sent). */
  retransmissions: number;
  /** The quality layer it is sent (0: the top one); null when the stream has one. */
  layer: number | null;
  /** What its path takes by its own RFC 8888 feedback (kbit/s), once the path has shown a limit. */
  estimateKbps: number | null;
  /** Why its layer last changed. */
  layerWhy: string | null;
}

/** The relay's own counters (src/relay/counters.ts RelayCounters, each documented there) and rows. */
export interface RelaySnapshot extends RelayCounters {
  role: 'relay';
  address: string;
  /** The RTSP server (--rtsp-port): its port, sessions now and counters; absent with --rtsp-port 0. */
  rtsp?: { port: number; sessionsNow: number } & RtspCounters;
  /** Each --push STREAM=URL: its state and counters (relay/rtsp/push.ts); absent without --push. */
  push?: PushStatus[];
  /** Browser viewers (WebRTC, WHEP; relay/webrtc/viewers.ts): sessions now and counters; absent with --http 0. */
  webrtc?: { sessionsNow: number } & BrowserCounters;
  /** Streams with a sharer. */
  streams: number;
  /** Stream names viewers wait on that nobody publishes (not counted in `streams`, not in perStream). */
  awaitedStreams: number;
  /** Every viewer, waiting ones included. */
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

// ---------------------------------------------------------------------------------------------
// Every figure of every snapshot, with what the dashboard does with it. The dashboard's lists (what
// `r` rebases, what is recomputed) are derived from these, and test/dashboard-complete.test.ts
// checks that each one is drawn and reset; a field added to a snapshot above without a line here
// does not compile.

/**
 * - counter: cumulative since the role started; `r` shows it counted from the reset.
 * - gauge: a rate, a current level or a setting; shown as it is, never rebased.
 * - ratio: a percentage of counters; after `r` it is recomputed over the same window (view.ts).
 */
export type FieldKind = 'counter' | 'gauge' | 'ratio';

/** The keys of T whose value is a number (or number | null): its figures. */
export type NumericKey<T> = { [K in keyof T]-?: number extends T[K] ? K : never }[keyof T];
/** The keys of T whose value is a list of rows: a table on the dashboard. */
export type RowsKey<T> = { [K in keyof T]-?: T[K] extends readonly object[] ? K : never }[keyof T];
/** The row type of T's list `K`. */
export type RowOf<T, K extends keyof T> = T[K] extends readonly (infer R)[] ? R : never;

/** A kind for each figure of T, no more, no fewer (checked with `satisfies`). */
export type FieldKinds<T> = Record<NumericKey<T>, FieldKind>;
/** The figures of each of T's row lists. */
export type RowKinds<T> = { [K in RowsKey<T>]: FieldKinds<RowOf<T, K>> };

/** The keys of a FieldKinds map that are of kind `V`. */
export type KeysOfKind<M, V extends FieldKind> = { [K in keyof M]: M[K] extends V ? K : never }[keyof M];

export function keysOfKind<M extends Readonly<Record<string, FieldKind>>, V extends FieldKind>(fields: M, kind: V): readonly KeysOfKind<M, V>[] {
  return Object.keys(fields).filter((k) => fields[k] === kind) as KeysOfKind<M, V>[];
}

export const WATCH_FIELDS = {
  width: 'gauge',
  height: 'gauge',
  packetsReceived: 'counter',
  packetsExpected: 'counter',
  lostOnWire: 'counter',
  lostOnWirePercent: 'ratio',
  unrepaired: 'counter',
  repairPending: 'gauge',
  tooLate: 'counter',
  rfc3550Lost: 'counter',
  jitterMs: 'gauge',
  bitrateKbps: 'gauge',
  fps: 'gauge',
  framesComplete: 'counter',
  framesDropped: 'counter',
  framesSkipped: 'counter',
  latencyMs: 'gauge',
  duplicates: 'counter',
  reordered: 'counter',
  malformed: 'counter',
  keyframeRequests: 'counter',
  nacksSent: 'counter',
  recoveredByRtx: 'counter',
  recoveredByFec: 'counter',
  framesGivenUp: 'counter',
  rttMs: 'gauge',
  latencyBudgetMs: 'gauge',
  firstFrameMs: 'gauge',
  publisherRestarts: 'counter',
  layerMoves: 'counter',
  audioPackets: 'counter',
  audioLost: 'counter',
  audioLate: 'counter',
  audioRecovered: 'counter',
  audioConcealed: 'counter',
  audioSilence: 'counter',
  audioJitterMs: 'gauge',
  audioSyncMs: 'gauge',
  undecryptable: 'counter',
  playerRestarts: 'counter',
  framesHeldBack: 'counter',
  playerSoundPlayed: 'counter',
  playerSoundNotPlayed: 'counter',
  playerSoundDrains: 'counter',
  framesStale: 'counter',
  /** Restarts from 0 with each player; `r` shows a count below its baseline as it is. */
  playerDropped: 'counter',
  sinkErrors: 'counter',
} as const satisfies FieldKinds<WatchSnapshot>;
export const WATCH_ROWS = {} as const satisfies RowKinds<WatchSnapshot>;

export const SHARE_FIELDS = {
  relaySilentS: 'gauge',
  relayOutages: 'counter',
  fps: 'gauge',
  bitrateKbps: 'gauge',
  framesEncoded: 'counter',
  framesSent: 'counter',
  keyframesSent: 'counter',
  audioPacketsSent: 'counter',
  audioSilenceNotSent: 'counter',
  packetsSent: 'counter',
  bytesSent: 'counter',
  viewers: 'gauge',
  worstLossPercent: 'gauge',
  worstRttMs: 'gauge',
  fecPacketsSent: 'counter',
  resent: 'counter',
  keyframeRequests: 'counter',
  keyframeRestarts: 'counter',
  encoderRestarts: 'counter',
  sendErrors: 'counter',
  estimateKbps: 'gauge',
  targetKbps: 'gauge',
  queueDelayMs: 'gauge',
  pathLossPercent: 'gauge',
  retargets: 'counter',
  probes: 'counter',
  pacerDropped: 'counter',
  layers: 'gauge',
  layersSent: 'gauge',
  framesHeld: 'counter',
} as const satisfies FieldKinds<ShareSnapshot>;
export const SHARE_ROWS = {
  // From the viewers' latest receiver reports.
  viewerReports: { lossPercent: 'gauge', jitterMs: 'gauge', rttMs: 'gauge' },
} as const satisfies RowKinds<ShareSnapshot>;

export const RELAY_FIELDS = {
  streams: 'gauge',
  awaitedStreams: 'gauge',
  viewers: 'gauge',
  bitrateInKbps: 'gauge',
  bitrateOutKbps: 'gauge',
  datagramsIn: 'counter',
  bytesIn: 'counter',
  packetsOut: 'counter',
  bytesOut: 'counter',
  dropped: 'counter',
  malformed: 'counter',
  oversize: 'counter',
  unknownSource: 'counter',
  hijackAttempts: 'counter',
  overLimit: 'counter',
  sendErrors: 'counter',
  retransmissions: 'counter',
  rtxMisses: 'counter',
  uplinkNacked: 'counter',
  uplinkRepaired: 'counter',
  uplinkCopies: 'counter',
  cacheJoins: 'counter',
  authFailures: 'counter',
  challenges: 'counter',
  rateLimited: 'counter',
  keyframeRequestsHeld: 'counter',
  circuitBreaks: 'counter',
  feedbackReports: 'counter',
  probePackets: 'counter',
  layerMoves: 'counter',
  handedToDgram: 'counter',
} as const satisfies FieldKinds<RelaySnapshot>;
/** The servers beside the relay (RTSP, browsers), each figure's kind: /metrics has them as udpcast_relay_<server>_<figure>. */
export const RELAY_SERVERS = {
  rtsp: {
    port: 'gauge', sessionsNow: 'gauge', connections: 'counter', requests: 'counter', badRequests: 'counter', sessions: 'counter', sessionsRefused: 'counter',
    connectionsDropped: 'counter', sessionTimeouts: 'counter', tcpDropped: 'counter', unauthorized: 'counter', published: 'counter', publishRefused: 'counter', recordDropped: 'counter',
  },
  webrtc: { sessionsNow: 'gauge', offers: 'counter', refused: 'counter', joined: 'counter', neverConnected: 'counter', lost: 'counter', ended: 'counter', sendErrors: 'counter', stackErrors: 'counter', congestionReports: 'counter', rembReports: 'counter', rembDropped: 'counter' },
} as const satisfies { rtsp: FieldKinds<NonNullable<RelaySnapshot['rtsp']>>; webrtc: FieldKinds<NonNullable<RelaySnapshot['webrtc']>> };
export const RELAY_ROWS = {
  perStream: { bitrateInKbps: 'gauge', packetsIn: 'counter', packetsOut: 'counter', viewers: 'gauge', dropped: 'counter' },
  perViewer: { uptimeS: 'gauge', lossPercent: 'gauge', jitterMs: 'gauge', rttMs: 'gauge', packetsOut: 'counter', sendErrors: 'counter', retransmissions: 'counter', layer: 'gauge', estimateKbps: 'gauge' },
} as const satisfies RowKinds<RelaySnapshot>;
