/**
 * The viewer's protocol state as a pure object: datagrams and the clock in, whole frames and the
 * datagrams to send out. watch.ts wires it to a socket, a timer and a player.
 *
 * ViewerCore only composes the parts, each with one job:
 *   - session.ts:  the control client and the connection state (relay's word, the clock);
 *   - pipeline.ts: decrypt → FEC → jitter buffer → depacketize, clean frames out;
 *   - budget.ts:   the latency budget (RTT and loss → how long a gap may hold frames back);
 *   - feedback.ts: RTCP NACK and PLI to the sharer, and the keyframe-request rate limit.
 * Here: RTCP demultiplexing, the picture size, first-frame time, and the counters in one place.
 */
import type { AudioReport, ReceivedAudio } from './audio.ts';
import { randomBytes } from 'node:crypto';
import { codec } from '../codecs/registry.ts';
import type { CodecName } from '../codecs/registry.ts';
import { isRtcp, parseRtcp, serializeRtcp, type RtcpPacket } from '../transport/rtcp.ts';
import { ArrivalLog } from '../transport/arrivals.ts';
import { isRtp } from '../rtp/packet.ts';
import type { MasterKey } from '../transport/secure.ts';
import type { ReceiverStats } from '../transport/stats.ts';
import { PacketError } from '../util/errors.ts';
import { LatencyBudget } from './budget.ts';
import { Feedback } from './feedback.ts';
import { MediaPipeline, type CompletedFrame, type PipelineCounters, type PipelineOutput } from './pipeline.ts';
import { ViewerSession, type ConnectionState } from './session.ts';

export type { ConnectionState } from './session.ts';
export type { CompletedFrame } from './pipeline.ts';

export interface ViewerCounters extends PipelineCounters {
  /** The pipeline's malformed RTP plus RTCP that did not parse. */
  malformed: number;
  datagrams: number;
  bytes: number;
  keyframeRequests: number;
  publisherRestarts: number;
  /** Times the relay moved this viewer to another quality layer of the stream. */
  layerMoves: number;
  /** Sequence numbers asked for again with RTCP NACK. */
  nacksSent: number;
  /** The sharer's sound: Opus packets handed on, never seen, and too late or twice. */
  audioPackets: number;
  audioLost: number;
  audioLate: number;
  /** Sound RED gave back, and sound concealed (player/audio.ts AudioCounters). */
  audioRecovered: number;
  audioConcealed: number;
  /** Sound packets of silence the sharer did not send (DTX), filled with silence here. */
  audioSilence: number;
}

export interface ViewerOutput {
  frames: CompletedFrame[];
  /** The sharer's sound, in order, on the picture's clock. */
  audio: ReceivedAudio[];
  /** Datagrams for the relay (PLI, NACK, ACK-triggered reports). */
  send: Buffer[];
}

export class ViewerCore {
  /** Random, never the relay's (RELAY_SSRC, 0): the sharer tells the relay's feedback by it. */
  readonly ssrc = (randomBytes(4).readUInt32BE(0) || 1) >>> 0;
  /** Arrival times of media, reported to the relay (RFC 8888) for its choice of this viewer's layer. */
  private readonly arrivals = new ArrivalLog();
  private layerMoves = 0;
  readonly stream: string;
  /** Picture size, read from the first keyframe of each sharer session (SPS, or JPEG header). */
  width?: number;
  height?: number;
  lastLatencyMs?: number;
  /** Whether the stream has sound: a packet of it came, placed or not. */
  get soundHeard(): boolean {
    return this.pipeline.audio.heard;
  }
  /** From the first SUBSCRIBE to the first whole frame handed out: how long "instant start" took. */
  firstFrameMs?: number;
  /** Set when watching cannot go on (wrong key, encrypted stream without --encrypt): watch exits 2. */
  fatal?: string;
  onLog?: (line: string) => void;

