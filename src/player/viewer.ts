/**
 * The viewer's protocol state as a pure object: datagrams and the clock in, whole frames and the
 * datagrams to send out. watch.ts wires it to a socket, a timer and a player.
 *
 * Clean frames only: a frame is handed to the player when it arrived whole and everything it
 * depends on did too. After a gap the viewer waits for the next keyframe (and asks for one with
 * RTCP PLI, RFC 4585 §6.3.1), so the decoder never sees a damaged picture.
 */
import {
  LATENCY_BUDGET_INITIAL_MS,
  LATENCY_BUDGET_MAX_MS,
  LATENCY_BUDGET_MIN_MS,
  VIDEO_CLOCK_RATE,
  VIEWER_STALL_MS,
} from '../defaults.ts';
import { JitterBuffer, type JitterOutput } from './jitter.ts';
import { FecDecoder, PT_FEC, fecSsrcFor } from '../transport/fec.ts';
import { ControlType, RefuseReason, controlApp, parseControl } from '../transport/control.ts';
import { MediaUnprotector, readRoc, streamKeys, watchProof, type MasterKey } from '../transport/secure.ts';
import { PacketError } from '../util/errors.ts';
import type { Depacketizer, Frame } from '../rtp/frame.ts';
import { codec, codecOfPayloadType, type CodecName } from '../codecs/registry.ts';
import { isRtcp, parseRtcp, serializeRtcp, type RtcpPacket } from '../transport/rtcp.ts';
import { isRtp, parseRtp, type RtpPacket } from '../rtp/packet.ts';
import { seqAdd } from '../rtp/seq.ts';
import { ReceiverStats } from '../transport/stats.ts';
import { randomBytes } from 'node:crypto';

/**
 * connecting: no answer from the relay yet; waiting: the relay answered, nobody publishes the
 * stream; live; reconnecting: a live stream went silent; ended: its sharer left (we wait for the next).
 */
export type ConnectionState = 'connecting' | 'waiting' | 'live' | 'reconnecting' | 'ended';

export interface ViewerCounters {
  datagrams: number;
  bytes: number;
  malformed: number;
  /** RTP from an SSRC other than the current publisher's (a stale one after a restart). */
  foreign: number;
  framesComplete: number;
  /** Frames lost on the way or held back because a frame they depend on was lost. */
  framesDropped: number;
  /** Frames discarded while waiting for a keyframe after a loss. */
  framesSkipped: number;
  keyframeRequests: number;
  publisherRestarts: number;
  /** Packets asked for again with RTCP NACK, and packets that came back that way or via FEC. */
  nacksSent: number;
  /**
   * Loss before repair (JitterBuffer's counters, over the whole session): sequence numbers that
   * did not arrive in sequence. Each ends repaired (recoveredByRtx, recoveredByFec), reordered
   * (arrived late by itself), unrepaired (given up), or is still pending repair.
   */
  lostOnWire: number;
  recoveredByRtx: number;
  recoveredByFec: number;
  reordered: number;
  unrepaired: number;
  /** Packets that arrived after their gap had been given up (already counted as unrepaired). */
  tooLate: number;
  /** Incomplete frames abandoned when their latency budget ran out. */
  framesGivenUp: number;
  /** Encrypted packets that failed authentication (wrong key, damage) or came before the salt. */
  undecryptable: number;
}

export interface CompletedFrame extends Frame {
  codec: CodecName;
  /** Capture → complete here, in ms, once an SR gave the sender's clock mapping. */
  latencyMs?: number;
}

export interface ViewerOutput {
  frames: CompletedFrame[];
  /** Datagrams for the relay (PLI, ACK-triggered reports). */
  send: Buffer[];
}

/** Keyframe requests at most this often (RFC 4585 leaves the rate to the application). */
const PLI_MIN_INTERVAL_MS = 300;
/** Failed decryptions before any frame that mean the passphrase is wrong, not a damaged packet. */
const UNDECRYPTABLE_LIMIT = 50;
/** The latency budget aims to leave at most this fraction of packets unrepaired. */
const RESIDUAL_LOSS = 1e-4;
/**
 * Below this round trip (ms) the millisecond clock and event-loop delays (a few ms on a busy
 * machine, measured through `udpcast impair` on loopback) are as large as the round trip itself,
 * so arrival time cannot tell a re-sent packet from a late original: every fill after a NACK
 * then counts as a repair.
 */
