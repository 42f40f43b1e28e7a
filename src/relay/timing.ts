/**
 * Relay ↔ viewer round trip (RFC 3550 §6.4.1). The relay sends no SRs of its own, so it times the
 * sharer's: it notes when it forwarded each one; a viewer's report block echoes that SR's middle
 * NTP bits (LSR) and how long the viewer held it (DLSR), so RTT = now − forwarded − DLSR, the
 * relay → viewer leg alone (the dashboard's per-viewer RTT).
 */
import type { ReportBlock, SenderReport } from '../transport/rtcp.ts';
import { SHORT_UNITS_PER_S, ntpMiddle32 } from '../transport/ntp.ts';

/** Recent SRs remembered per stream for RTT; RRs echo the latest, so a few seconds' worth is plenty. */
export const SR_HISTORY = 8;

/** When each recent SR of one stream went out to its viewers, by the LSR viewers will echo. */
export class SrTimes {
  private readonly forwarded = new Map<number, number>();

  /** The sharer's SR `sr` went out to the viewers at `now`. */
  forward(sr: SenderReport, now: number): void {
    this.forwarded.set(ntpMiddle32(sr.ntpSec, sr.ntpFrac), now);
    if (this.forwarded.size > SR_HISTORY) this.forwarded.delete(this.forwarded.keys().next().value!);
  }

  /** RTT to the viewer that sent `block` at `now`; undefined unless it echoes an SR we forwarded. */
  rttMs(block: ReportBlock, now: number): number | undefined {
    const sent = block.lsr ? this.forwarded.get(block.lsr) : undefined;
    if (sent === undefined) return undefined;
    return Math.max(0, now - sent - (block.dlsr * 1000) / SHORT_UNITS_PER_S);
  }
}
