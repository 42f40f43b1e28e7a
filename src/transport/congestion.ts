/**
 * The sending half of RFC 8888: a delay- and loss-based rate controller fed by congestion control
 * feedback (rtcp/feedback.ts Ccfb, made by arrivals.ts at the receiver). It says how many kbit/s
 * the path takes now; the sharer fits its encoder to that (apps/share.ts), and the publisher paces
 * its packets by it.
 *
 * The model, in the spirit of GCC (draft-ietf-rmcat-gcc) and LEDBAT (RFC 6817):
 * - One-way delay of each packet = its arrival on the receiver's clock − its send time on ours.
 *   The clocks are not synchronised, so only its excess over the smallest delay seen recently (the
 *   base, the minimum over CC_BASE_WINDOW_MS) means something: that excess is the queue delay at
 *   the bottleneck. A report's queue delay is the least of its packets' (so one packet queued
 *   behind its own frame's burst does not count; a standing queue does).
 * - Over-use: queue delay above CC_QUEUE_HIGH_MS, loss above CC_LOSS_HIGH over a report window, or
 *   loss above CC_LOSS_LOW with a queue above CC_QUEUE_LOSSY_MS (a router buffer too small to
 *   ever show CC_QUEUE_HIGH_MS, overflowing).
 *   The estimate drops to CC_DECREASE × the rate the receiver acknowledged over the last
 *   CC_ACKED_WINDOW_MS (GCC's rule: just below what the path delivered), or by half the loss
 *   fraction when that is lower. Only packets sent after a decrease can cause the next, so one
 *   queue is answered once.
 * - Room: queue delay below CC_QUEUE_LOW_MS and loss below CC_LOSS_LOW: the estimate grows by
 *   CC_INCREASE_PER_S (multiplicative), and by CC_PROBE_PER_S only once it nears the acknowledged
 *   rate at the last over-use (GCC's additive region: the known limit is probed, not overrun);
 *   past it by CC_FORGET with no queue, the path has widened and the fast growth resumes.
 *   Between the two it holds. Random loss under CC_LOSS_HIGH
 *   (a wireless link) therefore never lowers the rate: only a queue or heavy loss does.
 * - Bounds: never below CC_MIN_KBPS nor above the maximum (the sharer's --bitrate).
 * Chosen over GCC's trendline filter because a queue-delay target needs no tuned gains and reacts
 * within one report to a tail-drop buffer filling; chosen over SCReAM's window because the
 * encoder's rate, not a window, is what we can set.
 */
import type { Ccfb } from './rtcp.ts';
import { ATO_OVER_RANGE, ATO_UNITS_PER_S } from './rtcp.ts';
import { seqAdd } from '../rtp/seq.ts';

