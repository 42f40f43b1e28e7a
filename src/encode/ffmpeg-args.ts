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
import { captureFilters, captureInputArgs, knownCaptureSize, type CaptureOptions } from '../capture/source.ts';
import { JPEG_DIMENSION_UNIT, JPEG_MAX_DIMENSION } from '../codecs/mjpeg/jpeg.ts';

export interface EncodeOptions {
  codec: 'h264' | 'mjpeg';
  /** H.264 encoder: libx264 (default), h264_nvenc, h264_vaapi, h264_qsv, h264_videotoolbox. */
  encoder?: string;
  bitrateKbps: number;
  fps: number;
  /** Keyframe interval in frames. */
  gop: number;
  /**
   * MJPEG quality, FFmpeg -q:v: 2 (best) to 31 (worst). Absent for MJPEG: the encoder picks the
   * quality of each picture so the stream keeps to bitrateKbps.
   */
  quality?: number;
  size?: { width: number; height: number };
}

/**
 * Picture sizes each codec's encoder and payload format can carry: multiples of `unit`, at most
 * `max` each way. 4:2:0 halves the chroma planes, so libx264 (and the GPU encoders) refuse an odd
 * size; RFC 2435 §3.1.5-3.1.6 sends width and height as one byte each in units of 8 pixels.
 */
export const SIZE_RULES = {
  h264: { unit: 2, max: Infinity, what: 'H.264 needs an even width and height' },
  mjpeg: {
    unit: JPEG_DIMENSION_UNIT,
    max: JPEG_MAX_DIMENSION,
    what: `JPEG over RTP (RFC 2435) carries multiples of ${JPEG_DIMENSION_UNIT} up to ${JPEG_MAX_DIMENSION}x${JPEG_MAX_DIMENSION}`,
  },
} as const;

export interface Conformed {
  width: number;
  height: number;
  /** pad: black columns/rows added right and bottom (under one unit); scale: shrunk to fit max. */
  how: 'pad' | 'scale';
}

/** The size a picture of `size` is sent at, or undefined when it fits as it is. */
export function conformSize(codec: EncodeOptions['codec'], size: { width: number; height: number }): Conformed | undefined {
  const { unit, max } = SIZE_RULES[codec];
  const { width: w, height: h } = size;
  if (w % unit === 0 && h % unit === 0 && w <= max && h <= max) return undefined;
  if (w <= max && h <= max) return { width: Math.ceil(w / unit) * unit, height: Math.ceil(h / unit) * unit, how: 'pad' };
  // The longer side becomes max exactly (min picks the constant), so no rounding can cost a unit.
  const fit = (a: number, b: number) => Math.floor(Math.min(max, (a * max) / b) / unit) * unit;
  return { width: fit(w, h), height: fit(h, w), how: 'scale' };
}

/**
 * The -vf stage doing what conformSize says, from each frame's own size (iw, ih) rather than from
 * a size found out beforehand, so it is right whatever the input turns out to deliver. The scale is
 * a pass-through when the size fits (libavfilter skips a same-size scale).
 */
function conformFilter(codec: EncodeOptions['codec']): string[] {
  const { unit, max } = SIZE_RULES[codec];
  const pad = `pad=ceil(iw/${unit})*${unit}:ceil(ih/${unit})*${unit}`;
  if (!Number.isFinite(max)) return [pad];
  const over = `gt(iw,${max})+gt(ih,${max})`;
  const fit = (a: string, b: string) => `if(${over},floor(min(${max},${a}*${max}/${b})/${unit})*${unit},${a})`;
  return [`scale=w='${fit('iw', 'ih')}':h='${fit('ih', 'iw')}'`, pad];
}

/**
 * --size is what the person asked to send, so one the codec cannot carry is refused with the size
 * that would do, rather than changed; other sizes (a screen, a region, a file) are fitted.
 */
function checkRequestedSize(encode: EncodeOptions): void {
  const c = encode.size && conformSize(encode.codec, encode.size);
  if (!encode.size || !c) return;
  const { unit, max } = SIZE_RULES[encode.codec];
  const limit = Number.isFinite(max) ? `at most ${max}x${max} in multiples of ${unit}` : `multiples of ${unit}`;
  throw new UsageError(
    `--codec ${encode.codec} carries ${limit}${encode.codec === 'mjpeg' ? ' (RFC 2435)' : ''}, got --size ${encode.size.width}x${encode.size.height}: ` +
      `pass --size ${c.width}x${c.height}${encode.codec === 'mjpeg' ? ', or use --codec h264' : ''}`,
  );
}

/** The size of the picture handed to the encoder when known: --size, else what the capture delivers. */
export function encodedInputSize(capture: CaptureOptions, encode: EncodeOptions): { width: number; height: number } | undefined {
  return encode.size ?? knownCaptureSize(capture);
}

/** The one log line saying a picture is padded or scaled to fit the codec; undefined when it fits (or --size decides). */
export function sizeNotice(capture: CaptureOptions, encode: EncodeOptions): string | undefined {
  if (encode.size) return undefined; // fits, or refused by checkRequestedSize
  const size = knownCaptureSize(capture);
  const c = size && conformSize(encode.codec, size);
  if (!size || !c) return undefined;
  const done = c.how === 'pad' ? 'padding' : 'scaling';
  return `${SIZE_RULES[encode.codec].what}: ${done} ${size.width}x${size.height} to ${c.width}x${c.height} (--size WxH picks another size)`;
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

/**
 * The -vf chain: cropping the grabber could not do, scaling to --size, fitting the codec's size
 * rules (unless the size is known to fit), VA-API upload.
 */
function videoFilter(capture: CaptureOptions, encode: EncodeOptions, enc: H264Encoder | null): string[] {
  const chain = [...captureFilters(capture)];
  // The test pattern is already generated at --size; anything else is scaled to it.
  if (encode.size && capture.source !== 'test') chain.push(`scale=${encode.size.width}:${encode.size.height}`);
  const size = encodedInputSize(capture, encode);
  if (!size || conformSize(encode.codec, size)) chain.push(...conformFilter(encode.codec));
  if (enc === 'h264_vaapi') chain.push('format=nv12', 'hwupload');
  return chain.length ? ['-vf', chain.join(',')] : [];
}

/** The whole FFmpeg argv for a share, without the binary. */
export function buildShareArgs(capture: CaptureOptions, encode: EncodeOptions): string[] {
  if (!(encode.fps > 0)) throw new UsageError(`--fps must be greater than 0, got ${encode.fps}`);
  checkRequestedSize(encode);
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
    // A fixed quality (-q:v), or FFmpeg's rate control choosing each picture's quality to keep
    // to --bitrate.
    const quality = encode.quality !== undefined ? ['-q:v', String(encode.quality)] : rateArgs(encode.bitrateKbps);
    args.push(
      '-c:v', 'mjpeg', '-huffman', '0', ...quality, '-pix_fmt', 'yuvj420p', '-threads', '1',
      '-f', 'mjpeg', '-flush_packets', '1', 'pipe:1',
    );
  }
  return args;
}
