/**
 * The whole FFmpeg command line for `udpcast share` (without the binary): capture input, encoder
 * and a container on stdout that lets udpcast see the end of every frame the moment it is written.
 *
 *   ffmpeg [global] [capture input]  [filters] [encoder]             [container on stdout]
 *          -hide_banner …  -f x11grab … -i :0   -vf scale=…  -c:v libx264 …  -f flv -flush_packets 1 pipe:1
 *
 * Why FLV and not raw Annex B for H.264: an Annex B byte stream marks the end of an access unit
 * only by the start of the next one, so a reader of the pipe would hold every frame back a whole
 * frame interval. Each FLV tag states its length up front (Adobe FLV spec v10.1 §E.4.1), so a frame
 * is complete the moment its tag is. MJPEG has its own end marker (EOI), so it goes out as a
 * bare concatenation of JPEGs.
 */
import { UsageError } from '../util/errors.ts';
import { captureFilters, captureInputArgs, type CaptureOptions } from '../capture/source.ts';

export interface EncodeOptions {
  codec: 'h264' | 'mjpeg';
  /** H.264 encoder: libx264 (default), h264_nvenc, h264_vaapi, h264_qsv, h264_videotoolbox. */
  encoder?: string;
  bitrateKbps: number;
  fps: number;
  /** Keyframe interval in frames. */
  gop: number;
  /** MJPEG quality, FFmpeg -q:v: 2 (best) to 31 (worst). */
  quality: number;
  size?: { width: number; height: number };
}

/** Quiet, non-interactive FFmpeg: warnings go to stderr (logged by line), stdin stays ours. */
export const GLOBAL_ARGS = ['-hide_banner', '-loglevel', 'warning', '-nostats', '-nostdin'];

/** Render node VA-API uses when none is named (the first GPU; UDPCAST_VAAPI_DEVICE overrides). */
export const DEFAULT_VAAPI_DEVICE = '/dev/dri/renderD128';

/**
 * Rate-control buffer in seconds of bitrate. A VBV of half a second keeps the encoder's worst-case
 * burst (and so the network queue it causes) short while leaving room for keyframes.
 */
export const VBV_SECONDS = 0.5;

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

/** Rate control shared by every H.264 encoder: a capped bitrate with a short buffer. */
function rateArgs(kbps: number): string[] {
  const buf = Math.max(1, Math.round(kbps * VBV_SECONDS));
  return ['-b:v', `${kbps}k`, '-maxrate', `${kbps}k`, '-bufsize', `${buf}k`];
}

/**
 * Encoder arguments. Every encoder: no B-frames (a B-frame makes the encoder wait for a later
 * picture), a fixed GOP so a lost reference heals, and its own "do not look ahead" switch.
 */
function h264EncoderArgs(enc: H264Encoder, e: EncodeOptions): string[] {
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

/** The -vf chain: cropping the grabber could not do, scaling to --size, VA-API upload. */
function videoFilter(capture: CaptureOptions, encode: EncodeOptions, enc: H264Encoder | null): string[] {
  const chain = [...captureFilters(capture)];
  // The test pattern is already generated at --size; anything else is scaled to it.
  if (encode.size && capture.source !== 'test') chain.push(`scale=${encode.size.width}:${encode.size.height}`);
  if (enc === 'h264_vaapi') chain.push('format=nv12', 'hwupload');
  return chain.length ? ['-vf', chain.join(',')] : [];
}

/** The whole FFmpeg argv for a share, without the binary. */
export function buildShareArgs(capture: CaptureOptions, encode: EncodeOptions): string[] {
  if (!(encode.fps > 0)) throw new UsageError(`--fps must be greater than 0, got ${encode.fps}`);
  const enc = encode.codec === 'h264' ? resolveH264Encoder(encode.encoder) : null;
  if (encode.codec === 'mjpeg' && encode.encoder && encode.encoder !== 'mjpeg') {
    throw new UsageError(`--encoder applies to --codec h264 only; MJPEG always uses FFmpeg's mjpeg encoder`);
  }
  // The test pattern is generated at the output size, so --size reaches the input too.
  const cap: CaptureOptions = capture.source === 'test' && encode.size && !capture.size ? { ...capture, size: encode.size } : capture;

  const args = [...GLOBAL_ARGS];
  if (enc === 'h264_vaapi') {
    // A global option: must precede the input so the hwupload filter finds the device.
    args.push('-vaapi_device', cap.env?.UDPCAST_VAAPI_DEVICE ?? process.env.UDPCAST_VAAPI_DEVICE ?? DEFAULT_VAAPI_DEVICE);
  }
  args.push(...captureInputArgs(cap));
  // Only the first video stream: a custom input may carry audio or subtitles.
  args.push('-map', '0:v:0', '-an', '-sn');
  args.push(...videoFilter(cap, encode, enc));
  args.push('-r', String(encode.fps));

  if (enc) {
    args.push(...h264EncoderArgs(enc, encode));
    // FLV on a pipe cannot seek back to write duration and size; without this flag it warns at exit.
    args.push('-f', 'flv', '-flvflags', 'no_duration_filesize', '-flush_packets', '1', 'pipe:1');
  } else {
    // -huffman 0: the standard Huffman tables (JPEG Annex K.3), the only ones RFC 2435 can signal.
    // yuvj420p: full-range 4:2:0, RFC 2435 type 1. -threads 1: FFmpeg's MJPEG encoder otherwise
    // uses frame threads, which hold back one picture per thread before the first comes out.
    args.push(
      '-c:v', 'mjpeg', '-huffman', '0', '-q:v', String(encode.quality), '-pix_fmt', 'yuvj420p', '-threads', '1',
      '-f', 'mjpeg', '-flush_packets', '1', 'pipe:1',
    );
  }
  return args;
}
