/**
 * The routing table: which streams exist, who publishes each (latched to one address), which
 * viewers watch it, and the lists a packet is fanned out to. It is the only part that knows a
 * viewer's sink kind: UDP viewers are kept as one cached endpoint list per stream (the sendmmsg
 * fast path), other sinks get deliver(). The table's caps (MAX_STREAMS, MAX_VIEWERS...) bound it
 * whatever peers send.
 */
import { MAX_STREAMS, MAX_VIEWERS, MAX_VIEWERS_PER_STREAM } from '../defaults.ts';
import type { ReportBlock } from '../transport/rtcp.ts';
import type { Endpoint } from '../util/net.ts';
import type { TokenBucket } from '../util/token-bucket.ts';
import type { PublisherAuth } from './admission.ts';
import { KeyframeCache, type CatchUp } from './catch-up.ts';
import type { RelayCounters } from './counters.ts';
import { RtxHistory, type RtxBudget } from './history.ts';
import { CircuitBreaker } from '../transport/breaker.ts';
import { endpointKey, type DeliverySink, type Output, type ViewerSink } from './sink.ts';
import { SrTimes } from './timing.ts';
import { ArrivalLog } from '../transport/arrivals.ts';
import { SendLog } from '../transport/congestion.ts';
import { fecSsrcFor } from '../transport/fec.ts';
import type { LayerChoice } from './layers.ts';
import { UplinkGaps } from './uplink.ts';

export interface PublisherState {
  endpoint: Endpoint;
  key: string;
  ssrc: number;
  since: number;
  lastSeen: number;
  /** The salt the sharer announced (--key / --encrypt); viewers get it in their ACK. */
  salt?: Buffer;
  /** --key: the publisher's authentication keys and replay state. */
  auth?: PublisherAuth;
  /** When its media arrived, for the RFC 8888 feedback it gets (fresh for each publisher session). */
  arrivals: ArrivalLog;
  /** What of its media went missing on the way here, to ask it for again (uplink.ts; fresh for each session). */
  gaps: UplinkGaps;
  /**
   * A publisher of another transport (RelayCore.publishFrom): what the relay says to a sharer
   * (keyframe requests, viewers' reports) goes here instead of to `endpoint`, and it gets no
   * RFC 8888 feedback (nothing there reads it).
   */
  deliver?: (data: Buffer) => void;
}

export interface ViewerState {
  sink: ViewerSink;
  /** The quality layer this viewer is sent (the stream itself, its top layer, until the relay moves it). */
  lane: Lane;
  /** A layer it moves to at that layer's next keyframe (lane.joining holds it meanwhile), since when. */
  movingTo?: Lane;
  movingSince?: number;
  /** Its layer choice (layers.ts), once the stream has more than one layer and it sends feedback. */
  choice?: LayerChoice;
  /** When its current lane's media started going to it: feedback on packets sent before is not read. */
  liveSince: number;
  /** sink.endpoint: where the viewer is. */
  endpoint: Endpoint;
  /** sink.id: its key in stream.viewers. */
  key: string;
  stream: StreamState;
  since: number;
  lastSeen: number;
  /** lane.fanOuts when this viewer joined its lane: fanOuts since then is what it was sent there... */
  joinedAtFanOut: number;
  /** ...and this what it was sent on the lanes it had before. */
  sentEarlier: number;
  /** Undefined once it is live (in stream.targets or stream.delivered). */
  catchUp?: CatchUp;
  /** Keepalive budget (admission.ts). */
  keepalive: TokenBucket;
  /** Retransmission budget (history.ts). */
  rtx: RtxBudget;
  /** RFC 8083 circuit breaker on its path (transport/breaker.ts); open: media to it stopped. */
  breaker: CircuitBreaker;
  /** When this viewer's last keyframe request was passed on to the sharer. */
  keyframeAskedAt?: number;
  retransmissions: number;
  /** The latest report block this viewer sent about the stream, for the dashboard. */
  lastReport?: ReportBlock;
  /** Relay ↔ viewer round trip from that block's LSR/DLSR and when we forwarded that SR. */
  rttMs?: number;
  sendErrors: number;
}

/**
 * One quality layer of a stream as the relay carries it: its SSRCs, its viewers' fan-out lists,
 * its repair history and keyframe cache, its rate. A stream is its own first lane (the top layer,
 * or the only one); a sharer's PUBLISH naming more layers adds the others (setLayers).
 */
