/**
 * Seed material for the fuzzers that needs no FFmpeg: H.264 access units, baseline JPEGs and an
 * FLV stream, each written field by field from its standard. Deterministic (a fixed-seed generator
 * fills the slice and scan data), about 50 kB in all, made in a few milliseconds.
 *
 * What it stands in for: x264 and FFmpeg's mjpeg encoder and FLV muxer. The parsers under test read
 * headers, parameter sets, markers, tags and packet framing, never the entropy-coded data, so slices
 * and scans are filler with the byte rules of their format kept (emulation prevention in NAL units,
 * byte stuffing and restart markers in scans). What they cover:
 *
 * - H.264 (ITU-T H.264 §7.3): two SPSs, Baseline 320x240 (pic_order_cnt_type 0) and High 1920x1080
 *   (cropped from 1088, a scaling list, pic_order_cnt_type 1); PPS; SEI; IDR and non-IDR slices
 *   from 30 bytes (aggregated into STAP-A by the packetizer) to 4000 (fragmented into FU-A).
 * - JPEG (T.81 Annex B, as RFC 2435 carries it): 4:2:2 and 4:2:0, with and without a restart
 *   interval, the standard scaled tables (Q 1-99 on the wire) and custom ones (in-band tables).
 * - FLV (Adobe FLV v10.1 Annex E): header, script data, the AVC sequence header, one NALU tag per
 *   access unit, an audio tag to be skipped, end of sequence.
 */
import { NAL_IDR, NAL_PPS, NAL_SEI, NAL_SLICE, NAL_SPS, joinAnnexB } from '../../src/codecs/h264/annexb.ts';
import { annexBToLengthPrefixed, avcConfig } from '../../src/codecs/h264/avc.ts';
import { AC_CHROMA, AC_LUMA, DC_CHROMA, DC_LUMA, scaledQuantTables, type HuffmanSpec } from '../../src/codecs/mjpeg/tables.ts';
import { AVC_END_OF_SEQUENCE, AVC_NALU, AVC_SEQUENCE_HEADER, CODEC_AVC, FRAME_TYPE_KEY, TAG_AUDIO, TAG_SCRIPT, TAG_VIDEO } from '../../src/encode/flv.ts';

/** What the fuzz seeds are made from (bench/fuzz.ts turns them into packets, chunks and streams). */
export interface SeedMaterial {
  /** Access units as NAL units without start codes, in decoding order. */
  accessUnits: Buffer[][];
  /** Whole JPEG files. */
  jpegs: Buffer[];
  /** FLV files of H.264, as FFmpeg's flv muxer writes them to a pipe. */
  flv: Buffer[];
}

/** Lists of both, in order: for seeds from this file and from a real encoder together. */
export function concatMaterial(...all: SeedMaterial[]): SeedMaterial {
  return { accessUnits: all.flatMap((m) => m.accessUnits), jpegs: all.flatMap((m) => m.jpegs), flv: all.flatMap((m) => m.flv) };
}

/** xorshift32: the same filler bytes on every run. */
function filler(seed: number): (n: number) => Buffer {
  let x = seed >>> 0 || 1;
  return (n) => {
    const b = Buffer.alloc(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      b[i] = x & 0xff;
    }
    return b;
  };
}

// ---- H.264 ---------------------------------------------------------------------------------------

/** MSB-first bits with the Exp-Golomb codes of §9.1. */
class RbspWriter {
  private readonly bits: number[] = [];
  u(n: number, v: number): this {
    for (let i = n - 1; i >= 0; i--) this.bits.push(Math.floor(v / 2 ** i) & 1);
    return this;
  }
  /** ue(v): `zeros` zero bits, then v + 1 in zeros + 1 bits. */
  ue(v: number): this {
    const zeros = Math.floor(Math.log2(v + 1));
    return this.u(zeros, 0).u(zeros + 1, v + 1);
  }
  /** se(v), §9.1.1: k > 0 → 2k - 1, k ≤ 0 → -2k. */
  se(v: number): this {
    return this.ue(v > 0 ? 2 * v - 1 : -2 * v);
  }
  /** rbsp_trailing_bits (§7.3.2.11): a stop bit, then zeros to a byte boundary. */
  bytes(): Buffer {
    const bits = [...this.bits, 1];
    while (bits.length % 8) bits.push(0);
    const out = Buffer.alloc(bits.length / 8);
    bits.forEach((b, i) => (out[i >> 3] |= b << (7 - (i & 7))));
    return out;
  }
}