const RTX_MIN_RTT_MS = 10;

/**
 * NACK repeat interval: a little over one RTT, so a retransmission that is on its way is not asked
 * for twice; 30 ms before the first RTT measurement.
 */
function retryFor(rttMs: number | undefined): number {
  return rttMs === undefined ? 30 : Math.max(10, rttMs * 1.2 + 5);
}

export class ViewerCore {
  readonly ssrc = randomBytes(4).readUInt32BE(0);
  readonly stream: string;
  state: ConnectionState = 'connecting';
  codec?: CodecName;
  publisherSsrc?: number;
  stats = new ReceiverStats({ clockRate: VIDEO_CLOCK_RATE });
  readonly counters: ViewerCounters = {
    datagrams: 0,
    bytes: 0,
    malformed: 0,
    foreign: 0,
    framesComplete: 0,
    framesDropped: 0,
    framesSkipped: 0,
    keyframeRequests: 0,
    publisherRestarts: 0,
    nacksSent: 0,
    lostOnWire: 0,
    recoveredByRtx: 0,
    recoveredByFec: 0,
    reordered: 0,
    unrepaired: 0,
    tooLate: 0,
    framesGivenUp: 0,
    undecryptable: 0,
  };
  /** RFC 3550 counts of the sharer sessions before the current one (each has its own ReceiverStats). */
  private priorSessions = { received: 0, lost: 0, duplicates: 0 };
  /** Picture size, read from the first SPS (H.264) or JPEG header seen. */
  width?: number;
  height?: number;
  lastLatencyMs?: number;
  /** From the first SUBSCRIBE to the first whole frame handed out: how long "instant start" took. */
  firstFrameMs?: number;
  private firstSubscribeAt?: number;
  /** Viewer ↔ relay round trip, from each SUBSCRIBE to the ACK that answers it. */
  rttMs?: number;
  /** The shortest round trip seen: the soonest a re-sent packet can come back after its NACK. */
  private minRttMs = Infinity;
  private keepaliveSentAt?: number;
  /** The relay's address cookie, echoed in every SUBSCRIBE. */
  private cookie?: Buffer;
  private depacketizer?: Depacketizer;
  private lastSeq?: number;
  private needKeyframe = true;
  private lastHeard = -Infinity;
  private lastPli = -Infinity;
  private droppedSeen = 0;
  /** The newest SR, kept so a sharer's first SR is not lost when its first RTP packet resets stats. */
  private lastSr?: { sr: { ssrc: number; ntpSec: number; ntpFrac: number; rtpTimestamp: number }; at: number };
  onLog?: (line: string) => void;

  /** Holds packets behind a gap while NACKs repair it, within the latency budget. */
  private jitter: JitterBuffer;
  /** Rebuilds single losses from the sharer's parity packets, when it sends them (--fec). */
  private readonly fec = new FecDecoder();
  private fecSsrc?: number;
  /** A fixed --latency; undefined: derived from the measured RTT. */
  private readonly fixedLatencyMs?: number;

  /** --encrypt: the master key; media keys follow from the salt the relay's ACK carries. */
  private readonly encryptMaster?: MasterKey;
  /** --watch-key: proves to the relay that we may watch. */
  private readonly watchKey?: Buffer;
  private unprotector?: MediaUnprotector;
  private salt?: Buffer;
  /** Set when watching cannot go on (wrong key, encrypted stream without --encrypt): watch exits 2. */
  fatal?: string;

  constructor(stream: string, opts: { latencyMs?: number; encrypt?: MasterKey; watchKey?: Buffer } = {}) {
    this.stream = stream;
    this.encryptMaster = opts.encrypt;
    this.watchKey = opts.watchKey;
    this.fixedLatencyMs = opts.latencyMs;
    const latencyMs = opts.latencyMs ?? LATENCY_BUDGET_INITIAL_MS;
    this.jitter = new JitterBuffer({ latencyMs, retryMs: retryFor(undefined) });
  }

