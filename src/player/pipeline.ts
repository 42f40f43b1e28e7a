/**
 * The viewer's media path as a pure object: an RTP datagram and the clock in, clean frames and the
 * repairs to ask for out; no sockets, no timers (ViewerCore and watch.ts wire those). Stages, in
 * order: decrypt (MediaDecryptor) → FEC (FecDecoder, RFC 5109) → reorder and NACK (JitterBuffer)
 * → depacketize (the codec's Depacketizer, found in the registry by payload type) → the
 * clean-frame gate. It follows one publisher at a time: a new SSRC or codec starts every stage over.
 *
 * Clean frames only: a frame is handed out when it arrived whole and everything it depends on did
 * too. After a gap the pipeline holds frames back until the next keyframe and says a keyframe is
 * needed (ViewerCore asks for one with RTCP PLI, RFC 4585 §6.3.1), so the decoder never sees a
 * damaged picture.
 */
import { isAudioPayloadType, VIDEO_CLOCK_RATE } from '../defaults.ts';
import { AudioReceiver, type ReceivedAudio } from './audio.ts';
import { codec, codecOfPayloadType, type CodecName } from '../codecs/registry.ts';
import type { Depacketizer, Frame } from '../rtp/frame.ts';
import { isRtp, parseRtp, type RtpPacket } from '../rtp/packet.ts';
import { seqAdd } from '../rtp/seq.ts';
import { FecDecoder, PT_FEC, fecSsrcFor } from '../transport/fec.ts';
import type { ReportBlock } from '../transport/rtcp.ts';
import type { MasterKey } from '../transport/secure.ts';
import { ReceiverStats } from '../transport/stats.ts';
import { startsKeyframe } from '../transport/keyframe.ts';
import { PacketError } from '../util/errors.ts';
import type { LossCounts, RepairTiming } from './budget.ts';
import { MediaDecryptor } from './decrypt.ts';
import { JitterBuffer, type JitterOutput } from './jitter.ts';

/**
 * After following a new SSRC, packets of the one before are stragglers (reordered, or re-sent
 * answers to our NACKs) for this long, not a switch back: longer than any repair can take
 * (LATENCY_BUDGET_MAX_MS), short enough that a sharer that really comes back is followed.
 */
export const STALE_PUBLISHER_MS = 1000;

export interface CompletedFrame extends Frame {
  codec: CodecName;
  /** Capture → complete here, in ms, once an SR gave the sender's clock mapping. */
  latencyMs?: number;
}

export interface PipelineCounters {
  /** RTP datagrams that did not parse, or of a payload type no codec has. */
  malformed: number;
  /** RTP from the publisher followed before the current one (a straggler after a restart). */
  foreign: number;
  framesComplete: number;
  /** Frames lost on the way or held back because a frame they depend on was lost. */
  framesDropped: number;
  /** Frames discarded while waiting for a keyframe after a loss. */
  framesSkipped: number;
  /** Encrypted packets that failed authentication (wrong key, damage) or came before the salt. */
  undecryptable: number;
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
}

export interface PipelineOutput {
  /** Clean frames, in order. */
  frames: CompletedFrame[];
  /** Sequence numbers of the publisher's stream to ask for again (RTCP NACK), due now. */
  nack: number[];
  /** A loss the decoder cannot get past without a keyframe (never for codecs whose every frame is one). */
  keyframeNeeded: boolean;
  /** The datagram was media of the publisher: the stream is live. */
  live: boolean;
  /** The sharer's sound (Opus), on the picture's clock. */
  audio: ReceivedAudio[];
  /**
   * Set when this datagram made the pipeline follow a publisher: the first, a new one (restart),
   * or another quality layer of the same one (layer: the relay switched this viewer's layer).
   */
  publisher?: { ssrc: number; codec: CodecName; restart: boolean; layer: boolean };
}

export interface PipelineOptions {
  /** The jitter buffer's timing until setTiming (LatencyBudget's initial values in ViewerCore). */
  timing: RepairTiming;
  /** --encrypt's key; undefined: the stream is expected in the clear. */
  encrypt?: MasterKey;
  log?: (line: string) => void;
}

/** SSRCs whose latest SR is kept: a sharer's layers and its FEC, and one restart, many times over. */
const SR_SSRCS_MAX = 16;

