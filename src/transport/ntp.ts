/**
 * NTP timestamps as RTCP carries them (RFC 3550 §4, format of RFC 5905 §6): 32 bits of seconds
 * since 1900-01-01 and 32 bits of binary fraction.
 *
 *     0                   1                   2                   3
 *     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                            Seconds                            |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *    |                            Fraction                           |
 *    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 *
 * The seconds field wraps on 2036-02-07 (the end of era 0). Like SNTP (RFC 4330 §3) we read a
 * seconds value with its top bit clear as era 1, so times 1968-2104 convert both ways; inside
 * 1968-2036 this is plain era 0.
 */
import type { ReportBlock } from './rtcp.ts';
import { tsAdd, tsDiff } from '../rtp/seq.ts';

/** Seconds from 1900-01-01 (NTP epoch) to 1970-01-01 (Unix epoch): 70 years with 17 leap days. */
export const NTP_UNIX_OFFSET_S = 2_208_988_800;
/** One NTP fraction unit is 2^-32 s. */
export const NTP_FRAC_PER_S = 0x100000000;
/** Seconds in one NTP era (2^32). */
export const NTP_ERA_S = 0x100000000;
/** Seconds values below this (top bit clear) are read as era 1, per RFC 4330 §3. */
const ERA_PIVOT = 0x80000000;
/** LSR, DLSR and round-trip times count 1/65536 s (RFC 3550 §6.4.1). */
export const SHORT_UNITS_PER_S = 65536;

/** Unix milliseconds (may be fractional) → NTP seconds and fraction, rounded to the nearest 2^-32 s. */
export function msToNtp(unixMs: number): { sec: number; frac: number } {
  let whole = Math.floor(unixMs / 1000);
  let frac = Math.round(((unixMs - whole * 1000) / 1000) * NTP_FRAC_PER_S);
  if (frac >= NTP_FRAC_PER_S) {
    // Rounding carried into the next second.
    frac -= NTP_FRAC_PER_S;
    whole += 1;
  }
  const sec = (((whole + NTP_UNIX_OFFSET_S) % NTP_ERA_S) + NTP_ERA_S) % NTP_ERA_S;
  return { sec, frac };
}

/** NTP seconds and fraction → Unix milliseconds (fractional; not rounded). */
export function ntpToMs(sec: number, frac: number): number {
  const s = sec < ERA_PIVOT ? sec + NTP_ERA_S : sec;
  return (s - NTP_UNIX_OFFSET_S) * 1000 + (frac / NTP_FRAC_PER_S) * 1000;
}

/** The middle 32 bits of a 64-bit NTP timestamp: the LSR field of RFC 3550 §6.4.1. */
export function ntpMiddle32(sec: number, frac: number): number {
  return (((sec & 0xffff) << 16) | (frac >>> 16)) >>> 0;
}

/**
 * Round-trip time from a report block about our own SRs, RFC 3550 §6.4.1:
 * RTT = A - LSR - DLSR, all in 1/65536 s, where A is when the block arrived (middle 32 bits of
 * its NTP time). Undefined when LSR is 0 (the receiver has had no SR from us yet). The fields
 * are mod 2^32, so the subtraction goes through seq.ts; a slightly negative result (rounding of
 * the 1/65536 s fields on a very short path) reads as 0.
 */
export function rttMs(block: ReportBlock, arrivalUnixMs: number): number | undefined {
  if (block.lsr === 0) return undefined;
  const { sec, frac } = msToNtp(arrivalUnixMs);
  const a = ntpMiddle32(sec, frac);
  const units = tsDiff(tsAdd(block.lsr, block.dlsr), a);
  return (Math.max(0, units) * 1000) / SHORT_UNITS_PER_S;
}
