/**
 * Motion JPEG (RFC 2435): every picture a baseline JPEG standing alone.
 */
import { DEFAULT_MJPEG_QUALITY, PT_JPEG, VIDEO_CLOCK_RATE } from '../../defaults.ts';
import { UsageError } from '../../util/errors.ts';
import type { Codec } from '../codec.ts';
import { rateArgs } from '../rate.ts';
import { JpegDepacketizer } from './depacketize.ts';
import { JPEG_DIMENSION_UNIT, JPEG_MAX_DIMENSION } from './jpeg.ts';
import { JpegPacketizer } from './packetize.ts';
import { jpegSize } from './size.ts';

export const mjpeg = {
  name: 'mjpeg',
  label: 'MJPEG',
  payloadType: PT_JPEG,
  clockRate: VIDEO_CLOCK_RATE,
  rtpmapName: 'JPEG',
  // RFC 2435 §3.1: the main JPEG header's width and height, in 8-pixel blocks.
  payloadsSize: (payloads) => {
    const p = payloads[0];
    return p && p.length >= 8 && p[6] > 0 && p[7] > 0 ? { width: p[6] * 8, height: p[7] * 8 } : undefined;
  },
  everyFrameKey: true,
  // FFmpeg's -q:v for its mjpeg encoder: 2 (best) to 31 (worst).
  quality: { min: 2, max: 31, default: DEFAULT_MJPEG_QUALITY, otherwise: ', or use --codec h264' },
  // Its rate control saying it cannot reach --bitrate: RateCheck measures that and says it once.
  harmlessFfmpegLines: [/\[mjpeg @ [^\]]*\] rc buffer underflow/],
  // RFC 2435 §3.1.5-3.1.6 sends width and height as one byte each, in units of 8 pixels.
  sizeRule: {
    unit: JPEG_DIMENSION_UNIT,
    max: JPEG_MAX_DIMENSION,
    what: `JPEG over RTP (RFC 2435) carries multiples of ${JPEG_DIMENSION_UNIT} up to ${JPEG_MAX_DIMENSION}x${JPEG_MAX_DIMENSION}`,
    refusal: ' (RFC 2435)',
    otherwise: ', or use --codec h264',
  },
  rawExtensions: ['.mjpeg', '.mjpg'],
  packetizer: ({ payloadLimit }) => {
    const p = new JpegPacketizer({ payloadLimit });
    return { packetize: (units) => p.packetize(units[0]) };
  },
  depacketizer: () => new JpegDepacketizer(),
  startsKeyframe: () => true,
  frameSize: (keyframe) => {
    try {
      return jpegSize(keyframe);
    } catch {
      return undefined; // a size is a nicety: any unreadable header gives none
    }
  },
  ffmpeg: (e) => {
    if (e.encoder && e.encoder !== 'mjpeg') {
      throw new UsageError(`--encoder applies to --codec h264 only; MJPEG always uses FFmpeg's mjpeg encoder`);
    }
    // -huffman 0: the standard Huffman tables (JPEG Annex K.3), the only ones RFC 2435 can signal.
    // yuvj420p: full-range 4:2:0, RFC 2435 type 1. -threads 1: FFmpeg's MJPEG encoder otherwise
    // uses frame threads, which hold back one picture per thread before the first comes out.
    // A fixed quality (-q:v), or FFmpeg's rate control choosing each picture's quality to keep
    // to --bitrate. Each JPEG ends with EOI, so a bare sequence of them needs no container.
    const quality = e.quality !== undefined ? ['-q:v', String(e.quality)] : rateArgs(e.bitrateKbps);
    return {
      global: [],
      filters: [],
      output: ['-c:v', 'mjpeg', '-huffman', '0', ...quality, '-pix_fmt', 'yuvj420p', '-threads', '1', '-f', 'mjpeg', '-flush_packets', '1', 'pipe:1'],
      reader: 'jpeg-sequence',
    };
  },
  // QuickTime's Photo JPEG sample entry is what FFmpeg's mov demuxer reads as MJPEG.
  container: {
    matroskaId: 'V_MJPEG',
    mp4SampleEntry: 'jpeg',
    mp4Brands: [],
    sample: (frame) => frame,
  },
} as const satisfies Codec;