type SenderClock = { ssrc: number; ntpSec: number; ntpFrac: number; rtpTimestamp: number };

export class MediaPipeline {
  /** The sharer's sound, if it sends any. */
  readonly audio = new AudioReceiver();
  /** RFC 3550 receive statistics of the current publisher (A.1 starts again for each). */
  stats = new ReceiverStats({ clockRate: VIDEO_CLOCK_RATE });
  private ssrc?: number;
  private codecName?: CodecName;
  /** RFC 3550 counts of the sharer sessions before the current one. */
  private priorSessions = { received: 0, lost: 0, duplicates: 0 };
  private readonly decryptor: MediaDecryptor;
  /** Rebuilds single losses from the sharer's parity packets, when it sends them (--fec). */
  private readonly fec = new FecDecoder({ waitForFec: true });
  private fecSsrc?: number;
  /** Holds packets behind a gap while NACKs repair it, within the latency budget. */
  private readonly jitter: JitterBuffer;
  private depacketizer?: Depacketizer;
  /** The last sequence number depacketized: a jump past it is a gap given up. */
  private lastSeq?: number;
  private waitingForKeyframe = true;
  private droppedSeen = 0;
  /**
   * The newest SR of each SSRC (at most SR_SSRCS_MAX), kept so a sharer's first SR is not lost when
   * its first RTP packet resets stats, and to know a sharer's quality layers: their SRs come in one
   * compound (the same arrival time).
   */
  private readonly srs = new Map<number, { sr: SenderClock; at: number }>();
  /** The SSRC left last (a sharer restart, or a layer move), whose stragglers are not followed back for STALE_PUBLISHER_MS. */
  private previous?: { ssrc: number; until: number; layer: boolean };
  private readonly own = { malformed: 0, foreign: 0, framesComplete: 0, framesDropped: 0, framesSkipped: 0 };
  private readonly log?: (line: string) => void;

  constructor(opts: PipelineOptions) {
    this.jitter = new JitterBuffer({ latencyMs: opts.timing.latencyMs, retryMs: opts.timing.retryMs });
    this.jitter.answerMs = opts.timing.answerMs;
    this.decryptor = new MediaDecryptor(opts.encrypt);
    this.log = opts.log;
  }

  /** The SSRC of the publisher being followed. */
  get publisherSsrc(): number | undefined {
    return this.ssrc;
  }

  get codec(): CodecName | undefined {
    return this.codecName;
  }

  /** A copy of the counts so far. */
  get counters(): PipelineCounters {
    const j = this.jitter.counters;
    return {
      ...this.own,
      undecryptable: this.decryptor.undecryptable,
      lostOnWire: j.missed,
      recoveredByRtx: j.recoveredAfterNack,
      recoveredByFec: j.recoveredByFec,
      reordered: j.reordered,
      unrepaired: j.givenUp,
      tooLate: j.late,
      framesGivenUp: j.giveUps,
    };
  }

  /** Why watching cannot go on (a stream encrypted or not against --encrypt, a wrong passphrase). */
  get fatal(): string | undefined {
    return this.decryptor.fatal;
  }

  /**
   * RFC 3550 receive counts over the whole session: A.1 starts them again for each sharer session
   * and restart, and a person's counters must not jump back.
   */
  get receiveTotals(): { packetsReceived: number; rfc3550Lost: number; duplicates: number } {
    const s = this.stats.snapshot();
    return {
      packetsReceived: this.priorSessions.received + s.sessionReceived,
      rfc3550Lost: this.priorSessions.lost + s.sessionLost,
      duplicates: this.priorSessions.duplicates + s.duplicates,
    };
  }

  /** The jitter buffer's cumulative arrivals and losses, for the latency budget's loss samples. */
  get lossCounts(): LossCounts {
    const c = this.jitter.counters;
    return { arrived: c.arrived, missed: c.missed, repairWaits: c.repairWaits, repairWaitMs: this.jitter.repairWaitMs };
  }

  /** Packets that should have arrived in sequence so far: those that did, and those lost on the wire. */
  get packetsExpected(): number {
    return this.jitter.counters.firstTime + this.jitter.counters.missed;
  }

