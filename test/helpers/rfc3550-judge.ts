/**
 * An independent RFC 3550 receiver, used as the judge of udpcast watch's reported loss and jitter.
 *
 * Written from the RFC's text (Appendix A.1 "RTP Data Header Validity Checks", A.3 "Determining
 * Number of Packets Expected and Lost", A.8 "Estimating the Interarrival Jitter") and on purpose
 * shares no code with src/transport/stats.ts or src/rtp/seq.ts: a judge that imported the
 * code it judges would agree with it whatever it did. Sequence and timestamp wraparound are
 * therefore done here, in the RFC's own unsigned arithmetic.
 *
 * It is a batch computation: the whole list of arrivals in, the totals out, plus the window it
 * counted over (base_seq .. highest extended seq) so a caller can check it against what a network
 * element did to exactly those packets.
 */

/** RFC 3550 A.1: "MAX_DROPOUT = 3000, MAX_MISORDER = 100, MIN_SEQUENTIAL = 2". */
export const RFC_MAX_DROPOUT = 3000;
export const RFC_MAX_MISORDER = 100;
export const RFC_MIN_SEQUENTIAL = 2;
/** RFC 3550 A.1: RTP_SEQ_MOD (1 << 16). */
const SEQ_MOD = 0x10000;
/** RTP timestamps are 32 bits (RFC 3550 §5.1). */
const TS_MOD = 0x100000000;
/** RFC 3550 A.8: J(i) = J(i-1) + (|D(i-1,i)| - J(i-1))/16. */
const JITTER_DIVISOR = 16;

export interface Arrival {
  /** RTP sequence number (16 bits). */
  seq: number;
  /** RTP timestamp (32 bits). */
  timestamp: number;
  /** Arrival time at the receiver, ms, on any clock that only moves forward. */
  arrivalMs: number;
}

export interface JudgeOptions {
  clockRate: number;
  /** Packets in sequence before the source is valid; RFC_MIN_SEQUENTIAL unless told. */
  minSequential?: number;
}

export interface JudgeResult {
  /** False if probation never ended: nothing was counted. */
  valid: boolean;
  /** Index into the arrivals of the packet that ended probation (the first one counted). */
  firstCounted: number;
  /** A.1 base_seq: the sequence number counting starts from (extended: 0 .. 65535). */
  baseSeq: number;
  /** A.1 cycles + max_seq. */
  extendedMax: number;
  /** A.3: extended_max - base_seq + 1. */
  expected: number;
  /** Unique packets counted (each sequence number once). */
  received: number;
  /** expected - received: packets of the window that never arrived. */
  lost: number;
  /** Copies of an already counted packet; not counted as received, no jitter update. */
  duplicates: number;
  /**
   * §6.4.1's literal definition, "the number of packets received includes any which are late or
   * duplicates": expected - (received + duplicates). Duplicates pull it below the true loss.
   */
  lostCountingDuplicates: number;
  /** Packets that arrived after a higher sequence number had already been counted. */
  late: number;
  /** A.8 interarrival jitter in timestamp units, and in ms. */
  jitter: number;
  jitterMs: number;
  /** Extended sequence numbers counted, for set arithmetic against a network element's log. */
  counted: Set<number>;
  /** The jitter estimate (ms) after each counted packet, with that packet's arrival time. */
  trace: Array<{ arrivalMs: number; jitterMs: number }>;
  /** Packets ignored as invalid by A.1 (jumps) or still on probation. */
  ignored: number;
  /** A.1 restarts (a large jump followed by its successor). */
  restarts: number;
}

