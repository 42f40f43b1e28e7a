/**
 * The relay as a pure object: datagrams and the clock go in, datagrams to send come out. No
 * sockets or timers here (server.ts wires them), so every rule is tested without a network. This
 * file only dispatches; each job is a part of its own (pion interceptor style):
 * routing.ts (streams, viewers, fan-out), admission.ts (who may, how often), history.ts (NACK
 * repair), catch-up.ts (instant start for late viewers), timing.ts (RTT), sink.ts (viewer kinds).
 *
 * Rules:
 * - A stream is created by a PUBLISH from its sharer and latched to that sharer's address; RTP and
 *   RTCP from any other address for it are dropped and counted, until the sharer says BYE or goes
 *   silent for PUBLISHER_TIMEOUT_MS.
 * - A viewer SUBSCRIBEs by name (repeating it as keepalive) and gets an ACK no larger than its
 *   request; it may subscribe before the stream exists and gets the stream once it starts.
 * - Media and the sharer's RTCP (SR, SDES, BYE) go to every viewer as the same buffer, received once,
 *   sent as is. Viewers' reports go to the sharer; their NACKs are answered here from history, and
 *   their keyframe requests are passed on once per keyframe (forSharer).
 */
import { isAudioPayloadType, VIDEO_CLOCK_RATE, CB_RESUME_MS, KEYFRAME_WAIT_MS, LANE_PAUSED_MS, LANE_RATE_MS, LANE_SILENT_MS, MAX_DATAGRAM, MAX_STREAMS, VIEWER_KEYFRAME_MIN_MS, MAX_VIEWERS, MAX_VIEWERS_PER_STREAM, PUBLISHER_TIMEOUT_MS, VIEWER_TIMEOUT_MS } from '../defaults.ts';
import { ControlType, PT_PROBE, RefuseReason, parseControl, type PublishMessage, type SubscribeMessage } from '../transport/control.ts';
import { isRtcp, parseRtcp, serializeRtcp, type Ccfb, type RtcpPacket } from '../transport/rtcp.ts';
import { isRtp, rtpPayloadOffset, rtpPayloadType, rtpSequence, rtpSsrc, rtpTimestamp } from '../rtp/packet.ts';
import { tsDiff } from '../rtp/seq.ts';
import { startsKeyframe } from '../transport/keyframe.ts';
import { PacketError } from '../util/errors.ts';
import { formatEndpoint as fmt, type Endpoint } from '../util/net.ts';
import { Admission, RELAY_SSRC, keepaliveBudget, relayControl, type AdmissionOptions, type Authenticated } from './admission.ts';
import { newRelayCounters, type RelayCounters } from './counters.ts';
import { RtxBudget, answerNack, type RtxHistory } from './history.ts';
import { Routing, type Lane, type PublisherState, type StreamState, type ViewerState } from './routing.ts';
import { LayerChoice, type LaneView, type LayerMove } from './layers.ts';
import { endpointKey, udpSink, type DeliverySink, type Output, type ViewerSink } from './sink.ts';

export { startsKeyframe, fmt, endpointKey };
export type { Output, RelayCounters, StreamState, ViewerState, ViewerSink, DeliverySink };
export type RelayCoreOptions = AdmissionOptions;

/** Distinct log-once keys remembered before starting over. */
const MAX_WARNED = 1000;

/**
 * A viewer moved down starts from the lower layer's keyframe cache at once when its path takes
 * what the cache holds in this long (ms): well inside a 100 ms router buffer, since the path just
 * showed a queue. Else it waits for a fresh keyframe of that layer, asked for at once, which comes
 * within a few frames and is smaller than a late GOP's worth of frames. (At 150 ms, two A/B runs
 * of the narrow benchmark each showed no gain in time to smooth or frame rate.)
 */
export const CACHE_SWITCH_MS = 80;

export class RelayCore {
  readonly counters: RelayCounters = newRelayCounters();
  private readonly routing = new Routing(this.counters);
  private readonly admission: Admission;
  /** Viewers still being sent their catch-up. */
  private readonly catchingUp = new Set<ViewerState>();
  /** Logged once per kind of limit, so a flood does not flood the log. */
  private readonly warned = new Set<string>();
  onLog?: (line: string) => void;

  constructor(now = Date.now(), opts: RelayCoreOptions = {}) {
    this.admission = new Admission(now, opts, this.counters);
  }

  get streams(): Map<string, StreamState> {
    return this.routing.streams;
  }

  get viewers(): number {
    return this.routing.viewers;
  }

  /**
   * Handles one datagram; returns what to send. Never throws for bad input. A media packet is the
   * hot path (onMedia, routing.fanOut): it allocates the result array and one Output, nothing more.
   */
  onDatagram(buf: Buffer, from: Endpoint, now: number): Output[] {
    this.counters.datagramsIn++;
    this.counters.bytesIn += buf.length;
    if (buf.length > MAX_DATAGRAM) {
      this.counters.oversize++;
      return [];
    }
    const key = endpointKey(from);
    const latched = this.routing.publishedBy(key);
    let auth: Authenticated;
    const pubAuth = latched?.publisher!.auth;
    if (pubAuth) {
      // Everything a keyed publisher sends carries a trailer: verified, then forwarded without it.
      const packet = this.admission.verifyPublisher(pubAuth, buf);
      if (!packet) {
        latched!.dropped++;
        return [];
      }
      buf = packet;
      auth = 'latched';
    }
    if (isRtcp(buf)) return this.onRtcp(buf, from, key, now, auth);
    if (isRtp(buf)) {
      if (!latched) {
        this.counters.unknownSource++;
        // Said once per address: RTP from a sender that never PUBLISHed (a plain `ffmpeg -f rtp`).
        this.logOnce(
          `rtp:${key}`,
          `dropped RTP from ${fmt(from)}: it has not published a stream (udpcast share does; plain RTP senders such as ffmpeg -f rtp cannot publish here; ` +
            'further datagrams from it are counted as unknownSource)',
        );
        return [];
      }
      return this.onMedia(latched, buf, now);
    }
    this.counters.malformed++;
    return [];
  }

