/**
 * `udpcast impair`: the impairment model as a pure object. A datagram's size and the clock go in, a
 * decision comes out (drop it and why, or send N copies at time T); no sockets and no timers here
 * (proxy.ts wires them), so every rule is tested with a fake clock and a fixed seed.
 *
 * The stages, in order, per direction (the order netem uses: loss before the queue, delay after):
 *
 *   datagram ─► loss ─► in-flight cap ─► bottleneck (rate, FIFO queue) ─► duplicate ─► delay+jitter
 *                │          │                 │                                           │
 *              drop       drop              drop                                reorder: extra gap
 *         ('loss'/'burst') ('overflow')     ('rate')
 *
 * - Loss, random: each datagram is lost with probability `loss` (Bernoulli).
 * - Loss, burst (`burst` = LEN ≥ 2): when a loss starts, LEN consecutive datagrams are lost, and the
 *   datagram after a burst is always delivered, so every loss run is exactly LEN long. A burst starts
 *   with probability q chosen so that the long-run loss rate is still `loss`: one cycle is LEN lost,
 *   1 forced delivery and on average (1 - q) / q more deliveries, so loss = LEN·q / (LEN·q + 1) and
 *   q = loss / (LEN·(1 - loss)). Hence loss ≤ LEN / (LEN + 1) in this mode (validated).
 *   (Chosen over Gilbert-Elliott because the run length is then a setting a person can read off a
 *   receiver's loss histogram, and tests can check it exactly.)
 * - Bottleneck: a token bucket of `rateBps` bits/s, `bucketBytes` deep (starts full), in front of a
 *   FIFO of at most `queuePackets` datagrams waiting for tokens; a datagram that finds the FIFO full is
 *   dropped ('rate'). This is a link of that speed with a router queue: a sender above the rate sees
 *   queueing delay first, then loss. With `queueMs` instead, the queue is a time: a datagram that
 *   would leave the bucket more than queueMs after it arrived is dropped, a router buffer of that many
 *   milliseconds at whatever the rate is at the time. Under a schedule the departure counts the rate
 *   change ahead, so within queueMs before a step up the queue keeps more than a buffer sized at the
 *   old rate would, and before a step down less (the rule is the wait itself, not a byte count).
 * - Rate schedule: `rateBps` may be a list, each rate held for `rateEveryMs` in turn and the list
 *   cycled, from the start time the core is given (a link whose rate steps 4 → 1 → 4 Mbit/s). The
 *   bucket earns tokens at each step's own rate, exactly: at the old rate up to a change and at the
 *   new one after it. A departure is computed once, at arrival, from the schedule, which is known in
 *   advance; so a datagram queued across a change already waits at the old rate up to the change and
 *   at the new one after it, and nothing queued is re-timed at the change.
 * - Duplicate: with probability `duplicate` the datagram is sent twice, back to back. The copy is
 *   made after the bottleneck and is not charged to it (duplicates come from link-layer retries).
 * - Delay and jitter: sendAt = departure from the bottleneck + delayMs + uniform [0, jitterMs). Then
 *   sendAt is clamped to be ≥ the previous datagram's sendAt, so jitter alone never reorders (what
 *   netem does when a rate is set; it makes jitter a delay variation, not a reordering knob). The
 *   clamp never pushes a datagram past delay + jitter after its departure, since departures are in
 *   order.
 * - Reorder: with probability `reorder` a datagram is held back by `reorderGapMs` more than it would
 *   have been sent, outside the clamp, so every datagram arriving within the gap overtakes it. With
 *   sparser traffic than one datagram per gap it still arrives, just late (counted as reordered all
 *   the same: the counter says what the proxy did, a receiver measures what it saw).
 *
 * Each random choice draws from its own PRNG stream derived from the seed, so adding --delay to a
 * run does not change which datagrams --loss drops: one seed, one loss pattern.
 */
import { UsageError } from '../util/errors.ts';

// ---- Limits and defaults -----------------------------------------------------------------------
/** Largest datagram the bucket must hold at once; also the smallest bucket (a bucket smaller than a
 *  datagram would make every datagram wait). IPv4 UDP's largest payload is 65507 bytes, but media
 *  datagrams stay under the 1500-byte Ethernet MTU (src/defaults.ts MAX_DATAGRAM). */
export const MIN_BUCKET_BYTES = 1500;
/** Default bucket depth as time at the configured rate: 10 ms is a few datagrams at video rates,
 *  enough to pass one datagram's worth of burstiness without hiding the bottleneck. */
export const BUCKET_MS = 10;
/** Datagrams waiting for the bottleneck. 100 datagrams of 1200 bytes is 96 ms of queue at 10 Mbit/s:
 *  a shallow home-router buffer (Linux's txqueuelen of 1000 would be a bufferbloated one). */