/** Queue delay (ms) above which the path is over-used: well inside a 100 ms router buffer. */
export const CC_QUEUE_HIGH_MS = 40;
/** Queue delay (ms) that, with loss over CC_LOSS_LOW, shows a buffer smaller than CC_QUEUE_HIGH_MS overflowing. */
export const CC_QUEUE_LOSSY_MS = 20;
/** Queue delay (ms) below which there is room to grow. */
export const CC_QUEUE_LOW_MS = 10;
/** Loss fraction above which the rate drops (GCC's 10%). */
export const CC_LOSS_HIGH = 0.1;
/** Loss fraction below which the rate may grow (GCC's 2%). */
export const CC_LOSS_LOW = 0.02;
/** On over-use the estimate becomes this × the acknowledged rate (GCC's β). */
export const CC_DECREASE = 0.85;
/** Growth per second with room (multiplicative), while below the rate of the last over-use... */
export const CC_INCREASE_PER_S = 0.15;
/** ...and near or above it (within CC_NEAR of it), the slow growth that probes the known limit. */
export const CC_PROBE_PER_S = 0.03;
export const CC_NEAR = 0.9;
export const CC_FORGET = 1.1;
/** Growth past the known limit stops at this × the acknowledged rate (GCC's 1.5). */
export const CC_ACKED_HEADROOM = 1.5;
/** Loss above which the acknowledged rate is what the path delivers (its queue overflows). */
export const CC_LOSS_HEAVY = 0.25;
/** The lowest estimate: below it a screen is not worth sending. */
export const CC_MIN_KBPS = 150;
/** The base one-way delay is the minimum over this long (buckets of CC_BASE_BUCKET_MS). */
export const CC_BASE_WINDOW_MS = 30_000;
const CC_BASE_BUCKET_MS = 2_000;
/** The acknowledged rate is measured over the arrivals of this long, on the receiver's clock. */
export const CC_ACKED_WINDOW_MS = 500;
/** Acknowledged packets kept for the rate: a second at 8,000 packets/s. */
const ACKED_MAX = 8192;
/** The shortest span an acknowledged rate is taken over (the first reports). */
const CC_MIN_SPAN_MS = 100;
/** Loss is measured over the reports of this long. */
export const CC_LOSS_WINDOW_MS = 500;
/** Packets the send log remembers a stream (by seq modulo this): 2.7 s at 1500 packets/s. */
export const SEND_LOG_SIZE = 4096;
/** SSRCs a send log keeps (layers and their FEC, and a restart's); 80 KB each. */
const SEND_LOG_MAX_SSRCS = 16;

/** The receiver's report timestamps wrap every 65536 s (compact NTP); delays are taken modulo that. */
const WRAP_MS = 65536 * 1000;

/** A decrease's cause in words, for the logs: "a queue of 54 ms", "12% loss". */
export function describeDecrease(d: { why: 'queue' | 'loss'; queueDelayMs: number; loss: number }): string {
  return d.why === 'queue' ? `a queue of ${Math.round(d.queueDelayMs)} ms` : `${Math.round(d.loss * 100)}% loss`;
}

/** What the controller last decided and why: for the dashboard, --stats-json and the log. */
export type CongestionState = 'starting' | 'room' | 'hold' | 'queue' | 'loss';

interface SendRecord {
  seqs: Int32Array;
  times: Float64Array;
  bytes: Uint16Array;
}

/**
 * When each packet left, by SSRC and sequence number (the last SEND_LOG_SIZE of each SSRC): what
 * feedback is read against. A sharer keeps one; the relay one per stream, shared by every viewer's
 * controller, since a packet leaves for all of them at once.
 */
export class SendLog {
  private readonly sent = new Map<number, SendRecord>();

  onSent(ssrc: number, seq: number, bytes: number, now: number): void {
    let r = this.sent.get(ssrc);
    if (!r) {
      // The oldest SSRC makes room (a sharer restarted: its old session is of no more use).
      if (this.sent.size >= SEND_LOG_MAX_SSRCS) this.sent.delete(this.sent.keys().next().value!);
      r = { seqs: new Int32Array(SEND_LOG_SIZE).fill(-1), times: new Float64Array(SEND_LOG_SIZE), bytes: new Uint16Array(SEND_LOG_SIZE) };
      this.sent.set(ssrc, r);
    }
    const i = seq % SEND_LOG_SIZE;
    r.seqs[i] = seq;
    r.times[i] = now;
    r.bytes[i] = Math.min(0xffff, bytes);
  }

  /** When packet `seq` of `ssrc` left and its size; undefined when not ours or forgotten. */
  find(ssrc: number, seq: number): { at: number; bytes: number } | undefined {
    const r = this.sent.get(ssrc);
    const i = seq % SEND_LOG_SIZE;
    if (!r || r.seqs[i] !== seq) return undefined;
    return { at: r.times[i], bytes: r.bytes[i] };
  }
}

