/**
 * H.264's FFmpeg encoders: which ones udpcast drives, and the low-latency settings of each.
 */
import { UsageError } from '../../util/errors.ts';
import type { EncoderSettings, FfmpegEncoding } from '../codec.ts';
import { rateArgs } from '../rate.ts';

/** Render node VA-API uses when none is named (the first GPU; UDPCAST_VAAPI_DEVICE overrides). */
export const DEFAULT_VAAPI_DEVICE = '/dev/dri/renderD128';

export const H264_ENCODERS = ['libx264', 'h264_nvenc', 'h264_vaapi', 'h264_qsv', 'h264_videotoolbox'] as const;
export type H264Encoder = (typeof H264_ENCODERS)[number];

/** Short names people type (`--encoder nvenc`) → FFmpeg encoder names. */
const ENCODER_ALIASES: Record<string, H264Encoder> = {
  x264: 'libx264',
  libx264: 'libx264',
  software: 'libx264',
  nvenc: 'h264_nvenc',
  h264_nvenc: 'h264_nvenc',
  vaapi: 'h264_vaapi',
  h264_vaapi: 'h264_vaapi',
  qsv: 'h264_qsv',
  h264_qsv: 'h264_qsv',
  videotoolbox: 'h264_videotoolbox',
  h264_videotoolbox: 'h264_videotoolbox',
};

/** `--encoder` value → FFmpeg encoder name; UsageError for anything else. */
export function resolveH264Encoder(name: string | undefined): H264Encoder {
  if (name === undefined || name === '') return 'libx264';
  const e = ENCODER_ALIASES[name.toLowerCase()];
  if (!e) {
    throw new UsageError(`--encoder must be one of ${H264_ENCODERS.join(', ')}, got ${JSON.stringify(name)}`);
  }
  return e;
}

/**
 * Encoder arguments. Every encoder: no B-frames (a B-frame makes the encoder wait for a later
 * picture), a fixed GOP so a lost reference heals, and its own "do not look ahead" switch.
 */
function h264EncoderArgs(enc: H264Encoder, e: EncoderSettings): string[] {
  const common = ['-bf', '0', '-g', String(e.gop), ...rateArgs(e.bitrateKbps)];
  switch (enc) {
    case 'libx264':
      // zerolatency = no lookahead, no frame threads (sliced threads instead), no B-frames.
      return ['-c:v', 'libx264', '-preset', 'ultrafast', '-tune', 'zerolatency', ...common, '-pix_fmt', 'yuv420p'];
    case 'h264_nvenc':
      // p1 + ull: fastest preset, ultra-low-latency tuning; -delay 0 returns each frame at once.
      return ['-c:v', 'h264_nvenc', '-preset', 'p1', '-tune', 'ull', '-zerolatency', '1', '-delay', '0', '-rc', 'cbr', ...common, '-pix_fmt', 'yuv420p'];
    case 'h264_vaapi':
      // Frames are uploaded to the GPU by the hwupload filter (see videoFilter), so no -pix_fmt.
      return ['-c:v', 'h264_vaapi', '-rc_mode', 'CBR', ...common];
    case 'h264_qsv':
      // async_depth 1: hand each frame out before taking the next; no look-ahead.
      return ['-c:v', 'h264_qsv', '-preset', 'veryfast', '-async_depth', '1', '-look_ahead', '0', ...common, '-pix_fmt', 'nv12'];
    case 'h264_videotoolbox':
      // realtime: the encoder must keep up with live input; allow_sw: a Mac without the
      // hardware block still works.
      return ['-c:v', 'h264_videotoolbox', '-realtime', '1', '-allow_sw', '1', ...common, '-pix_fmt', 'yuv420p'];
  }
}

/**
 * The share's H.264 encoding: the chosen encoder, then FLV on stdout. FLV and not raw Annex B: an
 * Annex B stream marks the end of an access unit only by the start of the next, so a reader of the
 * pipe would hold every frame back a whole frame interval; each FLV tag states its length up front
 * (Adobe FLV spec v10.1 §E.4.1), so a frame is whole the moment its tag is.
 */
export function h264Ffmpeg(e: EncoderSettings): FfmpegEncoding {
  const enc = resolveH264Encoder(e.encoder);
  const vaapi = enc === 'h264_vaapi';
  return {
    // A global option: must precede the input so the hwupload filter finds the device.
    global: vaapi ? ['-vaapi_device', e.env?.UDPCAST_VAAPI_DEVICE ?? process.env.UDPCAST_VAAPI_DEVICE ?? DEFAULT_VAAPI_DEVICE] : [],
    // Frames are uploaded to the GPU for VA-API.
    filters: vaapi ? ['format=nv12', 'hwupload'] : [],
    // FLV on a pipe cannot seek back to write duration and size; without this flag it warns at exit.
    output: [...h264EncoderArgs(enc, e), '-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:1'],
    reader: 'flv',
  };
}