  private readonly session: ViewerSession;
  private readonly pipeline: MediaPipeline;
  private readonly budget: LatencyBudget;
  private readonly feedback: Feedback;
  private datagrams = 0;
  private bytes = 0;
  /** RTCP that did not parse (malformed RTP is the pipeline's count). */
  private malformedRtcp = 0;
  /** The size is read once per sharer session. */
  private sizeRead = false;

  constructor(stream: string, opts: { latencyMs?: number; encrypt?: MasterKey; watchKey?: Buffer } = {}) {
    this.stream = stream;
    const log = (line: string) => this.onLog?.(line);
    this.session = new ViewerSession(stream, this.ssrc, { watchKey: opts.watchKey, log });
    this.budget = new LatencyBudget(opts.latencyMs);
    this.pipeline = new MediaPipeline({ timing: this.budget, encrypt: opts.encrypt, log });
    this.feedback = new Feedback(this.ssrc);
  }

  /** The sound's jitter and capture-to-arrival latency (player/audio.ts). */
  get audio(): AudioReport {
    return this.pipeline.audio.report;
  }

  get state(): ConnectionState {
    return this.session.state;
  }

  get codec(): CodecName | undefined {
    return this.pipeline.codec;
  }

  get publisherSsrc(): number | undefined {
    return this.pipeline.publisherSsrc;
  }

  /** RFC 3550 statistics of the current sharer session (a new one starts with each). */
  get stats(): ReceiverStats {
    return this.pipeline.stats;
  }

  /** Viewer ↔ relay round trip, from each SUBSCRIBE to the ACK that answers it. */
  get rttMs(): number | undefined {
    return this.budget.rttMs;
  }

  /** A copy of the counts so far, over the whole session (a sharer restart sends none back). */
  get counters(): ViewerCounters {
    const p = this.pipeline.counters;
    return {
      ...p,
      datagrams: this.datagrams,
      bytes: this.bytes,
      malformed: this.malformedRtcp + p.malformed,
      keyframeRequests: this.feedback.keyframeRequests,
      publisherRestarts: this.session.publisherRestarts,
      layerMoves: this.layerMoves,
      nacksSent: this.feedback.nacksSent,
      audioPackets: this.pipeline.audio.counters.packets,
      audioLost: this.pipeline.audio.counters.lost,
      audioLate: this.pipeline.audio.counters.late,
      audioRecovered: this.pipeline.audio.counters.recovered,
      audioConcealed: this.pipeline.audio.counters.concealed,
      audioSilence: this.pipeline.audio.counters.silence,
    };
  }

  /**
   * RFC 3550 receive counts over the whole session: A.1 starts them again for each sharer session
   * and restart, and a person's counters must not jump back (only `r` on the dashboard rebases).
   */
  get receiveTotals(): { packetsReceived: number; rfc3550Lost: number; duplicates: number } {
    return this.pipeline.receiveTotals;
  }

  /** Packets that should have arrived in sequence so far: those that did, and those lost on the wire. */
  get packetsExpected(): number {
    return this.pipeline.packetsExpected;
  }

  /** Sequence numbers missing now and still waiting for a repair (not yet repaired or given up). */
  get repairPending(): number {
    return this.pipeline.repairPending;
  }

  /** The current latency budget: how long a gap may hold frames back before it is given up. */
  get latencyBudgetMs(): number {
    return this.budget.latencyMs;
  }

  /** Timer entry: gives up expired gaps (releasing what waited behind them) and repeats NACKs. */
  poll(now: number): ViewerOutput {
    const out: ViewerOutput = { frames: [], audio: [], send: [] };
    this.media(this.pipeline.poll(now), now, out);
    return out;
  }