export class CongestionController {
  /** Current estimate of what the path takes (kbit/s). */
  estimateKbps: number;
  state: CongestionState = 'starting';
  /** Queue delay of the latest report (ms), loss over CC_LOSS_WINDOW_MS (0-1), acknowledged kbit/s. */
  queueDelayMs = 0;
  loss = 0;
  ackedKbps = 0;
  /** Decreases made (over-use events answered). */
  decreases = 0;
  /** Why the estimate last went down, and the acknowledged rate (kbit/s) then: the known limit (describeDecrease says it). */
  lastDecrease?: { why: 'queue' | 'loss'; queueDelayMs: number; loss: number; ackedKbps: number };
  /** Reports read. */
  reports = 0;
  /** Per-bucket minima of the normalised one-way delay. */
  private readonly baseBuckets: Array<{ at: number; min: number }> = [];
  /** First raw delay seen: later ones are taken relative to it, so a wrap of the 65536 s clock does not matter. */
  private origin?: number;
  /** Arrival (our clock plus the one-way delay: the receiver's, without wraps) and bytes of recently acknowledged packets. */
  private readonly acked: Array<{ at: number; bytes: number; rx: number }> = [];
  private readonly lossHistory: Array<{ at: number; lost: number; total: number }> = [];
  private lastDecreaseSentAt = -Infinity;
  private lastUpdateAt?: number;

  constructor(
    /** The most it may ever say (the sharer's --bitrate). */
    readonly maxKbps: number,
    start = maxKbps,
    /** Where send times are kept: its own, or one shared with other controllers (the relay's viewers). */
    readonly sent = new SendLog(),
  ) {
    this.estimateKbps = Math.max(CC_MIN_KBPS, Math.min(maxKbps, start));
  }

  /** A packet left: `ssrc`/`seq` name it in the receiver's feedback; `now` is this clock (ms). */
  onSent(ssrc: number, seq: number, bytes: number, now: number): void {
    this.sent.onSent(ssrc, seq, bytes, now);
  }

  /**
   * Forgets the limit met last: growth is fast again. For a switch to a higher layer, which is
   * itself the probe (a queue it causes brings the next decrease at once).
   */
  forgetLimit(): void {
    if (this.lastDecrease) this.lastDecrease.ackedKbps = Infinity;
  }