  /**
   * RFC 3550 receive counts over the whole session: A.1 starts them again for each sharer session
   * and restart, and a person's counters must not jump back (only `r` on the dashboard rebases).
   */
  get receiveTotals(): { packetsReceived: number; rfc3550Lost: number; duplicates: number } {
    const s = this.stats.snapshot();
    return {
      packetsReceived: this.priorSessions.received + s.sessionReceived,
      rfc3550Lost: this.priorSessions.lost + s.sessionLost,
      duplicates: this.priorSessions.duplicates + s.duplicates,
    };
  }

  /** Packets that should have arrived in sequence so far: those that did, and those lost on the wire. */
  get packetsExpected(): number {
    return this.jitter.counters.firstTime + this.jitter.counters.missed;
  }

  /** Sequence numbers missing now and still waiting for a repair (not yet repaired or given up). */
  get repairPending(): number {
    return this.jitter.pending;
  }

  /** The current latency budget: how long a gap may hold frames back before it is given up. */
  get latencyBudgetMs(): number {
    return this.jitter.latencyMs;
  }

  /**
   * With --encrypt, every RTP packet is AES-GCM (RFC 7714) under keys from the stream's salt;
   * a packet that fails is counted and dropped. Without it, an encrypted packet is a clear error.
   */
  private decrypt(buf: Buffer): Buffer | undefined {
    const encrypted = readRoc(buf) !== undefined;
    if (!this.encryptMaster) {
      if (encrypted) this.fatal ??= 'the stream is encrypted: watch with --encrypt PASSPHRASE (the sharer\'s --encrypt)';
      return encrypted ? undefined : buf;
    }
    if (!encrypted) {
      // We were told to expect encryption: plain pictures mean the sharer is not using --encrypt.
      this.fatal ??= 'the stream is not encrypted: the sharer runs without --encrypt (watch without it, or ask them to use it)';
      return undefined;
    }
    if (!this.unprotector) {
      this.counters.undecryptable++; // no salt yet (the ACK carries it)
      return undefined;
    }
    try {
      return this.unprotector.unprotect(buf);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      this.counters.undecryptable++;
      if (this.counters.undecryptable >= UNDECRYPTABLE_LIMIT && this.counters.framesComplete === 0) {
        this.fatal ??= 'cannot decrypt the stream: check --encrypt (it must be the sharer\'s --encrypt)';
      }
      return undefined;
    }
  }

  /** Timer entry: gives up expired gaps (releasing what waited behind them) and repeats NACKs. */
  poll(now: number): ViewerOutput {
    const out: ViewerOutput = { frames: [], send: [] };
    if (this.publisherSsrc !== undefined) this.drain(this.jitter.poll(now), now, out);
    return out;
  }

  onDatagram(buf: Buffer, now: number): ViewerOutput {
    const out: ViewerOutput = { frames: [], send: [] };
    this.counters.datagrams++;
    this.counters.bytes += buf.length;
    this.lastHeard = now;
    try {
      if (isRtcp(buf)) this.onRtcp(parseRtcp(buf), now, out);
      else if (isRtp(buf)) {
        const plain = this.decrypt(buf);
        if (plain) this.onRtp(plain, parseRtp(plain), now, out);
      }
      else this.counters.malformed++;
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      this.counters.malformed++;
    }
    return out;
  }

  /** Subscription keepalive with our receiver report; also moves live → reconnecting on silence. */
  keepalive(now: number): Buffer {
    if (this.state === 'live' && now - this.lastHeard > VIEWER_STALL_MS) this.state = 'reconnecting';
    this.keepaliveSentAt = now;
    this.firstSubscribeAt ??= now;
    this.sampleLoss();
    const packets: RtcpPacket[] = [
      {
        type: 'rr',
        ssrc: this.ssrc,
        reports: this.publisherSsrc !== undefined ? [this.stats.reportBlock(this.publisherSsrc, now)] : [],
      },
      controlApp(
        {
          kind: ControlType.Subscribe,
          stream: this.stream,
          cookie: this.cookie,
          proof: this.watchKey && this.cookie ? watchProof(this.watchKey, this.cookie, Buffer.from(this.stream, 'utf8')) : undefined,
        },
        this.ssrc,
      ),
    ];
    return serializeRtcp(packets);
  }