export const DEFAULT_QUEUE_PACKETS = 100;
/** Extra hold-back of a reordered datagram: at screen-sharing rates (hundreds of datagrams per
 *  second, sent in per-frame bursts) several datagrams overtake it. */
export const DEFAULT_REORDER_GAP_MS = 20;
/** Datagrams scheduled but not yet sent, per direction: the memory bound of the delay line (16384 ×
 *  1500 bytes = 24 MiB). A datagram past it is dropped ('overflow'), e.g. 2 s of delay at 10k/s. */
export const MAX_IN_FLIGHT = 16384;
/** Longest --delay, --jitter and --reorder-gap: a minute is beyond any network worth rehearsing. */
export const MAX_DELAY_MS = 60_000;
/** Longest --burst. */
export const MAX_BURST = 1000;
/** --rate range in bits/s: below 1 kbit/s one 1200-byte datagram takes ~10 s. */
export const MIN_RATE_BPS = 1000;
export const MAX_RATE_BPS = 100e9;
/** --queue range in datagrams. */
export const MAX_QUEUE_PACKETS = 100_000;
/** --queue range as time (100ms, 0.5s): the --delay range. A datagram waiting in a time queue is
 *  also in the delay line, so MAX_IN_FLIGHT bounds the memory of a long queue at a high rate. */
export const MAX_QUEUE_MS = MAX_DELAY_MS;
/** Slack for float rounding when a departure is compared with a time queue: a datagram that would
 *  leave exactly queueMs after arriving is kept. */
const QUEUE_MS_SLACK = 1e-9;
/** Most rates in one --rate schedule: a list a person types, not a trace to replay. */
export const MAX_RATE_STEPS = 100;
/** --rate-every range. Below 100 ms a step is shorter than a few round trips and frame intervals,
 *  which no congestion controller can follow (that is jitter, not a rate change); above an hour each
 *  step is a run of its own. */
export const MIN_RATE_EVERY_MS = 100;
export const MAX_RATE_EVERY_MS = 3_600_000;

// ---- Settings, decisions, counters -------------------------------------------------------------
export interface ImpairSettings {
  /** Probability 0..1 that a datagram is lost (long-run average, also in burst mode). */
  loss: number;
  /** 1: independent losses. LEN ≥ 2: losses come in runs of exactly LEN. */
  burst: number;
  delayMs: number;
  /** Uniform extra delay in [0, jitterMs); never reorders by itself. */
  jitterMs: number;
  /** Probability 0..1 that a datagram is held back past the ones after it. */
  reorder: number;
  /** Probability 0..1 that a datagram is sent twice. */
  duplicate: number;
  /** Bottleneck rate in bits/s; undefined: no bottleneck. A list of two or more is a schedule: each
   *  rate holds for rateEveryMs in turn, cycling from the core's start time. */
  rateBps?: number | readonly number[];
  /** How long each rate of a schedule holds; set exactly when rateBps lists two or more rates. */
  rateEveryMs?: number;
  /** FIFO length of the bottleneck in datagrams, default DEFAULT_QUEUE_PACKETS. */
  queuePackets?: number;
  /** The bottleneck's queue as time instead of datagrams (not both): a datagram that would wait longer
   *  than this for the bucket is dropped. */
  queueMs?: number;
  /** Token bucket depth, default max(MIN_BUCKET_BYTES, BUCKET_MS of the rate; of each step's rate in
   *  a schedule). */
  bucketBytes?: number;
  /** Hold-back of a reordered datagram, default DEFAULT_REORDER_GAP_MS. */
  reorderGapMs?: number;
  /** Cap of scheduled-but-unsent datagrams, default MAX_IN_FLIGHT. */
  maxInFlight?: number;
}

/** No impairment at all: the proxy forwards as is. */
export const NO_IMPAIRMENT: Readonly<ImpairSettings> = { loss: 0, burst: 1, delayMs: 0, jitterMs: 0, reorder: 0, duplicate: 0 };

export type DropReason = 'loss' | 'burst' | 'rate' | 'overflow';

export type Decision =
  | { kind: 'drop'; reason: DropReason }
  /** Send `copies` (1 or 2) copies at `sendAt` (same clock as nowMs). */
  | { kind: 'forward'; sendAt: number; copies: number; reordered: boolean };

export interface CoreCounters {
  received: number;
  bytesIn: number;
  /** Datagrams scheduled for sending (each original once; copies are in `duplicated`). */
  forwarded: number;
  /** Lost by random (independent) loss. */
  lost: number;
  /** Lost inside a burst. */
  lostBurst: number;
  duplicated: number;
  reordered: number;
  /** Found the bottleneck's queue full. */
  rateDropped: number;
  /** Found the delay line full (MAX_IN_FLIGHT). */
  overflow: number;
  /** Bytes scheduled for sending, copies included. */
  bytes: number;
}

export function zeroCounters(): CoreCounters {
  return { received: 0, bytesIn: 0, forwarded: 0, lost: 0, lostBurst: 0, duplicated: 0, reordered: 0, rateDropped: 0, overflow: 0, bytes: 0 };
}