  /** Sequence numbers missing now and still waiting for a repair (not yet repaired or given up). */
  get repairPending(): number {
    return this.jitter.pending;
  }

  setTiming(t: RepairTiming): void {
    this.jitter.latencyMs = t.latencyMs;
    this.jitter.retryMs = t.retryMs;
    this.jitter.answerMs = t.answerMs;
  }

  /** The stream's key salt, from the relay's ACK (with --encrypt, media keys follow from it). */
  setSalt(salt: Buffer): void {
    this.decryptor.setSalt(salt);
  }

  /** An RTCP SR: the sender's clock mapping, for frame latency and our receiver reports. */
  onSenderReport(sr: SenderClock, now: number): void {
    this.srs.delete(sr.ssrc);
    this.srs.set(sr.ssrc, { sr, at: now });
    if (this.srs.size > SR_SSRCS_MAX) this.srs.delete(this.srs.keys().next().value!);
    if (sr.ssrc === this.ssrc) this.stats.onSenderReport(sr, now);
  }

  /** Our receiver report on the publisher, if there is one. */
  reportBlocks(now: number): ReportBlock[] {
    return this.ssrc !== undefined ? [this.stats.reportBlock(this.ssrc, now)] : [];
  }

  /** One datagram that is not RTCP. Never throws on malformed input: it is counted and dropped. */
  push(buf: Buffer, now: number): PipelineOutput {
    const out = emptyOutput();
    try {
      if (!isRtp(buf)) {
        this.own.malformed++;
        return out;
      }
      const plain = this.decryptor.open(buf, this.own.framesComplete);
      if (plain) this.onRtp(plain, parseRtp(plain), now, out);
    } catch (err) {
      if (!(err instanceof PacketError)) throw err;
      this.own.malformed++;
    }
    return out;
  }

  /** Timer entry: gives up expired gaps (releasing what waited behind them) and repeats NACKs. */
  poll(now: number): PipelineOutput {
    const out = emptyOutput();
    if (this.ssrc !== undefined) this.drain(this.jitter.poll(now), now, out);
    const sound = this.audio.source;
    if (sound !== undefined) out.audio.push(...this.audio.poll(this.senderClock(sound), this.senderClock(this.ssrc), now));
    return out;
  }

  /** The latest SR's clock mapping of a source, for placing the sound on the picture's clock. */
  private senderClock(ssrc: number | undefined): SenderClock | undefined {
    return ssrc === undefined ? undefined : this.srs.get(ssrc)?.sr;
  }

  private onRtp(buf: Buffer, pkt: RtpPacket, now: number, out: PipelineOutput): void {
    if (pkt.payloadType === PT_FEC) {
      // Parity: never counted as media; whatever it rebuilds joins the stream as if it had arrived.
      if (this.ssrc === undefined || pkt.ssrc !== this.fecSsrc) return;
      for (const r of this.fec.pushFec(buf)) this.recovered(r, now, out);
      return;
    }
    if (isAudioPayloadType(pkt.payloadType)) {
      // Sound: its own order and clock; it never makes the pipeline follow another publisher.
      out.audio.push(...this.audio.push(pkt, this.senderClock(pkt.ssrc), this.senderClock(this.ssrc), now));
      return;
    }
    const name = codecOfPayloadType(pkt.payloadType)?.name;
    if (!name) {
      this.own.malformed++;
      return;
    }
    if (pkt.ssrc !== this.ssrc || name !== this.codecName) {
      // Stragglers of the SSRC just left are not followed back, unless it was a layer of this
      // sharer and the packet starts a keyframe: the relay moved us back to it.
      if (this.previous && pkt.ssrc === this.previous.ssrc && now < this.previous.until && !(this.previous.layer && startsKeyframe(buf))) {
        this.own.foreign++;
        return;
      }
      this.follow(pkt.ssrc, name, now, out);
    }
    out.live = true;
    const verdict = this.stats.onRtp(pkt.sequenceNumber, pkt.timestamp, now);
    if (verdict === 'duplicate') return;
    const rebuilt = this.fec.seen(pkt.sequenceNumber); // FEC got there first; the original is redundant
    const more = this.fec.pushMedia(buf);
    if (!rebuilt) this.drain(this.jitter.push(pkt, now), now, out);
    for (const r of more) this.recovered(r, now, out);
  }

