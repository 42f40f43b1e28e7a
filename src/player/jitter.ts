/**
 * The viewer's reorder buffer and NACK scheduler, a pure object driven by (packet, now).
 *
 * Packets are released strictly in sequence order. A gap holds what follows it until the missing
 * packets arrive (late, retransmitted or rebuilt by FEC) or the latency budget runs out; then the
 * gap is given up and released past, and the depacketizer sees it as a loss (which drops the
 * frame: clean frames only). While a gap is open, its sequence numbers are asked for again with
 * RTCP generic NACK (RFC 4585 §6.2.1), repeated every `retryMs` until the budget runs out.
 *
 * Every sequence number found missing (`missed`, lost on the wire) ends in exactly one of:
 * recoveredAfterNack, recoveredByFec, reordered, givenUp, or is still `pending`; so
 * missed = recoveredAfterNack + recoveredByFec + reordered + givenUp + pending at any moment.
 */
import { JITTER_MAX_PACKETS, LATENCY_BUDGET_MAX_MS, MAX_DROPOUT } from '../defaults.ts';
import type { RtpPacket } from '../rtp/packet.ts';
import { seqAdd, seqDiff } from '../rtp/seq.ts';

/** A jump this far ahead is a new stream position (a sender restart), not a gap to repair. */
const MAX_GAP = 1000;
/** Given-up gaps remembered for a repair that comes too late (about a second of a 720p stream). */
const GIVEN_UP_KEPT = 256;
/** Repair waits kept for their median. */
const REPAIR_WAITS_KEPT = 31;
/** A repair that comes later than this after its gap was found is not timed (twice the longest budget). */
const REPAIR_WAIT_MAX_MS = 2 * LATENCY_BUDGET_MAX_MS;

export interface JitterCounters {
  /** Packets that arrived for a sequence number already released or given up. */
  late: number;
  duplicates: number;
  /**
   * Missing packets that arrived after we had asked for them, once a re-sent copy could have come
   * back (`answerMs`). A late original that arrives after that counts here too: the relay re-sends
   * the same packet, so nothing on the wire tells the two apart (the re-sent copy that follows a
   * late original is then a duplicate).
   */
  recoveredAfterNack: number;
  /** Missing packets rebuilt from FEC parity (pushed with `recovered`). */
  recoveredByFec: number;
  /** Missing packets that arrived late by themselves: sooner than any answer to our NACK could. */
  reordered: number;
  /** Sequence numbers given up: the budget ran out, the buffer overflowed, or the sender changed. */
  givenUp: number;
  /** Times one or more gaps were given up (about one frame each). */
  giveUps: number;
  nacked: number;
  /** Packets that arrived in sequence or filled a gap, and sequence numbers first found missing. */
  arrived: number;
  /** Lost on the wire: found missing when a later one arrived, or rebuilt by FEC before that. */
  missed: number;
  /** Packets that arrived the first time, in sequence or ahead of a gap: expected = this + missed. */
  firstTime: number;
  /**
   * Repairs timed (JitterBuffer.repairWaitMs): packets that came after a NACK, in time or after
   * their gap was given up (`late` too, within REPAIR_WAIT_MAX_MS).
   */
  repairWaits: number;
}

export interface JitterOutput {
  released: RtpPacket[];
  /** Sequence numbers to ask for now. */
  nack: number[];
}

interface Missing {
  since: number;
  /** When the first NACK for it went out. */
  firstNack: number;
  lastNack: number;
  tries: number;
}

export class JitterBuffer {
  /** How long a gap may hold the stream before it is given up. */
  latencyMs: number;
  /** Interval between NACKs for the same packet. */
  retryMs: number;
  /**
   * The soonest a re-sent packet can come back after its NACK (about half the round trip): a gap
   * filled sooner was filled by the original, arriving out of order. 0: unknown, every fill after
   * a NACK counts as a repair.
   */
  answerMs = 0;
  readonly counters: JitterCounters = {
    late: 0,
    duplicates: 0,
    recoveredAfterNack: 0,
    recoveredByFec: 0,
    reordered: 0,
    givenUp: 0,
    giveUps: 0,
    nacked: 0,
    arrived: 0,
    missed: 0,
    firstTime: 0,
    repairWaits: 0,
  };
  /** The latest repairs' waits (ms), oldest first, at most REPAIR_WAITS_KEPT. */
  private readonly waits: number[] = [];
  /** Gaps asked for and given up, by sequence number, since when: a repair that comes too late still says how long repairs take. */
  private readonly givenUpSince = new Map<number, number>();
  private next?: number;
  private readonly held = new Map<number, RtpPacket>();
  private readonly missing = new Map<number, Missing>();

  constructor(opts: { latencyMs: number; retryMs: number }) {
    this.latencyMs = opts.latencyMs;
    this.retryMs = opts.retryMs;
  }

  /** Packets waiting behind a gap. */
  get holding(): number {
    return this.held.size;
  }

  /** Sequence numbers missing now and still waiting for a repair. */
  get pending(): number {
    return this.missing.size;
  }