// ---- Deterministic randomness ------------------------------------------------------------------
/** MurmurHash3's 32-bit finalizer (fmix32): spreads nearby seeds (1, 2, 3…) over the whole range. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A seed for an independent stream `label` of `seed` (e.g. one per impairment, one per direction). */
export function deriveSeed(seed: number, label: number): number {
  return fmix32((seed >>> 0) ^ fmix32(Math.imul(label + 1, 0x9e3779b9)));
}

/**
 * mulberry32 (Tommy Ettinger's 32-bit state generator): tiny, fast, passes the statistical tests
 * that matter for loss patterns, and every run with the same seed draws the same numbers.
 */
export class Prng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) | 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
}

// ---- A binary min-heap (the delay line is ordered by send time, not by arrival) ----------------
export class MinHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly less: (a: T, b: T) => boolean) {}
  get size(): number {
    return this.items.length;
  }
  peek(): T | undefined {
    return this.items[0];
  }
  push(x: T): void {
    const a = this.items;
    a.push(x);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.less(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.less(a[l], a[m])) m = l;
        if (r < a.length && this.less(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
  /** Removes everything; returns how many there were. */
  clear(): number {
    const n = this.items.length;
    this.items.length = 0;
    return n;
  }
}

// ---- Validation --------------------------------------------------------------------------------
const pct = (p: number) => `${+(p * 100).toFixed(4)}%`;

/**
 * Checks settings built in code (parsed ones are already in range). `prefix` is the option prefix
 * for messages ('up-' or 'down-' or ''), so an error names what the person typed.
 */
export function validateSettings(s: ImpairSettings, prefix = ''): void {
  const prob = (name: string, v: number) => {
    if (!(v >= 0 && v <= 1)) throw new UsageError(`--${prefix}${name} must be 0-100%, got ${pct(v)}`);
  };
  const ms = (name: string, v: number | undefined) => {
    if (v !== undefined && !(v >= 0 && v <= MAX_DELAY_MS)) throw new UsageError(`--${prefix}${name} must be 0-${MAX_DELAY_MS} ms, got ${v} ms`);
  };
  prob('loss', s.loss);
  prob('reorder', s.reorder);
  prob('duplicate', s.duplicate);
  ms('delay', s.delayMs);
  ms('jitter', s.jitterMs);
  ms('reorder-gap', s.reorderGapMs);
  if (!Number.isInteger(s.burst) || s.burst < 1 || s.burst > MAX_BURST) {
    throw new UsageError(`--${prefix}burst must be a whole number 1-${MAX_BURST}, got ${s.burst}`);
  }
  if (s.burst > 1 && s.loss > maxBurstLoss(s.burst)) {
    throw new UsageError(
      `--${prefix}loss with --${prefix}burst ${s.burst} must be at most ${pct(maxBurstLoss(s.burst))} (a delivered datagram separates bursts), got ${pct(s.loss)}`,
    );
  }
  const rates = ratesOf(s);
  if (s.rateBps !== undefined && (rates.length < 1 || rates.length > MAX_RATE_STEPS)) {
    throw new UsageError(`--${prefix}rate must list 1-${MAX_RATE_STEPS} rates, got ${rates.length}`);
  }
  for (const r of rates) {
    if (!(r >= MIN_RATE_BPS && r <= MAX_RATE_BPS)) throw new UsageError(`--${prefix}rate must be 1k-100G bits/s, got ${r}`);
  }
  if (rates.length > 1 && s.rateEveryMs === undefined) throw new UsageError(scheduleWithoutEvery(`${prefix}rate`, rates.map(formatRate).join(', '), prefix));
  if (s.rateEveryMs !== undefined) {
    if (rates.length < 2) throw new UsageError(`--${prefix}rate-every needs --${prefix}rate to list two or more rates (e.g. 4M,1M)`);
    if (!(s.rateEveryMs >= MIN_RATE_EVERY_MS && s.rateEveryMs <= MAX_RATE_EVERY_MS)) {
      throw new UsageError(`--${prefix}rate-every must be ${RATE_EVERY_RANGE}, got ${s.rateEveryMs} ms`);
    }
  }
  if (s.queuePackets !== undefined && (!Number.isInteger(s.queuePackets) || s.queuePackets < 0 || s.queuePackets > MAX_QUEUE_PACKETS)) {
    throw new UsageError(`--${prefix}queue must be a whole number 0-${MAX_QUEUE_PACKETS}, got ${s.queuePackets}`);
  }
  if (s.queueMs !== undefined && !(s.queueMs >= 0 && s.queueMs <= MAX_QUEUE_MS)) {
    throw new UsageError(`--${prefix}queue must be 0-${MAX_QUEUE_MS / 1000}s as a time, got ${s.queueMs} ms`);
  }
  if (s.queuePackets !== undefined && s.queueMs !== undefined) throw new RangeError('queuePackets and queueMs exclude each other');
  if (s.bucketBytes !== undefined && !(s.bucketBytes > 0)) throw new RangeError(`bucketBytes must be > 0, got ${s.bucketBytes}`);
  if (s.maxInFlight !== undefined && !(Number.isInteger(s.maxInFlight) && s.maxInFlight > 0)) {
    throw new RangeError(`maxInFlight must be a whole number > 0, got ${s.maxInFlight}`);
  }
}

/** The bottleneck's rates as a list: [] without one, [rate] for a fixed rate. */
function ratesOf(s: ImpairSettings): readonly number[] {
  return s.rateBps === undefined ? [] : typeof s.rateBps === 'number' ? [s.rateBps] : s.rateBps;
}

const RATE_EVERY_RANGE = `${MIN_RATE_EVERY_MS}ms-${MAX_RATE_EVERY_MS / 1000}s`;

/** The one line for a list of rates with nothing saying how long each holds. */
function scheduleWithoutEvery(rateOption: string, list: string, everyPrefix: string): string {
  return `--${rateOption} ${list} is a schedule: add --${everyPrefix}rate-every DURATION, how long each rate holds (e.g. 15s)`;
}

/** Highest long-run loss the burst model can give: LEN lost, then 1 delivered, forever. */
export function maxBurstLoss(burst: number): number {
  return burst / (burst + 1);
}

// ---- The core ----------------------------------------------------------------------------------
/** PRNG stream labels: one per random choice, so settings of one do not shift the others. */
const STREAM_LOSS = 1;
const STREAM_JITTER = 2;
const STREAM_REORDER = 3;
const STREAM_DUPLICATE = 4;

/** stepAt's answer for a fixed rate (one object, not one per datagram). */
const FIXED_STEP: Readonly<{ i: number; end: number }> = { i: 0, end: Infinity };

export class ImpairCore {
  readonly settings: Readonly<ImpairSettings>;
  readonly counters: CoreCounters = zeroCounters();

  private readonly lossRng: Prng;
  private readonly jitterRng: Prng;
  private readonly reorderRng: Prng;
  private readonly duplicateRng: Prng;
  /** Probability that a burst starts at an eligible datagram (see the header). */
  private readonly burstStart: number;
  private burstLeft = 0;
  /** The datagram right after a burst is always delivered, so runs are exactly LEN. */
  private afterBurst = false;

  // Bottleneck: the schedule (one rate: a fixed one), each step's bucket depth in bits, tokens (bits)
  // as of time tokensAt, and departure times of datagrams still waiting.
  /** Rates in bits/s, in schedule order; empty: no bottleneck. */
  private readonly rates: readonly number[];
  private readonly bucketBits: readonly number[];
  /** How long each step holds; Infinity for a fixed rate. */
  private readonly everyMs: number;
  private readonly queueCap: number;
  private readonly queueMs: number | undefined;
  private tokens: number;
  private tokensAt = -Infinity;
  private readonly waiting: number[] = [];
  private waitingHead = 0;

  // Delay line: send times of datagrams scheduled and not yet due, for the in-flight cap.
  private readonly inFlight = new MinHeap<number>((a, b) => a < b);
  private readonly maxInFlight: number;
  private lastSendAt = -Infinity;
  private readonly reorderGapMs: number;

  /**
   * `startMs` (same clock as decide's nowMs) is when a --rate schedule's first step begins; a fixed
   * rate does not depend on it. Times before it count as the first step.
   */
  constructor(
    settings: ImpairSettings,
    seed: number,
    readonly startMs = 0,
  ) {
    validateSettings(settings);
    this.settings = { ...settings };
    this.lossRng = new Prng(deriveSeed(seed, STREAM_LOSS));
    this.jitterRng = new Prng(deriveSeed(seed, STREAM_JITTER));
    this.reorderRng = new Prng(deriveSeed(seed, STREAM_REORDER));
    this.duplicateRng = new Prng(deriveSeed(seed, STREAM_DUPLICATE));
    const { loss, burst } = settings;
    this.burstStart = burst > 1 ? Math.min(1, loss / (burst * (1 - loss))) : 0;
    this.rates = [...ratesOf(settings)];
    this.everyMs = this.rates.length > 1 ? settings.rateEveryMs! : Infinity;
    // A schedule's bucket is BUCKET_MS deep at each step's own rate (a burst of 10 ms of the link as it
    // is now); tokens above a lower step's depth are lost at the change, as a shaper reconfigured then.
    this.bucketBits = this.rates.map((rate) => 8 * (settings.bucketBytes ?? Math.max(MIN_BUCKET_BYTES, (rate / 8) * (BUCKET_MS / 1000))));
    this.tokens = this.bucketBits[0] ?? 0;
    this.queueCap = settings.queuePackets ?? DEFAULT_QUEUE_PACKETS;
    this.queueMs = settings.queueMs;
    this.maxInFlight = settings.maxInFlight ?? MAX_IN_FLIGHT;
    this.reorderGapMs = settings.reorderGapMs ?? DEFAULT_REORDER_GAP_MS;
  }

  /** Datagrams waiting for the bottleneck as of the last decision. */
  get queued(): number {
    return this.waiting.length - this.waitingHead;
  }

  /**
   * The bottleneck's rate at nowMs and when the step giving it ends (Infinity for a fixed rate), for
   * the proxy to announce each change; undefined without a bottleneck.
   */
  rateAt(nowMs: number): { rateBps: number; untilMs: number } | undefined {
    if (this.rates.length === 0) return undefined;
    const { i, end } = this.stepAt(nowMs);
    return { rateBps: this.rates[i], untilMs: end };
  }

  /** Decides the fate of one datagram of `sizeBytes` arriving at `nowMs` (a monotonic clock). */
  decide(sizeBytes: number, nowMs: number): Decision {
    const c = this.counters;
    const s = this.settings;
    c.received++;
    c.bytesIn += sizeBytes;

    // 1. Loss.
    if (s.burst > 1) {
      if (this.burstLeft > 0) {
        this.burstLeft--;
        if (this.burstLeft === 0) this.afterBurst = true;
        c.lostBurst++;
        return { kind: 'drop', reason: 'burst' };
      }
      if (this.afterBurst) {
        this.afterBurst = false;
      } else if (this.burstStart > 0 && this.lossRng.next() < this.burstStart) {
        this.burstLeft = s.burst - 1;
        c.lostBurst++;
        return { kind: 'drop', reason: 'burst' };
      }
    } else if (s.loss > 0 && this.lossRng.next() < s.loss) {
      c.lost++;
      return { kind: 'drop', reason: 'loss' };
    }

    // 2. In-flight cap: the delay line holds at most maxInFlight datagrams.
    while (this.inFlight.size > 0 && this.inFlight.peek()! <= nowMs) this.inFlight.pop();
    if (this.inFlight.size >= this.maxInFlight) {
      c.overflow++;
      return { kind: 'drop', reason: 'overflow' };
    }

    // 3. Bottleneck: a datagram that has to wait for tokens needs a place in the queue (a free slot of
    // queuePackets, or a wait of at most queueMs).
    let depart = nowMs;
    if (this.rates.length > 0) {
      while (this.waitingHead < this.waiting.length && this.waiting[this.waitingHead] <= nowMs) this.waitingHead++;
      if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
        this.waiting.splice(0, this.waitingHead); // compact now and then; the queue itself is capped
        this.waitingHead = 0;
      }
      const b = this.bottleneck(sizeBytes * 8, nowMs);
      const full = this.queueMs !== undefined ? b.depart - nowMs > this.queueMs + QUEUE_MS_SLACK : b.depart > nowMs && this.queued >= this.queueCap;
      if (full) {
        c.rateDropped++; // the bucket is not charged: a dropped datagram never crossed the link
        return { kind: 'drop', reason: 'rate' };
      }
      this.tokens = b.tokens;
      this.tokensAt = b.tokensAt;
      depart = b.depart;
      if (depart > nowMs) this.waiting.push(depart);
    }

    // 4. Duplicate, 5. delay and jitter, 6. reorder.
    const copies = s.duplicate > 0 && this.duplicateRng.next() < s.duplicate ? 2 : 1;
    const jitter = s.jitterMs > 0 ? this.jitterRng.next() * s.jitterMs : 0;
    let sendAt = Math.max(depart + s.delayMs + jitter, this.lastSendAt);
    const reordered = s.reorder > 0 && this.reorderRng.next() < s.reorder;
    if (reordered) sendAt += this.reorderGapMs; // outside the clamp: later datagrams overtake it
    else this.lastSendAt = sendAt;

    if (sendAt > nowMs) this.inFlight.push(sendAt);
    c.forwarded++;
    c.duplicated += copies - 1;
    if (reordered) c.reordered++;
    c.bytes += sizeBytes * copies;
    return { kind: 'forward', sendAt, copies, reordered };
  }

  /**
   * When a datagram of `bits` arriving at nowMs would leave the token bucket (FIFO: not before the
   * one ahead of it), and the bucket's state after it. Pure: the caller commits only if it is kept.
   */
  private bottleneck(bits: number, nowMs: number): { depart: number; tokens: number; tokensAt: number } {
    const t0 = Math.max(nowMs, this.tokensAt);
    const tokens = this.refill(this.tokens, this.tokensAt, t0);
    if (tokens >= bits) return { depart: t0, tokens: tokens - bits, tokensAt: t0 };
    const depart = this.earned(t0, bits - tokens);
    return { depart, tokens: 0, tokensAt: depart };
  }

  /**
   * The tokens in the bucket at `to`, from `tokens` at `from`: each step earns at its own rate and is
   * capped at its own depth (from = -Infinity: a full bucket). Loops once per step boundary crossed,
   * i.e. (to - from) / rateEveryMs times: after an hour idle with 100 ms steps, 36 000 cheap rounds.
   */
  private refill(tokens: number, from: number, to: number): number {
    for (let t = from; t < to; ) {
      const { i, end } = this.stepAt(t);
      const until = Math.min(end, to);
      tokens = Math.min(this.bucketBits[i], tokens + ((until - t) * this.rates[i]) / 1000);
      t = until;
    }
    return tokens;
  }

  /**
   * When `bits` more tokens have been earned, counting from `from`. Not capped by the depth: a datagram
   * bigger than the bucket waits for all its bits, as with a fixed rate. Bounded: the largest datagram
   * (524 kbit) at the lowest rate (1 kbit/s) spans 524 s, 5240 steps of 100 ms.
   */
  private earned(from: number, bits: number): number {
    for (let t = from; ; ) {
      const { i, end } = this.stepAt(t);
      const rate = this.rates[i];
      const inStep = ((end - t) * rate) / 1000;
      if (inStep >= bits) return t + (bits * 1000) / rate;
      bits -= inStep;
      t = end;
    }
  }

  /** The schedule's step at time t (its index into rates) and when it ends; a fixed rate never ends. */
  private stepAt(t: number): { i: number; end: number } {
    if (this.rates.length === 1) return FIXED_STEP;
    let k = Math.max(0, Math.floor((t - this.startMs) / this.everyMs));
    let end = this.startMs + (k + 1) * this.everyMs;
    if (end <= t) {
      // t sits on a boundary the division rounded down past: it belongs to the next step.
      k++;
      end += this.everyMs;
    }
    return { i: k % this.rates.length, end };
  }
}

// ---- Parsing: one line per mistake, naming the option and the valid range ----------------------
/**
 * A percentage: "5%", "5" and "0.5%" are all percent (a bare number is percent too, so "--loss 5"
 * means 5%, never 500%; "0.05" means 0.05%). Returns a probability 0..1.
 */
export function parsePercent(name: string, v: unknown): number {
  const s = String(v).trim();
  const m = /^(\d+(?:\.\d*)?|\.\d+)\s*%?$/.exec(s);
  const n = m ? Number(m[1]) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > 100) {
    throw new UsageError(`--${name} must be 0-100% (e.g. 5% or 0.5%), got ${s === '' ? '""' : s.endsWith('%') || !m ? s : `${s}%`}`);
  }
  return n / 100;
}