export interface Lane {
  /** 0: the top layer. */
  index: number;
  /** Its media SSRC (the publisher's, for lane 0; 0 before any). */
  ssrc: number;
  /** Endpoints of its live UDP viewers: replaced on every change, never edited (see Output.to). */
  targets: readonly Endpoint[];
  /** Its live viewers of every other sink kind, likewise replaced. */
  delivered: readonly DeliverySink[];
  /** Datagrams fanned out to its viewers (each counts once, whatever the number of viewers). */
  fanOuts: number;
  /** Their bytes, likewise. */
  fanOutBytes: number;
  history: RtxHistory;
  keyframes: KeyframeCache;
  /** Its media rate (kbit/s) over the last LANE_RATE_MS, and when its media last came. */
  kbps: number;
  lastMediaAt: number;
  /** The RTP timestamp (capture instant) of its latest media packet; undefined before any. */
  lastTs?: number;
  /** The RTP timestamp of its newest picture (a late packet of an older one leaves it), and when that picture's first packet came (the relay's clock). */
  liveTs?: number;
  liveTsAt: number;
  rateBytes: number;
  rateSince: number;
  /** Viewers moving to it at its next keyframe. */
  joining: Set<ViewerState>;
}

export interface StreamState extends Lane {
  name: string;
  /** Its quality layers, best first: lanes[0] is the stream itself. */
  lanes: Lane[];
  /** When each media packet left for the viewers, read against their feedback (layer choice). */
  sent: SendLog;
  publisher?: PublisherState;
  viewers: Map<string, ViewerState>;
  packetsIn: number;
  bytesIn: number;
  packetsOut: number;
  bytesOut: number;
  /**
   * What this stream lost or refused: PUBLISHes from another address, its publisher's datagrams
   * that failed --key, and sends to its viewers that failed.
   */
  dropped: number;
  srTimes: SrTimes;
  /**
   * The sharer's sound, measured like a lane's rate: every viewer gets it, whatever its layer. Its
   * own repair history, for a viewer's NACK naming the sound's SSRC (watch sends none: the sound's
   * RED copies repair without a round trip; viewer transports to come may).
   */
  sound: { kbps: number; rateBytes: number; rateSince: number; ssrc?: number; history: RtxHistory };
  /** A keyframe request passed on to the sharer and not yet answered: when, and keyframes.count then. */
  keyframeAsked?: { at: number; keyframes: number };
}

export class Routing {
  readonly streams = new Map<string, StreamState>();
  /** Which stream each publisher address feeds: the lookup for every media packet. */
  private readonly byPublisher = new Map<string, StreamState>();
  private viewerCount = 0;

  constructor(private readonly counters: RelayCounters) {}

  get viewers(): number {
    return this.viewerCount;
  }

  /** The stream the address `key` publishes. */
  publishedBy(key: string): StreamState | undefined {
    return this.byPublisher.get(key);
  }

  /** Room for one more published stream. Only published streams count: names viewers wait on must not keep a sharer out. */
  get roomForStream(): boolean {
    return this.byPublisher.size < MAX_STREAMS;
  }

  /** Room for one more name nobody publishes yet: bounded apart from the published streams. */
  get roomForAwaited(): boolean {
    return this.streams.size - this.byPublisher.size < MAX_STREAMS;
  }

  roomForViewer(stream: StreamState): boolean {
    return stream.viewers.size < MAX_VIEWERS_PER_STREAM && this.viewerCount < MAX_VIEWERS;
  }

  /** The stream called `name`, created if new (the caller has checked the room). */
  open(name: string): StreamState {
    let stream = this.streams.get(name);
    if (!stream) {
      stream = newStream(name);
      this.streams.set(name, stream);
    }
    return stream;
  }

  /** Drops a stream with neither publisher nor viewers. */
  close(stream: StreamState): void {
    this.streams.delete(stream.name);
  }