  /** Feeds one packet; `recovered` marks one rebuilt by FEC (not counted as a NACK recovery). */
  push(pkt: RtpPacket, now: number, recovered = false): JitterOutput {
    const seq = pkt.sequenceNumber;
    if (this.next === undefined) this.next = seq;
    const d = seqDiff(this.next, seq);
    if (d < 0) {
      this.counters.late++;
      const since = this.givenUpSince.get(seq);
      if (since !== undefined) {
        this.givenUpSince.delete(seq);
        // A number given up a wrap ago, or a joiner's hole filled after its catch-up, says nothing.
        if (now - since <= REPAIR_WAIT_MAX_MS) this.repairWait(now - since);
      }
      return this.poll(now);
    }
    if (this.held.has(seq)) {
      this.counters.duplicates++;
      return this.poll(now);
    }
    let flushed: RtpPacket[] = [];
    if (d > MAX_GAP) {
      // The sender jumped: release what is held in order, give up the gaps, start here. A jump
      // within MAX_DROPOUT is an outage (a relay restart), lost on the wire as RFC 3550 A.1 counts
      // it too; a longer one is a new stream position, as A.1 takes it.
      const skipped = d < MAX_DROPOUT ? d - this.held.size - this.missing.size : 0;
      this.counters.missed += skipped;
      flushed = this.flush(skipped);
      this.next = seq;
    }
    this.counters.arrived++;
    const m = this.missing.get(seq);
    if (m) {
      this.missing.delete(seq);
      if (recovered) this.counters.recoveredByFec++;
      else if (m.tries > 0 && now - m.firstNack >= this.answerMs) {
        this.counters.recoveredAfterNack++;
        this.repairWait(now - m.since);
      } else this.counters.reordered++;
    } else {
      for (let s = this.next; s !== seq; s = seqAdd(s, 1)) {
        if (!this.held.has(s) && !this.missing.has(s)) {
          this.missing.set(s, { since: now, firstNack: -Infinity, lastNack: -Infinity, tries: 0 });
          this.counters.missed++;
        }
      }
      if (recovered) {
        // Rebuilt before anything after it arrived: it too was lost on the wire, and repaired.
        this.counters.missed++;
        this.counters.recoveredByFec++;
      } else {
        this.counters.firstTime++;
      }
    }
    this.held.set(seq, pkt);
    const out = this.poll(now);
    if (flushed.length) out.released.unshift(...flushed);
    return out;
  }

  /** Releases what is in order, gives up expired gaps, and lists the NACKs due. Call on a timer too. */
  poll(now: number): JitterOutput {
    const out: JitterOutput = { released: [], nack: [] };
    if (this.next === undefined) return out;
    let gaveUp = false;
    for (;;) {
      const pkt = this.held.get(this.next);
      if (pkt) {
        this.held.delete(this.next);
        out.released.push(pkt);
        this.next = seqAdd(this.next, 1);
        continue;
      }
      const m = this.missing.get(this.next);
      const overfull = this.held.size > JITTER_MAX_PACKETS;
      if (m && (now - m.since >= this.latencyMs || overfull)) {
        this.missing.delete(this.next);
        if (m.tries > 0) this.rememberGivenUp(this.next, m.since);
        this.counters.givenUp++;
        gaveUp = true;
        this.next = seqAdd(this.next, 1);
        continue;
      }
      break;
    }
    if (gaveUp) this.counters.giveUps++;
    for (const [seq, m] of this.missing) {
      if (now - m.since < this.latencyMs && now - m.lastNack >= this.retryMs) {
        if (m.tries === 0) m.firstNack = now;
        m.lastNack = now;
        m.tries++;
        out.nack.push(seq);
      }
    }
    this.counters.nacked += out.nack.length;
    return out;
  }

  /**
   * How long a repair takes (ms from the gap's discovery): the median of the latest
   * REPAIR_WAITS_KEPT, undefined before any. Where the loss is between the sharer and the relay, a
   * repair takes the sharer's round trip, not ours; the median leaves out the repairs that needed
   * more than one ask, and strays.
   */
  get repairWaitMs(): number | undefined {
    if (this.waits.length === 0) return undefined;
    return [...this.waits].sort((a, b) => a - b)[Math.floor(this.waits.length / 2)];
  }

  private repairWait(ms: number): void {
    if (this.waits.length >= REPAIR_WAITS_KEPT) this.waits.shift();
    this.waits.push(ms);
    this.counters.repairWaits++;
  }

  /** At most GIVEN_UP_KEPT gaps are remembered, the oldest forgotten first. */
  private rememberGivenUp(seq: number, since: number): void {
    if (this.givenUpSince.size >= GIVEN_UP_KEPT) this.givenUpSince.delete(this.givenUpSince.keys().next().value!);
    this.givenUpSince.set(seq, since);
  }

  /** Forgets everything (a new sender); open gaps count as given up. The counters go on. */
  reset(): void {
    this.givenUpSince.clear();
    this.counters.givenUp += this.missing.size;
    if (this.missing.size) this.counters.giveUps++;
    this.next = undefined;
    this.held.clear();
    this.missing.clear();
  }

  /** Everything held, in sequence order; open gaps, and `skipped` more, are given up. */
  private flush(skipped: number): RtpPacket[] {
    const next = this.next!;
    const pkts = [...this.held.values()].sort((a, b) => seqDiff(next, a.sequenceNumber) - seqDiff(next, b.sequenceNumber));
    this.counters.givenUp += this.missing.size + skipped;
    if (this.missing.size + skipped) this.counters.giveUps++;
    this.givenUpSince.clear();
    this.held.clear();
    this.missing.clear();
    return pkts;
  }
}
