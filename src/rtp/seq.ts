/**
 * Wraparound arithmetic for RTP's 16-bit sequence numbers and 32-bit timestamps
 * (RFC 3550 §5.1 and A.1). Every comparison of sequence numbers or timestamps in udpcast goes
 * through here, so the 65535 → 0 edge is handled once.
 */

export const SEQ_MOD = 0x10000;
export const TS_MOD = 0x100000000;

/** (a + n) mod 2^16. */
export function seqAdd(a: number, n: number): number {
  return (((a + n) % SEQ_MOD) + SEQ_MOD) % SEQ_MOD;
}

/** Signed distance b - a in [-32768, 32767]: positive when b is after a. */
export function seqDiff(a: number, b: number): number {
  const d = (b - a) & 0xffff;
  return d >= 0x8000 ? d - SEQ_MOD : d;
}

/** True when b comes after a in 16-bit sequence space. */
export function seqGt(b: number, a: number): boolean {
  return seqDiff(a, b) > 0;
}

/** (a + n) mod 2^32. */
export function tsAdd(a: number, n: number): number {
  return (((a + n) % TS_MOD) + TS_MOD) % TS_MOD;
}

/** Signed distance b - a of two 32-bit timestamps, in [-2^31, 2^31). */
export function tsDiff(a: number, b: number): number {
  const d = (b - a) >>> 0;
  return d >= 0x80000000 ? d - TS_MOD : d;
}

/** True when timestamp b is after a. */
export function tsGt(b: number, a: number): boolean {
  return tsDiff(a, b) > 0;
}