  /** True while a joining viewer's catch-up is being paced out: call pump() every few ms. */
  get pumping(): boolean {
    return this.catchingUp.size > 0;
  }

  /**
   * Sends joining viewers the next part of their catch-up, within the pace JOIN_PACE_BYTES_PER_MS;
   * a viewer whose queue is empty goes live.
   */
  pump(now: number): Output[] {
    const out: Output[] = [];
    for (const v of this.catchingUp) {
      for (const data of v.catchUp!.due(now)) this.routing.sendTo(v, data, out);
      if (v.catchUp!.done) this.goLive(v, out);
    }
    return out;
  }

  /** Expires silent viewers and publishers, tries stopped paths again; returns the ENDED notices to send. */
  tick(now: number): Output[] {
    const out: Output[] = [];
    this.admission.tick(now);
    for (const stream of this.routing.streams.values()) {
      if (stream.lanes.length > 1) this.tickLanes(stream, now, out);
      for (const [k, v] of stream.viewers) {
        if (now - v.lastSeen > VIEWER_TIMEOUT_MS) this.removeViewer(stream, k, 'timeout');
        else if (v.breaker.mayResume(now)) this.untrip(v, now);
      }
      if (stream.publisher && now - stream.publisher.lastSeen > PUBLISHER_TIMEOUT_MS) {
        this.log(`stream ${stream.name}: publisher ${fmt(stream.publisher.endpoint)} silent, stream ended`);
        this.endStream(stream, true, out);
      }
      if (!stream.publisher && stream.viewers.size === 0) this.routing.close(stream);
    }
    return out;
  }

  /** Each layer's rate over the last LANE_RATE_MS; viewers of a layer the sharer stopped move to one that runs. */
  private tickLanes(stream: StreamState, now: number, out: Output[]): void {
    for (const l of stream.lanes) {
      if (now - l.rateSince < LANE_RATE_MS) continue;
      l.kbps = (l.rateBytes * 8) / Math.max(1, now - l.rateSince);
      l.rateBytes = 0;
      l.rateSince = now;
    }
    const sound = stream.sound;
    if (now - sound.rateSince >= LANE_RATE_MS) {
      sound.kbps = (sound.rateBytes * 8) / Math.max(1, now - sound.rateSince);
      sound.rateBytes = 0;
      sound.rateSince = now;
    }
    const views = this.laneViews(stream, now);
    if (!stream.publisher || views.every((l) => !l.live)) return;
    for (const v of stream.viewers.values()) {
      if (v.movingTo) {
        // Still waiting for the target's keyframe: asked again when the first request went
        // unanswered, and given up when the sharer stopped that layer meanwhile.
        if (views[v.movingTo.index].live) {
          if (now - (v.movingSince ?? now) >= KEYFRAME_WAIT_MS) this.askKeyframe(stream, v.movingTo.ssrc, now, out);
          continue;
        }
        this.routing.moveLater(v, v.lane);
      }
      if (views[v.lane.index].live) continue;
      v.choice ??= new LayerChoice(stream.sent);
      const move = v.choice.laneStopped(v.lane.index, views);
      if (move) this.moveViewer(stream, v, move, now, out);
    }
  }

  /** Counts a failed send to one viewer; the loop over the others goes on. */
  sendFailed(to: Endpoint): void {
    this.routing.sendFailed(to);
  }

  /**
   * The admission path of a transport other than UDP, once its own handshake and authentication
   * are done: `sink` watches `name` from now on. Called again with the same sink it is that
   * transport's keepalive (at least every VIEWER_TIMEOUT_MS). False when a cap refuses it.
   */
  attach(name: string, sink: DeliverySink, now: number): boolean {
    const existing = this.routing.streams.get(name)?.viewers.get(sink.id);
    if (existing) {
      existing.lastSeen = now;
      return true;
    }
    return this.join(name, sink, now) !== undefined;
  }

  /**
   * The publishing path of a transport other than UDP (an RTSP RECORD, share's tap for --push),
   * once its own handshake and authentication are done: `id` (`<kind>:<session>`, never a UDP
   * address) publishes `name`, its picture under `ssrc`. What the relay says to a sharer goes to
   * `deliver`. Refused like a PUBLISH: 'taken' by another publisher, 'full' at MAX_STREAMS.
   */
  publishFrom(name: string, id: string, endpoint: Endpoint, ssrc: number, now: number, deliver: (data: Buffer) => void): 'ok' | 'taken' | 'full' {
    const r = this.routing.publish(name, { endpoint, key: id, ssrc, since: now, lastSeen: now, deliver });
    if (r === 'full') this.overLimit('streams', `relay carries ${MAX_STREAMS} streams already; refusing ${name}`);
    if (typeof r === 'string') return r;
    if (!r.previous) this.log(`stream ${name}: publisher ${id.split(':')[0]} ${fmt(endpoint)} (ssrc ${hex(ssrc)})`);
    return 'ok';
  }

