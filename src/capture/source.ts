/**
 * The input half of the FFmpeg command line for `udpcast share`: where the pictures come from.
 *
 *   --source screen  the desktop: x11grab (Linux/X11), ddagrab or gdigrab (Windows),
 *                    avfoundation (macOS); the cursor is always drawn, since a screen share
 *                    without it is hard to follow
 *   --source test    a moving synthetic pattern (lavfi testsrc2) that needs no display at all
 *   anything else    handed to FFmpeg as `-i VALUE` (a file, a device, a PipeWire-capable input …),
 *                    with --source-format (`-f FMT`) and --source-option K=V (`-K V`) before it
 *
 * Live inputs must not run faster than real time: a grabber is paced by the screen, but lavfi
 * sources and files are not, so those get `-re` (read input at its native rate). Only the
 * grabbers get the low-latency probing flags: a file's decoder needs its usual probe (with
 * `-fflags nobuffer` an H.264 file with B-frames fails with "co located POCs unavailable").
 */
import { statSync } from 'node:fs';
import { UsageError } from '../util/errors.ts';
import { DEFAULT_TEST_SIZE } from '../defaults.ts';

export interface Region {
  width: number;
  height: number;
  x: number;
  y: number;
}

export interface CaptureOptions {
  /** 'screen' | 'test' | any FFmpeg input. */
  source: string;
  /** X11 display (":0", ":99"); defaults to $DISPLAY. Ignored off Linux. */
  display?: string;
  /** Part of the screen to grab. */
  region?: Region;
  fps: number;
  /** Output size; for `test` it is also the size the pattern is generated at. */
  size?: { width: number; height: number };
  /** For tests: the platform to build for (default process.platform). */
  platform?: NodeJS.Platform;
  /** For tests: the environment to read DISPLAY / XDG_SESSION_TYPE from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Windows: whether this FFmpeg has the `ddagrab` filter (Desktop Duplication, FFmpeg ≥ 6.0). */
  hasDdagrab?: boolean;
  /** --source-format: FFmpeg's input format (`-f FMT`), for inputs it cannot detect (lavfi, pipewire). */
  format?: string;
  /** --source-option K=V, in order: input options (`-K V`) placed before `-i`. */
  inputOptions?: [string, string][];
  /** --loop: play a file source again and again (`-stream_loop -1`). */
  loop?: boolean;
  /** The picture size the input delivers as FFmpeg reported it (probe.ts), when it was asked. */
  probedSize?: { width: number; height: number };
}

/** Arguments that keep FFmpeg from buffering input before it starts work: a live source. */
export const LOW_LATENCY_INPUT_ARGS = ['-fflags', 'nobuffer', '-probesize', '32', '-analyzeduration', '0'];

/** "WxH+X+Y", the X11 geometry syntax (e.g. 1280x720+0+0). */
export function parseRegion(s: string): Region {
  const m = /^(\d{1,5})x(\d{1,5})\+(\d{1,5})\+(\d{1,5})$/i.exec(String(s).trim());
  const width = m ? Number(m[1]) : 0;
  const height = m ? Number(m[2]) : 0;
  if (!m || width < 16 || height < 16 || width > 16384 || height > 16384) {
    throw new UsageError(
      `--region must be WIDTHxHEIGHT+X+Y with a size of at least 16x16 (e.g. 1280x720+0+0), got ${JSON.stringify(s)}`,
    );
  }
  return { width, height, x: Number(m[3]), y: Number(m[4]) };
}

/** Still images FFmpeg's image2 demuxer reads: shown as a still stream, not as one frame. */
const STILL_IMAGE_RE = /\.(png|jpe?g|bmp|tiff?|webp|pnm|ppm|pgm|tga)$/i;

/** True when --source names a still image (by its extension, when no --source-format says otherwise). */
export function isStillImage(o: Pick<CaptureOptions, 'source' | 'format'>): boolean {
  return (o.format === undefined || o.format === 'image2') && STILL_IMAGE_RE.test(o.source);
}

/**
 * True when --source is a regular file: it replays from its start when FFmpeg is started again,
 * so a fresh FFmpeg run cannot answer a viewer's keyframe request there.
 */
