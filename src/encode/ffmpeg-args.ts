/**
 * The whole FFmpeg command line for `udpcast share` (without the binary): capture input, encoder
 * and a container on stdout that lets udpcast see the end of every frame the moment it is written.
 *
 *   ffmpeg [global] [capture input]  [filters] [encoder]             [container on stdout]
 *          -hide_banner …  -f x11grab … -i :0   -vf scale=…  -c:v libx264 …  -f flv -flush_packets 1 pipe:1
 *
 * The encoder, its global options and filters and the container on stdout are the codec's
 * (Codec.ffmpeg in src/codecs/NAME/codec.ts): FLV for H.264, whose tags state their length so a frame
 * is whole the moment its tag is; bare JPEGs for MJPEG, each ending with EOI.
 */
import { AUDIO_FRAME_MS_DEFAULT } from '../defaults.ts';
import { UsageError } from '../util/errors.ts';
import { captureFilters, captureInputArgs, knownCaptureSize, type CaptureOptions } from '../capture/source.ts';
import { AUDIO_RATE, audioInputArgs, testFlashFilter, type AudioSource } from '../capture/audio.ts';
import { codec, type CodecName } from '../codecs/registry.ts';

export interface EncodeOptions {
  codec: CodecName;
  /** --encoder: the FFmpeg encoder, for a codec that has a choice (H.264: libx264, h264_nvenc, …). */
  encoder?: string;
  bitrateKbps: number;
  fps: number;
  /** Keyframe interval in frames. */
  gop: number;
  /**
   * A fixed quality, FFmpeg -q:v: 2 (best) to 31 (worst), for a codec that takes one (MJPEG). Absent:
   * the encoder picks the quality of each picture so the stream keeps to bitrateKbps.
   */
  quality?: number;
  size?: { width: number; height: number };
  /**
   * Quality layers (simulcast) from one capture: 1 (default) to LAYERS_MAX. Layer i is the picture
   * scaled down LAYER_SCALES[i] times at LAYER_SHARES[i] × bitrateKbps, each its own output pipe
   * (layer 0 on stdout, layer i on fd 2 + i), all with the same GOP from the same frames, so their
   * keyframes fall on the same pictures.
   */
  layers?: number;
  /** Sound (--audio), encoded as Opus into an Ogg stream on its own pipe (audioFd), from the same FFmpeg as the picture. */
  audio?: AudioEncoding;
}

export interface AudioEncoding {
  source: AudioSource;
  bitrateKbps: number;
  /** Sound per Opus packet, ms (AUDIO_FRAME_CHOICES); AUDIO_FRAME_MS_DEFAULT when not given. */
  frameMs?: number;
}

/**
 * The Opus encoder, by frame length (AudioEncoding.frameMs):
 * - 20 ms: RFC 7587's usual packet, the `audio` application (SILK and hybrid modes for speech);
 * - 10 ms: `lowdelay`, CELT only: half the wait for a packet's samples and the shortest lookahead
 *   (the default: see defaults.ts and the lipsync benchmark).
 * No in-band FEC (RFC 6716 §2.1.7): RED repairs loss (codecs/opus/red.ts), and FFmpeg 5.1's own
 * Opus decoder, ffplay's, garbles stereo coded with it (a 660 Hz tone at -24 dB RMS peaked at
 * -6 dB instead of -21; libopus decodes it cleanly).
 * Ogg pages of one packet, so none waits for the next (the muxer's default page is a second).
 */
function opusArgs(frameMs: number): string[] {
  const mode = frameMs < 20 ? ['-application', 'lowdelay'] : ['-application', 'audio'];
  return ['-c:a', 'libopus', ...mode, '-frame_duration', String(frameMs), '-ar', String(AUDIO_RATE)];
}

/** The FFmpeg output pipe of the sound: after every layer's. */
export function audioFd(layers: number): number {
  return layers + 2;
}

/** The sound's output: its own map, encoder and pipe. */
function audioOutput(audio: AudioEncoding, layers: number): string[] {
  // The picture's input is 0; a separate sound input is 1.
  const map = audio.source.kind === 'file' ? '0:a:0' : '1:a:0';
  const frameMs = audio.frameMs ?? AUDIO_FRAME_MS_DEFAULT;
  return ['-map', map, '-vn', '-sn', ...opusArgs(frameMs), '-b:a', `${audio.bitrateKbps}k`, '-f', 'opus', '-page_duration', String(frameMs * 1000), '-flush_packets', '1', `pipe:${audioFd(layers)}`];
}

