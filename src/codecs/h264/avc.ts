/**
 * What the containers (Matroska, MP4) need from an H.264 access unit: the decoder configuration
 * record that goes in the track header, and the access unit rewritten from Annex B to 4-byte
 * length prefixes. Both containers carry H.264 the ISO/IEC 14496-15 way.
 *
 * AVCDecoderConfigurationRecord (ISO/IEC 14496-15 §5.3.3.1):
 *
 *     configurationVersion = 1          8 bits
 *     AVCProfileIndication              8 bits   (SPS byte 1: profile_idc)
 *     profile_compatibility             8 bits   (SPS byte 2: constraint flags)
 *     AVCLevelIndication                8 bits   (SPS byte 3: level_idc)
 *     111111 lengthSizeMinusOne         8 bits   (we write 3: 4-byte lengths)
 *     111 numOfSequenceParameterSets    8 bits
 *     { 16-bit length, SPS NAL unit } * numOfSequenceParameterSets
 *     numOfPictureParameterSets         8 bits
 *     { 16-bit length, PPS NAL unit } * numOfPictureParameterSets
 *
 * The trailer the standard adds for High profiles (chroma format, bit depths) is left out: FFmpeg,
 * GStreamer and browsers read the parameter sets themselves, and FFmpeg's own writer omitted it
 * for years. The parameter sets also stay in band in every keyframe, so a decoder that joins a
 * stream whose picture size changed still finds them.
 */
import { NAL_PPS, NAL_SPS, nalType, splitAnnexB } from './annexb.ts';
import { spsSize } from './sps.ts';

/** Bytes in each NAL unit's length prefix (lengthSizeMinusOne + 1). */
export const AVC_LENGTH_SIZE = 4;
/** The record's first six bytes, up to and including numOfSequenceParameterSets. */
const RECORD_HEAD_BYTES = 6;
/** '111111' before lengthSizeMinusOne and '111' before numOfSequenceParameterSets (§5.3.3.1). */
const RESERVED_6_BITS = 0xfc;
const RESERVED_3_BITS = 0xe0;
/** An SPS: NAL header, profile_idc, constraint flags, level_idc, then at least one more byte. */
const SPS_MIN_BYTES = 5;
/** Parameter set lengths are 16-bit fields; numOfPictureParameterSets is 8 bits. */
const PARAMETER_SET_MAX_BYTES = 0xffff;
const MAX_PPS = 0xff;
/** Width and height are 16-bit fields in Matroska's PixelWidth (as written) and MP4's tkhd/avc1. */
const MAX_DIMENSION = 0xffff;

export interface AvcConfig {
  /** The AVCDecoderConfigurationRecord, for Matroska's CodecPrivate or MP4's avcC box. */
  record: Buffer;
  width: number;
  height: number;
  /** profile_idc, constraint flags and level_idc: the `avc1.PPCCLL` codec string's bytes. */
  profile: number;
  compatibility: number;
  level: number;
}

/**
 * The configuration of a keyframe's first SPS and its PPSs, or undefined when the access unit
 * carries no SPS/PPS (an encoder that sends them out of band, which ours never does).
 */
export function avcConfig(accessUnit: Buffer): AvcConfig | undefined {
  const nalus = splitAnnexB(accessUnit);
  const sps = nalus.find((n) => nalType(n) === NAL_SPS);
  const ppss = nalus.filter((n) => nalType(n) === NAL_PPS);
  // What the record's fields can hold: 16-bit lengths, an 8-bit PPS count; and a picture size
  // the containers' 16-bit width and height fields carry.
  if (!sps || sps.length < SPS_MIN_BYTES || sps.length > PARAMETER_SET_MAX_BYTES) return undefined;
  if (ppss.length === 0 || ppss.length > MAX_PPS || ppss.some((p) => p.length > PARAMETER_SET_MAX_BYTES)) return undefined;
  const { width, height } = spsSize(sps);
  if (!(width >= 1 && width <= MAX_DIMENSION && height >= 1 && height <= MAX_DIMENSION)) return undefined;
  const size = RECORD_HEAD_BYTES + 2 + sps.length + 1 + ppss.reduce((s, p) => s + 2 + p.length, 0);
  const r = Buffer.alloc(size);
  let o = 0;
  r[o++] = 1; // configurationVersion
  r[o++] = sps[1];
  r[o++] = sps[2];
  r[o++] = sps[3];
  r[o++] = RESERVED_6_BITS | (AVC_LENGTH_SIZE - 1);
  r[o++] = RESERVED_3_BITS | 1; // one SPS
  o = r.writeUInt16BE(sps.length, o);
  o += sps.copy(r, o);
  r[o++] = ppss.length;
  for (const p of ppss) {
    o = r.writeUInt16BE(p.length, o);
    o += p.copy(r, o);
  }
  return { record: r, width, height, profile: sps[1], compatibility: sps[2], level: sps[3] };
}

/** An Annex B access unit as 4-byte length-prefixed NAL units (a new buffer). */
export function annexBToLengthPrefixed(accessUnit: Buffer): Buffer {
  const nalus = splitAnnexB(accessUnit);
  let size = 0;
  for (const n of nalus) size += AVC_LENGTH_SIZE + n.length;
  const out = Buffer.allocUnsafe(size);
  let o = 0;
  for (const n of nalus) {
    o = out.writeUInt32BE(n.length, o);
    o += n.copy(out, o);
  }
  return out;
}
