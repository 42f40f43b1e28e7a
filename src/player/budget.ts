/**
 * The viewer's latency budget: how long a gap may hold frames back while NACKs repair it, and how
 * often to ask again, sized from the measured round trip and loss. A pure object: ViewerCore feeds
 * it RTT samples (SUBSCRIBE → ACK) and the jitter buffer's loss counters once per keepalive, and
 * hands the resulting RepairTiming to the pipeline's jitter buffer. Kept apart so the model can be
 * read and tuned without the protocol around it.
 */
import { LATENCY_BUDGET_INITIAL_MS, LATENCY_BUDGET_MAX_MS, LATENCY_BUDGET_MIN_MS, LATENCY_BUDGET_REPAIR_MAX_MS } from '../defaults.ts';

/** The aim: leave at most this fraction of packets unrepaired. */
const RESIDUAL_LOSS = 1e-4;
/** NACK rounds the budget covers, whatever the loss (2: one repeat; 8: bounds the wait). */
const MIN_TRIES = 2;
const MAX_TRIES = 8;
/** Loss assumed at least (a clean link still loses now and then) and at most (beyond, NACK cannot keep up). */
const MIN_LOSS = 0.01;
const MAX_LOSS = 0.5;
/** Added to the budget for scheduling and send delays. */
const SLACK_MS = 20;
/** Packets a loss sample needs to say anything. */
const MIN_SAMPLE_PACKETS = 20;
/** NACK repeat interval before the first RTT measurement. */
const RETRY_UNMEASURED_MS = 30;
const RETRY_MIN_MS = 10;
/**
 * Below this round trip (ms) the millisecond clock and event-loop delays (a few ms on a busy
 * machine, measured through `udpcast impair` on loopback) are as large as the round trip itself,
 * so arrival time cannot tell a re-sent packet from a late original: every fill after a NACK
 * then counts as a repair.
 */
const RTX_MIN_RTT_MS = 10;

/** What a budget samples of the jitter buffer: its cumulative counts, and how long its repairs take now. */
export interface LossCounts {
  arrived: number;
  missed: number;
  /** Repairs timed so far, and the median of the latest (JitterBuffer.repairWaitMs). */
  repairWaits: number;
  repairWaitMs?: number;
}

/** What the budget sets on the jitter buffer (JitterBuffer has these three fields). */
export interface RepairTiming {
  /** How long a gap may hold the stream before it is given up. */
  latencyMs: number;
  /** Interval between NACKs for the same packet. */
  retryMs: number;
  /** The soonest a re-sent packet can come back after its NACK; 0: unknown. */
  answerMs: number;
}

/**
 * NACK repeat interval: a little over one RTT, so a retransmission that is on its way is not asked
 * for twice.
 */
function retryFor(rttMs: number | undefined): number {
  return rttMs === undefined ? RETRY_UNMEASURED_MS : Math.max(RETRY_MIN_MS, rttMs * 1.2 + 5);
}

export class LatencyBudget implements RepairTiming {
  latencyMs: number;
  retryMs = retryFor(undefined);
  answerMs = 0;
  /** The latest viewer ↔ relay round trip. */
  rttMs?: number;
  /** The shortest round trip seen: the soonest a re-sent packet can come back after its NACK. */
  private minRttMs = Infinity;
  /** Loss before repair, smoothed over keepalive intervals (one second each). */
  private loss = 0;
  /**
   * How long a repair takes (ms from a gap's discovery), smoothed like the loss; undefined until
   * repairs are seen. Over the round trip when the loss was on the sharer's way to the relay: the
   * relay asks the sharer again, and the copy comes a sharer's round trip later.
   */
  repairMs?: number;
  /** The jitter buffer's cumulative counts at the last sample. */
  private sampledAt: LossCounts = { arrived: 0, missed: 0, repairWaits: 0 };

  /** `fixedMs`: a --latency that stays whatever is measured. */
  constructor(private readonly fixedMs?: number) {
    this.latencyMs = fixedMs ?? LATENCY_BUDGET_INITIAL_MS;
  }

  /** The smoothed loss estimate (0-1) the budget is sized for. */
  get lossEstimate(): number {
    return this.loss;
  }

  onRtt(rttMs: number): void {
    this.rttMs = rttMs;
    this.retryMs = retryFor(rttMs);
    // Half the shortest round trip: a re-sent packet cannot be back sooner, a late original usually is.
    this.minRttMs = Math.min(this.minRttMs, rttMs);
    this.answerMs = this.minRttMs >= RTX_MIN_RTT_MS ? this.minRttMs / 2 : 0;
    this.update();
  }

  /**
   * One loss sample from the jitter buffer's cumulative counters (arrived, missed): the interval
   * since the last call. Call once per keepalive.
   */
  sampleLoss(counts: LossCounts): void {
    const arrived = counts.arrived - this.sampledAt.arrived;
    const missed = counts.missed - this.sampledAt.missed;
    const repaired = counts.repairWaits > this.sampledAt.repairWaits;
    this.sampledAt = { ...counts };
    // Rise fast (a bad link must be met at once), fall slowly (loss comes in spells).
    const smooth = (old: number, sample: number) => (sample > old ? sample : 0.8 * old + 0.2 * sample);
    // Without new repairs it falls back toward the round trip: an old spell says less and less.
    if (repaired && counts.repairWaitMs !== undefined) this.repairMs = smooth(this.repairMs ?? 0, counts.repairWaitMs);
    else if (this.repairMs !== undefined && this.rttMs !== undefined) this.repairMs = smooth(this.repairMs, this.rttMs);
    if (arrived + missed >= MIN_SAMPLE_PACKETS) this.loss = smooth(this.loss, missed / (arrived + missed));
    this.update();
  }

  /** A new sharer session: the next sample starts from here (the counters themselves go on). */
  restartSample(counts: LossCounts): void {
    this.sampledAt = { ...counts };
  }

  /**
   * The budget covers as many NACK rounds as the measured loss needs: enough tries that a packet
   * stays lost with probability under RESIDUAL_LOSS (loss^tries), at least 2 and at most 8.
   * budget = RTT (the first answer) + (tries − 1) retries + 20 ms of slack, within the bounds in
   * defaults.ts. At 20 ms RTT: 0-1% loss → 69 ms, 5% → 127 ms, 20% → 185 ms. When repairs take
   * longer than the round trip (the loss is the sharer's, repaired from there), rounds of that
   * length, up to LATENCY_BUDGET_REPAIR_MAX_MS: 1 ms RTT, 5% loss and repairs in 20 ms → 127 ms
   * (51 ms from the round trip alone); in 30 ms → 150.
   */
  private update(): void {
    if (this.fixedMs !== undefined || this.rttMs === undefined) return;
    const loss = Math.max(MIN_LOSS, Math.min(MAX_LOSS, this.loss));
    const tries = Math.min(MAX_TRIES, Math.max(MIN_TRIES, Math.ceil(Math.log(RESIDUAL_LOSS) / Math.log(loss))));
    let budget = this.rttMs + (tries - 1) * this.retryMs + SLACK_MS;
    if (this.repairMs !== undefined && this.repairMs > this.rttMs) {
      const forRepairs = this.repairMs + (tries - 1) * retryFor(this.repairMs) + SLACK_MS;
      budget = Math.max(budget, Math.min(LATENCY_BUDGET_REPAIR_MAX_MS, forRepairs));
    }
    this.latencyMs = Math.round(Math.min(LATENCY_BUDGET_MAX_MS, Math.max(LATENCY_BUDGET_MIN_MS, budget)));
  }
}