export function isFileSource(o: Pick<CaptureOptions, 'source'>): boolean {
  if (o.source === 'screen' || o.source === 'test') return false;
  try {
    return statSync(o.source).isFile();
  } catch {
    return false;
  }
}

/**
 * A --source that reads like a file path (no --source-format, no "scheme:" as in rtsp:// or pipe:)
 * must exist: FFmpeg's own "No such file or directory" would come as a failed run, not as a usage error.
 */
export function checkSourceExists(o: Pick<CaptureOptions, 'source' | 'format'>): void {
  if (o.source === 'screen' || o.source === 'test' || o.format !== undefined) return;
  if (/^[a-z][a-z0-9+.-]+:/i.test(o.source)) return;
  try {
    statSync(o.source);
  } catch {
    throw new UsageError(
      `--source ${o.source}: no such file ('screen', 'test', a file, or an FFmpeg input with --source-format, e.g. --source-format v4l2 --source /dev/video0)`,
    );
  }
}

/** "NAME=VALUE" of --source-option → [NAME, VALUE]; NAME is an FFmpeg option name, a leading '-' allowed. */
export function parseSourceOption(s: string): [string, string] {
  const m = /^-?([A-Za-z0-9_:.]+)=(.*)$/s.exec(String(s));
  if (!m) {
    throw new UsageError(`--source-option must be NAME=VALUE (e.g. --source-option video_size=1280x720), got ${JSON.stringify(s)}`);
  }
  return [m[1], m[2]];
}

/** True on a Wayland session with no XWayland to grab through. */
export function isWaylandOnly(env: NodeJS.ProcessEnv): boolean {
  return (env.XDG_SESSION_TYPE ?? '').toLowerCase() === 'wayland' && !env.DISPLAY && !env.WAYLAND_X11_DISPLAY;
}

export const WAYLAND_MESSAGE =
  'screen capture is not possible on a pure Wayland session: run udpcast under XWayland or an X11 session (or pass --display :N), use --source test, or pass a PipeWire-capable FFmpeg input via --source';