  /**
   * Latches stream `name` to the publisher `p`, or refreshes it. 'taken' (counted): latched to
   * another sharer, or this address already publishes another name. 'full': MAX_STREAMS published.
   * Refusals come before anything is stored: a refused name must leave no entry behind, or one
   * address publishing random names would grow the table without bound.
   */
  publish(name: string, p: Omit<PublisherState, 'arrivals' | 'gaps'>): { stream: StreamState; previous?: PublisherState } | 'taken' | 'full' {
    let stream = this.streams.get(name);
    const current = stream?.publisher;
    const other = this.byPublisher.get(p.key);
    if ((current && current.key !== p.key) || (other && other !== stream)) {
      this.counters.hijackAttempts++;
      if (stream) stream.dropped++;
      return 'taken';
    }
    if (!current && !this.roomForStream) return 'full';
    stream ??= this.open(name);
    if (current?.ssrc !== p.ssrc) {
      // A new publisher session: nothing of the old one may be replayed or retransmitted.
      stream.history.clear();
      stream.sound.history.clear();
      stream.sound.ssrc = undefined;
      stream.keyframes.clear();
      stream.ssrc = p.ssrc;
      stream.sent = new SendLog();
    }
    stream.publisher = {
      ...p,
      since: current?.since ?? p.since,
      // Announced once, by the first PUBLISH; copied, so the datagram it came in is not kept.
      salt: current ? current.salt : p.salt && Buffer.from(p.salt),
      auth: p.auth ?? current?.auth,
      arrivals: current?.ssrc === p.ssrc ? current.arrivals : new ArrivalLog(p.since),
      gaps: current?.ssrc === p.ssrc ? current.gaps : new UplinkGaps(),
    };
    this.byPublisher.set(p.key, stream);
    return { stream, previous: current };
  }

  unlatch(stream: StreamState): void {
    if (stream.publisher) this.byPublisher.delete(stream.publisher.key);
    stream.publisher = undefined;
  }

  /** A new viewer, not yet live: goLive() puts it in the fan-out lists. */
  addViewer(stream: StreamState, sink: ViewerSink, now: number, keepalive: TokenBucket, rtx: RtxBudget): ViewerState {
    const v: ViewerState = {
      sink,
      lane: stream,
      liveSince: now,
      endpoint: sink.endpoint,
      key: sink.id,
      stream,
      since: now,
      lastSeen: now,
      joinedAtFanOut: stream.fanOuts,
      sentEarlier: 0,
      keepalive,
      rtx,
      breaker: new CircuitBreaker(),
      retransmissions: 0,
      sendErrors: 0,
    };
    stream.viewers.set(sink.id, v);
    this.viewerCount++;
    return v;
  }

  goLive(v: ViewerState): void {
    const s = v.sink;
    const lane = v.lane;
    if (s.kind === 'udp') lane.targets = [...lane.targets, s.endpoint];
    else lane.delivered = [...lane.delivered, s];
  }

  /** Takes a viewer out of the fan-out lists (leaving, or its circuit breaker tripped); it may stay a viewer. */
  pause(v: ViewerState): void {
    const s = v.sink;
    const lane = v.lane;
    if (s.kind === 'udp') lane.targets = lane.targets.filter((e) => e !== s.endpoint);
    else lane.delivered = lane.delivered.filter((d) => d !== s);
    v.movingTo?.joining.delete(v);
    v.movingTo = undefined;
  }

  /**
   * The layers a PUBLISH names below its own SSRC (best first): lanes kept where the SSRC is the
   * same, new ones added, and viewers of a lane that is gone moved to the top one.
   */
  setLayers(stream: StreamState, ssrcs: readonly number[]): void {
    const same = ssrcs.length === stream.lanes.length - 1 && ssrcs.every((x, i) => stream.lanes[i + 1].ssrc === x);
    if (same) return;
    const old = stream.lanes;
    stream.lanes = [stream, ...ssrcs.map((ssrc, i) => old.find((l) => l.index === i + 1 && l.ssrc === ssrc) ?? newLane(i + 1, ssrc))];
    for (const v of stream.viewers.values()) {
      if (stream.lanes.includes(v.lane) && (!v.movingTo || stream.lanes.includes(v.movingTo))) continue;
      this.changeLane(v, stream);
    }
  }

  /**
   * `v` leaves its lane for `lane`, any pending move dropped: out of the old fan-out lists if it was
   * in them and into the new ones; what it was sent so far is kept, and its counts go on from `lane`'s.
   */
  private changeLane(v: ViewerState, lane: Lane): void {
    const live = this.isLive(v);
    if (live) this.pause(v);
    v.movingTo?.joining.delete(v);
    v.movingTo = undefined;
    // Its breaker compares fan-out counts between reports: from now on, another lane's.
    if (!v.breaker.open) v.breaker.resume();
    v.sentEarlier += v.lane.fanOuts - v.joinedAtFanOut;
    v.joinedAtFanOut = lane.fanOuts;
    v.rtx.rebase(lane.fanOuts);
    v.lane = lane;
    if (live) this.goLive(v);
  }

  /** Whether `v` is in its lane's fan-out lists. */
  private isLive(v: ViewerState): boolean {
    const s = v.sink;
    return s.kind === 'udp' ? v.lane.targets.includes(s.endpoint) : v.lane.delivered.includes(s);
  }

