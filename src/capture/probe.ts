/**
 * The size of the picture an input delivers, asked of FFmpeg itself before the share starts: a
 * whole screen or a file has no size udpcast knows, and the encoder may need one it can carry
 * (even for H.264, multiples of 8 for RFC 2435 JPEG). Only the log line about padding or scaling
 * depends on the answer; the filter that does it reads the real frames' size (encode/ffmpeg-args.ts).
 *
 *   ffmpeg -hide_banner -nostdin [capture input]     (no output: FFmpeg opens the input, prints
 *                                                     its streams on stderr, and exits)
 *   Stream #0:0: Video: rawvideo (BGR[0] / 0x524742), bgr0, 1366x768, 1004 kb/s, 30 fps, …
 */
import { OwnedProcess, type SpawnFn } from '../util/child.ts';
import { PROBE_TIMEOUT_MS } from '../defaults.ts';

export interface Size {
  width: number;
  height: number;
}

/**
 * The video stream's size in one line of FFmpeg's stream listing, if the line lists a video stream.
 * The size follows ", " (a fourcc such as "0x524742" follows "/ ", so it is not taken for one).
 */
export function videoSizeFromListing(line: string): Size | undefined {
  const at = line.indexOf(': Video: ');
  if (at < 0 || !/^\s*Stream #\d+:\d+/.test(line)) return undefined;
  const m = /, (\d{1,5})x(\d{1,5})\b/.exec(line.slice(at));
  return m && Number(m[1]) > 0 && Number(m[2]) > 0 ? { width: Number(m[1]), height: Number(m[2]) } : undefined;
}

/**
 * Opens the input as the share will, reads its stream listing and ends. Undefined when FFmpeg
 * cannot say within PROBE_TIMEOUT_MS (the share's own run then reports why the input fails).
 */
export function probeInputSize(ffmpegPath: string, inputArgs: readonly string[], spawn?: SpawnFn): Promise<Size | undefined> {
  return new Promise((resolve) => {
    let size: Size | undefined;
    const proc = new OwnedProcess({
      command: ffmpegPath,
      args: ['-hide_banner', '-nostdin', ...inputArgs],
      name: 'ffmpeg',
      stdout: 'ignore',
      spawn,
    });
    const timer = setTimeout(() => void proc.kill(), PROBE_TIMEOUT_MS);
    proc.on('stderr-line', (line) => {
      // The first video stream is the one shared (-map 0:v:0); nothing after it is needed.
      size ??= videoSizeFromListing(line);
      if (size) void proc.kill();
    });
    const done = () => {
      clearTimeout(timer);
      resolve(size);
    };
    proc.on('failed-to-start', done);
    proc.on('died', done);
  });
}