/** The input half of the FFmpeg argv (everything up to and including `-i …`). */
export function captureInputArgs(o: CaptureOptions): string[] {
  const platform = o.platform ?? process.platform;
  const env = o.env ?? process.env;
  const rate = String(o.fps);
  if (o.source === 'screen' || o.source === 'test') {
    // Silently ignoring these would share something other than what was asked for.
    if (o.format !== undefined || o.inputOptions?.length) {
      throw new UsageError(`--source-format and --source-option go with an FFmpeg input as --source (a file, a device, a lavfi graph), not --source ${o.source}`);
    }
    if (o.loop) throw new UsageError(`--loop repeats a file given as --source FILE, not --source ${o.source}`);
  }
  if (o.source === 'test') {
    if (o.region) throw new UsageError('--region picks part of the screen or of a file; the test pattern has none: give --size WxH instead');
    const size = o.size ?? DEFAULT_TEST_SIZE;
    // -re paces the synthetic source at real time, like a screen: lavfi otherwise runs flat out.
    return ['-re', '-f', 'lavfi', '-i', `testsrc2=size=${size.width}x${size.height}:rate=${rate}`];
  }
  if (o.source !== 'screen') {
    // A file or a device: FFmpeg detects the format (or --source-format names it), with its usual
    // probe size (a file's codec parameters may need more than a few bytes). -re paces files; live
    // devices pace themselves and -re only holds them to their own rate, so it costs nothing there.
    const options = (o.inputOptions ?? []).flatMap(([k, v]) => [`-${k}`, v]);
    const format = o.format !== undefined ? ['-f', o.format] : [];
    // A still image is one frame: -loop 1 repeats it at the share's rate, a still stream.
    if (isStillImage(o)) return ['-re', '-loop', '1', '-framerate', rate, ...options, ...format, '-i', o.source];
    const loop = o.loop ? ['-stream_loop', '-1'] : [];
    return ['-re', ...loop, ...options, ...format, '-i', o.source];
  }
  switch (platform) {
    case 'linux':
    case 'freebsd':
    case 'openbsd': {
      const display = o.display ?? env.DISPLAY;
      if (!o.display && isWaylandOnly(env)) throw new UsageError(WAYLAND_MESSAGE);
      if (!display) {
        throw new UsageError(
          'no X display to capture: set DISPLAY or pass --display :N (e.g. --display :0), or use --source test',
        );
      }
      const args = [...LOW_LATENCY_INPUT_ARGS, '-f', 'x11grab', '-draw_mouse', '1', '-framerate', rate];
      if (o.region) args.push('-video_size', `${o.region.width}x${o.region.height}`);
      const offset = o.region ? `+${o.region.x},${o.region.y}` : '';
      args.push('-i', `${display}${offset}`);
      return args;
    }
    case 'win32': {
      if (o.hasDdagrab) {
        // Desktop Duplication is a lavfi source filter; it yields GPU frames, hwdownload brings
        // them to system memory so any encoder (and scale) can take them.
        const opts = [`framerate=${rate}`, 'draw_mouse=1'];
        if (o.region) {
          opts.push(`video_size=${o.region.width}x${o.region.height}`, `offset_x=${o.region.x}`, `offset_y=${o.region.y}`);
        }
        return [
          ...LOW_LATENCY_INPUT_ARGS,
          '-f', 'lavfi',
          '-i', `ddagrab=${opts.join(':')},hwdownload,format=bgra`,
        ];
      }
      const args = [...LOW_LATENCY_INPUT_ARGS, '-f', 'gdigrab', '-draw_mouse', '1', '-framerate', rate];
      if (o.region) {
        args.push('-offset_x', String(o.region.x), '-offset_y', String(o.region.y));
        args.push('-video_size', `${o.region.width}x${o.region.height}`);
      }
      args.push('-i', 'desktop');
      return args;
    }
    case 'darwin': {
      // Screen index: avfoundation lists cameras first, then screens; "--display N" picks one.
      const screen = (o.display ?? env.UDPCAST_SCREEN_INDEX ?? '1').replace(/^:/, '');
      const args = [
        ...LOW_LATENCY_INPUT_ARGS,
        '-f', 'avfoundation', '-capture_cursor', '1', '-framerate', rate,
        '-i', `${screen}:none`,
      ];
      return args;
    }
    default:
      throw new UsageError(
        `screen capture is not supported on ${platform}: use --source test or pass an FFmpeg input via --source`,
      );
  }
}

/**
 * A video filter that crops the region out of the picture, for grabbers that cannot grab a region
 * themselves (avfoundation) and for files and devices. Empty when no cropping is needed.
 */
export function captureFilters(o: CaptureOptions): string[] {
  const platform = o.platform ?? process.platform;
  const grabbed = o.source === 'screen' && platform !== 'darwin';
  if (o.region && !grabbed && o.source !== 'test') {
    const r = o.region;
    // exact=1: crop otherwise rounds an odd size or offset of a 4:2:0 picture down to even.
    return [`crop=${r.width}:${r.height}:${r.x}:${r.y}:exact=1`];
  }
  return [];
}

/** A --region cropped out of a file or device must lie within its picture (`size`, when known). */
export function checkRegionInside(o: CaptureOptions, size: { width: number; height: number } | undefined): void {
  const r = o.region;
  if (!r || !size || (r.x + r.width <= size.width && r.y + r.height <= size.height)) return;
  throw new UsageError(
    `--region ${r.width}x${r.height}+${r.x}+${r.y} reaches outside the picture of ${o.source} (${size.width}x${size.height})`,
  );
}

/**
 * The size of the picture the capture delivers, when known: the region, the test pattern's size,
 * or what FFmpeg reported for the input. Undefined for a whole screen, a file or a device not asked.
 */
export function knownCaptureSize(o: CaptureOptions): { width: number; height: number } | undefined {
  if (o.region) return { width: o.region.width, height: o.region.height };
  if (o.source === 'test') return o.size ?? DEFAULT_TEST_SIZE;
  return o.probedSize;
}