/** A duration: "10ms", "0.5s", or a bare number of milliseconds. Returns milliseconds, 0-MAX_DELAY_MS. */
export function parseMs(name: string, v: unknown): number {
  const n = durationMs(v);
  if (!(n >= 0 && n <= MAX_DELAY_MS)) throw new UsageError(`--${name} must be 0-${MAX_DELAY_MS / 1000}s (e.g. 10ms or 0.5s), got ${shown(v)}`);
  return n;
}

/** --rate-every: a duration as parseMs reads it, MIN_RATE_EVERY_MS-MAX_RATE_EVERY_MS. */
export function parseRateEvery(name: string, v: unknown): number {
  const n = durationMs(v);
  if (!(n >= MIN_RATE_EVERY_MS && n <= MAX_RATE_EVERY_MS)) {
    throw new UsageError(`--${name} must be ${RATE_EVERY_RANGE} (e.g. 15s; a bare number is milliseconds), got ${shown(v)}`);
  }
  return n;
}

/** "10ms", "0.5s" or a bare number of milliseconds, in milliseconds; NaN when it is none of them. */
function durationMs(v: unknown): number {
  const m = /^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?$/i.exec(String(v).trim());
  return m ? Number(m[1]) * (m[2]?.toLowerCase() === 's' ? 1000 : 1) : NaN;
}

