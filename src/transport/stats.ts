/**
 * Receiver statistics for one RTP source, as RFC 3550 Appendix A computes them:
 *
 *   A.1  validating the source and extending 16-bit sequence numbers (probation, restarts);
 *   A.3  expected and lost packets, cumulative and per reporting interval;
 *   A.8  interarrival jitter.
 *
 * A pure object: the caller passes packet fields and the time (unix ms); nothing here reads a
 * clock, owns a timer or touches a socket.
 *
 * One change from A.1: a packet whose sequence number was already seen (within the last
 * DUPLICATE_WINDOW) is a duplicate and is not counted as received, so received counts unique
 * packets and lost = expected - received is not pulled below the truth by duplicates.
 */
import { MAX_DROPOUT, MAX_MISORDER, MIN_SEQUENTIAL, VIDEO_CLOCK_RATE } from '../defaults.ts';
import { ntpMiddle32, ntpToMs, SHORT_UNITS_PER_S } from './ntp.ts';
import type { ReportBlock } from './rtcp.ts';
import { SEQ_MOD, seqDiff, tsDiff } from '../rtp/seq.ts';

export type PacketVerdict = 'accepted' | 'duplicate' | 'probation' | 'restarted' | 'invalid';

/**
 * How many recent extended sequence numbers are remembered to spot duplicates. Must exceed
 * MAX_MISORDER (older packets are never counted anyway); 1024 bits is 128 bytes per source.
 */
export const DUPLICATE_WINDOW = 1024;
/** RFC 3550 §6.4.1: cumulative lost is a signed 24-bit field; A.3 clamps to it. */
const MAX_LOST = 0x7fffff;
const MIN_LOST = -0x800000;
/** RFC 3550 A.3: the fraction lost field is lost/expected in 8-bit fixed point. */
const FRACTION_ONE = 256;
/** RFC 3550 A.8: the jitter estimate moves 1/16 of the way to each new |D|. */
const JITTER_GAIN = 16;

export interface ReceiverSnapshot {
  /** Unique packets counted since the source was validated (or restarted). */
  packetsReceived: number;
  packetsExpected: number;
  /** expected - received; can be negative after a late packet older than the first one. */
  packetsLost: number;
  /** Lost / expected over the last reportBlock() interval, 0..1. */
  fractionLost: number;
  jitterMs: number;
  /** Interarrival jitter in RTP timestamp units. */
  jitter: number;
  duplicates: number;
  reordered: number;
  extendedHighestSeq: number;
  /**
   * received and lost added up over every restart of this source (A.1 starts counting again at a
   * restart; a session total must not jump back). Equal to packetsReceived and packetsLost until
   * the first restart; lost is never negative here.
   */
  sessionReceived: number;
  sessionLost: number;
}

export class ReceiverStats {
  private readonly clockRate: number;

  // RFC 3550 A.1 source state, names as in the appendix.
  private started = false;
  private probation = 0;
  private maxSeq = 0;
  /** Sequence number wraps × 65536 (A.1 keeps it shifted). */
  private cycles = 0;
  private baseSeq = 0;
  private badSeq = SEQ_MOD + 1;
  private received = 0;
  private receivedPrior = 0;
  private expectedPrior = 0;

  /** Bit per extended sequence number, indexed modulo DUPLICATE_WINDOW. */
  private readonly seen = new Uint8Array(DUPLICATE_WINDOW / 8);

  // RFC 3550 A.8 jitter state.
  private jitterUnits = 0;
  private haveTransit = false;
  private lastArrivalUnits = 0;
  private lastTimestamp = 0;

  private duplicates = 0;
  private reordered = 0;
  private lastFraction = 0;
  /** What the counting windows before the last restart received and lost. */
  private priorReceived = 0;
  private priorLost = 0;

  // Last sender report: for LSR/DLSR and the NTP ↔ RTP mapping.
  private sr: { lsr: number; arrivalMs: number; ntpMs: number; rtpTimestamp: number } | undefined;

  constructor(opts: { clockRate?: number } = {}) {
    this.clockRate = opts.clockRate ?? VIDEO_CLOCK_RATE;
  }

