/**
 * H.264 (RFC 6184, packetization-mode 1: single NAL units, STAP-A and FU-A).
 */
import { PT_H264, VIDEO_CLOCK_RATE } from '../../defaults.ts';
import { unlessMalformed } from '../../util/errors.ts';
import type { Codec } from '../codec.ts';
import { FU_START, NAL_AUD, NAL_FU_A, NAL_IDR, NAL_PPS, NAL_SPS, NAL_STAP_A, NAL_TYPE_MASK, nalType, splitAnnexB } from './annexb.ts';
import { spsSize } from './sps.ts';
import { annexBToLengthPrefixed, avcConfig } from './avc.ts';
import { H264Depacketizer } from './depacketize.ts';
import { h264Ffmpeg } from './ffmpeg.ts';
import { H264Packetizer } from './packetize.ts';
import { h264WebrtcFormat } from './webrtc.ts';

/**
 * Whether an RTP payload begins a keyframe: an SPS or IDR in a single-NAL packet, in a STAP-A, or
 * at the start of an FU-A (RFC 6184 §5.6-5.8).
 */
export function h264StartsKeyframe(p: Buffer): boolean {
  if (p.length === 0) return false;
  const type = p[0] & NAL_TYPE_MASK;
  if (type === NAL_SPS || type === NAL_IDR) return true;
  if (type === NAL_FU_A) return p.length > 1 && (p[1] & FU_START) !== 0 && (p[1] & NAL_TYPE_MASK) === NAL_IDR;
  if (type === NAL_STAP_A) {
    for (let i = 1; i + 2 < p.length; ) {
      const size = p.readUInt16BE(i);
      const t = p[i + 2] & NAL_TYPE_MASK;
      if (t === NAL_SPS || t === NAL_IDR) return true;
      i += 2 + size;
    }
  }
  return false;
}

/** The NAL unit types an RTP payload carries at its start (a STAP-A's every unit; an FU-A's only at its first fragment). */
function startingNals(p: Buffer): number[] {
  if (p.length === 0) return [];
  const type = p[0] & NAL_TYPE_MASK;
  if (type === NAL_FU_A) return p.length > 1 && (p[1] & FU_START) !== 0 ? [p[1] & NAL_TYPE_MASK] : [];
  if (type !== NAL_STAP_A) return [type];
  const types: number[] = [];
  for (let i = 1; i + 2 < p.length; i += 2 + p.readUInt16BE(i)) types.push(p[i + 2] & NAL_TYPE_MASK);
  return types;
}

/**
 * sprop-parameter-sets (RFC 6184 §8.1) sent in-band: one STAP-A of the SPS and PPS in front of
 * every IDR picture (a new RTP timestamp) that does not bring an SPS of its own. Undefined when the
 * fmtp has no SPS and PPS, or they would not fit in `maxPayload`.
 */
function h264InBandConfig(fmtp: string, maxPayload: number): ((payload: Buffer, timestamp: number) => Buffer[]) | undefined {
  const sprop = /(?:^|;)\s*sprop-parameter-sets=([^;\s]+)/i.exec(fmtp)?.[1];
  const sets = (sprop ?? '').split(',').map((b) => Buffer.from(b, 'base64')).filter((n) => n.length > 0 && n.length <= 0xffff);
  if (!sets.some((n) => nalType(n) === NAL_SPS) || !sets.some((n) => nalType(n) === NAL_PPS)) return undefined;
  const nri = Math.max(...sets.map((n) => n[0] & 0x60));
  const stap = Buffer.concat([Buffer.from([nri | NAL_STAP_A]), ...sets.flatMap((n) => [Buffer.from([n.length >> 8, n.length & 0xff]), n])]);
  if (stap.length > maxPayload) return undefined;
  // The picture being read (its RTP time): whether an SPS came with it, and whether it has its sets.
  let picture: number | undefined;
  let configured = false;
  return (payload, timestamp) => {
    if (timestamp !== picture) {
      picture = timestamp;
      configured = false;
    }
    const types = startingNals(payload);
    if (types.includes(NAL_SPS)) configured = true;
    if (!types.includes(NAL_IDR) || configured) return [];
    configured = true; // its further slices get nothing
    return [stap];
  };
}