/** §7.4.1: an emulation_prevention_three_byte after every 00 00 that precedes 00-03. */
function escapeRbsp(rbsp: Buffer): Buffer {
  const out: number[] = [];
  let zeros = 0;
  for (const b of rbsp) {
    if (zeros >= 2 && b <= 3) {
      out.push(3);
      zeros = 0;
    }
    out.push(b);
    zeros = b === 0 ? zeros + 1 : 0;
  }
  return Buffer.from(out);
}

/** forbidden_zero_bit 0, nal_ref_idc, nal_unit_type (§7.3.1), then the escaped RBSP. */
function nal(refIdc: number, type: number, rbsp: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(refIdc << 5) | type]), escapeRbsp(rbsp)]);
}

export interface SpsOptions {
  /** profile_idc: 66 Baseline, 77 Main, 100 High. */
  profile: number;
  level: number;
  width: number;
  height: number;
  /** pic_order_cnt_type 0, 1 or 2. */
  pocType: 0 | 1 | 2;
  /** High profiles: one 4x4 scaling list present (covers scaling_list()). */
  scalingList?: boolean;
}

/** HIGH_PROFILES in src/codecs/h264/sps.ts: these carry chroma_format_idc and the rest. */
const CHROMA_FORMAT_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** seq_parameter_set_rbsp() (§7.3.2.1.1), 4:2:0, frames only, no VUI; cropped to `width` x `height`. */
export function sps(o: SpsOptions): Buffer {
  const mbsWide = Math.ceil(o.width / 16);
  const mbsHigh = Math.ceil(o.height / 16);
  const w = new RbspWriter().u(8, o.profile).u(8, 0).u(8, o.level).ue(0); // constraint flags 0, seq_parameter_set_id 0
  if (CHROMA_FORMAT_PROFILES.has(o.profile)) {
    w.ue(1).ue(0).ue(0).u(1, 0); // chroma_format_idc 4:2:0, 8-bit luma and chroma, no transform bypass
    w.u(1, o.scalingList ? 1 : 0); // seq_scaling_matrix_present_flag
    if (o.scalingList) {
      // List 0 present, with delta_scale -8: next_scale 0, so the rest of the list repeats the last
      // scale and no more deltas follow (§7.3.2.1.1.1). Lists 1-7 absent.
      w.u(1, 1).se(-8);
      for (let i = 1; i < 8; i++) w.u(1, 0);
    }
  }
  w.ue(0); // log2_max_frame_num_minus4
  w.ue(o.pocType);
  if (o.pocType === 0) w.ue(2); // log2_max_pic_order_cnt_lsb_minus4
  if (o.pocType === 1) w.u(1, 0).se(0).se(-1).ue(2).se(1).se(2); // delta_pic_order_always_zero, offsets, 2 ref frames in the cycle
  w.ue(1).u(1, 0); // max_num_ref_frames, gaps_in_frame_num_value_allowed_flag
  w.ue(mbsWide - 1).ue(mbsHigh - 1);
  w.u(1, 1).u(1, 1); // frame_mbs_only_flag, direct_8x8_inference_flag
  const cropRight = (mbsWide * 16 - o.width) / 2; // in 4:2:0 chroma units: 2 pixels each
  const cropBottom = (mbsHigh * 16 - o.height) / 2;
  if (cropRight || cropBottom) w.u(1, 1).ue(0).ue(cropRight).ue(0).ue(cropBottom);
  else w.u(1, 0);
  w.u(1, 0); // vui_parameters_present_flag
  return nal(3, NAL_SPS, w.bytes());
}