  /** The lane carrying `ssrc` (media or its FEC); the stream itself for any other. */
  laneOf(stream: StreamState, ssrc: number): Lane {
    const lanes = stream.lanes;
    if (lanes.length === 1) return stream;
    for (let i = 0; i < lanes.length; i++) {
      if (lanes[i].ssrc === ssrc || fecSsrcFor(lanes[i].ssrc) === ssrc) return lanes[i];
    }
    return stream;
  }

  /** `v` moves to `lane` at that lane's next keyframe (moveAtKeyframe). */
  moveLater(v: ViewerState, lane: Lane): void {
    v.movingTo?.joining.delete(v);
    v.movingTo = lane === v.lane ? undefined : lane;
    if (v.movingTo) lane.joining.add(v);
  }

  /** `v` leaves its lane for `lane` now, out of every fan-out list: its media starts again from `lane`'s cache. */
  moveNow(v: ViewerState, lane: Lane, now: number): void {
    this.changeLane(v, lane);
    this.pause(v);
    v.liveSince = now;
  }

  /** A keyframe of `lane` starts: the viewers waiting for it leave their lane for this one. */
  moveAtKeyframe(lane: Lane, now: number): ViewerState[] {
    const moved = [...lane.joining];
    lane.joining.clear();
    for (const v of moved) {
      this.changeLane(v, lane);
      v.liveSince = now;
    }
    return moved;
  }

  removeViewer(stream: StreamState, key: string): ViewerState | undefined {
    const v = stream.viewers.get(key);
    if (!v) return undefined;
    stream.viewers.delete(key);
    this.pause(v);
    this.viewerCount--;
    return v;
  }

  /**
   * Sends `buf` to every live viewer of `stream`: one Output with the cached UDP list, deliver()
   * for the rest. The hot path: it adds to `out` and allocates nothing else.
   */
  fanOut(stream: StreamState, buf: Buffer, out: Output[], lane: Lane = stream): void {
    const targets = lane.targets;
    const delivered = lane.delivered;
    const n = targets.length + delivered.length;
    if (n === 0) return;
    lane.fanOuts++;
    lane.fanOutBytes += buf.length;
    stream.packetsOut += n;
    stream.bytesOut += n * buf.length;
    this.counters.packetsOut += n;
    this.counters.bytesOut += n * buf.length;
    if (targets.length > 0) out.push({ data: buf, to: targets });
    for (let i = 0; i < delivered.length; i++) {
      if (!delivered[i].deliver(buf)) this.failed(stream.viewers.get(delivered[i].id));
    }
  }

  /** Sends `data` to one viewer (a retransmission, a catch-up packet). */
  sendTo(v: ViewerState, data: Buffer, out: Output[]): void {
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    const s = v.sink;
    if (s.kind === 'udp') out.push({ data, to: [s.endpoint] });
    else if (!s.deliver(data)) this.failed(v);
  }

  /** Counts a failed UDP send; the loop over the others goes on. */
  sendFailed(to: Endpoint): void {
    this.counters.sendErrors++;
    const key = endpointKey(to);
    for (const s of this.streams.values()) {
      const v = s.viewers.get(key);
      if (!v) continue;
      v.sendErrors++;
      s.dropped++;
    }
  }

  private failed(v: ViewerState | undefined): void {
    this.counters.sendErrors++;
    if (!v) return;
    v.sendErrors++;
    v.stream.dropped++;
  }
}

/** Datagrams fanned out to `v` so far, on every lane it had. */
export function sentTo(v: ViewerState): number {
  return v.sentEarlier + v.lane.fanOuts - v.joinedAtFanOut;
}

function newLane(index: number, ssrc: number): Lane {
  return {
    index,
    ssrc,
    targets: [],
    delivered: [],
    fanOuts: 0,
    fanOutBytes: 0,
    history: new RtxHistory(),
    keyframes: new KeyframeCache(),
    kbps: 0,
    lastMediaAt: -Infinity,
    liveTsAt: -Infinity,
    rateBytes: 0,
    rateSince: 0,
    joining: new Set(),
  };
}

function newStream(name: string): StreamState {
  const stream: StreamState = {
    ...newLane(0, 0),
    name,
    lanes: [],
    sent: new SendLog(),
    viewers: new Map(),
    packetsIn: 0,
    bytesIn: 0,
    packetsOut: 0,
    bytesOut: 0,
    dropped: 0,
    srTimes: new SrTimes(),
    sound: { kbps: 0, rateBytes: 0, rateSince: 0, history: new RtxHistory() },
  };
  stream.lanes.push(stream);
  return stream;
}
