/**
 * The receiving half of RFC 8888: notes when each RTP packet arrived and, every report interval,
 * says so to its sender in one congestion control feedback packet (rtcp/feedback.ts, Ccfb). The
 * relay keeps one for its sharer's uplink; the sender's controller (congestion.ts) reads it.
 *
 * Each stream (SSRC) is reported from the first sequence number not yet reported up to the highest
 * that arrived, so a packet missing between two arrivals is reported lost once, and one arriving
 * after its loss was reported (reordered beyond a report interval) is counted `late`, not reported.
 *
 * Limits (each a counter, never memory): at most ARRIVALS_MAX_STREAMS SSRCs (a new one takes the
 * place of the one heard from longest ago: a layer left, a sharer restarted); at most
 * ARRIVALS_MAX_PENDING arrivals a stream between two reports (more are `ignored`); a report covers
 * at most CCFB_MAX_PACKETS sequence numbers over all its streams, so it fits one datagram (a
 * longer gap, a sender restarting its numbering, reports only the newest).
 */
import { ATO_OVER_RANGE, ATO_UNITS_PER_S, type Ccfb, type CcfbStream } from './rtcp.ts';
import { msToNtp, ntpMiddle32 } from './ntp.ts';
import { seqAdd, seqDiff } from '../rtp/seq.ts';
import { rtpMarker, rtpSequence, rtpSsrc } from '../rtp/packet.ts';
import { FEEDBACK_MAX_MS, FEEDBACK_MIN_MS } from '../defaults.ts';

/** SSRCs one log reports on: a sharer's media, FEC and layers fit many times over. */
export const ARRIVALS_MAX_STREAMS = 8;
/** Arrivals a stream keeps between two reports: 100 ms at 40,000 packets/s. */
export const ARRIVALS_MAX_PENDING = 4096;
/** Sequence numbers one report covers, all streams together: 2 bytes each, so a report stays under MAX_DATAGRAM. */
export const CCFB_MAX_PACKETS = 600;

interface StreamLog {
  ssrc: number;
  /** First sequence number not yet reported (undefined before the first report). */
  next?: number;
  /** Arrivals since the last report, as seq and arrival time (ms). */
  seqs: number[];
  times: number[];
  /** When it was last heard from. */
  heardAt: number;
}

export interface ArrivalCounters {
  /** Packets that arrived after a report had called them lost. */
  late: number;
  /** Packets not noted: over ARRIVALS_MAX_PENDING between two reports. */
  ignored: number;
  /** Reports made. */
  reports: number;
}

export class ArrivalLog {
  readonly counters: ArrivalCounters = { late: 0, ignored: 0, reports: 0 };
  private readonly streams: StreamLog[] = [];
  private reportedAt: number;

  constructor(now = 0) {
    this.reportedAt = now;
  }

  /**
   * Notes an RTP packet (its header is clear, encrypted or not) and returns the report when one is
   * due: at the end of a frame (RTP marker) FEEDBACK_MIN_MS after the last report, or once
   * FEEDBACK_MAX_MS have passed.
   */
  arrived(buf: Buffer, now: number, senderSsrc: number): Ccfb | undefined {
    this.note(rtpSsrc(buf), rtpSequence(buf), now);
    // A clock stepped back: start the interval again rather than wait for it to catch up.
    if (now < this.reportedAt) this.reportedAt = now;
    const since = now - this.reportedAt;
    if (since < FEEDBACK_MIN_MS || (since < FEEDBACK_MAX_MS && !rtpMarker(buf))) return undefined;
    this.reportedAt = now;
    return this.report(now, senderSsrc);
  }

  /** One RTP packet of `ssrc` numbered `seq` arrived at `now` (ms, the clock reports are made on). */
  note(ssrc: number, seq: number, now: number): void {
    let s = this.streams.find((x) => x.ssrc === ssrc);
    if (!s) {
      if (this.streams.length >= ARRIVALS_MAX_STREAMS) {
        let oldest = 0;
        for (let i = 1; i < this.streams.length; i++) if (this.streams[i].heardAt < this.streams[oldest].heardAt) oldest = i;
        this.streams.splice(oldest, 1);
      }
      s = { ssrc, seqs: [], times: [], heardAt: now };
      this.streams.push(s);
    }
    s.heardAt = now;
    if (s.next !== undefined && seqDiff(s.next, seq) < 0 && seqDiff(s.next, seq) > -CCFB_MAX_PACKETS) {
      this.counters.late++;
      return;
    }
    if (s.seqs.length >= ARRIVALS_MAX_PENDING) {
      this.counters.ignored++;
      return;
    }
    s.seqs.push(seq);
    s.times.push(now);
  }

  /** Whether anything arrived since the last report. */
  get pending(): boolean {
    return this.streams.some((s) => s.seqs.length > 0);
  }

  /** Forgets a stream (its sender left), so its slot is free for another. */
  forget(ssrc: number): void {
    const i = this.streams.findIndex((s) => s.ssrc === ssrc);
    if (i >= 0) this.streams.splice(i, 1);
  }

  /** The feedback for everything that arrived since the last report; undefined when nothing did. */
  report(now: number, senderSsrc: number): Ccfb | undefined {
    const streams: CcfbStream[] = [];
    let room = CCFB_MAX_PACKETS;
    for (const s of this.streams) {
      if (s.seqs.length === 0) continue;
      // The newest arrival by sequence order, and the earliest still to report.
      let end = s.seqs[0];
      let begin = s.next ?? s.seqs[0];
      for (const q of s.seqs) {
        if (seqDiff(end, q) > 0) end = q;
        if (s.next === undefined && seqDiff(begin, q) < 0) begin = q;
      }
      if (room <= 0) continue; // kept for the next report
      if (seqDiff(begin, end) >= room) begin = seqAdd(end, 1 - room);
      const count = seqDiff(begin, end) + 1;
      const packets: CcfbStream['packets'] = Array.from({ length: count }, () => ({ received: false, ecn: 0, ato: 0 }));
      for (let i = 0; i < s.seqs.length; i++) {
        const at = seqDiff(begin, s.seqs[i]);
        if (at < 0 || at >= count) continue; // older than the window a long gap left
        const ato = Math.round(((now - s.times[i]) * ATO_UNITS_PER_S) / 1000);
        packets[at] = { received: true, ecn: 0, ato: Math.min(ATO_OVER_RANGE, Math.max(0, ato)) };
      }
      streams.push({ ssrc: s.ssrc, beginSeq: begin, packets });
      room -= count;
      s.next = seqAdd(end, 1);
      s.seqs.length = 0;
      s.times.length = 0;
    }
    if (streams.length === 0) return undefined;
    this.counters.reports++;
    const ntp = msToNtp(now);
    return { type: 'ccfb', senderSsrc, streams, reportTimestamp: ntpMiddle32(ntp.sec, ntp.frac) };
  }
}