  /** LEAVE + BYE, sent when watch ends. */
  goodbye(): Buffer {
    return serializeRtcp([
      { type: 'rr', ssrc: this.ssrc, reports: [] },
      { type: 'bye', ssrcs: [this.ssrc], reason: 'viewer left' },
      controlApp({ kind: ControlType.Leave, stream: this.stream }, this.ssrc),
    ]);
  }

  private onRtcp(packets: RtcpPacket[], now: number, out: ViewerOutput): void {
    for (const p of packets) {
      if (p.type === 'app') {
        const msg = parseControl(p);
        if (!msg || msg.stream !== this.stream) continue;
        if (msg.kind === ControlType.Challenge) {
          // The relay wants proof that we receive at our address: echo its cookie at once.
          this.cookie = msg.cookie;
          out.send.push(this.keepalive(now));
        } else if (msg.kind === ControlType.Refused) {
          this.fatal ??=
            msg.reason === RefuseReason.BadKey
              ? 'the relay refused us: it needs the right --watch-key'
              : `the relay refused us (reason ${msg.reason})`;
        } else if (msg.kind === ControlType.Ack) {
          if (msg.salt && this.encryptMaster && !this.salt?.equals(msg.salt)) {
            this.salt = Buffer.from(msg.salt);
            this.unprotector = new MediaUnprotector(streamKeys(this.encryptMaster, this.salt).media);
          }
          if (this.keepaliveSentAt !== undefined) this.setRtt(now - this.keepaliveSentAt);
          this.keepaliveSentAt = undefined;
          // An ACK without a publisher keeps 'ended' (the sharer left) rather than 'waiting'.
          if (this.state !== 'live' && (msg.live || this.state !== 'ended')) this.state = msg.live ? 'live' : 'waiting';
        } else if (msg.kind === ControlType.Ended) {
          this.state = 'ended';
          this.onLog?.(`stream ${this.stream} ended by its sharer`);
        }
      } else if (p.type === 'sr') {
        this.lastSr = { sr: p, at: now };
        if (p.ssrc === this.publisherSsrc) this.stats.onSenderReport(p, now);
      } else if (p.type === 'bye' && this.publisherSsrc !== undefined && p.ssrcs.includes(this.publisherSsrc)) {
        this.state = 'ended';
        this.onLog?.(`stream ${this.stream}: sharer said goodbye`);
      }
    }
  }

  private onRtp(buf: Buffer, pkt: RtpPacket, now: number, out: ViewerOutput): void {
    if (pkt.payloadType === PT_FEC) {
      // Parity: never counted as media; whatever it rebuilds joins the stream as if it had arrived.
      if (this.publisherSsrc === undefined || pkt.ssrc !== this.fecSsrc) return;
      for (const r of this.fec.pushFec(buf)) this.recovered(r, now, out);
      return;
    }
    const codec = codecOfPayloadType(pkt.payloadType)?.name;
    if (!codec) {
      this.counters.malformed++;
      return;
    }
    if (pkt.ssrc !== this.publisherSsrc || codec !== this.codec) this.newPublisher(pkt.ssrc, codec);
    this.state = 'live';
    const verdict = this.stats.onRtp(pkt.sequenceNumber, pkt.timestamp, now);
    if (verdict === 'duplicate') return;
    const rebuilt = this.fec.seen(pkt.sequenceNumber); // FEC got there first; the original is redundant
    const more = this.fec.pushMedia(pkt);
    if (!rebuilt) this.drain(this.jitter.push(pkt, now), now, out);
    for (const buf of more) this.recovered(buf, now, out);
  }

