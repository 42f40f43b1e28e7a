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
 *   queue is answered once: those sent while it drains (CC_DRAIN_MAX_MS at most) cause the next
 *   only if it grew.
 * - Room: queue delay below CC_QUEUE_LOW_MS and loss below CC_LOSS_LOW: the estimate grows by
 *   CC_INCREASE_PER_S (multiplicative), and by CC_PROBE_PER_S only once it nears the acknowledged
 *   rate at the last over-use (GCC's additive region: the known limit is probed, not overrun);
 *   past it by CC_FORGET with no queue, the path has widened and the fast growth resumes.
 *   Between the two it holds. Random loss under CC_LOSS_HIGH
 *   (a wireless link) therefore never lowers the rate: only a queue or heavy loss does.
 * - Probes: once a limit is known and there is room, the sender sends a short cluster of padding
 *   (PROBE_MS at PROBE_GAIN × the estimate, every PROBE_INTERVAL_MS) and this reads how it
 *   arrived. Arriving at the pace it left, the path took it: the estimate becomes that rate and
 *   the next probe follows at once. Spread out or lost, it found the path's rate: the estimate
 *   becomes its arrival rate and the chain ends (the encoder aims at CC_MEDIA_SHARE of it, the pacer
 *   below it: pacer.ts PACE_LIMIT_SHARE). Without probes, a path
 *   that widened is only found by the slow growth above, capped by what the encoder sends: 1 to
 *   4 Mbit/s takes tens of seconds (GCC probes likewise, with padding, for the same reason).
 *   Packets sent during a probe neither raise nor lower the estimate by the rules above: the
 *   probe itself is what queued them.
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
/**
 * After a decrease the queue it answered drains, slowly (the sender now sends CC_DECREASE × what
 * the path delivers): packets sent within its delay ÷ (1 − CC_DECREASE) of it, at most this long,
 * meet what is left of it and are read only for whether it grew.
 */
export const CC_DRAIN_MAX_MS = 500;
/** The lowest estimate: below it a screen is not worth sending. */
export const CC_MIN_KBPS = 150;
/** The base one-way delay is the minimum over this long (buckets of CC_BASE_BUCKET_MS). */
export const CC_BASE_WINDOW_MS = 30_000;
const CC_BASE_BUCKET_MS = 2_000;
/** The acknowledged rate is measured over the arrivals of this long, on the receiver's clock. */
export const CC_ACKED_WINDOW_MS = 250;
/** A report's own arrival rate counts on over-use once its arrivals span this long. */
const CC_REPORT_SPAN_MS = 30;
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

/**
 * The first probe of a chain sends at this × the estimate (media and padding together): on a path
 * the estimate already fills it leaves ~15 ms of queue (a quarter of PROBE_MS), far inside
 * CC_QUEUE_HIGH_MS and a 100 ms buffer, and still arrives measurably slower than it left...
 */
export const PROBE_GAIN_FIRST = 1.25;
/** ...and each after one the path took, this ×: a path 4 × wider is found in 4 probes, well within a second. */
export const PROBE_GAIN = 1.5;
/** ...each for this long. */
export const PROBE_MS = 60;
/** After a probe that found the limit, the queue it left drains for this long before it counts against the estimate. */
const PROBE_DRAIN_MS = 300;
/** A probe that found no room is tried again this much later: a widened path is found within about this. */
export const PROBE_INTERVAL_MS = 2_000;
/** A chain that raised the estimate this many times over is followed by another this soon. */
const PROBE_FAR = 1.25;
const PROBE_AGAIN_MS = 500;
/** No probe once the estimate is this close to the maximum. */
const PROBE_TOP = 0.95;
/** Feedback on a probe's packets is waited for this long after it, then it is read as it is (lost if unreported). */
const PROBE_WAIT_MS = 1_000;
/** A probe of fewer packets measures nothing; one of more is cut short (memory). */
const PROBE_MIN_PACKETS = 5;
const PROBE_MAX_PACKETS = 4096;
/** A probe arriving at less than this share of its sending rate, or losing more than PROBE_MAX_LOSS, found the path's limit. */
const PROBE_RECV_SHARE = 0.9;
/**
 * A probe whose last packet met this much more queue than its least-delayed one found the limit,
 * plus the time 1.5 datagrams of 1,200 bytes take at the estimate (bits / kbit/s = ms).
 */
const PROBE_QUEUE_MS = 10;
const PROBE_NOISE_BITS = 1.5 * 1200 * 8;
/** The arrival rate is read from the packet this far into the probe's arrivals (1/4: after the first quarter). */
const PROBE_SKIP_DIVISOR = 4;
const PROBE_MAX_LOSS = 0.02;

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

/** One probe: every packet sent in its window (media too), and how each arrived. */
interface Probe {
  from: number;
  to: number;
  /** By `ssrc:seq`: send time, bytes, arrival on the receiver's (unwrapped) clock once reported. */
  packets: Map<string, { at: number; bytes: number; arrival?: number }>;
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
  /**
   * The queue a decrease answered, draining: packets sent after the decrease up to `untilSentAt`
   * meet what is left of it, so their loss is its doing and only a queue above `queueMs` (plus
   * CC_QUEUE_LOW_MS) says the cut was not enough. Without this, each report of the drain read as
   * a new over-use, and the estimate fell far below the path (4 → 1 Mbit/s: 843, then 675).
   */
  private drain?: { afterSentAt: number; untilSentAt: number; queueMs: number };
  private lastUpdateAt?: number;
  /** Probes sent. */
  probes = 0;
  private probe?: Probe;
  /** Packets sent from the last probe's start to as long again after it: neither raise nor lower the estimate. */
  private quietFrom = Infinity;
  private quietUntil = -Infinity;
  private nextProbeAt = -Infinity;
  /** The estimate when the current chain of probes began; undefined between chains. */
  private chainFrom?: number;
  /** A chain of probes measured the path and the estimate stands on it, not yet told (takeProbed). */
  private probed = false;

  constructor(
    /** The most it may ever say (the sharer's --bitrate). */
    readonly maxKbps: number,
    start = maxKbps,
    /** Where send times are kept: its own, or one shared with other controllers (the relay's viewers). */
    readonly sent = new SendLog(),
    /**
     * The sender probes (probeDue/startProbe): past a known limit the estimate then grows only by
     * probes, which find a wider path within PROBE_INTERVAL_MS, not by creeping into the queue.
     */
    readonly probing = false,
  ) {
    this.estimateKbps = Math.max(CC_MIN_KBPS, Math.min(maxKbps, start));
  }

  /** A packet left: `ssrc`/`seq` name it in the receiver's feedback; `now` is this clock (ms). */
  onSent(ssrc: number, seq: number, bytes: number, now: number): void {
    this.sent.onSent(ssrc, seq, bytes, now);
    const p = this.probe;
    if (p && now >= p.from && now <= p.to && p.packets.size < PROBE_MAX_PACKETS) p.packets.set(`${ssrc}:${seq}`, { at: now, bytes });
  }

  /**
   * The rate (kbit/s) to probe at now, else undefined: a limit is known, there is room, the last
   * probe is read, and the estimate is below the maximum. The caller sends padding up to it for
   * PROBE_MS and calls startProbe first.
   */
  probeDue(now: number): number | undefined {
    if (this.probe || !this.lastDecrease || this.state !== 'room' || now < this.nextProbeAt) return undefined;
    if (this.estimateKbps >= this.maxKbps * PROBE_TOP) return undefined;
    return Math.min(this.maxKbps, this.estimateKbps * (this.chainFrom === undefined ? PROBE_GAIN_FIRST : PROBE_GAIN));
  }

  /** A probe's packets leave from `now` for `ms`: what feedback says of them is read as one. */
  startProbe(now: number, ms = PROBE_MS): void {
    this.probe = { from: now, to: now + ms, packets: new Map() };
    this.quietFrom = now;
    this.quietUntil = now + 2 * ms;
    this.probes++;
    this.chainFrom ??= this.estimateKbps;
  }

  /**
   * True once after a chain of probes measured the path: the estimate is what they found there,
   * and the encoder may follow it at once (RetargetPolicy) instead of waiting for room to last.
   */
  takeProbed(): boolean {
    const probed = this.probed;
    this.probed = false;
    return probed;
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
    let drainQueue = Infinity;
    let lost = 0;
    let total = 0;
    let drained = 0;
    let newestSendAt = -Infinity;
    // This report's arrivals (receiver's clock): through a standing queue they come at the path's rate.
    const report = { bytes: 0, first: Infinity, last: -Infinity, firstBytes: 0 };
    for (const s of fb.streams) {
      for (let k = 0; k < s.packets.length; k++) {
        const seq = seqAdd(s.beginSeq, k);
        const sent = this.sent.find(s.ssrc, seq);
        if (!sent || sent.at < notBefore) continue; // not ours, too old to remember, or not read
        const sentAt = sent.at;
        const p = s.packets[k];
        // A probe's packets: their arrivals are the probe's to read, their queue and loss its own doing.
        const probed = this.probe?.packets.get(`${s.ssrc}:${seq}`);
        // Sent while the probe's queue drains: what they meet is the probe's doing too.
        const quiet = probed !== undefined || (sentAt >= this.quietFrom && sentAt <= this.quietUntil);
        const draining = !quiet && this.drain !== undefined && sentAt > this.drain.afterSentAt && sentAt <= this.drain.untilSentAt;
        // Sent before the last decrease: whatever befell it, that decrease answered it (a loss is
        // reported only once a later packet arrives, so some come after it).
        const answered = sentAt <= this.lastDecreaseSentAt;
        newestSendAt = Math.max(newestSendAt, sentAt);
        if (draining) drained++;
        else if (!quiet && !answered) total++;
        if (!p.received) {
          if (!quiet && !draining && !answered) lost++;
          continue;
        }
        if (p.ato >= ATO_OVER_RANGE) continue;
        const arrival = rtsMs - (p.ato * 1000) / ATO_UNITS_PER_S;
        const raw = mod(arrival - sentAt, WRAP_MS);
        this.origin ??= raw;
        const owd = mod(raw - this.origin + WRAP_MS / 2, WRAP_MS) - WRAP_MS / 2;
        this.noteBase(owd, now);
        const queue = owd - this.base();
        if (probed) probed.arrival = sentAt + owd;
        if (draining) drainQueue = Math.min(drainQueue, queue);
        else if (!quiet && sentAt > this.lastDecreaseSentAt) minQueue = Math.min(minQueue, queue);
        // Arrival on a wrap-free clock: our send time plus the one-way delay (offset included).
        this.acked.push({ at: sentAt + owd, bytes: sent.bytes, rx: now });
        report.bytes += sent.bytes;
        if (sentAt + owd < report.first) [report.first, report.firstBytes] = [sentAt + owd, sent.bytes];
        report.last = Math.max(report.last, sentAt + owd);
      }
    }
    if (this.probe && (newestSendAt > this.probe.to || now > this.probe.to + PROBE_WAIT_MS)) this.readProbe(now);
    if (total === 0 && drained === 0) return this.estimateKbps;
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
    if (minQueue !== Infinity || drainQueue !== Infinity) this.queueDelayMs = Math.max(0, Math.min(minQueue, drainQueue));
    const dt = this.lastUpdateAt === undefined ? 0 : Math.max(0, now - this.lastUpdateAt);
    this.lastUpdateAt = now;

    const drainGrew = this.drain !== undefined && drainQueue !== Infinity && drainQueue > this.drain.queueMs + CC_QUEUE_LOW_MS;
    const overQueue = (minQueue !== Infinity && minQueue > CC_QUEUE_HIGH_MS) || drainGrew;
    // Loss with a standing queue is a small router buffer overflowing: congestion even below
    // CC_LOSS_HIGH. Loss without a queue is the medium (radio), and is not answered by slowing down.
    const queued = minQueue !== Infinity && minQueue > CC_QUEUE_LOSSY_MS;
    const overLoss = (this.loss > CC_LOSS_HIGH || (queued && this.loss > CC_LOSS_LOW)) && newestSendAt > this.lastDecreaseSentAt;
    if (overQueue || overLoss) {
      // What arrived over this report, once it spans enough to say: the acknowledged rate's window
      // still holds the time before the queue, when the path may have been wider (a link that
      // just narrowed), and each decrease from it would be one round trip more of overflow.
      const span = report.last - report.first;
      const delivered = Math.min(this.ackedKbps, span >= CC_REPORT_SPAN_MS ? ((report.bytes - report.firstBytes) * 8) / span : Infinity);
      const byRate = CC_DECREASE * delivered;
      const byLoss = this.estimateKbps * (1 - this.loss / 2);
      // A queue, or loss so heavy the queue overflows: just below what the path delivered. Lighter
      // loss: GCC's loss-based cut, never below that.
      const next = overQueue || this.loss > CC_LOSS_HEAVY ? byRate : Math.max(byRate, byLoss);
      this.estimateKbps = this.clamp(Math.min(this.estimateKbps, next));
      this.state = overQueue ? 'queue' : 'loss';
      // The known limit: for a sender that probes, what arrived through the queue (its pacer keeps
      // under it); otherwise the acknowledged rate, which its slow growth then approaches.
      this.lastDecrease = { why: this.state, queueDelayMs: this.queueDelayMs, loss: this.loss, ackedKbps: this.probing ? delivered : this.ackedKbps };
      this.decreases++;
      this.lastDecreaseSentAt = newestSendAt;
      this.drain = { afterSentAt: newestSendAt, untilSentAt: now + Math.min(CC_DRAIN_MAX_MS, this.queueDelayMs / (1 - CC_DECREASE)), queueMs: this.queueDelayMs };
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
      // A sender that probes grows by probes past the known limit (or once it is forgotten), not by creeping.
      if (this.probing && limit !== undefined) next = Math.min(next, Math.max(this.estimateKbps, Number.isFinite(limit) ? limit : 0));
      this.estimateKbps = this.clamp(next);
      this.state = 'room';
    } else {
      this.state = 'hold';
    }
    return this.estimateKbps;
  }

  /**
   * The probe is over and reported (a later packet was): how it arrived sets the estimate. Its
   * packets not reported by now were lost (the path is FIFO: a later one was).
   */
  private readProbe(now: number): void {
    const packets = [...this.probe!.packets.values()];
    this.probe = undefined;
    const got = packets.filter((p) => p.arrival !== undefined).sort((a, b) => a.arrival! - b.arrival!);
    // Each rate over its span: the first packet's bytes opened the span, so they do not count.
    const rate = (list: Array<{ bytes: number }>, first: number, last: number) =>
      ((list.reduce((n, p) => n + p.bytes, 0) - list[0].bytes) * 8) / Math.max(1, last - first);
    if (packets.length < PROBE_MIN_PACKETS || got.length < 2) {
      this.endChain(now, false); // measured nothing: not a finding either way
      return;
    }
    const sendKbps = rate(packets, packets[0].at, packets.at(-1)!.at);
    // The first arrivals may have passed a bottleneck's token bucket at line rate (a 10 ms bucket
    // makes a 60 ms probe look 15% faster at a full link): the rate is read after them.
    const settled = got.slice(Math.floor(got.length / PROBE_SKIP_DIVISOR));
    const recvKbps = settled.length >= 2 ? rate(settled, settled[0].arrival!, settled.at(-1)!.arrival!) : rate(got, got[0].arrival!, got.at(-1)!.arrival!);
    // A queue that grew over the probe says the same as a slower arrival, and is not fooled by
    // arrivals that came bunched (a receiver's or a proxy's timers).
    const last = got.at(-1)!;
    const grew = last.arrival! - last.at - Math.min(...got.map((p) => p.arrival! - p.at));
    // Media's own bursts queue a packet or so at a full path: that much growth says nothing.
    const noise = PROBE_QUEUE_MS + (PROBE_NOISE_BITS / Math.max(CC_MIN_KBPS, this.estimateKbps));
    const limited = 1 - got.length / packets.length > PROBE_MAX_LOSS || recvKbps < PROBE_RECV_SHARE * sendKbps || grew > noise;
    if (limited) {
      // The probe found the path's rate: the estimate, and the known limit now (what
      // earlier probes of the chain said, higher, was a bucket's burst).
      this.estimateKbps = this.clamp(Math.max(this.chainFrom ?? this.estimateKbps, recvKbps));
      if (this.lastDecrease) this.lastDecrease.ackedKbps = recvKbps;
      this.quietUntil = Math.max(this.quietUntil, now + PROBE_DRAIN_MS);
      this.endChain(now, true);
    } else {
      // The path took it all: that much is known to fit; the next probe goes at once from there.
      this.estimateKbps = this.clamp(Math.max(this.estimateKbps, Math.min(sendKbps, recvKbps)));
      if (this.estimateKbps >= this.maxKbps * PROBE_TOP) this.endChain(now, true);
    }
  }

  private endChain(now: number, measured: boolean): void {
    this.probed = measured;
    // A chain that found much more room may have stopped short (one probe read low): soon again.
    const far = this.chainFrom !== undefined && this.estimateKbps > PROBE_FAR * this.chainFrom;
    this.chainFrom = undefined;
    this.nextProbeAt = now + (far ? PROBE_AGAIN_MS : PROBE_INTERVAL_MS);
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

/**
 * The encoder aims at this share of the estimate: RTP/UDP headers (~6% at 1,200-byte datagrams and
 * small frames), RTCP, probes and the encoder's own overshoot take the rest, with room left for a
 * keyframe to pass without queueing at the bottleneck (at 0.9 a re-target's keyframe on a path
 * measured to the kbit queued 40 ms, read as congestion: a see-saw of re-targets).
 */
export const CC_MEDIA_SHARE = 0.85;
/** A lower estimate re-targets the encoder once it is this far below its target... */
export const RETARGET_DOWN_BELOW = 0.9;
/** ...and at most this often: each re-target starts a fresh encoder run, which costs a keyframe. */
export const RETARGET_DOWN_MIN_MS = 1_000;
/**
 * A cut below this share of the encoder's rate holds the sharer's frames until the new run's
 * keyframe (Publisher.holdForKeyframe): frames at 1.4 × or more of the pace would build a backlog in
 * the pacer faster than it drains.
 */
export const RETARGET_HOLD_BELOW = 0.7;
/** A higher estimate re-targets the encoder once it has stayed this far above its target... */
export const RETARGET_UP_ABOVE = 1.2;
/** ...this long, and this long after the last re-target (hysteresis: no see-saw of keyframes). */
export const RETARGET_UP_AFTER_MS = 3_000;
/**
 * Within RETARGET_UP_AFTER_MS of probes that measured the path, this far above is enough and there
 * is no wait for the room to last: the probes showed it (still at most one re-target per
 * RETARGET_UP_AFTER_MS). Without it, an encoder cut to CC_MEDIA_SHARE × CC_DECREASE of a path
 * would never again be 1.2 × below an estimate that probing holds at the path's rate.
 */
export const RETARGET_UP_PROBED = 1.05;

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
  private probedAt = -Infinity;

  constructor(readonly maxKbps: number) {
    this.targetKbps = maxKbps;
  }

  /**
   * The encoder bitrate to change to now, else undefined. The caller calls commit() once the
   * encoder has taken it (it may be busy starting a keyframe run; then it is asked again later).
   */
  decide(estimateKbps: number, now: number, probed = false): number | undefined {
    return this.decideKbps(estimateKbps * CC_MEDIA_SHARE, now, probed);
  }

  /**
   * As decide(), for an encoder bitrate already worked out (`wantKbps`, capped at the maximum).
   * `probed`: probes just measured the path (CongestionController.takeProbed): the estimate stands on them.
   */
  decideKbps(wantKbps: number, now: number, probed = false): number | undefined {
    const want = Math.min(this.maxKbps, Math.round(wantKbps));
    if (probed) this.probedAt = now;
    if (want < this.targetKbps * RETARGET_DOWN_BELOW) {
      this.aboveSince = undefined;
      return now - this.lastAt < RETARGET_DOWN_MIN_MS ? undefined : want;
    }
    const confirmed = now - this.probedAt <= RETARGET_UP_AFTER_MS && want > this.targetKbps * RETARGET_UP_PROBED;
    if (confirmed || want > this.targetKbps * RETARGET_UP_ABOVE || (want === this.maxKbps && want > this.targetKbps)) {
      this.aboveSince ??= now;
      const lasted = confirmed || now - this.aboveSince >= RETARGET_UP_AFTER_MS;
      return !lasted || now - this.lastAt < RETARGET_UP_AFTER_MS ? undefined : want;
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
/**
 * A layer is paused once what is sent exceeds this share of the estimate: the path cannot carry
 * it (with headers). Between this and the media share (fitKbps) what is sent stays as it is, and
 * the encoder follows in its own time: a re-target aims at the media share, and the next report's
 * estimate, a few % lower as the queue drains, would otherwise pause the top layer it just fitted,
 * moving its viewers for nothing.
 */
export const LAYER_PAUSE_SHARE = 0.95;
/**
 * A re-target aims this far under the media share of the estimate, so every layer fits after it
 * (not by a rounding). Small: the media share already leaves the headers' room, and a layer is
 * paused only past LAYER_PAUSE_SHARE (at 0.95 the step link's media sat at 80% of the link).
 */
const LAYER_RETARGET_MARGIN = 0.99;

/**
 * The sharer's quality layers on its uplink (issue 14, item 2): what is sent fits the estimate
 * first by pausing upper layers, at once and without a keyframe, once what is sent exceeds
 * LAYER_PAUSE_SHARE of the estimate, then by re-targeting the
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
    /**
     * What the sound takes on the path (kbit/s, with its RED copies and headers): it comes off
     * every estimate first, so the picture is fitted to what is left and the sound never waits.
     */
    readonly reservedKbps = 0,
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
  decide(pathKbps: number, now: number, probed = false): { firstActive?: number; retarget?: number } {
    const estimateKbps = Math.max(0, pathKbps - this.reservedKbps);
    const fit = fitKbps(estimateKbps);
    let first = this.firstFitting(estimateKbps * LAYER_PAUSE_SHARE, this.firstActive);
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
    const retarget = this.policy.decideKbps(aim >= this.maxTopKbps ? this.maxTopKbps : aim * LAYER_RETARGET_MARGIN, now, probed);
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
  retargeted(topKbps: number, pathKbps: number, now: number): number {
    this.policy.commit(topKbps, now);
    this.firstActive = this.firstFitting(fitKbps(Math.max(0, pathKbps - this.reservedKbps)), 0);
    this.roomSince = undefined;
    return this.firstActive;
  }
}