  /** One packet (RTP, or RTCP without control messages) from a publisher of publishFrom(). */
  fromPublisher(id: string, buf: Buffer, now: number): Output[] {
    this.counters.datagramsIn++;
    this.counters.bytesIn += buf.length;
    const stream = this.routing.publishedBy(id);
    if (!stream || buf.length > MAX_DATAGRAM) {
      if (stream) this.counters.oversize++;
      else this.counters.unknownSource++;
      return [];
    }
    if (isRtp(buf)) return this.onMedia(stream, buf, now);
    let packets: RtcpPacket[];
    try {
      packets = isRtcp(buf) ? parseRtcp(buf) : [];
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      packets = [];
    }
    // Control messages (PUBLISH, SUBSCRIBE) are the UDP path's; here they would be someone's trick.
    if (packets.length === 0 || packets.some((p) => p.type === 'app')) {
      this.counters.malformed++;
      return [];
    }
    return this.onRtcp(buf, stream.publisher!.endpoint, id, now, 'latched');
  }

  /** The publisher `id` of publishFrom() stopped: the stream ends, its viewers are told (ENDED) and wait for the next. */
  unpublish(id: string): Output[] {
    const stream = this.routing.publishedBy(id);
    if (!stream) return [];
    const out: Output[] = [];
    this.log(`stream ${stream.name}: publisher ${id.split(':')[0]} ${fmt(stream.publisher!.endpoint)} stopped, stream ended`);
    this.endStream(stream, true, out);
    return out;
  }

  /** A viewer of another transport left `name`. */
  detach(name: string, id: string): void {
    const s = this.routing.streams.get(name);
    if (s) this.removeViewer(s, id);
  }

  /**
   * A viewer's round trip as its own transport measures it (a browser's: the peer connection's
   * sender reports, which the relay's reports are not): the dashboard's and the circuit breaker's.
   */
  viewerRtt(name: string, id: string, rttMs: number): void {
    const v = this.routing.streams.get(name)?.viewers.get(id);
    if (v && Number.isFinite(rttMs) && rttMs >= 0) v.rttMs = rttMs;
  }

  /**
   * A viewer's own estimate of what its path takes (kbit/s), as its transport reports it (a
   * browser's REMB), on a stream with layers: a cap on its layer choice (layers.ts onEstimate).
   * What to send: the keyframe request of a move, if one is made.
   */
  viewerEstimate(name: string, id: string, kbps: number, now: number): Output[] {
    const out: Output[] = [];
    const s = this.routing.streams.get(name);
    const v = s?.viewers.get(id);
    if (!s || !v || !Number.isFinite(kbps) || kbps <= 0) return out;
    const move = this.choosing(s, v)?.onEstimate(kbps, now, v.lane.index, this.laneViews(s, now));
    if (move) this.moveViewer(s, v, move, now, out);
    return out;
  }