  /**
   * Updates the state for one RTP packet (A.1 update_seq, then A.8 for packets it counts).
   *
   * - 'probation': the source is not yet valid (fewer than MIN_SEQUENTIAL packets in sequence).
   * - 'invalid': a jump of MAX_DROPOUT or more ahead, or more than MAX_MISORDER behind; ignored,
   *   but if the next packet follows it in sequence the sender is taken to have restarted.
   * - 'restarted': that next packet; all counts start again from it.
   * - 'duplicate': already counted; ignored.
   * - 'accepted': counted, in order or reordered.
   *
   * Jitter (A.8) is updated for every packet counted as received, in order of arrival, as
   * §6.4.1 says ("not necessarily in sequence"), including several packets of one frame that share
   * a timestamp. Duplicates are not counted and so do not update it.
   */
  onRtp(seq: number, rtpTimestamp: number, arrivalMs: number): PacketVerdict {
    if (!this.started) {
      // A.1: the first packet starts probation, as if the one before it had been seen.
      this.initSeq(seq);
      this.maxSeq = (seq + SEQ_MOD - 1) % SEQ_MOD;
      this.probation = MIN_SEQUENTIAL;
      this.started = true;
    }
    const udelta = (seq - this.maxSeq + SEQ_MOD) % SEQ_MOD;
    let verdict: PacketVerdict = 'accepted';

    if (this.probation > 0) {
      if (seq === (this.maxSeq + 1) % SEQ_MOD) {
        this.probation--;
        this.maxSeq = seq;
        if (this.probation > 0) return 'probation';
        this.initSeq(seq);
      } else {
        this.probation = MIN_SEQUENTIAL - 1;
        this.maxSeq = seq;
        return 'probation';
      }
    } else if (udelta < MAX_DROPOUT) {
      // In order, possibly with a gap; udelta 0 is a repeat of the highest.
      if (udelta > 0) this.advance(seq);
      else if (this.isSeen(this.extended(seq))) return this.duplicate();
    } else if (udelta <= SEQ_MOD - MAX_MISORDER) {
      // A very large jump: a restart if the next packet follows it, else ignore.
      if (seq !== this.badSeq) {
        this.badSeq = (seq + 1) % SEQ_MOD;
        return 'invalid';
      }
      this.priorReceived += this.received;
      this.priorLost += Math.max(0, this.expected() - this.received);
      this.initSeq(seq);
      this.haveTransit = false; // a restarted sender has a new timestamp base
      verdict = 'restarted';
    } else {
      // Up to MAX_MISORDER behind the highest: a late packet or a duplicate.
      if (this.isSeen(this.extended(seq))) return this.duplicate();
      this.reordered++;
    }

    this.markSeen(this.extended(seq));
    this.received++;
    this.updateJitter(rtpTimestamp, arrivalMs);
    return verdict;
  }

  /** Remembers the last SR from this source, for LSR/DLSR (§6.4.1) and captureTimeMs. */
  onSenderReport(sr: { ntpSec: number; ntpFrac: number; rtpTimestamp: number }, arrivalMs: number): void {
    this.sr = {
      lsr: ntpMiddle32(sr.ntpSec, sr.ntpFrac),
      arrivalMs,
      ntpMs: ntpToMs(sr.ntpSec, sr.ntpFrac),
      rtpTimestamp: sr.rtpTimestamp,
    };
  }

  /**
   * A report block about this source (RFC 3550 A.3). Each call closes a reporting interval:
   * the fraction lost covers the packets since the previous call.
   */
  reportBlock(ssrc: number, nowMs: number): ReportBlock {
    const expected = this.expected();
    const lost = expected - this.received;
    const expectedInterval = expected - this.expectedPrior;
    const receivedInterval = this.received - this.receivedPrior;
    this.expectedPrior = expected;
    this.receivedPrior = this.received;
    const lostInterval = expectedInterval - receivedInterval;
    this.lastFraction = expectedInterval === 0 || lostInterval <= 0 ? 0 : lostInterval / expectedInterval;
    return {
      ssrc,
      // (lost_interval << 8) / expected_interval, integer division as in A.3.
      fractionLost: Math.min(FRACTION_ONE - 1, Math.floor(this.lastFraction * FRACTION_ONE)),
      cumulativeLost: Math.max(MIN_LOST, Math.min(MAX_LOST, lost)),
      highestSeq: (this.isValid() ? this.extendedMax() : 0) % 0x100000000,
      jitter: Math.min(0xffffffff, Math.floor(this.jitterUnits)),
      lsr: this.sr ? this.sr.lsr : 0,
      dlsr: this.sr ? this.dlsr(nowMs - this.sr.arrivalMs) : 0,
    };
  }

  /**
   * Sender wall-clock time (unix ms) at which a frame with this RTP timestamp was captured,
   * mapped through the last SR's NTP ↔ RTP pair (RFC 3550 §6.4.1). Undefined before any SR.
   */
  captureTimeMs(rtpTimestamp: number): number | undefined {
    if (!this.sr) return undefined;
    return this.sr.ntpMs + (tsDiff(this.sr.rtpTimestamp, rtpTimestamp) * 1000) / this.clockRate;
  }

