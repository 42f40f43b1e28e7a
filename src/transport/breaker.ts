/**
 * A circuit breaker for one path (RFC 8083): when what is sent persistently does not fit the path,
 * media stops rather than keeping the link (and whoever shares it) congested, and is tried again
 * later. The relay keeps one per viewer, driven by that viewer's receiver reports (one a second
 * with its keepalive); the sharer one for its uplink, driven each second by what the relay's RFC
 * 8888 feedback says. A pure object.
 *
 * Two of RFC 8083's breakers, each after CB_INTERVALS reports in a row:
 * - media timeout (§4.2): media went out, and the receiver's highest sequence number (or count of
 *   packets received) did not move;
 * - congestion (§4.3): the sender sends more than CB_RATE_FACTOR times the rate a TCP flow would
 *   get on that path, from the reported loss and the measured round trip (RFC 5348 §3.1, b = 1,
 *   t_RTO = 4 R, with the reported fraction lost standing in for the loss event rate).
 * The third, RTCP timeout (§4.1), is the relay dropping a viewer silent for VIEWER_TIMEOUT_MS, and
 * the sharer saying its relay is not answering.
 */
import { CB_INTERVALS, CB_RATE_FACTOR, CB_RESUME_MS } from '../defaults.ts';

/** What one receiver report says about the path. */
export interface PathReport {
  /** Fraction of packets lost since the viewer's previous report, 0-1. */
  fractionLost: number;
  /** Extended highest sequence number received. */
  highestSeq: number;
  /** Relay → viewer round trip in ms, when known. */
  rttMs?: number;
}

/** The stream's datagrams and bytes fanned out so far: what each live viewer was sent. */
export interface Sent {
  packets: number;
  bytes: number;
}

/** Bytes a second a TCP flow would get with packets of `packetBytes`, round trip `rttS` and loss `p` (RFC 5348 §3.1). */
export function tcpFriendlyRate(packetBytes: number, rttS: number, p: number): number {
  const tRto = 4 * rttS;
  return packetBytes / (rttS * Math.sqrt((2 * p) / 3) + tRto * 3 * Math.sqrt((3 * p) / 8) * p * (1 + 32 * p * p));
}

const kbps = (bytesPerS: number) => `${Math.round((bytesPerS * 8) / 1000)} kbit/s`;

export class CircuitBreaker {
  /** Set while media to the viewer is stopped: why, since when, and which breaker (§4.2 or §4.3). */
  open?: { why: string; at: number; cause: 'media timeout' | 'congestion' };
  /** Times it stopped media to this viewer. */
  trips = 0;
  private congested = 0;
  private stalled = 0;
  private last?: { at: number; sent: Sent; highestSeq: number };

  /** A report from the viewer; returns why media must stop when the breaker trips now. */
  report(r: PathReport, sent: Sent, now: number): string | undefined {
    const prev = this.last;
    this.last = { at: now, sent: { ...sent }, highestSeq: r.highestSeq };
    if (this.open || !prev || now <= prev.at) return undefined;
    const packets = sent.packets - prev.sent.packets;
    const bytes = sent.bytes - prev.sent.bytes;
    this.stalled = packets > 0 && r.highestSeq === prev.highestSeq ? this.stalled + 1 : 0;
    let why: string | undefined;
    let cause: 'media timeout' | 'congestion' = 'congestion';
    if (r.fractionLost > 0 && r.rttMs !== undefined && packets > 0) {
      const fair = tcpFriendlyRate(bytes / packets, Math.max(r.rttMs, 1) / 1000, r.fractionLost);
      const rate = bytes / ((now - prev.at) / 1000);
      this.congested = rate > CB_RATE_FACTOR * fair ? this.congested + 1 : 0;
      if (this.congested >= CB_INTERVALS) {
        why = `${Math.round(r.fractionLost * 100)}% lost at ${kbps(rate)}, over ${CB_RATE_FACTOR}x what its path carries (${kbps(fair)})`;
      }
    } else {
      this.congested = 0;
    }
    if (this.stalled >= CB_INTERVALS) {
      why = `none of the media sent over ${CB_INTERVALS} reports arrived`;
      cause = 'media timeout';
    }
    if (!why) return undefined;
    this.open = { why, at: now, cause };
    this.trips++;
    this.congested = 0;
    this.stalled = 0;
    return why;
  }

  /** Whether media may be tried again: CB_RESUME_MS after it stopped. */
  mayResume(now: number): boolean {
    return this.open !== undefined && now - this.open.at >= CB_RESUME_MS;
  }

  /** Media flows again; the next reports start a fresh count. */
  resume(): void {
    this.open = undefined;
    this.last = undefined;
  }
}