  /**
   * Reads one report; returns the new estimate (kbit/s). Packets sent before `notBefore` are not
   * read (a relay's viewer got them later than they left: a catch-up, a layer not yet its own).
   */
  onFeedback(fb: Ccfb, now: number, notBefore = -Infinity): number {
    this.reports++;
    // The report timestamp, unwrapped against our own clock's whereabouts (the 65536 s period is
    // far longer than any offset between two machines' clocks that matters here).
    const rtsMs = (fb.reportTimestamp / 65536) * 1000;
    let minQueue = Infinity;
    let lost = 0;
    let total = 0;
    let newestSendAt = -Infinity;
    for (const s of fb.streams) {
      for (let k = 0; k < s.packets.length; k++) {
        const sent = this.sent.find(s.ssrc, seqAdd(s.beginSeq, k));
        if (!sent || sent.at < notBefore) continue; // not ours, too old to remember, or not read
        const sentAt = sent.at;
        const p = s.packets[k];
        total++;
        if (!p.received) {
          lost++;
          continue;
        }
        if (p.ato >= ATO_OVER_RANGE) continue;
        const arrival = rtsMs - (p.ato * 1000) / ATO_UNITS_PER_S;
        const raw = mod(arrival - sentAt, WRAP_MS);
        this.origin ??= raw;
        const owd = mod(raw - this.origin + WRAP_MS / 2, WRAP_MS) - WRAP_MS / 2;
        this.noteBase(owd, now);
        const queue = owd - this.base();
        if (sentAt > this.lastDecreaseSentAt) minQueue = Math.min(minQueue, queue);
        newestSendAt = Math.max(newestSendAt, sentAt);
        // Arrival on a wrap-free clock: our send time plus the one-way delay (offset included).
        this.acked.push({ at: sentAt + owd, bytes: sent.bytes, rx: now });
      }
    }
    if (total === 0) return this.estimateKbps;
    this.lossHistory.push({ at: now, lost, total });
    while (this.lossHistory.length && now - this.lossHistory[0].at > CC_LOSS_WINDOW_MS) this.lossHistory.shift();
    // Arrivals come in order of reports, nearly in order of time: the window is by the newest.
    // Bounded whatever a receiver claims: by count, by when we read them, and by their arrivals.
    while (this.acked.length > ACKED_MAX || (this.acked.length && now - this.acked[0].rx > 2 * CC_ACKED_WINDOW_MS)) this.acked.shift();
    const newest = this.acked.reduce((m, a) => Math.max(m, a.at), -Infinity);
    while (this.acked.length && newest - this.acked[0].at > CC_ACKED_WINDOW_MS) this.acked.shift();
    const l = this.lossHistory.reduce((a, h) => [a[0] + h.lost, a[1] + h.total], [0, 0]);
    this.loss = l[1] ? l[0] / l[1] : 0;
    // What the path delivered: the bytes that arrived over the span of their arrivals (on the
    // receiver's clock, so a report's delay does not count), at least CC_MIN_SPAN_MS.
    if (this.acked.length) {
      const ackedBytes = this.acked.reduce((n, a) => n + a.bytes, 0);
      const oldest = this.acked.reduce((m, a) => Math.min(m, a.at), Infinity);
      this.ackedKbps = (ackedBytes * 8) / Math.max(CC_MIN_SPAN_MS, newest - oldest);
    }
    if (minQueue !== Infinity) this.queueDelayMs = Math.max(0, minQueue);
    const dt = this.lastUpdateAt === undefined ? 0 : Math.max(0, now - this.lastUpdateAt);
    this.lastUpdateAt = now;

    const overQueue = minQueue !== Infinity && minQueue > CC_QUEUE_HIGH_MS;
    // Loss with a standing queue is a small router buffer overflowing: congestion even below
    // CC_LOSS_HIGH. Loss without a queue is the medium (radio), and is not answered by slowing down.
    const queued = minQueue !== Infinity && minQueue > CC_QUEUE_LOSSY_MS;
    const overLoss = (this.loss > CC_LOSS_HIGH || (queued && this.loss > CC_LOSS_LOW)) && newestSendAt > this.lastDecreaseSentAt;
    if (overQueue || overLoss) {
      const byRate = CC_DECREASE * this.ackedKbps;
      const byLoss = this.estimateKbps * (1 - this.loss / 2);
      // A queue, or loss so heavy the queue overflows: just below what the path delivered. Lighter
      // loss: GCC's loss-based cut, never below that.
      const next = overQueue || this.loss > CC_LOSS_HEAVY ? byRate : Math.max(byRate, byLoss);
      this.estimateKbps = this.clamp(Math.min(this.estimateKbps, next));
      this.state = overQueue ? 'queue' : 'loss';
      this.lastDecrease = { why: this.state, queueDelayMs: this.queueDelayMs, loss: this.loss, ackedKbps: this.ackedKbps };
      this.decreases++;
      this.lastDecreaseSentAt = newestSendAt;
      this.lossHistory.length = 0;
    } else if (this.queueDelayMs < CC_QUEUE_LOW_MS && this.loss < CC_LOSS_LOW) {
      const limit = this.lastDecrease?.ackedKbps;
      // Past the known limit by CC_FORGET without a queue: the path has changed, and it is forgotten.
      if (limit !== undefined && this.estimateKbps > CC_FORGET * limit) this.lastDecrease!.ackedKbps = Infinity;
      const rate = limit !== undefined && this.estimateKbps >= CC_NEAR * limit && this.estimateKbps <= CC_FORGET * limit ? CC_PROBE_PER_S : CC_INCREASE_PER_S;
      let next = this.estimateKbps * (1 + (rate * dt) / 1000);
      // Once a limit was met, growth must be earned: no more than CC_ACKED_HEADROOM × what arrives
      // (GCC's rule), unless that is below the known limit (a still screen sends little, and must
      // not talk the estimate down). Without a limit met, the estimate stays where it started.
      if (limit !== undefined) next = Math.min(next, Math.max(this.estimateKbps, CC_ACKED_HEADROOM * this.ackedKbps, Number.isFinite(limit) ? limit : 0));
      this.estimateKbps = this.clamp(next);
      this.state = 'room';
    } else {
      this.state = 'hold';
    }
    return this.estimateKbps;
  }