export const LAYERS_MAX = 3;
/** Each layer's picture is the full one divided by this, in width and height: full, half, quarter. */
export const LAYER_SCALES = [1, 2, 4] as const;
/** Each layer's bitrate as a share of --bitrate: a half-size picture needs about 40%, a quarter about 15%. */
export const LAYER_SHARES = [1, 0.4, 0.15] as const;

/** The bitrate of each layer (kbit/s) for a top bitrate of `kbps`. */
export function layerBitrates(kbps: number, layers: number): number[] {
  return LAYER_SHARES.slice(0, layers).map((share) => Math.max(1, Math.round(kbps * share)));
}

/**
 * The picture size of layer `i` for a full picture of `size`: divided by LAYER_SCALES[i], down to
 * the codec's size unit. What the split's scale filter (buildShareArgs) computes, in numbers.
 */
export function layerSize(name: CodecName, size: { width: number; height: number }, i: number): { width: number; height: number } {
  // The split takes the picture as the codec gets it: padded or scaled to fit its size rule first.
  const full = conformSize(name, size) ?? size;
  const { unit } = codec(name).sizeRule;
  const d = LAYER_SCALES[i] * unit;
  return { width: Math.trunc(full.width / d) * unit, height: Math.trunc(full.height / d) * unit };
}

/** --layers auto: the smallest layer at least this tall (a quarter of 720p: below it text is a blur)... */
export const LAYER_MIN_HEIGHT = 180;
/**
 * ...and all of them within this share of the machine's cores (capture, packetizing, a local
 * relay and the viewer's own work need the rest)...
 */
const LAYERS_CPU_SHARE = 0.5;
/**
 * ...at what x264 (ultrafast, zerolatency) encodes per core, in pixels a second: 1080p alone ran
 * at 156 fps on 2 cores here (issue 14's measure), 2.07 Mpx × 156 / 2.
 */
const ENCODE_PX_PER_CORE = 160e6;

/**
 * How many layers `--layers auto` sends, and why, in words for the log: as many as keep the
 * smallest at least LAYER_MIN_HEIGHT tall and all of them within LAYERS_CPU_SHARE of `cores`. One
 * for a codec whose every frame is a keyframe (MJPEG: a viewer can switch at any frame, and
 * smaller pictures at the same --quality save little), for an encoder that uploads to a GPU (the
 * split is done in memory), and when the picture's size is not known.
 */
export function autoLayers(encode: EncodeOptions, size: { width: number; height: number } | undefined, cores: number): { layers: number; why: string } {
  if (codec(encode.codec).everyFrameKey) return { layers: 1, why: `${encode.codec} pictures stand alone` };
  if (codec(encode.codec).ffmpeg(encode).filters.length) return { layers: 1, why: `--encoder ${encode.encoder} encodes on the GPU` };
  if (!size) return { layers: 1, why: 'the picture size is not known' };
  const budget = cores * LAYERS_CPU_SHARE * ENCODE_PX_PER_CORE;
  let layers = 1;
  let pixels = size.width * size.height * encode.fps;
  while (layers < LAYERS_MAX) {
    const next = layerSize(encode.codec, size, layers);
    const more = pixels + next.width * next.height * encode.fps;
    if (next.height < LAYER_MIN_HEIGHT || more > budget) break;
    pixels = more;
    layers++;
  }
  return { layers, why: `${size.width}x${size.height} at ${encode.fps} fps on ${cores} core${cores === 1 ? '' : 's'}` };
}

/** The FFmpeg output pipe of layer `i`: stdout for the top one, then fds 3, 4, … */
export function layerFd(i: number): number {
  return i === 0 ? 1 : 2 + i;
}

export interface Conformed {
  width: number;
  height: number;
  /** pad: black columns/rows added right and bottom (under one unit); scale: shrunk to fit max. */
  how: 'pad' | 'scale';
}