  /** RTCP from a viewer of another transport (RR, NACK, PLI): as from a UDP viewer. */
  onViewerRtcp(id: string, buf: Buffer, now: number): Output[] {
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(buf);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      this.counters.malformed++;
      return [];
    }
    const out: Output[] = [];
    if (!this.feedback(packets, buf, id, now, out)) this.counters.unknownSource++;
    return out;
  }

  private onMedia(stream: StreamState, buf: Buffer, now: number): Output[] {
    stream.publisher!.lastSeen = now;
    if (rtpPayloadOffset(buf) > buf.length) {
      // CSRCs or an extension longer than the datagram (found by fuzzing): no viewer could parse it either.
      this.counters.malformed++;
      stream.dropped++;
      return [];
    }
    if (rtpPayloadType(buf) === PT_PROBE) {
      // The sharer probing its uplink: what matters is when it arrived, told in the feedback.
      this.counters.probePackets++;
      const out: Output[] = [];
      this.congestionFeedback(stream.publisher!, buf, now, out);
      return out;
    }
    stream.packetsIn++;
    stream.bytesIn += buf.length;
    const ssrc = rtpSsrc(buf);
    const out: Output[] = [];
    if (isAudioPayloadType(rtpPayloadType(buf))) {
      const fresh = this.fromUplink(stream, ssrc, stream.sound.ssrc === ssrc ? stream.sound.history : undefined, buf, now);
      if (fresh === false) return this.copyDropped(stream, out);
      // Sound: to every viewer, whatever layer it gets, and never held back to make room for a
      // picture; kept alongside each lane's cached keyframe (a joiner hears at once), measured
      // on its own, and added to every lane's rate when a viewer's layer is chosen.
      for (const l of stream.lanes) l.keyframes.addAlongside(buf);
      stream.sound.rateBytes += buf.length;
      if (stream.sound.ssrc !== ssrc) {
        // Another sound source: its numbers are not the old one's.
        stream.sound.history.clear();
        stream.sound.ssrc = ssrc;
      }
      stream.sound.history.store(buf);
      if (stream.lanes.length > 1) stream.sent.onSent(ssrc, rtpSequence(buf), buf.length, now);
      this.fanOut(stream, buf, undefined, true, out);
      this.askUplink(stream.publisher!, ssrc, now, out);
      this.congestionFeedback(stream.publisher!, buf, now, out);
      return out;
    }
    const lane = this.routing.laneOf(stream, ssrc);
    lane.rateBytes += buf.length;
    lane.lastMediaAt = now;
    // The layer's own numbering; FEC parity (another SSRC) is not asked for again.
    const media = ssrc === lane.ssrc;
    const fresh = media ? this.fromUplink(stream, ssrc, lane.history, buf, now) : 'new';
    if (fresh === false) return this.copyDropped(stream, out);
    if (media) {
      const ts = rtpTimestamp(buf);
      // A late packet (one asked for again) starts no keyframe to move or take over at.
      const keyframe = fresh === 'new' && startsKeyframe(buf);
      if (keyframe && lane.index > 0) this.takeOverPaused(stream, lane, ts);
      if (fresh === 'new') lane.lastTs = ts;
      // The newest picture's time and when its first packet came: not a late packet of an older
      // one; a time over a second back is a new sharer's clock (OutgoingStream.liveTime).
      const ahead = lane.liveTs === undefined ? 1 : tsDiff(lane.liveTs, ts);
      if (ahead > 0 || ahead < -VIDEO_CLOCK_RATE) {
        lane.liveTs = ts;
        lane.liveTsAt = now;
      }
      // Viewers moving to this layer move at its keyframe, before it is fanned out.
      if (lane.joining.size > 0 && keyframe) this.moved(this.routing.moveAtKeyframe(lane, now));
      lane.history.store(buf);
      lane.keyframes.add(buf);
    }
    // With layers, every packet's departure is kept for the viewers' feedback (their layer choice).
    if (stream.lanes.length > 1) stream.sent.onSent(ssrc, rtpSequence(buf), buf.length, now);
    this.fanOut(stream, buf, lane, false, out);
    if (media) this.askUplink(stream.publisher!, ssrc, now, out);
    this.congestionFeedback(stream.publisher!, buf, now, out);
    return out;
  }

  /**
   * A keyframe of `lane`, captured at `ts`, while a layer above it has no picture of the last
   * LANE_PAUSED_MS: the sharer paused that layer. Its live viewers move here at this keyframe,
   * not after LANE_SILENT_MS and a keyframe more (a freeze of a second and a half on a path that
   * just narrowed). Read by capture time, since the paused layer's last packets may still be
   * arriving, queued ahead of this keyframe at the sharer's pacer and the bottleneck.
   */
  private takeOverPaused(stream: StreamState, lane: Lane, ts: number): void {
    const behind = (LANE_PAUSED_MS * VIDEO_CLOCK_RATE) / 1000;
    for (const v of stream.viewers.values()) {
      const last = v.lane.lastTs; // undefined: a layer that never sent was not paused
      if (v.lane.index >= lane.index || v.movingTo || v.catchUp || last === undefined || tsDiff(last, ts) < behind) continue;
      v.choice ??= new LayerChoice(stream.sent);
      const move = v.choice.paused(lane.index);
      this.routing.moveLater(v, lane);
      this.counters.layerMoves++;
      this.log(`stream ${stream.name}: viewer ${fmt(v.endpoint)} to layer ${move.to} (${move.why})`);
    }
  }

  private moved(viewers: ViewerState[]): void {
    for (const v of viewers) this.log(`stream ${v.stream.name}: viewer ${fmt(v.endpoint)} now gets layer ${v.lane.index}`);
  }

  /**
   * Uplink repair (uplink.ts): notes a media packet of the publisher's. Returns false for a copy
   * of a packet already in `history` (the relay drops it: every viewer has it), else whether it
   * is new or late (asked for, reordered, or older than the gaps tracked). A publisher of another
   * transport is not tracked: nothing there answers a NACK.
   */
  private fromUplink(stream: StreamState, ssrc: number, history: RtxHistory | undefined, buf: Buffer, now: number): 'new' | 'late' | false {
    const p = stream.publisher!;
    if (p.deliver) return 'new';
    const seq = rtpSequence(buf);
    const arrival = p.gaps.arrived(ssrc, seq, now);
    if (arrival === 'new') return 'new';
    if (arrival === 'repaired') this.counters.uplinkRepaired++;
    return arrival === 'old' && history?.get(seq)?.equals(buf) ? false : 'late';
  }

  /** Asks the publisher again (NACK, into `out`) for what of source `ssrc` never came, when due. */
  private askUplink(p: PublisherState, ssrc: number, now: number, out: Output[]): void {
    const lost = p.deliver ? undefined : p.gaps.due(ssrc, now);
    if (!lost) return;
    this.counters.uplinkNacked += lost.length;
    this.toPublisher(p, serializeRtcp([{ type: 'nack', senderSsrc: RELAY_SSRC, mediaSsrc: ssrc, lost }]), out);
  }

  /** A copy of a packet the relay has: counted and dropped (its first arrival was told to the sharer). */
  private copyDropped(stream: StreamState, out: Output[]): Output[] {
    stream.dropped++;
    this.counters.uplinkCopies++;
    return out;
  }

  /**
   * Notes the packet's arrival and, when due, tells the sharer what arrived when (RFC 8888): its
   * congestion controller reads it. A copy sent again that comes before the report is reported as
   * arrived (its send time is the copy's): the controller reads the loss left after repair, and
   * the queue. Reporting each loss the copies repaired instead cut the encoder to a tenth on 5%
   * random loss (the controller's 10% loss trigger met by the noise of short windows).
   */
  private congestionFeedback(p: PublisherState, buf: Buffer, now: number, out: Output[]): void {
    if (p.deliver) return;
    const report = p.arrivals.arrived(buf, now, RELAY_SSRC);
    if (!report) return;
    const data = serializeRtcp([report]);
    out.push({ data, to: [p.endpoint] });
    this.counters.feedbackReports++;
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
  }

  private onRtcp(buf: Buffer, from: Endpoint, key: string, now: number, auth: Authenticated): Output[] {
    let packets: RtcpPacket[];
    try {
      packets = parseRtcp(buf);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      // Perhaps a signed PUBLISH from a sharer we do not know yet: the trailer made it unparsable.
      if (!auth) return this.signedPublish(buf, from, key, now);
      this.counters.malformed++;
      return [];
    }
    const out: Output[] = [];
    let controlOnly = true;
    let handled = false;
    for (const p of packets) {
      if (p.type !== 'app') {
        controlOnly = false;
        continue;
      }
      let msg;
      try {
        msg = parseControl(p);
      } catch (err) {
        if (err instanceof PacketError) {
          this.counters.malformed++;
          return out;
        }
        throw err;
      }
      if (!msg) {
        controlOnly = false;
        continue;
      }
      handled = true;
      switch (msg.kind) {
        case ControlType.Publish: {
          const ack = this.publish(msg, from, key, p.ssrc, now, auth);
          if (ack) out.push(ack);
          break;
        }
        case ControlType.Subscribe: {
          const reply = this.subscribe(msg, buf.length, from, key, now);
          if (reply) out.push(reply);
          break;
        }
        case ControlType.Leave: {
          const s = this.routing.streams.get(msg.stream);
          if (s?.viewers.has(key)) this.removeViewer(s, key, 'left');
          break;
        }
        default:
          this.counters.malformed++; // ACK/ENDED travel from the relay, never to it
      }
    }
    if (controlOnly) return out;
    // Reports and feedback: the publisher's go to its viewers, a viewer's to the publisher.
    const published = this.routing.publishedBy(key);
    if (published) {
      published.publisher!.lastSeen = now;
      for (const p of packets) {
        if (p.type !== 'sr') continue;
        for (const lane of published.lanes) lane.keyframes.sr(buf);
        published.srTimes.forward(p, now);
      }
      out.push(...this.fanOut(published, buf));
      if (packets.some((p) => p.type === 'bye')) this.endStream(published, false, out);
      return out;
    }
    if (!this.feedback(packets, buf, key, now, out) && !handled) this.counters.unknownSource++;
    return out;
  }

  /** A viewer's RTCP: NACKs answered from history, report blocks kept, the datagram forwarded to the sharer. False: no such viewer. */
  private feedback(packets: RtcpPacket[], buf: Buffer, key: string, now: number, out: Output[]): boolean {
    let forwarded = false;
    for (const s of this.routing.streams.values()) {
      const v = s.viewers.get(key);
      if (!v) continue;
      v.lastSeen = now;
      for (const p of packets) {
        if (p.type === 'nack' && p.mediaSsrc === v.lane.ssrc) this.retransmit(v, v.lane.history, p.lost, now, out);
        else if (p.type === 'nack' && p.mediaSsrc === s.sound.ssrc) this.retransmit(v, s.sound.history, p.lost, now, out);
        else if (p.type === 'ccfb') this.layerFeedback(s, v, p, now, out);
      }
      for (const p of packets) {
        if (p.type === 'rr' || p.type === 'sr') {
          const block = p.reports.find((r) => r.ssrc === v.lane.ssrc);
          if (!block) continue;
          v.lastReport = block;
          const rtt = s.srTimes.rttMs(block, now);
          if (rtt !== undefined) v.rttMs = rtt;
          // The circuit breaker reads the reports of a viewer that gets the live fan-out.
          if (!v.catchUp && !v.breaker.open) {
            const report = { fractionLost: block.fractionLost / 256, highestSeq: block.highestSeq, rttMs: v.rttMs };
            const why = v.breaker.report(report, { packets: v.lane.fanOuts, bytes: v.lane.fanOutBytes }, now);
            if (why) this.trip(v, why);
          }
        }
      }
      if (s.publisher) {
        const data = this.forSharer(s, v, packets, buf, now);
        if (data) this.toPublisher(s.publisher, data, out);
      }
      forwarded = true;
    }
    return forwarded;
  }

  /**
   * What of a viewer's RTCP goes on to the sharer: its reports, not its NACKs (answered here from
   * history; what never came here the relay asks the sharer for itself, uplink.ts), and a
   * keyframe request (PLI) only when none for the stream is
   * already on its way (KEYFRAME_WAIT_MS, until a keyframe passes) and this viewer's last one was
   * VIEWER_KEYFRAME_MIN_MS ago, unless packets of that layer went missing on their way in since its
   * latest keyframe (then it is everyone's picture that is broken). The datagram as it came when
   * nothing is taken out; nothing when nothing is left.
   */
  private forSharer(s: StreamState, v: ViewerState, packets: RtcpPacket[], buf: Buffer, now: number): Buffer | undefined {
    this.keyframePending(s, now);
    const kept = packets.filter((p) => {
      // NACKs are answered here; a viewer's CCFB is about its own path, read here (layerFeedback).
      if (p.type === 'nack' || p.type === 'ccfb') return false;
      const lane = p.type === 'pli' ? s.lanes.find((l) => l.ssrc === p.mediaSsrc) : undefined;
      if (!lane) return true;
      // A viewer's own losses bring its requests at most every VIEWER_KEYFRAME_MIN_MS; losses on the
      // way in break every viewer's picture, and each request then stands for them all.
      const ownTrouble = !lane.keyframes.lostSinceKeyframe;
      if (s.keyframeAsked || (ownTrouble && v.keyframeAskedAt !== undefined && now - v.keyframeAskedAt < VIEWER_KEYFRAME_MIN_MS)) {
        this.counters.keyframeRequestsHeld++;
        return false;
      }
      s.keyframeAsked = { at: now, keyframes: s.keyframes.count };
      v.keyframeAskedAt = now;
      return true;
    });
    if (kept.length === packets.length) return buf;
    // The empty RR a viewer puts in front of a NACK or PLI (RFC 3550 6.1: a compound starts with
    // one) says nothing to the sharer on its own.
    const says = kept.some((p) => p.type !== 'rr' || p.reports.length > 0);
    return says ? serializeRtcp(kept) : undefined;
  }

  /**
   * A viewer's RFC 8888 feedback on a stream with layers: its layer choice (layers.ts) reads it,
   * and a move is made at the target layer's next keyframe, which the sharer is asked for.
   */
  private layerFeedback(s: StreamState, v: ViewerState, fb: Ccfb, now: number, out: Output[]): void {
    const move = this.choosing(s, v)?.onFeedback(fb, now, v.lane.index, v.liveSince, this.laneViews(s, now));
    if (move) this.moveViewer(s, v, move, now, out);
  }

  /**
   * `v`'s layer choice, when one may be made now: the stream has layers, and the viewer is not
   * catching up, moving or paused by its circuit breaker.
   */
  private choosing(s: StreamState, v: ViewerState): LayerChoice | undefined {
    if (s.lanes.length < 2 || v.catchUp || v.movingTo || v.breaker.open) return undefined;
    return (v.choice ??= new LayerChoice(s.sent));
  }

  private laneViews(s: StreamState, now: number): LaneView[] {
    // A viewer on a layer takes the sound too: it counts in what each layer asks of its path.
    return s.lanes.map((l) => ({ index: l.index, kbps: l.kbps > 0 ? l.kbps + s.sound.kbps : 0, live: now - l.lastMediaAt < LANE_SILENT_MS }));
  }

  private moveViewer(s: StreamState, v: ViewerState, move: LayerMove, now: number, out: Output[]): void {
    const lane = s.lanes[move.to];
    // Down, onto a layer whose packets since its keyframe the viewer's path takes in CACHE_SWITCH_MS:
    // from that cache at once, as a joining viewer starts, instead of waiting for a fresh keyframe.
    const est = v.choice?.estimateKbps(now);
    const cached = lane.keyframes.cachedBytes;
    if (move.to > v.lane.index && est !== undefined && cached > 0 && cached * 8 <= est * CACHE_SWITCH_MS) {
      this.routing.moveNow(v, lane, now);
      this.startMedia(v, now);
      this.counters.layerMoves++;
      this.log(`stream ${s.name}: viewer ${fmt(v.endpoint)} now gets layer ${move.to}, from its cache (${move.why})`);
      return;
    }
    this.routing.moveLater(v, lane);
    v.movingSince = now;
    this.counters.layerMoves++;
    this.log(`stream ${s.name}: viewer ${fmt(v.endpoint)} to layer ${move.to} at its next keyframe (${move.why})`);
    this.askKeyframe(s, lane.ssrc, now, out);
  }

  /** Asks the sharer for a keyframe (RTCP PLI from the relay), unless one is already on its way. */
  private askKeyframe(s: StreamState, mediaSsrc: number, now: number, out: Output[]): void {
    if (!s.publisher || this.keyframePending(s, now)) return;
    s.keyframeAsked = { at: now, keyframes: s.keyframes.count };
    this.toPublisher(s.publisher, serializeRtcp([{ type: 'pli', senderSsrc: RELAY_SSRC, mediaSsrc }]), out);
  }

  private toPublisher(p: PublisherState, data: Buffer, out: Output[]): void {
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    if (p.deliver) p.deliver(data);
    else out.push({ data, to: [p.endpoint] });
  }

  /** Whether a keyframe request for `s` is on its way (KEYFRAME_WAIT_MS, until a keyframe passes). */
  private keyframePending(s: StreamState, now: number): boolean {
    const asked = s.keyframeAsked;
    if (asked && (s.keyframes.count !== asked.keyframes || now - asked.at >= KEYFRAME_WAIT_MS)) s.keyframeAsked = undefined;
    return s.keyframeAsked !== undefined;
  }

  /** Latches (or refreshes) a publisher; returns the ACK, or null when refused. */
  private publish(msg: PublishMessage, from: Endpoint, key: string, ssrc: number, now: number, auth: Authenticated): Output | null {
    const name = msg.stream;
    if (!this.admission.mayPublish(auth)) return this.refuse(name, RefuseReason.BadKey, from, key, now);
    const fresh = auth && auth !== 'latched' ? { keys: auth.keys, guard: auth.guard } : undefined;
    const r = this.routing.publish(name, { endpoint: from, key, ssrc, since: now, lastSeen: now, salt: msg.salt, auth: fresh });
    if (r === 'taken') return this.refuse(name, RefuseReason.Taken, from, key, now);
    if (r === 'full') {
      this.overLimit('streams', `relay carries ${MAX_STREAMS} streams already; refusing ${name}`);
      return this.refuse(name, RefuseReason.Full, from, key, now);
    }
    const layers = msg.layers ?? [];
    if (layers.length !== r.stream.lanes.length - 1 && layers.length > 0) this.log(`stream ${name}: ${layers.length + 1} quality layers`);
    this.routing.setLayers(r.stream, layers);
    if (!r.previous) this.log(`stream ${name}: publisher ${fmt(from)} (ssrc ${hex(ssrc)})`);
    else if (r.previous.ssrc !== ssrc) this.log(`stream ${name}: publisher restarted (ssrc ${hex(ssrc)})`);
    return this.ack(name, true, from, r.stream.publisher!.salt);
  }

  /**
   * A SUBSCRIBE: a known viewer's keepalive is answered with an ACK (within its rate); an unknown
   * address must first prove it receives at the address it claims, by echoing a cookie (CHALLENGE).
   * Nothing is stored for a peer until it has.
   */
  private subscribe(msg: SubscribeMessage, requestBytes: number, from: Endpoint, key: string, now: number): Output | null {
    const name = msg.stream;
    let stream = this.routing.streams.get(name);
    const existing = stream?.viewers.get(key);
    if (existing) {
      existing.lastSeen = now;
      if (!this.admission.keepalive(existing.keepalive, now)) return null;
    } else {
      const proof = this.admission.proveViewer(msg, from);
      if (proof === 'challenge') {
        const data = this.admission.challenge(name, requestBytes, from, key, now);
        return data && this.reply(data, from);
      }
      if (proof === 'refuse') return this.refuse(name, RefuseReason.BadKey, from, key, now);
      const v = this.join(name, udpSink(from, key), now);
      if (!v) return null;
      stream = v.stream;
    }
    return this.ack(name, !!stream!.publisher, from, stream!.publisher?.salt);
  }

  /** A proven viewer of any kind joins `name`: caught up from the keyframe cache, or live at once. */
  private join(name: string, sink: ViewerSink, now: number): ViewerState | undefined {
    let stream = this.routing.streams.get(name);
    if (!stream) {
      if (!this.routing.roomForAwaited) {
        this.overLimit('awaited', `viewers wait on ${MAX_STREAMS} unpublished stream names already; refusing a viewer of ${name}`);
        return undefined;
      }
      stream = this.routing.open(name);
    }
    if (!this.routing.roomForViewer(stream)) {
      this.overLimit('viewers', `viewer limit reached (${MAX_VIEWERS_PER_STREAM} a stream, ${MAX_VIEWERS} in all)`);
      return undefined;
    }
    const v = this.routing.addViewer(stream, sink, now, keepaliveBudget(now), new RtxBudget(stream.fanOuts, now));
    if (this.startMedia(v, now)) this.counters.cacheJoins++;
    this.log(`stream ${name}: viewer ${fmt(sink.endpoint)} joined (${stream.viewers.size} watching${stream.publisher ? '' : ', no sharer yet'})`);
    return v;
  }

  /**
   * A datagram that did not parse as RTCP from an address that is not a keyed publisher: perhaps
   * a signed PUBLISH (admission.signedPublish); then it is handled as RTCP without its trailer.
   */
  private signedPublish(buf: Buffer, from: Endpoint, key: string, now: number): Output[] {
    const r = this.admission.signedPublish(buf);
    if (!r) {
      this.counters.malformed++;
      return [];
    }
    if (!r.ok) {
      const refused = this.refuse(r.stream, r.reason, from, key, now);
      return refused ? [refused] : [];
    }
    return this.onRtcp(r.packet, from, key, now, r.auth);
  }

  /** ACK: smaller than any PUBLISH or SUBSCRIBE it answers, so the relay never amplifies. */
  private ack(name: string, live: boolean, to: Endpoint, salt?: Buffer): Output {
    return this.reply(relayControl({ kind: ControlType.Ack, stream: name, live, salt }), to);
  }

  /** REFUSED: tells a sharer why, in fewer bytes than its PUBLISH, within the unproven rate. */
  private refuse(name: string, reason: RefuseReason, from: Endpoint, key: string, now: number): Output | null {
    const why = ['', 'the stream is taken', 'the relay is full', 'wrong or missing key', 'this relay has no --key'][reason] ?? `reason ${reason}`;
    this.logOnce(`refuse ${reason} ${key} ${name}`, `stream ${name}: refused ${fmt(from)} (${why})`);
    const data = this.admission.refusal(name, reason, key, now);
    return data && this.reply(data, from);
  }

  private reply(data: Buffer, to: Endpoint): Output {
    this.counters.packetsOut++;
    this.counters.bytesOut += data.length;
    return { data, to: [to] };
  }

  /** Answers a viewer's NACK from a history (its layer's, or the sound's), within its retransmission budget. */
  private retransmit(v: ViewerState, history: RtxHistory, lost: number[], now: number, out: Output[]): void {
    const { resend, misses } = answerNack(history, lost, v.rtx, v.lane.fanOuts, now);
    this.counters.rtxMisses += misses;
    for (const data of resend) {
      v.retransmissions++;
      this.counters.retransmissions++;
      this.routing.sendTo(v, data, out);
    }
  }

  /** Ends a viewer's catch-up, with whatever was still queued for it, and puts it in the fan-out lists. */
  private goLive(v: ViewerState, out: Output[]): void {
    this.endCatchUp(v, out);
    this.routing.goLive(v);
  }

  private endCatchUp(v: ViewerState, out: Output[]): void {
    this.catchingUp.delete(v);
    const rest = v.catchUp?.rest() ?? [];
    v.catchUp = undefined;
    for (const data of rest) this.routing.sendTo(v, data, out);
  }

  /**
   * Sends `buf` to the stream's viewers (of `lane`, for media of one layer): queued for those
   * catching up, fanned out to the live ones. Per media packet: allocates the result and its one Output, nothing else, unless a
   * viewer is catching up. `sound`: a sound packet, sent at once to a catching-up viewer whose
   * sink asks for it (soundAtOnce), once its catch-up has begun: the sender report it opens with
   * comes first (a player that gets its first report late moves its clock then). Sound before
   * that waits in the queue, and is left out by the sink once newer sound has overtaken it: at
   * most the few milliseconds before the first pump.
   */
  private fanOut(stream: StreamState, buf: Buffer, lane?: Lane, sound = false, out: Output[] = []): Output[] {
    let overflowed: ViewerState[] | undefined;
    if (this.catchingUp.size > 0) {
      for (const v of this.catchingUp) {
        if (v.stream !== stream || (lane && v.lane !== lane)) continue;
        if (sound && v.sink.kind !== 'udp' && v.sink.soundAtOnce && v.catchUp!.started) {
          this.routing.sendTo(v, buf, out);
          continue;
        }
        if (v.catchUp!.queueLive(buf)) continue;
        // Cannot catch up at this pace: it goes live now, with the rest of its queue (this packet
        // included) in one go; into the fan-out lists after this packet's fan-out.
        this.endCatchUp(v, out);
        (overflowed ??= []).push(v);
      }
    }
    // Media goes to its layer's viewers; RTCP and control to every layer's.
    if (lane) this.routing.fanOut(stream, buf, out, lane);
    else for (const l of stream.lanes) this.routing.fanOut(stream, buf, out, l);
    if (overflowed) for (const v of overflowed) this.routing.goLive(v);
    return out;
  }

  /** Unlatches the publisher; with `notify`, its live viewers get ENDED (into `out`). */
  private endStream(stream: StreamState, notify: boolean, out: Output[]): void {
    this.routing.unlatch(stream);
    if (!notify || stream.lanes.every((l) => l.targets.length + l.delivered.length === 0)) return;
    out.push(...this.fanOut(stream, relayControl({ kind: ControlType.Ended, stream: stream.name })));
  }

  /** RFC 8083: media to `v` stops (it stays a viewer: its keepalives are still answered). */
  private trip(v: ViewerState, why: string): void {
    this.routing.pause(v);
    this.counters.circuitBreaks++;
    this.log(`stream ${v.stream.name}: viewer ${fmt(v.endpoint)} paused: ${why} (RFC 8083 circuit breaker); trying again in ${CB_RESUME_MS / 1000} s`);
  }

  /**
   * Media to `v` from now on: instant start from the cache (the SR with the clock mapping and
   * everything since the last keyframe, paced) when there is a keyframe, else straight into the
   * live fan-out. True when it starts from the cache.
   */
  private startMedia(v: ViewerState, now: number): boolean {
    const catchUp = v.lane.keyframes.catchUp(now);
    if (!catchUp) {
      this.routing.goLive(v);
      return false;
    }
    v.catchUp = catchUp;
    this.catchingUp.add(v);
    return true;
  }

  /** Media to a paused viewer again, from the last keyframe as for a joining viewer. */
  private untrip(v: ViewerState, now: number): void {
    v.breaker.resume();
    this.startMedia(v, now);
    this.log(`stream ${v.stream.name}: viewer ${fmt(v.endpoint)}: media again after its circuit breaker`);
  }

  /** `why`: the relay's own decision, told to a viewer of another transport; none for detach(). */
  private removeViewer(stream: StreamState, key: string, why?: 'left' | 'timeout'): void {
    const v = this.routing.removeViewer(stream, key);
    if (!v) return;
    this.catchingUp.delete(v);
    if (why && v.sink.kind !== 'udp') v.sink.closed?.(why);
    this.log(`stream ${stream.name}: viewer ${fmt(v.endpoint)} left (${stream.viewers.size} watching)`);
  }

  /** Logs `line` the first time `key` is seen (bounded: a flood of forged addresses logs once per 1000). */
  private logOnce(key: string, line: string): void {
    if (this.warned.has(key)) return;
    if (this.warned.size >= MAX_WARNED) {
      this.warned.clear();
      this.log('(further refusals are counted, not logged one by one)');
    }
    this.warned.add(key);
    this.log(line);
  }

  private overLimit(kind: string, line: string): void {
    this.counters.overLimit++;
    if (!this.warned.has(kind)) {
      this.warned.add(kind);
      this.log(line);
    }
  }

  private log(line: string): void {
    this.onLog?.(line);
  }
}

function hex(n: number): string {
  return n.toString(16).padStart(8, '0');
}
