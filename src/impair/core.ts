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
 *   queueing delay first, then loss.
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
  /** Bottleneck rate in bits/s; undefined: no bottleneck. */
  rateBps?: number;
  /** FIFO length of the bottleneck, default DEFAULT_QUEUE_PACKETS. */
  queuePackets?: number;
  /** Token bucket depth, default max(MIN_BUCKET_BYTES, BUCKET_MS of rate). */
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
  if (s.rateBps !== undefined && !(s.rateBps >= MIN_RATE_BPS && s.rateBps <= MAX_RATE_BPS)) {
    throw new UsageError(`--${prefix}rate must be 1k-100G bits/s, got ${s.rateBps}`);
  }
  if (s.queuePackets !== undefined && (!Number.isInteger(s.queuePackets) || s.queuePackets < 0 || s.queuePackets > MAX_QUEUE_PACKETS)) {
    throw new UsageError(`--${prefix}queue must be a whole number 0-${MAX_QUEUE_PACKETS}, got ${s.queuePackets}`);
  }
  if (s.bucketBytes !== undefined && !(s.bucketBytes > 0)) throw new RangeError(`bucketBytes must be > 0, got ${s.bucketBytes}`);
  if (s.maxInFlight !== undefined && !(Number.isInteger(s.maxInFlight) && s.maxInFlight > 0)) {
    throw new RangeError(`maxInFlight must be a whole number > 0, got ${s.maxInFlight}`);
  }
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

  // Bottleneck: tokens (bits) as of time tokensAt; departure times of datagrams still waiting.
  private readonly bucketBits: number;
  private readonly queueCap: number;
  private tokens: number;
  private tokensAt = -Infinity;
  private readonly waiting: number[] = [];
  private waitingHead = 0;

  // Delay line: send times of datagrams scheduled and not yet due, for the in-flight cap.
  private readonly inFlight = new MinHeap<number>((a, b) => a < b);
  private readonly maxInFlight: number;
  private lastSendAt = -Infinity;
  private readonly reorderGapMs: number;

  constructor(settings: ImpairSettings, seed: number) {
    validateSettings(settings);
    this.settings = { ...settings };
    this.lossRng = new Prng(deriveSeed(seed, STREAM_LOSS));
    this.jitterRng = new Prng(deriveSeed(seed, STREAM_JITTER));
    this.reorderRng = new Prng(deriveSeed(seed, STREAM_REORDER));
    this.duplicateRng = new Prng(deriveSeed(seed, STREAM_DUPLICATE));
    const { loss, burst } = settings;
    this.burstStart = burst > 1 ? Math.min(1, loss / (burst * (1 - loss))) : 0;
    const rate = settings.rateBps ?? 0;
    this.bucketBits = 8 * (settings.bucketBytes ?? Math.max(MIN_BUCKET_BYTES, (rate / 8) * (BUCKET_MS / 1000)));
    this.tokens = this.bucketBits;
    this.queueCap = settings.queuePackets ?? DEFAULT_QUEUE_PACKETS;
    this.maxInFlight = settings.maxInFlight ?? MAX_IN_FLIGHT;
    this.reorderGapMs = settings.reorderGapMs ?? DEFAULT_REORDER_GAP_MS;
  }

  /** Datagrams waiting for the bottleneck as of the last decision. */
  get queued(): number {
    return this.waiting.length - this.waitingHead;
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

    // 3. Bottleneck: a datagram that has to wait for tokens needs a place in the queue.
    let depart = nowMs;
    if (s.rateBps !== undefined) {
      while (this.waitingHead < this.waiting.length && this.waiting[this.waitingHead] <= nowMs) this.waitingHead++;
      if (this.waitingHead > 1024 && this.waitingHead * 2 > this.waiting.length) {
        this.waiting.splice(0, this.waitingHead); // compact now and then; the queue itself is capped
        this.waitingHead = 0;
      }
      const b = this.bottleneck(sizeBytes * 8, nowMs, s.rateBps);
      if (b.depart > nowMs && this.queued >= this.queueCap) {
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
  private bottleneck(bits: number, nowMs: number, rateBps: number): { depart: number; tokens: number; tokensAt: number } {
    const t0 = Math.max(nowMs, this.tokensAt);
    const tokens = Math.min(this.bucketBits, this.tokens + ((t0 - this.tokensAt) * rateBps) / 1000);
    if (tokens >= bits) return { depart: t0, tokens: tokens - bits, tokensAt: t0 };
    const depart = t0 + ((bits - tokens) * 1000) / rateBps;
    return { depart, tokens: 0, tokensAt: depart };
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
  const s = String(v).trim();
  const m = /^(\d+(?:\.\d*)?|\.\d+)\s*(ms|s)?$/i.exec(s);
  const n = m ? Number(m[1]) * (m[2]?.toLowerCase() === 's' ? 1000 : 1) : NaN;
  if (!Number.isFinite(n) || n < 0 || n > MAX_DELAY_MS) {
    throw new UsageError(`--${name} must be 0-${MAX_DELAY_MS / 1000}s (e.g. 10ms or 0.5s), got ${s === '' ? '""' : s}`);
  }
  return n;
}

const RATE_UNITS: Record<string, number> = { '': 1, k: 1e3, m: 1e6, g: 1e9 };

/** A rate in bits/s with SI prefixes: "500k", "10M", "1G", "2.5Mbit", "64kbps", "1000". */
export function parseRate(name: string, v: unknown): number {
  const s = String(v).trim();
  const m = /^(\d+(?:\.\d*)?|\.\d+)\s*([kmg]?)(?:bit\/s|bits?|bps|b)?$/i.exec(s);
  const n = m ? Number(m[1]) * RATE_UNITS[m[2].toLowerCase()] : NaN;
  if (!Number.isFinite(n) || n < MIN_RATE_BPS || n > MAX_RATE_BPS) {
    throw new UsageError(`--${name} must be 1k-100G bits/s (e.g. 500k, 10M or 1G), got ${s === '' ? '""' : s}`);
  }
  return n;
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
    const s: ImpairSettings = {
      loss: get('loss', 'loss', parsePercent) ?? 0,
      burst: get('burst', 'burst', (n, v) => parseCount(n, v, 1, MAX_BURST)) ?? 1,
      delayMs: get('delay', 'delay', parseMs) ?? 0,
      jitterMs: get('jitter', 'jitter', parseMs) ?? 0,
      reorder: get('reorder', 'reorder', parsePercent) ?? 0,
      duplicate: get('duplicate', 'duplicate', parsePercent) ?? 0,
      rateBps: get('rate', 'rate', parseRate),
      queuePackets: get('queue', 'queue', (n, v) => parseCount(n, v, 0, MAX_QUEUE_PACKETS)),
      reorderGapMs: get('reorderGap', 'reorder-gap', parseMs),
    };
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
  return { up: one('up'), down: one('down') };
}

/** "loss 5% (bursts of 3), delay 10 ms + 0-20 ms, reorder 1%, duplicate 1%, rate 10 Mbit/s (queue 100)" or "none". */
export function describeSettings(s: ImpairSettings): string {
  const parts: string[] = [];
  if (s.loss > 0) parts.push(`loss ${pct(s.loss)}${s.burst > 1 ? ` (bursts of ${s.burst})` : ''}`);
  if (s.delayMs > 0 || s.jitterMs > 0) parts.push(`delay ${s.delayMs} ms${s.jitterMs > 0 ? ` + 0-${s.jitterMs} ms` : ''}`);
  if (s.reorder > 0) parts.push(`reorder ${pct(s.reorder)} (+${s.reorderGapMs ?? DEFAULT_REORDER_GAP_MS} ms)`);
  if (s.duplicate > 0) parts.push(`duplicate ${pct(s.duplicate)}`);
  if (s.rateBps !== undefined) parts.push(`rate ${formatRate(s.rateBps)} (queue ${s.queuePackets ?? DEFAULT_QUEUE_PACKETS})`);
  return parts.length ? parts.join(', ') : 'none';
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