/** The size a picture of `size` is sent at, or undefined when it fits as it is. */
export function conformSize(name: CodecName, size: { width: number; height: number }): Conformed | undefined {
  const { unit, max } = codec(name).sizeRule;
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
function conformFilter(name: CodecName): string[] {
  const { unit, max } = codec(name).sizeRule;
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
  const { unit, max, refusal, otherwise } = codec(encode.codec).sizeRule;
  const limit = Number.isFinite(max) ? `at most ${max}x${max} in multiples of ${unit}` : `multiples of ${unit}`;
  throw new UsageError(
    `--codec ${encode.codec} carries ${limit}${refusal ?? ''}, got --size ${encode.size.width}x${encode.size.height}: ` +
      `pass --size ${c.width}x${c.height}${otherwise ?? ''}`,
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
  return `${codec(encode.codec).sizeRule.what}: ${done} ${size.width}x${size.height} to ${c.width}x${c.height} (--size WxH picks another size)`;
}

/** Quiet, non-interactive FFmpeg: warnings go to stderr (logged by line), stdin stays ours. */
export const GLOBAL_ARGS = ['-hide_banner', '-loglevel', 'warning', '-nostats', '-nostdin'];

/**
 * The -vf chain: cropping the grabber could not do, scaling to --size, fitting the codec's size
 * rules (unless the size is known to fit), then the encoder's own filters (a GPU upload).
 */
function videoFilter(capture: CaptureOptions, encode: EncodeOptions, encoderFilters: string[]): string[] {
  const chain = [...captureFilters(capture)];
  // The test beep's picture: the pattern flashes white on the same instants of its own clock.
  if (capture.source === 'test' && encode.audio?.source.kind === 'test') chain.push(testFlashFilter());
  // The test pattern is already generated at --size; anything else is scaled to it.
  if (encode.size && capture.source !== 'test') chain.push(`scale=${encode.size.width}:${encode.size.height}`);
  const size = encodedInputSize(capture, encode);
  if (!size || conformSize(encode.codec, size)) chain.push(...conformFilter(encode.codec));
  chain.push(...encoderFilters);
  return chain.length ? ['-vf', chain.join(',')] : [];
}

/** The whole FFmpeg argv for a share, without the binary. */
export function buildShareArgs(capture: CaptureOptions, encode: EncodeOptions): string[] {
  if (!(encode.fps > 0)) throw new UsageError(`--fps must be greater than 0, got ${encode.fps}`);
  checkRequestedSize(encode);
  const encoding = codec(encode.codec).ffmpeg({ ...encode, env: capture.env });
  // The test pattern is generated at the output size, so --size reaches the input too.
  const cap: CaptureOptions = capture.source === 'test' && encode.size && !capture.size ? { ...capture, size: encode.size } : capture;

  const args = [...GLOBAL_ARGS, ...encoding.global];
  args.push(...captureInputArgs(cap));
  if (encode.audio) args.push(...audioInputArgs(encode.audio.source, cap.platform));
  const layers = encode.layers ?? 1;
  const sound = encode.audio ? audioOutput(encode.audio, layers) : [];
  if (layers === 1) {
    // Only the first video stream: a custom input may carry audio or subtitles.
    args.push('-map', '0:v:0', '-an', '-sn');
    args.push(...videoFilter(cap, encode, encoding.filters));
    args.push('-r', String(encode.fps));
    args.push(...encoding.output);
    args.push(...sound);
    return args;
  }
  if (!Number.isInteger(layers) || layers < 1 || layers > LAYERS_MAX) throw new UsageError(`--layers must be 1-${LAYERS_MAX}, got ${layers}`);
  if (encoding.filters.length) throw new UsageError(`--layers ${layers} needs an encoder that takes frames from memory; --encoder ${encode.encoder} uploads them to the GPU: use --layers 1`);
  // One capture, split: the full picture as the -vf chain would make it, and smaller copies of it.
  const chain = videoFilter(cap, encode, [])[1] ?? 'null';
  const { unit } = codec(encode.codec).sizeRule;
  const labels = Array.from({ length: layers }, (_, i) => `l${i}`);
  const graph = [`[0:v:0]${chain},split=${layers}${labels.map((l) => `[${l}]`).join('')}`];
  for (let i = 1; i < layers; i++) {
    const d = LAYER_SCALES[i];
    graph.push(`[l${i}]scale=w=trunc(iw/${d * unit})*${unit}:h=trunc(ih/${d * unit})*${unit}[o${i}]`);
  }
  args.push('-filter_complex', graph.join(';'));
  const rates = layerBitrates(encode.bitrateKbps, layers);
  for (let i = 0; i < layers; i++) {
    const out = i === 0 ? encoding.output : codec(encode.codec).ffmpeg({ ...encode, bitrateKbps: rates[i], env: capture.env }).output;
    args.push('-map', i === 0 ? '[l0]' : `[o${i}]`, '-r', String(encode.fps));
    // No keyframes of the encoder's own choosing at scene cuts: every layer's fall on the same
    // pictures (-g), so the relay can move a viewer between layers at any of them.
    args.push(...out.slice(0, -1), '-sc_threshold', '0', `pipe:${layerFd(i)}`);
  }
  args.push(...sound);
  return args;
}