/** pic_parameter_set_rbsp() (§7.3.2.2): CAVLC, one slice group, default everything. */
function pps(): Buffer {
  const w = new RbspWriter().ue(0).ue(0).u(1, 0).u(1, 0).ue(0); // pps id, sps id, CAVLC, no bottom_field_pic_order, one slice group
  w.ue(0).ue(0).u(1, 0).u(2, 0); // num_ref_idx_l0/l1_default_active_minus1, no weighted prediction
  w.se(0).se(0).se(0); // pic_init_qp_minus26, pic_init_qs_minus26, chroma_qp_index_offset
  w.u(1, 1).u(1, 0).u(1, 0); // deblocking_filter_control_present, constrained_intra_pred, redundant_pic_cnt_present
  return nal(3, NAL_PPS, w.bytes());
}

/** sei_rbsp(): one user_data_unregistered message (payloadType 5), a UUID and a short text. */
function sei(text: string): Buffer {
  const body = Buffer.concat([Buffer.alloc(16, 0x5a), Buffer.from(text)]);
  return nal(0, NAL_SEI, Buffer.concat([Buffer.from([5, body.length]), body, Buffer.from([0x80])]));
}

/**
 * A slice of about `size` bytes: the start of its header (§7.3.3), filler where the macroblocks
 * would be, and rbsp_trailing_bits, so it never ends in a zero byte (Annex B would drop it).
 */
function slice(idr: boolean, frameNum: number, size: number, bytes: (n: number) => Buffer): Buffer {
  // first_mb_in_slice 0, slice_type 7 (I) or 5 (P), pic_parameter_set_id 0, frame_num (4 bits).
  const head = new RbspWriter().ue(0).ue(idr ? 7 : 5).ue(0).u(4, frameNum & 15);
  if (idr) head.ue(0); // idr_pic_id
  const h = head.bytes();
  const rbsp = Buffer.concat([h, bytes(Math.max(0, size - h.length - 2)), Buffer.from([0x80])]);
  return nal(idr ? 3 : 2, idr ? NAL_IDR : NAL_SLICE, rbsp);
}

/**
 * Two GOPs, one per SPS. Each starts with SPS, PPS, SEI (small: one STAP-A) and an IDR slice too
 * big for one packet (FU-A); then P frames of one slice, of several small slices (STAP-A), and of a
 * slice just over and just under the default payload limit.
 */
export function accessUnits(): Buffer[][] {
  const bytes = filler(0x264);
  const gops: SpsOptions[] = [
    { profile: 66, level: 30, width: 320, height: 240, pocType: 0 },
    { profile: 100, level: 40, width: 1920, height: 1080, pocType: 1, scalingList: true },
  ];
  const aus: Buffer[][] = [];
  for (const g of gops) {
    aus.push([sps(g), pps(), sei('udpcast fuzz seed'), slice(true, 0, 4000, bytes)]);
    const pSizes = [[30], [200, 60, 45], [1200], [1100], [2500], [90, 90, 90, 90]];
    pSizes.forEach((sizes, i) => aus.push(sizes.map((n) => slice(false, i + 1, n, bytes))));
  }
  return aus;
}

// ---- JPEG (T.81 Annex B) -------------------------------------------------------------------------

function segment(code: number, body: Buffer | number[]): Buffer {
  const len = body.length + 2;
  return Buffer.concat([Buffer.from([0xff, code, len >> 8, len & 0xff]), Buffer.from(body)]);
}

function dht(tc: number, th: number, s: HuffmanSpec): number[] {
  return [(tc << 4) | th, ...s.bits, ...s.values];
}

/** The four Annex K.3 tables RFC 2435 assumes (FFmpeg's mjpeg with -huffman 0 writes them). */
const STANDARD_DHT = [...dht(0, 0, DC_LUMA), ...dht(1, 0, AC_LUMA), ...dht(0, 1, DC_CHROMA), ...dht(1, 1, AC_CHROMA)];