  snapshot(): ReceiverSnapshot {
    const expected = this.expected();
    return {
      packetsReceived: this.received,
      packetsExpected: expected,
      packetsLost: expected - this.received,
      fractionLost: this.lastFraction,
      jitterMs: (this.jitterUnits * 1000) / this.clockRate,
      jitter: this.jitterUnits,
      duplicates: this.duplicates,
      reordered: this.reordered,
      extendedHighestSeq: this.isValid() ? this.extendedMax() : 0,
      sessionReceived: this.priorReceived + this.received,
      sessionLost: this.priorLost + Math.max(0, expected - this.received),
    };
  }

  /** Back to the state of a new object: a new source, no SR. */
  reset(): void {
    this.started = false;
    this.probation = 0;
    this.maxSeq = 0;
    this.initSeq(0);
    this.jitterUnits = 0;
    this.haveTransit = false;
    this.duplicates = 0;
    this.reordered = 0;
    this.lastFraction = 0;
    this.priorReceived = 0;
    this.priorLost = 0;
    this.sr = undefined;
  }

  // ---- internals -----------------------------------------------------------------------------

  /** A.1 init_seq, plus our duplicate window. */
  private initSeq(seq: number): void {
    this.baseSeq = seq;
    this.maxSeq = seq;
    this.badSeq = SEQ_MOD + 1; // so seq === badSeq is false
    this.cycles = 0;
    this.received = 0;
    this.receivedPrior = 0;
    this.expectedPrior = 0;
    this.seen.fill(0);
  }

  private isValid(): boolean {
    return this.started && this.probation === 0;
  }

  private extendedMax(): number {
    return this.cycles + this.maxSeq;
  }

  /** A.3: extended_max - base_seq + 1; 0 while the source is on probation. */
  private expected(): number {
    return this.isValid() ? this.extendedMax() - this.baseSeq + 1 : 0;
  }

  /** The extended sequence number of `seq`, taken as the nearest one to the highest seen. */
  private extended(seq: number): number {
    return this.extendedMax() + seqDiff(this.maxSeq, seq);
  }

  /** Moves the highest sequence number forward to `seq`, clearing window bits it passes. */
  private advance(seq: number): void {
    const from = this.extendedMax();
    if (seq < this.maxSeq) this.cycles += SEQ_MOD; // wrapped (A.1)
    this.maxSeq = seq;
    const to = this.extendedMax();
    if (to - from >= DUPLICATE_WINDOW) this.seen.fill(0);
    else for (let e = from + 1; e <= to; e++) this.setBit(e, false);
  }

  /** Delay since the last SR in 1/65536 s, held within the uint32 field. */
  private dlsr(elapsedMs: number): number {
    return Math.min(0xffffffff, Math.max(0, Math.round((elapsedMs * SHORT_UNITS_PER_S) / 1000)));
  }

  private duplicate(): PacketVerdict {
    this.duplicates++;
    return 'duplicate';
  }

  private isSeen(ext: number): boolean {
    const i = windowIndex(ext);
    return (this.seen[i >> 3] & (1 << (i & 7))) !== 0;
  }

  private markSeen(ext: number): void {
    this.setBit(ext, true);
  }

  private setBit(ext: number, on: boolean): void {
    const i = windowIndex(ext);
    if (on) this.seen[i >> 3] |= 1 << (i & 7);
    else this.seen[i >> 3] &= ~(1 << (i & 7));
  }

  /**
   * A.8: D(i-1, i) = (Rj - Ri) - (Sj - Si), arrival converted to timestamp units;
   * J += (|D| - J) / 16. Timestamps differ through seq.ts so a 2^32 wrap is one step, not a leap.
   */
  private updateJitter(rtpTimestamp: number, arrivalMs: number): void {
    const arrivalUnits = (arrivalMs * this.clockRate) / 1000;
    if (this.haveTransit) {
      const d = arrivalUnits - this.lastArrivalUnits - tsDiff(this.lastTimestamp, rtpTimestamp);
      this.jitterUnits += (Math.abs(d) - this.jitterUnits) / JITTER_GAIN;
    }
    this.haveTransit = true;
    this.lastArrivalUnits = arrivalUnits;
    this.lastTimestamp = rtpTimestamp;
  }
}

/** Bit index of an extended sequence number; negative for a late packet from before the base. */
function windowIndex(ext: number): number {
  return ((ext % DUPLICATE_WINDOW) + DUPLICATE_WINDOW) % DUPLICATE_WINDOW;
}