  private clamp(kbps: number): number {
    return Math.max(CC_MIN_KBPS, Math.min(this.maxKbps, kbps));
  }

  private noteBase(owd: number, now: number): void {
    const last = this.baseBuckets.at(-1);
    if (last && now - last.at < CC_BASE_BUCKET_MS) last.min = Math.min(last.min, owd);
    else this.baseBuckets.push({ at: now, min: owd });
    while (this.baseBuckets.length > 1 && now - this.baseBuckets[0].at > CC_BASE_WINDOW_MS) this.baseBuckets.shift();
  }

  private base(): number {
    let m = Infinity;
    for (const b of this.baseBuckets) m = Math.min(m, b.min);
    return m;
  }
}

function mod(a: number, m: number): number {
  return ((a % m) + m) % m;
}

/** The encoder aims at this share of the estimate: RTP/UDP headers, RTCP and the encoder's own overshoot take the rest. */
export const CC_MEDIA_SHARE = 0.9;
/** A lower estimate re-targets the encoder once it is this far below its target... */
export const RETARGET_DOWN_BELOW = 0.9;
/** ...and at most this often: each re-target starts a fresh encoder run, which costs a keyframe. */
export const RETARGET_DOWN_MIN_MS = 1_000;
/** A higher estimate re-targets the encoder once it has stayed this far above its target... */
export const RETARGET_UP_ABOVE = 1.2;
/** ...this long, and this long after the last re-target (hysteresis: no see-saw of keyframes). */
export const RETARGET_UP_AFTER_MS = 3_000;

/**
 * When the encoder's bitrate follows the estimate: down soon (a queue is growing), up only after
 * the room has lasted, never above the maximum. Pure: the clock is passed in.
 */
export class RetargetPolicy {
  /** What the encoder runs at now (kbit/s). */
  targetKbps: number;
  retargets = 0;
  private lastAt = -Infinity;
  private aboveSince?: number;

  constructor(readonly maxKbps: number) {
    this.targetKbps = maxKbps;
  }

  /**
   * The encoder bitrate to change to now, else undefined. The caller calls commit() once the
   * encoder has taken it (it may be busy starting a keyframe run; then it is asked again later).
   */
  decide(estimateKbps: number, now: number): number | undefined {
    return this.decideKbps(estimateKbps * CC_MEDIA_SHARE, now);
  }

  /** As decide(), for an encoder bitrate already worked out (`wantKbps`, capped at the maximum). */
  decideKbps(wantKbps: number, now: number): number | undefined {
    const want = Math.min(this.maxKbps, Math.round(wantKbps));
    if (want < this.targetKbps * RETARGET_DOWN_BELOW) {
      this.aboveSince = undefined;
      return now - this.lastAt < RETARGET_DOWN_MIN_MS ? undefined : want;
    }
    if (want > this.targetKbps * RETARGET_UP_ABOVE || (want === this.maxKbps && want > this.targetKbps)) {
      this.aboveSince ??= now;
      return now - this.aboveSince < RETARGET_UP_AFTER_MS || now - this.lastAt < RETARGET_UP_AFTER_MS ? undefined : want;
    }
    this.aboveSince = undefined;
    return undefined;
  }

  /** The encoder now runs at `kbps`. */
  commit(kbps: number, now: number): void {
    this.targetKbps = kbps;
    this.lastAt = now;
    this.aboveSince = undefined;
    this.retargets++;
  }
}