export interface JpegOptions {
  width: number;
  height: number;
  /** RFC 2435 type 0: Y 2x1 (4:2:2); type 1: Y 2x2 (4:2:0). Chroma 1x1. */
  type: 0 | 1;
  /** DRI: MCUs per restart interval (RFC 2435 types 64 and 65). */
  restartInterval?: number;
  /** [luma, chroma], 64 bytes each in zigzag order; else the Q 50 tables. */
  tables?: [Buffer, Buffer];
  /** Bytes of entropy-coded filler between restart markers. */
  intervalBytes?: number;
}

/**
 * A stuffed scan: filler with every 0xFF followed by 0x00 (T.81 F.1.2.3), cut by RST0-RST7 in turn
 * after each restart interval when there is one.
 */
function scan(o: JpegOptions, bytes: (n: number) => Buffer): Buffer {
  const mcus = Math.ceil(o.width / 16) * Math.ceil(o.height / (o.type === 1 ? 16 : 8));
  const intervals = o.restartInterval ? Math.ceil(mcus / o.restartInterval) : 1;
  const parts: Buffer[] = [];
  for (let i = 0; i < intervals; i++) {
    if (i > 0) parts.push(Buffer.from([0xff, 0xd0 + ((i - 1) % 8)]));
    const raw = bytes(o.intervalBytes ?? 64);
    const stuffed: number[] = [];
    for (const b of raw) stuffed.push(...(b === 0xff ? [0xff, 0x00] : [b]));
    parts.push(Buffer.from(stuffed));
  }
  return Buffer.concat(parts);
}

/** A baseline JFIF file: SOI, APP0, DQT, [DRI], SOF0, DHT, SOS, scan, EOI. */
export function jpeg(o: JpegOptions, bytes = filler(0x2435)): Buffer {
  const [luma, chroma] = o.tables ?? scaledQuantTables(50);
  const parts = [
    Buffer.from([0xff, 0xd8]),
    segment(0xe0, [0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x02, 0x00, 0x00, 0x01, 0x00, 0x01, 0x00, 0x00]), // "JFIF\0" 1.02, 1:1
    segment(0xdb, Buffer.concat([Buffer.from([0x00]), luma, Buffer.from([0x01]), chroma])), // Pq|Tq then 64 entries, twice
  ];
  if (o.restartInterval) parts.push(segment(0xdd, [o.restartInterval >> 8, o.restartInterval & 0xff]));
  const hy = o.type === 1 ? 0x22 : 0x21;
  // SOF0: precision 8, Y, X, 3 components (id, H|V, Tq): Y on table 0, Cb and Cr on table 1.
  parts.push(segment(0xc0, [8, o.height >> 8, o.height & 0xff, o.width >> 8, o.width & 0xff, 3, 1, hy, 0, 2, 0x11, 1, 3, 0x11, 1]));
  parts.push(segment(0xc4, STANDARD_DHT));
  parts.push(segment(0xda, [3, 1, 0x00, 2, 0x11, 3, 0x11, 0, 63, 0])); // 3 components (id, Td|Ta), Ss 0, Se 63, Ah|Al 0
  parts.push(scan(o, bytes), Buffer.from([0xff, 0xd9]));
  return Buffer.concat(parts);
}

export function jpegs(): Buffer[] {
  const bytes = filler(0x2435);
  const custom: [Buffer, Buffer] = [Buffer.from(Array.from({ length: 64 }, (_, i) => i + 1)), Buffer.from(Array.from({ length: 64 }, (_, i) => 200 - i))];
  return [
    jpeg({ width: 320, height: 240, type: 1, intervalBytes: 3000 }, bytes),
    jpeg({ width: 64, height: 48, type: 0, tables: scaledQuantTables(20), intervalBytes: 200 }, bytes),
    jpeg({ width: 160, height: 120, type: 1, restartInterval: 10, intervalBytes: 150 }, bytes),
    jpeg({ width: 640, height: 480, type: 0, restartInterval: 40, tables: custom, intervalBytes: 120 }, bytes),
    jpeg({ width: 2040, height: 8, type: 0, tables: scaledQuantTables(99), intervalBytes: 40 }, bytes),
  ];
}