/** Runs the arrivals, in the order given (arrival order), through A.1, A.3 and A.8. */
export function judgeRfc3550(arrivals: readonly Arrival[], opts: JudgeOptions): JudgeResult {
  const minSequential = opts.minSequential ?? RFC_MIN_SEQUENTIAL;
  const unitsPerMs = opts.clockRate / 1000;

  // A.1 source state, named as in the RFC's struct source.
  let maxSeq = 0;
  let cycles = 0;
  let baseSeq = 0;
  let badSeq = SEQ_MOD + 1; // "so seq == bad_seq is false"
  let probation = minSequential;
  let started = false;
  let valid = false;
  let firstCounted = -1;

  let counted = new Set<number>();
  let trace: Array<{ arrivalMs: number; jitterMs: number }> = [];
  let duplicates = 0;
  let late = 0;
  let ignored = 0;
  let restarts = 0;

  // A.8 state. The RFC's sample code starts with transit 0, which would make the first D the
  // whole transit time; the first counted packet only sets the reference instead.
  let jitter = 0;
  let lastTransit: number | undefined;
  // Timestamps unwrapped against the previous counted packet, so Sj - Si crosses 2^32 as one step.
  let lastTs = 0;
  let tsUnwrapped = 0;

  const initSeq = (seq: number) => {
    baseSeq = seq;
    maxSeq = seq;
    badSeq = SEQ_MOD + 1;
    cycles = 0;
    counted = new Set();
    duplicates = 0;
    late = 0;
  };

  arrivals.forEach((a, i) => {
    const seq = a.seq;
    if (!started) {
      // A.1: "init_seq(s, seq); s->max_seq = seq - 1; s->probation = MIN_SEQUENTIAL;"
      initSeq(seq);
      maxSeq = (seq + SEQ_MOD - 1) % SEQ_MOD;
      probation = minSequential;
      started = true;
    }
    // A.1: "uint16_t udelta = seq - s->max_seq;"
    const udelta = (seq - maxSeq + SEQ_MOD) % SEQ_MOD;
    // Whether this packet is the first sight of its extended sequence number, and that number.
    let ext: number;

    if (!valid) {
      // Probation: MIN_SEQUENTIAL packets in sequence make the source valid.
      if (seq === (maxSeq + 1) % SEQ_MOD) {
        probation--;
        maxSeq = seq;
        if (probation > 0) {
          ignored++;
          return;
        }
        initSeq(seq);
        valid = true;
        firstCounted = i;
        ext = seq;
      } else {
        probation = minSequential - 1;
        maxSeq = seq;
        ignored++;
        return;
      }
    } else if (udelta < RFC_MAX_DROPOUT) {
      // "in order, with permissible gap"
      if (seq < maxSeq) cycles += SEQ_MOD; // "Sequence number wrapped - count another 64K cycle."
      maxSeq = seq;
      ext = cycles + seq;
    } else if (udelta <= SEQ_MOD - RFC_MAX_MISORDER) {
      // "the sequence number made a very large jump"
      if (seq === badSeq) {
        // "Two sequential packets -- assume that the other side restarted without telling us."
        initSeq(seq);
        restarts++;
        lastTransit = undefined; // a restarted sender has a new timestamp origin
        ext = seq;
      } else {
        badSeq = (seq + 1) % SEQ_MOD;
        ignored++;
        return;
      }
    } else {
      // "duplicate or reordered packet": behind the highest by at most MAX_MISORDER.
      ext = cycles + maxSeq - udeltaBehind(udelta);
    }

    if (counted.has(ext)) {
      duplicates++;
      return;
    }
    if (ext < cycles + maxSeq) late++;
    counted.add(ext);

    // A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si) = transit_j - transit_i, transit = R - S in timestamp units.
    tsUnwrapped = lastTransit === undefined ? a.timestamp : tsUnwrapped + signed32(a.timestamp - lastTs);
    lastTs = a.timestamp;
    const transit = a.arrivalMs * unitsPerMs - tsUnwrapped;
    if (lastTransit !== undefined) {
      const d = Math.abs(transit - lastTransit);
      jitter += (d - jitter) / JITTER_DIVISOR;
    }
    lastTransit = transit;
    trace.push({ arrivalMs: a.arrivalMs, jitterMs: jitter / unitsPerMs });
  });

  const extendedMax = cycles + maxSeq;
  const expected = valid ? extendedMax - baseSeq + 1 : 0;
  const received = valid ? counted.size : 0;
  return {
    valid,
    firstCounted,
    baseSeq,
    extendedMax,
    expected,
    received,
    lost: expected - received,
    duplicates,
    lostCountingDuplicates: expected - received - duplicates,
    late,
    jitter,
    jitterMs: jitter / unitsPerMs,
    counted,
    trace,
    ignored,
    restarts,
  };
}

/** How far behind max_seq a packet with this udelta (≥ 2^16 - MAX_MISORDER, or 0) is. */
function udeltaBehind(udelta: number): number {
  return (SEQ_MOD - udelta) % SEQ_MOD;
}

/** A 32-bit timestamp difference taken as the nearest signed value (RFC 3550 §5.1: modulo 2^32). */
function signed32(diff: number): number {
  const d = ((diff % TS_MOD) + TS_MOD) % TS_MOD;
  return d >= TS_MOD / 2 ? d - TS_MOD : d;
}