/**
 * What the layers may take of an estimate: its media share, plus 1 kbit/s of slack, so that at the
 * maximum estimate, where the layers fit exactly, rounding does not pause one.
 */
function fitKbps(estimateKbps: number): number {
  return estimateKbps * CC_MEDIA_SHARE + 1;
}

/** Unpausing a layer needs this much headroom over its rate. */
export const LAYER_RESUME_HEADROOM = 1.05;
/** A re-target aims this far under the estimate, so every layer fits after it (not by a rounding). */
const LAYER_RETARGET_MARGIN = 0.95;

/**
 * The sharer's quality layers on its uplink (issue 14, item 2): what is sent fits the estimate
 * first by pausing upper layers, at once and without a keyframe, then by re-targeting the
 * encoder (RetargetPolicy's hysteresis) so that every layer fits again; a re-target starts every
 * layer afresh, so all that fit then are sent again. A paused layer comes back on its own after
 * RETARGET_UP_AFTER_MS of room (LAYER_RESUME_HEADROOM over its rate), at its next keyframe.
 * With one layer this is RetargetPolicy alone. Pure: the clock is passed in.
 */
export class UplinkLayers {
  readonly policy: RetargetPolicy;
  /** Layers below this index (the top ones) are paused. */
  firstActive = 0;
  private roomSince?: number;

  constructor(
    readonly maxTopKbps: number,
    /** Each layer's bitrate as a share of the top one's (ffmpeg-args LAYER_SHARES), best first. */
    readonly shares: readonly number[],
  ) {
    this.policy = new RetargetPolicy(maxTopKbps);
  }

  /** The layers' bitrates at the encoder's current target. */
  rates(top = this.policy.targetKbps): number[] {
    return this.shares.map((s) => top * s);
  }

  /** The layers' bitrates from layer `from` down, summed. */
  private sending(from: number): number {
    return this.rates().slice(from).reduce((a, b) => a + b, 0);
  }

  /** The first layer from `from` on whose layers below it all fit `fit` (the lowest always does). */
  private firstFitting(fit: number, from: number): number {
    let first = from;
    while (first < this.shares.length - 1 && this.sending(first) > fit) first++;
    return first;
  }

  /** What the sharer should do for this estimate: pause or resume layers, re-target the encoder. */
  decide(estimateKbps: number, now: number): { firstActive?: number; retarget?: number } {
    const fit = fitKbps(estimateKbps);
    let first = this.firstFitting(fit, this.firstActive);
    if (first === this.firstActive && first > 0 && this.sending(first - 1) * LAYER_RESUME_HEADROOM <= fit) {
      this.roomSince ??= now;
      if (now - this.roomSince >= RETARGET_UP_AFTER_MS) first--;
    } else {
      this.roomSince = undefined;
    }
    // The encoder aims for every layer to fit (never above --bitrate at the top).
    const allShares = this.shares.reduce((a, b) => a + b, 0);
    // Under the maximum, aimed a little low so every layer fits after it; at it, the maximum itself.
    const aim = fit / allShares;
    const retarget = this.policy.decideKbps(aim >= this.maxTopKbps ? this.maxTopKbps : aim * LAYER_RETARGET_MARGIN, now);
    const out: { firstActive?: number; retarget?: number } = {};
    if (retarget !== undefined) out.retarget = retarget;
    if (first !== this.firstActive) {
      this.firstActive = first;
      this.roomSince = undefined;
      out.firstActive = first;
    }
    return out;
  }

  /** The encoder runs at `topKbps` now; every layer restarts with a keyframe: those that fit are sent. */
  retargeted(topKbps: number, estimateKbps: number, now: number): number {
    this.policy.commit(topKbps, now);
    this.firstActive = this.firstFitting(fitKbps(estimateKbps), 0);
    this.roomSince = undefined;
    return this.firstActive;
  }
}