export const h264 = {
  name: 'h264',
  label: 'H.264',
  payloadType: PT_H264,
  clockRate: VIDEO_CLOCK_RATE,
  rtpmapName: 'H264',
  fmtp: ({ profileLevelId, spropParameterSets }) => {
    const fmtp = ['packetization-mode=1'];
    if (profileLevelId) fmtp.push(`profile-level-id=${profileLevelId}`);
    if (spropParameterSets) fmtp.push(`sprop-parameter-sets=${spropParameterSets}`);
    return fmtp.join(';');
  },
  sdpParams: (payloads) => {
    const { sps, pps } = parameterSets(payloads);
    return {
      profileLevelId: sps && sps.length >= 4 ? sps.subarray(1, 4).toString('hex') : undefined,
      spropParameterSets: sps && pps ? `${sps.toString('base64')},${pps.toString('base64')}` : undefined,
    };
  },
  inBandConfig: h264InBandConfig,
  webrtcFormat: (offered, payloads) => h264WebrtcFormat(offered, parameterSets(payloads).sps),
  payloadsSize: (payloads) => {
    const { sps } = parameterSets(payloads);
    try {
      return sps && spsSize(sps);
    } catch {
      return undefined; // a size is a nicety: any unreadable SPS gives none
    }
  },
  // nal_unit_type 9, then primary_pic_type 7 (any slice type may follow) and the stop bit.
  nextPictureDelimiter: Buffer.from([NAL_AUD, 0b1111_0000]),
  everyFrameKey: false,
  // 4:2:0 halves the chroma planes, so libx264 (and the GPU encoders) refuse an odd size.
  sizeRule: { unit: 2, max: Infinity, what: 'H.264 needs an even width and height' },
  rawExtensions: ['.h264', '.264'],
  packetizer: ({ payloadLimit }) => new H264Packetizer({ payloadLimit }),
  depacketizer: () => new H264Depacketizer(),
  startsKeyframe: h264StartsKeyframe,
  frameSize: (keyframe) => {
    try {
      const sps = splitAnnexB(keyframe).find((n) => nalType(n) === NAL_SPS);
      return sps && spsSize(sps);
    } catch {
      return undefined; // a size is a nicety: any unreadable SPS gives none
    }
  },
  ffmpeg: h264Ffmpeg,
  // ISO/IEC 14496-15: avcC in the track header, NAL units with 4-byte lengths in the samples.
  container: {
    matroskaId: 'V_MPEG4/ISO/AVC',
    mp4SampleEntry: 'avc1',
    mp4Brands: ['avc1'],
    config: (keyframe) => {
      const c = unlessMalformed(() => avcConfig(keyframe), undefined);
      return c ? { record: c.record, box: 'avcC' } : null;
    },
    sample: (frame) => unlessMalformed(() => annexBToLengthPrefixed(frame), undefined),
  },
} as const satisfies Codec;

/** The SPS and PPS among RTP payloads: single NAL units or STAP-A (RFC 6184 §5.6, §5.7.1). */
export function parameterSets(payloads: readonly Buffer[]): { sps?: Buffer; pps?: Buffer } {
  const out: { sps?: Buffer; pps?: Buffer } = {};
  const take = (nal: Buffer) => {
    const type = nal[0] & 0x1f;
    if (type === 7) out.sps ??= Buffer.from(nal);
    if (type === 8) out.pps ??= Buffer.from(nal);
  };
  for (const payload of payloads) {
    if (payload.length === 0) continue;
    if ((payload[0] & 0x1f) !== 24) {
      take(payload);
      continue;
    }
    for (let at = 1; at + 2 <= payload.length; ) {
      const size = payload.readUInt16BE(at);
      if (size === 0 || at + 2 + size > payload.length) break;
      take(payload.subarray(at + 2, at + 2 + size));
      at += 2 + size;
    }
  }
  return out;
}