  onDatagram(buf: Buffer, now: number): ViewerOutput {
    const out: ViewerOutput = { frames: [], audio: [], send: [] };
    this.datagrams++;
    this.bytes += buf.length;
    this.session.heard(now);
    if (isRtcp(buf)) {
      try {
        this.onRtcp(parseRtcp(buf), now, out);
      } catch (err) {
        if (!(err instanceof PacketError)) throw err;
        this.malformedRtcp++;
      }
    } else {
      // What arrived when, told to the relay (RFC 8888): it picks this viewer's quality layer by it.
      if (isRtp(buf)) {
        const report = this.arrivals.arrived(buf, now, this.ssrc);
        if (report) out.send.push(serializeRtcp([report]));
      }
      this.media(this.pipeline.push(buf, now), now, out);
    }
    this.fatal ??= this.session.fatal ?? this.pipeline.fatal;
    return out;
  }

  /** Subscription keepalive with our receiver report; also moves live → reconnecting on silence. */
  keepalive(now: number): Buffer {
    this.budget.sampleLoss(this.pipeline.lossCounts);
    this.pipeline.setTiming(this.budget);
    return this.session.subscribe(now, this.pipeline.reportBlocks(now));
  }

  /** LEAVE + BYE, sent when watch ends. */
  goodbye(): Buffer {
    return this.session.goodbye();
  }

  /**
   * An RTCP PLI asking the sharer for a keyframe, or undefined when one was asked for less than
   * PLI_MIN_INTERVAL_MS ago or there is no sharer yet. Also for a player restarted with nothing
   * to start from.
   */
  requestKeyframe(now: number): Buffer | undefined {
    return this.feedback.keyframe(this.pipeline.publisherSsrc, now);
  }

  private onRtcp(packets: RtcpPacket[], now: number, out: ViewerOutput): void {
    for (const p of packets) {
      if (p.type === 'app') {
        const effect = this.session.onApp(p, now);
        if (effect.salt) this.pipeline.setSalt(effect.salt);
        if (effect.rttMs !== undefined) {
          this.budget.onRtt(effect.rttMs);
          this.pipeline.setTiming(this.budget);
        }
        if (effect.resubscribe) out.send.push(this.keepalive(now));
      } else if (p.type === 'sr') {
        this.pipeline.onSenderReport(p, now);
      } else if (p.type === 'bye') {
        this.session.onBye(p.ssrcs, this.pipeline.publisherSsrc);
        this.pipeline.audio.bye(p.ssrcs);
      }
    }
  }

  /** What the pipeline gave: frames out, a new publisher noted, keyframe and repair requests sent. */
  private media(m: PipelineOutput, now: number, out: ViewerOutput): void {
    if (m.publisher) {
      this.session.onPublisher(m.publisher.ssrc, m.publisher.restart);
      if (m.publisher.layer) {
        this.layerMoves++;
        this.onLog?.('the relay moved us to another quality layer (its log says why); from its keyframe on');
      }
      this.budget.restartSample(this.pipeline.lossCounts);
      this.sizeRead = false;
    }
    if (m.live) this.session.onMedia();
    for (const f of m.frames) this.frame(f, now);
    out.frames.push(...m.frames);
    out.audio.push(...m.audio);
    if (m.keyframeNeeded) {
      const pli = this.requestKeyframe(now);
      if (pli) out.send.push(pli);
    }
    const ssrc = this.pipeline.publisherSsrc;
    if (m.nack.length && ssrc !== undefined) out.send.push(this.feedback.nack(ssrc, m.nack));
  }

  private frame(f: CompletedFrame, now: number): void {
    // The size is for display only; a frame whose size cannot be read is not refused over it.
    if (f.keyframe && !this.sizeRead) {
      const size = codec(f.codec).frameSize(f.data);
      if (size) {
        ({ width: this.width, height: this.height } = size);
        this.sizeRead = true;
      }
    }
    if (this.firstFrameMs === undefined && this.session.firstSubscribeAt !== undefined) {
      this.firstFrameMs = now - this.session.firstSubscribeAt;
      this.onLog?.(`first frame ${this.firstFrameMs} ms after subscribing`);
    }
    if (f.latencyMs !== undefined) this.lastLatencyMs = f.latencyMs;
  }
}