  /** A packet FEC rebuilt: counted as received (it is no longer lost) and fed in order. */
  private recovered(buf: Buffer, now: number, out: ViewerOutput): void {
    const pkt = parseRtp(buf);
    if (pkt.ssrc !== this.publisherSsrc) return;
    const verdict = this.stats.onRtp(pkt.sequenceNumber, pkt.timestamp, now);
    if (verdict === 'duplicate') return;
    this.drain(this.jitter.push(pkt, now, true), now, out);
  }

  /** Depacketizes what the jitter buffer released, in order, and asks again for what is missing. */
  private drain(j: JitterOutput, now: number, out: ViewerOutput): void {
    for (const pkt of j.released) this.depacketize(pkt, now, out);
    this.syncRepairCounters();
    if (j.nack.length && this.publisherSsrc !== undefined) {
      this.counters.nacksSent += j.nack.length;
      // RFC 4585 §6.2.1 packs 17 sequence numbers per FCI; a long burst becomes several FCIs.
      out.send.push(
        serializeRtcp([
          { type: 'rr', ssrc: this.ssrc, reports: [] },
          { type: 'nack', senderSsrc: this.ssrc, mediaSsrc: this.publisherSsrc, lost: j.nack },
        ]),
      );
    }
  }

  private syncRepairCounters(): void {
    const j = this.jitter.counters;
    this.counters.lostOnWire = j.missed;
    this.counters.recoveredByRtx = j.recoveredAfterNack;
    this.counters.recoveredByFec = j.recoveredByFec;
    this.counters.reordered = j.reordered;
    this.counters.unrepaired = j.givenUp;
    this.counters.tooLate = j.late;
    this.counters.framesGivenUp = j.giveUps;
  }

  private depacketize(pkt: RtpPacket, now: number, out: ViewerOutput): void {
    const codec = this.codec!;
    if (this.lastSeq !== undefined && pkt.sequenceNumber !== seqAdd(this.lastSeq, 1)) {
      // A gap given up: whatever the next frames reference may be gone.
      this.loss(now, out);
    }
    this.lastSeq = pkt.sequenceNumber;
    const frames = this.depacketizer!.pushAll(pkt);
    const dropped = this.depacketizer!.counters.framesDropped;
    if (dropped !== this.droppedSeen) {
      this.counters.framesDropped += dropped - this.droppedSeen;
      this.droppedSeen = dropped;
      this.loss(now, out);
    }
    for (const frame of frames) {
      if (this.needKeyframe && !frame.keyframe) {
        this.counters.framesSkipped++;
        continue;
      }
      this.needKeyframe = false;
      if (frame.keyframe && this.width === undefined) this.readSize(frame.data, codec);
      this.counters.framesComplete++;
      if (this.firstFrameMs === undefined && this.firstSubscribeAt !== undefined) {
        this.firstFrameMs = now - this.firstSubscribeAt;
        this.onLog?.(`first frame ${this.firstFrameMs} ms after subscribing`);
      }
      const captured = this.stats.captureTimeMs(frame.timestamp);
      const latencyMs = captured === undefined ? undefined : now - captured;
      if (latencyMs !== undefined) this.lastLatencyMs = latencyMs;
      out.frames.push({ ...frame, codec, latencyMs });
    }
  }

  private setRtt(rtt: number): void {
    this.rttMs = rtt;
    this.jitter.retryMs = retryFor(rtt);
    // Half the shortest round trip: a re-sent packet cannot be back sooner, a late original usually is.
    this.minRttMs = Math.min(this.minRttMs, rtt);
    this.jitter.answerMs = this.minRttMs >= RTX_MIN_RTT_MS ? this.minRttMs / 2 : 0;
    this.updateBudget();
  }