  /** A packet FEC rebuilt: counted as received (it is no longer lost) and fed in order. */
  private recovered(buf: Buffer, now: number, out: PipelineOutput): void {
    const pkt = parseRtp(buf);
    if (pkt.ssrc !== this.ssrc) return;
    const verdict = this.stats.onRtp(pkt.sequenceNumber, pkt.timestamp, now);
    if (verdict === 'duplicate') return;
    this.drain(this.jitter.push(pkt, now, true), now, out);
  }

  /** Depacketizes what the jitter buffer released, in order, and lists what to ask for again. */
  private drain(j: JitterOutput, now: number, out: PipelineOutput): void {
    for (const pkt of j.released) this.depacketize(pkt, now, out);
    for (const s of j.nack) out.nack.push(s);
  }

  private depacketize(pkt: RtpPacket, now: number, out: PipelineOutput): void {
    const name = this.codecName!;
    if (this.lastSeq !== undefined && pkt.sequenceNumber !== seqAdd(this.lastSeq, 1)) {
      // A gap given up: whatever the next frames reference may be gone.
      this.loss(out);
    }
    this.lastSeq = pkt.sequenceNumber;
    const frames = this.depacketizer!.pushAll(pkt);
    const dropped = this.depacketizer!.counters.framesDropped;
    if (dropped !== this.droppedSeen) {
      this.own.framesDropped += dropped - this.droppedSeen;
      this.droppedSeen = dropped;
      this.loss(out);
    }
    for (const frame of frames) {
      if (this.waitingForKeyframe && !frame.keyframe) {
        // Asked again (the viewer spaces its requests): after a move to another layer whose
        // first keyframe came without its parameter sets, the next one may be a GOP away.
        this.own.framesSkipped++;
        out.keyframeNeeded = true;
        continue;
      }
      this.waitingForKeyframe = false;
      this.own.framesComplete++;
      const captured = this.stats.captureTimeMs(frame.timestamp);
      out.frames.push({ ...frame, codec: name, latencyMs: captured === undefined ? undefined : now - captured });
    }
  }

  private loss(out: PipelineOutput): void {
    if (codec(this.codecName!).everyFrameKey) return; // nothing refers to a lost picture
    this.waitingForKeyframe = true;
    out.keyframeNeeded = true;
  }

  /** Starts every stage over for a publisher: the first, or a new sharer session (SSRC or codec). */
  private follow(ssrc: number, name: CodecName, now: number, out: PipelineOutput): void {
    // Another layer of the same sharer: both SSRCs' latest SRs came in one compound.
    const was = this.ssrc !== undefined ? this.srs.get(this.ssrc) : undefined;
    const layer = was !== undefined && name === this.codecName && this.srs.get(ssrc)?.at === was.at;
    const restart = this.ssrc !== undefined && !layer;
    if (this.ssrc !== undefined && ssrc !== this.ssrc) this.previous = { ssrc: this.ssrc, until: now + STALE_PUBLISHER_MS, layer };
    this.ssrc = ssrc;
    this.codecName = name;
    // The old session's counts stay in the totals: a sharer restart is not a counter reset.
    const before = this.receiveTotals;
    this.priorSessions = { received: before.packetsReceived, lost: before.rfc3550Lost, duplicates: before.duplicates };
    this.stats = new ReceiverStats({ clockRate: codec(name).clockRate });
    const sr = this.srs.get(ssrc);
    if (sr) this.stats.onSenderReport(sr.sr, sr.at);
    this.depacketizer = codec(name).depacketizer();
    this.depacketizer.onDrop = (reason) => this.log?.(`frame dropped: ${reason}`);
    this.jitter.reset(); // the old session's open gaps are now given up
    this.fec.reset();
    this.fecSsrc = fecSsrcFor(ssrc);
    this.droppedSeen = 0;
    this.lastSeq = undefined;
    this.waitingForKeyframe = true;
    out.publisher = { ssrc, codec: name, restart, layer };
  }
}

function emptyOutput(): PipelineOutput {
  return { frames: [], nack: [], keyframeNeeded: false, live: false, audio: [] };
}