// ---- FLV (Adobe Flash Video File Format Specification v10.1, Annex E) ---------------------------

/** §E.4.1: TagType, DataSize (UI24), Timestamp (UI24 + extended UI8), StreamID 0; data; PreviousTagSize. */
function tag(type: number, timestampMs: number, data: Buffer): Buffer {
  const h = Buffer.alloc(11);
  h[0] = type;
  h.writeUIntBE(data.length, 1, 3);
  h.writeUIntBE(timestampMs & 0xffffff, 4, 3);
  h[7] = (timestampMs >>> 24) & 0xff;
  const size = Buffer.alloc(4);
  size.writeUInt32BE(11 + data.length);
  return Buffer.concat([h, data, size]);
}

/** §E.4.3.1: FrameType|CodecID, AVCPacketType, CompositionTime (SI24), then the payload. */
function avcTag(timestampMs: number, key: boolean, packetType: number, payload: Buffer, ctsMs = 0): Buffer {
  const head = Buffer.alloc(5);
  head[0] = ((key ? FRAME_TYPE_KEY : 2) << 4) | CODEC_AVC;
  head[1] = packetType;
  head.writeIntBE(ctsMs, 2, 3);
  return tag(TAG_VIDEO, timestampMs, Buffer.concat([head, payload]));
}

/** onMetaData as AMF0 (§E.4.4.1): the string, then an ECMA array with one number. */
function metadata(width: number): Buffer {
  const name = Buffer.from('onMetaData');
  const key = Buffer.from('width');
  const value = Buffer.alloc(8);
  value.writeDoubleBE(width);
  return Buffer.concat([
    Buffer.from([0x02, 0, name.length]), name,
    Buffer.from([0x08, 0, 0, 0, 1, 0, key.length]), key, Buffer.from([0x00]), value,
    Buffer.from([0, 0, 0x09]), // object end
  ]);
}

/**
 * An FLV of the access units at 30 fps: header with the video flag, PreviousTagSize0, metadata,
 * the AVC sequence header from the first keyframe, each access unit as 4-byte length-prefixed NAL
 * units (a B-frame-like composition time on every other one), one AAC-like audio tag to skip, and
 * the end of sequence.
 */
export function flv(aus: Buffer[][]): Buffer {
  const first = avcConfig(joinAnnexB(aus[0]));
  if (!first) throw new Error('the first access unit carries no SPS/PPS');
  const parts = [Buffer.from([0x46, 0x4c, 0x56, 1, 0x01, 0, 0, 0, 9, 0, 0, 0, 0]), tag(TAG_SCRIPT, 0, metadata(first.width))];
  parts.push(avcTag(0, true, AVC_SEQUENCE_HEADER, first.record));
  aus.forEach((au, i) => {
    const key = au.some((n) => (n[0] & 0x1f) === NAL_IDR);
    parts.push(avcTag(Math.round((i * 1000) / 30), key, AVC_NALU, annexBToLengthPrefixed(joinAnnexB(au)), i % 2 ? 33 : 0));
    if (i === 1) parts.push(tag(TAG_AUDIO, 33, Buffer.from([0xaf, 0x01, 0x21, 0x10, 0x04, 0x60])));
  });
  parts.push(avcTag(Math.round((aus.length * 1000) / 30), false, AVC_END_OF_SEQUENCE, Buffer.alloc(0)));
  return Buffer.concat(parts);
}

/** All of the above, with no FFmpeg. */
export function generatedMaterial(): SeedMaterial {
  const aus = accessUnits();
  return { accessUnits: aus, jpegs: jpegs(), flv: [flv(aus)] };
}