/** A value as the person typed it, for "got …" ('""' when empty). */
function shown(v: unknown): string {
  const s = String(v).trim();
  return s === '' ? '""' : s;
}

const RATE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9 };

/**
 * A rate in bits/s with SI prefixes: "500k", "10M", "1G", "2.5Mbit", "64kbps", "1000". `list`: the
 * whole --rate value this rate came from, named in the message so a bad item of a list is found.
 */
export function parseRate(name: string, v: unknown, list?: string): number {
  const s = String(v).trim();
  const m = /^(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(?:bit\/s|bits?|bps|b)?$/i.exec(s);
  const n = m ? Number(m[1]) * RATE_UNITS[m[2].toLowerCase()] : NaN;
  if (!Number.isFinite(n) || n < MIN_RATE_BPS || n > MAX_RATE_BPS) {
    throw new UsageError(`--${name} must be 1k-100G bits/s (e.g. 500k, 10M or 1G), got ${shown(s)}${list !== undefined ? ` (in ${list})` : ''}`);
  }
  return n;
}

/** --rate: one rate (a number, as always) or a comma-separated schedule "4M,1M" (a list). */
export function parseRates(name: string, v: unknown): number | number[] {
  const s = String(v).trim();
  if (!s.includes(',')) return parseRate(name, s);
  const items = s.split(',');
  if (items.length > MAX_RATE_STEPS) throw new UsageError(`--${name} takes at most ${MAX_RATE_STEPS} rates, got ${items.length}`);
  return items.map((item) => parseRate(name, item, s));
}

/**
 * --queue: a bare whole number is datagrams (0-MAX_QUEUE_PACKETS), as always; with a unit ("100ms",
 * "0.1s") it is a time (0-MAX_QUEUE_MS).
 */
export function parseQueue(name: string, v: unknown): { packets: number } | { ms: number } {
  const s = String(v).trim();
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (Number.isInteger(n) && n <= MAX_QUEUE_PACKETS) return { packets: n };
  const ms = /[a-z]$/i.test(s) ? durationMs(s) : NaN;
  if (ms >= 0 && ms <= MAX_QUEUE_MS) return { ms };
  throw new UsageError(
    `--${name} must be a whole number of datagrams 0-${MAX_QUEUE_PACKETS} or a time 0-${MAX_QUEUE_MS / 1000}s (e.g. 100 or 100ms), got ${shown(s)}`,
  );
}

/** A whole number in [min, max]. */
export function parseCount(name: string, v: unknown, min: number, max: number): number {
  const s = String(v).trim();
  const n = /^\d+$/.test(s) ? Number(s) : NaN;
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number ${min}-${max}, got ${s === '' ? '""' : s}`);
  }
  return n;
}

/**
 * Per-direction settings from yargs-style arguments. Every impairment option X applies to both
 * directions; `--up-X` and `--down-X` override it for one direction ("up" = client → target, "down"
 * = target → client). Keys are yargs' camelCase forms: loss, upLoss, downLoss, reorderGap, upReorderGap…
 * --rate "4M,1M" with --rate-every 15s is a schedule; --queue "100ms" a queue as time (parseQueue).
 */
export function impairSettings(a: Record<string, unknown>): { up: ImpairSettings; down: ImpairSettings } {
  const one = (dir: 'up' | 'down'): ImpairSettings => {
    // The value for this direction and the option name it came from (for the error message).
    const pick = (key: string, kebab: string): [unknown, string] | undefined => {
      const own = a[dir + key[0].toUpperCase() + key.slice(1)];
      if (own !== undefined) return [own, `${dir}-${kebab}`];
      return a[key] !== undefined ? [a[key], kebab] : undefined;
    };
    const get = <T>(key: string, kebab: string, parse: (name: string, v: unknown) => T): T | undefined => {
      const p = pick(key, kebab);
      return p ? parse(p[1], p[0]) : undefined;
    };
    const queue = get('queue', 'queue', parseQueue);
    const s: ImpairSettings = {
      loss: get('loss', 'loss', parsePercent) ?? 0,
      burst: get('burst', 'burst', (n, v) => parseCount(n, v, 1, MAX_BURST)) ?? 1,
      delayMs: get('delay', 'delay', parseMs) ?? 0,
      jitterMs: get('jitter', 'jitter', parseMs) ?? 0,
      reorder: get('reorder', 'reorder', parsePercent) ?? 0,
      duplicate: get('duplicate', 'duplicate', parsePercent) ?? 0,
      rateBps: get('rate', 'rate', parseRates),
      queuePackets: queue && 'packets' in queue ? queue.packets : undefined,
      reorderGapMs: get('reorderGap', 'reorder-gap', parseMs),
    };
    // Only when set, so settings without the new options look exactly as before.
    if (queue && 'ms' in queue) s.queueMs = queue.ms;
    // A schedule needs --rate-every and --rate-every a schedule. A shared --rate-every serves whichever
    // direction has one (--rate 4M,1M --rate-every 15s --down-rate 10M), so it is refused only when
    // neither has (below); --up-rate-every is refused when up has none.
    const every = get('rateEvery', 'rate-every', parseRateEvery);
    const rateFrom = pick('rate', 'rate');
    const everyFrom = pick('rateEvery', 'rate-every');
    if (Array.isArray(s.rateBps)) {
      const [typed, option] = rateFrom!;
      if (every === undefined) throw new UsageError(scheduleWithoutEvery(option, String(typed).trim(), option === 'rate' ? '' : `${dir}-`));
      s.rateEveryMs = every;
    } else if (everyFrom && everyFrom[1] !== 'rate-every') {
      const got = rateFrom ? `--${rateFrom[1]} ${String(rateFrom[0]).trim()}` : 'no rate';
      throw new UsageError(`--${everyFrom[1]} needs --${dir}-rate (or --rate) to list two or more rates (e.g. 4M,1M), got ${got}`);
    }
    // The burst/loss check names the options as typed for this direction.
    const lossFrom = pick('loss', 'loss')?.[1] ?? 'loss';
    const burstFrom = pick('burst', 'burst')?.[1] ?? 'burst';
    if (s.burst > 1 && s.loss > maxBurstLoss(s.burst)) {
      throw new UsageError(
        `--${lossFrom} with --${burstFrom} ${s.burst} must be at most ${pct(maxBurstLoss(s.burst))} (a delivered datagram separates bursts), got ${pct(s.loss)}`,
      );
    }
    return s;
  };
  const both = { up: one('up'), down: one('down') };
  if (a.rateEvery !== undefined && both.up.rateEveryMs === undefined && both.down.rateEveryMs === undefined) {
    const rate = a.rate !== undefined ? `--rate ${String(a.rate).trim()}` : 'no --rate';
    throw new UsageError(`--rate-every needs --rate to list two or more rates (e.g. 4M,1M), got ${rate}`);
  }
  return both;
}

/**
 * "loss 5% (bursts of 3), delay 10 ms + 0-20 ms, reorder 1%, duplicate 1%, rate 10 Mbit/s (queue 100)"
 * or "none"; a schedule and a time queue read "rate 4 Mbit/s, 1 Mbit/s every 15 s (queue 100 ms)".
 */
export function describeSettings(s: ImpairSettings): string {
  const parts: string[] = [];
  if (s.loss > 0) parts.push(`loss ${pct(s.loss)}${s.burst > 1 ? ` (bursts of ${s.burst})` : ''}`);
  if (s.delayMs > 0 || s.jitterMs > 0) parts.push(`delay ${s.delayMs} ms${s.jitterMs > 0 ? ` + 0-${s.jitterMs} ms` : ''}`);
  if (s.reorder > 0) parts.push(`reorder ${pct(s.reorder)} (+${s.reorderGapMs ?? DEFAULT_REORDER_GAP_MS} ms)`);
  if (s.duplicate > 0) parts.push(`duplicate ${pct(s.duplicate)}`);
  const rates = ratesOf(s);
  if (rates.length > 0) {
    const every = rates.length > 1 && s.rateEveryMs !== undefined ? ` every ${formatMs(s.rateEveryMs)}` : '';
    const queue = s.queueMs !== undefined ? formatMs(s.queueMs) : String(s.queuePackets ?? DEFAULT_QUEUE_PACKETS);
    parts.push(`rate ${rates.map(formatRate).join(', ')}${every} (queue ${queue})`);
  }
  return parts.length ? parts.join(', ') : 'none';
}

/** "100 ms" below a second, "15 s" from one. */
function formatMs(ms: number): string {
  return ms < 1000 ? `${+ms.toFixed(3)} ms` : `${+(ms / 1000).toFixed(3)} s`;
}

export function formatRate(bps: number): string {
  if (bps >= 1e9) return `${+(bps / 1e9).toFixed(3)} Gbit/s`;
  if (bps >= 1e6) return `${+(bps / 1e6).toFixed(3)} Mbit/s`;
  if (bps >= 1e3) return `${+(bps / 1e3).toFixed(3)} kbit/s`;
  return `${bps} bit/s`;
}

// ---- The client table (the proxy's small NAT) --------------------------------------------------
/**
 * Client address → per-client state (the proxy's upstream socket), bounded in size and expiring
 * idle entries. A Map keeps insertion order, and a touch re-inserts, so the oldest-idle entry is
 * always first and expiry stops at the first live one.
 */
export class ClientTable<T> {
  private readonly entries = new Map<string, { value: T; lastSeen: number }>();
  constructor(
    readonly maxClients: number,
    readonly idleMs: number,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** The entry for `key`, marked as seen at nowMs. */
  touch(key: string, nowMs: number): T | undefined {
    const e = this.entries.get(key);
    if (!e) return undefined;
    this.entries.delete(key);
    e.lastSeen = nowMs;
    this.entries.set(key, e);
    return e.value;
  }

  /** Adds a new client; false when the table is full (the caller refuses and counts it). */
  add(key: string, value: T, nowMs: number): boolean {
    if (this.entries.has(key)) throw new Error(`client ${key} is already in the table`);
    if (this.entries.size >= this.maxClients) return false;
    this.entries.set(key, { value, lastSeen: nowMs });
    return true;
  }

  /** Removes and returns the entries idle for idleMs or more. */
  expire(nowMs: number): T[] {
    const out: T[] = [];
    for (const [key, e] of this.entries) {
      if (nowMs - e.lastSeen < this.idleMs) break;
      this.entries.delete(key);
      out.push(e.value);
    }
    return out;
  }

  /** Removes and returns every entry. */
  clear(): T[] {
    const out = [...this.entries.values()].map((e) => e.value);
    this.entries.clear();
    return out;
  }
}
