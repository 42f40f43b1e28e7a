/**
 * Which H.264 format a browser offers can take the stream as the sharer encoded it (RFC 6184 §8.1,
 * §8.2.2). The relay forwards the picture without transcoding, so the browser's decoder must read
 * the stream's profile, and the format must allow FU-A and STAP-A (packetization-mode=1), which
 * the sharer's packetizer sends.
 *
 * Chromium 156 (Debian) offers 42001f, 42e01f, 4d001f and f4001f, each in mode 1 and 0, all with
 * level-asymmetry-allowed=1 (so the level is not a limit on what the relay sends).
 */
import type { OfferedFormat } from '../codec.ts';

/**
 * profile_idc values (H.264 Annex A) in the order each decoder reads the one before: Baseline;
 * Main and Extended; High; High 4:4:4 Predictive.
 */
const PROFILE_RANK: Record<number, number> = { 0x42: 0, 0x4d: 1, 0x58: 1, 0x64: 2, 0xf4: 3 };
/** constraint_set1_flag (§7.4.2.1.1): a constrained Baseline stream, which Main and High decoders read too. */
const CONSTRAINT_SET1 = 0x40;
/** RFC 6184 §8.1: profile-level-id when the offer has none (Baseline, level 1). */
const DEFAULT_PROFILE_LEVEL_ID = '42000a';

/** `sps`: the stream's, from the relay's cached keyframe. */
export function h264WebrtcFormat(offered: readonly OfferedFormat[], sps: Buffer | undefined): number | undefined {
  // Without an SPS in the cache, a constrained Baseline stream is the likeliest (x264 ultrafast).
  const profile = sps && sps.length >= 3 ? sps[1] : 0x42;
  const constrained = sps && sps.length >= 3 ? (sps[2] & CONSTRAINT_SET1) !== 0 : true;
  const needRank = profile === 0x42 && constrained ? 0 : (PROFILE_RANK[profile] ?? Infinity);
  let best: { pt: number; score: number } | undefined;
  for (const f of offered) {
    if (f.name !== 'h264' || f.clockRate !== 90000 || f.fmtp.get('packetization-mode') !== '1') continue;
    const offeredProfile = parseInt((f.fmtp.get('profile-level-id') ?? DEFAULT_PROFILE_LEVEL_ID).slice(0, 2), 16);
    const rank = PROFILE_RANK[offeredProfile];
    if (rank === undefined || rank < needRank) continue;
    // The stream's own profile first (constrained Baseline as constrained Baseline), then the least decoder that reads it.
    const offeredConstrained = (parseInt((f.fmtp.get('profile-level-id') ?? DEFAULT_PROFILE_LEVEL_ID).slice(2, 4), 16) & CONSTRAINT_SET1) !== 0;
    const score = (offeredProfile === profile ? 0 : 10) + rank + (offeredConstrained === constrained ? 0 : 0.5);
    if (!best || score < best.score) best = { pt: f.payloadType, score };
  }
  return best?.pt;
}