  /**
   * The latency budget covers as many NACK rounds as the measured loss needs: enough tries that a
   * packet stays lost with probability under RESIDUAL_LOSS (loss^tries), at least 2 and at most 8.
   * budget = RTT (the first answer) + (tries − 1) retries + 20 ms of slack, within the bounds in
   * defaults.ts. At 20 ms RTT: 0-1% loss → 69 ms, 5% → 127 ms, 20% → 185 ms.
   */
  private updateBudget(): void {
    if (this.fixedLatencyMs !== undefined || this.rttMs === undefined) return;
    const loss = Math.max(0.01, Math.min(0.5, this.lossEstimate));
    const tries = Math.min(8, Math.max(2, Math.ceil(Math.log(RESIDUAL_LOSS) / Math.log(loss))));
    const budget = this.rttMs + (tries - 1) * this.jitter.retryMs + 20;
    this.jitter.latencyMs = Math.round(Math.min(LATENCY_BUDGET_MAX_MS, Math.max(LATENCY_BUDGET_MIN_MS, budget)));
  }

  /** Loss before repair, smoothed over keepalive intervals (one second each). */
  private lossEstimate = 0;
  private lossSample = { arrived: 0, missed: 0 };

  private sampleLoss(): void {
    const c = this.jitter.counters;
    const arrived = c.arrived - this.lossSample.arrived;
    const missed = c.missed - this.lossSample.missed;
    this.lossSample = { arrived: c.arrived, missed: c.missed };
    if (arrived + missed < 20) return; // too few packets to say anything
    const sample = missed / (arrived + missed);
    // Rise fast (a bad link must be met at once), fall slowly (loss comes in spells).
    this.lossEstimate = sample > this.lossEstimate ? sample : 0.8 * this.lossEstimate + 0.2 * sample;
    this.updateBudget();
  }

  /** The size is for display only; a frame whose size cannot be read is not refused over it. */
  private readSize(data: Buffer, name: CodecName): void {
    const size = codec(name).frameSize(data);
    if (size) ({ width: this.width, height: this.height } = size);
  }

  private loss(now: number, out: ViewerOutput): void {
    if (this.codec && codec(this.codec).everyFrameKey) return; // nothing refers to a lost picture
    this.needKeyframe = true;
    const pli = this.requestKeyframe(now);
    if (pli) out.send.push(pli);
  }

  /**
   * An RTCP PLI asking the sharer for a keyframe, or undefined when one was asked for less than
   * PLI_MIN_INTERVAL_MS ago or there is no sharer yet. Also for a player restarted with nothing
   * to start from.
   */
  requestKeyframe(now: number): Buffer | undefined {
    if (this.publisherSsrc === undefined || now - this.lastPli < PLI_MIN_INTERVAL_MS) return undefined;
    this.lastPli = now;
    this.counters.keyframeRequests++;
    return serializeRtcp([
      { type: 'rr', ssrc: this.ssrc, reports: [] },
      { type: 'pli', senderSsrc: this.ssrc, mediaSsrc: this.publisherSsrc },
    ]);
  }

  private newPublisher(ssrc: number, name: CodecName): void {
    if (this.publisherSsrc !== undefined) {
      this.counters.publisherRestarts++;
      this.onLog?.(`stream ${this.stream}: new sharer session (ssrc ${ssrc.toString(16)}), following it`);
    }
    this.publisherSsrc = ssrc;
    this.codec = name;
    // The old session's counts stay in the totals: a sharer restart is not a counter reset.
    const before = this.receiveTotals;
    this.priorSessions = { received: before.packetsReceived, lost: before.rfc3550Lost, duplicates: before.duplicates };
    this.stats = new ReceiverStats({ clockRate: VIDEO_CLOCK_RATE });
    if (this.lastSr?.sr.ssrc === ssrc) this.stats.onSenderReport(this.lastSr.sr, this.lastSr.at);
    this.depacketizer = codec(name).depacketizer();
    this.depacketizer.onDrop = (reason) => this.onLog?.(`frame dropped: ${reason}`);
    this.jitter.reset();
    this.syncRepairCounters(); // the old session's open gaps are now given up
    this.fec.reset();
    this.fecSsrc = fecSsrcFor(ssrc);
    this.lossSample = { arrived: 0, missed: 0 };
    this.droppedSeen = 0;
    this.lastSeq = undefined;
    this.needKeyframe = true;
  }
}
