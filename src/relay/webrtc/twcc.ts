/**
 * A browser's congestion feedback, read into the terms the relay's per-viewer layer choice reads
 * (layers.ts, RFC 8888). Browsers report arrivals by transport-wide congestion control
 * (draft-holmer-rmcat-transport-wide-cc-extensions-01): every packet the relay sends them carries
 * a transport-wide sequence number (one counter for picture and sound, given by the peer
 * connection), and about every 50-100 ms the browser says which of them arrived and when, on its
 * own clock. A udpcast viewer says the same by SSRC and sequence number (RFC 8888).
 *
 * So each packet sent is remembered by its transport-wide number as the relay numbered it (its
 * lane's SSRC and sequence number: what the stream's SendLog knows the departure of), for the last
 * TWCC_REMEMBERED of them; a report's arrivals go, under those names, through an ArrivalLog, which
 * makes the RFC 8888 report. The browser's clock becomes the relay's by one offset taken at the
 * first report: the controller reads changes of one-way delay, never its absolute value.
 *
 * A report about numbers not remembered (too old, or never sent) names nothing: counted, ignored.
 */
import type { TransportWideCC } from 'werift';
import { ArrivalLog } from '../../transport/arrivals.ts';
import type { Ccfb } from '../../transport/rtcp.ts';

/** Transport-wide numbers remembered: about 4 s of a 2.5 Mbit/s picture with its sound. */
export const TWCC_REMEMBERED = 4096;
/** The reference time's unit (64 ms) and range (24 bits, signed across a wrap). */
const REFERENCE_US = 64_000;
const REFERENCE_RANGE = 1 << 24;

/** One packet of a report: its transport-wide number, and when it arrived (µs, browser's clock) or undefined (lost). */
export interface TwccArrival {
  tw: number;
  atUs?: number;
}

/**
 * The packets a TWCC report covers, in order from its base number, read from werift's parse of it
 * (its chunks say which arrived, its deltas when, in the order of the arrived ones).
 * `reference`: the report's reference time, unwrapped by the caller (64 ms units).
 */
export function twccArrivals(fb: Pick<TransportWideCC, 'baseSequenceNumber' | 'packetStatusCount' | 'packetChunks' | 'recvDeltas'>, reference: number): TwccArrival[] {
  const statuses: number[] = [];
  for (const c of fb.packetChunks) {
    if (statuses.length >= fb.packetStatusCount) break;
    if ('runLength' in c) for (let i = 0; i < c.runLength && statuses.length < fb.packetStatusCount; i++) statuses.push(c.packetStatus);
    else for (const s of c.symbolList) if (statuses.length < fb.packetStatusCount) statuses.push(s);
  }
  const out: TwccArrival[] = [];
  let at = reference * REFERENCE_US;
  let d = 0;
  for (let i = 0; i < statuses.length; i++) {
    const tw = (fb.baseSequenceNumber + i) & 0xffff;
    // 1: received, small delta; 2: received, large or negative delta; 0: not received (3 is reserved).
    if (statuses[i] !== 1 && statuses[i] !== 2) {
      out.push({ tw });
      continue;
    }
    const delta = fb.recvDeltas[d++];
    if (!delta) break; // fewer deltas than arrivals: a malformed report, read as far as it goes
    at += delta.delta;
    out.push({ tw, atUs: at });
  }
  return out;
}

export interface TwccCounters {
  /** Reports read. */
  reports: number;
  /** Packets reported that the relay did not remember sending (too old, or never its). */
  unknown: number;
}

export class TwccReader {
  readonly counters: TwccCounters = { reports: 0, unknown: 0 };
  private readonly tws = new Int32Array(TWCC_REMEMBERED).fill(-1);
  private readonly ssrcs = new Uint32Array(TWCC_REMEMBERED);
  private readonly seqs = new Uint16Array(TWCC_REMEMBERED);
  private readonly log = new ArrivalLog();
  /** The first report's reference time, and the unwrapped latest. */
  private reference?: number;
  private lastRaw = 0;
  /** Relay clock (ms) minus browser clock (ms), from the first report. */
  private offsetMs?: number;

  /** Packet `ssrc`/`seq` (as the relay numbered it) left with transport-wide number `tw`. */
  sent(tw: number, ssrc: number, seq: number): void {
    const i = tw % TWCC_REMEMBERED;
    this.tws[i] = tw;
    this.ssrcs[i] = ssrc;
    this.seqs[i] = seq;
  }

  /** One TWCC report, read at `now` (relay ms): the RFC 8888 report of the same arrivals, or undefined when it names none the relay sent. */
  read(fb: TransportWideCC, now: number, senderSsrc: number): Ccfb | undefined {
    this.counters.reports++;
    const raw = fb.referenceTime & (REFERENCE_RANGE - 1);
    if (this.reference === undefined) this.reference = raw;
    else {
      let step = (raw - this.lastRaw) & (REFERENCE_RANGE - 1);
      if (step >= REFERENCE_RANGE / 2) step -= REFERENCE_RANGE; // a report older than the last
      this.reference += step;
    }
    this.lastRaw = raw;
    let latest = -Infinity;
    const named: Array<{ ssrc: number; seq: number; atMs: number }> = [];
    for (const a of twccArrivals(fb, this.reference)) {
      if (a.atUs === undefined) continue; // lost: the ArrivalLog reports the hole between arrivals
      const i = a.tw % TWCC_REMEMBERED;
      if (this.tws[i] !== a.tw) {
        this.counters.unknown++;
        continue;
      }
      const atMs = a.atUs / 1000;
      named.push({ ssrc: this.ssrcs[i], seq: this.seqs[i], atMs });
      if (atMs > latest) latest = atMs;
    }
    if (named.length === 0) return undefined;
    this.offsetMs ??= now - latest;
    for (const n of named) this.log.note(n.ssrc, n.seq, n.atMs + this.offsetMs);
    return this.log.report(latest + this.offsetMs, senderSsrc);
  }
}
